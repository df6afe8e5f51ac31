"""What the network sees (explain.py): the explain signature every lesson saves, checked
against the lesson's own model; the attribution's meaning; the picture; the errors."""
import re
import sys

import numpy as np
import pytest
import tensorflow as tf

import savedmodel
import pictures
import figures
import explain
import predict
from conftest import ROOT, child_env
from test_lessons import LESSONS, load_lesson

SHAPE = re.compile(r"\b(Y\d) \[batch, ([\d, ]+)\]")


def sketch_shapes(script):
    """The layer shapes the lesson's ASCII sketch announces: {"Y1": [28, 28, 4], ...}."""
    doc = (ROOT / script).read_text().split('"""')[1]
    shapes = {name: [int(n) for n in dims.split(",")] for name, dims in SHAPE.findall(doc)}
    return {name: dims for name, dims in shapes.items()
            if dims != [10]}  # the output: probabilities


def lesson_variables(lesson):
    traced = tf.function(lesson["model"]).get_concrete_function(tf.TensorSpec([None, 28, 28, 1]))
    weights = [v for v in traced.variables if len(v.shape) >= 2]  # as tested and saved
    return traced.variables, pictures.first_layer(weights)


@pytest.mark.parametrize("script", [s for s in LESSONS if "4.2" not in s and "5.0" not in s] + [
    pytest.param(s, marks=pytest.mark.slow) for s in LESSONS if "4.2" in s or "5.0" in s])
