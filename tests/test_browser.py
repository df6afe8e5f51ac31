"""The dashboard under a notebook cell, as a person sees it: JupyterLab in headless Chromium.

While lesson 2.1 trains 3,000 steps in a cell run with Ctrl+Enter, the picture under it
must change at least every 3 s, inline (the default backend) and with %matplotlib widget
(where the lab draws the same picture: ipympl's canvas would wait for the browser's
messages, which a kernel busy training does not read), fit the output area (about 950 px
wide in a 1400 x 1000 window), stay on screen (one progress line, replaced in place,
does not push it away), and show no widget error. "While training": from the run's first
line to its "trained 3000 steps" line, leaving out the first compiled training call
(between the lines of steps 0 and 20: TensorFlow traces the loop, XLA compiles it), which
has no new data to show; the report gives its length.

The harness (jupyterlab_browser.py) starts JupyterLab on 127.0.0.1 with a token, Debian's
Chromium headless, and samples the page every 0.25 s. LAB_BROWSER_ARTIFACTS=FOLDER keeps
the screenshots and timelines there.
"""
import importlib.util
import os
import shutil
from pathlib import Path

import pytest

import jupyterlab_browser as browser

MAX_GAP = 3.0  # seconds without a new picture while training
STEPS = 3000


@pytest.fixture
def artifacts(tmp_path, request):
    """Where the screenshots, the timeline and the server's log go."""
    missing = [name for name in ("selenium", "jupyterlab", "nbformat")
               if importlib.util.find_spec(name) is None]
    missing += [path for path in (browser.CHROMIUM, browser.CHROMEDRIVER) if not shutil.which(path)]
    if missing:  # (in CI a skip fails: .ci/run installs them)
        pytest.skip(f"the browser tests need {', '.join(missing)} (requirements-dev.txt; "
                    "apt-get install chromium chromium-driver)")
    kept = os.environ.get("LAB_BROWSER_ARTIFACTS")
    folder = Path(kept) / request.node.name if kept else tmp_path / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["inline", "widget"])
def test_the_dashboard_lives_under_a_training_cell(mode, mnist_dir, tmp_path, artifacts):
    setup = ("%matplotlib widget\n" if mode == "widget" else "") + "import lab"
    run = (f'run = lab.run("mnist_2.1_five_layers_relu.py", steps={STEPS}, '
           f'history=r"{tmp_path / "run.json"}", save_model=r"{tmp_path / "model"}")')
    timeline = browser.watch_cell([setup, run], run=[0], artifacts=artifacts, name=mode,
                                  env={"MNIST_DATA_DIR": mnist_dir}, screenshot_every=10)
    report = f"{timeline.summary()}\n(screenshots and timeline: {artifacts})"
    print(report)  # (pytest -rA shows it for a passing run too)
    text = timeline.samples[-1][1].get("text", "") if timeline.samples else ""
    start, end = timeline.training()
    assert start is not None and timeline.first_text(browser.TRAINING_ENDS), (
        f"the lesson did not train {STEPS} steps; the cell printed:\n{text[-3000:]}\n{report}")

    problems = []
    compiled = timeline.first_compiled_call()
    gap = timeline.max_gap(start, end, pause=compiled)
    if gap > MAX_GAP:
        problems.append(f"the picture under the cell did not change for {gap:.1f} s while "
                        f"training (at most {MAX_GAP} s)")
    over, width, output, scroll = timeline.widest()
    if width is None:
        problems.append("no picture under the cell")
    elif over > 0:
        problems.append(f"the picture is {width:.0f} px wide in an output area of {output} px "
                        f"(scrolls to {scroll} px)")
    hidden = [t for t, s in timeline.samples if start <= t <= end and s.get("pictures")
              and s["pictures"][-1]["on_screen"] < 0.9]
    if hidden:
        problems.append(f"the picture left the screen while training (from {hidden[0]:.1f} s)")
    if [p for _, s in timeline.samples for p in s.get("pictures", []) if p["kind"] == "canvas"]:
        problems.append("an ipympl canvas: the dashboard draws a picture under widget too")
    if timeline.errors() or timeline.dialogs():
        problems.append(f"errors on the page: {timeline.errors() + timeline.dialogs()}")
    assert not problems, "; ".join(problems) + "\n" + report
