"""predict.py: preprocessing like MNIST's, the command line on pictures made here, bad
input, and the drawing pad driven by synthetic mouse events. (The saved model itself, found,
loaded and reloaded in a fresh process: test_savedmodel.py.)

The command line's tests share a model saved by a short real run of lesson 3.0 (conftest's
trained_model_dir, 600 steps); each predict.py run in a subprocess costs about 3 s
(TensorFlow loads). The drawing pad's mechanics need no convolution: a small dense model
(conftest's small_model_dir) reads their strokes.
"""
import shutil
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
from PIL import Image, ImageDraw

import savedmodel
import figures
import explain
import predict
from conftest import ROOT, child_env, drawn_digit
from helpers import MNIST_VARIANTS, SHARED_MODULES, parse, run_predict


# ---------------------------------------------------------------------------- helpers


def centre_of_mass(image):
    rows, columns = np.mgrid[0:image.shape[0], 0:image.shape[1]]
    return (rows * image).sum() / image.sum(), (columns * image).sum() / image.sum()


def ink_box(image):
    """(height, width) of the smallest box holding every non-zero pixel."""
    rows, columns = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
    return rows[-1] - rows[0] + 1, columns[-1] - columns[0] + 1


def similarity(a, b):
    """Cosine similarity of two 28x28 digits, at the best shift of at most one pixel."""
    best = 0.0
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            c = np.roll(a, (dy, dx), axis=(0, 1))
            best = max(best, float((c * b).sum() / (np.linalg.norm(c) * np.linalg.norm(b))))
    return best


# ----------------------------------------------------------------- preprocess: units


def test_preprocess_gives_28x28_float32_at_full_contrast():
    paper, ink = 0.65, 0.35  # grey ink on grey paper: a dull photo
    image = np.full((90, 70), paper, np.float32)
    image[20:70, 30:38] = ink
    image[20:28, 15:55] = ink
    digit = predict.preprocess(image)
    assert digit.shape == (28, 28) and digit.dtype == np.float32
    assert digit.min() == 0.0 and digit.max() == pytest.approx(1.0)
    # the field around the 20x20 box stays black
    assert np.all(digit[:, :2] == 0) and np.all(digit[:2] == 0)


def test_dark_on_light_and_light_on_dark_give_the_same_digit(mnist_test):
    images, _ = mnist_test
    for digit in images[:5]:
        image = Image.fromarray((digit * 255).astype(np.uint8))
        light = np.asarray(image.resize((100, 100), Image.Resampling.BICUBIC))
        a, b = predict.preprocess(light), predict.preprocess(255 - light)
        np.testing.assert_allclose(a, b, atol=1e-4)
        assert a.max() == pytest.approx(1.0)


def test_mnist_digits_come_out_nearly_as_they_are(mnist_test):
    """MNIST's digits are already prepared: preprocessing them again changes little."""
    images, _ = mnist_test
    scores = np.array([similarity(predict.preprocess(d), d) for d in images])
    assert np.mean(scores > 0.9) >= 0.95, np.sort(scores)[:10]
    for d in images[:50]:
        assert np.allclose(centre_of_mass(predict.preprocess(d)), (14, 14), atol=0.75)


def test_small_digit_in_a_corner_is_centred_and_fills_the_box():
    big = Image.new("L", (600, 400), 255)
    corner = drawn_digit(7, 60)
    big.paste(corner, (5, 335))  # bottom left
    digit = predict.preprocess(big)
    row, column = centre_of_mass(digit)
    assert abs(row - 14) <= 0.75 and abs(column - 14) <= 0.75
    height, width = ink_box(digit)
    assert 19 <= max(height, width) <= 20 and min(height, width) <= 20
    # the same as the same 7 drawn large in the middle of its own picture
    assert similarity(digit, predict.preprocess(drawn_digit(7, 600))) > 0.9


def test_aspect_ratio_is_kept():
    tall = np.zeros((200, 200), np.float32)
    tall[20:180, 96:104] = 1.0  # a "1": 160 high, 8 wide
    height, width = ink_box(predict.preprocess(tall))
    assert height in (19, 20) and width <= 3
    wide = tall.T.copy()  # a dash: 160 wide, 8 high
    height, width = ink_box(predict.preprocess(wide))
    assert width in (19, 20) and height <= 3


