"""compare.py: pictures of finished runs, from their histories (runs/*.json).

- compare: the test curves of several runs on one picture, each its own colour and line
  style, the legend saying what differs between them;
- confusion: a run's confusion matrix, the most confused pairs called out;
- ensemble: what each member of an ensemble adds (lesson 5.2).

Each shows its picture under the cell in a notebook, in a window in a terminal, or saves
it (save_png=FILE). `python tensorflowvisu.py compare|confusion|panel` is their command line.
"""

import math

import numpy as np

import figures
import history as history_module
import plumbing
from figures import TEXT_SIZE, TITLE_SIZE
from plumbing import UserError

# Compared runs: these colours while they last, then a colormap's; the line styles in
# turn from the first run on, so that neighbouring runs differ twice.
RUN_COLOURS = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9",
               "#000000", "#f0e442", "#999999", "#882255"]
RUN_LINESTYLES = ["-", "--", "-.", ":"]
LINE_WIDTH = 3


def compare(*histories, save_png=None, keep_it="save_png=FILE"):
    """Overlay the test curves of runs (History objects or their JSON files): under the
    cell in a notebook, in a window in a terminal, or into save_png."""
    histories = history_module.load_all(histories)
    return figures.show_or_save(lambda fig: plot_comparison(histories, fig),
                                comparison_size(histories), save_png, keep_it=keep_it)


def confusion(history, save_png=None, keep_it="save_png=FILE"):
    """Show a run's confusion matrix (a History or its JSON file), like compare."""
    history, = history_module.load_all([history])
    return figures.show_or_save(lambda fig: plot_confusion(history, fig), (14, 9), save_png,
                                keep_it=keep_it)


def ensemble(accuracies, alone, save_png=None, keep_it="--save-png FILE"):
    """Show an ensemble's test accuracy as its members are added (mnist_5.2_ensemble.py):
    accuracies[k - 1], the vote of the first k members; alone[k - 1], member k's. Like compare."""
    return figures.show_or_save(lambda fig: plot_ensemble(accuracies, alone, fig), (10, 6),
                                save_png, keep_it=keep_it)


# ---------------------------------------------------------------- the test curves of runs


def plot_comparison(histories, fig):
    """Draw the test accuracy and test loss of several runs on fig, each its own colour
    and line style, the legend under the curves (see run_labels). A run whose curves are
    the same as an earlier one's is drawn thinner over it, and its label says so."""
    fig.set_layout_engine("constrained")
    accuracy, loss = fig.subplots(1, 2)
    labels = run_labels(histories)
    twins = _same_curves(histories)
    for k, twin in twins.items():
        labels[k] += f" (the same curves as {labels[twin].split(':')[0]})"
    for ax, measure, title in ((accuracy, "accuracy", "Test accuracy"),
                               (loss, "loss", "Test cross-entropy loss")):
        for k, (history, label, style) in enumerate(zip(histories, labels,
                                                         run_styles(len(histories)))):
            ax.plot(history.test["step"], history.test[measure], **style,
                    linewidth=LINE_WIDTH / 2 if k in twins else LINE_WIDTH,
                    label=label if ax is accuracy else None)  # one legend for both
        ax.set_title(title, fontsize=TITLE_SIZE)
        ax.set_xlabel("step", fontsize=TEXT_SIZE)
        ax.set_xlim(0, max([1, *[i for h in histories for i in h.test["step"][-1:]]]))
        ax.tick_params(labelsize=TEXT_SIZE)
        ax.grid(True, color="#dddddd")
    # The axis zooms in as far as it can while still showing most of every run's curve.
    floors = [figures.accuracy_floor(h.test["step"], h.test["accuracy"]) for h in histories]
    figures.format_accuracy_axis(accuracy, min(floors, default=0.0))
    loss_range = figures.finite_range([x for h in histories for x in h.test["loss"]],
                                      positive=True)
    if loss_range:
        figures.set_loss_range(loss, *figures.round_limits(*loss_range, log=True))
    fig.legend(loc="outside lower center", ncols=_legend_columns(labels), fontsize=TEXT_SIZE,
               frameon=False, handlelength=3)
    return fig


