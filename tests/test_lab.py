"""lab.py: a training run from the first step to the saved model: train and Training,
the flags, the outputs a run writes (TensorBoard logs, pictures, movie, history, report),
lab.run, lab.train_model, and Ctrl-C of a run."""
import contextlib
import ipaddress
import json
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import types
from pathlib import Path

import keras
import numpy as np
import psutil
import pytest
import tensorflow as tf
from PIL import Image
from tensorflow.python.framework.ops import _gradient_registry as gradient_registry

import blocks
import lab
import mnistdata
import plumbing
from conftest import FINAL_LINES, ROOT, child_env, ctrl_c_works
from helpers import dense_model, load_lesson
from history import History
from plumbing import UserError


def outputs(tmp_path):
    return ["--history", tmp_path / "run.json", "--save-model", tmp_path / "model"]


# ----------------------------------------------------------------------- a run


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
    process (a notebook's kernel). XLA compiles 2.2's training, dropout included: its masks
    come from the lab's generator made from the seed (TensorFlow's own dropout, under XLA,
    would give other masks on the second run)."""
    def curves(name, seed):
        history = lab.run("mnist_2.2_five_layers_relu_dropout.py", no_vis=True, steps=60, seed=seed,
                          data_dir=mnist_dir, history=tmp_path / f"{name}.json",
                          save_model=tmp_path / name)
        assert history.config["xla"] is True
        return history.train["loss"] + history.test["loss"]

    first, again, other = curves("a", 1), curves("b", 1), curves("c", 2)
    assert first == again
    assert first != other


def test_other_random_numbers_from_the_global_seed_keep_xla_off(mnist_dir, tmp_path):
    """A dense model that adds its own noise with tf.random.normal when training: under XLA
    those numbers would come from a counter of the process, so --xla auto leaves XLA off
    and the same seed repeats the run in one process."""
    W = tf.Variable(tf.zeros([784, 10]))

    def model(X, training=False):
        X = tf.reshape(X, [-1, 784])
        return tf.matmul(X + tf.random.normal(tf.shape(X), stddev=0.1) if training else X, W)

    def run(name):
        optimizer = tf.keras.optimizers.SGD(0.5)

        @tf.function
        def train_step(X, Y_):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(
                    labels=Y_, logits=model(X, training=True)))
            optimizer.apply_gradients(zip(tape.gradient(loss, [W]), [W]))

        W.assign(tf.zeros([784, 10]))
        history = lab.train_model(model, train_step, optimizer, name="noisy", steps=40,
                                  seed=1, no_vis=True, data_dir=mnist_dir,
                                  history=tmp_path / f"{name}.json",
                                  save_model=tmp_path / name)
        assert history.config["xla"] is False
        return history.train["loss"]

    assert run("a") == run("b")


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


# ----------------------------------------------------------- what a run writes


STEPS = 200


@pytest.mark.slow
def test_one_run_writes_every_requested_output(run_script, tmp_path):
    result = run_script("mnist_1.0_softmax.py", "--no-vis", "--steps", STEPS,
                        "--history", tmp_path / "h.json",
                        "--save-model", tmp_path / "model",
                        "--save-png", tmp_path / "dash.png", "--save-movie", tmp_path / "run.gif",
                        "--logdir", tmp_path / "logs")
    assert result.returncode == 0, result.stderr
    if platform.machine() == "x86_64":  # the engine: oneDNN, also where TensorFlow leaves it off
        assert "; CPU, oneDNN, XLA (" in result.stdout.splitlines()[0]

    # the dashboard picture and the movie, and nothing half-written beside them
    picture = np.asarray(Image.open(tmp_path / "dash.png").convert("L"), dtype=float)
    assert picture.shape == (900, 1600) and picture.std() > 20
    movie = Image.open(tmp_path / "run.gif")
    assert movie.n_frames >= 5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]

    # the report: printed, and stored in the history
    history = json.loads((tmp_path / "h.json").read_text())
    matrix = np.array(history["report"]["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 10000
    assert np.trace(matrix) / 10000 == history["final"]["final_test_accuracy"]
    assert "confusion matrix (rows: true digit, columns: predicted digit)" in result.stdout
    assert "digit  precision  recall" in result.stdout

    # TensorBoard: one sub-folder per run, with scalars, histograms and an image
    runs = list((tmp_path / "logs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("mnist_1.0_softmax-")
    tags = {}
    for event_file in runs[0].glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            for value in event.summary.value:
                tags.setdefault(value.tag, set()).add(value.metadata.plugin_data.plugin_name)
    for scalar in ("train/accuracy", "train/loss", "learning_rate", "test/accuracy", "test/loss"):
        assert tags.get(scalar) == {"scalars"}, scalar
    # named after the lesson's globals
    assert tags.get("W") == {"histograms"} and tags.get("b") == {"histograms"}
    assert tags.get("misread test digits") == {"images"}


@pytest.mark.slow
def test_tensorboard_shows_the_logs_to_this_machine_only(tmp_path):
    """README says TensorBoard serves on localhost: what it listens on, while it runs."""
    tensorboard = Path(sys.executable).with_name("tensorboard")
    process = subprocess.Popen([str(tensorboard), "--logdir", str(tmp_path), "--port", "0"],
                               env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    watchdog = threading.Timer(120, process.kill)
    watchdog.start()
    try:
        for line in process.stdout:
            if re.search(r"TensorBoard .* at http://localhost:\d+/", line):
                break
        addresses = [c.laddr.ip for c in psutil.Process(process.pid).net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN]
    finally:
        watchdog.cancel()
        process.kill()
        process.communicate()
    assert addresses and all(ipaddress.ip_address(a).is_loopback for a in addresses), addresses


# ----------------------------------------------------------- bad input, Ctrl-C


@pytest.mark.parametrize("flags, complaint", [
    (["--steps", "0"], "--steps: must be at least 1"),
    (["--batch-size", "100000"], "--batch-size 100000 is larger than the 60,000 training images"),
    (["--batch-size", "ten"], "--batch-size: expected a whole number"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--save-movie", "run.avi"],
     "error: --save-movie run.avi: a movie file name must end in .mp4 or .gif"),
    (["--precision", "bf16", "--xla", "on"], "error: --precision bf16 with --xla on: "
     "TensorFlow's bfloat16 rewrite leaves XLA-compiled calls in float32"),
])
def test_bad_flags_one_line_no_traceback_before_tensorflow_loads(
        flags, complaint, run_script, no_tensorflow):
    result = run_script("mnist_1.0_softmax.py", *flags, env=no_tensorflow)
    assert result.returncode in (1, 2)
    assert complaint in result.stderr and "TENSORFLOW IMPORTED" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    help_text = run_script("mnist_3.0_convolutional.py", "-h", env=no_tensorflow)
    assert help_text.returncode == 0 and "--save-movie FILE" in help_text.stdout


def test_bf16_only_where_the_cpu_computes_in_bfloat16(run_script, no_tensorflow, tmp_path):
    """--precision bf16 on a CPU without bfloat16 arithmetic (AVX2 only: learners' laptops,
    AMD Zen 1 to 3): one line before TensorFlow loads, as TensorFlow would fall back to
    slower kernels. With it (AVX512_BF16 or AMX: Zen 4 and 5): a run in mixed precision."""
    if plumbing.bfloat16_arithmetic() is False:
        result = run_script("mnist_1.0_softmax.py", "--precision", "bf16", env=no_tensorflow)
        assert result.returncode == 1 and "TENSORFLOW IMPORTED" not in result.stderr
        assert result.stderr.strip() == (
            f"error: --precision bf16: this CPU ({plumbing.cpu_name()}) has no bfloat16 "
            "arithmetic (AVX512_BF16 or AMX), and TensorFlow would fall back to kernels 1.6 to "
            "12 times slower than float32 (docs/speed.md): leave --precision out")
    else:
        result = run_script("mnist_1.0_softmax.py", "--precision", "bf16", "--no-vis",
                            "--steps", "20", *outputs(tmp_path))
        assert result.returncode == 0, result.stderr
        assert "CPU, oneDNN, bfloat16 (" in result.stdout.splitlines()[0]
        assert json.loads((tmp_path / "run.json").read_text())["config"]["precision"] == "bf16"


def test_bf16_trains_in_mixed_precision_and_keeps_float32_variables(tmp_path, mnist_dir,
                                                                     monkeypatch):
    """A run with --precision bf16 (the CPU check aside: where the CPU lacks bfloat16
    arithmetic, TensorFlow's slower kernels give the same values): its curves are float32's
    but for rounding, its variables and saved model are float32, its history says bf16,
    and the next run in this process (a notebook's kernel) is float32 again."""
    monkeypatch.setattr(plumbing, "bfloat16_arithmetic", lambda: True)

    def run(name, precision):
        return lab.run("1.0", steps=40, seed=1, xla="off", precision=precision, no_vis=True,
                       data_dir=mnist_dir, history=tmp_path / f"{name}.json",
                       save_model=tmp_path / name)

    before, bf16, after = run("a", "float32"), run("b", "bf16"), run("c", "float32")
    assert before.train["loss"] == after.train["loss"]
    assert bf16.train["loss"] != before.train["loss"]
    assert np.allclose(bf16.train["loss"], before.train["loss"], rtol=0.05, atol=0.01)
    assert abs(bf16.test["accuracy"][-1] - before.test["accuracy"][-1]) < 0.01
    assert bf16.config["precision"] == "bf16" and bf16.config["flags"]["precision"] == "bf16"
    assert before.config["precision"] == "float32" and "precision" not in before.config["flags"]
    loaded = tf.saved_model.load(str(tmp_path / "b"))
    saved = loaded.signatures["serving_default"]
    assert saved.variables and all(v.dtype == tf.float32 for v in saved.variables)
    assert not tf.config.optimizer.get_experimental_options().get(blocks.BFLOAT16_REWRITE)


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


# --------------------------------------------- your own model: lab.train_model


def keras_train_step(model, optimizer):
    tf = plumbing.load_tensorflow()

    @tf.function
    def train_step(X, Y_):
        with tf.GradientTape() as tape:
            Ylogits = model(X, training=True)
            loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=Y_,
                                                                          logits=Ylogits))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))

    return train_step


