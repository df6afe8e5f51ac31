"""The lab's numbered lessons: short real runs, their models and parts, lesson 5.1's
moving average of the weights and lesson 5.2's ensemble. (Lesson 6.0: test_cluster.py.)

Full-length accuracy is measured by `python benchmarks/lab_time.py --all`, not here.
"""
import json
import runpy
import sys

import numpy as np
import pytest
import tensorflow as tf

import lab
import savedmodel
from conftest import FINAL_LINES, ROOT, child_env
from helpers import LESSONS, load_lesson


# The fast tier trains no convolutional lesson, and no dense one longer than a few hundred
# steps: two lessons end to end (1.0, 2.1); the other dense ones' models take a step.
CONVOLUTIONAL = ("3.0", "3.1", "4.2", "5.0", "5.1")
BATCH_NORM = ("4.0", "4.1")  # (over 5 s each here)
SLOW = (*CONVOLUTIONAL, *BATCH_NORM, "2.0", "2.2")
RUNS = [pytest.param(s, marks=pytest.mark.slow) if s.split("_")[1] in SLOW else s for s in LESSONS]
TRAINED = [pytest.param(s, marks=pytest.mark.slow)
           if s.split("_")[1] in (*CONVOLUTIONAL, *BATCH_NORM) else s for s in LESSONS]


# ------------------------------------------------------------------ short runs


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


# ------------------------------------------------------------------ the models


@pytest.mark.parametrize("script", TRAINED)
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


# -------------------------------------- 5.1: the moving average of the weights


@pytest.mark.slow
def test_the_averaged_weights_are_what_is_tested_and_saved(mnist, monkeypatch, tmp_path):
    lesson = load_lesson("mnist_5.1_batchnorm_convolutional_averaged.py", monkeypatch)
    variables, averages, network = lesson["variables"], lesson["averages"], lesson["network"]
    X, Y_ = tf.constant(mnist.test.images[:100]), tf.constant(mnist.test.labels[:100])
    before = [a.numpy() for a in averages]
    for _ in range(3):
        lesson["train_step"](X, Y_)
    moved = [not np.allclose(a.numpy(), b) for a, b in zip(averages, before)]
    assert all(moved), "every average follows its weight"
    assert not np.allclose(averages[0].numpy(), variables[0].numpy()), "an average, not a copy"
    tested = lesson["model"](X, training=False)
    np.testing.assert_allclose(tested, network(X, averages, False), rtol=1e-5, atol=1e-5)
    assert not np.allclose(tested, network(X, variables, False), atol=1e-3), "not the live weights"

    traced = tf.function(lesson["model"]).get_concrete_function(tf.TensorSpec([None, 28, 28, 1]))
    saved_ids = {id(v) for v in traced.variables}
    assert (all(id(a) in saved_ids for a in averages)
            and not any(id(v) in saved_ids for v in variables))
    savedmodel.save(lesson["model"], traced.variables, tmp_path / "model")
    probabilities = savedmodel.load(tmp_path / "model")(mnist.test.images[:100])
    np.testing.assert_allclose(probabilities, tf.nn.softmax(tested), rtol=1e-4, atol=1e-5)


@pytest.mark.slow  # (5.1: a convolutional lesson)
def test_the_moving_average_forgets_fast_at_first_then_slowly(monkeypatch, mnist):
    """The decay after step n: (1 + n) / (10 + n) at first, at most DECAY (0.999)."""
    lesson = load_lesson("mnist_5.1_batchnorm_convolutional_averaged.py", monkeypatch)
    averages, variables = lesson["averages"], lesson["variables"]
    X, Y_ = tf.constant(mnist.test.images[:100]), tf.constant(mnist.test.labels[:100])
    last = averages[-1].numpy()
    lesson["train_step"](X, Y_)  # the first step: n = 1 after it, decay 2/11
    np.testing.assert_allclose(averages[-1].numpy(), 2 / 11 * last + 9 / 11 * variables[-1].numpy(),
                               rtol=1e-5, atol=1e-6)
    assert lesson["DECAY"] == 0.999


# ------------------------------------------------------------ 5.2: an ensemble


ENSEMBLE = ROOT / "mnist_5.2_ensemble.py"


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Three small saved models (lesson 2.1's network, untrained, other seeds), and a
    model whose images are not 28x28."""
    folder = tmp_path_factory.mktemp("ensemble")
    saved = []
    for seed in (1, 2, 3):
        sys.argv = [str(ROOT / "mnist_2.1_five_layers_relu.py"), "--seed", str(seed), "--no-vis"]
        lesson = runpy.run_path(sys.argv[0], run_name="lesson")
        traced = tf.function(lesson["model"]).get_concrete_function(
            tf.TensorSpec([None, 28, 28, 1]))
        savedmodel.save(lesson["model"], traced.variables, folder / f"seed-{seed}")
        saved.append(folder / f"seed-{seed}")
    module = tf.Module()
    module.serve = tf.function(lambda images: {"probabilities": tf.nn.softmax(images[:, 0, :10])},
                               input_signature=[tf.TensorSpec([None, 32, 32], tf.float32,
                                                              name="images")])
    tf.saved_model.save(module, str(folder / "cifar"), signatures={"serving_default": module.serve})
    return saved, folder / "cifar"


@pytest.mark.slow  # (its members: three models saved, 8 s here)
def test_the_ensembles_probabilities_are_the_mean_of_its_members(members, mnist):
    ensemble = runpy.run_path(str(ENSEMBLE), run_name="lesson")
    models = ensemble["members"](members[0])
    images = mnist.test.images[:50, :, :, 0]
    probabilities, each = ensemble["vote"](models, images)
    assert each.shape == (3, 50, 10)
    for k, model in enumerate(models):
        np.testing.assert_allclose(each[k], model(images), rtol=1e-6)
    np.testing.assert_allclose(probabilities, np.mean([model(images) for model in models], axis=0),
                               rtol=1e-6)


@pytest.mark.slow
def test_the_ensemble_says_the_gain_of_each_member(members, tmp_path, mnist_dir):
    import subprocess

    result = subprocess.run([sys.executable, str(ENSEMBLE), *map(str, members[0]), "--save-png",
                             tmp_path / "ensemble.png"], env=child_env(mnist_dir),
                            capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "3 members, 10000 test digits"
    assert ([line.split(":")[0] for line in lines[4:7]]
            == [f"the first {k} together" for k in (1, 2, 3)])
    assert lines[-2].startswith("ensemble test accuracy: 0.")
    assert (tmp_path / "ensemble.png").stat().st_size > 10000


@pytest.mark.slow  # (lesson processes)
@pytest.mark.parametrize("problem", ["not a model", "other images"])
def test_a_member_that_does_not_fit_gets_one_line(members, tmp_path, problem, run_script):
    good = members[0][0]
    bad = tmp_path if problem == "not a model" else members[1]
    result = run_script("mnist_5.2_ensemble.py", good, bad, "--no-vis")
    assert result.returncode == 1
    line, = result.stderr.strip().splitlines()
    if problem == "not a model":
        assert line == f"error: model {tmp_path}: not a saved model (no saved_model.pb in it)"
    else:
        assert line.startswith(f"error: model {members[1]}: not a digit model saved by the lab")
        assert "images [N, 28, 28]" in line
