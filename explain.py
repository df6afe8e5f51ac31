"""explain.py: what the network sees, layer by layer, for one digit.

For one digit (a picture, a test digit, what is being drawn), from the saved model alone:

- the 28x28 input, as the network gets it;
- every layer in order, as in the lesson's sketch: a convolutional layer as its feature
  maps (one small image per filter), a dense layer as a strip of its neurons;
- the output: ten probabilities, the answer marked;
- the first layer's filters as pictures (for lesson 1.0: what each digit's neuron looks
  for, its 784 weights as a 28x28 picture);
- which pixels made the decision: integrated gradients (savedmodel.py computes them),
  red where the ink counts for the answer, blue against.

Every lesson's SavedModel has an `explain` signature for this (savedmodel.py); the lessons
name their layers with one line, lab.name_layers(Y1=Y1, Y2=Y2, ...).

    import explain
    seen = explain.explain(images, "models/mnist_3.0_convolutional")  # one Seen per digit
    seen[0].layers["Y1"].shape     # (28, 28, 4): the 4 feature maps of the first layer
    explain.show(seen[0])          # the picture (under the cell in a notebook)

predict.py --explain draws it for pictures or test digits; predict.py --draw follows the pen.
"""

from pathlib import Path

import numpy as np

import figures
import pictures
import savedmodel
from plumbing import UserError

FIGURE_SIZE = (16, 9)
TITLE_AT_MOST = 60  # characters of a digit's name in the title


class Seen:
    """What the network saw of one digit: the input [28, 28], the probabilities [10] and the
    answer, the attribution [28, 28], the layers {name: array} in order (a convolutional
    layer's [h, w, channels], a dense layer's [neurons]) and the first layer's filters."""

    def __init__(self, image, probabilities, attribution, layers, filters, name=""):
        self.image, self.probabilities, self.attribution = image, probabilities, attribution
        self.answer = int(np.argmax(probabilities))
        self.layers, self.filters, self.name = layers, filters, name

    def blank(self):
        """The same shapes, no ink, no answer (the drawing pad before anything is drawn)."""
        zero = np.zeros_like
        return Seen(zero(self.image), zero(self.probabilities), zero(self.attribution),
                    {name: zero(Y) for name, Y in self.layers.items()}, self.filters)

    def __repr__(self):
        shapes = ", ".join(f"{name} {list(Y.shape)}" for name, Y in self.layers.items())
        return (f"Seen({self.name or 'digit'}: {self.answer} "
                f"(p={self.probabilities[self.answer]:.2f}); {shapes})")


def explain(images, model=None, names=()):
    """What the network sees of each image [28, 28] (prepared as MNIST's: predict.preprocess
    does it for pictures): a list of Seen. model: a SavedModel folder saved by the lab (or a
    loaded savedmodel.Model; default: the latest in models/). Raises UserError."""
    if not isinstance(model, savedmodel.Model):
        model = savedmodel.load(model)
    images = np.asarray(images, np.float32).reshape(-1, 28, 28)
    if not images.size:
        raise UserError("no digit to explain")
    blank = [k for k, image in enumerate(images) if image.max() <= 0]
    if blank:
        raise UserError(f"image {blank[0]} has no ink: nothing to explain")
    outputs = model.explain(images)
    prefix = savedmodel.LAYER_PREFIX
    order = sorted((key for key in outputs if key.startswith(prefix)),
                   key=lambda key: int(key.split("_")[1]))
    names = list(names) + [""] * len(images)
    return [Seen(images[k], outputs["probabilities"][k], outputs["attribution"][k],
                 {key.split("_", 2)[2]: outputs[key][k] for key in order}, outputs["filters"],
                 names[k])
            for k in range(len(images))]


def show(seen, save_png=None, keep_it="save_png=FILE"):
    """Draw what the network saw of one digit: under the cell in a notebook, in a window,
    or into a PNG file."""
    title = f"What the network sees of {short_name(seen.name) or 'this digit'}"
    return figures.show_or_save(lambda fig: View(fig, seen, title), FIGURE_SIZE, save_png,
                                title="predict.py --explain", keep_it=keep_it)


def short_name(name, at_most=TITLE_AT_MOST):
    """A file's name without its folders, shortened in the middle when longer than
    at_most characters: its start and its end (with the extension) tell files apart."""
    name = Path(name).name if ("/" in name or "\\" in name) else name
    if len(name) <= at_most:
        return name
    end = (at_most - 1) // 2
    return name[:at_most - 1 - end] + "…" + name[-end:]


