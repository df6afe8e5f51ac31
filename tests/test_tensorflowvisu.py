"""tensorflowvisu.py: the dashboard fed by a training loop (its six panels, keys, pause,
Ctrl-C, the filters' view), any loop as docs/your-own-network.md writes it, a finished
run's panel (show_panel), the command line, and runs without a window.

Everything runs on synthetic data with the Agg backend (conftest.py sets MPLBACKEND=Agg),
except a few child processes without any display, and the documented loop on real MNIST.
"""
import json
import math
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.backend_bases import KeyEvent

import figures
import pictures
import tensorflowvisu as tv
from conftest import ROOT, child_env
from helpers import assert_picture, fake_digits, fake_training, run_python, saved_history
from history import History
from plumbing import UserError
from tensorflowvisu import Dashboard


MODULE = str(ROOT / "tensorflowvisu.py")


# The page of docs/ that shows the plain loop (tests/test_docs.py runs its every block too).
YOUR_NETWORK = ROOT / "docs" / "your-own-network.md"


# --------------------------------------------------------------------- helpers


def press(dashboard, key):
    canvas = dashboard.figure.canvas
    canvas.callbacks.process("key_press_event", KeyEvent("key_press_event", canvas, key))


def visible_panels(dashboard):
    return [k + 1 for k, ax in enumerate(dashboard.figure.axes[:6]) if ax.get_visible()]


def visible_texts(fig):
    return [t.get_text() for t in fig.texts if t.get_visible()]


def red_pixels(image):
    """How many pixels have the background of the misread digits."""
    background = (pictures.ERROR_BACKGROUND * 255).astype(int)
    return int(np.all(np.abs(image.astype(int) - background) <= 3, axis=-1).sum())


def docs_loop():
    """The plain loop of docs/your-own-network.md, as written there."""
    blocks = re.findall(r"```python\n(.*?)```", YOUR_NETWORK.read_text(), re.S)
    loop, = [block for block in blocks if 'tensorflowvisu.Dashboard("my_loop"' in block]
    return loop


# --------------------------------------------------------------- the dashboard


@pytest.fixture
def trained(tmp_path):
    """A dashboard (no window; a PNG at the end) after a short fake training."""
    dashboard = Dashboard("fake run", 300, distribution_titles=("batch-max activations", "biases"),
                          live=False, png=tmp_path / "dashboard.png")
    assert not dashboard.live and dashboard.wants_pictures
    assert dashboard.figure is None, "no figure until one is needed"
    fake_training(dashboard, 300)
    return dashboard


def test_dashboard_renders_the_training_into_a_png(trained, tmp_path):
    dashboard, path = trained, tmp_path / "dashboard.png"
    assert not path.exists(), "the PNG: the final state, at the end"
    assert dashboard.save() == [path]
    image = assert_picture(path)
    assert image.shape == (900, 1600, 3)
    assert red_pixels(image) > 2000, "misrecognised digits on red backgrounds"
    assert os.listdir(path.parent) == ["dashboard.png"]

    history = dashboard.history
    accuracy, loss, _, panel4, _, _ = dashboard.figure.axes[:6]
    train_line, test_line = accuracy.lines
    assert list(train_line.get_xdata()) == history.train["step"] == [*range(0, 300, 20), 300]
    assert list(test_line.get_ydata()) == history.test["accuracy"]
    assert list(loss.lines[1].get_ydata()) == history.test["loss"]
    assert accuracy.get_xlim() == (0, 300)
    assert accuracy.get_ylim()[0] == 0, "a short run shows its climb"
    assert "step 300 / 300" in visible_texts(dashboard.figure)
    low, high = loss.get_ylim()
    assert low <= min(history.test["loss"]) and high >= max(history.test["loss"])
    assert panel4.get_title() == "Batch-max activations"
    assert "test max 9" in accuracy.get_title()


