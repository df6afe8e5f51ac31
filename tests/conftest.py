"""Shared test fixtures.

Real MNIST comes from the MNIST_DATA_DIR environment variable (CI sets it to ../shared/mnist),
else from data/ next to the lessons, downloaded there if needed (a fresh machine with internet).
When CI is set, a skipped test counts as a failure: everything must run there.

Tests marked slow (real notebook kernels, lesson processes, windows on Xvfb, Ctrl-C,
convolutional lessons, long runs) are left out by `python -m pytest -m "not slow"`: the core
in about a minute, training nothing bigger than a few hundred dense steps.

Fixtures shared by several test files are here; plain helpers in helpers.py.
"""
import functools
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Keep TensorFlow's C++ start-up chatter out of test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests never open a window unless they ask for one (the Xvfb tests set their own DISPLAY).
os.environ["MPLBACKEND"] = "Agg"

import plumbing  # noqa: E402

# TensorFlow in this process as the lessons load it (oneDNN...): lessons run here with lab.run.
plumbing.load_tensorflow()

# The two lines every run ends with.
FINAL_LINES = re.compile(r"max test accuracy: (0\.\d{4})\nfinal test accuracy: (0\.\d{4})\n$")


def child_env(mnist_dir=None, **extra):
    """The environment of a child process: a user's shell without a display (what CI has),
    real MNIST; extra variables added (None removes one)."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["MPLBACKEND"] = "Agg"
    if mnist_dir:
        env["MNIST_DATA_DIR"] = str(mnist_dir)
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = str(value)
    return env


def ctrl_c_works():
    """preexec_fn for a child that a test sends Ctrl-C (SIGINT): a shell's background job
    (`cmd &` without job control, as some CI runners start it) ignores SIGINT, and so
    would its children; Python then raises no KeyboardInterrupt. (POSIX: the tests run
    on Linux.)"""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="session")
def mnist_dir():
    """The folder holding the four real MNIST files."""
    folder = os.environ.get("MNIST_DATA_DIR")
    if folder:
        return str(Path(folder).resolve())
    # No MNIST_DATA_DIR: the data/ folder next to the lessons, downloaded there on a fresh
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


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    """Real MNIST as the lessons load it: 60,000 training images (28x28x1), one-hot labels,
    batches in the order of seed 0. Shared: tests that draw batches from it get later ones."""
    import mnistdata

    return mnistdata.read_data_sets(mnist_dir, one_hot=True, reshape=False, validation_size=0,
                                    seed=0)


def saved_model(tmp_path_factory, mnist_dir, lesson, steps):
    """The model of a short real run of `lesson` (`steps` steps), saved in a fresh folder by
    lab.run in this process; returns the model's folder."""
    import lab

    folder = tmp_path_factory.mktemp(f"trained_{lesson}")
    lab.run(lesson, steps=steps, no_vis=True, data_dir=mnist_dir, history=folder / "run.json",
            save_model=folder / "model")
    return folder / "model"


@pytest.fixture(scope="session")
def trained_model_dir(tmp_path_factory, mnist_dir):
    """Lesson 3.0 after 600 steps (about 97.5 % of the test digits right): the tests of
    predict.py, explain.py and savedmodel.py share it (slow tests only: the fast tier trains
    no convolutional lesson)."""
    return saved_model(tmp_path_factory, mnist_dir, "3.0", 600)


@pytest.fixture(scope="session")
def small_model_dir(tmp_path_factory, mnist_dir):
    """Lesson 1.0 after 300 steps (about 90 % of the test digits right, a few seconds): the
    drawing pad's tests of its mechanics need no convolutional model."""
    return saved_model(tmp_path_factory, mnist_dir, "1.0", 300)


# -------------------------------------------------------- fixtures shared by several test files


@pytest.fixture(scope="module")
def lesson_history(mnist_dir, tmp_path_factory):
    """A lesson's history, as lab.run writes it (lesson 1.0, 40 steps)."""
    import lab

    folder = tmp_path_factory.mktemp("lesson")
    os.environ["MNIST_DATA_DIR"] = mnist_dir
    lab.run("1.0", steps=40, no_vis=True, history=folder / "lesson.json",
            save_model=folder / "model")
    return folder / "lesson.json"


