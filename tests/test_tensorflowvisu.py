"""Tests of tensorflowvisu.py: history files, digit grids, the dashboard, movies and the CLI.

Everything runs on synthetic data with the Agg backend (conftest.py sets MPLBACKEND=Agg),
except two subprocess tests: one without any display, one with a real TkAgg window on a
private Xvfb server.
"""
import json
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backend_bases import KeyEvent
from PIL import Image

import tensorflowvisu as tv
from tensorflowvisu import Dashboard, History, VisuError

ROOT = Path(__file__).resolve().parent.parent
MODULE = str(ROOT / "tensorflowvisu.py")


# ----------------------------------------------------------------------------- helpers


def fake_digits(labels, seed=0):
    """28 x 28 white-on-black images that look like digits: the module's own font, enlarged."""
    rng = np.random.default_rng(seed)
    big = tv.GLYPHS.repeat(2, axis=1).repeat(2, axis=2).astype(np.float32)  # 20 x 12
    images = np.zeros((len(labels), 28, 28), np.float32)
    for k, digit in enumerate(labels):
        y, x = rng.integers(2, 7), rng.integers(6, 10)
        images[k, y:y + 20, x:x + 12] = big[digit]
    return images


def fake_training(history, dashboard, n_test=2000, interrupt_at=None):
    """A training_step for Dashboard.animate: made-up figures that improve with i."""
    rng = np.random.default_rng(1)
    test_labels = rng.integers(0, 10, n_test)
    test_images = fake_digits(test_labels)

    def training_step(i, update_train, update_test):
        if interrupt_at is not None and i >= interrupt_at:
            raise KeyboardInterrupt
        accuracy = 0.97 - 0.87 * math.exp(-i / 60)
        loss = 2.3 * math.exp(-i / 60) + 0.08
        if update_train:
            labels = rng.integers(0, 10, 100)
            predictions = np.where(rng.random(100) < accuracy, labels, (labels + 1) % 10)
            history.append_train(i, np.mean(predictions == labels), loss * rng.uniform(0.7, 1.3), 0.003, i / 100)
            dashboard.set_training_digits(fake_digits(labels, seed=i), labels, predictions)
        if update_test:
            predictions = np.where(rng.random(n_test) < accuracy, test_labels, (test_labels + 3) % 10)
            history.append_test(i, np.mean(predictions == test_labels), loss, i / 100)
            dashboard.set_test_digits(test_images, test_labels, predictions)
            dashboard.append_histograms(i, rng.normal(0, 0.1 + i / 3000, 20000), rng.normal(0.1, 0.02, 300))

    return training_step


def press(dashboard, key):
    canvas = dashboard.figure.canvas
    canvas.callbacks.process("key_press_event", KeyEvent("key_press_event", canvas, key))


def visible_panels(dashboard):
    return [k + 1 for k, ax in enumerate(dashboard.figure.axes[:6]) if ax.get_visible()]


def assert_picture(path, min_colours=50):
    """The file is a PNG with real content, not a blank or near-blank image."""
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.std() > 20, f"{path} looks blank"
    assert len(np.unique(image.reshape(-1, 3), axis=0)) >= min_colours
    return image


def run_python(code, env=None, timeout=120):
    full_env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")}
    full_env["PYTHONPATH"] = str(ROOT)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=full_env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def ffprobe_frames(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
                          "-show_entries", "stream=nb_read_frames,width,height", "-of", "json", str(path)],
                         capture_output=True, text=True, check=True).stdout
    stream = json.loads(out)["streams"][0]
    return int(stream["nb_read_frames"]), stream["width"], stream["height"]


def saved_history(tmp_path, name, accuracies, losses=None, report=None):
    history = History(name, {"lr": 0.003})
    for k, accuracy in enumerate(accuracies):
        history.append_test(100 * k, accuracy, (losses or [0.5 / (k + 1)] * len(accuracies))[k], k)
    history.report = report
    path = tmp_path / f"{name}.json"
    history.save(path)
    return path


# ----------------------------------------------------------------------------- history


