"""compare.py: finished runs' test curves on one picture, each its own colour and line
style, labelled by what differs; a run's confusion matrix; on real runs, from the command
line."""
import matplotlib.colors
import numpy as np
import pytest
from PIL import Image

import compare
import figures
import lab
import tensorflowvisu as tv
from helpers import assert_picture, saved_history
from history import History


def test_compare_overlays_runs_with_names_and_max_accuracy(tmp_path, capsys):
    sigmoid = saved_history(tmp_path, "sigmoid", [0.1, 0.9, 0.95, 0.971, 0.97])
    relu = saved_history(tmp_path, "relu", [0.1, 0.95, 0.975, 0.982, 0.98])
    histories = [History.load(sigmoid), History.load(relu)]
    fig = compare.plot_comparison(histories, figures.offscreen_figure(compare.comparison_size(histories)))
    accuracy, loss = fig.axes
    legend = [text.get_text() for text in fig.legends[0].get_texts()]
    assert legend == ["sigmoid: max 97.10%, final 97.00%", "relu: max 98.20%, final 98.00%"]
    assert len(accuracy.lines) == len(loss.lines) == 2
    assert accuracy.lines[0].get_color() != accuracy.lines[1].get_color()
    assert accuracy.get_ylim() == (0.9, 1.0), "zoomed in, with most of each run's curve"
    for ax in (accuracy, loss):
        assert ax.get_xlim() == (0, 400) and ax.get_xlabel() == "step"
    fig.canvas.draw()
    below = fig.legends[0].get_window_extent()
    assert all(below.y1 < ax.get_window_extent().y0 for ax in fig.axes), "under the curves"

    out = tmp_path / "compare.png"
    assert tv.main(["compare", str(sigmoid), str(relu), "--save-png", str(out)]) == 0
    assert_picture(out)


def test_compare_labels_say_what_differs_between_the_runs():
    def run(name, accuracies=(0.1, 0.9, 0.95), **config):
        history = History(name, config)
        for k, accuracy in enumerate(accuracies):
            history.append_test(100 * k, accuracy, 1 / (k + 1), k)
        return history

    date = "2025-05-03T14:05:31"
    labels = compare.run_labels([
        run("mnist_2.1_five_layers_relu", steps=2000, seed=0, flags={}, date=date),
        run("mnist_2.1_five_layers_relu", (0.1, 0.5), steps=20, batch_size=60000, seed=1, date=date,
            flags={"steps": 20, "batch_size": 60000, "seed": 1}),
        # the same lesson and flags twice (its code changed between the runs): their start time
        run("mnist_1.0_softmax", flags={}, date="2025-05-03T15:10:00"),
        run("mnist_1.0_softmax", (0.1, 0.92, 0.91), flags={}, date="2025-05-03T16:45:00"),
        run("mnist_3.0_convolutional", flags={"xla": "off", "no_vis": True}),
    ])
    assert labels == [
        "2.1 five layers relu: max 95.00%, final 95.00%",
        "2.1 five layers relu --steps 20 --batch-size 60000 --seed 1: max 50.00%, final 50.00%",
        "1.0 softmax (15:10): max 95.00%, final 95.00%",
        "1.0 softmax (16:45): max 92.00%, final 91.00%",
        "3.0 convolutional --xla off --no-vis: max 95.00%, final 95.00%",
    ]
    # Older histories, without "flags": steps, batch size and seed where they differ
    older = [run("mnist_1.0_softmax", steps=2000, batch_size=100, seed=0),
             run("mnist_1.0_softmax", steps=20, batch_size=100, seed=0),
             run("mnist_1.0_softmax", steps=20, batch_size=100, seed=0, date=date),
             run("mnist_1.0_softmax", steps=20, batch_size=100, seed=0, date="2025-05-04T14:05:00"),
             run("sigmoid", [])]
    older[1].final = {"steps": 20, "interrupted": True}
    flags = "--steps 20 --batch-size 100 --seed 0"
    assert compare.run_labels(older) == [
        "1.0 softmax --steps 2000 --batch-size 100 --seed 0: max 95.00%, final 95.00%",
        f"1.0 softmax {flags}, interrupted at step 20: max 95.00%, final 95.00%",
        f"1.0 softmax {flags} (2025-05-03 14:05:31): max 95.00%, final 95.00%",  # same HH:MM
        f"1.0 softmax {flags} (2025-05-04 14:05:00): max 95.00%, final 95.00%",
        "sigmoid: no test",
    ]


@pytest.mark.parametrize("count", [1, 2, 10, 11, 13, 25])
def test_compare_gives_every_run_its_own_colour(count):
    histories = [History(f"run {k}") for k in range(count)]
    for k, history in enumerate(histories):
        history.append_test(0, 0.1, 2.3, 0)
        history.append_test(100, 0.9 + k / 1000, 0.3, 1)
    fig = compare.plot_comparison(histories, figures.offscreen_figure(compare.comparison_size(histories)))
    accuracy, loss = fig.axes
    colours = [tuple(matplotlib.colors.to_rgba(line.get_color())) for line in accuracy.lines]
    assert len(set(colours)) == count, "no two runs share a colour"
    assert [(line.get_color(), line.get_linestyle()) for line in loss.lines] == \
        [(line.get_color(), line.get_linestyle()) for line in accuracy.lines], "a run: one style"
    styles = [line.get_linestyle() for line in accuracy.lines]  # from the first run on
    assert all(a != b for a, b in zip(styles, styles[1:])), "neighbours differ twice"
    assert len(fig.legends[0].get_texts()) == count