def comparison_size(histories):
    """The figure size for plot_comparison: taller when its legend has many lines."""
    labels = run_labels(histories)
    return (16, 6.5 + 0.35 * math.ceil(len(labels) / _legend_columns(labels)))


def run_styles(count):
    """A colour and a line style for each of count runs: the colours all differ (RUN_COLOURS
    while they last, then a colormap's), and the line styles take turns from the first run."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    if count <= len(RUN_COLOURS):
        colours = RUN_COLOURS[:count]
    elif count <= 20:
        colours = [to_hex(c) for c in colormaps["tab20"].colors[:count]]
    else:
        colours = [to_hex(c) for c in colormaps["turbo"](np.linspace(0, 1, count))]
    return [{"color": colour, "linestyle": RUN_LINESTYLES[k % len(RUN_LINESTYLES)]}
            for k, colour in enumerate(colours)]


def _same_curves(histories):
    """{k: j}: run k's test curves are run j's (j < k, the first such run)."""
    seen, twins = {}, {}
    for k, history in enumerate(histories):
        curves = tuple(tuple(history.test[key]) for key in ("step", "accuracy", "loss"))
        if curves[0] and curves in seen:
            twins[k] = seen[curves]
        seen.setdefault(curves, k)
    return twins


def run_labels(histories):
    """A legend label for each run, saying what differs between them.

    The lesson, the flags that differ from its defaults (older histories, without
    config["flags"]: steps, batch size and seed where they differ between the runs), how
    it ended if interrupted, and its max and final test accuracy. Runs that would still
    look the same (the lesson's code changed between them) get their start time.
    """
    older = [key for key in ("steps", "batch_size", "seed")
             if len({repr(h.config.get(key)) for h in histories}) > 1]
    names = []
    for history in histories:
        flags = history.config.get("flags")
        if not isinstance(flags, dict):
            flags = {key: history.config.get(key) for key in older}
        name = " ".join(filter(None, [_lesson_name(history), " ".join(plumbing.flag_words(flags))]))
        if history.final.get("interrupted"):
            name += f", interrupted at step {history.final.get('steps', 0):,}"
        names.append(name)
    # Runs that look the same: their start time (HH:MM), else their date and time.
    plain = list(names)
    for when in (lambda date: date[11:16], lambda date: date[:19].replace("T", " ")):
        alike = [k for k, name in enumerate(names) if names.count(name) > 1]
        for k in alike:
            if histories[k].config.get("date"):
                names[k] = f"{plain[k]} ({when(str(histories[k].config['date']))})"
    labels = []
    for name, history in zip(names, histories):
        best = history.max_test_accuracy
        accuracies = [a for a in history.test["accuracy"] if not math.isnan(a)]
        labels.append(f"{name}: max {best:.2%}, final {accuracies[-1]:.2%}" if best is not None
                      else f"{name}: no test")
    return labels


def _lesson_name(history):
    """A run's lesson, short: "2.1 five layers relu" for mnist_2.1_five_layers_relu."""
    return history.name.removesuffix(".py").removeprefix("mnist_").replace("_", " ")


def _legend_columns(labels):
    return 1 if len(labels) == 1 or max(map(len, labels)) > 70 else 2


# ---------------------------------------------------------------- a confusion matrix


def most_confused(matrix, top=5):
    """The largest off-diagonal cells of a confusion matrix: [(true, predicted, count)]."""
    matrix = np.asarray(matrix)
    cells = [(-matrix[t, p], t, p) for t in range(len(matrix)) for p in range(len(matrix))
             if t != p and matrix[t, p] > 0]
    return [(t, p, int(-c)) for c, t, p in sorted(cells)[:top]]


def plot_confusion(history, fig):
    """Draw the run's confusion matrix (rows: true digit, columns: predicted) on fig, with
    the recall and precision of each digit from the run's report (history.report)."""
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle

    report = history.report or {}
    matrix = np.asarray(report.get("confusion_matrix", []))
    if (matrix.shape != (10, 10)
            or not all(len(report.get(k) or []) == 10 for k in ("precision", "recall"))):
        raise UserError(f"run {history.name!r} has no confusion matrix in its report "
                        "(it was interrupted, or made without a final evaluation)")
    matrix = matrix.astype(int)
    recall, precision = report["recall"], report["precision"]
    accuracy = np.trace(matrix) / max(matrix.sum(), 1)

    ax = fig.add_axes((0.07, 0.1, 0.55, 0.8))
    errors = np.ma.masked_where(np.eye(10, dtype=bool) | (matrix == 0), matrix)
    ax.imshow(np.where(np.eye(10), 1.0, np.nan), cmap="Greys", vmin=0, vmax=6)  # grey diagonal
    ax.imshow(errors, cmap="Reds", norm=LogNorm(vmin=0.5, vmax=max(2, errors.max() or 2)))
    for t in range(10):
        for p in range(10):
            if matrix[t, p]:
                dark = t != p and matrix[t, p] > 0.3 * (errors.max() or 1)
                ax.text(p, t, str(matrix[t, p]), ha="center", va="center", fontsize=TEXT_SIZE - 1,
                        color="white" if dark else "black", weight="bold" if t == p else "normal")
    ax.set_xticks(range(10), [f"{d}\n{precision[d]:.1%}" for d in range(10)],
                  fontsize=TEXT_SIZE - 2)
    ax.set_yticks(range(10), [f"{d}  {recall[d]:.1%}" for d in range(10)], fontsize=TEXT_SIZE - 2)
    ax.set_xlabel("predicted digit  (precision under each)", fontsize=TEXT_SIZE)
    ax.set_ylabel("true digit  (recall)", fontsize=TEXT_SIZE)
    ax.set_title(f"{history.name}: {accuracy:.2%} of {matrix.sum():,} test digits right",
                 fontsize=TITLE_SIZE)

    pairs = most_confused(matrix)
    lines = ["Most confused", "(true → predicted)", ""]
    for t, p, count in pairs:
        ax.add_patch(Rectangle((p - 0.5, t - 0.5), 1, 1, fill=False, edgecolor="#0072b2",
                               linewidth=3.5))
        lines.append(f"{t} → {p}: {count} time{'s' if count > 1 else ''}")
    if not pairs:
        lines.append("none: every digit right")
    fig.text(0.68, 0.88, "\n".join(lines), fontsize=TITLE_SIZE, va="top", linespacing=1.6)
    fig.text(0.68, 0.1, "recall: share of each true digit\nrecognised (rows)\n"
             "precision: share of each\nprediction that is right (columns)",
             fontsize=TEXT_SIZE - 2, va="bottom", color="#555555", linespacing=1.5)
    return fig


# ---------------------------------------------------------------- an ensemble


def plot_ensemble(accuracies, alone, fig):
    ax = fig.add_subplot()
    members = range(1, len(accuracies) + 1)
    ax.plot(members, accuracies, "o-", color="#0072b2", linewidth=3,
            label="the first k members, voting")
    ax.plot(members, alone, "s", color="#e69f00", label="member k alone")
    ax.set_xticks(members)
    ax.set_xlabel("members", fontsize=TEXT_SIZE)
    ax.set_ylabel("test accuracy", fontsize=TEXT_SIZE)
    ax.set_title("An ensemble: what each added member changes", fontsize=TITLE_SIZE - 2)
    ax.grid(True, color="#dddddd")
    ax.legend(fontsize=TEXT_SIZE - 1)
    return fig