def test_the_dashboard_keeps_the_runs_history(tmp_path):
    """Any loop feeds it: the dashboard records what it is told in its History, with the
    time since the start; one that nothing shows computes no picture (lab --no-vis)."""
    dashboard = Dashboard("quiet", 300, config={"lr": 0.003}, live=False)
    assert not dashboard.live and not dashboard.wants_pictures
    fake_training(dashboard, 300)
    assert dashboard.figure is None, "digits and histograms left alone: nothing would show them"
    history = dashboard.history
    assert history.name == "quiet" and history.config == {"lr": 0.003, "steps": 300}
    assert history.train["step"] == [*range(0, 300, 20), 300]
    assert history.test["step"] == [*range(0, 200, 20), 200, 300]
    assert history.train["learning_rate"] == [0.003] * 16
    times = history.train["wall_time"]
    assert times == sorted(times) and 0 <= times[0] <= times[-1] <= dashboard.clock() < 60
    assert history.max_test_accuracy > 0.9

    paths = [tmp_path / "run.json", tmp_path / "runs" / "quiet.json"]
    assert dashboard.save(*paths) == paths
    for path in paths:
        assert json.loads(path.read_text()) == history.to_dict()
    assert history.panels == {}, "nothing was shown: no pictures to keep"
    dashboard.finish()
    assert History.load(paths[1]).test["step"] == history.test["step"]
    fig = dashboard.drawn()  # a picture on demand, even now
    assert list(fig.axes[0].lines[1].get_xdata()) == history.test["step"]

    other = Dashboard("x", live=False)
    other.train(0, 0.1, 2.3)  # a loop without a learning rate to tell
    assert math.isnan(other.history.train["learning_rate"][0])


def test_continue_from_an_interrupted_run_goes_on_with_its_history_and_clock():
    """Lesson 6.0 resumes a run from its checkpoint: the history up to that step, and the
    run's clock where it was then."""
    earlier = History("mnist_6.0_distributed", {"steps": 1000})
    for i in range(0, 801, 20):
        earlier.append_train(i, 0.9, 0.3, 0.003, 100 + i / 10)
        earlier.append_test(i, 0.95, 0.2, 100 + i / 10)
    dashboard = Dashboard("mnist_6.0_distributed", 1000, live=False)
    dashboard.continue_from(earlier, 500)
    history = dashboard.history
    assert history.train["step"][-1] == history.test["step"][-1] == 500
    assert history.config["resumed_from"] == [500]
    assert 150 <= dashboard.clock() < 160, "the clock goes on from the checkpoint's time"
    dashboard.train(520, 0.9, 0.3, 0.003)
    assert history.train["step"][-2:] == [500, 520] and history.train["wall_time"][-1] >= 150


def test_first_picture_spans_the_run_and_waits_for_the_digits():
    """The picture before any measurement (a notebook shows it while TensorFlow starts)."""
    name = "mnist_5.0_batchnorm_convolutional_augmented"
    dashboard = Dashboard(name, 10_000, live=False)
    fig = dashboard.drawn()
    accuracy, loss, train_ax, panel4, _, test_ax = fig.axes[:6]
    for ax in (accuracy, loss, panel4):
        assert ax.get_xlim() == (0, 10_000)
    for ax in (train_ax, test_ax):
        assert list(ax.get_yticks()) == [] and list(ax.get_xticks()) == [], "no pixel ticks"
        hints = [t.get_text() for t in ax.texts if t.get_visible()]
        assert hints == ["waiting for the first measurement"]
    assert name in visible_texts(fig), "the title in full: it fits before the legend"

    # Its figure asked for, a dashboard without window, PNG or movie shows the digits too
    dashboard.test(0, 0.5, 2.3, images=fake_digits([1, 2]), labels=np.array([1, 2]),
                   predictions=np.array([1, 3]))
    dashboard.drawn()
    assert not [t for t in test_ax.texts if t.get_visible()]
    assert test_ax.get_yticklabels()[0].get_text() == "100%", "the accuracy of each line"
    assert "step 0 / 10,000" in visible_texts(fig)