@pytest.mark.parametrize("picture", [
    Image.new("L", (50, 50), 255),
    Image.new("L", (50, 50), 0),
    Image.new("RGB", (40, 60), (30, 200, 10)),
    Image.new("RGBA", (50, 50), (0, 0, 0, 0)),  # fully transparent
    # only paper grain
    np.clip(0.9 + np.random.default_rng(0).uniform(-0.03, 0.03, (80, 80)), 0, 1),
], ids=["white", "black", "green", "transparent", "faint-noise"])
def test_blank_picture_raises_no_ink(picture):
    with pytest.raises(predict.NoInkError, match="^no ink: "):
        predict.preprocess(picture)


def test_paper_grain_and_shading_do_not_count_as_ink():
    """Noise below a quarter of the ink's contrast is dropped: the crop is the digit's."""
    rng = np.random.default_rng(1)
    paper = np.linspace(0.8, 0.95, 500)[None, :] + rng.uniform(-0.1, 0.1, (500, 500))
    paper[200:260, 240:248] = 0.1  # a small "1", dark ink
    digit = predict.preprocess(np.clip(paper, 0, 1))
    height, width = ink_box(digit)
    assert height in (19, 20) and width <= 4


def speckled(picture, count, seed=0):
    """The picture (uint8, dark ink on light paper) with `count` grey specks of dust, 1 to 3
    pixels across, scattered over the paper and none touching the ink."""
    rng = np.random.default_rng(seed)
    picture = picture.copy()
    ink = picture < 200
    height, width = picture.shape
    placed = 0
    while placed < count:
        size = int(rng.integers(1, 4))
        y, x = int(rng.integers(0, height - size)), int(rng.integers(0, width - size))
        if not ink[max(y - 2, 0):y + size + 2, max(x - 2, 0):x + size + 2].any():
            picture[y:y + size, x:x + size] = rng.integers(60, 160)  # grey, above predict.NOISE
            placed += 1
    return picture


def test_specks_of_dust_are_ignored(mnist_test, monkeypatch):
    """A 600x200 photo of a 9 with 50 specks of dust reads as the 9 alone."""
    images, labels = mnist_test
    nine = images[np.flatnonzero(labels == 9)[0]]
    paper = np.full((200, 600), 235, np.uint8)
    big = Image.fromarray((255 - nine * 255).astype(np.uint8)).resize((180, 180), Image.LANCZOS)
    paper[10:190, 250:430] = np.minimum(paper[10:190, 250:430], big)  # dark ink on the paper
    dusty = speckled(paper, 50)
    clean = predict.preprocess(paper)
    assert similarity(clean, nine) > 0.9
    np.testing.assert_allclose(predict.preprocess(dusty), clean, atol=1e-6)
    monkeypatch.setattr(predict, "SPECK", 0.0)  # specks kept: the crop is the photo, the 9 a blob
    assert similarity(predict.preprocess(dusty), clean) < 0.6


def test_a_digit_in_two_large_pieces_keeps_both():
    """A 5 whose top bar is written apart: a piece of the digit, not a speck."""
    image = Image.new("L", (300, 400), 255)
    draw = ImageDraw.Draw(image)
    draw.line([(110, 60), (230, 60)], fill=0, width=18)  # the top bar, on its own
    draw.line([(100, 95), (95, 200)], fill=0, width=18)
    draw.arc([70, 160, 240, 340], start=-150, end=150, fill=0, width=18)
    grey = np.asarray(image) / 255
    ink = predict._ink(grey)
    np.testing.assert_array_equal(predict._drop_specks(ink), ink)
    digit = predict.preprocess(grey)
    assert ink_box(digit)[0] in (19, 20)  # from the bar to the bottom of the arc
    assert digit[:8].sum() > 0.1 * digit.sum()  # the bar is there, at the top


def test_mnist_digits_lose_no_piece(mnist_test):
    """Real handwriting, broken strokes included: nothing in MNIST looks like a speck."""
    images, _ = mnist_test
    for digit in images:
        ink = predict._ink(digit)
        np.testing.assert_array_equal(predict._drop_specks(ink), ink)


def test_drop_specks_finds_8_connected_pieces():
    """Pieces touching by a corner are one piece; the smallest of 3 is dropped."""
    ink = np.zeros((12, 12), np.float32)
    ink[1:9, 1:3] = 1.0  # a stroke of 16 pixels...
    ink[9, 3] = ink[10, 4] = 1.0  # ...going on diagonally, touching by corners only
    ink[2:6, 8:11] = 0.5  # another large piece: 6 of ink (33 % of the first)
    ink[10, 10] = 0.5  # a speck: 0.5 of ink (3 %)
    kept = predict._drop_specks(ink)
    assert kept[10, 10] == 0
    kept[10, 10] = ink[10, 10]
    np.testing.assert_array_equal(kept, ink)


