"""Past 99.6%: lesson 5.1's moving average of the weights, lesson 5.2's ensemble."""
import runpy
import sys

import numpy as np
import pytest
import tensorflow as tf

import savedmodel
from conftest import ROOT, child_env
from test_lessons import load_lesson

ENSEMBLE = ROOT / "mnist_5.2_ensemble.py"


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
