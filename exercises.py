"""exercises.py: every lesson of the lab as an exercise, and the check of your file.

As in the original codelab, attendees write each lesson themselves: they start from the
code of the lesson it builds on, with the task at the top, in a file of their own; the
check then runs their file against the lesson and says what is right, and the first
thing to fix, with a hint:

    python exercises.py start 2.0                        # my_mnist_2.0.py: 1.0's code, the task
    python my_mnist_2.0.py                               # runs as any lesson does
    python exercises.py check my_mnist_2.0.py            # exit status 0 when it passes
    python exercises.py check my_mnist_2.0.py --solution # + the lesson's lines to fix

In a notebook: exercises.start("2.0") and exercises.check("my_mnist_2.0.py").

The lessons are the solutions, and the only copy of them: the task is the lesson's own
docstring and README's "what each lesson changes". The check is in checking.py.
"""

import ast
import os
import re
import sys
import textwrap
from pathlib import Path

import checking
import plumbing
from plumbing import ROOT, UserError

LESSON_IN_NAME = re.compile(r"mnist_(\d+\.\d+)")  # my_mnist_2.0.py, mnist_2.0_mine.py: 2.0
# Where each exercise starts: the lesson it builds on (the first one: itself, without its
# model), so that an attendee adds what the lesson teaches and strips out nothing.
STARTS_FROM = {"1.0": "1.0", "2.0": "1.0", "2.1": "2.0", "2.2": "2.1", "3.0": "2.1",
               "3.1": "3.0", "4.0": "2.0", "4.1": "4.0", "4.2": "3.1", "5.0": "4.2",
               "5.1": "5.0"}


# ---------------------------------------------------------------------- the exercises


def exercises():
    """The lessons that are exercises, in order: those that train a network with lab.train
    in one process. Not those that need processes of their own (lesson 6.0's replicas:
    lab.parse_args(..., distributed=True)), nor those that train nothing (an ensemble of
    saved models): the check could not run them."""
    return [number for number, path in plumbing.lessons().items()
            if _trains_alone(path.read_text())]


def _trains_alone(source):
    """Does this lesson's code call lab.train, and not lab.parse_args(..., distributed=True)?"""
    nodes = list(ast.walk(ast.parse(source)))
    trains = any(isinstance(node, ast.Attribute) and node.attr == "train"
                 and getattr(node.value, "id", None) == "lab" for node in nodes)
    distributed = any(isinstance(node, ast.keyword) and node.arg == "distributed"
                      and getattr(node.value, "value", None) is True for node in nodes)
    return trains and not distributed


def exercise(lesson):
    """`lesson` ("2.0", 2.0) if it is an exercise; else a UserError that lists them."""
    lesson = str(lesson)
    if lesson not in exercises():
        raise UserError(f"no exercise {lesson}: choose one of {', '.join(exercises())}")
    return lesson


def lesson_of(path):
    """The lesson an exercise file is for, from its name: my_mnist_2.0.py -> "2.0"."""
    match = LESSON_IN_NAME.search(Path(path).name)
    if not match:
        raise UserError(f"cannot tell the lesson from the name {Path(path).name}: name the file "
                        "after it (my_mnist_2.0.py) or give the lesson (--lesson 2.0)")
    return exercise(match.group(1))


def starts_from(lesson):
    """The lesson whose code an exercise starts from (see STARTS_FROM)."""
    return STARTS_FROM.get(lesson) or exercises()[max(0, exercises().index(lesson) - 1)]


def commands(path, lesson=None):
    """What an attendee types for their file at `path`, in a shell and in a notebook:
    run it, check it, compare its curves with the lesson's (of `lesson`: from the name)."""
    path = Path(path).absolute()
    lesson = lesson or lesson_of(path)
    shown = os.path.relpath(path) if Path.cwd() in path.parents else str(path)
    lab_dir = "" if Path.cwd() == ROOT else f"{ROOT}{os.sep}"
    lesson_history = Path(lab_dir) / "runs" / f"{plumbing.lessons()[lesson].stem}.json"
    yours = lesson_history.with_name(path.stem + ".json")
    return {"shell": {"run": f"python {shown}",
                      "check": f"python {lab_dir}exercises.py check {shown}",
                      "compare": f"python {lab_dir}tensorflowvisu.py compare {lesson_history} "
                                 f"{yours}"},
            "notebook": {"run": f'mine = lab.run("{shown}")',
                         "check": f'exercises.check("{shown}")',
                         "compare": f'tensorflowvisu.compare(r"{lesson_history}", mine)'}}


