"""savedmodel.py: a lesson's trained network as a SavedModel: saved, found, loaded.

Every run saves its network (models/<lesson>/) as a TensorFlow SavedModel, which loads
without the lab's code. It has two signatures, both taking `images`, float32 [N, 28, 28]
in [0, 1] (the amount of ink, as in MNIST):

- serving_default -> probabilities [N, 10] and the predicted digits [N] (predict.py);
- explain -> the probabilities; `attribution` [N, 28, 28], which pixels made the answer
  (integrated gradients, below); `filters`, the first layer's weights (empty if no layer
  reads the image directly); and one output per layer the lesson named with
  lab.name_layers(Y1=Y1, ...): "layer_1_Y1", "layer_2_Y2"... in order (explain.py).

A SavedModel is a program, not only numbers: load only models you trained or trust.
"""

from pathlib import Path

import numpy as np

import plumbing
from plumbing import MODELS, UserError

SIZE = 28  # MNIST's digits: 28x28 pixels
STEPS = 32  # integrated gradients: points between the black image and the digit
LAYER_PREFIX = "layer_"  # explain's outputs "layer_1_Y1", "layer_2_Y2"... in order


# ---------------------------------------------------------------- saving


_naming = []  # while the explain signature is traced: the layers the model names


def name_layers(layers):
    """Keep the named layer outputs if the explain signature is being traced (they
    become its outputs); at any other time (training, testing) do nothing."""
    if _naming:
        _naming[-1].update(layers)


def save(model, variables, path, filters=None):
    """Save `model` (images [N, 28, 28, 1] -> logits) with its `variables` as a SavedModel
    at `path`, with both signatures; filters: the first layer's weights (or None). The
    folder at `path` is always a complete model (plumbing.replace_folder)."""
    tf = plumbing.load_tensorflow()
    images = tf.TensorSpec([None, SIZE, SIZE], tf.float32, name="images")
    module = tf.Module()
    module.variables_to_save = list(variables)  # what the saved functions use

    @tf.function(input_signature=[images])
    def serve(images):
        Ylogits = model(images[..., tf.newaxis], training=False)
        return {"probabilities": tf.nn.softmax(Ylogits), "digits": tf.argmax(Ylogits, axis=1)}

    @tf.function(input_signature=[images])
    def explain(images):
        X = images[..., tf.newaxis]
        _naming.append({})
        try:
            Ylogits = model(X, training=False)
        finally:
            layers = _naming.pop()
        probabilities = tf.nn.softmax(Ylogits)
        answers = tf.argmax(probabilities, axis=1)
        outputs = {"probabilities": probabilities,
                   "attribution": _integrated_gradients(tf, model, X, answers)[..., 0],
                   "filters": tf.identity(filters) if filters is not None else tf.zeros([0])}
        for k, (name, Y) in enumerate(layers.items(), start=1):
            outputs[f"{LAYER_PREFIX}{k}_{name}"] = Y
        return outputs

    module.serve, module.explain = serve, explain
    signatures = {"serving_default": serve, "explain": explain}
    plumbing.replace_folder(path, lambda folder: tf.saved_model.save(module, str(folder),
                                                                     signatures=signatures))


def _integrated_gradients(tf, model, X, answers):
    """Each pixel's share of the answer's probability (Sundararajan et al., 2017): the
    gradient of that probability, averaged over STEPS images on the way from black (no
    ink) to the digit, times the ink. Their sum is (nearly) the answer's probability
    minus the black image's. The plain gradient would say where NEW ink would change the
    answer, mostly off the digit."""
    n = tf.shape(X)[0]
    alphas = (tf.range(STEPS, dtype=tf.float32) + 0.5) / STEPS  # the midpoints of STEPS intervals
    path = alphas[:, None, None, None, None] * X[None]  # [STEPS, N, 28, 28, 1]
    path = tf.reshape(path, [-1, SIZE, SIZE, 1])
    wanted = tf.tile(answers, [STEPS])
    with tf.GradientTape() as tape:
        tape.watch(path)
        probabilities = tf.nn.softmax(model(path, training=False))
        answer = tf.gather(probabilities, wanted, axis=1, batch_dims=1)
    gradients = tf.reshape(tape.gradient(answer, path), [STEPS, n, SIZE, SIZE, 1])
    return X * tf.reduce_mean(gradients, axis=0)


