"""Shared test fixtures.

Real MNIST comes from the MNIST_DATA_DIR environment variable (CI sets it to ../shared/mnist),
else from data/ next to the scripts, downloaded there if needed (a fresh machine with internet).
When CI is set, a skipped test counts as a failure: everything must run there.
"""
import functools
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Keep TensorFlow's C++ start-up chatter out of test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests never open a window unless they ask for one (the Xvfb test sets its own DISPLAY).
os.environ["MPLBACKEND"] = "Agg"

sys.path.insert(0, str(ROOT))
import lab  # noqa: E402

# TensorFlow in this process as the lessons load it (oneDNN...): lessons run here with lab.run.
lab.load_tensorflow()



def ctrl_c_works():
    """preexec_fn for a child that a test sends Ctrl-C (SIGINT): a shell's background job
    (`cmd &` without job control, as some CI runners start it) ignores SIGINT, and so
    would its children; Python then raises no KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="session")
def mnist_dir():
    """The folder holding the four real MNIST files."""
    folder = os.environ.get("MNIST_DATA_DIR")
    if folder:
        return str(Path(folder).resolve())
    # No MNIST_DATA_DIR: the data/ folder next to the scripts, downloaded there on a fresh
    # machine exactly as the lessons do it (once; later runs find the files).
    problem = _fetch_mnist()
    if problem:
        pytest.skip(f"real MNIST not available: {problem}")
    import mnistdata

    return str(mnistdata.data_folder())


@functools.lru_cache(maxsize=None)
def _fetch_mnist():
    """Find or download MNIST into data/, once per session; the problem, or None."""
    import mnistdata

    try:
        mnistdata.read_data_sets()
    except mnistdata.MnistError as error:
        return str(error)
    return None


@pytest.fixture
def run_script(tmp_path, mnist_dir):
    """Run a project script in a subprocess from a foreign directory; returns CompletedProcess."""

    def run(script, *args, timeout=600, env=None, cwd=None):
        full_env = dict(os.environ, MNIST_DATA_DIR=mnist_dir, MPLBACKEND="Agg")
        full_env.pop("DISPLAY", None)
        full_env.update(env or {})
        return subprocess.run(
            [sys.executable, str(ROOT / script), *map(str, args)],
            cwd=cwd or tmp_path, env=full_env, capture_output=True, text=True, timeout=timeout,
        )

    return run


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI (CI is set), a skipped test is a failure: real MNIST, Xvfb and ffmpeg are all there."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, which must run every test: {reason}"


@pytest.fixture
def xvfb():
    """A private X server; its display name, e.g. ':3'."""
    from benchmarks._bench import Xvfb  # the benchmarks' own, shared

    try:
        server = Xvfb()
    except RuntimeError as error:
        pytest.skip(str(error))
    with server:
        yield server.display
