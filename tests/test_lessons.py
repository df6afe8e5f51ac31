"""The lab's numbered lessons: short real runs, and unit tests of their parts.

Full-length accuracy is measured by `python benchmarks/lab_time.py --all`, not here.
"""
import json
import math
import runpy
import shutil
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest
import tensorflow as tf

import blocks
import history
import lab
import mnistdata
import plumbing
from conftest import FINAL_LINES, ROOT, child_env, ctrl_c_works

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
}  # lesson 5.2 (not a training run): tests/test_ensemble.py; 6.0: tests/test_distributed.py
SLOW = ("3.1", "4.0", "4.1", "4.2", "5.0", "5.1")  # over 5 s each: the fast tier runs the others
RUNS = [pytest.param(s, marks=pytest.mark.slow) if s.split("_")[1] in SLOW else s for s in LESSONS]


def outputs(tmp_path):
    return ["--history", tmp_path / "run.json", "--save-model", tmp_path / "model"]


@pytest.mark.parametrize("script", RUNS)
def test_short_run_ends_with_the_two_lines_and_learns(script, mnist_dir, tmp_path, capsys):
    """In this process (lab.run, as a notebook does): the command line has its own tests below."""
    steps, floor = LESSONS[script]
    history = lab.run(script, steps=steps, no_vis=True, data_dir=mnist_dir,
                      history=tmp_path / "run.json", save_model=tmp_path / "model")
    out = capsys.readouterr().out
    match = FINAL_LINES.search(out)
    assert match, out[-500:]
    max_accuracy, final_accuracy = map(float, match.groups())
    assert final_accuracy >= floor
    assert max_accuracy == round(max(history.test["accuracy"]), 4)
    assert final_accuracy == round(history.test["accuracy"][-1], 4)
    written = json.loads((tmp_path / "run.json").read_text())
    assert history.to_dict() == written, "returned and written"
    assert history.final["steps"] == steps
    assert history.train["step"] == [*range(0, steps, 20), steps]  # measured every 20 steps
    assert history.test["step"] == [i for i in range(steps + 1) if lab.test_due(i, steps)]
    assert history.final["final_test_accuracy"] == pytest.approx(final_accuracy, abs=1e-4)
    assert out.splitlines()[0].startswith(f"{script[:-3]}: {steps} steps of 100 images")
    assert history.config["engine"] in out.splitlines()[0]
    assert history.config["cpu"] in out.splitlines()[0]  # the processor (benchmarks record it too)
    assert (tmp_path / "model" / "saved_model.pb").exists()


@pytest.mark.parametrize("steps, test_points", [
    (10000, [*range(0, 200, 20), *range(200, 10001, 100)]),  # lessons: every 100 after the climb
    (18000, [*range(0, 200, 20), *range(360, 18001, 180)]),  # 5.0: about 100 test points
    (2000, [*range(0, 200, 20), *range(200, 2001, 100)]),  # 1.0
    (200, [0, 40, 80, 120, 160, 200]),  # a workshop's short run: few test passes, they cost
    (300, [0, 20, 60, 120, 180, 240, 300]),
    (50, [0, 20, 40, 50]),  # the last step, off the 20-step grid
])
def test_the_test_points_are_about_a_hundred_per_run_and_dense_at_first(steps, test_points):
    assert [i for i in range(steps + 1) if lab.test_due(i, steps)] == test_points


def test_keywords_of_lab_run_mean_what_the_flags_mean(mnist_dir):
    with pytest.raises(plumbing.UserError, match="--steps: must be at least 1, got 0"):
        lab.run("2.1", steps=0, no_vis=True, data_dir=mnist_dir)  # 0 is a value, not "no flag"