def test_long_titles_are_shortened_before_the_legend():
    title = "a title much longer than the header has room for, with more and more words " * 2
    fig = Dashboard(title, live=False).drawn()
    shown = fig.texts[0]
    assert shown.get_text().endswith("…") and len(shown.get_text()) < len(title)
    fig.canvas.draw()
    assert shown.get_window_extent().x1 <= fig.legends[0].get_window_extent().x0


def test_keys_show_the_right_panels(trained):
    dashboard = trained
    six = [ax.get_position(original=True).bounds for ax in dashboard.figure.axes[:6]]
    for key in "123456":
        press(dashboard, key)
        assert visible_panels(dashboard) == [int(key)]
        assert dashboard.figure.axes[int(key) - 1].get_position(original=True).width > 0.8
        assert dashboard.figure.legends[0].get_visible() == (key in "12"), "the curves' legend"
    for key, pair in (("7", [1, 2]), ("8", [4, 5]), ("9", [3, 6])):
        press(dashboard, key)
        assert visible_panels(dashboard) == pair
        left, right = (dashboard.figure.axes[k - 1].get_position(original=True) for k in pair)
        assert left.x1 < right.x0 and left.width > 0.35 and right.width > 0.35
    for key in ("0", "escape"):
        press(dashboard, "5")
        press(dashboard, key)
        assert visible_panels(dashboard) == [1, 2, 3, 4, 5, 6]
        bounds = [ax.get_position(original=True).bounds for ax in dashboard.figure.axes[:6]]
        assert np.allclose(bounds, six)
    press(dashboard, "g")  # not a dashboard key: no error
    test_image = dashboard.figure.axes[5].images[0]
    for key, (lines, per_line, tile) in (("6", (14, 28, 30)), ("9", (22, 20, 28)),
                                         ("0", (25, 40, 28))):
        press(dashboard, key)
        dashboard.drawn()
        height, width = lines * tile, per_line * tile
        assert test_image.get_extent() == [-0.5, width - 0.5, height - 0.5, -0.5], "larger"
        assert dashboard.figure.axes[5].get_ylim() == (lines * tile - 0.5, -0.5)
    dashboard.show_panels(3)
    assert visible_panels(dashboard) == [3]
    with pytest.raises(ValueError):
        dashboard.show_panels(1, 2, 3)


def test_space_pauses_and_resumes_during_training():
    dashboard = Dashboard("x", 100, live=False)
    dashboard.drawn()  # its figure (and keys) from the start
    seen = {}

    def on_measure(i):
        if i == 40:
            press(dashboard, " ")
            seen["paused"] = dashboard.paused
            seen["overlay"] = visible_texts(dashboard.drawn())
            press(dashboard, " ")
            seen["resumed"] = dashboard.paused
            press(dashboard, " ")
            dashboard.resume()  # what Ctrl-C does, so that the loop can stop
            seen["resumed by Ctrl-C"] = dashboard.paused

    fake_training(dashboard, 100, on_measure=on_measure)
    assert seen == {"paused": True, "overlay": seen["overlay"], "resumed": False,
                    "resumed by Ctrl-C": False}
    assert any("PAUSED" in text for text in seen["overlay"])
    assert not any("PAUSED" in text for text in visible_texts(dashboard.drawn()))
    dashboard.finish()
    press(dashboard, " ")
    assert dashboard.paused is False, "space does nothing once training is over"


def test_ctrl_c_in_the_loop_leaves_the_dashboard_usable(tmp_path):
    png = tmp_path / "after.png"
    dashboard = Dashboard("x", 1000, live=False, png=png)

    def interrupt(i):
        if i == 140:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fake_training(dashboard, 1000, on_measure=interrupt)
    assert dashboard.history.test["step"][-1] == 140
    assert dashboard.save(tmp_path / "run.json") == [tmp_path / "run.json", png]
    assert_picture(png)
    assert "step 140 / 1,000" in visible_texts(dashboard.figure), "where it stopped"
    assert History.load(tmp_path / "run.json").test["step"][-1] == 140
    dashboard.finish()
    dashboard.finish()  # twice is fine


