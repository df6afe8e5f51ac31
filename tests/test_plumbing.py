"""plumbing.py: files are written whole or not at all, and when one cannot be written,
one line says why, before anything is made."""
import gc
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import plumbing
from conftest import ROOT, child_env, drawn_digit
from helpers import fake_training, saved_history
from history import History
from plumbing import UserError
from tensorflowvisu import Dashboard, Movie


def test_unwritable_targets_give_user_errors_and_leave_nothing_behind(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="cannot write"):
        History("x").save(blocker / "run.json")
    with pytest.raises(UserError, match="cannot write"):
        Dashboard("x", live=False).save(blocker / "run.json")
    for png in (blocker / "dash.png", tmp_path):  # (a folder)
        dashboard = Dashboard("x", live=False, png=png)
        fake_training(dashboard, 20)
        with pytest.raises(UserError, match="cannot write"):
            dashboard.save()
    for movie in (blocker / "run.gif", tmp_path, tmp_path / "run.avi"):
        with pytest.raises(UserError):
            Movie(movie)
        with pytest.raises(UserError, match="cannot record the movie"):
            Dashboard("x", live=False, movie=movie)
    assert sorted(os.listdir(tmp_path)) == ["a_file"]


def test_cannot_write_says_why_and_creates_nothing(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    deeper = tmp_path / "new" / "deeper"
    assert plumbing.cannot_write(deeper / "run.json") == f"no folder {deeper}", \
        "a file the user names goes into a folder that exists"
    assert plumbing.cannot_write(deeper / "run.json", new_folders=True) is None, \
        "the lab's own folders (runs/, models/) are made as needed"
    assert plumbing.cannot_write(tmp_path / "model", folder=True) is None
    assert plumbing.cannot_write(blocker / "run.json") == f"{blocker} is a file"
    assert plumbing.cannot_write(tmp_path) == "it is a folder"
    assert plumbing.cannot_write(blocker, folder=True) == "it is a file"
    assert plumbing.cannot_write("/proc/nope/run.json", new_folders=True).startswith(
        "cannot write in /proc")
    assert sorted(os.listdir(tmp_path)) == ["a_file"]


# ------------------------------------------------- the user's commands, as they typed them


@pytest.mark.parametrize("script", ["mnist_1.0_softmax.py", "predict.py", "tensorflowvisu.py"])
def test_a_python_without_the_labs_packages_gets_one_line_that_says_what_to_do(script, tmp_path):
    """A lesson started outside the lab's environment (issue 28: python -S hides every
    site-packages folder, as a Python without NumPy and TensorFlow would be)."""
    result = subprocess.run([sys.executable, "-S", str(ROOT / script)], cwd=tmp_path,
                            env=child_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and "not installed in this Python" in lines[0]
    assert "NumPy" in lines[0] and ("TensorFlow" in lines[0]) == (script != "tensorflowvisu.py")
    assert "source .venv/bin/activate" in lines[0]
    assert "pip install -r requirements.txt" in lines[0]


# TensorFlow's and CUDA's start-up lines on a machine without a GPU
START_UP_LINES = re.compile(r"cuda|cuInit|oneDNN|absl|[EIW]0000|cpu_feature_guard", re.I)


@pytest.mark.slow
@pytest.mark.parametrize("imports", ["import mnistdata, tensorflowvisu\nimport keras",
                                     "import mnistdata\nimport keras",
                                     # lab and predict check first that TensorFlow is there
                                     "import lab\nimport keras", "import predict\nimport keras"])
def test_the_lab_imported_first_keras_loads_tensorflow_quietly(imports, tmp_path):
    """docs/your-own-network.md: the lab's modules first, then Keras: no start-up lines
    (even without the lab's TF_CPP_MIN_LOG_LEVEL in the environment), and a model works.
    TensorFlow's objects are frozen as when the lab loads it (the test below)."""
    code = (f"{imports}\nimport gc\nimport numpy as np\n"
            "model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),"
            " keras.layers.Dense(10)])\n"
            "print(model(np.zeros((2, 28, 28, 1), np.float32)).shape, "
            "gc.get_freeze_count() > 100_000)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120,
                            env=child_env(TF_CPP_MIN_LOG_LEVEL=None, TF_ENABLE_ONEDNN_OPTS=None))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "(2, 10) True\n"
    assert not START_UP_LINES.search(result.stderr), result.stderr
    assert result.stderr == ""


@pytest.mark.slow
def test_a_run_without_the_dashboard_loads_tensorflow_without_matplotlib(tmp_path):
    """--no-vis: Keras does not import matplotlib.pyplot as TensorFlow loads (a second of
    every such run; docs/speed.md), and matplotlib is importable as usual afterwards."""
    code = ("import sys\nimport lab\n"
            f"lab.parse_args('A test.', 20, ['--no-vis', '--history', r'{tmp_path / 'h.json'}', "
            f"'--save-model', r'{tmp_path / 'm'}'], name='test')\n"
            "print('matplotlib' in sys.modules, 'keras' in sys.modules)\n"
            "import matplotlib.pyplot\nprint(matplotlib.pyplot.figure is not None)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, env=child_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout == "False True\nTrue\n"


def test_tensorflows_objects_are_left_out_of_the_garbage_collectors_walks():
    """load_tensorflow freezes the objects alive once TensorFlow is imported (its modules:
    some 300,000): the garbage collector skips them, in each full collection (0.2 s) and
    at exit (1.3 s of every lesson's end; docs/speed.md)."""
    tf = plumbing.load_tensorflow()
    assert gc.get_freeze_count() > 100_000
    walked = {id(o) for o in gc.get_objects()}  # what a full collection looks at
    assert id(vars(tf)) not in walked
    assert id(vars(sys.modules["tensorflow.python.framework.ops"])) not in walked


@pytest.mark.slow
@pytest.mark.parametrize("load", ["import plumbing\nplumbing.load_tensorflow()",
                                  "import lab\nimport keras"])  # (the lab's import hook)
def test_no_garbage_collection_while_tensorflow_loads(load):
    """The collector would walk TensorFlow's objects again and again as they load (0.7 s
    of the import; docs/speed.md): paused until they are loaded and frozen, on again after."""
    code = ("import gc, sys\nduring = []\n"
            "gc.callbacks.append(lambda phase, info: phase == 'start' and 'tensorflow' in "
            "sys.modules and not gc.get_freeze_count() and during.append(info['generation']))\n"
            f"{load}\nprint(during, gc.isenabled(), gc.get_freeze_count() > 100_000)\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, env=child_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[] True True\n"


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A finished run's history with its report (a confusion matrix), made by hand."""
    import history as history_module

    labels = np.arange(10).repeat(10)
    report = history_module.report(labels, np.where(labels == 4, 9, labels))
    return saved_history(tmp_path_factory.mktemp("run"), "finished", [0.5, 0.8, 0.9],
                         report=report)


@pytest.mark.parametrize("command", [
    "lesson", "predict", "tensorflowvisu compare", "tensorflowvisu confusion",
    "tensorflowvisu panel"])
def test_save_png_into_a_missing_folder_one_line_and_nothing_made(
        command, run_script, tmp_path, finished_run, request):
    """Every command's --save-png (issue 28): a folder the user named that does not exist
    is refused in one line, "no folder ...", and made by no one."""
    target = tmp_path / "x" / "missing" / "d.png"
    if command == "lesson":
        script, args = "mnist_1.0_softmax.py", ["--steps", 5]
    elif command == "predict":
        model = request.getfixturevalue("small_model_dir")
        drawn_digit(1, 50).save(tmp_path / "one.png")
        script, args = "predict.py", ["--model", model, "one.png"]
    else:
        word = command.split()[1]
        script, args = "tensorflowvisu.py", [word, finished_run, *(["1"] * (word == "panel"))]
    result = run_script(script, *args, "--save-png", target, timeout=120)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert f"no folder {target.parent}" in lines[0]
    assert not (tmp_path / "x").exists(), "no folder made"
    assert "saved" not in result.stdout
