"""exercises.py: which lessons are exercises, where each starts (the lesson before it,
the task at its top), the command line (start, check)."""
import ast
import json
import subprocess
import sys

import pytest

import exercises
import lab
import plumbing
from conftest import FINAL_LINES, ROOT, child_env


# --------------------------------------------------------------- the exercises


def test_the_exercises_are_the_lessons_that_train_in_one_process():
    order = exercises.exercises()
    assert order[:10] == ["1.0", "2.0", "2.1", "2.2", "3.0", "3.1", "4.0", "4.1", "4.2", "5.0"]
    assert "6.0" not in order, "lesson 6.0's replicas need processes of their own"
    assert set(order) <= set(plumbing.lessons())
    # a new lesson joins by its code: lab.train in one process; not an ensemble, not replicas
    assert exercises._trains_alone("args = lab.parse_args(__doc__, steps=10)\nlab.train(args)")
    assert not exercises._trains_alone("args = lab.parse_args(__doc__, 10, distributed=True)\n"
                                       "lab.train(args, model, step, optimizer)")
    assert not exercises._trains_alone("import predict\nmodels = savedmodel.load(folder)")


@pytest.mark.parametrize("name, number", [("my_mnist_2.0.py", "2.0"), ("mnist_3.1_mine.py", "3.1"),
                                        ("my_mnist_4.2_second_try.py", "4.2")])
def test_the_lesson_comes_from_the_file_name(name, number):
    assert exercises.lesson_of(name) == number


def test_a_file_name_without_a_step_says_how_to_give_it():
    with pytest.raises(lab.UserError, match=r"cannot tell the lesson .* \(--lesson 2\.0\)"):
        exercises.lesson_of("homework.py")
    with pytest.raises(lab.UserError, match="no exercise 6.0: choose one of 1.0, 2.0"):
        exercises.lesson_of("my_mnist_6.0.py")


def test_an_exercise_is_the_lesson_before_it_with_the_task_at_the_top(
        tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the attendee's folder
    path = exercises.start("2.0", folder="mine")
    assert path == tmp_path / "mine" / "my_mnist_2.0.py"
    assert capsys.readouterr().out.splitlines()[0] == str(path), "the path, alone on a line"
    made, before = path.read_text(), plumbing.lessons()["1.0"].read_text()
    task = ast.get_docstring(ast.parse(made))
    lesson = ast.get_docstring(ast.parse(plumbing.lessons()["2.0"].read_text()))
    # the task is the lesson's docstring (what to change, the accuracy, the sketch) ...
    assert task.startswith("Exercise 2.0: five layers of sigmoid neurons. Max test accuracy about")
    assert lesson.partition("\n")[2].strip() in task
    assert "lesson 1.0's code (mnist_1.0_softmax.py)" in task and "steps=10000" in task
    # ... and README's "what each lesson changes", what to watch
    assert "What to watch: 200-100-60-30-10 neurons, Adam." in task
    assert f"python {ROOT / 'exercises.py'} check mine/my_mnist_2.0.py" in task
    # the code is the lesson before it, after a line that finds lab.py from any folder
    code = made.split('"""\n', 1)[1]
    assert code.startswith(f"\nimport sys\n\nsys.path.insert(0, {str(ROOT)!r})")
    assert code.endswith(before.split('"""\n', 1)[1])


@pytest.mark.parametrize("number", [n for n in exercises.exercises()
                                    if exercises.readme_notes().get(n)])
def test_every_task_quotes_its_lesson_and_readme(number, tmp_path):
    task = exercises.task(number, tmp_path / f"my_mnist_{number}.py")
    lesson = ast.get_docstring(ast.parse(plumbing.lessons()[number].read_text()))
    assert task.startswith("Exercise " + lesson.removeprefix("Lesson ").split("\n")[0])
    assert lesson.split("\n\n")[-1].strip() in task, "the sketch: every layer's shapes"
    assert exercises.readme_notes()[number][:60] in " ".join(task.split())


def test_the_first_exercise_is_lesson_1_without_its_model(tmp_path):
    path = exercises.start("1.0", tmp_path)
    model = next(node for node in ast.parse(path.read_text()).body
                 if isinstance(node, ast.FunctionDef) and node.name == "model")
    assert [type(node).__name__ for node in model.body] == ["Expr", "Raise"], "docstring, raise"
    assert "W = tf.Variable(tf.zeros([784, 10]))" in path.read_text(), "the rest is the lesson's"


def test_work_already_there_is_never_overwritten(tmp_path, capsys):
    path = tmp_path / "my_mnist_2.1.py"
    path.write_text("# my work\n")
    assert exercises.start("2.1", tmp_path) == path
    assert path.read_text() == "# my work\n"
    out = capsys.readouterr().out
    assert out.startswith(f"{path}\n") and "already there, your work: it is kept" in out


def test_the_exercise_command_is_quick_and_one_line_when_wrong(run_script, tmp_path, no_tensorflow):
    made = run_script("exercises.py", "start", "3.0", env=no_tensorflow)
    assert made.returncode == 0, made.stderr
    assert made.stdout.splitlines()[0] == str(tmp_path / "my_mnist_3.0.py")
    again = run_script("exercises.py", "start", "3.0", "--folder", ".", env=no_tensorflow)
    assert again.returncode == 0 and "already there" in again.stdout
    wrong = run_script("exercises.py", "start", "7.5", env=no_tensorflow)
    assert wrong.returncode == 1 and "TENSORFLOW IMPORTED" not in wrong.stderr
    assert wrong.stderr.splitlines() == [
        f"error: no exercise 7.5: choose one of {', '.join(exercises.exercises())}"]


@pytest.mark.slow
def test_an_exercise_file_runs_from_any_folder_as_a_lesson_does(tmp_path, mnist_dir):
    """Without `pip install -e .`: the line at its top finds lab.py."""
    path = exercises.start("2.0", tmp_path / "mine")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [sys.executable, "-I", str(path), "--no-vis", "--steps", "20", "--history", "run.json",
         "--save-model", "model"],
        cwd=elsewhere, env=child_env(mnist_dir, PYTHONPATH=None), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert FINAL_LINES.search(result.stdout)
    history = json.loads((elsewhere / "run.json").read_text())
    assert history["config"]["script"] == "my_mnist_2.0.py"


# ------------------------------------------------------------ the command line


@pytest.mark.slow
def test_the_check_command_exits_0_when_done_1_with_what_to_fix(run_script, tmp_path):
    (tmp_path / "my_mnist_1.0.py").write_text(plumbing.lessons()["1.0"].read_text())
    done = run_script("exercises.py", "check", "my_mnist_1.0.py", "--steps", "20")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].startswith("done: my_mnist_1.0.py is lesson 1.0's")
    assert "  training   ok: 20 steps, seed 0: the loss fell from" in done.stdout
    assert run_script("exercises.py", "start", "2.0").returncode == 0
    to_fix = run_script("exercises.py", "check", "my_mnist_2.0.py", "--solution")
    assert to_fix.returncode == 1 and to_fix.stderr == "", to_fix.stderr
    assert "  structure  to fix: a layer is missing" in to_fix.stdout
    assert "the lesson's lines (mnist_2.0_five_layers_sigmoid.py):" in to_fix.stdout
    missing = run_script("exercises.py", "check", "nothing.py")
    assert missing.returncode == 1 and missing.stderr.startswith("error: no file nothing.py")


