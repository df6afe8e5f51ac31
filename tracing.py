"""tracing.py: what a lesson's model is, read from the lesson and its traced graph.

The training loop (lab.py) and the exercises' check (checking.py) both need to know a few
things about a model they did not write: its variables and their names in the lesson's
code (W1, BN1.moving_mean, a Keras layer's dense_1/kernel), and whether it draws random
numbers when training (dropout). Tracing the model with tf.function gives its graph of
operations, which says it.
"""

import sys
import types

import plumbing


def images_spec():
    """What a lesson's model takes: a batch of images [batch, 28, 28, 1]."""
    tf = plumbing.load_tensorflow()
    return tf.TensorSpec([None, 28, 28, 1], tf.float32)


def draws_random_numbers(operations):
    """Do these graph operations draw random numbers (dropout, augmentation)?"""
    return any("Random" in op.type or op.type.startswith("Rng") for op in operations)


def draws_from_the_global_seed(operations):
    """Do they draw random numbers from TensorFlow's global seed (tf.random.uniform,
    TensorFlow's tf.nn.dropout)? Under XLA those come from a counter of the process: the
    same seed gives other numbers on a second run in one notebook kernel. Stateless random
    operations and a tf.random.Generator's (its state in a variable) repeat under XLA."""
    return any(("Random" in op.type or op.type in ("TruncatedNormal", "Multinomial"))
               and not op.type.startswith(("Stateless", "Stateful", "Rng"))
               for op in operations)


def lesson_globals():
    """The running lesson's variables (its module's globals: the lesson runs as __main__)."""
    main = sys.modules.get("__main__")
    return vars(main) if main else {}


def variable_names(namespace):
    """{id(variable): its name in the lesson's code}, in the code's order: W1, filters[0]
    (in a list), BN1.moving_mean (in an object), a Keras layer's weights by their paths
    (dense_1/kernel)."""
    names = {}
    for key, value in namespace.items():
        if isinstance(value, (type, types.ModuleType)):  # (tf, lab, classes: not the lesson's)
            continue
        if _is_variable(value):
            names.setdefault(id(value), key)
        elif isinstance(value, (list, tuple)):
            for k, v in enumerate(value):
                if _is_variable(v):
                    names.setdefault(id(v), f"{key}[{k}]")
        elif hasattr(value, "weights") and not callable(getattr(value, "weights")):  # Keras
            for v in value.weights:
                names.setdefault(id(getattr(v, "value", v)), getattr(v, "path", key))
        elif hasattr(value, "__dict__"):  # a BatchNorm: its moving averages
            for attr, v in vars(value).items():
                if _is_variable(v):
                    names.setdefault(id(v), f"{key}.{attr}")
    return names


def name_of(variable, names):
    """A variable's name in the lesson (see variable_names), else TensorFlow's."""
    return names.get(id(variable), variable.name.split(":")[0])


def _is_variable(value):
    return hasattr(value, "numpy") and hasattr(value, "assign")


def lesson_variables(traced):
    """The lesson's variables, from a traced model's. Under a tf.distribute strategy
    (lesson 6.0) a trace holds each mirrored variable's local copy: the mirrored variables
    themselves (for the optimizer, the checkpoints) come from the lesson's globals, in the
    order the lesson made them, the same in every worker."""
    tf = plumbing.load_tensorflow()
    mirrored = {}  # a copy's id -> its mirrored variable, in the lesson's order
    for value in lesson_globals().values():
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, tf.Variable) and hasattr(v, "values"):  # distributed: its copies
                mirrored.update({id(copy): v for copy in v.values if id(copy) not in mirrored})
    if not mirrored:
        return list(traced)
    wanted, ordered = {id(v) for v in traced}, {}
    for copy_id, v in mirrored.items():  # (the lesson's order: the same in every run and worker)
        if copy_id in wanted:
            ordered.setdefault(id(v), v)
    return list(ordered.values()) + [v for v in traced if id(v) not in mirrored]