def test_the_saved_layers_are_the_lessons_own(script, mnist, monkeypatch, tmp_path):
    """Saved, then loaded without the lesson's code: every layer's output for a digit equals
    what the lesson's model computes, in the sketch's order and shapes."""
    lesson = load_lesson(script, monkeypatch)
    variables, first = lesson_variables(lesson)
    savedmodel.save(lesson["model"], variables, tmp_path / "model", filters=first)
    digits = mnist.test.images[:3, :, :, 0]
    seen = explain.explain(digits, tmp_path / "model")

    savedmodel._naming.append({})  # the lesson's own model, its layers named as it runs
    logits = lesson["model"](tf.constant(digits[..., None]))
    own = savedmodel._naming.pop()
    expected = sketch_shapes(script)
    assert list(seen[0].layers) == list(own) == list(expected), \
        "every layer of the sketch, in order"
    for k in range(3):
        np.testing.assert_allclose(seen[k].probabilities, tf.nn.softmax(logits[k]), atol=1e-5)
        for name, Y in own.items():
            assert list(seen[k].layers[name].shape) == expected[name]
            np.testing.assert_allclose(seen[k].layers[name], Y[k], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(seen[0].filters, first.numpy())
    reads_the_image = lesson.get("W1", lesson.get("W"))
    if "averages" in lesson:  # 5.1: what is tested and saved is the average of W1
        reads_the_image = lesson["averages"][lesson["variables"].index(reads_the_image)]
    assert first is reads_the_image, "the weights that read the image"
    assert seen[0].attribution.shape == (28, 28)


@pytest.fixture(scope="module")
def trained(trained_model_dir):
    """Lesson 3.0 trained for 600 steps (about 97.5% on the test digits), saved, loaded."""
    return savedmodel.load(trained_model_dir)


@pytest.mark.slow
def test_the_attribution_shows_which_ink_made_the_answer(trained, mnist):
    """Deletion: blanking the ink pixels the attribution ranks highest (a fifth of the ink)
    lowers the answer's probability far more than blanking as many ink pixels at random.
    The plain gradient, by contrast, points mostly off the ink."""
    rng = np.random.default_rng(0)
    digits = mnist.test.images[:60, :, :, 0]
    seen = explain.explain(digits, trained)
    drops = {"attribution": [], "random": []}
    for one in seen:
        ink = np.flatnonzero(one.image.ravel() > 0.2)
        k = len(ink) // 5
        ranked = ink[np.argsort(-one.attribution.ravel()[ink])][:k]
        for kind, chosen in (("attribution", ranked),
                             ("random", rng.choice(ink, k, replace=False))):
            blanked = one.image.copy().ravel()
            blanked[chosen] = 0
            p = trained(blanked.reshape(1, 28, 28))[0][one.answer]
            drops[kind].append(one.probabilities[one.answer] - p)
    attribution, random = np.mean(drops["attribution"]), np.mean(drops["random"])
    assert attribution > 0.3 and attribution > 10 * random, (attribution, random)


@pytest.mark.slow
def test_predict_explain_draws_pictures_and_says_the_answers(trained, tmp_path, mnist_dir):
    result = predict_run("--model", trained.folder, "--explain", "--test-digit", "0",
                         "--test-digit", "1", "--save-png", tmp_path / "seen.png",
                         mnist_dir=mnist_dir, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    answers = [re.fullmatch(r"test digit (\d) \(a (\d)\): (\d) \(p=[01]\.\d\d\)", line).groups()
               for line in result.stdout.splitlines()]
    assert answers == [("0", "7", "7"), ("1", "2", "2")]
    from PIL import Image

    for name in ("seen.png", "seen-2.png"):
        picture = np.asarray(Image.open(tmp_path / name).convert("L"), dtype=float)
        assert picture.shape == (900, 1600) and picture.std() > 20


def predict_run(*args, mnist_dir, cwd):
    import subprocess

    return subprocess.run([sys.executable, str(ROOT / "predict.py"), *map(str, args)], cwd=cwd,
                          env=child_env(mnist_dir), capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_explain_errors_are_one_line(trained, tmp_path, mnist_dir, monkeypatch):
    # a model saved without the explain signature (by an older lab)
    lesson = load_lesson("mnist_1.0_softmax.py", monkeypatch)
    variables, _ = lesson_variables(lesson)
    module = tf.Module()
    module.variables_to_save = list(variables)
    module.serve = tf.function(
        lambda images: {"probabilities": tf.nn.softmax(lesson["model"](images[..., None]))},
        input_signature=[tf.TensorSpec([None, 28, 28], tf.float32, name="images")])
    tf.saved_model.save(module, str(tmp_path / "old"), signatures={"serving_default": module.serve})
    from PIL import Image

    Image.new("L", (40, 40), 255).save(tmp_path / "blank.png")
    Image.new("L", (40, 40), 255).save(tmp_path / "digit.png")
    cases = [
        (["--model", tmp_path / "old", "--explain", "--test-digit", "5"],
         f"error: model {tmp_path / 'old'}: saved by an older version of the lab, "
         "it cannot be explained: run its lesson again"),
        (["--model", tmp_path, "--explain", "--test-digit", "5"],
         f"error: model {tmp_path}: not a saved model"),
        (["--model", trained.folder, "--explain", "blank.png"], "error: blank.png: no ink"),
    ]
    for args, message in cases:
        result = predict_run(*args, mnist_dir=mnist_dir, cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        assert (result.stderr.startswith(message)
                and len(result.stderr.strip().splitlines()) == 1), result.stderr


def test_explain_in_python_refuses_a_digit_without_ink(monkeypatch):
    class Model(savedmodel.Model):  # a loaded model that is never asked
        def __init__(self):
            pass

        def explain(self, images):
            raise AssertionError("not asked")

    with pytest.raises(explain.UserError, match="image 1 has no ink: nothing to explain"):
        explain.explain(np.stack([np.eye(28), np.zeros((28, 28))]), Model())


def test_mosaic_keeps_every_map_at_its_place():
    maps = np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5)
    picture = pictures.mosaic(maps, aspect=10)
    assert picture.shape == (2, 5 * 4 - 1)  # one row of 5 maps, 1 pixel apart
    for k in range(5):
        np.testing.assert_array_equal(picture[:, k * 4:k * 4 + 3], maps[..., k])
    assert np.isnan(picture[:, 3]).all()


@pytest.mark.slow
def test_the_pad_shows_every_layer_as_the_pen_moves(trained):
    """predict.py --draw with a model that can be explained: the layers follow the drawing."""
    from matplotlib.backend_bases import MouseEvent

    fig = figures.offscreen_figure((16, 9))
    pad = predict.DrawingPad(trained, fig, explain=True)
    pad.INTERVAL = 0  # predict at every motion
    assert pad.view.answer.get_text() == "the output: ?"
    canvas = fig.canvas
    fig.canvas.draw()

    def event(kind, x, y, button=1):
        display = pad.pad_ax.transData.transform((x, y))
        return MouseEvent(kind, canvas, *display, button=button)

    pad.on_press(event("button_press_event", 140, 40))
    for y in range(40, 250, 15):  # a vertical stroke: a one
        pad.on_motion(event("motion_notify_event", 140, y))
    pad.on_release(event("button_release_event", 140, 250))
    assert pad.digit == 1
    assert pad.view.answer.get_text().startswith("the output: 1 (p=")
    first = pad.view.layer_images["Y1"].get_array()
    assert np.nanmax(first) > 0, "the first layer's feature maps light up"


@pytest.mark.xfail(strict=True, reason="a defect at 6427a39, reported: Dashboard(view='f') "
                   "and the key f raise TypeError in Panels.show (tensorflowvisu.py:356)")
def test_the_dashboard_shows_the_first_layers_filters_as_they_train(tmp_path):
    """Key f (or --view f, which --save-movie records): the first layer's weights as
    pictures, updated at every test: a convolution's filters, a dense layer's 28x28 maps."""
    import tensorflowvisu

    dashboard = tensorflowvisu.Dashboard("filters", 100, live=False, png=tmp_path / "f.png",
                                         view="f")
    rng = np.random.default_rng(0)
    shown = []
    for step in (0, 100):
        filters = rng.normal(size=(5, 5, 1, 4))
        dashboard.train(step, 0.5, 1.0)
        dashboard.test(step, 0.5, 1.0, filters=filters)
        dashboard.drawn()
        shown.append(np.array(dashboard.panels.filters.image.get_array()))
        first = shown[-1][:5, :5]  # the first filter, top left, as given
        np.testing.assert_allclose(first, filters[:, :, 0, 0])
        assert (dashboard.panels.filters.ax.get_visible()
                and not dashboard.panels.axes[0].get_visible())
    assert not np.array_equal(shown[0], shown[1]), "as they train"
    assert np.isfinite(shown[1]).sum() == 4 * 25, "four 5x5 filters, apart"
    dashboard.show_panels(1, 2, 3, 4, 5, 6)  # key 0: back to the six panels
    assert (not dashboard.panels.filters.ax.get_visible()
            and dashboard.panels.axes[0].get_visible())

    dense = tensorflowvisu.Dashboard("dense", 10, live=False, png=tmp_path / "d.png", view="f")
    weights = rng.normal(size=(784, 10))  # lesson 1.0: one map per digit
    dense.test(0, 0.1, 2.3, filters=weights)
    dense.drawn()
    picture = dense.panels.filters.image.get_array()
    assert np.isfinite(picture).sum() == 10 * 784
    np.testing.assert_allclose(picture[:28, :28], weights[:, 0].reshape(28, 28))