@pytest.mark.parametrize("convert", [
    lambda im: im.convert("RGB"),
    lambda im: Image.fromarray(np.asarray(im).astype(np.uint16) * 257),  # 16-bit grey
    lambda im: Image.merge("RGBA",  # ink on transparent
                           [im.point(lambda v: 0)] * 3 + [im.point(lambda v: 255 - v)]),
    lambda im: np.asarray(im) / 255.0,  # an array of floats
], ids=["rgb", "16-bit", "transparent-background", "float-array"])
def test_colour_depth_and_transparency_do_not_change_the_digit(convert):
    grey = drawn_digit(7, 120)
    np.testing.assert_allclose(predict.preprocess(convert(grey)), predict.preprocess(grey),
                               atol=1e-3)


# ------------------------------------------------------- the command line on pictures


@pytest.mark.slow
def test_mnist_digits_resized_inverted_png_and_jpeg_are_mostly_right(classified, pictures):
    _, truth = pictures
    _, _, found = classified
    for variant in MNIST_VARIANTS:
        names = [n for n in truth if n.startswith("mnist") and n.endswith(variant)]
        right = sum(found[n][0] == truth[n] for n in names)
        assert right >= len(names) - 1, (variant, {n: (truth[n], found[n][0]) for n in names})
    names = [n for n in truth if n.startswith("mnist")]
    assert sum(found[n][0] == truth[n] for n in names) >= 18


@pytest.mark.slow
def test_digits_drawn_with_lines_and_ellipses_are_right(classified, pictures):
    _, truth = pictures
    _, _, found = classified
    drawn = [n for n in truth if n.startswith("drawn")]
    wrong = {n: found[n][0] for n in drawn if found[n][0] != truth[n]}
    assert len(wrong) <= 1, wrong  # 18 pictures: 3 shapes, 3 sizes, 2 polarities


@pytest.mark.slow
def test_output_two_lines_per_image_in_order_and_nothing_on_stderr(classified):
    result, names, found = classified
    assert list(found) == names  # one entry per image, in the order given
    for digit, p, alternatives in found.values():
        assert p >= alternatives[0][1] >= alternatives[1][1]
        assert len({digit, alternatives[0][0], alternatives[1][0]}) == 3
        assert p + alternatives[0][1] + alternatives[1][1] <= 1.02
    assert result.stderr == ""  # TensorFlow's start-up chatter stays hidden