def test_history_round_trips_exactly_through_json(tmp_path):
    history = History("relu", {"lr": np.float32(0.003), "layers": np.array([200, 100]), "seed": np.int64(0)})
    history.append_train(np.int64(0), np.float32(0.1), np.float64(2.3), 0.003, 0.5)
    history.append_train(20, 0.85, 0.4, np.float32(0.0029), 1.25)
    history.append_test(0, np.float32(0.098), 2.31, 0.7)
    history.final = {"max_test_accuracy": np.float32(0.098), "steps": np.int64(20), "interrupted": False}
    history.report = {"accuracy": 0.98, "support": np.arange(10), "confusion_matrix": np.eye(10, dtype=np.int64) * 5}
    path = tmp_path / "new" / "folder" / "relu.json"  # missing folders are created
    history.save(path)

    stored = json.loads(path.read_text())
    assert stored["format"] == "mnist-lab-history/1"
    assert type(stored["train"]["accuracy"][0]) is float and type(stored["train"]["iteration"][0]) is int
    assert stored["config"] == {"lr": pytest.approx(0.003), "layers": [200, 100], "seed": 0}
    loaded = History.load(path)
    assert loaded.to_dict() == history.to_dict() == stored
    assert loaded.max_test_accuracy == pytest.approx(0.098)
    assert sorted(os.listdir(path.parent)) == ["relu.json"]  # the temporary file is gone


def test_history_max_test_accuracy():
    history = History("x")
    assert history.max_test_accuracy is None
    for i, accuracy in enumerate([0.5, 0.9, float("nan"), 0.8]):
        history.append_test(i, accuracy, 1.0, i)
    assert history.max_test_accuracy == 0.9


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("{not json", "not a JSON file"),
    ('{"name": "x"}', "not a run history"),
    ("[1, 2]", "not a run history"),
    ('{"format": "mnist-lab-history/1", "train": {}, "test": {}}', "damaged run history"),
])
def test_history_load_errors_are_one_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / "run.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(VisuError) as error:
        History.load(path)
    assert str(path) in str(error.value) and message in str(error.value)
    assert "\n" not in str(error.value)


def test_unwritable_targets_give_visu_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(VisuError, match="cannot write"):
        History("x").save(blocker / "run.json")
    dashboard = Dashboard(History("x"), live=False)
    with pytest.raises(VisuError, match="cannot write"):
        dashboard.save_png(blocker / "dash.png")
    with pytest.raises(VisuError, match="cannot write"):
        dashboard.save_png(tmp_path)  # a folder
    for movie in (blocker / "run.gif", tmp_path, tmp_path / "run.avi"):
        with pytest.raises(VisuError):
            Dashboard(History("x"), live=False, movie=movie)
    assert sorted(os.listdir(tmp_path)) == ["a_file"]  # nothing left behind


# ----------------------------------------------------------------------------- schedule


def test_update_schedule_first_last_frequencies_and_early_tests():
    schedule = tv.update_schedule(1010, train_every=20, test_every=100, more_tests_at_start=True)
    assert schedule[0] == (0, True, True)
    assert schedule[-1] == (1010, True, True)
    iterations = [i for i, _, _ in schedule]
    assert iterations == sorted(set(iterations))
    train = {i for i, t, _ in schedule if t}
    test = {i for i, _, t in schedule if t}
    assert train == set(range(0, 1001, 20)) | {1010}
    # every training update of the first 10 (i < 200) is also a test update
    assert test == set(range(0, 1001, 100)) | set(range(0, 200, 20)) | {1010}
    assert set(iterations) == train | test

    plain = tv.update_schedule(1000, 20, 100, more_tests_at_start=False)
    assert {i for i, _, t in plain if t} == set(range(0, 1001, 100))
    assert tv.update_schedule(0, 20, 100) == [(0, True, True)]
    # test_every need not be a multiple of train_every: a test-only update
    assert (30, False, True) in tv.update_schedule(60, 20, 30, more_tests_at_start=False)
    with pytest.raises(ValueError):
        tv.update_schedule(100, 0, 100)


# ----------------------------------------------------------------------------- digit grids


