"""screens.py: where the dashboard shows while training: a picture under a notebook
cell, replaced in place; a real TkAgg window on a private Xvfb server."""
import io
import json
import signal
import subprocess
import sys
import threading
import time
import types

import numpy as np
import pytest
from PIL import Image

import plumbing
import screens
from conftest import ROOT, child_env, ctrl_c_works
from helpers import assert_picture, fake_training, run_python
from tensorflowvisu import Dashboard


def test_notebook_pictures_are_updated_in_place_often_and_cheaply(monkeypatch):
    """In a Jupyter kernel (inline backend): display(Image, display_id=True), then
    handle.update(Image): PNG pictures, whatever formatters the kernel has (a real kernel:
    tests/test_notebook.py, a real browser: tests/test_browser.py). The first picture at
    once, a fresh one at least every MAX_INTERVAL seconds, within the drawing budget; the
    digit panels less often; finish() shows the final state."""
    shown = []

    class Handle:
        def update(self, picture):
            shown.append(("update", picture, now[0]))

    def display(picture, display_id=False):
        assert display_id is True
        shown.append(("display", picture, now[0]))
        return Handle()

    class Picture:
        def __init__(self, data, format):
            assert format == "png" and data.startswith(b"\x89PNG")
            self.title = Image.open(io.BytesIO(data)).info.get("Title")

    ipython = types.ModuleType("IPython")
    ipython.version_info = (9, 0)  # (matplotlib reads it at its first canvas)
    ipython.display = types.ModuleType("IPython.display")
    ipython.display.display, ipython.display.Image = display, Picture
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", ipython.display)
    monkeypatch.setattr(plumbing, "in_notebook", lambda: True)
    # The clock, made up: 0.4 s between measurements, 0.15 s per picture (a real clock on a
    # busy machine would make the test's counts depend on the machine)
    now = [0.0]
    monkeypatch.setattr(screens, "time", types.SimpleNamespace(perf_counter=lambda: now[0],
                                                               sleep=time.sleep))
    picture = screens.NotebookPicture.picture

    def slow_picture(self, title=None):
        now[0] += 0.15
        return picture(self, title)

    monkeypatch.setattr(screens.NotebookPicture, "picture", slow_picture)
    dashboard = Dashboard("notebook", 1000, live=True)
    assert isinstance(dashboard.screen, screens.NotebookPicture), dashboard.not_live
    assert [(kind, p.title) for kind, p, _ in shown] == [("display", "notebook: starting")]

    def measured(step):
        now[0] += 0.4

    fake_training(dashboard, 1000, on_measure=measured)  # 51 measurements, 20 s
    dashboard.finish()
    assert [kind for kind, _, _ in shown[1:]] == ["update"] * (len(shown) - 1)
    times = [when for _, _, when in shown]
    gaps = np.diff(times)
    assert max(gaps) <= screens.NotebookPicture.MAX_INTERVAL + 0.4 + 0.15, "a fresh one often"
    assert gaps[0] <= 0.4 + 0.15, "the curves as soon as the first measurement comes"
    assert min(gaps[1:-1]) >= screens.NotebookPicture.MIN_INTERVAL, "not at every measurement"
    assert shown[-1][1].title == "notebook: step 1,000 of 1,000", "the final state"
    assert sum(dashboard.draw_times) <= 0.25 * now[0], "within the budget"
    assert not dashboard.live


@pytest.mark.slow
def test_real_window_on_xvfb(xvfb, tmp_path):
    shot = tmp_path / "screen.png"
    result = run_python(f"""
        import json
        import matplotlib.pyplot as plt
        from PIL import ImageGrab
        out = {{}}
        dashboard = tv.Dashboard("xvfb test", 600, live=True)
        out["live"] = dashboard.live
        out["backend"] = plt.get_backend()
        fake_training(dashboard, 600, slow=0.01)
        out["draws"] = len(dashboard.draw_times)
        out["median_draw_ms"] = sorted(dashboard.draw_times)[len(dashboard.draw_times) // 2] * 1000
        ImageGrab.grab(xdisplay={xvfb!r}).save({str(shot)!r})
        dashboard.finish(wait=False)  # draws the final state, closes the window
        out["live_after_finish"] = dashboard.live

        # Closing the window stops training like Ctrl-C
        dashboard = tv.Dashboard("xvfb test", 1000, live=True, png={str(tmp_path / "after.png")!r})
        def close(i):
            if i == 100:
                plt.close(dashboard.figure)
        try:
            fake_training(dashboard, 1000, on_measure=close)
        except KeyboardInterrupt:
            out["closed_at"] = dashboard.history.test["step"][-1]
        out["live_after_close"] = dashboard.live
        dashboard.save()
        dashboard.finish()
        print(json.dumps(out))
    """, DISPLAY=xvfb, MPLBACKEND="TkAgg")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["live"] is True and out["backend"].lower() == "tkagg"
    assert out["draws"] >= 2 and out["live_after_finish"] is False
    assert out["closed_at"] == 100 and out["live_after_close"] is False
    screen = assert_picture(shot, min_colours=200)
    window = screen[:600, :1100]  # the window opens at the top left of the empty screen
    assert window.std() > 40, "the dashboard is drawn in the window"
    assert_picture(tmp_path / "after.png")


@pytest.mark.slow
def test_ctrl_c_at_the_end_of_a_windowed_run_closes_the_window_and_exits(xvfb, tmp_path,
                                                                          mnist_dir):
    """Issue 28: a lesson's window stays open at the end, "Close the dashboard window to
    finish (or press Ctrl-C here)": Ctrl-C there ends the run at once, without a
    traceback, its files written."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "mnist_1.0_softmax.py"), "--steps", "60",
         "--history", str(tmp_path / "run.json"), "--save-model", str(tmp_path / "model")],
        cwd=tmp_path, env=child_env(mnist_dir, DISPLAY=xvfb, MPLBACKEND="TkAgg"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ctrl_c_works)
    watchdog = threading.Timer(120, process.kill)  # a lost Ctrl-C: fail, not wait for ever
    watchdog.start()
    try:
        seen = []
        for line in process.stdout:
            seen.append(line)
            if line.startswith("Close the dashboard window to finish"):
                break
        assert seen and seen[-1].startswith("Close the dashboard window"), "".join(seen)
        time.sleep(0.5)  # in the wait loop
        asked = time.monotonic()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
        took = time.monotonic() - asked
    finally:
        watchdog.cancel()
        process.kill()
    assert process.returncode == 0, err
    assert took < 5, f"Ctrl-C took {took:.1f} s to end the run"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    history = json.loads((tmp_path / "run.json").read_text())
    assert history["final"]["steps"] == 60 and history["final"]["interrupted"] is False
    assert (tmp_path / "model" / "saved_model.pb").exists()