@pytest.mark.slow
def test_bad_inputs_one_line_each_the_others_still_classified(model_dir, tmp_path):
    drawn_digit(1, 100).save(tmp_path / "one.png")
    drawn_digit(0, 100, dark_on_light=False).save(tmp_path / "zero.jpg")
    (tmp_path / "a_folder").mkdir()
    (tmp_path / "text.png").write_text("not a picture\n")
    Image.new("L", (64, 64), 255).save(tmp_path / "blank.png")
    (tmp_path / "empty.png").write_bytes(b"")
    data = (tmp_path / "one.png").read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[:len(data) // 2])
    bad = {
        "missing.png": "no such file",
        "a_folder": "is a folder",
        "text.png": "not an image",
        "blank.png": "no ink",
        "empty.png": "empty file",
        "truncated.png": "cannot read the image",
    }
    args = ["one.png", *list(bad)[:3], "zero.jpg", *list(bad)[3:]]
    result = run_predict("--model", model_dir, *args, cwd=tmp_path)
    assert result.returncode == 1
    errors = result.stderr.splitlines()
    assert len(errors) == len(bad), result.stderr
    for line, (name, problem) in zip(errors, bad.items()):
        assert line.startswith(f"error: {name}: ") and problem in line, line
    found = parse(result.stdout)
    assert list(found) == ["one.png", "zero.jpg"]
    assert found["one.png"][0] == 1 and found["zero.jpg"][0] == 0


@pytest.mark.parametrize("args, code, message", [
    (["--bogus"], 1, "predict.py: error: unrecognized arguments: --bogus"),
    ([], 1, "predict.py: error: give one or more IMAGE files, --test-digit N, or --draw"),
    (["--draw", "x.png"], 1, "predict.py: error: --draw takes no IMAGE"),
    (["--model", "nowhere", "x.png"], 1, "error: model nowhere: no such folder"),
    (["--model", "pictures", "x.png"], 1,
     "error: model pictures: not a saved model (no saved_model.pb in it)"),
    (["--model", "pictures/one.png", "x.png"], 1, "error: model pictures/one.png: is a file"),
    (["--model", "MODEL", "missing.png", "pictures"], 1, "error: missing.png: no such file"),
    (["--model", "MODEL", "--draw"], 1, "error: no display: --draw needs a window"),
    (["x.png"], 1, "error: no trained model in "),  # no models/ next to predict.py
])
@pytest.mark.slow
def test_user_errors_are_one_line_and_never_load_tensorflow(args, code, message, no_tensorflow,
                                                            model_dir, tmp_path):
    app = tmp_path / "app"  # a predict.py with no models/ folder beside it
    app.mkdir()
    for module in SHARED_MODULES:  # predict.py and the modules it uses
        shutil.copy(module, app)
    (tmp_path / "pictures").mkdir()
    drawn_digit(1, 50).save(tmp_path / "pictures" / "one.png")
    args = [str(model_dir) if a == "MODEL" else a for a in args]
    result = run_predict(*args, cwd=tmp_path, script=app / "predict.py",
                         env=child_env(**no_tensorflow))
    assert result.returncode == code, result.stdout + result.stderr
    assert "TENSORFLOW IMPORTED" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith(message), result.stderr
    if args[-1:] == ["pictures"]:  # a missing file and a folder: one line each
        assert lines[1] == "error: pictures: is a folder, not an image"
    else:
        assert len(lines) == 1, result.stderr


@pytest.mark.slow
def test_show_without_a_display_says_so_and_still_prints(model_dir, tmp_path):
    drawn_digit(7, 90).save(tmp_path / "seven.png")
    result = run_predict("--model", model_dir, "seven.png", "--show", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert parse(result.stdout)["seven.png"][0] == 7
    assert result.stderr == ("no display: the picture is not shown (add --save-png FILE to keep "
                             "it)\n")
    assert "--save-png" in result.stderr and result.stderr.count("\n") == 1


@pytest.mark.slow
def test_save_png_draws_each_digit_and_its_probabilities(model_dir, pictures, tmp_path):
    folder, truth = pictures
    names = [n for n in truth if n.startswith("drawn")][::3][:4]
    result = run_predict("--model", model_dir, *[folder / n for n in names],
                         "--save-png", tmp_path / "p.png", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"saved {tmp_path / 'p.png'}\n"
    with Image.open(tmp_path / "p.png") as picture:
        assert picture.format == "PNG"
        pixels = np.asarray(picture.convert("RGB")).astype(int)
    assert pixels.shape[1] > 1000 and pixels.shape[0] > 400  # 3 columns, 2 rows
    blue = np.all(np.abs(pixels - [0, 114, 178]) < 8, axis=2)  # the predicted digits' bars
    assert blue.sum() > 4 * 300
    black = np.all(pixels < 8, axis=2)  # the digits' black fields
    assert black.sum() > 4 * 3000


@pytest.mark.parametrize("count", [1, 2, 7])
@pytest.mark.parametrize("dpi", [72, 100])  # on screen and in notebooks; in the PNG
def test_pictures_fit_their_figure(count, dpi):
    """The figure is sized to its content: every title inside it, whole, none overlapping."""

    long_name = "a_photo_of_my_handwritten7.png"  # 30 characters, shown whole
    names = [f"pictures/{long_name}"] + [f"digit{k}.jpg" for k in range(1, count)]
    rng = np.random.default_rng(count)
    digits, probabilities = rng.random((count, 28, 28)), rng.dirichlet(np.ones(10), count)
    best = int(np.argmax(probabilities[0]))
    fig = figures.offscreen_figure(predict._figure_size(names), dpi=dpi)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. constrained layout giving up: too small
        predict.plot_predictions(fig, names, digits, probabilities)
        fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    titles = [fig.texts[0]] + [ax.title for ax in fig.axes]
    assert titles[0].get_text() == predict.TITLE
    answer = f"{best} (p={probabilities[0, best]:.2f})"
    assert [ax.get_title() for ax in fig.axes[:2]] == [long_name, answer]
    boxes = [title.get_window_extent(renderer) for title in titles]
    for title, box in zip(titles, boxes):
        assert (box.x0 >= 0 and box.y0 >= 0 and box.x1 <= fig.bbox.x1 and box.y1 <= fig.bbox.y1), \
            (title.get_text(), box.bounds, fig.bbox.bounds)
    for i, box in enumerate(boxes):
        assert not any(box.overlaps(other) for other in boxes[i + 1:]), titles[i].get_text()
    for image_ax in fig.axes[::2]:  # each digit big enough to read: 1.5 inches, 108 screen pixels
        assert image_ax.get_window_extent(renderer).width >= 1.5 * dpi
    if count == 1:  # one picture: as wide as its title needs, not much more
        assert boxes[0].width > 0.8 * fig.bbox.width


def test_save_png_with_one_picture_and_long_names(tmp_path):
    """The PNG is the figure at 100 dpi; names longer than 40 characters are cut in the middle."""
    long_name = "photos/2024/" + "x" * 50 + ".jpeg"
    assert explain.short_name(long_name, 40) == "x" * 20 + "…" + "x" * 14 + ".jpeg"  # 40 characters
    assert explain.short_name("folder/" + "y" * 40, 40) == "y" * 40
    names = ["a_photo_of_my_handwritten7.png"]
    predict.show(names, np.zeros((1, 28, 28)), np.full((1, 10), 0.1), save_png=tmp_path / "one.png")
    width, height = predict._figure_size(names)
    with Image.open(tmp_path / "one.png") as picture:
        assert picture.size == (round(width * 100), round(height * 100))
        pixels = np.asarray(picture.convert("L"))
    edges = [pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]]
    assert [edge.min() for edge in edges] == [255] * 4  # white all round: nothing runs off it


@pytest.mark.slow
def test_save_png_to_a_missing_folder_fails_before_loading_tensorflow(no_tensorflow, model_dir,
                                                                      tmp_path):
    drawn_digit(1, 50).save(tmp_path / "one.png")
    result = run_predict("--model", model_dir, "one.png", "--save-png", "no/such/p.png",
                         cwd=tmp_path, env=no_tensorflow)
    assert result.returncode == 1
    assert result.stderr.startswith("error: --save-png no/such/p.png: no folder")


# -------------------------------------------------------- the saved model on its own


# ------------------------------------------------------------------ the drawing pad


class CountingModel:
    """The real model, counting how often the pad asks it."""

    def __init__(self, model):
        self.model, self.calls = model, 0

    def __call__(self, images):
        self.calls += 1
        return self.model(images)


@pytest.fixture(scope="module")
def small_model(small_model_dir):
    """The small dense model, loaded: enough to read a stroke, quick to train."""
    return savedmodel.load(small_model_dir)


@pytest.fixture
def pad(small_model):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 5.2))
    FigureCanvasAgg(fig)
    return predict.DrawingPad(CountingModel(small_model), fig)