def test_digit_grid_puts_misrecognised_first_on_red_with_label_pixels():
    labels = np.array([0, 1, 2, 3, 4, 5])
    predictions = np.array([0, 1, 7, 3, 9, 5])  # digits 2 and 4 are misrecognised
    images = fake_digits(labels)
    grid = tv.digit_grid(images, labels, predictions, count=10, lines=2)
    assert grid.shape == (56, 140, 3) and grid.dtype == np.float32
    assert grid.min() >= 0 and grid.max() <= 1
    tiles = grid.reshape(2, 28, 5, 28, 3).swapaxes(1, 2).reshape(10, 28, 28, 3)

    # order: the misrecognised 2 and 4, then 0, 1, 3, 5, then empty tiles
    for tile, index in zip(tiles[:6], [2, 4, 0, 1, 3, 5]):
        ink = images[index] > 0.5
        assert np.all(tile[:16][ink[:16]] < 0.1), "the digit's ink is black"
    red, white = tv.ERROR_BACKGROUND, tv.BACKGROUND
    assert np.allclose(tiles[0, 0, 14], red) and np.allclose(tiles[1, 0, 14], red)
    assert np.allclose(tiles[2, 0, 14], white)
    assert np.allclose(tiles[6:], 1.0), "missing digits leave white tiles"

    # labels: the correct digit (black on white) bottom left, the prediction (white on dark red) bottom right
    for tile, correct, predicted in ((tiles[0], 2, 7), (tiles[1], 4, 9)):
        left, right = tile[17:27, 1:7], tile[17:27, 21:27]
        assert np.allclose(left[tv.GLYPHS[correct]], 0) and np.allclose(left[~tv.GLYPHS[correct]], tv.LABEL_BOX)
        assert np.allclose(right[tv.GLYPHS[predicted]], 1) and np.allclose(right[~tv.GLYPHS[predicted]], tv.PREDICTION_BOX)
    assert not np.allclose(tiles[2, 17:27, 21:27], tv.PREDICTION_BOX[None, None]), "no labels on recognised digits"

    # the same picture from [N, 784] and [N, 28, 28, 1] images, and from uint8 ones
    assert np.array_equal(grid, tv.digit_grid(images.reshape(6, 784), labels, predictions, 10, 2))
    assert np.array_equal(grid, tv.digit_grid(images[..., None], labels, predictions, 10, 2))
    assert np.allclose(grid, tv.digit_grid((images * 255).astype(np.uint8), labels, predictions, 10, 2), atol=0.01)


def test_digit_grid_edge_cases():
    assert np.all(tv.digit_grid(np.zeros((0, 28, 28)), [], [], count=100, lines=10) == 1)
    with pytest.raises(ValueError):
        tv.digit_grid(np.zeros((3, 28, 28)), [1, 2, 3], [1, 2, 3], count=100, lines=7)
    with pytest.raises(ValueError):
        tv.digit_grid(np.zeros((3, 28, 28)), [1, 2], [1, 2, 3])


# ----------------------------------------------------------------------------- dashboard


@pytest.fixture
def trained(tmp_path):
    """A dashboard (no window) after a short fake training."""
    history = History("fake run")
    dashboard = Dashboard(history, title="fake run", panel4_title="batch-max activations", live=False)
    dashboard.animate(fake_training(history, dashboard), 300, train_every=20, test_every=100)
    return history, dashboard


def test_dashboard_renders_the_training_into_a_png(trained, tmp_path):
    history, dashboard = trained
    assert not dashboard.live and dashboard.figure is None, "no window and no figure until one is needed"
    path = tmp_path / "out" / "dashboard.png"
    dashboard.save_png(path)
    image = assert_picture(path)
    assert image.shape == (900, 1600, 3)
    red = np.all(np.abs(image.astype(int) - (tv.ERROR_BACKGROUND * 255).astype(int)) <= 3, axis=-1)
    assert red.sum() > 2000, "misrecognised digits on red backgrounds"
    assert os.listdir(path.parent) == ["dashboard.png"]

    accuracy, loss, _, panel4, _, _ = dashboard.figure.axes[:6]
    train_line, test_line = accuracy.lines
    assert list(train_line.get_xdata()) == history.train["iteration"]
    assert list(test_line.get_ydata()) == history.test["accuracy"]
    assert list(loss.lines[1].get_ydata()) == history.test["loss"]
    assert accuracy.get_xlim() == (0, 300)
    assert accuracy.get_ylim()[0] == 0.9, "the accuracy axis zooms in on 90-100 %"
    low, high = loss.get_ylim()
    assert low <= min(history.test["loss"]) and high >= max(history.test["loss"])
    assert panel4.get_title() == "Batch-max activations"
    assert "test max 9" in accuracy.get_title()