@pytest.mark.slow
def test_each_run_keeps_its_own_history_named_by_what_it_changed(mnist_dir, tmp_path):
    """Without --history: runs/<lesson>.json is the latest run, runs/<lesson>/ keeps each one
    (a copy of the lab, so that the real runs/ is not touched)."""
    lesson = tmp_path / "lab"
    shutil.copytree(ROOT, lesson, ignore=shutil.ignore_patterns(
        ".*", "runs", "models", "data", "tests", "benchmarks", "docs", "*.ipynb"))
    for seed in (0, 1):
        result = subprocess.run([sys.executable, str(lesson / "mnist_1.0_softmax.py"), "--no-vis",
                                 "--steps", "20", "--seed", str(seed)],
                                capture_output=True, text=True, cwd=tmp_path,
                                env=child_env(mnist_dir))
        assert result.returncode == 0, result.stderr
    latest = json.loads((lesson / "runs" / "mnist_1.0_softmax.json").read_text())
    assert latest["config"]["flags"] == {"steps": 20, "seed": 1}
    kept = {p.name.split("--", 1)[1]: json.loads(p.read_text())
            for p in (lesson / "runs" / "mnist_1.0_softmax").glob("*.json")}
    assert sorted(kept) == ["steps-20--seed-1.json", "steps-20.json"]
    assert kept["steps-20--seed-1.json"] == latest and kept["steps-20.json"]["config"]["seed"] == 0


@pytest.mark.slow
def test_same_seed_same_curves_other_seed_other_curves(mnist_dir, tmp_path):
    """Dropout and batch order are random: the seed must pin them all, also for runs in one
    process (a notebook's kernel). Under XLA, dropout's masks would change from run to run:
    --xla auto leaves it off for a model that draws random numbers."""
    def curves(name, seed):
        history = lab.run("mnist_2.2_five_layers_relu_dropout.py", no_vis=True, steps=60, seed=seed,
                          data_dir=mnist_dir, history=tmp_path / f"{name}.json",
                          save_model=tmp_path / name)
        assert history.config["xla"] is False
        return history.train["loss"] + history.test["loss"]

    first, again, other = curves("a", 1), curves("b", 1), curves("c", 2)
    assert first == again
    assert first != other


# ----------------------------------------------------------------- unit tests


def load_lesson(script, monkeypatch, *argv):
    """A lesson's namespace (variables, model, train_step) without training it."""
    monkeypatch.setattr(sys, "argv", [str(ROOT / script), *argv])
    return runpy.run_path(str(ROOT / script), run_name="lesson")


@pytest.fixture(scope="module")
def batch(mnist):
    images, labels = mnist.test.images[:100], mnist.test.labels[:100]
    return tf.constant(images), tf.constant(labels)


@pytest.mark.parametrize("script", LESSONS)
def test_model_gives_ten_logits_and_a_step_lowers_the_loss(script, batch, monkeypatch):
    lesson = load_lesson(script, monkeypatch)
    X, Y_ = batch
    Ylogits = lesson["model"](X)
    assert Ylogits.shape == (100, 10)
    assert Ylogits.dtype == tf.float32

    def loss():  # evaluation mode: dropout off, so the comparison is not noise
        return float(tf.reduce_mean(
            tf.nn.softmax_cross_entropy_with_logits(labels=Y_, logits=lesson["model"](X))))

    before = loss()
    for _ in range(3):
        lesson["train_step"](X, Y_)
    assert loss() < before


def test_dropout_only_while_training(batch, monkeypatch):
    lesson = load_lesson("mnist_2.2_five_layers_relu_dropout.py", monkeypatch)
    X, _ = batch
    model = lesson["model"]
    np.testing.assert_array_equal(model(X, training=False), model(X, training=False))
    assert not np.allclose(model(X, training=True), model(X, training=False))


def test_learning_rate_decay_values():
    decay = blocks.ExponentialDecay(0.003, decay_steps=2000, floor=0.0001)
    assert float(decay(0)) == pytest.approx(0.0031)
    assert float(decay(2000)) == pytest.approx(0.0001 + 0.003 / math.e)
    assert float(decay(10000)) == pytest.approx(0.0001 + 0.003 * math.exp(-5))
    assert float(decay(10**6)) == pytest.approx(0.0001)