# ---------------------------------------------------------------------- an exercise


def start(lesson, folder=None):
    """Make the starting file of exercise `lesson` in `folder` (default: the current one):
    my_mnist_<lesson>.py. A file already there is the attendee's work: it is kept, never
    overwritten. Prints and returns its path."""
    lesson = exercise(lesson)
    path = Path(folder or ".").absolute() / f"my_mnist_{lesson}.py"
    code = starting_code(lesson, path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as file:  # "x": never over an existing file
            file.write(code)
    except FileExistsError:
        print(f"{path}\nexercise {lesson}: this file is already there, your work: it is kept as "
              "it is (to start again, delete it)")
        return path
    except OSError as error:
        raise UserError(f"cannot write {path} ({error.strerror or error}): choose another "
                        "folder (--folder DIR)") from None
    how = "notebook" if plumbing.in_notebook() else "shell"
    print(f"{path}\nexercise {lesson}: do the task at the top of the file, then check it: "
          f"{commands(path)[how]['check']}")
    return path


def check(path, lesson=None, solution=False, steps=None, echo=print):
    """Check an exercise file against its lesson (from the file's name, my_mnist_2.0.py, or
    `lesson`): prints what is right and the first thing to fix with a hint (solution=True:
    and the lesson's lines for it); returns the verdict (checking.py), true if done.
    steps: the check's short training run (default: checking.DENSE_STEPS, or fewer for a
    convolutional network). UserError: no such file, or no lesson to check it against."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no file {path}: give your exercise file (python exercises.py start "
                        "LESSON makes one)")
    lesson = exercise(lesson) if lesson else lesson_of(path)
    typed = commands(path, lesson)
    asked = (typed["notebook"]["check"][:-1] + ", solution=True)" if plumbing.in_notebook()
             else f"{typed['shell']['check']} --solution")
    return checking.check(path, lesson, solution=solution, steps=steps, echo=echo, asked=asked)


def starting_code(lesson, path):
    """The starting file of exercise `lesson`, to be written at `path`: the code of the
    lesson it starts from (for the first one, its own code without its model), with the
    task as its docstring, and a line that lets it import lab from any folder."""
    before = starts_from(lesson)
    source = plumbing.lessons()[before].read_text(encoding="utf-8")
    if before == lesson:
        source = _without_model_body(source)
    docstring = ast.parse(source).body[0]
    code = source.splitlines(keepends=True)[docstring.end_lineno:]
    header = (f'r"""{task(lesson, path)}\n"""\n\n'
              "import sys\n\n"
              f"sys.path.insert(0, {str(ROOT)!r})  # lab.py's folder: runs from any folder\n")
    return header + "".join(code)


def task(lesson, path):
    """The task of exercise `lesson`, in plain words: where the file starts from, the
    lesson's docstring (what it changes, the accuracy to expect, the network's sketch), its
    number of steps, README's notes on what to watch, and the commands for the file."""
    lessons = plumbing.lessons()
    title, _, body = _docstring(lessons[lesson]).partition("\n")
    before = starts_from(lesson)
    begin = (f"This file is lesson {lesson} without its model: write model(X), the network of "
             "the sketch below." if before == lesson else
             f"This file is lesson {before}'s code ({lessons[before].name}): change it into "
             f"lesson {lesson}'s network, below.")
    trains = _default_steps(lessons[lesson])
    if trains:
        begin += (f" Lesson {lesson} trains {trains:,} steps: "
                  f"lab.parse_args(__doc__, steps={trains}).")
    parts = [re.sub(r"^Lesson\s+", "Exercise ", title), textwrap.fill(begin, 92),
             body.strip("\n")]
    notes = readme_notes().get(lesson)
    if notes:
        parts.append(textwrap.fill(f"What to watch: {notes}", 92))
    shell, notebook = commands(path)["shell"], commands(path)["notebook"]
    parts.append("\n".join([
        f"Run it:     {shell['run']}",
        f"Check it:   {shell['check']}   (--solution: the lesson's lines for what to fix)",
        f"Compare:    {shell['compare']}",
        f"Notebook:   {notebook['run']}, {notebook['check']}, {notebook['compare']}"]))
    return "\n\n".join(parts)