class View:
    """The picture of what the network sees, drawn on a matplotlib figure (in the box
    rect = (left, bottom, right, top) of it); update(seen) shows another digit cheaply
    (the drawing pad calls it as the pen moves)."""

    def __init__(self, fig, seen, title="", rect=(0.03, 0.06, 0.98, 0.95)):
        self.fig = fig
        fig.set_facecolor("white")
        left, bottom, right, top = rect
        if title:
            fig.suptitle(title, fontsize=16, x=0.01, ha="left", fontweight="bold")
            top -= 0.05
        names = list(seen.layers)
        rows = max(len(names), 1) + 1  # the layers, then the output
        grid = fig.add_gridspec(rows, 3, width_ratios=[1.0, 1.0, 3.2], left=left, right=right,
                                top=top, bottom=bottom, hspace=0.55, wspace=0.15)
        ink = dict(cmap="gray", vmin=0, vmax=1)
        half = max(1, rows // 2)
        self.input_ax = fig.add_subplot(grid[:half, 0])
        self.input = self.input_ax.imshow(seen.image, **ink)
        self._label(self.input_ax, "the input X [28, 28]")
        self.attribution_ax = fig.add_subplot(grid[:half, 1])
        self.digit_under = self.attribution_ax.imshow(seen.image, cmap="gray_r", vmin=0, vmax=3)
        self.attribution = self.attribution_ax.imshow(self._red_blue(seen.attribution),
                                                      interpolation="nearest")
        self._label(self.attribution_ax, "which ink made the answer\n(red for it, blue against)")
        self.filters_ax = fig.add_subplot(grid[half:, :2])
        self._draw_filters(seen.filters)
        self.layer_images, self.aspects = {}, {}
        for k, name in enumerate(names):
            ax = fig.add_subplot(grid[k, 2])
            Y = seen.layers[name]
            self.aspects[name] = self._aspect(ax)
            self.layer_images[name] = ax.imshow(self._layer_picture(Y, self.aspects[name]),
                                                cmap="magma",
                                                aspect="auto" if Y.ndim == 1 else "equal",
                                                interpolation="nearest")
            self._label(ax, f"{name} {list(Y.shape)}", left=True)
        if not names:  # the output layer only (lesson 1.0), or layers nobody named
            ax = fig.add_subplot(grid[0, 2])
            self._label(ax, "")
            ax.text(0.5, 0.5, "No hidden layer is named, so none is shown here. A model names "
                    "its layers\nwith one line: lab.name_layers(Y1=Y1, Y2=Y2, ...) "
                    "(lesson 1.0 has none:\nits one layer is the output, below).",
                    ha="center", va="center", fontsize=12, color="#555555",
                    transform=ax.transAxes)
        self.output_ax = fig.add_subplot(grid[rows - 1, 2])
        self.bars = self.output_ax.bar(range(10), seen.probabilities, color="#b0b0b0")
        self.output_ax.set_ylim(0, 1)
        self.output_ax.set_xticks(range(10))
        self.output_ax.set_yticks([0, 1])
        self.answer = self.output_ax.set_title("", fontsize=13, loc="left")
        self.update(seen)

    def _draw_filters(self, filters):
        """The first layer's weights as pictures; a dense layer of ten neurons (lesson
        1.0) gets each picture's digit written on it."""
        maps = pictures.filter_pictures(filters) if np.size(filters) else None
        if maps is None:
            self.filters_ax.set_visible(False)
            return
        aspect = self._aspect(self.filters_ax)
        limit = np.abs(maps).max() or 1
        self.filters_ax.imshow(pictures.mosaic(maps, aspect), cmap="RdBu_r", vmin=-limit,
                               vmax=limit)
        count = maps.shape[2]
        per_digit = count == 10 and np.ndim(filters) == 2
        what = "one per digit" if per_digit else f"{count} filters"
        self._label(self.filters_ax,
                    f"the first layer's weights, {what}\n(red: ink there counts for)")
        if per_digit:
            h, w, _ = maps.shape
            _, columns = pictures.mosaic_grid(maps.shape, aspect)
            for digit in range(10):
                row, column = divmod(digit, columns)
                self.filters_ax.text(column * (w + 1) + 1, row * (h + 1) + 1, str(digit),
                                     ha="left", va="top", fontsize=13, fontweight="bold",
                                     color="black", backgroundcolor="white")

    @staticmethod
    def _label(ax, text, left=False):
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(text, fontsize=12, loc="left" if left else "center")

    def _aspect(self, ax):
        """How many times wider than high the axes are on the figure."""
        box = ax.get_position(original=True)
        width, height = self.fig.get_size_inches()
        return box.width * width / (box.height * height)

    @staticmethod
    def _layer_picture(Y, aspect):
        """One layer as one picture, scaled to its own largest value (one scale per layer)."""
        Y = np.asarray(Y, np.float32)
        picture = pictures.mosaic(Y, aspect) if Y.ndim == 3 else Y[None, :]
        top = np.nanmax(np.abs(picture)) if np.isfinite(picture).any() else 0
        return picture / top if top > 0 else picture

    @staticmethod
    def _red_blue(attribution):
        """Attribution as RGBA: red where the ink counts for the answer, blue against, its
        strength as the opacity (the digit shows through where it is weak)."""
        top = np.abs(attribution).max() or 1
        a = np.clip(attribution / top, -1, 1)
        rgba = np.zeros((*a.shape, 4), np.float32)
        rgba[..., 0] = a > 0
        rgba[..., 2] = a < 0
        rgba[..., 3] = np.abs(a) ** 0.7
        return rgba

    def update(self, seen):
        """Show another digit (same model)."""
        self.input.set_data(seen.image)
        self.digit_under.set_data(seen.image)
        self.attribution.set_data(self._red_blue(seen.attribution))
        for name, image in self.layer_images.items():
            picture = self._layer_picture(seen.layers[name], self.aspects[name])
            image.set_data(picture)
            image.set_clim(min(0, np.nanmin(picture)), 1)
        inked = seen.probabilities.sum() > 0  # (nothing drawn yet on the pad: no answer)
        for d, bar in enumerate(self.bars):
            bar.set_height(seen.probabilities[d])
            bar.set_color("#0072b2" if inked and d == seen.answer else "#b0b0b0")
        p = seen.probabilities[seen.answer]
        self.answer.set_text(f"the output: {seen.answer} (p={p:.2f})" if inked else "the output: ?")

    def artists(self):
        """What update changes (for blitting)."""
        return [self.input, self.digit_under, self.attribution, *self.layer_images.values(),
                *self.bars, self.answer]