def test_an_optimizer_with_a_schedule_reports_its_current_rate(monkeypatch, batch):
    lesson = load_lesson("mnist_2.1_five_layers_relu.py", monkeypatch)
    X, Y_ = batch
    for _ in range(5):
        lesson["train_step"](X, Y_)
    rate = float(lesson["optimizer"].learning_rate)
    assert rate == pytest.approx(0.0001 + 0.003 * math.exp(-5 / 2000))


def test_nan_guard_stops_a_diverging_run(mnist_dir, tmp_path, capsys):
    args = lab.parse_args("test", steps=100,
                          argv=["--no-vis", "--data-dir", mnist_dir, *map(str, outputs(tmp_path))])
    W = tf.Variable(tf.zeros([784, 10]))
    optimizer = tf.keras.optimizers.SGD(1e30)  # absurdly high: the loss overflows at once

    def model(X, training=False):
        return tf.matmul(tf.reshape(X, [-1, 784]), W) * 1e30

    @tf.function
    def train_step(X, Y_):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(
                tf.nn.softmax_cross_entropy_with_logits(labels=Y_, logits=model(X)))
        optimizer.apply_gradients(zip(tape.gradient(loss, [W]), [W]))

    with pytest.raises(SystemExit) as stop:
        lab.train(args, model, train_step, optimizer)
    message = str(stop.value.code)
    assert message.startswith("error: the loss became nan at step 20")
    assert "learning rate" in message and "\n" not in message


def test_a_variable_missing_from_the_training_step_is_named_after_the_first_call(
        mnist_dir, tmp_path, capsys):
    """The classic mistake when adding a layer: its weights left out of tape.gradient(...)."""
    args = lab.parse_args("test", steps=40,
                          argv=["--no-vis", "--data-dir", mnist_dir, *map(str, outputs(tmp_path))])
    W = tf.Variable(tf.zeros([784, 10]))
    W_forgotten = tf.Variable(tf.ones([10, 10]) / 10)
    optimizer = tf.keras.optimizers.SGD(0.5)

    def model(X, training=False):
        return tf.matmul(tf.matmul(tf.reshape(X, [-1, 784]), W), W_forgotten)

    @tf.function
    def train_step(X, Y_):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(
                tf.nn.softmax_cross_entropy_with_logits(labels=Y_, logits=model(X)))
        optimizer.apply_gradients(zip(tape.gradient(loss, [W]), [W]))  # W_forgotten is not there

    lab.train(args, model, train_step, optimizer)
    warnings = [line for line in capsys.readouterr().err.splitlines()
                if line.startswith("warning:")]
    assert len(warnings) == 1, warnings
    assert "[10, 10] did not change in the first 20 training steps" in warnings[0]
    assert "missing from the variables that train_step updates" in warnings[0]


def test_the_plain_training_loop_is_the_real_one_written_plainly(
        mnist_dir, monkeypatch, capsys, tmp_path):
    """The loop lab.train runs, written plainly, twice: lesson 1.0's plain_training_loop and
    lab.py's documentation. Both are the same code; run on the same seed, they test at
    the real loop's test points and read the test digits as well as the real loop did
    (the real one is compiled, with XLA: the last float digits differ)."""
    import inspect
    import textwrap

    monkeypatch.setenv("MNIST_DATA_DIR", mnist_dir)

    def code_from(text):  # the loop: from the line that loads MNIST to the end of its block
        start = text.rindex("\n", 0, text.index("mnist = mnistdata")) + 1
        return textwrap.dedent(text[start:].split("\n\n")[0])

    def plain_run(code):
        lesson = load_lesson("mnist_1.0_softmax.py", monkeypatch, "--steps", "200", "--seed", "3")
        capsys.readouterr()
        exec(code, dict(lesson))
        lines = capsys.readouterr().out.splitlines()
        return {int(line.split(":")[0][5:]): float(line.rsplit(" ", 1)[1]) for line in lines}

    lesson = load_lesson("mnist_1.0_softmax.py", monkeypatch)
    body = code_from(inspect.getsource(lesson["plain_training_loop"]))
    documented = code_from(lab.__doc__)
    strip = lambda code: [line.split("  #")[0].rstrip()  # noqa: E731
                          for line in code.strip().splitlines()]
    assert strip(documented) == strip(body)

    real = lab.run("1.0", steps=200, seed=3, no_vis=True, history=tmp_path / "run.json",
                   save_model=tmp_path / "m")
    plain = plain_run(documented)
    assert list(plain) == real.test["step"]
    assert list(plain.values()) == pytest.approx(real.test["accuracy"], abs=0.003)
    assert plain[0] < 0.2 and plain[200] > 0.85