@pytest.fixture(scope="module")
def batch(mnist):
    import tensorflow as tf

    images, labels = mnist.test.images[:100], mnist.test.labels[:100]
    return tf.constant(images), tf.constant(labels)


@pytest.fixture(scope="module")
def mnist_test(mnist):
    """The first 200 MNIST test digits: images [200, 28, 28] float 0-1 and labels."""
    return mnist.test.images[:200, :, :, 0], mnist.test.labels[:200].argmax(1)


@pytest.fixture(scope="module")
def model_dir(trained_model_dir):
    """A model saved by a short real run of a lesson (conftest.trained_model_dir)."""
    return trained_model_dir


@pytest.fixture(scope="module")
def model(model_dir):
    """The saved model, loaded in this process by savedmodel.load."""
    import savedmodel

    return savedmodel.load(model_dir)


@pytest.fixture(scope="module")
def pictures(tmp_path_factory, mnist_test):
    """Picture files made here, and the digit each one shows: {file name: label}."""
    from helpers import MNIST_VARIANTS, mnist_picture

    folder = tmp_path_factory.mktemp("pictures")
    images, labels = mnist_test
    truth = {}
    for i in range(20):
        variant = MNIST_VARIANTS[i % len(MNIST_VARIANTS)]
        name = f"mnist{i:02d}_{variant}"
        picture = mnist_picture(images[i], variant)
        picture.save(folder / name, **({"quality": 85} if name.endswith(".jpg") else {}))
        truth[name] = int(labels[i])
    for digit in (1, 0, 7):
        for size in (40, 150, 500):
            for dark in (True, False):
                name = f"drawn{digit}_{size}_{'dark' if dark else 'light'}.png"
                drawn_digit(digit, size, dark).save(folder / name)
                truth[name] = digit
    return folder, truth


@pytest.fixture(scope="module")
def classified(pictures, model_dir):
    """One predict.py run on all the pictures: (CompletedProcess, names in order, parsed output)."""
    from helpers import parse, run_predict

    folder, truth = pictures
    names = list(truth)
    result = run_predict("--model", model_dir, *names, cwd=folder)
    assert result.returncode == 0, result.stderr
    return result, names, parse(result.stdout)


@pytest.fixture(scope="module")
def trained(trained_model_dir):
    """Lesson 3.0 trained for 600 steps (about 97.5% on the test digits), saved, loaded."""
    import savedmodel

    return savedmodel.load(trained_model_dir)


@pytest.fixture
def run_script(tmp_path, mnist_dir):
    """Run a project script in a subprocess from a foreign directory; returns CompletedProcess."""

    def run(script, *args, timeout=600, env=None, cwd=None):
        return subprocess.run(
            [sys.executable, str(ROOT / script), *map(str, args)],
            cwd=cwd or tmp_path, env=child_env(mnist_dir, **(env or {})),
            capture_output=True, text=True, timeout=timeout,
        )

    return run


@pytest.fixture
def no_tensorflow(tmp_path):
    """Environment variables whose PYTHONPATH holds a 'tensorflow' that ends the process:
    proves it was never imported."""
    fake = tmp_path / "fake" / "tensorflow"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("import os\n"
                                      "os.write(2, b'TENSORFLOW IMPORTED')\n"
                                      "os._exit(99)\n")
    return {"PYTHONPATH": str(fake.parent)}


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


def drawn_digit(digit, size, dark_on_light=True, width=None):
    """A digit drawn with PIL's lines and ellipses, as a user's picture (a PIL Image):
    1 (a bar), 0 (an ellipse), 7 (two strokes)."""
    from PIL import Image, ImageDraw

    paper, ink = (255, 0) if dark_on_light else (0, 255)
    image = Image.new("L", (size, size), paper)
    draw = ImageDraw.Draw(image)
    width = width or max(2, size // 12)
    s = size
    if digit == 1:
        draw.line([(s * 0.5, s * 0.15), (s * 0.5, s * 0.85)], fill=ink, width=width)
    elif digit == 0:
        draw.ellipse([s * 0.3, s * 0.15, s * 0.7, s * 0.85], outline=ink, width=width)
    elif digit == 7:
        draw.line([(s * 0.25, s * 0.2), (s * 0.75, s * 0.2), (s * 0.45, s * 0.85)],
                  fill=ink, width=width, joint="curve")
    else:
        raise ValueError(digit)
    return image