def test_start_4_0_from_the_command_line_is_lesson_2_0_and_says_so(run_script, tmp_path):
    """Issue 28: exercise 4.0 (batch norm on the dense network) started from lesson 3.1's
    convolutions; it starts from lesson 2.0, whose code it is, and says so at the top."""
    result = run_script("exercises.py", "start", "4.0", timeout=60)
    assert result.returncode == 0, result.stderr
    path = tmp_path / "my_mnist_4.0.py"
    assert result.stdout.splitlines()[0] == str(path)
    made = path.read_text()
    assert "conv2d" not in made, "no convolution in the dense network's starting point"
    first = ast.get_docstring(ast.parse(made)).split("\n\n")[:2]
    assert first[0].startswith("Exercise 4.0: lesson 2.0 with batch normalisation.")
    assert first[1].startswith("This file is lesson 2.0's code (mnist_2.0_five_layers_sigmoid.py)")
    assert made.endswith(plumbing.lessons()["2.0"].read_text().split('"""\n', 1)[1])


@pytest.mark.parametrize("number", exercises.exercises())
def test_every_exercise_starts_from_the_lesson_it_builds_on(number, tmp_path):
    """The starting code is the lesson named at the top: STARTS_FROM, never simply the
    lesson before it in the list (4.0 builds on 2.0, 4.2 on 3.1, 3.0 on 2.1)."""
    path = exercises.start(number, tmp_path)
    base = exercises.STARTS_FROM[number]
    assert path.read_text().endswith(plumbing.lessons()[base].read_text().split('"""\n', 1)[1]) \
        or number == "1.0"  # (1.0: the lesson without its model)
    if number != "1.0":
        assert f"lesson {base}'s code ({plumbing.lessons()[base].name})" in path.read_text()
    convolutional = "conv2d" in plumbing.lessons()[number].read_text()
    assert ("conv2d" in path.read_text()) <= convolutional, "no convolutions a dense one lacks"
