"""Helpers that several test files share (their fixtures are in conftest.py).

A made-up training loop feeding a dashboard, and the same in a child process; a picture
that must not be blank; a finished run's history made by hand; a small Keras model; a
lesson's namespace without training it; predict.py on the command line.
"""
import inspect
import math
import re
import runpy
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

import pictures
from conftest import ROOT, child_env
from history import History


# ------------------------------------- the dashboard fed by a made-up training


def fake_digits(labels, seed=0):
    """28 x 28 white-on-black images that look like digits: the module's own font, enlarged."""
    rng = np.random.default_rng(seed)
    big = pictures.GLYPHS.repeat(2, axis=1).repeat(2, axis=2).astype(np.float32)  # 20 x 12
    images = np.zeros((len(labels), 28, 28), np.float32)
    for k, digit in enumerate(labels):
        y, x = rng.integers(2, 7), rng.integers(6, 10)
        images[k, y:y + 20, x:x + 12] = big[digit]
    return images


def fake_training(dashboard, steps=300, *, on_measure=None, slow=0.0, last_train=None,
                  last_test=None):
    """The lab's loop (lab.py) feeding a dashboard made-up measurements that improve with
    the step: the training batch every 20 steps, the test digits every 100 (and at every
    measurement of the first 200) and at the last step, with their digits and the values
    of panels 4 and 5. last_train (images, labels, predictions, indices) and last_test
    (images, labels, predictions): the digits of the last step, instead of made-up ones.
    on_measure(step) runs after each measurement (it may raise KeyboardInterrupt)."""
    rng = np.random.default_rng(1)
    test_labels = rng.integers(0, 10, 2000)
    test_images = fake_digits(test_labels)
    for i in [*range(0, steps, 20), steps]:
        time.sleep(slow)
        accuracy = 0.97 - 0.87 * math.exp(-i / 60)
        loss = 2.3 * math.exp(-i / 60) + 0.08
        labels = rng.integers(0, 10, 100)
        predictions = np.where(rng.random(100) < accuracy, labels, (labels + 1) % 10)
        images, labels, predictions, indices = (
            last_train if i == steps and last_train else
            (fake_digits(labels, seed=i), labels, predictions, None))
        dashboard.train(i, np.mean(predictions == labels), loss * rng.uniform(0.7, 1.3), 0.003,
                        images=images, labels=labels, predictions=predictions, indices=indices)
        if i % 100 == 0 or i == steps or i < 200:
            predictions = np.where(rng.random(2000) < accuracy, test_labels, (test_labels + 3) % 10)
            images, labels = test_images, test_labels
            if i == steps and last_test:
                images, labels, predictions = last_test
            dashboard.test(i, np.mean(predictions == labels), loss, images=images, labels=labels,
                           predictions=predictions,
                           distributions=[rng.normal(0, 0.1 + i / 3000, 20000),
                                   rng.normal(0.1, 0.02, 300)])
        if on_measure:
            on_measure(i)


def child_code(code):
    """Python for a child process: fake_digits and fake_training (not this file, which
    would load pytest and, through conftest, TensorFlow), then code."""
    helpers = "\n\n".join(inspect.getsource(function) for function in (fake_digits, fake_training))
    return ("import math, time\n"
            "import numpy as np\n"
            "import pictures\nimport tensorflowvisu as tv\n\n"
            f"{helpers}\n{textwrap.dedent(code)}")