# ---------------------------------------------------------------- finding and loading


def check_folder(folder):
    """Fail fast, before TensorFlow loads, when `folder` cannot be a SavedModel."""
    folder = Path(folder)
    if not folder.exists():
        raise UserError(f"model {folder}: no such folder")
    if not folder.is_dir():
        raise UserError(f"model {folder}: is a file; a model is a folder "
                        "(e.g. models/mnist_3.0_convolutional)")
    if not (folder / "saved_model.pb").is_file():
        inside = sorted(p.name for p in _model_folders(folder))
        hint = f": it holds models, pass one of them, e.g. {folder / inside[0]}" if inside else ""
        raise UserError(f"model {folder}: not a saved model (no saved_model.pb in it){hint}")


def latest():
    """The most recently saved model in the lab's models/ folder. Raises UserError."""
    found = _model_folders(MODELS)
    if not found:
        raise UserError(f"no trained model in {MODELS}: train one first "
                        "(e.g. python mnist_3.0_convolutional.py) or pass --model DIR")
    return max(found, key=lambda p: (p / "saved_model.pb").stat().st_mtime)


def _model_folders(folder):
    """The SavedModels directly inside `folder` (hidden ones, being written, left out)."""
    try:
        return [p for p in Path(folder).iterdir()
                if not p.name.startswith(".") and (p / "saved_model.pb").is_file()]
    except OSError:
        return []


def load(folder=None):
    """Load a network saved by the lab (default: the latest one) as a Model. Only
    TensorFlow and the folder are needed, not the lessons' code. Raises UserError."""
    folder = folder or latest()
    check_folder(folder)
    try:
        tf = plumbing.load_tensorflow()
    except ImportError as error:
        raise UserError(f"cannot import TensorFlow ({error}): "
                        "pip install -r requirements.txt") from None
    problem = None
    with plumbing.quiet_stderr():  # a damaged folder makes TensorFlow's C++ core complain at length
        try:
            saved = tf.saved_model.load(str(folder))
        except Exception as error:  # a damaged or foreign folder: TensorFlow says why
            problem = (str(error).strip().splitlines()[0] if str(error).strip()
                       else type(error).__name__)
    if problem:
        raise UserError(f"model {folder}: cannot load it ({problem})")
    serve = saved.signatures.get("serving_default")
    if serve is None:
        raise UserError(f"model {folder}: not a digit model saved by the lab (it has no "
                        "serving_default signature)")
    if not _is_digit_signature(serve, tf):
        raise UserError(f"model {folder}: not a digit model saved by the lab (its serving_default "
                        "signature must take images [N, 28, 28] and return probabilities [N, 10])")
    return Model(folder, saved)


class Model:
    """A network saved by the lab: model(images) -> probabilities [N, 10];
    model.explain(images) -> what each layer computed (the explain signature's outputs)."""

    def __init__(self, folder, saved):
        self.folder, self.saved = Path(folder), saved  # (saved keeps the weights alive)
        self.tf = plumbing.load_tensorflow()

    @property
    def explains(self):
        """Was it saved with the explain signature (by this lab, not an older one)?"""
        return "explain" in self.saved.signatures

    def _images(self, images):
        return self.tf.constant(np.asarray(images, np.float32).reshape(-1, SIZE, SIZE))

    def __call__(self, images):
        return self.saved.signatures["serving_default"](
            images=self._images(images))["probabilities"].numpy()

    def explain(self, images):
        """The outputs of the model's explain signature, as numpy arrays. Raises UserError
        for a model saved before the lab could explain its models."""
        if not self.explains:
            raise UserError(f"model {self.folder}: saved by an older version of the lab, it cannot "
                            "be explained: run its lesson again to save it anew (with --save-model "
                            "to choose the folder)")
        signature = self.saved.signatures["explain"]
        return {key: value.numpy() for key, value in signature(images=self._images(images)).items()}


def _is_digit_signature(serve, tf):
    _, inputs = serve.structured_input_signature
    outputs = serve.structured_outputs
    images = inputs.get("images")
    probabilities = outputs.get("probabilities") if isinstance(outputs, dict) else None
    return (set(inputs) == {"images"} and images.dtype == tf.float32
            and images.shape.is_compatible_with([None, SIZE, SIZE])
            and probabilities is not None and probabilities.shape.is_compatible_with([None, 10]))