def test_histograms_keep_percentiles_only():
    dashboard = Dashboard("x", live=False)
    dashboard.show_panels(4, 5)  # its figure asked for: the panels take the values
    values = np.arange(1001, dtype=np.float32)
    dashboard.test(7, 0.5, 1.0, distributions=[values, np.array([5.0])])
    dashboard.test(8, 0.5, 1.0, distributions=[np.zeros(0), np.array([])])
    panels = dashboard.panels
    assert panels.distribution_steps == [7, 8]
    assert np.allclose(panels.percentiles[0][0], np.arange(0, 1001, 100))
    assert np.allclose(panels.percentiles[1][0], 5.0)
    assert np.all(np.isnan(panels.percentiles[0][1]))


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


def test_inputs_that_are_not_pictures_get_a_note_and_the_other_panels(tmp_path):
    dashboard = tv.Dashboard("features", 100, live=False, png=tmp_path / "d.png")
    rng = np.random.default_rng(0)
    for step in (0, 50, 100):
        labels = rng.integers(0, 3, 200)
        dashboard.train(step, 0.5, 1.0, images=rng.normal(size=(200, 20)), labels=labels,
                        predictions=labels)
        dashboard.test(step, 0.5, 1.0, images=rng.normal(size=(200, 20)), labels=labels,
                       predictions=(labels + 1) % 3, distributions=[rng.normal(size=500), np.ones(3)])
    dashboard.save(tmp_path / "h.json")
    fig = dashboard.figure
    for ax in (fig.axes[2], fig.axes[5]):
        assert [t.get_text() for t in ax.texts if t.get_visible()] == ["inputs [20]: not pictures"]
        assert not ax.images[0].get_visible() and not ax.xaxis.label.get_visible()
    assert len(fig.axes[3].lines[0].get_xdata()) == 3, "panel 4 as usual"
    history = History.load(tmp_path / "h.json")
    assert history.panels["inputs"] == [20] and "test_digits" not in history.panels
    with pytest.raises(UserError, match=r"did not train on MNIST digits \(its inputs: \[20\]\)"):
        tv.show_panel(history, 6)
    tv.show_panel(history, 8, save_png=tmp_path / "p.png")  # panels 4 and 5: fine

    # A loop that gives no pictures at all: the panels say so, instead of waiting forever
    quiet = tv.Dashboard("x", 100, live=False)
    quiet.train(0, 0.5, 1.0)
    quiet.test(0, 0.5, 1.0)
    texts = [t.get_text() for ax in quiet.drawn().axes[2::3] for t in ax.texts]
    assert texts == ["no images given", "no images given"]


# -------------------------------------------------------------------- any loop


@pytest.mark.slow  # (1,000 steps)
def test_the_documented_loop_runs_as_written_and_compare_overlays_it(
        tmp_path, monkeypatch, mnist_dir, lesson_history):
    monkeypatch.setenv("MNIST_DATA_DIR", mnist_dir)
    monkeypatch.chdir(tmp_path)
    code = docs_loop()
    assert 25 <= len(code.splitlines()) <= 45
    exec(compile(code, str(YOUR_NETWORK), "exec"), {"__name__": "__main__"})
    history = History.load(tmp_path / "runs" / "my_loop.json")
    assert history.train["step"] == list(range(0, 1001, 20))
    assert history.test["step"] == list(range(0, 1001, 100))
    assert history.test["accuracy"][-1] > 0.93
    tv.compare(lesson_history, tmp_path / "runs" / "my_loop.json", save_png=tmp_path / "c.png")
    assert (tmp_path / "c.png").exists()


# --------------------------------------------------------------- finished runs


@pytest.fixture(scope="module")
def mnist_digits(mnist_dir):
    """MNIST as show_panel reads it: labels 0-9 (the lessons' `mnist` has one-hot labels)."""
    import mnistdata

    return mnistdata.read_data_sets(mnist_dir, reshape=False, validation_size=0)


