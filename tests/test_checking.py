"""checking.py: the check of an exercise file against its lesson: every lesson passes as
its own solution, every starting file fails with the right first message, each classic
mistake is named, a correct solution written differently passes.

The check's speed on a finished file is measured by benchmarks/check_time.py, not here.
"""
import re
import sys

import pytest

import exercises
import lab
import plumbing


FIRST = {  # lesson: the first thing its starting file (the lesson it builds on) has to fix
    "1.0": "model(X) is not written yet",
    "2.0": "a layer is missing: the lesson's network has 5 (dense [784, 200], dense [200, 100]",
    "2.1": "activation functions: yours sigmoid, the lesson's relu",
    "2.2": "the lesson's network drops neurons at random while training (dropout); yours does not",
    "3.0": "layer 1 of 5: yours is dense [784, 200], the lesson's conv [5, 5, 1, 4] stride 1",
    "3.1": "layer 1 of 5: yours is conv [5, 5, 1, 4] stride 1, the lesson's conv [6, 6, 1, 6]",
    "4.0": "the lesson's network normalises every layer's weighted sums (batch norm); yours does",
    "4.1": "activation functions: yours sigmoid, the lesson's relu",
    "4.2": "layer 1 of 5: yours is conv [6, 6, 1, 6] stride 1, the lesson's conv [6, 6, 1, 24]",
    "5.0": "the lesson's network augments its training batches",
    "5.1": "the lesson's network is tested with the moving averages of its weights",
}


SLOW = ("2.0", "2.1", "2.2", "3.0", "3.1", "4.0", "4.1", "4.2", "5.0", "5.1")  # checks over 3 s


@pytest.fixture
def mnist_env(monkeypatch, mnist_dir):
    """The check's runs find real MNIST as the lessons do: through MNIST_DATA_DIR."""
    monkeypatch.setenv("MNIST_DATA_DIR", mnist_dir)


def quiet(line):
    """The check's report, not printed (the Verdict keeps it)."""


def planted(tmp_path, number, old, new):
    """A copy of lesson `number` named as an attendee's file, with `old` replaced by `new`."""
    source = plumbing.lessons()[number].read_text()
    assert old in source, f"lesson {number} changed: plant the mistake anew"
    path = tmp_path / f"my_mnist_{number}.py"
    path.write_text(source.replace(old, new))
    return path


# ------------------------------------------------------------------- the check


@pytest.mark.parametrize("number", exercises.exercises())
def test_every_starting_file_fails_with_its_first_message(number, tmp_path, mnist_env):
    verdict = exercises.check(exercises.start(number, tmp_path), echo=quiet)
    assert not verdict
    assert (verdict.stage, verdict.message[:len(FIRST.get(number, ""))]) == \
        ("structure", FIRST.get(number, "")), "without training: the structure tells"


@pytest.mark.parametrize("number", [pytest.param(s, marks=pytest.mark.slow) if s in SLOW else s
                                  for s in exercises.exercises()])
def test_every_lesson_passes_as_its_own_solution(number, tmp_path, mnist_env):
    """An attendee's copy of the lesson: the same network, the same seed, the same run
    (of 20 steps; benchmarks/check_time.py checks every lesson at the default lengths)."""
    path = tmp_path / f"my_mnist_{number}.py"
    path.write_text(plumbing.lessons()[number].read_text())
    verdict = exercises.check(path, steps=20, echo=quiet)
    assert verdict, str(verdict)
    assert [line.split(" ok: ")[0].strip() for line in verdict.lines if " ok: " in line] == \
        ["structure", "training", "accuracy"]
    assert verdict.accuracy == verdict.lesson_accuracy, "the same run"
    assert verdict.lines[-1].startswith(f"done: my_mnist_{number}.py is lesson {number}'s network")