@pytest.mark.parametrize("model, message", [
    (dense_model(inputs=(784,)), "the model takes inputs (None, 784), the lab gives it images "
                                 "[batch, 28, 28, 1]: build it for them (keras.Input((28, 28, "
                                 "1)), then layers.Flatten() before Dense layers)"),
    (dense_model(softmax=True), "the model's outputs are already probabilities (they sum to 1); "
                                "the lab expects logits and applies softmax in its loss: remove "
                                "the last softmax (layers.Dense(10), not Dense(10, "
                                'activation="softmax"))'),
    (keras.Sequential([keras.layers.Dense(10)]), "the model's outputs are (None, 28, 28, 10), "
                                                 "the lab expects logits [batch, 10], one per "
                                                 "digit: layers.Flatten() before the Dense "
                                                 "layers?"),
], ids=["input 784", "softmax", "no flatten"])
def test_lab_says_in_one_line_what_to_change_in_a_model(model, message, tmp_path, mnist_dir,
                                                        monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", mnist_dir)
    optimizer = keras.optimizers.Adam(0.003)
    flags = dict(name="mine", steps=20, no_vis=True, history=tmp_path / "h.json",
                 save_model=tmp_path / "m")
    with pytest.raises(SystemExit) as stop:  # a script: exit status 1 and the one line
        lab.train_model(model, keras_train_step(model, optimizer), optimizer, **flags)
    assert stop.value.code == f"error: {message}"
    monkeypatch.setattr(plumbing, "in_notebook", lambda: True)  # a notebook: the UserError
    with pytest.raises(UserError) as error:
        lab.train_model(model, keras_train_step(model, optimizer), optimizer, **flags)
    assert str(error.value) == message
    assert not (tmp_path / "h.json").exists()


def test_the_lab_traces_a_first_layer_of_few_filters_as_shifted_images(tmp_path, mnist_dir,
                                                                       monkeypatch):
    """For speed, lesson 3.0's first convolution (one-channel images, 4 filters of 5x5) is
    blocks.one_channel_conv2d in the training and test calls the lab traces; the saved
    model keeps TensorFlow's own convolution, and tf.nn.conv2d is TensorFlow's again."""
    monkeypatch.setenv("MNIST_DATA_DIR", mnist_dir)
    tensorflows, shifted, traced = tf.nn.conv2d, blocks.one_channel_conv2d, []
    monkeypatch.setattr(blocks, "one_channel_conv2d",
                        lambda X, W: traced.append(X.shape[0]) or shifted(X, W))
    W1 = tf.Variable(tf.random.truncated_normal([5, 5, 1, 4], stddev=0.1))
    B1 = tf.Variable(tf.fill([4], 0.1))
    W2 = tf.Variable(tf.random.truncated_normal([28 * 28 * 4, 10], stddev=0.01))
    B2 = tf.Variable(tf.zeros([10]))
    optimizer = keras.optimizers.Adam(0.003)

    def model(X, training=False):
        Y1 = tf.nn.relu(tf.nn.conv2d(X, W1, strides=1, padding="SAME") + B1)
        return tf.matmul(tf.reshape(Y1, [-1, 28 * 28 * 4]), W2) + B2

    @tf.function
    def train_step(X, Y_):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=Y_,
                                                                          logits=model(X)))
        gradients = tape.gradient(loss, [W1, B1, W2, B2])
        optimizer.apply_gradients(zip(gradients, [W1, B1, W2, B2]))

    history = lab.train_model(model, train_step, optimizer, name="first_layer", steps=60,
                              no_vis=True, history=tmp_path / "h.json",
                              save_model=tmp_path / "m")
    assert None in traced and lab.TEST_BATCH in traced  # training batches, test chunks
    assert tf.nn.conv2d is tensorflows
    assert history.test["accuracy"][-1] > 0.85
    saved = tf.saved_model.load(str(tmp_path / "m")).signatures["serving_default"]
    graph = saved.graph.as_graph_def()
    nodes = [*graph.node, *(node for f in graph.library.function for node in f.node_def)]
    assert any(node.op == "Conv2D" for node in nodes)
    assert not any("_XlaMustCompile" in node.attr for node in nodes)


