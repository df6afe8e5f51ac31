"""explain.py: what the network sees of one digit: the attribution's meaning, the
picture and its title, predict.py --explain, the errors."""
import re
import sys

import numpy as np
import pytest
import tensorflow as tf

import explain
import savedmodel
from conftest import ROOT, child_env
from helpers import lesson_variables, load_lesson


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


@pytest.fixture
def drawn_figures(monkeypatch):
    """The figures explain.show draws into a PNG file, kept to be read."""
    import figures

    made = []

    def offscreen_figure(*args, **kwargs):
        made.append(offscreen(*args, **kwargs))
        return made[-1]

    offscreen = figures.offscreen_figure
    monkeypatch.setattr(figures, "offscreen_figure", offscreen_figure)
    return made


def test_lesson_1_0_explained_titles_notes_and_labels(small_model_dir, mnist, tmp_path,
                                                     drawn_figures):
    """Issue 28, predict.py --explain on lesson 1.0's model and a picture in a deep folder:
    the title names the file by its base name, whole and inside the picture; the empty
    quarter (no hidden layer named) says how to name one; the ten weight pictures say
    which digit each is for."""
    model = savedmodel.load(small_model_dir)
    deep = tmp_path.joinpath(*["a_rather_long_folder_name"] * 6)
    long_name = "a_digit_drawn_on_my_tablet_with_a_name_far_longer_than_any_title_holds_7.png"
    names = [str(deep / "my_seven.png"), str(deep / long_name)]
    seen = explain.explain(np.stack([mnist.test.images[0, :, :, 0]] * 2), model, names)
    shown = []
    for one in seen:
        explain.show(one, save_png=tmp_path / "seen.png")
        fig = drawn_figures[-1]
        title = fig.get_suptitle()
        assert title.startswith("What the network sees of "), title
        shown.append(title.removeprefix("What the network sees of "))
        box = fig._suptitle.get_window_extent(fig.canvas.get_renderer())
        assert 0 <= box.x0 and box.x1 <= fig.bbox.width, "the title is whole in the picture"
    assert shown[0] == "my_seven.png", "the base name, not the folders"
    assert "/" not in shown[1] and len(shown[1]) <= explain.TITLE_AT_MOST
    start, _, end = shown[1].partition("…")  # a long name: its start and its end
    assert long_name.startswith(start) and long_name.endswith(end) and end.endswith("_7.png")
    texts = [text.get_text() for ax in fig.axes for text in ax.texts]
    note = [text for text in texts if "No hidden layer is named" in text]
    assert len(note) == 1 and "lab.name_layers(Y1=Y1, Y2=Y2, ...)" in note[0]
    filters = next(ax for ax in fig.axes if "one per digit" in ax.get_title())
    assert [text.get_text() for text in filters.texts] == [str(d) for d in range(10)]
