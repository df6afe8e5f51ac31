"""exercises.py: every step of the lab as an exercise, and a check that says how close you are.

As in the original codelab, attendees write each step themselves: they start from the code
of the lesson before it, with the step's task at the top, in a file of their own; the
check then runs their file against the step's lesson and says what is right, and the first
thing to fix, with a hint:

    python lab.py exercise 2.0                        # my_mnist_2.0.py here: lesson 1.0 + the task
    python my_mnist_2.0.py                            # runs as any lesson does
    python lab.py check my_mnist_2.0.py               # exit status 0 when it passes
    python lab.py check my_mnist_2.0.py --solution    # + the lesson's lines for what to fix

In a notebook: lab.exercise("2.0") and lab.check("my_mnist_2.0.py").

The lessons are the solutions, and the only copy of them: the task is the lesson's own
docstring and README's "what each step changes". The check judges what the network does,
not how its code looks: it traces the model (its layers, their variables' shapes, its
activation functions, dropout, batch norm), then trains it briefly with the seed the lesson
gets, and compares the two runs. Other names, Keras layers or another order pass.
"""

import ast
import collections
import contextlib
import dataclasses
import hashlib
import inspect
import io
import math
import os
import re
import runpy
import sys
import tempfile
import textwrap
import traceback
import types
from pathlib import Path

import numpy as np

import lab
import plumbing
from plumbing import UserError

ROOT = lab.ROOT  # the lessons, README.md
LESSON_NAME = re.compile(r"^mnist_(\d+\.\d+)_.*\.py$")  # mnist_2.0_five_layers_sigmoid.py
STEP_IN_NAME = re.compile(r"mnist_(\d+\.\d+)")  # my_mnist_2.0.py, mnist_2.0_mine.py: 2.0

# The check's short run: long enough for lesson 2.0's sigmoids to take off, short enough to
# check a convolutional network (ten times the arithmetic per image) within a minute on 2 cores.
DENSE_STEPS, CONVOLUTIONAL_STEPS = 500, 60
SEED = 0  # the lessons' default: the attendee's run and the lesson's get the same batches


# ---------------------------------------------------------------------- the steps


def lessons():
    """{step: path} of every lesson next to lab.py (mnist_N.M_*.py), in the lab's order."""
    found = {}
    for path in ROOT.glob("mnist_*.py"):
        match = LESSON_NAME.match(path.name)
        if match:
            found[match.group(1)] = path
    return dict(sorted(found.items(), key=lambda item: _number(item[0])))


def steps():
    """The steps that are exercises: the lessons that train a network with lab.train in one
    process. Not those that need processes of their own (lesson 6.0's replicas:
    lab.parse_args(..., distributed=True)), nor those that train nothing (an ensemble of
    saved models): the check could not run them."""
    return [step for step, path in lessons().items() if _trains_alone(path.read_text())]


def _number(step):
    return tuple(int(part) for part in step.split("."))


def _trains_alone(source):
    """Does this lesson's code call lab.train, and not lab.parse_args(..., distributed=True)?"""
    nodes = list(ast.walk(ast.parse(source)))
    trains = any(isinstance(node, ast.Attribute) and node.attr == "train"
                 and getattr(node.value, "id", None) == "lab" for node in nodes)
    distributed = any(isinstance(node, ast.keyword) and node.arg == "distributed"
                      and getattr(node.value, "value", None) is True for node in nodes)
    return trains and not distributed


def exercise_step(step):
    """`step` ("2.0", 2.0) if it is an exercise; else a UserError that lists them."""
    step = str(step)
    if step not in steps():
        raise UserError(f"no exercise {step}: choose one of {', '.join(steps())}")
    return step


def step_of(path):
    """The step an exercise file is for, from its name: my_mnist_2.0.py -> "2.0"."""
    match = STEP_IN_NAME.search(Path(path).name)
    if not match:
        raise UserError(f"cannot tell the step from the name {Path(path).name}: name the file "
                        "after it (my_mnist_2.0.py) or give the step (--step 2.0)")
    return exercise_step(match.group(1))


def previous(step):
    """The exercise whose lesson is the starting point of `step` (the first one: itself)."""
    order = steps()
    return order[max(0, order.index(step) - 1)]


# ---------------------------------------------------------------------- an exercise


def make(step, folder=None):
    """Make the starting file of exercise `step` in `folder` (default: the current one):
    my_mnist_<step>.py. A file already there is the attendee's work: it is kept, never
    overwritten. Prints and returns its path."""
    step = exercise_step(step)
    path = Path(folder or ".").absolute() / f"my_mnist_{step}.py"
    code = starting_code(step, path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "x", encoding="utf-8") as file:  # "x": never over an existing file
            file.write(code)
    except FileExistsError:
        print(f"{path}\nexercise {step}: this file is already there, your work: it is kept as it "
              "is (to start again, delete it)")
        return path
    except OSError as error:
        raise UserError(f"cannot write {path} ({error.strerror or error}): choose another "
                        "folder (--folder DIR)") from None
    how = "notebook" if plumbing.in_notebook() else "shell"
    print(f"{path}\nexercise {step}: do the task at the top of the file, then check it: "
          f"{_commands(path)[how]['check']}")
    return path


def starting_code(step, path):
    """The starting file of exercise `step`, to be written at `path`: the code of the
    exercise before it (for the first one, its own lesson without its model), with the
    step's task as its docstring, and a line that lets it import lab from any folder."""
    before = previous(step)
    source = lessons()[before].read_text(encoding="utf-8")
    if before == step:
        source = _without_model_body(source)
    docstring = ast.parse(source).body[0]
    code = source.splitlines(keepends=True)[docstring.end_lineno:]
    header = (f'r"""{task(step, path)}\n"""\n\n'
              "import sys\n\n"
              f"sys.path.insert(0, {str(ROOT)!r})  # lab.py's folder: runs from any folder\n")
    return header + "".join(code)