def test_report_figures_on_a_hand_made_prediction_set():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 9])
    predicted = np.array([0, 0, 1, 1, 1, 2, 2, 9, 2, 9])
    rep = history.report(labels, predicted)
    matrix = np.array(rep["confusion_matrix"])
    assert matrix.sum() == len(labels)
    assert matrix[0, 0] == 2 and matrix[0, 1] == 1 and matrix[2, 9] == 1
    assert rep["accuracy"] == pytest.approx(0.8)
    assert rep["precision"][1] == pytest.approx(2 / 3)  # predicted 1 three times, right twice
    assert rep["recall"][0] == pytest.approx(2 / 3)
    assert rep["recall"][9] == pytest.approx(1.0) and rep["precision"][9] == pytest.approx(0.5)
    assert rep["f1"][9] == pytest.approx(2 / 3)
    # 5 is never predicted: its precision is 0, not NaN
    assert rep["support"][:3] == [3, 2, 4] and rep["precision"][5] == 0.0


# ----------------------------------------------------------- bad input, Ctrl-C


@pytest.mark.parametrize("flags, complaint", [
    (["--steps", "0"], "--steps: must be at least 1"),
    (["--batch-size", "100000"], "--batch-size 100000 is larger than the 60,000 training images"),
    (["--batch-size", "ten"], "--batch-size: expected a whole number"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--save-movie", "run.avi"],
     "error: --save-movie run.avi: a movie file name must end in .mp4 or .gif"),
])
def test_bad_flags_one_line_no_traceback_before_tensorflow_loads(
        flags, complaint, run_script, no_tensorflow):
    result = run_script("mnist_1.0_softmax.py", *flags, env=no_tensorflow)
    assert result.returncode in (1, 2)
    assert complaint in result.stderr and "TENSORFLOW IMPORTED" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    help_text = run_script("mnist_3.0_convolutional.py", "-h", env=no_tensorflow)
    assert help_text.returncode == 0 and "--save-movie FILE" in help_text.stdout


@pytest.mark.slow
def test_missing_data_one_line_that_says_what_to_do(run_script, tmp_path):
    closed = "http://127.0.0.1:9/"  # the discard port: nothing listens, the connection is refused
    result = run_script("mnist_1.0_softmax.py", "--no-vis", "--data-dir", "nowhere/mnist",
                        *outputs(tmp_path), env={"MNIST_MIRRORS": closed})
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "MNIST_DATA_DIR" in last
    assert f"missing from {tmp_path / 'nowhere' / 'mnist'} (no such folder)" in last, "absolute"
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run.json").exists()
    assert not (tmp_path / "nowhere").exists(), "no folder made for a download that failed"


def test_every_unwritable_output_is_reported_at_once_before_training(
        run_script, tmp_path, no_tensorflow):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    result = run_script("mnist_1.0_softmax.py", "--no-vis", "--history", "/proc/run.json",
                        "--save-model", blocker / "model", "--save-png", tmp_path / "fine.png",
                        "--save-movie", tmp_path / "missing" / "run.gif", env=no_tensorflow)
    assert result.returncode == 1 and "TENSORFLOW IMPORTED" not in result.stderr
    line, = result.stderr.strip().splitlines()
    assert line.startswith("error: cannot write --history /proc/run.json (cannot write in /proc")
    assert (f"--save-model {blocker / 'model'} ({blocker} is a file)" in line
            and "fine.png" not in line)
    assert f"--save-movie {tmp_path / 'missing' / 'run.gif'}: no folder {tmp_path / 'missing'}" \
        in line or f"(no folder {tmp_path / 'missing'})" in line, "no folder is made: refused"
    assert "step" not in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "fake"]