@pytest.mark.parametrize("count", [2, 3, 5])
def test_a_few_runs_differ_in_line_style_from_the_first_run_on(count):
    """Issue 28: two or three runs compared were all solid lines, told apart by colour
    alone; from the first run on, each has its own (colour, line style), and up to four
    runs their own line style."""
    histories = [History(f"run {k}") for k in range(count)]
    for k, history in enumerate(histories):
        history.append_test(0, 0.1, 2.3, 0)
        history.append_test(100, 0.9 + k / 100, 0.3, 1)
    fig = compare.plot_comparison(histories, figures.offscreen_figure((16, 7)))
    styles = [(line.get_color(), line.get_linestyle()) for line in fig.axes[0].lines]
    assert len(set(styles)) == count
    assert len({style for _, style in styles[:4]}) == min(count, 4), [s for _, s in styles]


def test_identical_curves_stay_visible_and_the_legend_says_so(tmp_path):
    """Issue 28: a run that repeated another exactly (same seed) hid it; the later one is
    drawn thinner over the earlier, both colours show, and its label names the earlier."""
    first = History.load(saved_history(tmp_path, "first", [0.1, 0.9, 0.95]))
    second = History.load(saved_history(tmp_path, "second", [0.1, 0.9, 0.95]))
    other = History.load(saved_history(tmp_path, "other", [0.1, 0.8, 0.85]))
    fig = compare.plot_comparison([first, second, other], figures.offscreen_figure((16, 7)))
    legend = [text.get_text() for text in fig.legends[0].get_texts()]
    assert legend[1] == "second: max 95.00%, final 95.00% (the same curves as first)"
    assert "same curves" not in legend[0] + legend[2]
    accuracy = fig.axes[0]
    fig.canvas.draw()
    box = accuracy.get_window_extent()
    pixels = np.asarray(fig.canvas.buffer_rgba())[:, :, :3] / 255
    top, bottom = pixels.shape[0] - int(box.y1), pixels.shape[0] - int(box.y0)
    inside = pixels[top + 5:bottom - 5, int(box.x0) + 5:int(box.x1) - 5]  # (not the frame)
    for line in accuracy.lines[:2]:  # first and second, one over the other
        colour = np.array(matplotlib.colors.to_rgb(line.get_color()))
        assert (np.abs(inside - colour).max(axis=-1) < 0.05).sum() > 200, \
            f"{line.get_label()}: its colour shows"


def test_confusion_calls_out_the_most_confused_pairs_with_the_reports_figures(tmp_path):
    matrix = np.diag([980, 1130, 1020, 1000, 970, 880, 950, 1020, 970, 1000])
    matrix[4, 9], matrix[7, 1], matrix[3, 5], matrix[9, 4] = 12, 8, 5, 5
    report = {"accuracy": 0.98, "confusion_matrix": matrix.tolist(),
              "recall": [0.5 + d / 100 for d in range(10)], "precision": [0.25] * 10}
    path = saved_history(tmp_path, "relu", [0.98], report=report)
    assert compare.most_confused(matrix, top=3) == [(4, 9, 12), (7, 1, 8), (3, 5, 5)]
    fig = compare.plot_confusion(History.load(path), figures.offscreen_figure((14, 9)))
    texts = "\n".join(t.get_text() for t in fig.texts)
    assert "4 → 9: 12 times" in texts and "7 → 1: 8 times" in texts
    outlined = {(round(p.get_x() + 0.5), round(p.get_y() + 0.5)) for p in fig.axes[0].patches}
    assert outlined == {(9, 4), (1, 7), (5, 3), (4, 9)}  # (column, row): the 4 confusions shown
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert ticks[4] == "4  54.0%", "the report's recall next to each true digit"
    assert fig.axes[0].get_xticklabels()[3].get_text() == "3\n25.0%", \
        "the report's precision under each prediction"

    out = tmp_path / "confusion.png"
    assert tv.main(["confusion", str(path), "--save-png", str(out)]) == 0
    assert_picture(out)


@pytest.mark.slow
def test_compare_and_confusion_on_real_runs(run_script, mnist_dir, tmp_path):
    for script in ("mnist_1.0_softmax.py", "mnist_2.1_five_layers_relu.py"):
        lab.run(script, no_vis=True, steps=100, data_dir=mnist_dir,
                history=tmp_path / f"{script}.json", save_model=tmp_path / script)
    runs = sorted(tmp_path.glob("*.json"))
    compare = run_script("tensorflowvisu.py", "compare", *runs,
                         "--save-png", tmp_path / "compare.png")
    assert compare.returncode == 0, compare.stderr
    confusion = run_script("tensorflowvisu.py", "confusion", runs[0],
                           "--save-png", tmp_path / "confusion.png")
    assert confusion.returncode == 0, confusion.stderr
    for name in ("compare.png", "confusion.png"):
        assert np.asarray(Image.open(tmp_path / name).convert("L"), dtype=float).std() > 20