def test_a_first_message_comes_with_a_hint_and_on_request_the_lessons_lines(tmp_path, mnist_env):
    path = planted(tmp_path, "2.0", "W2 = tf.Variable(tf.random.truncated_normal([200, 100]",
                   "W2 = tf.Variable(tf.random.truncated_normal([100, 200]")
    verdict = exercises.check(path, echo=quiet)
    assert verdict.message.startswith("model(X) fails at line 47 (Y2 = tf.nn.sigmoid(")
    assert verdict.hint.startswith("a weight matrix is [inputs, outputs]")
    assert verdict.lines[-1].endswith(f"{path} --solution"), "how to see the lesson's lines"
    shown = exercises.check(path, solution=True, echo=quiet)
    assert shown.lines[-1] == shown.solution == verdict.solution
    assert "   32  W2 = tf.Variable(tf.random.truncated_normal([200, 100], stddev=0.1))" in \
        shown.solution.splitlines()
    assert "   47      Y2 = tf.nn.sigmoid(tf.matmul(Y1, W2) + B2)" in shown.solution.splitlines()
    assert "def train_step" not in shown.solution, "the lines for this part only"


def test_the_check_leaves_the_process_as_it_found_it(tmp_path, mnist_env):
    """A notebook's kernel goes on: lab.train trains again and sys.argv is back, also after
    a failure."""
    train, argv = lab.train, list(sys.argv)
    path = tmp_path / "my_mnist_2.0.py"
    path.write_text("import lab\nlab.parse_args(__doc__, steps=10)\nraise NameError('W6')\n")
    verdict = exercises.check(path, echo=quiet)
    assert verdict.message == "my_mnist_2.0.py stops at line 3 (raise NameError('W6')): " \
                              "NameError: W6"
    assert lab.train is train and sys.argv == argv and lab._handed_over is None


# -- the classic mistakes, each planted in a copy of a lesson


@pytest.mark.parametrize("number, old, new, stage, message", [
    ("2.0", "XX = tf.reshape(X, [-1, 784])", "XX = X", "structure",
     r"model\(X\) fails at line 46 .*: a dense layer gets \[\?,28,28,1\], not flat vectors"),
    ("3.0", "YY = tf.reshape(Y3, [-1, 7 * 7 * M])", "YY = Y3", "structure",
     r"a dense layer gets \[\?,7,7,12\], not flat vectors"),
    ("2.0", "W3 = tf.Variable(tf.random.truncated_normal([100, 60]",
     "W3 = tf.Variable(tf.random.truncated_normal([200, 60]", "structure",
     r"the shapes do not chain: the layer gets 100 values per image, its weights \[200,60\] "
     r"expect 200"),
    ("3.0", "W2 = tf.Variable(tf.random.truncated_normal([5, 5, K, L]",
     "W2 = tf.Variable(tf.random.truncated_normal([5, 5, L, L]", "structure",
     r"the shapes do not chain: the convolution gets 4 channels, its filters expect 8"),
    ("2.2", "return tf.nn.dropout(Y, rate=DROP) if training else Y",
     "return tf.nn.dropout(Y, rate=DROP)", "structure", r"dropout is left on at test time"),
    ("2.0", "loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=Y_, "
     "logits=Ylogits))", "loss = -tf.reduce_sum(Y_ * tf.math.log(tf.nn.softmax(Ylogits)))",
     "structure", r"the loss takes the log of softmax's probabilities: it becomes NaN"),
    pytest.param("2.0", "variables = [W1, B1, W2, B2, W3, B3,", "variables = [W1, B1, W2, B2,",
                 "training",
                 r"^W3 \[100, 60\] and B3 \[60\] did not change in the first 20 training steps: "
                 r"they are missing from the variables that train_step updates$",
                 marks=pytest.mark.slow),  # (the check trains the file and the lesson: 8 s)
    pytest.param("3.0", "variables = [W1, B1, W2, B2, W3, B3, W4, B4, W5, B5]",
                 "variables = [W1, B1, W2, B2, W3, B3, W5, B5]", "training",
                 r"^W4 \[588, 200\] and B4 \[200\] did not change",
                 marks=pytest.mark.slow),  # (it trains a convolutional lesson)
])
def test_a_classic_mistake_is_named(
        number, old, new, stage, message, tmp_path, mnist_env):
    verdict = exercises.check(planted(tmp_path, number, old, new), echo=quiet)
    assert (verdict.passed, verdict.stage) == (False, stage)
    assert re.search(message, verdict.message), verdict.message