def mouse(pad, name, x, y):
    """A synthetic mouse event at pixel (x, y) of the pad's 280x280 canvas."""
    from matplotlib.backend_bases import MouseEvent

    canvas = pad.fig.canvas
    display_x, display_y = pad.pad_ax.transData.transform((x, y))
    canvas.callbacks.process(name, MouseEvent(name, canvas, display_x, display_y, button=1))


def stroke(pad, points):
    mouse(pad, "button_press_event", *points[0])
    for point in points[1:]:
        mouse(pad, "motion_notify_event", *point)
    mouse(pad, "button_release_event", *points[-1])


def test_pad_a_vertical_stroke_is_inked_and_read_as_a_one(pad, tmp_path):
    assert pad.image.shape == (280, 280) and pad.image.max() == 0 and pad.digit is None
    stroke(pad, [(140, y) for y in range(40, 241, 10)])
    assert np.all(pad.image[40:241, 138:143] == 1.0)  # ink all along the stroke...
    assert pad.image[:, :110].max() == 0 and pad.image[:, 171:].max() == 0  # ...and only there
    assert pad.image[:20].max() == 0 and pad.image[261:].max() == 0
    assert pad.digit == 1
    assert pad.probabilities.sum() == pytest.approx(1, abs=1e-5)
    np.testing.assert_array_equal(pad.seen, predict.preprocess(pad.image))
    assert [bar.get_height() for bar in pad.bars] == pytest.approx(list(pad.probabilities))
    assert pad.answer.get_text() == "1"
    pad.fig.savefig(tmp_path / "pad.png")  # the figure draws