def test_train_model_trains_a_keras_model_with_the_lab(tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", mnist_dir)
    conv2d = gradient_registry._registry["Conv2D"]  # TensorFlow's own, as in a fresh process
    monkeypatch.setitem(conv2d, "type", getattr(conv2d["type"], "tensorflows", conv2d["type"]))
    model, optimizer = dense_model(), keras.optimizers.Adam(0.003)
    history = lab.train_model(model, keras_train_step(model, optimizer), optimizer,
                              name="my_keras", steps=60, seed=1, no_vis=True,
                              history=tmp_path / "h.json", save_model=tmp_path / "m")
    assert history.name == "my_keras" and history.config["flags"] == {"seed": 1}
    assert type(optimizer).__name__ == "FusedAdam"  # the lab's one-op update (for speed only)
    assert conv2d["type"] is blocks._conv2d_gradient  # and the sub-pixel gradient
    assert history.test["step"][-1] == 60 and history.test["accuracy"][-1] > 0.85
    assert History.load(tmp_path / "h.json").name == "my_keras"
    assert (tmp_path / "m" / "saved_model.pb").exists()
    with pytest.raises(UserError, match=r"^argument --batch-size: must be at least 1, got 0$"):
        lab.train_model(model, None, optimizer, name="x", batch_size=0)


def test_parse_args_in_a_notebooks_cell_reads_no_kernel_argv(monkeypatch):
    """ipykernel's sys.argv: ipykernel_launcher.py -f kernel.json; a cell has no __file__."""
    monkeypatch.setattr(sys, "argv", ["/venv/ipykernel_launcher.py", "-f", "/tmp/kernel.json"])
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    monkeypatch.setattr(plumbing, "in_notebook", lambda: True)
    with pytest.raises(UserError, match=r'^in a notebook, name the run: lab.parse_args\(\.\.\., '
                                        r'name="my_network"\)'):
        lab.parse_args(None, steps=200)
    args = lab.parse_args(None, steps=200, name="my_network")
    assert (args.name, args.steps, args.flags) == ("my_network", 200, {})
    assert args.history == str(ROOT / "runs" / "my_network.json")
    assert args.save_model == str(ROOT / "models" / "my_network")


@pytest.fixture
def lab_folder_names():
    """A name no one else uses for runs in the lab's own runs/ and models/ (where every door
    writes by default), removed afterwards with what it wrote; folders made for it too."""
    name = f"test_issue28_{secrets.token_hex(4)}"
    made = [folder for folder in (plumbing.RUNS, plumbing.MODELS) if not folder.exists()]
    yield name
    for path in (plumbing.RUNS / f"{name}.json", plumbing.RUNS / f"{name}_fit.json"):
        path.unlink(missing_ok=True)
    for path in (plumbing.RUNS / name, plumbing.MODELS / name):
        shutil.rmtree(path, ignore_errors=True)
    for folder in made:
        with contextlib.suppress(OSError):
            folder.rmdir()  # (only if empty: others' runs stay)


def test_every_door_writes_the_labs_runs_folder_from_any_current_folder(
        lab_folder_names, tmp_path, mnist_dir, monkeypatch, digits_for_fit):
    """Issue 28: lab.train_model and DashboardCallback, called from another folder, write
    their histories into the lab's runs/ (and the model into its models/), as the lessons
    do: compare then finds them all in one place."""
    monkeypatch.setenv("MNIST_DATA_DIR", mnist_dir)
    monkeypatch.chdir(tmp_path)
    name = lab_folder_names
    model, optimizer = dense_model(), keras.optimizers.Adam(0.003)
    lab.train_model(model, keras_train_step(model, optimizer), optimizer, name=name, steps=20,
                    no_vis=True)
    assert History.load(plumbing.RUNS / f"{name}.json").final["steps"] == 20
    assert [p.suffix for p in (plumbing.RUNS / name).iterdir()] == [".json"], "its own copy"
    assert (plumbing.MODELS / name / "saved_model.pb").exists()

    import tensorflowvisu

    x, y = digits_for_fit
    model = dense_model()
    dashboard = tensorflowvisu.DashboardCallback((x, y), name=f"{name}_fit", live=False)
    model.fit(x, y, batch_size=100, epochs=1, callbacks=[dashboard], verbose=0)
    assert History.load(plumbing.RUNS / f"{name}_fit.json").final["steps"] == 10
    assert sorted(os.listdir(tmp_path)) == [], "nothing in the current folder"


@pytest.fixture
def digits_for_fit(mnist):
    """1,000 MNIST training digits as Keras users hold them: labels 0-9."""
    return mnist.train.images[:1000], mnist.train.labels[:1000].argmax(1)