@pytest.mark.slow
def test_save_model_never_replaces_a_folder_that_is_not_a_model(run_script, tmp_path):
    folder = tmp_path / "my_documents"
    folder.mkdir()
    (folder / "notes.txt").write_text("precious")
    result = run_script("mnist_1.0_softmax.py", "--no-vis", "--save-model", folder,
                        "--history", tmp_path / "run.json")
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        "choose a new or empty folder (a saved model there is replaced)")
    assert (folder / "notes.txt").read_text() == "precious"


@pytest.mark.slow
def test_no_display_says_so_and_suggests_save_png_only_without_it(run_script, tmp_path):
    """Also: the user's own TF_ENABLE_ONEDNN_OPTS wins over the lab's choice."""
    result = run_script("mnist_1.0_softmax.py", "--steps", 20, "--save-png", tmp_path / "d.png",
                        *outputs(tmp_path), env={"TF_ENABLE_ONEDNN_OPTS": "0"})
    assert result.returncode == 0, result.stderr
    assert result.stderr == "no display: training without the live dashboard\n"
    assert "; CPU, Eigen, XLA (" in result.stdout.splitlines()[0]
    assert json.loads((tmp_path / "run.json").read_text())["config"]["engine"] == "CPU, Eigen"
    assert (tmp_path / "d.png").stat().st_size > 10000


@pytest.mark.slow
def test_ctrl_c_twice_saves_a_consistent_pair_and_exits_130(mnist_dir, tmp_path):
    """The first Ctrl-C stops training; a second one, while the run saves, waits until the
    history and the model are both written. Both then come from this run, never one from
    the run before."""
    env = child_env(mnist_dir)
    old = subprocess.run([sys.executable, str(ROOT / "mnist_2.1_five_layers_relu.py"), "--no-vis",
                          "--steps", "20", *map(str, outputs(tmp_path))],
                         env=env, capture_output=True, text=True, cwd=tmp_path)
    assert old.returncode == 0, old.stderr
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "mnist_2.1_five_layers_relu.py"), "--no-vis",
         "--steps", "1000000", "--seed", "7", *map(str, outputs(tmp_path))],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=ctrl_c_works)
    watchdog = threading.Timer(180, process.kill)  # a lost Ctrl-C: fail, not train a million steps
    watchdog.start()
    for line in process.stdout:  # wait until training runs
        if line.startswith("step") and "step      0" not in line:
            break
    process.send_signal(signal.SIGINT)
    for line in process.stdout:  # the first Ctrl-C is handled: saving starts
        if line.startswith("interrupted at step"):
            process.send_signal(signal.SIGINT)
            break
    out, err = process.communicate(timeout=120)
    watchdog.cancel()
    assert process.returncode == 130, err
    assert FINAL_LINES.search(out), out[-500:]
    assert "Traceback" not in err
    history = json.loads((tmp_path / "run.json").read_text())
    assert history["final"]["interrupted"] is True and history["config"]["seed"] == 7
    assert 0 < history["final"]["steps"] < 1000000
    # the saved model is the one the history describes (the old one, 20 steps, is far worse)
    model = tf.saved_model.load(str(tmp_path / "model")).signatures["serving_default"]
    test = mnistdata.read_data_sets(mnist_dir, reshape=False).test
    digits = model(images=tf.constant(test.images[..., 0]))["digits"].numpy()
    assert abs(np.mean(digits == test.labels) - history["final"]["final_test_accuracy"]) <= 0.0005


# ------------------------------------------------------- batch norm, augmentation