def run_python(code, timeout=120, **env):
    """Run code (child_code) in a child process, in a user's shell without a display (and
    its matplotlib backend chosen by matplotlib: no MPLBACKEND); env: variables to add."""
    return subprocess.run([sys.executable, "-c", child_code(code)],
                          env=child_env(**{"MPLBACKEND": None, **env}),
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def assert_picture(path, min_colours=50):
    """The file is a PNG with real content, not a blank or near-blank image."""
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.std() > 20, f"{path} looks blank"
    assert len(np.unique(image.reshape(-1, 3), axis=0)) >= min_colours
    return image


def saved_history(tmp_path, name, accuracies, losses=None, report=None):
    """A finished run's history file, made by hand: test measurements at 0, 100, 200..."""
    history = History(name, {"lr": 0.003})
    for k, accuracy in enumerate(accuracies):
        history.append_test(100 * k, accuracy, (losses or [0.5 / (k + 1)] * len(accuracies))[k], k)
    history.report = report
    path = tmp_path / f"{name}.json"
    history.save(path)
    return path


# ---------------------------------------------------------- lessons and models


LESSONS = {  # script: (steps for a short run, accuracy floor a broken model cannot reach)
    "mnist_1.0_softmax.py": (300, 0.85),
    "mnist_2.0_five_layers_sigmoid.py": (400, 0.80),
    "mnist_2.1_five_layers_relu.py": (300, 0.90),
    "mnist_2.2_five_layers_relu_dropout.py": (300, 0.88),
    "mnist_3.0_convolutional.py": (200, 0.88),
    "mnist_3.1_convolutional_bigger_dropout.py": (200, 0.88),
    "mnist_4.0_batchnorm_five_layers_sigmoid.py": (200, 0.88),
    "mnist_4.1_batchnorm_five_layers_relu.py": (200, 0.88),
    "mnist_4.2_batchnorm_convolutional.py": (40, 0.85),
    "mnist_5.0_batchnorm_convolutional_augmented.py": (40, 0.8),
    "mnist_5.1_batchnorm_convolutional_averaged.py": (40, 0.8),
}  # lesson 5.2 (not a training run): its own tests in test_lessons.py; 6.0: test_cluster.py


def load_lesson(script, monkeypatch, *argv):
    """A lesson's namespace (variables, model, train_step) without training it."""
    monkeypatch.setattr(sys, "argv", [str(ROOT / script), *argv])
    return runpy.run_path(str(ROOT / script), run_name="lesson")


def lesson_variables(lesson):
    traced = tf.function(lesson["model"]).get_concrete_function(tf.TensorSpec([None, 28, 28, 1]))
    weights = [v for v in traced.variables if len(v.shape) >= 2]  # as tested and saved
    return traced.variables, pictures.first_layer(weights)


def dense_model(inputs=(28, 28, 1), outputs=10, softmax=False):
    keras.utils.set_random_seed(0)
    last = keras.layers.Dense(outputs, activation="softmax" if softmax else None)
    model = keras.Sequential([keras.Input(inputs), keras.layers.Flatten(),
                              keras.layers.Dense(64, activation="relu"), last])
    model.compile(keras.optimizers.Adam(0.003),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=not softmax),
                  metrics=["accuracy"])
    return model


# ------------------------------------------------------------------ predict.py


# all the modules but the lessons
SHARED_MODULES = [p for p in ROOT.glob("*.py") if not p.name.startswith("mnist_")]


FIRST_LINE = re.compile(r"^(?P<file>.+): (?P<digit>\d) \(p=(?P<p>[01]\.\d\d)\)$")
THEN_LINE = re.compile(r"^  then (\d) \(p=([01]\.\d\d)\), (\d) \(p=([01]\.\d\d)\)$")


def run_predict(*args, cwd, script=ROOT / "predict.py", env=None):
    return subprocess.run([sys.executable, str(script), *map(str, args)], cwd=cwd,
                          env=env or child_env(), capture_output=True, text=True, timeout=300)


def parse(stdout):
    """predict.py's output -> {file: (digit, p, [(digit, p), (digit, p)])}; checks the format."""
    lines = stdout.splitlines()
    assert len(lines) % 2 == 0, stdout
    found = {}
    for first, then in zip(lines[::2], lines[1::2]):
        match, alternatives = FIRST_LINE.match(first), THEN_LINE.match(then)
        assert match and alternatives, (first, then)
        a = alternatives.groups()
        found[match["file"]] = (int(match["digit"]), float(match["p"]),
                                [(int(a[0]), float(a[1])), (int(a[2]), float(a[3]))])
    return found


MNIST_VARIANTS = ["56x56_dark.png", "200x120_light.jpg", "300x300_corner_dark_rgb.jpg",
                  "28x28_light.png"]


def mnist_picture(digit, variant):
    """An MNIST digit (float 28x28, light on dark) as a picture file would hold it."""
    light = Image.fromarray((digit * 255).round().astype(np.uint8))
    dark = Image.fromarray(255 - np.asarray(light))
    if variant == "56x56_dark.png":
        return dark.resize((56, 56), Image.Resampling.BICUBIC)
    if variant == "200x120_light.jpg":  # padded on all sides, wider than tall
        canvas = Image.new("L", (200, 120), 0)
        canvas.paste(light.resize((100, 100), Image.Resampling.BICUBIC), (70, 10))
        return canvas
    if variant == "300x300_corner_dark_rgb.jpg":  # small, in the bottom left corner, colour JPEG
        canvas = Image.new("RGB", (300, 300), (255, 255, 255))
        canvas.paste(dark.resize((120, 120), Image.Resampling.BICUBIC).convert("RGB"), (10, 170))
        return canvas
    return light