def finished_run(path, mnist, misread_every=50):
    """A 300-step run's history as the lab saves it, with the pictures of its dashboard's
    panels 3 to 6 (at the last step, real MNIST digits with made-up predictions). Returns
    the dashboard."""
    dashboard = Dashboard("mnist_2.1_five_layers_relu", 300, live=False)
    dashboard.drawn()  # its figure: the panels take the digits
    batch = np.arange(1000, 1100) * 7
    labels = mnist.train.labels[batch]
    last_train = (mnist.train.images[batch], labels, np.where(batch % 3 == 0, 7, labels), batch)
    labels = mnist.test.labels
    last_test = (mnist.test.images, labels,
                 np.where(np.arange(len(labels)) % misread_every == 0, (labels + 1) % 10, labels))
    fake_training(dashboard, 300, last_train=last_train, last_test=last_test)
    dashboard.history.final = {"steps": 300, "interrupted": False}
    assert dashboard.save(path) == [path]
    return dashboard


def test_keep_panels_keeps_what_panels_3_to_6_show(tmp_path):
    # Nothing shown, nothing to keep (lab --no-vis); training digits without their indices
    quiet = Dashboard("x", 100, live=False)
    fake_training(quiet, 100)
    quiet.keep_panels()
    assert quiet.history.panels == {}
    shown = Dashboard("x", 100, live=False, png=tmp_path / "x.png")
    shown.keep_panels()
    assert shown.history.panels == {}, "nothing to keep yet"
    fake_training(shown, 100)
    shown.keep_panels()
    assert sorted(shown.history.panels) == ["histograms", "step", "test_digits"], \
        "no training indices"

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 500)
    predictions = np.where(np.arange(500) % 4 == 0, (labels + 1) % 10, labels)
    indices = np.arange(500) + 10  # where they are in the training set
    test_labels = rng.integers(0, 10, 3000)
    test_predictions = (test_labels + (np.arange(3000) % 5 != 0)) % 10  # 2,400 misread
    dashboard = Dashboard("x", 300, live=False, distribution_titles=("activations", "biases"))
    dashboard.drawn()
    fake_training(dashboard, 300, last_train=(fake_digits(labels), labels, predictions, indices),
                  last_test=(fake_digits(test_labels), test_labels, test_predictions))
    path = tmp_path / "run.json"
    dashboard.save(path)  # keeps the pictures, then writes the history
    history = dashboard.history
    kept = json.loads(path.read_text())["panels"]
    assert kept["step"] == 300
    train = kept["training_digits"]
    assert train["batch_size"] == 500 and len(train["indices"]) == 100
    assert train["indices"][:3] == [10, 14, 18], "the misread ones first, as the panel shows them"
    assert train["labels"][0] == labels[0] and train["predictions"][0] == predictions[0]
    test = kept["test_digits"]
    assert test["misread"] == 2400 and test["total"] == 3000
    assert len(test["indices"]) == tv.MAX_KEPT_ERRORS and test["indices"][:4] == [1, 2, 3, 4]
    assert test["labels"][0] == test_labels[1] and test["predictions"][0] == test_predictions[1]
    histograms = kept["histograms"]
    assert histograms["titles"] == ["activations", "biases"]
    assert histograms["steps"] == history.test["step"]
    assert np.array(histograms["percentiles"]).shape == (2, len(history.test["step"]), 11)
    assert History.load(path).panels == kept == history.to_dict()["panels"]

    older = json.loads(path.read_text())
    older["pictures"] = older.pop("panels")  # (what the lab wrote before it said "panels")
    path.write_text(json.dumps(older))
    assert History.load(path).panels == kept, "older histories still load"
    del older["pictures"]
    path.write_text(json.dumps(older))
    assert History.load(path).panels == {}, "histories without panels still load"