def test_batch_norm_uses_the_batch_in_training_and_moving_averages_at_test_time():
    tf.random.set_seed(1)
    bn = blocks.BatchNorm(3)
    offset, scale = tf.constant([0.5, -1.0, 0.0]), tf.constant([2.0, 1.0, 3.0])
    Y = tf.random.normal([200, 3]) * [1.0, 5.0, 0.1] + [10.0, -3.0, 0.5]

    out = bn(Y, offset, scale, training=True)  # normalised with this batch's statistics
    np.testing.assert_allclose(tf.reduce_mean(out, 0), offset, atol=1e-4)
    np.testing.assert_allclose(tf.math.reduce_std(out, 0), scale, rtol=1e-3)
    mean, variance = tf.nn.moments(Y, [0])
    # first update: the average forgets fast, decay (1 + 0) / (10 + 0) = 0.1
    np.testing.assert_allclose(bn.moving_mean, 0.9 * mean, rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance, 0.1 + 0.9 * variance, rtol=1e-5)

    for _ in range(300):
        bn(Y, offset, scale, training=True)
    np.testing.assert_allclose(bn.moving_mean, mean, rtol=1e-3)
    # at test time each image is normalised on its own: independent of the rest of the batch
    alone = bn(Y[:1], offset, scale, training=False)
    np.testing.assert_allclose(alone, bn(Y, offset, scale, training=False)[:1], rtol=1e-5)
    np.testing.assert_allclose(alone, out[:1], rtol=1e-2, atol=1e-2)  # averages ~ batch statistics
    # ... and in training mode the same image depends on its batch
    assert not np.allclose(bn(Y[:2], offset, scale, training=True)[:1], out[:1], atol=1e-2)


def test_convolutional_batch_norm_normalises_each_channel_over_batch_and_positions():
    bn = blocks.BatchNorm(4)
    Y = tf.random.normal([8, 5, 5, 4], seed=2) * 3 + 7
    out = bn(Y, tf.zeros([4]), training=True)
    assert out.shape == Y.shape and bn.moving_mean.shape == (4,)
    np.testing.assert_allclose(tf.reduce_mean(out, [0, 1, 2]), np.zeros(4), atol=1e-4)


def test_batch_norm_lessons_save_their_moving_averages(monkeypatch):
    """The moving averages are used at test time, so the saved model must carry them."""
    lesson = load_lesson("mnist_4.1_batchnorm_five_layers_relu.py", monkeypatch)
    traced = tf.function(lesson["model"]).get_concrete_function(tf.TensorSpec([None, 28, 28, 1]))
    saved = {v.ref() for v in traced.variables}
    for bn in (lesson["BN1"], lesson["BN4"]):
        assert bn.moving_mean.ref() in saved and bn.moving_variance.ref() in saved


@pytest.mark.slow
def test_augmentation_keeps_shapes_range_and_labels(mnist, monkeypatch):
    lesson = load_lesson("mnist_5.0_batchnorm_convolutional_augmented.py", monkeypatch)
    augment = tf.function(lesson["augment"])
    X = tf.constant(mnist.test.images[:500])
    XA = augment(X)
    assert XA.shape == X.shape and XA.dtype == tf.float32
    assert float(tf.reduce_min(XA)) >= 0.0 and float(tf.reduce_max(XA)) <= 1.0
    assert not np.allclose(XA, X, atol=0.05)  # the images did change...
    assert not np.allclose(augment(X), XA)  # ... differently at every call
    ink_ratio = tf.reduce_sum(XA, [1, 2, 3]) / tf.reduce_sum(X, [1, 2, 3])
    # zoom <= 10%
    assert 0.7 < float(tf.reduce_min(ink_ratio)) and float(tf.reduce_max(ink_ratio)) < 1.35

    # The labels stay right: a network trained on augmented batches (with their labels
    # unchanged) reads plain and augmented test digits well. Had the transformation
    # turned digits into something else (or shuffled the images of a batch), it could not.
    conv = load_lesson("mnist_3.0_convolutional.py", monkeypatch)
    for _ in range(500):
        images, labels = mnist.train.next_batch(100)
        conv["train_step"](augment(tf.constant(images)), tf.constant(labels))
    truth = mnist.test.labels[:500].argmax(1)

    def accuracy(images):
        return float(np.mean(conv["model"](images).numpy().argmax(1) == truth))

    assert accuracy(X) > 0.95
    assert accuracy(augment(X)) > 0.93