def test_keys_show_the_right_panels(trained):
    _, dashboard = trained
    dashboard.show_panels(1, 2, 3, 4, 5, 6)  # builds the figure
    six = [ax.get_position(original=True).bounds for ax in dashboard.figure.axes[:6]]
    for key in "123456":
        press(dashboard, key)
        assert visible_panels(dashboard) == [int(key)]
        assert dashboard.figure.axes[int(key) - 1].get_position(original=True).width > 0.8
    for key, pair in (("7", [1, 2]), ("8", [4, 5]), ("9", [3, 6])):
        press(dashboard, key)
        assert visible_panels(dashboard) == pair
        left, right = (dashboard.figure.axes[k - 1].get_position(original=True) for k in pair)
        assert left.x1 < right.x0 and left.width > 0.35 and right.width > 0.35
    for key in ("0", "escape"):
        press(dashboard, "5")
        press(dashboard, key)
        assert visible_panels(dashboard) == [1, 2, 3, 4, 5, 6]
        assert np.allclose([ax.get_position(original=True).bounds for ax in dashboard.figure.axes[:6]], six)
    press(dashboard, "g")  # not a dashboard key: no error
    with pytest.raises(ValueError):
        dashboard.show_panels(1, 2, 3)


def test_space_pauses_and_resumes_during_training(tmp_path):
    history = History("x")
    dashboard = Dashboard(history, live=False)
    seen = {}
    step = fake_training(history, dashboard)

    def training_step(i, update_train, update_test):
        step(i, update_train, update_test)
        if i == 40:
            dashboard.show_panels(1, 2, 3, 4, 5, 6)  # builds the figure
            press(dashboard, " ")
            seen["paused"] = dashboard.paused
            dashboard.save_png(tmp_path / "paused.png")
            seen["overlay"] = [t.get_text() for t in dashboard.figure.texts if t.get_visible()]
            press(dashboard, " ")
            seen["resumed"] = dashboard.paused

    dashboard.animate(training_step, 100)
    assert seen["paused"] is True and seen["resumed"] is False
    assert any("PAUSED" in text for text in seen["overlay"])
    press(dashboard, " ")
    assert dashboard.paused is False, "space does nothing once training is over"


def test_ctrl_c_in_training_step_propagates_and_the_dashboard_stays_usable(tmp_path):
    history = History("x")
    dashboard = Dashboard(history, live=False)
    with pytest.raises(KeyboardInterrupt):
        dashboard.animate(fake_training(history, dashboard, interrupt_at=150), 1000)
    assert history.test["iteration"][-1] == 140
    dashboard.save_png(tmp_path / "after.png")
    assert_picture(tmp_path / "after.png")
    dashboard.finish()
    dashboard.finish()  # twice is fine


def test_histograms_keep_percentiles_only():
    dashboard = Dashboard(History("x"), live=False)
    values = np.arange(1001, dtype=np.float32)
    dashboard.append_histograms(7, values, np.array([5.0]))
    dashboard.append_histograms(8, np.zeros(0), np.array([]))
    assert dashboard._histogram_iterations == [7, 8]
    assert np.allclose(dashboard._panel4[0], np.arange(0, 1001, 100))
    assert np.allclose(dashboard._panel5[0], 5.0)
    assert np.all(np.isnan(dashboard._panel4[1]))