@pytest.mark.slow
def test_weights_initialised_to_zero_are_named(tmp_path, mnist_env):
    source = plumbing.lessons()["2.0"].read_text()
    path = tmp_path / "my_mnist_2.0.py"
    path.write_text(re.sub(r"tf\.random\.truncated_normal\((\[[^\]]*\]), stddev=0\.1\)",
                           r"tf.zeros(\1)", source))
    verdict = exercises.check(path, steps=40, echo=quiet)
    assert verdict.stage == "training"
    assert verdict.message.startswith("the neurons of a layer are all the same after training: "
                                      "W1 [784, 200], which started with every value 0")
    assert "truncated_normal" in verdict.hint


@pytest.mark.slow
def test_a_learning_rate_far_too_high_is_named(tmp_path, mnist_env):
    path = planted(tmp_path, "2.1", "Adam(blocks.ExponentialDecay(0.003,",
                   "Adam(blocks.ExponentialDecay(0.3,")
    verdict = exercises.check(path, steps=40, echo=quiet)
    assert verdict.stage == "training"
    assert re.search(r"with a learning rate of 0\.3\d*, far too high: 97 times the lesson's "
                     r"0\.0031$", verdict.message), verdict.message


@pytest.mark.slow
def test_a_constant_learning_rate_where_the_lesson_decays_is_named(tmp_path, mnist_env):
    path = planted(tmp_path, "2.1", "Adam(blocks.ExponentialDecay(0.003, decay_steps=2000, "
                   "floor=0.0001))", "Adam(0.003)")
    verdict = exercises.check(path, steps=40, echo=quiet)
    assert verdict.message.startswith("your learning rate stays at 0.003; the lesson's decays")


# -- a correct solution written differently


KERAS_2_2 = '''"""Lesson 2.2, my way: Keras layers."""
import lab

args = lab.parse_args(__doc__, steps=10000)

import tensorflow as tf  # noqa: E402
from tensorflow import keras  # noqa: E402

network = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten()])
for size in (200, 100, 60, 30):
    network.add(keras.layers.Dense(size, activation="relu",
                                   bias_initializer=keras.initializers.Constant(0.1)))
    network.add(keras.layers.Dropout(0.25))
network.add(keras.layers.Dense(10))


def model(images, training=False):
    return network(images, training=training)


decay = keras.optimizers.schedules.ExponentialDecay(0.003, decay_steps=2000, decay_rate=0.37)
optimizer = keras.optimizers.Adam(decay)


@tf.function
def train_step(images, labels):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.categorical_crossentropy(
            labels, model(images, training=True), from_logits=True))
    weights = network.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))


if __name__ == "__main__":
    lab.train(args, model, train_step, optimizer)
'''


OTHER_ORDER_3_0 = '''"""Lesson 3.0, my way: other names, another order, a loop."""
import lab

args = lab.parse_args(__doc__, steps=10000)

import tensorflow as tf  # noqa: E402

readout = [tf.Variable(tf.random.truncated_normal([200, 10], stddev=0.1)),
           tf.Variable(tf.fill([10], 0.1))]
dense = [tf.Variable(tf.random.truncated_normal([588, 200], stddev=0.1)),
         tf.Variable(tf.fill([200], 0.1))]
convolutions = [(tf.Variable(tf.random.truncated_normal(shape, stddev=0.1)),
                 tf.Variable(tf.fill(shape[-1:], 0.1)), stride)
                for shape, stride in (([5, 5, 1, 4], 1), ([5, 5, 4, 8], 2), ([4, 4, 8, 12], 2))]
params = [v for f, o, _ in convolutions for v in (f, o)] + [*dense, *readout]


def model(images, training=False):
    x = images
    for filters, offsets, stride in convolutions:
        x = tf.nn.relu(tf.nn.conv2d(x, filters, strides=stride, padding="SAME") + offsets)
    x = tf.nn.relu(tf.matmul(tf.reshape(x, [-1, 588]), dense[0]) + dense[1])
    return tf.matmul(x, readout[0]) + readout[1]


optimizer = tf.keras.optimizers.Adam(
    tf.keras.optimizers.schedules.CosineDecay(0.003, decay_steps=10000))


@tf.function
def train_step(images, labels):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels, model(images, True)))
    optimizer.apply_gradients(zip(tape.gradient(loss, params), params))


if __name__ == "__main__":
    lab.train(args, model, train_step, optimizer)
'''