def test_pad_predicts_at_a_bounded_rate_and_when_the_pen_lifts(pad):
    points = [(140, y) for y in range(40, 241, 5)]
    pad.INTERVAL = 3600  # a slow clock: while drawing, only the first motion predicts
    stroke(pad, points)
    assert pad.model.calls == 2  # the first motion, and the release
    pad.INTERVAL = 0
    stroke(pad, [(100, 60), (120, 60), (140, 60)])
    assert pad.model.calls == 2 + 2 + 1


def test_pad_ignores_moves_without_the_button_and_clicks_outside(pad):
    mouse(pad, "motion_notify_event", 140, 140)
    mouse(pad, "button_press_event", 400, 140)  # outside the canvas, on the bars side
    mouse(pad, "motion_notify_event", 140, 140)
    assert pad.image.max() == 0 and pad.model.calls == 0


def test_pad_c_clears(pad):
    from matplotlib.backend_bases import KeyEvent

    stroke(pad, [(140, y) for y in range(40, 241, 10)])
    assert pad.digit is not None
    canvas = pad.fig.canvas
    canvas.callbacks.process("key_press_event", KeyEvent("key_press_event", canvas, "c"))
    assert pad.image.max() == 0 and pad.seen.max() == 0
    assert pad.digit is None and pad.probabilities is None
    assert all(bar.get_height() == 0 for bar in pad.bars) and pad.answer.get_text() == "?"


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


# -------------------------------------------------------- the drawing pad, for real


@pytest.mark.slow
def test_draw_in_a_real_window_on_xvfb(xvfb, model_dir, tmp_path):
    """predict.py --draw in a Tk window: a mouse drag draws and is read (the model, saved by
    the lab, can be explained: the layers are shown beside the pad), c clears, q closes."""
    from PIL import ImageGrab

    if not shutil.which("xdotool"):
        pytest.skip("xdotool is needed to move the mouse (apt-get install xdotool)")

    env = child_env(DISPLAY=xvfb, MPLBACKEND="TkAgg")

    def xdotool(*args):
        return subprocess.run(["xdotool", *map(str, args)], env=env, capture_output=True, text=True,
                              timeout=30).stdout

    def wait_for(condition, what, seconds=30):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            assert process.poll() is None, f"predict.py --draw ended: {process.communicate()}"
            value = condition()
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}")

    process = subprocess.Popen([sys.executable, str(ROOT / "predict.py"),
                                "--model", str(model_dir), "--draw"],
                               cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        window = wait_for(
            lambda: xdotool("search", "--onlyvisible", "--name", "predict.py --draw").split(),
            "the window")[0]
        geometry = xdotool("getwindowgeometry", "--shell", window)
        shape = dict(line.split("=") for line in geometry.split())
        left, top, width, height = (int(shape[k]) for k in ("X", "Y", "WIDTH", "HEIGHT"))

        def screen():
            picture = ImageGrab.grab(xdisplay=xvfb).crop((left, top, left + width, top + height))
            pixels = np.asarray(picture.convert("RGB")).astype(int)
            pad = pixels[int(0.28 * height):int(0.72 * height), int(0.03 * width):int(0.26 * width)]
            bars = pixels[int(0.82 * height):int(0.94 * height),
                          int(0.57 * width):int(0.99 * width)]
            blue = np.all(np.abs(bars - [0, 114, 178]) < 12, axis=2)  # the predicted digit's bar
            return int((pad.min(axis=2) > 200).sum()), int(blue.sum())

        wait_for(lambda: screen() == (0, 0), "the empty pad")  # visible is not yet painted
        x, y = left + 0.145 * width, top + 0.5 * height  # the middle of the drawing pad
        xdotool("mousemove", int(x), int(y - 0.2 * height), "mousedown", 1)
        for step in range(1, 21):
            xdotool("mousemove", int(x), int(y - 0.2 * height + step * 0.02 * height))
        xdotool("mouseup", 1)
        def answered():  # (a busy machine shows an answer to the stroke's first part first)
            white, blue = screen()
            # the whole stroke: 40% of the window high, a few % wide, and the answer to it
            return white > 0.3 * height * 0.02 * height and blue > 100

        wait_for(answered, "the stroke and its prediction")
        xdotool("key", "c")
        wait_for(lambda: screen() == (0, 0), "the pad to clear")
        xdotool("key", "q")
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err
        assert "Traceback" not in err
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