def test_notebook_inline_backend_updates_a_display_handle(monkeypatch):
    """In Jupyter with the inline backend: display(fig, display_id=True), then handle.update(fig)."""
    import types

    shown = []

    class Handle:
        def update(self, fig):
            fig.canvas.draw()  # what IPython's PNG formatter does, roughly
            shown.append(("update", fig))

    def display(fig, display_id=False):
        assert display_id is True
        shown.append(("display", fig))
        return Handle()

    ipython = types.ModuleType("IPython")
    ipython.version_info = (8, 30, 0)
    ipython.display = types.ModuleType("IPython.display")
    ipython.display.display = display
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", ipython.display)
    monkeypatch.setattr(tv, "_chosen_backend", lambda: "module://matplotlib_inline.backend_inline")
    history = History("notebook")
    dashboard = Dashboard(history, live=True)
    assert dashboard.live and shown[0][0] == "display"
    dashboard.animate(fake_training(history, dashboard), 200)
    dashboard.finish()
    assert shown[-1] == ("update", dashboard.figure)
    assert 2 <= len(shown) <= 12, "updated at a bounded rate, not at every one of the 19 updates"
    assert not dashboard.live


# ----------------------------------------------------------------------------- movies


def test_gif_movie_has_a_frame_per_test_update(tmp_path):
    history = History("x")
    dashboard = Dashboard(history, live=False, movie=tmp_path / "movies" / "run.gif")
    assert dashboard.recording
    dashboard.animate(fake_training(history, dashboard), 200, 20, 100, more_tests_at_start=False)
    dashboard.finish()
    assert not dashboard.recording and dashboard.movie_path == str(tmp_path / "movies" / "run.gif")
    with Image.open(dashboard.movie_path) as movie:
        assert movie.n_frames == 3  # tests at 0, 100, 200
        assert movie.size == (800, 450)
    assert os.listdir(tmp_path / "movies") == ["run.gif"]


def test_mp4_movie_or_gif_without_ffmpeg(tmp_path):
    from matplotlib import animation

    history = History("x")
    dashboard = Dashboard(history, live=False, movie=tmp_path / "run.mp4")
    dashboard.animate(fake_training(history, dashboard), 300, 20, 100, more_tests_at_start=False)
    dashboard.finish()
    if animation.writers.is_available("ffmpeg"):  # here and in CI
        assert dashboard.movie_path == str(tmp_path / "run.mp4")
        assert ffprobe_frames(dashboard.movie_path) == (4, 1280, 720)
    else:
        assert dashboard.movie_path == str(tmp_path / "run.gif")
    assert os.listdir(tmp_path) == [Path(dashboard.movie_path).name]


def test_mp4_falls_back_to_gif_when_ffmpeg_is_missing(tmp_path, monkeypatch, capsys):
    from matplotlib import animation

    monkeypatch.setattr(animation.writers, "is_available", lambda name: name != "ffmpeg")
    dashboard = Dashboard(History("x"), live=False, movie=tmp_path / "run.mp4")
    assert dashboard.movie_path == str(tmp_path / "run.gif")
    assert "ffmpeg not found" in capsys.readouterr().err
    dashboard.finish()
    assert os.listdir(tmp_path) == ["run.gif"]


def test_terminal_ctrl_c_still_gives_a_valid_mp4(tmp_path):
    """Ctrl-C in a terminal reaches the whole process group, ffmpeg included."""
    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg is not installed (apt-get install ffmpeg)")
    movie = tmp_path / "run.mp4"
    code = f"""
        import os, signal, sys
        sys.path.insert(0, {str(ROOT / "tests")!r})
        from test_tensorflowvisu import fake_training
        import tensorflowvisu as tv
        history = tv.History("x")
        dashboard = tv.Dashboard(history, live=False, movie={str(movie)!r})
        step = fake_training(history, dashboard)
        def training_step(i, update_train, update_test):
            step(i, update_train, update_test)
            if i == 160:
                os.killpg(os.getpgrp(), signal.SIGINT)  # what the terminal does
        try:
            dashboard.animate(training_step, 1000, 20, 100, more_tests_at_start=False)
        except KeyboardInterrupt:
            print("interrupted at", history.test["iteration"][-1])
        dashboard.finish()
    """
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["PYTHONPATH"] = str(ROOT)
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True,
                            text=True, timeout=120, start_new_session=True)
    assert result.returncode == 0, result.stderr
    assert "interrupted at 100" in result.stdout
    assert ffprobe_frames(movie)[0] == 3  # 0, 100, and the state when interrupted
    assert os.listdir(tmp_path) == ["run.mp4"]