@pytest.mark.slow
@pytest.mark.parametrize("number, code", [("2.2", KERAS_2_2), ("3.0", OTHER_ORDER_3_0)])
def test_a_correct_solution_written_differently_passes(number, code, tmp_path, mnist_env):
    path = tmp_path / f"my_mnist_{number}.py"
    path.write_text(code)
    verdict = exercises.check(path, echo=quiet)
    assert verdict, str(verdict)


# -- the hints speak the learner's language (issue 28)


KERAS_1_0_SOFTMAX = '''"""Lesson 1.0, my way: Keras, with the softmax in the last layer."""
import lab

args = lab.parse_args(__doc__, steps=2000)

import tensorflow as tf  # noqa: E402
import keras  # noqa: E402

network = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                            keras.layers.Dense(10, activation="softmax")])


def model(X, training=False):
    return network(X, training=training)


optimizer = keras.optimizers.SGD(learning_rate=0.5)


@tf.function
def train_step(X, Y_):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.categorical_crossentropy(Y_, model(X, training=True)))
    weights = network.trainable_variables
    optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))


if __name__ == "__main__":
    lab.train(args, model, train_step, optimizer)
'''


def test_a_keras_solution_gets_a_hint_in_keras_words(tmp_path, mnist_env):
    path = tmp_path / "my_mnist_1.0.py"
    path.write_text(KERAS_1_0_SOFTMAX)
    verdict = exercises.check(path, echo=quiet)
    assert (verdict.passed, verdict.stage) == (False, "structure")
    assert verdict.message == "model(X) returns probabilities (softmax): return the logits instead"
    assert 'keras.layers.Dense(10), not Dense(10, activation="softmax")' in verdict.hint
    assert "tf.matmul" not in verdict.hint, "no TensorFlow operations the learner never wrote"


NOT_THE_LEARNERS = ("{{function_node", "__wrapped__", "/job:localhost", "[Op:", "1176", "Traceback")


@pytest.mark.parametrize("new, weights, message", [
    ("YY = tf.reshape(Y3, [-1, 500])", "[500, N]",  # (the next layer's weights agree)
     "a reshape gets 588 values per image, its shape asks for rows of 500"),
    ("YY = tf.reshape(Y3, [100, 588])", "[7 * 7 * M, N]",
     "InvalidArgumentError: Input to reshape is a tensor with 588 values, but the requested "
     "shape has 58800"),
], ids=["rows of 500", "a fixed batch"])
def test_a_wrong_reshape_is_said_without_tensorflows_internals(new, weights, message, tmp_path,
                                                               mnist_env):
    """The message names the learner's line and numbers they chose: not TensorFlow's node
    names and devices, nor the values of a batch of 2 images the check chose."""
    path = planted(tmp_path, "3.0", "YY = tf.reshape(Y3, [-1, 7 * 7 * M])", new)
    path.write_text(path.read_text().replace("[7 * 7 * M, N]", weights))
    verdict = exercises.check(path, echo=quiet)
    assert (verdict.passed, verdict.stage) == (False, "structure")
    assert verdict.message == f"model(X) fails at line 50 ({new}  # flatten for the fully " \
                              f"connected layer): {message}"
    assert not [word for word in NOT_THE_LEARNERS if word in "\n".join(verdict.lines)]
    assert verdict.hint.startswith("flattening a convolutional layer gives height x width x "
                                   "channels values per image")