def readme_notes():
    """{lesson: text} from README's "What each lesson changes" (a bullet may name two)."""
    readme = ROOT / "README.md"
    if not readme.exists():
        return {}
    section = readme.read_text(encoding="utf-8").partition("What each lesson changes")[2]
    section = section.split("\n#")[0]  # up to the next heading
    notes = {}
    for label, text in re.findall(r"^- \*\*(.+?)\*\*:?(.*(?:\n  .*)*)", section, re.MULTILINE):
        text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", " ".join(text.split()))  # a link: its text
        for lesson in re.findall(r"\d+\.\d+", label):
            notes[lesson] = text
    return notes


def _docstring(path):
    return ast.get_docstring(ast.parse(Path(path).read_text(encoding="utf-8")))


def _default_steps(path):
    """A lesson's own number of training steps: its lab.parse_args(__doc__, steps=N)."""
    for node in ast.walk(ast.parse(Path(path).read_text(encoding="utf-8"))):
        if isinstance(node, ast.keyword) and node.arg == "steps" and \
                isinstance(node.value, ast.Constant):
            return node.value.value
    return None


def _without_model_body(source):
    """A lesson's code with the body of model(X) replaced by the attendee's turn (1.0)."""
    model = next(node for node in ast.parse(source).body
                 if isinstance(node, ast.FunctionDef) and node.name == "model")
    body = model.body[1:] if ast.get_docstring(model) else model.body
    lines = source.splitlines(keepends=True)
    indent = " " * body[0].col_offset
    turn = [f"{indent}# Your turn: the network of the sketch at the top of this file, from the\n",
            f"{indent}# images X to the logits (the scores before softmax).\n",
            f"{indent}raise NotImplementedError(\"model(X) is yours to write: see the task at the "
            "top of this file\")\n"]
    return "".join(lines[:body[0].lineno - 1] + turn + lines[body[-1].end_lineno:])


def main(argv=None):
    """python exercises.py start LESSON [--folder DIR] | python exercises.py check FILE
    [--lesson LESSON] [--solution]: one line for a problem the user can fix, exit status 0
    when a check passes."""
    parser = plumbing.ArgumentParser(prog="exercises.py", description="The lab's exercises: "
                                     "start a lesson's file, check a finished one.")
    actions = parser.add_subparsers(dest="action", required=True, metavar="{start,check}")
    start_parser = actions.add_parser(
        "start", help="make the starting file of a lesson: my_mnist_LESSON.py",
        description="Make my_mnist_LESSON.py: the code of the lesson it builds on, with the "
                    "task at its top. An existing file is kept. Prints its path.")
    start_parser.add_argument("lesson", metavar="LESSON", help=f"one of {', '.join(exercises())}")
    start_parser.add_argument("--folder", metavar="DIR", help="where (default: the current folder)")
    check_parser = actions.add_parser(
        "check", help="check an exercise file against its lesson",
        description="Check an exercise file against its lesson: structure, a short training "
                    "run, accuracy. Exit status 0 when it passes.")
    check_parser.add_argument("file", metavar="FILE", help="the file, e.g. my_mnist_2.0.py")
    check_parser.add_argument("--lesson", metavar="LESSON", help="the lesson (default: from the "
                              "file's name, my_mnist_LESSON.py)")
    check_parser.add_argument("--solution", action="store_true",
                              help="also show the lesson's lines for what to fix")
    check_parser.add_argument("--steps", type=plumbing.count, metavar="N",
                              help=f"the short training run's steps (default: "
                                   f"{checking.DENSE_STEPS}, or {checking.CONVOLUTIONAL_STEPS} "
                                   "for a convolutional network)")
    args = parser.parse_args(argv)
    try:
        if args.action == "start":
            start(args.lesson, args.folder)
        else:
            verdict = check(args.file, args.lesson, solution=args.solution, steps=args.steps)
            raise SystemExit(0 if verdict.passed else 1)
    except UserError as error:
        raise SystemExit(f"error: {error}") from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