# ----------------------------------------------------------------------------- CLI


def test_compare_overlays_runs_with_names_and_max_accuracy(tmp_path, capsys):
    sigmoid = saved_history(tmp_path, "sigmoid", [0.1, 0.9, 0.95, 0.971, 0.97])
    relu = saved_history(tmp_path, "relu", [0.1, 0.95, 0.975, 0.982, 0.98])
    histories = [History.load(sigmoid), History.load(relu)]
    fig = tv.plot_comparison(histories, tv._offscreen_figure((16, 7), 72))
    accuracy, loss = fig.axes
    legend = [text.get_text() for text in accuracy.get_legend().get_texts()]
    assert legend == ["sigmoid: max 97.10%", "relu: max 98.20%"]
    assert len(accuracy.lines) == len(loss.lines) == 2
    assert accuracy.lines[0].get_color() != accuracy.lines[1].get_color()
    assert accuracy.get_ylim() == (0.95, 1.0), "zoomed on where the runs differ"

    out = tmp_path / "png" / "compare.png"
    assert tv.main(["compare", str(sigmoid), str(relu), "--save-png", str(out)]) == 0
    assert_picture(out)


def test_confusion_calls_out_the_most_confused_pairs(tmp_path):
    matrix = np.diag([980, 1130, 1020, 1000, 970, 880, 950, 1020, 970, 1000])
    matrix[4, 9], matrix[7, 1], matrix[3, 5], matrix[9, 4] = 12, 8, 5, 5
    report = {"accuracy": 0.98, "confusion_matrix": matrix.tolist()}
    path = saved_history(tmp_path, "relu", [0.98], report=report)
    assert tv.most_confused(matrix, top=3) == [(4, 9, 12), (7, 1, 8), (3, 5, 5)]
    fig = tv.plot_confusion(History.load(path), tv._offscreen_figure((14, 9), 72))
    texts = "\n".join(t.get_text() for t in fig.texts)
    assert "4 → 9: 12 times" in texts and "7 → 1: 8 times" in texts
    outlined = {(round(p.get_x() + 0.5), round(p.get_y() + 0.5)) for p in fig.axes[0].patches}
    assert outlined == {(9, 4), (1, 7), (5, 3), (4, 9)}  # (column, row): the 4 confusions shown
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert ticks[4].startswith("4") and "%" in ticks[4], "recall next to each true digit"

    out = tmp_path / "confusion.png"
    assert tv.main(["confusion", str(path), "--save-png", str(out)]) == 0
    assert_picture(out)