def task(step, path):
    """The task of exercise `step`, in plain words: the lesson's docstring (what the step
    changes, the accuracy to expect, the network's sketch), its number of steps, README's
    notes on what to watch, and the commands for the file at `path`."""
    lesson = lessons()[step]
    title, _, body = _docstring(lesson).partition("\n")
    before = previous(step)
    start = (f"This file is lesson {step} without its model: write model(X), the network of the "
             "sketch below." if before == step else
             f"This file is lesson {before}'s code ({lessons()[before].name}): change it into "
             f"lesson {step}'s network, below.")
    trains = _default_steps(lesson)
    if trains:
        start += f" Lesson {step} trains {trains:,} steps: lab.parse_args(__doc__, steps={trains})."
    parts = [re.sub(r"^Lesson\s+", "Exercise ", title), textwrap.fill(start, 92), body.strip("\n")]
    notes = readme_notes().get(step)
    if notes:
        parts.append(textwrap.fill(f"What to watch: {notes}", 92))
    shell, notebook = _commands(path)["shell"], _commands(path)["notebook"]
    parts.append("\n".join([
        f"Run it:     {shell['run']}",
        f"Check it:   {shell['check']}   (--solution: the lesson's lines for what to fix)",
        f"Compare:    {shell['compare']}",
        f"Notebook:   {notebook['run']}, {notebook['check']}, {notebook['compare']}"]))
    return "\n\n".join(parts)


def _commands(path, step=None):
    """What an attendee types for their file at `path`, in a shell and in a notebook:
    run it, check it, compare its curves with the lesson's (of `step`: from the name)."""
    path = Path(path).absolute()
    step = step or step_of(path)
    shown = os.path.relpath(path) if Path.cwd() in path.parents else str(path)
    lab_dir = "" if Path.cwd() == ROOT else f"{ROOT}{os.sep}"
    lesson_runs = Path(lab_dir) / "runs" / f"{lessons()[step].stem}.json"
    return {"shell": {"run": f"python {shown}",
                      "check": f"python {lab_dir}lab.py check {shown}",
                      "compare": f"python {lab_dir}tensorflowvisu.py compare {lesson_runs} "
                                 f"{lesson_runs.with_name(path.stem + '.json')}"},
            "notebook": {"run": f'mine = lab.run("{shown}")',
                         "check": f'lab.check("{shown}")',
                         "compare": f'tensorflowvisu.compare(r"{lesson_runs}", mine)'}}


def readme_notes():
    """{step: text} from README's "what each step changes" (one bullet may name two steps)."""
    readme = ROOT / "README.md"
    if not readme.exists():
        return {}
    section = readme.read_text(encoding="utf-8").partition("What each step changes")[2]
    section = section.split("\n#")[0]  # up to the next heading
    notes = {}
    for label, text in re.findall(r"^- \*\*(.+?)\*\*:?(.*(?:\n  .*)*)", section, re.MULTILINE):
        text = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", " ".join(text.split()))  # a link: its text
        for step in re.findall(r"\d+\.\d+", label):
            notes[step] = text
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
    """A lesson's code with the body of model(X) replaced by the attendee's turn (step 1.0)."""
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


# ---------------------------------------------------------------------- the check


class Problem(Exception):
    """The first thing to fix: what is wrong, a hint, and the parts of the lesson that show
    how (its variables, model, optimizer, train_step...), for --solution."""

    def __init__(self, message, hint="", parts=()):
        super().__init__(message)
        self.message, self.hint, self.parts = message, hint, tuple(parts)


@dataclasses.dataclass
class Verdict:
    """What the check found: passed (true: done), and if not, the stage ("structure",
    "training" or "accuracy"), the message, the hint and the lesson's lines for that part."""

    path: Path
    step: str
    passed: bool = False
    stage: str = ""
    message: str = ""
    hint: str = ""
    solution: str = ""
    accuracy: float = math.nan  # after the short run: yours, the lesson's
    lesson_accuracy: float = math.nan
    lines: list = dataclasses.field(default_factory=list)  # the report, as printed

    def __bool__(self):
        return self.passed

    def __str__(self):
        return "\n".join(self.lines)

    def __repr__(self):
        return f"Verdict({self.path.name}: {'done' if self.passed else 'to fix: ' + self.stage})"


