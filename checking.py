"""checking.py: the check of an exercise: how close an attendee's file is to its lesson.

    python exercises.py check my_mnist_2.0.py               # exit status 0 when it passes
    python exercises.py check my_mnist_2.0.py --solution    # + the lesson's lines to fix
    exercises.check("my_mnist_2.0.py")                      # in a notebook

The check judges what the network does, not how its code looks: it runs the file up to
its lab.train(...) call (lab.handed_over), traces the model (its layers, their variables'
shapes, its activation functions, dropout, batch norm), then trains it briefly with the
seed the lesson gets, and compares the two runs. Other names, Keras layers or another
order pass. Each classic mistake gets its own message and a hint in the attendee's own
vocabulary (TensorFlow's operations, or Keras layers). exercises.py makes the exercises.
"""

import ast
import collections
import contextlib
import dataclasses
import hashlib
import io
import math
import os
import re
import runpy
import sys
import tempfile
import textwrap
import traceback
from pathlib import Path

import numpy as np

import lab
import plumbing
import tracing
from plumbing import UserError

# The check's short run: long enough for lesson 2.0's sigmoids to take off, short enough to
# check a convolutional network (ten times the arithmetic per image) within a minute on 2 cores.
DENSE_STEPS, CONVOLUTIONAL_STEPS = 500, 60
SEED = 0  # the lessons' default: the attendee's run and the lesson's get the same batches


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
    lesson: str
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