def test_cli_errors_are_one_line(tmp_path, capsys):
    no_report = saved_history(tmp_path, "x", [0.9])
    assert tv.main(["confusion", str(no_report), "--save-png", str(tmp_path / "c.png")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "confusion matrix" in err
    assert tv.main(["compare", str(tmp_path / "missing.json"), "--save-png", "x.png"]) == 1
    assert "missing.json: no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        tv.main(["compare"])
    assert usage.value.code == 2
    assert not (tmp_path / "c.png").exists()


def test_cli_without_display_asks_for_save_png(tmp_path):
    run = saved_history(tmp_path, "x", [0.5, 0.9])
    result = subprocess.run([sys.executable, MODULE, "compare", str(run)], capture_output=True, text=True,
                            env={k: v for k, v in os.environ.items()
                                 if k not in ("DISPLAY", "WAYLAND_DISPLAY", "MPLBACKEND")})
    assert result.returncode == 1
    assert result.stderr == "error: no display: add --save-png FILE\n"
    help_text = subprocess.run([sys.executable, MODULE, "confusion", "-h"], capture_output=True, text=True).stdout
    assert "--save-png FILE" in help_text and "true digits" in help_text


# ----------------------------------------------------------------------------- no window, real window


def test_import_is_light_and_no_window_runs_never_touch_pyplot(tmp_path):
    result = run_python(f"""
        import sys, tensorflowvisu as tv
        print("after import:", "tensorflow" in sys.modules, "matplotlib.pyplot" in sys.modules)
        sys.path.insert(0, "tests")
        from test_tensorflowvisu import fake_training
        history = tv.History("x")
        dashboard = tv.Dashboard(history, live=False, movie={str(tmp_path / "m.gif")!r})
        dashboard.animate(fake_training(history, dashboard), 100, 20, 100, more_tests_at_start=False)
        dashboard.save_png({str(tmp_path / "d.png")!r})
        dashboard.finish()
        print("after a run:", "matplotlib.pyplot" in sys.modules)
    """)
    assert result.returncode == 0, result.stderr
    assert "after import: False False" in result.stdout and "after a run: False" in result.stdout
    assert sorted(os.listdir(tmp_path)) == ["d.png", "m.gif"]


def test_no_display_trains_without_dashboard_and_says_why(tmp_path):
    result = run_python(f"""
        import sys, tensorflowvisu as tv
        sys.path.insert(0, "tests")
        from test_tensorflowvisu import fake_training
        history = tv.History("x")
        dashboard = tv.Dashboard(history, live=True)
        print("live:", dashboard.live)
        dashboard.animate(fake_training(history, dashboard), 200)
        dashboard.save_png({str(tmp_path / "d.png")!r})
        dashboard.finish(wait=True)
        print("pyplot:", "matplotlib.pyplot" in sys.modules, "tests:", len(history.test["iteration"]))
    """)
    assert result.returncode == 0, result.stderr
    assert "live: False" in result.stdout and "pyplot: False tests: 11" in result.stdout
    assert result.stderr.startswith("no display: training without the live dashboard")
    assert result.stderr.count("\n") == 1
    assert_picture(tmp_path / "d.png")


def test_real_window_on_xvfb(xvfb, tmp_path):
    shot = tmp_path / "screen.png"
    result = run_python(f"""
        import json, sys, time
        import matplotlib.pyplot as plt
        from PIL import ImageGrab
        import tensorflowvisu as tv
        sys.path.insert(0, "tests")
        from test_tensorflowvisu import fake_training
        out = {{}}
        history = tv.History("xvfb")
        dashboard = tv.Dashboard(history, title="xvfb test", live=True)
        out["live"] = dashboard.live
        out["backend"] = plt.get_backend()
        step = fake_training(history, dashboard)
        def slow_step(i, update_train, update_test):
            step(i, update_train, update_test)
            time.sleep(0.01)
        dashboard.animate(slow_step, 600)
        out["draws"] = len(dashboard.draw_times)
        out["median_draw_ms"] = sorted(dashboard.draw_times)[len(dashboard.draw_times) // 2] * 1000
        ImageGrab.grab(xdisplay={xvfb!r}).save({str(shot)!r})

        # Closing the window stops training like Ctrl-C
        def closing_step(i, update_train, update_test):
            step(i, update_train, update_test)
            if i == 100:
                plt.close(dashboard.figure)
        try:
            dashboard.animate(closing_step, 1000)
        except KeyboardInterrupt:
            out["closed_at"] = history.test["iteration"][-1]
        out["live_after_close"] = dashboard.live
        dashboard.save_png({str(tmp_path / "after.png")!r})
        dashboard.finish()
        print(json.dumps(out))
    """, env={"DISPLAY": xvfb, "MPLBACKEND": "TkAgg"})
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["live"] is True and out["backend"].lower() == "tkagg"
    assert out["draws"] >= 2
    assert out["closed_at"] == 100 and out["live_after_close"] is False
    screen = assert_picture(shot, min_colours=200)
    window = screen[:600, :1100]  # the window opens at the top left of the empty screen
    assert window.std() > 40, "the dashboard is drawn in the window"
    assert_picture(tmp_path / "after.png")