def test_show_panel_draws_a_finished_runs_panel_large(tmp_path, mnist_digits, mnist_dir,
                                                      monkeypatch, capsys):
    monkeypatch.setenv("MNIST_DATA_DIR", mnist_dir)
    path = tmp_path / "run.json"
    dashboard = finished_run(path, mnist_digits)
    history = History.load(path)

    # Panel 6: the misread test digits first, larger: the same grid as the window's key 6
    fig = tv.plot_panel(history, 6, figures.offscreen_figure(tv.FIGURE_SIZE), mnist_digits)
    assert [k + 1 for k, ax in enumerate(fig.axes[:6]) if ax.get_visible()] == [6]
    assert fig.axes[5].get_title() == "Test digits: 200 of 10,000 misread"
    drawn = fig.axes[5].images[0].get_array()
    dashboard.show_panels(6)
    assert np.array_equal(drawn, dashboard.drawn().axes[5].images[0].get_array())
    assert drawn.shape[:2] == (14 * 30, 28 * 30), "392 digits, 28 pixels and a gap of 2 each"
    gaps = drawn[28:30, :, :3].reshape(-1, 3)  # below the first line of tiles: grey, so that
    assert np.all(gaps == round(pictures.GAP[0] * 255)), "each tile's two labels pair up"
    assert "step 300 / 300" in [t.get_text() for t in fig.texts]

    # Panel 3: the last training batch, from the training set
    fig = tv.plot_panel(history, 3, figures.offscreen_figure(tv.FIGURE_SIZE), mnist_digits)
    dashboard.show_panels(3)
    drawn = fig.axes[2].images[0].get_array()
    assert np.array_equal(drawn, dashboard.drawn().axes[2].images[0].get_array())

    # Panels 4 and 5 (key 8), and the curves (key 7): as the dashboard drew them
    for key, panels in ((8, [4, 5]), (7, [1, 2])):
        fig = tv.plot_panel(history, key, figures.offscreen_figure(tv.FIGURE_SIZE))
        assert [k + 1 for k, ax in enumerate(fig.axes[:6]) if ax.get_visible()] == panels
    assert fig.axes[3].get_title() == "Weights"
    assert list(fig.axes[0].lines[1].get_ydata()) == history.test["accuracy"]

    out = tmp_path / "panel6.png"
    assert tv.main(["panel", str(path), "6", "--save-png", str(out)]) == 0
    image = assert_picture(out)
    assert image.shape == (900, 1600, 3)
    assert red_pixels(image) > 50_000, "200 misread digits, large"
    assert capsys.readouterr().out == f"saved {out}\n"


def test_show_panel_says_in_one_line_what_is_missing(tmp_path, mnist_digits, monkeypatch, capsys):
    bare = saved_history(tmp_path, "mnist_1.0_softmax", [0.1, 0.9])  # an older lab, or --no-vis
    assert tv.main(["panel", str(bare), "6", "--save-png", str(tmp_path / "p.png")]) == 1
    err = capsys.readouterr().err
    assert err == ("error: run mnist_1.0_softmax kept no picture of panel 6 (it drew no "
                   "dashboard: --no-vis, no display, or an older lab): run it again with "
                   "--save-png FILE (or a display, without --no-vis)\n")
    assert tv.main(["panel", str(bare), "1", "--save-png", str(tmp_path / "p.png")]) == 0, "curves"
    with pytest.raises(SystemExit) as usage:  # exit status 1, its message on one line
        tv.main(["panel", str(bare), "12"])
    assert isinstance(usage.value.code, str) and "invalid choice" in usage.value.code
    assert "\n" not in usage.value.code
    with pytest.raises(UserError, match="no panel 12"):
        tv.show_panel(bare, 12)

    path = tmp_path / "run.json"
    finished_run(path, mnist_digits)
    with socket.socket() as sock:  # a port nobody listens on: no download
        sock.bind(("127.0.0.1", 0))
        monkeypatch.setenv("MNIST_MIRRORS", f"http://127.0.0.1:{sock.getsockname()[1]}/")
    monkeypatch.setenv("MNIST_DATA_DIR", str(tmp_path / "no_mnist_here"))
    capsys.readouterr()
    assert tv.main(["panel", str(path), "3", "--save-png", str(tmp_path / "p3.png")]) == 1
    err = capsys.readouterr().err  # mnistdata also says which download failed
    assert err.splitlines()[-1].startswith("error: panels 3 and 6 show MNIST digits: ")
    assert err.count("error:") == 1 and "Traceback" not in err

    stored = json.loads(path.read_text())
    stored["panels"]["test_digits"]["labels"][0] += 1  # other MNIST files than the run's
    path.write_text(json.dumps(stored))
    with pytest.raises(UserError, match="not the ones this run used"):
        tv.plot_panel(History.load(path), 6, figures.offscreen_figure(tv.FIGURE_SIZE), mnist_digits)
    assert not (tmp_path / "p3.png").exists()