def check(path, number, *, solution=False, seed=SEED, steps=None, echo=print, asked=""):
    """Check the attendee's file at `path` against lesson `number` ("2.0"): structure, then
    a short training run of each with the same seed, then their accuracy. Prints the report
    as it goes (echo); returns the Verdict.

    solution: also show the lesson's lines for what to fix (else `asked`: how to ask for
    them). steps: the short run's length (default: DENSE_STEPS, or CONVOLUTIONAL_STEPS for a
    convolutional lesson). exercises.check finds the lesson from the file's name.
    """
    path, lesson = Path(path), plumbing.lessons()[number]
    verdict = Verdict(path, number)

    def say(text, indent=0):
        verdict.lines.append(_wrap(text, indent))
        echo(verdict.lines[-1])

    say(f"checking {path.name} against lesson {number} ({lesson.name})")
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
                say(verdict.solution if solution else f"the lesson's lines for this: {asked}")
            return verdict
    verdict.passed = True
    say(f"done: {path.name} is lesson {number}'s network, and it learns as the lesson does. Now "
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
    lab.train(...) line), lab.train keeping its arguments instead of training
    (lab.handed_over). Seeded as the lessons are (Keras layers' initial weights too);
    outputs go to `scratch`."""
    tf = plumbing.load_tensorflow()
    argv = [str(path), "--no-vis", "--seed", str(seed), "--history", f"{scratch}/run.json",
            "--save-model", f"{scratch}/model", "--xla", "off"]  # (in a short run, XLA's
    # compile time outweighs its gain: measured 4.6 s instead of 8.7 for lesson 4.0)
    tf.keras.utils.set_random_seed(seed)  # Python's, NumPy's and TensorFlow's generators
    saved = sys.argv
    sys.argv = argv
    try:
        with lab.handed_over() as calls:
            namespace = runpy.run_path(str(path), run_name="__main__")
    except SystemExit as stop:
        raise Problem(f"{Path(path).name} stopped: {stop.code}") from None
    except Exception as error:  # the attendee's code: a typo, a shape, a name
        raise _code_problem(error, path, f"{Path(path).name} stops") from None
    finally:
        sys.argv = saved
    if not calls:
        raise Problem(f"{Path(path).name} never calls lab.train(args, model, train_step, "
                      "optimizer)", "end it as the lessons do: if __name__ == \"__main__\": "
                      "lab.train(args, model, train_step, optimizer)", ["main"])
    given = calls[-1]
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
    reshape = re.search(r"Input to reshape is a tensor with (\d+) values, but the requested "
                        r"shape requires a multiple of (\d+)", text)
    if reshape:  # (model(X) runs on one image: its values are one image's)
        return Problem(f"{what}: a reshape gets {reshape.group(1)} values per image, its shape "
                       f"asks for rows of {reshape.group(2)}", _RESHAPE, ["variables", "model"])
    rows = re.search(r"logits_size=\[(\d+),\d+\] labels_size=\[(\d+),", text)
    if rows and int(rows.group(1)) > int(rows.group(2)):
        return Problem(f"{what}: the model gives {int(rows.group(1)) // int(rows.group(2))} rows "
                       "of logits per image: a reshape makes rows too short", _RESHAPE,
                       ["variables", "model"])
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    said = next((line for line in reversed(lines) if re.match(r"\w+(Error|Exception): ", line)),
                f"{type(error).__name__}: {lines[-1] if lines else ''}")
    said = re.sub(r" for '\{\{node [^']*'", "", said)  # (TensorFlow's description of its node)
    said = re.sub(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\]( name: \S*)?", "", said)
    return Problem(f"{what}: {said}", _RESHAPE if "reshape" in text.lower() else "",
                   ["variables", "model"])


_FLATTEN = ("a dense layer works on flat vectors: flatten the images first, tf.reshape(X, "
            "[-1, 784]) (after convolutions: tf.reshape(Y, [-1, height * width * channels]))")
_RESHAPE = ("flattening a convolutional layer gives height x width x channels values per image "
            "(7 * 7 * 12 = 588 for [batch, 7, 7, 12]): reshape to [-1, that], and the dense "
            "layer's weights start with that size")
_KERAS_FLATTEN = "a Dense layer works on flat vectors: keras.layers.Flatten() before the first one"


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
    keras: bool = False  # made of Keras layers: the hints say Keras' words

    def say(self, tensorflow, keras):
        """A hint in the attendee's own words: TensorFlow's operations, or Keras layers."""
        return keras if self.keras else tensorflow

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
            model(tf.zeros([1, 28, 28, 1]), training=False)  # shapes known only when it runs
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
            dropout=tracing.draws_random_numbers(train),
            dropout_at_test=tracing.draws_random_numbers(test),
            augments=loaded.augment is not None or any(
                op.type.startswith("ImageProjectiveTransform") for op in train),
            averages=any(not tested[weights].trainable for op in test if _layer(op)
                         and (weights := _source(op.inputs[1].op).outputs[0].name) in tested),
            output=output.shape.as_list(),
            softmax_output=_source(output.op).type == "Softmax",
            keras=any(type(v).__module__.startswith("keras") for v in loaded.namespace.values()))


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


def _describe(layer):
    kind, shape, stride = layer
    return f"dense {shape}" if kind == "dense" else f"conv {shape} stride {stride}"


# -- the structure


def structure(theirs, reference):
    """Compare what the two networks are, in the order an attendee builds one: what the
    model returns, its layers, what a lesson adds (batch norm, dropout...), their biases,
    activations. Raises the first Problem; else returns a description."""
    yours, lesson = theirs.network, reference.network
    _check_output(yours, lesson)
    _compare_layers(yours, lesson.layers)
    for feature in FEATURES:  # (before the biases: batch norm brings offsets and scales)
        if getattr(lesson, feature.attribute) and not getattr(yours, feature.attribute):
            raise Problem(f"the lesson's network {feature.does}; yours does not",
                          yours.say(feature.how, feature.keras or feature.how), feature.parts)
        if getattr(yours, feature.attribute) and not getattr(lesson, feature.attribute):
            raise Problem(f"your network {feature.does}; the lesson's does not",
                          "this lesson does without it: remove it", feature.parts)
    _compare_vectors(yours.vectors, lesson.vectors)
    if yours.activations != lesson.activations:
        raise Problem(f"activation functions: yours {_names(yours.activations)}, the lesson's "
                      f"{_names(lesson.activations)}",
                      f"apply {_names(lesson.activations)} to the weighted sums of every hidden "
                      "layer: " + yours.say(
                          f"tf.nn.{min(lesson.activations or {'relu'})}(tf.matmul(X, W) + B)",
                          f'activation="{min(lesson.activations or {"relu"})}" in each hidden '
                          "layer"), ["model"])
    _check_train_step(theirs)
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
                      "logits [None, 10]: a dense layer got images, not flat vectors",
                      yours.say(_FLATTEN, _KERAS_FLATTEN), ["model"])
    if yours.output[-1:] != [10]:
        raise Problem(f"model(X) gives {_shape(yours.output)}, not logits [None, 10]",
                      "the last layer has 10 neurons, one per digit", ["variables", "model"])
    if yours.softmax_output and not lesson.softmax_output:
        raise Problem("model(X) returns probabilities (softmax): return the logits instead",
                      "lab's loss, tf.nn.softmax_cross_entropy_with_logits, applies softmax "
                      "itself: " + yours.say("return tf.matmul(Y, W) + B", "the last layer "
                                             'without it, keras.layers.Dense(10), not Dense(10, '
                                             'activation="softmax")'), ["model"])
    if yours.dropout_at_test:
        raise Problem("dropout is left on at test time: model(X, training=False) draws random "
                      "numbers, so the test digits are read by a crippled network",
                      yours.say("drop neurons only when training: tf.nn.dropout(Y, rate=...) "
                                "if training else Y", "pass training on: network(X, "
                                "training=training); keras.layers.Dropout drops only when "
                                "training"), ["model"])


def _compare_layers(network, lesson):
    """The same layers, in the same order: a layer missing or extra, a shape that differs."""
    yours = network.layers
    if yours == lesson:
        return
    hint = network.say("the sketch at the top of the task gives every layer's weights: each a "
                       "tf.Variable, used in model(X) and listed in `variables`",
                       "the sketch at the top of the task gives every layer: a keras.layers."
                       "Dense(neurons), or Conv2D(filters, kernel_size, strides=..., "
                       'padding="same")')
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


Feature = collections.namedtuple("Feature", "attribute name does how parts keras",
                                 defaults=[None])
FEATURES = [  # what a lesson may add to a network
    Feature("normalises", "batch norm", "normalises every layer's weighted sums (batch norm)",
            "blocks.BatchNorm(size) per layer, before the activation: "
            "tf.nn.relu(BN(tf.matmul(X, W), B, training=training)) (lesson 4.0 shows how)",
            ["variables", "model"], "keras.layers.BatchNormalization() after each layer's "
            "weighted sums, before its activation (Dense(..., use_bias=False), then it)"),
    Feature("dropout", "dropout", "drops neurons at random while training (dropout)",
            "in model(X, training): Y = tf.nn.dropout(Y, rate=DROP) if training else Y",
            ["model"], "keras.layers.Dropout(rate) after the layer (it drops only when "
            "training=True)"),
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
    """Train a loaded file for `steps` steps with lab's own loop (lab.Training: the same
    batches as lab.train, the same NaN guard, the same check of variables that do not
    learn), then measure it on the 10,000 test images."""
    loaded.args.steps = steps
    trained = Trained(steps)
    variables = loaded.network.variables
    before = [v.numpy() for v in variables]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            run = lab.Training(loaded.args, loaded.model, loaded.train_step, loaded.optimizer,
                               None, loaded.augment, None)
        except UserError as error:  # lab's own checks of the model
            raise Problem(str(error)) from None
        except Exception as error:  # the attendee's train_step, augment...
            raise _code_problem(error, loaded.path, "training fails") from None
        trained.rate_start = run.learning_rate()
        try:
            for step in run.steps_to_measure():
                run.train_until(step)
                if run.not_learning:  # a variable missing from train_step's: said at once
                    trained.unchanged = [_name(loaded, v)
                                         for v in _in_file_order(loaded, run.not_learning)]
                    return trained
        except UserError:  # lab's guard: the loss became NaN or infinite at step run.done
            trained.diverged = f"the loss became NaN or infinite at step {run.done}"
            return trained
        except Exception as error:
            raise _code_problem(error, loaded.path, "training fails") from None
        trained.rate_end = run.learning_rate()
        trained.accuracy = float(run.test_metrics()[0])
    losses = run.history.train["loss"]
    trained.loss_start, trained.loss_end = losses[0], float(np.mean(losses[-3:]))
    clones = {}
    for v, initial in zip(variables, before, strict=True):
        now = v.numpy()
        if v.shape.rank >= 2 and v.shape[-1] > 1 and \
                np.allclose(now, now[..., :1], rtol=0, atol=1e-6):  # every neuron a clone
            clones[id(v)] = (f"every value {initial.flat[0]:g}"
                             if np.all(initial == initial.flat[0]) else "equal values")
    trained.identical = [f"{_name(loaded, v)}, which started with {clones[id(v)]}"
                         for v in _in_file_order(loaded, [v for v in variables if id(v) in clones])]
    return trained


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
        raise Problem(f"{' and '.join(yours.unchanged)} did not change in the first "
                      f"{lab.MEASURE_EVERY} training steps: {'they are' if some else 'it is'} "
                      "missing from the variables that train_step updates",
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
    """What train_step(X, Y_) computes, from its traced graph: its loss is not
    -sum(Y_ * log(softmax(Ylogits))), whose log gives NaN as soon as a probability rounds
    to 0. (Variables it leaves out are found by lab's loop: they do not learn.)"""
    tf = plumbing.load_tensorflow()
    optimizer, variables = theirs.optimizer, theirs.network.variables
    if hasattr(optimizer, "built") and not optimizer.built:
        optimizer.build(variables)  # (as lab.Training does: now, not while train_step is traced)
    step = getattr(theirs.train_step, "python_function", theirs.train_step)
    try:
        traced = _trace(step, tf.TensorSpec([None, 28, 28, 1], tf.float32),
                        tf.TensorSpec([None, 10], tf.float32))
    except Exception as error:
        raise _code_problem(error, theirs.path, "train_step(X, Y_) fails") from None
    if any(op.type == "Log" and _source(op.inputs[0].op).type == "Softmax"
           for op in traced.graph.get_operations()):
        raise Problem("the loss takes the log of softmax's probabilities: it becomes NaN as soon "
                      "as one rounds to 0, and training stops",
                      "compute it in one stable step: tf.reduce_mean("
                      "tf.nn.softmax_cross_entropy_with_logits(labels=Y_, logits=Ylogits))",
                      ["train_step"])


def _in_file_order(loaded, variables):
    """The variables in the order the file makes them (those it does not name: last)."""
    order = {key: k for k, key in enumerate(tracing.variable_names(loaded.namespace))}
    return sorted(variables, key=lambda v: order.get(id(v), len(order)))


def _name(loaded, variable):
    """'W3 [100, 60]': a variable by its name in the file, and its shape."""
    names = tracing.variable_names(loaded.namespace)
    return f"{tracing.name_of(variable, names)} {_shape(variable)}"


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