def check(path, step=None, *, solution=False, seed=SEED, steps=None, echo=print):
    """Check the attendee's file at `path` against the lesson of `step` (default: from the
    file's name): structure, then a short training run of each with the same seed, then
    their accuracy. Prints the report as it goes (echo); returns the Verdict.

    solution: also show the lesson's lines for what to fix. steps: the short run's length
    (default: DENSE_STEPS, or CONVOLUTIONAL_STEPS for a convolutional lesson).
    UserError: no such file, or no step to check it against.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no file {path}: give your exercise file (python lab.py exercise STEP "
                        "makes one)")
    step = exercise_step(step) if step else step_of(path)
    lesson = lessons()[step]
    verdict = Verdict(path, step)

    def say(text, indent=0):
        verdict.lines.append(_wrap(text, indent))
        echo(verdict.lines[-1])

    say(f"checking {path.name} against lesson {step} ({lesson.name})")
    plumbing.load_tensorflow()
    stage = "structure"
    with tempfile.TemporaryDirectory() as scratch:
        try:
            reference = load(lesson, seed, scratch)
            theirs = load(path, seed, scratch)
            say(f"  structure  ok: {structure(theirs, reference)}", 6)
            stage = "training"
            steps = steps or (CONVOLUTIONAL_STEPS if reference.network.convolutional
                              else DENSE_STEPS)
            echo(f"  training   yours and the lesson's, {steps} steps each...")
            say(f"  training   ok: {training(theirs, reference, steps, seed)}", 6)
            stage = "accuracy"
            verdict.accuracy = theirs.trained.accuracy
            verdict.lesson_accuracy = reference_run(reference, steps, seed).accuracy
            say(f"  accuracy   ok: {accuracy(theirs, reference, steps, seed)}", 6)
        except Problem as problem:
            verdict.stage, verdict.message, verdict.hint = stage, problem.message, problem.hint
            say(f"  {stage:<10} to fix: {problem.message}", 6)
            if problem.hint:
                say(f"hint: {problem.hint}", 6)
            if problem.parts:
                verdict.solution = solution_lines(lesson, problem.parts)
                asked = (_commands(path, step)["notebook"]["check"][:-1] + ", solution=True)"
                         if plumbing.in_notebook() else
                         f"{_commands(path, step)['shell']['check']} --solution")
                say(verdict.solution if solution else f"the lesson's lines for this: {asked}")
            return verdict
    verdict.passed = True
    say(f"done: {path.name} is lesson {step}'s network, and it learns as the lesson does. Now "
        "train it in full and compare its curves with the lesson's.")
    return verdict


def _wrap(text, indent):
    """A line of the report, wrapped at 100 columns; indent=0: kept as it is (code)."""
    if not indent:
        return text
    return textwrap.fill(text, 100, subsequent_indent=" " * indent, break_on_hyphens=False)


# -- a file, as it hands its parts to lab.train


@dataclasses.dataclass
class Loaded:
    """A lesson's or an attendee's file, run up to its lab.train(...) call: what it hands over."""

    path: Path
    namespace: dict
    args: object
    model: object
    train_step: object
    optimizer: object
    augment: object
    network: "Network" = None


def load(path, seed, scratch):
    """Run the file at `path` as a lesson runs (as __main__, so that it reaches its
    lab.train(...) line) with lab.train recording its arguments instead of training.
    Seeded as the lessons are (Keras layers' initial weights too); outputs go to `scratch`."""
    tf = plumbing.load_tensorflow()
    calls = []
    argv = [str(path), "--no-vis", "--seed", str(seed), "--history", f"{scratch}/run.json",
            "--save-model", f"{scratch}/model", "--xla", "off"]  # (in a short run, XLA's
    # compile time outweighs its gain: measured 4.6 s instead of 8.7 for lesson 4.0)
    tf.keras.utils.set_random_seed(seed)  # Python's, NumPy's and TensorFlow's generators
    saved = sys.argv, lab.train
    sys.argv, lab.train = argv, lambda *args, **kwargs: calls.append((args, kwargs))
    try:
        namespace = runpy.run_path(str(path), run_name="__main__")
    except SystemExit as stop:
        raise Problem(f"{Path(path).name} stopped: {stop.code}") from None
    except Exception as error:  # the attendee's code: a typo, a shape, a name
        raise _code_problem(error, path, f"{Path(path).name} stops") from None
    finally:
        sys.argv, lab.train = saved
    if not calls:
        raise Problem(f"{Path(path).name} never calls lab.train(args, model, train_step, "
                      "optimizer)", "end it as the lessons do: if __name__ == \"__main__\": "
                      "lab.train(args, model, train_step, optimizer)", ["main"])
    bound = inspect.signature(saved[1]).bind(*calls[-1][0], **calls[-1][1])
    given = collections.defaultdict(lambda: None, bound.arguments)
    loaded = Loaded(Path(path), namespace, given["args"], given["model"], given["train_step"],
                    given["optimizer"], given["augment"])
    loaded.network = Network.of(loaded)
    return loaded


def _code_problem(error, path, what):
    """A Problem for an error raised by the attendee's code, `what` failed: where, and what
    TensorFlow says, in the lab's words for the classic ones (images given unflattened to a
    dense layer, shapes that do not chain)."""
    text = str(error)
    where = _line_of(error, path)
    what = f"{what} at {where}" if where else what
    chain = re.search(r"Dimensions must be equal, but are (\d+) and (\d+)", text)
    shapes = re.search(r"with input shapes: (\[[^\]]*\]), (\[[^\]]*\])", text)
    if isinstance(error, NotImplementedError):
        return Problem("model(X) is not written yet", "write it as the sketch at the top of the "
                       "file shows, from the images X to the logits (one layer: flatten the "
                       "images, tf.reshape(X, [-1, 784]), then tf.matmul(XX, W) + b)", ["model"])
    if chain and shapes and "MatMul" in text and shapes.group(1).count(",") >= 2:
        return Problem(f"{what}: a dense layer gets {shapes.group(1)}, not flat vectors",
                       _FLATTEN, ["model"])
    if chain and shapes and "MatMul" in text:
        return Problem(f"{what}: the shapes do not chain: the layer gets {chain.group(1)} values "
                       f"per image, its weights {shapes.group(2)} expect {chain.group(2)}",
                       "a weight matrix is [inputs, outputs]: its first size is the number of "
                       "neurons of the layer before", ["variables", "model"])
    if chain and shapes and "Add" in text:
        return Problem(f"{what}: a bias {shapes.group(2)} does not fit its layer of "
                       f"{chain.group(1)} neurons", "a layer's bias has one value per neuron",
                       ["variables", "model"])
    depth = re.search(r"Depth of input \((\d+)\) is not a multiple of input depth of filter "
                      r"\((\d+)\)", text)
    if depth:
        return Problem(f"{what}: the shapes do not chain: the convolution gets {depth.group(1)} "
                       f"channels, its filters expect {depth.group(2)}",
                       "a convolution's filters are [height, width, input channels, output "
                       "channels]: their input channels are the output channels of the layer "
                       "before", ["variables", "model"])
    if "singleton tf.Variables" in text:
        return Problem(f"{what}: it makes new variables at every call",
                       "make the layers (and so their variables) once, outside model(X): model "
                       "only uses them", ["variables", "model"])
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    said = next((line for line in reversed(lines) if re.match(r"\w+(Error|Exception): ", line)),
                f"{type(error).__name__}: {lines[-1] if lines else ''}")
    said = re.sub(r" for '\{\{node [^']*'", "", said)  # (TensorFlow's description of its node)
    hint = ("flattening a convolutional layer gives height x width x channels values per image "
            "(7 * 7 * 12 = 588 for [batch, 7, 7, 12]): the dense layer's weights start with that "
            "size" if "reshape" in text.lower() else "")
    return Problem(f"{what}: {said}", hint, ["variables", "model"])


_FLATTEN = ("a dense layer works on flat vectors: flatten the images first, tf.reshape(X, "
            "[-1, 784]) (after convolutions: tf.reshape(Y, [-1, height * width * channels]); "
            "Keras: layers.Flatten())")


def _line_of(error, path):
    """'line 47: Y2 = ...': where in the file at `path` the error was raised, if there."""
    path = str(Path(path).resolve())
    found = None
    if isinstance(error, SyntaxError) and error.filename and \
            str(Path(error.filename).resolve()) == path:
        found = error.lineno
    for frame in traceback.extract_tb(error.__traceback__):
        if str(Path(frame.filename).resolve()) == path:
            found = frame.lineno
    for name, number in re.findall(r'File "([^"]+)", line (\d+)', str(error)):  # tf.function's
        if str(Path(name).resolve()) == path:
            found = int(number)
    if not found:
        return ""
    code = Path(path).read_text(encoding="utf-8").splitlines()
    return f"line {found}" + (f" ({code[found - 1].strip()})" if found <= len(code) else "")


# -- what a network is, from its traced operations

# The activation functions, as TensorFlow's operations name them.
ACTIVATIONS = {"Relu": "relu", "Relu6": "relu6", "Sigmoid": "sigmoid", "Tanh": "tanh",
               "Elu": "elu", "Selu": "selu", "LeakyRelu": "leaky relu", "Softplus": "softplus"}


@dataclasses.dataclass
class Network:
    """What a model computes, read from its traced graphs (training=False and True)."""

    layers: list  # (kind, weights' shape, stride), in the order the images go through them
    vectors: list  # the shapes of its trainable vectors: biases, batch-norm offsets and scales
    variables: list  # its trainable variables
    activations: set  # "relu", "sigmoid"...
    normalises: bool  # batch norm (or another normalisation of the layers' sums)
    dropout: bool  # draws random numbers when training
    dropout_at_test: bool  # ... and at test time: dropout left on
    augments: bool  # its training batches are augmented (rotated, zoomed, shifted)
    averages: bool  # tested with weights it does not train: their moving averages (5.1)
    output: list  # the logits' shape: [None, 10]
    softmax_output: bool  # returns probabilities instead of logits

    @property
    def convolutional(self):
        return any(kind == "conv" for kind, _, _ in self.layers)

    @classmethod
    def of(cls, loaded):
        tf = plumbing.load_tensorflow()
        model = getattr(loaded.model, "python_function", loaded.model)  # (a tf.function's own)
        if not callable(model):
            raise Problem("lab.train(args, model, ...) got no model function",
                          "model(X, training=False): images X [batch, 28, 28, 1] -> logits",
                          ["model"])
        images = tf.TensorSpec([None, 28, 28, 1], tf.float32)
        try:
            traced = {training: _trace(model, images, training=training)
                      for training in (False, True)}
            model(tf.zeros([2, 28, 28, 1]), training=False)  # shapes known only when it runs
        except Exception as error:
            raise _code_problem(error, loaded.path, "model(X) fails") from None
        output = traced[False].structured_outputs
        if not isinstance(output, tf.Tensor):
            raise Problem(f"model(X) returns {type(output).__name__}, not the logits",
                          "return the logits, a tensor [batch, 10] (the scores before softmax)",
                          ["model"])
        test, train = (traced[t].graph.get_operations() for t in (False, True))
        variables = {v.ref(): v for t in (False, True) for v in traced[t].trainable_variables}
        variables = list(variables.values())
        tested = _variables_read(traced[False])
        return cls(
            layers=[layer for op in test if (layer := _layer(op))],
            vectors=sorted(v.shape.as_list() for v in variables if v.shape.rank <= 1),
            variables=variables,
            activations={ACTIVATIONS[op.type] for op in test if op.type in ACTIVATIONS},
            normalises=any(op.type == "Rsqrt" or op.type.startswith("FusedBatchNorm")
                           for op in train),
            dropout=_draws_random_numbers(train),
            dropout_at_test=_draws_random_numbers(test),
            augments=loaded.augment is not None or any(
                op.type.startswith("ImageProjectiveTransform") for op in train),
            averages=any(not tested[weights].trainable for op in test if _layer(op)
                         and (weights := _source(op.inputs[1].op).outputs[0].name) in tested),
            output=output.shape.as_list(),
            softmax_output=_source(output.op).type == "Softmax")


def _trace(function, *inputs, **options):
    """The concrete function of `function` for these inputs, traced without AutoGraph (so
    that an error points at the attendee's own line), or with it if their code needs it."""
    tf = plumbing.load_tensorflow()
    try:
        return tf.function(function, autograph=False).get_concrete_function(*inputs, **options)
    except tf.errors.OperatorNotAllowedInGraphError:  # Python's if or for on a tensor
        return tf.function(function).get_concrete_function(*inputs, **options)


def _layer(op):
    """A layer, if `op` applies one: ("dense", [784, 200], 1) or ("conv", [5, 5, 1, 4], 2)."""
    if op.type in ("MatMul", "BatchMatMulV2", "BatchMatMulV3") and _is_variable(op.inputs[1]):
        return "dense", op.inputs[1].shape.as_list(), 1
    if op.type == "Conv2D" and _is_variable(op.inputs[1]):
        return "conv", op.inputs[1].shape.as_list(), op.get_attr("strides")[1]
    return None


def _variables_read(traced):
    """{tensor name: variable} for the tensors of a traced function that read a variable."""
    captured = _captured_variables(traced)
    return {op.outputs[0].name: captured[op.inputs[0].name]
            for op in traced.graph.get_operations()
            if op.type == "ReadVariableOp" and op.inputs[0].name in captured}


def _variables_written(traced):
    """The variables a traced function assigns to (an optimizer's update: AssignSub...)."""
    captured = _captured_variables(traced)
    return [captured[op.inputs[0].name] for op in traced.graph.get_operations()
            if op.type.startswith(("Assign", "ResourceApply")) and op.inputs
            and op.inputs[0].name in captured]


def _captured_variables(traced):
    """{name of the graph's placeholder: the variable it stands for}."""
    handles = {id(v.handle): v for v in traced.variables}
    return {internal.name: handles[id(external)] for external, internal in traced.graph.captures
            if id(external) in handles}


def _is_variable(tensor):
    """Does this tensor read a variable (through Identity or Cast operations)?"""
    return _source(tensor.op).type in ("ReadVariableOp", "Placeholder")


def _source(op):
    """The operation behind Identity and Cast operations."""
    while op.type in ("Identity", "Cast") and op.inputs:
        op = op.inputs[0].op
    return op


def _draws_random_numbers(operations):
    return any("Random" in op.type or op.type.startswith("Rng") for op in operations)


def _describe(layer):
    kind, shape, stride = layer
    return f"dense {shape}" if kind == "dense" else f"conv {shape} stride {stride}"


# -- the structure


def structure(theirs, reference):
    """Compare what the two networks are, in the order an attendee builds one: what the
    model returns, its layers, their biases, activations, then what a step adds (batch
    norm, dropout...). Raises the first Problem; else returns a description."""
    yours, lesson = theirs.network, reference.network
    _check_output(yours, lesson)
    _compare_layers(yours.layers, lesson.layers)
    _compare_vectors(yours.vectors, lesson.vectors)
    if yours.activations != lesson.activations:
        raise Problem(f"activation functions: yours {_names(yours.activations)}, the lesson's "
                      f"{_names(lesson.activations)}",
                      f"apply {_names(lesson.activations)} to the weighted sums of every hidden "
                      f"layer: tf.nn.{min(lesson.activations or {'relu'})}(tf.matmul(X, W) + B)",
                      ["model"])
    _check_train_step(theirs)
    for feature in FEATURES:
        if getattr(lesson, feature.attribute) and not getattr(yours, feature.attribute):
            raise Problem(f"the lesson's network {feature.does}; yours does not", feature.how,
                          feature.parts)
        if getattr(yours, feature.attribute) and not getattr(lesson, feature.attribute):
            raise Problem(f"your network {feature.does}; the lesson's does not",
                          "this step does without it: remove it", feature.parts)
    layers = len(yours.layers)
    return (f"{layers} layer{'s' if layers > 1 else ''} "
            f"({', '.join(map(_describe, yours.layers))}); activations: "
            f"{_names(yours.activations)}; "
            + "".join(f"{feature.name}; " for feature in FEATURES
                      if getattr(yours, feature.attribute))
            + f"{len(yours.variables)} trainable variables")


def _check_output(yours, lesson):
    """The model returns logits [None, 10], the same at every test (no dropout left on)."""
    if len(yours.output) > 2:
        raise Problem(f"model(X) gives {_shape(yours.output)} for images [None, 28, 28, 1], not "
                      "logits [None, 10]: a dense layer got images, not flat vectors", _FLATTEN,
                      ["model"])
    if yours.output[-1:] != [10]:
        raise Problem(f"model(X) gives {_shape(yours.output)}, not logits [None, 10]",
                      "the last layer has 10 neurons, one per digit", ["variables", "model"])
    if yours.softmax_output and not lesson.softmax_output:
        raise Problem("model(X) returns probabilities (softmax): return the logits instead",
                      "lab's loss, tf.nn.softmax_cross_entropy_with_logits, applies softmax "
                      "itself: return tf.matmul(Y, W) + B", ["model"])
    if yours.dropout_at_test:
        raise Problem("dropout is left on at test time: model(X, training=False) draws random "
                      "numbers, so the test digits are read by a crippled network",
                      "drop neurons only when training: tf.nn.dropout(Y, rate=...) if training "
                      "else Y", ["model"])


def _compare_layers(yours, lesson):
    """The same layers, in the same order: a layer missing or extra, a shape that differs."""
    if yours == lesson:
        return
    hint = ("the sketch at the top of the task gives every layer's weights: each a tf.Variable, "
            "used in model(X) and listed in `variables`")
    if len(yours) != len(lesson):
        what = "missing" if len(yours) < len(lesson) else "extra"
        raise Problem(f"a layer is {what}: the lesson's network has {len(lesson)} "
                      f"({', '.join(map(_describe, lesson))}), yours {len(yours)} "
                      f"({', '.join(map(_describe, yours)) or 'none'})", hint,
                      ["variables", "model"])
    k = next(k for k, (a, b) in enumerate(zip(yours, lesson, strict=True)) if a != b)
    raise Problem(f"layer {k + 1} of {len(lesson)}: yours is {_describe(yours[k])}, the lesson's "
                  f"{_describe(lesson[k])}", hint, ["variables", "model"])


def _compare_vectors(yours, lesson):
    """Every bias (or batch-norm offset) of the lesson's, in yours. More are fine: Keras's
    batch norm also learns a scale that the lesson's ReLU layers do without."""
    missing = collections.Counter(map(tuple, lesson)) - collections.Counter(map(tuple, yours))
    if missing:
        shapes = ", ".join(str(list(shape)) for shape in missing.elements())
        raise Problem(f"the lesson's network has biases (or batch-norm offsets) of shape "
                      f"{shapes} that yours does not have",
                      "every layer adds a bias to its weighted sums, one value per neuron: "
                      "B = tf.Variable(tf.zeros([size])), then tf.matmul(X, W) + B",
                      ["variables", "model"])


Feature = collections.namedtuple("Feature", "attribute name does how parts")
FEATURES = [  # what a step may add to a network
    Feature("normalises", "batch norm", "normalises every layer's weighted sums (batch norm)",
            "blocks.BatchNorm(size) per layer, before the activation: "
            "tf.nn.relu(BN(tf.matmul(X, W), B, training=training)) (lesson 4.0 shows how)",
            ["variables", "model"]),
    Feature("dropout", "dropout", "drops neurons at random while training (dropout)",
            "in model(X, training): Y = tf.nn.dropout(Y, rate=DROP) if training else Y",
            ["model"]),
    Feature("averages", "tested with averaged weights",
            "is tested with the moving averages of its weights, not the weights it trains",
            "keep averages = [tf.Variable(v, trainable=False) for v in variables], move them "
            "towards the weights after every step in train_step, use them in model(X) when not "
            "training", ["variables", "model", "train_step"]),
    Feature("augments", "augmented batches", "augments its training batches (rotations, "
            "zooms, shifts)", "write augment(X) and pass it on: lab.train(args, model, "
            "train_step, optimizer, augment=augment)", ["augment", "main"]),
]


def _shape(shape):
    shape = shape.shape.as_list() if hasattr(shape, "shape") else shape
    return "[" + ", ".join("None" if n is None else str(n) for n in shape) + "]"


def _names(activations):
    return " and ".join(sorted(activations)) or "none"


# -- the training


@dataclasses.dataclass
class Trained:
    """What a short run did: the training loss at its start and end, the test accuracy, the
    learning rate at its start and end, and which variables did not learn."""

    steps: int
    loss_start: float = math.nan
    loss_end: float = math.nan
    accuracy: float = math.nan
    rate_start: float = math.nan
    rate_end: float = math.nan
    diverged: str = ""  # how the run stopped when its loss became NaN or infinite
    unchanged: list = dataclasses.field(default_factory=list)  # variables that never changed
    identical: list = dataclasses.field(default_factory=list)  # layers whose neurons are clones


_references = {}  # the lessons' runs, by (source, steps, seed, data): a second check reuses them


def train_briefly(loaded, steps):
    """Train a loaded file for `steps` steps with lab's own loop (lab.Run: the same batches
    as lab.train, the same NaN guard), then measure it on the 10,000 test images."""
    loaded.args.steps = steps
    trained = Trained(steps)
    variables = loaded.network.variables
    before = [v.numpy() for v in variables]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            run = lab.Run(loaded.args, loaded.model, loaded.train_step, loaded.optimizer, None,
                          loaded.augment, None)
        except UserError as error:  # lab's own checks of the model
            raise Problem(str(error)) from None
        except Exception as error:  # the attendee's train_step, augment...
            raise _code_problem(error, loaded.path, "training fails") from None
        trained.rate_start = run.learning_rate()
        try:
            for i in run.steps_to_measure():
                run.train_until(i)
        except UserError:  # lab's guard: the loss became NaN or infinite at step run.done
            trained.diverged = f"the loss became NaN or infinite at step {run.done}"
            return trained
        except Exception as error:
            raise _code_problem(error, loaded.path, "training fails") from None
        trained.rate_end = run.learning_rate()
        trained.accuracy = float(run.test_metrics()[0])
    losses = run.history.train["loss"]
    trained.loss_start, trained.loss_end = losses[0], float(np.mean(losses[-3:]))
    unchanged, clones = [], {}
    for v, initial in zip(variables, before, strict=True):
        now = v.numpy()
        if np.array_equal(now, initial):
            unchanged.append(v)
        elif v.shape.rank >= 2 and v.shape[-1] > 1 and \
                np.allclose(now, now[..., :1], rtol=0, atol=1e-6):  # every neuron a clone
            clones[id(v)] = (f"every value {initial.flat[0]:g}"
                             if np.all(initial == initial.flat[0]) else "equal values")
    trained.unchanged = [_name(loaded, v) for v in _in_file_order(loaded, unchanged)]
    trained.identical = [f"{_name(loaded, v)}, which started with {clones[id(v)]}"
                         for v in _in_file_order(loaded, [v for v in variables if id(v) in clones])]
    return trained


def _variable_names(namespace):
    """{id(variable): its name in the file}, in the file's order: W1, filters[0],
    BN1.moving_mean, a Keras layer's weights by their paths (dense_1/kernel)."""
    names = {}
    for key, value in namespace.items():
        if isinstance(value, (type, types.ModuleType)):  # (tf, lab, classes: not the file's)
            continue
        if hasattr(value, "numpy") and hasattr(value, "assign"):
            names.setdefault(id(value), key)
        elif isinstance(value, (list, tuple)):
            for k, v in enumerate(value):
                names.setdefault(id(v), f"{key}[{k}]")
        elif hasattr(value, "weights"):  # a Keras layer or model
            for v in value.weights:
                names.setdefault(id(getattr(v, "value", v)), getattr(v, "path", key))
        elif hasattr(value, "__dict__"):  # a BatchNorm: its moving averages
            for attr, v in vars(value).items():
                names.setdefault(id(v), f"{key}.{attr}")
    return names


def reference_run(reference, steps, seed):
    """The lesson's own short run, once per process (a notebook's second check reuses it)."""
    source = hashlib.sha256(reference.path.read_bytes()).hexdigest()
    key = (source, steps, seed, reference.args.data_dir, os.environ.get("MNIST_DATA_DIR"))
    if key not in _references:
        _references[key] = train_briefly(reference, steps)
    return _references[key]


def training(theirs, reference, steps, seed):
    """Train both briefly, with the same seed; raise the first Problem; else describe it."""
    lesson = reference_run(reference, steps, seed)
    yours = theirs.trained = train_briefly(theirs, steps)
    rates = _rates(yours, lesson)
    if yours.diverged:
        log_hint = ("" if rates else "a loss computed unstably can do it too: use "
                    "tf.nn.softmax_cross_entropy_with_logits(labels=Y_, logits=Ylogits)")
        raise Problem(f"training diverged: {yours.diverged}{rates}",
                      "lower the learning rate to the lesson's" if rates else log_hint,
                      ["optimizer", "train_step"])
    if yours.unchanged:
        some = len(yours.unchanged) > 1
        raise Problem(f"{' and '.join(yours.unchanged)} did not change in {steps} training "
                      f"steps: {'they are' if some else 'it is'} missing from the variables that "
                      "train_step updates",
                      "list every trainable variable in `variables`, the list train_step "
                      "differentiates and updates: tape.gradient(loss, variables), "
                      "optimizer.apply_gradients(zip(gradients, variables))",
                      ["variables", "train_step"])
    if yours.identical:
        raise Problem(f"the neurons of a layer are all the same after training: "
                      f"{yours.identical[0]}; every neuron of it computes, and learns, the same "
                      "thing",
                      "start the weights from small random values: "
                      "tf.Variable(tf.random.truncated_normal([...], stddev=0.1)) (biases can "
                      "start at 0, or 0.1 before a ReLU)", ["variables"])
    fall, lesson_fall = yours.loss_start - yours.loss_end, lesson.loss_start - lesson.loss_end
    if not fall >= lesson_fall / 3:
        raise Problem(f"the loss does not fall: {yours.loss_start:.2f} at the start, "
                      f"{yours.loss_end:.2f} after {steps} steps (the lesson's: "
                      f"{lesson.loss_start:.2f} to {lesson.loss_end:.2f}){rates}",
                      "use the lesson's learning rate" if rates else
                      "train_step must compute the loss from model(X, training=True) and apply "
                      "its gradients to every variable", ["optimizer", "train_step"])
    if lesson.rate_end < 0.99 * lesson.rate_start and yours.rate_end == yours.rate_start:
        raise Problem(f"your learning rate stays at {yours.rate_start:.3g}; the lesson's decays "
                      f"({lesson.rate_start:.3g} at the start, {lesson.rate_end:.3g} after "
                      f"{steps} steps)", "decay it as the lesson does: "
                      "tf.keras.optimizers.Adam(blocks.ExponentialDecay(0.003, decay_steps=2000, "
                      "floor=0.0001))", ["optimizer"])
    return (f"{steps} steps, seed {seed}: the loss fell from {yours.loss_start:.2f} to "
            f"{yours.loss_end:.2f} (the lesson's: {lesson.loss_start:.2f} to "
            f"{lesson.loss_end:.2f}), every variable learned")


def _check_train_step(theirs):
    """What train_step(X, Y_) does, from its traced graph: it updates every trainable variable
    of the model (the classic mistake: a new layer's weights left out of `variables`), and
    its loss is not -sum(Y_ * log(softmax(Ylogits))), whose log gives NaN as soon as a
    probability rounds to 0."""
    tf = plumbing.load_tensorflow()
    optimizer, variables = theirs.optimizer, theirs.network.variables
    if hasattr(optimizer, "built") and not optimizer.built:
        optimizer.build(variables)  # (as lab.Run does: made now, not while train_step is traced)
    step = getattr(theirs.train_step, "python_function", theirs.train_step)
    try:
        traced = _trace(step, tf.TensorSpec([None, 28, 28, 1], tf.float32),
                        tf.TensorSpec([None, 10], tf.float32))
    except Exception as error:
        raise _code_problem(error, theirs.path, "train_step(X, Y_) fails") from None
    updated = {id(v) for v in _variables_written(traced)}
    left_out = [_name(theirs, v) for v in _in_file_order(theirs, variables)
                if id(v) not in updated]
    if left_out:
        raise Problem(f"train_step never updates {' and '.join(left_out)}: "
                      f"{'they are' if len(left_out) > 1 else 'it is'} missing from the "
                      "variables it differentiates",
                      "list every trainable variable in `variables`, the list train_step "
                      "differentiates and updates: tape.gradient(loss, variables), "
                      "optimizer.apply_gradients(zip(gradients, variables))",
                      ["variables", "train_step"])
    if any(op.type == "Log" and _source(op.inputs[0].op).type == "Softmax"
           for op in traced.graph.get_operations()):
        raise Problem("the loss takes the log of softmax's probabilities: it becomes NaN as soon "
                      "as one rounds to 0, and training stops",
                      "compute it in one stable step: tf.reduce_mean("
                      "tf.nn.softmax_cross_entropy_with_logits(labels=Y_, logits=Ylogits))",
                      ["train_step"])


def _in_file_order(loaded, variables):
    """The variables in the order the file makes them (those it does not name: last)."""
    order = {key: k for k, key in enumerate(_variable_names(loaded.namespace))}
    return sorted(variables, key=lambda v: order.get(id(v), len(order)))


def _name(loaded, variable):
    """'W3 [100, 60]': a variable by its name in the file, and its shape."""
    name = _variable_names(loaded.namespace).get(id(variable), variable.name.split(":")[0])
    return f"{name} {_shape(variable)}"


def _rates(yours, lesson):
    """', with a learning rate of 0.3, 100 times the lesson's 0.003', when far from it."""
    if not (yours.rate_start > 0 and lesson.rate_start > 0):
        return ""
    ratio = yours.rate_start / lesson.rate_start
    if ratio >= 3:
        return (f", with a learning rate of {yours.rate_start:.3g}, far too high: {ratio:.0f} "
                f"times the lesson's {lesson.rate_start:.3g}")
    if ratio <= 1 / 3:
        return (f", with a learning rate of {yours.rate_start:.3g}, too low: 1/{1 / ratio:.0f} of "
                f"the lesson's {lesson.rate_start:.3g}")
    return ""


# -- the accuracy


def accuracy(theirs, reference, steps, seed):
    """After the same short run, the test accuracy against the lesson's: an error at most
    twice the lesson's (short runs from other initial weights differ that much)."""
    yours, lesson = theirs.trained, reference_run(reference, steps, seed)
    allowed = max(0.02, 1 - lesson.accuracy)
    said = (f"{yours.accuracy:.4f} of the 10,000 test digits read right after {steps} steps, "
            f"the lesson's {lesson.accuracy:.4f} after the same run")
    if yours.accuracy < lesson.accuracy - allowed:
        raise Problem(said, "your network learns more slowly than the lesson's: compare its "
                      f"initial weights and learning rate with the lesson's{_rates(yours, lesson)}",
                      ["variables", "optimizer"])
    return said


# -- the solution's lines


def solution_lines(lesson, parts):
    """The lesson's lines for `parts` ("variables", "model", "optimizer", "train_step",
    "augment", "main"), with their numbers, each part with the comments just above it."""
    source = lesson.read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source)
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    spans = []
    for node in tree.body:
        target = node.targets[0] if isinstance(node, ast.Assign) else None
        name = getattr(target, "id", None) or getattr(getattr(target, "elts", [None])[0], "id", "")
        if isinstance(node, ast.Assign) and name not in ("args", "optimizer"):
            part = "variables"
        elif isinstance(node, ast.Assign):
            part = name
        elif isinstance(node, ast.FunctionDef) and node.name in ("model", "train_step", "augment"):
            part = node.name
        elif isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            part = "main"
        else:
            continue
        if part in parts:
            spans.append(_span(node, lines))
            if part == "model":  # and the functions it calls (lessons 4.x: layers)
                called = {n.func.id for n in ast.walk(node) if isinstance(n, ast.Call)
                          and isinstance(n.func, ast.Name) and n.func.id in functions}
                spans += [_span(functions[f], lines) for f in sorted(called)]
    shown = sorted({n for first, last in spans for n in range(first, last + 1)})
    out = [f"the lesson's lines ({lesson.name}):"]
    for k, n in enumerate(shown):
        if k and n != shown[k - 1] + 1:
            out.append("   ...")
        out.append(f"{n:>5}  {lines[n - 1]}".rstrip())
    return "\n".join(out)