# ------------------------------------------------------------ the command line


def test_cli_errors_are_one_line(tmp_path, capsys):
    no_report = saved_history(tmp_path, "x", [0.9])
    assert tv.main(["confusion", str(no_report), "--save-png", str(tmp_path / "c.png")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "confusion matrix" in err
    assert tv.main(["compare", str(tmp_path / "missing.json"), "--save-png", "x.png"]) == 1
    assert "missing.json: no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        tv.main(["compare"])
    message = usage.value.code  # printed by Python on its way out, with exit status 1
    assert isinstance(message, str) and "\n" not in message
    assert message.startswith("tensorflowvisu.py compare: error: ") and "HISTORY.json" in message
    assert not (tmp_path / "c.png").exists()


def test_cli_without_display_asks_for_save_png(tmp_path):
    run = saved_history(tmp_path, "x", [0.5, 0.9])
    env = child_env(MPLBACKEND=None)  # a user's shell without a display
    result = subprocess.run([sys.executable, MODULE, "compare", str(run)], capture_output=True,
                            text=True, env=env)
    assert result.returncode == 1
    assert result.stderr == "no display: the picture is not shown (add --save-png FILE to keep it)\n"
    help_text = subprocess.run([sys.executable, MODULE, "confusion", "-h"], capture_output=True,
                               text=True, env=env).stdout
    assert "--save-png FILE" in help_text and "true digits" in help_text
    bad = subprocess.run([sys.executable, MODULE, "panel", str(run), "12"], capture_output=True,
                         text=True, env=env)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "invalid choice" in bad.stderr


# ------------------------------------------------------------------- no window


def test_import_is_light_and_no_window_runs_never_touch_pyplot(tmp_path, no_tensorflow):
    result = run_python(f"""
        import sys
        print("after import:", "tensorflow" in sys.modules, "matplotlib.pyplot" in sys.modules)
        dashboard = tv.Dashboard("x", 40, live=False, movie={str(tmp_path / "m.gif")!r},
                                 png={str(tmp_path / "d.png")!r})
        fake_training(dashboard, 40)
        print(dashboard.save({str(tmp_path / "h.json")!r}))
        dashboard.finish()
        print("after a run:", "matplotlib.pyplot" in sys.modules)
    """, **no_tensorflow)
    assert result.returncode == 0, result.stderr
    assert "after import: False False" in result.stdout and "after a run: False" in result.stdout
    assert sorted(os.listdir(tmp_path)) == ["d.png", "fake", "h.json", "m.gif"]
    assert_picture(tmp_path / "d.png")


def test_no_display_trains_without_dashboard_and_says_why(tmp_path, no_tensorflow):
    result = run_python(f"""
        import sys
        dashboard = tv.Dashboard("x", 100, live=True, png={str(tmp_path / "d.png")!r})
        print("live:", dashboard.live, "why:", dashboard.not_live)
        fake_training(dashboard, 100)
        dashboard.save()
        dashboard.finish(wait=True)
        print("pyplot:", "matplotlib.pyplot" in sys.modules,
              "tests:", len(dashboard.history.test["step"]))
    """, **no_tensorflow)
    assert result.returncode == 0, result.stderr
    assert ("live: False why: no display" in result.stdout
            and "pyplot: False tests: 6" in result.stdout)
    assert result.stderr == ""  # the caller (lab.py) says it, with the right hint
    assert_picture(tmp_path / "d.png")