def _span(node, lines):
    """(first, last) line of a statement, with its decorators and the comments above it."""
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    while first > 1 and lines[first - 2].strip().startswith("#"):
        first -= 1
    return first, node.end_lineno


# ---------------------------------------------------------------------- the command line


def main(argv=None):
    """python lab.py exercise STEP [--folder DIR] | python lab.py check FILE [--step STEP]
    [--solution]: one line for a problem the user can fix, exit status 0 when a check passes."""
    parser = plumbing.ArgumentParser(prog="lab.py", description="The lab's exercises: make the "
                                     "starting file of a step, check a finished one.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{exercise,check}")
    make_parser = commands.add_parser(
        "exercise", help="make the starting file of a step: my_mnist_STEP.py",
        description="Make my_mnist_STEP.py: the code of the lesson before STEP, with the step's "
                    "task at its top. An existing file is kept. Prints its path.")
    make_parser.add_argument("step", metavar="STEP", help=f"one of {', '.join(steps())}")
    make_parser.add_argument("--folder", metavar="DIR", help="where (default: the current folder)")
    check_parser = commands.add_parser(
        "check", help="check an exercise file against its lesson",
        description="Check an exercise file against its step's lesson: structure, a short "
                    "training run, accuracy. Exit status 0 when it passes.")
    check_parser.add_argument("file", metavar="FILE", help="the file, e.g. my_mnist_2.0.py")
    check_parser.add_argument("--step", metavar="STEP", help="the step (default: from the "
                              "file's name, my_mnist_STEP.py)")
    check_parser.add_argument("--solution", action="store_true",
                              help="also show the lesson's lines for what to fix")
    check_parser.add_argument("--steps", type=lab._count, metavar="N",
                              help=f"the short training run's steps (default: {DENSE_STEPS}, or "
                                   f"{CONVOLUTIONAL_STEPS} for a convolutional network)")
    args = parser.parse_args(argv)
    try:
        if args.command == "exercise":
            make(args.step, args.folder)
        else:
            verdict = check(args.file, args.step, solution=args.solution, steps=args.steps)
            raise SystemExit(0 if verdict.passed else 1)
    except UserError as error:
        raise SystemExit(f"error: {error}") from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
