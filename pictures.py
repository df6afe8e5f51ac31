"""pictures.py: digits and weights turned into pictures, and the panels that show them.

- digit_grid: many digits on one picture, the misread ones first, on red, with the
  correct digit written bottom left and the network's answer bottom right (the
  dashboard's panels 3 and 6, TensorBoard's misread digits);
- mosaic: feature maps (or filters) side by side as one picture;
- first_layer, filter_pictures: the weights that read the image, as pictures;
- DigitPanel, FiltersPanel: the dashboard's digit panels and its key f, on matplotlib.

The pictures are made with numpy alone, and quickly: the digits written on the tiles
are pixels, not matplotlib text.
"""

import math

import numpy as np

from plumbing import UserError

# Digit tiles: black ink on white, or on red for the misread ones.
BLACK = np.array([0.0, 0.0, 0.0], np.float32)
BACKGROUND = np.array([1.0, 1.0, 1.0], np.float32)
ERROR_BACKGROUND = np.array([1.0, 0.55, 0.55], np.float32)
LABEL_BOX = np.array([1.0, 1.0, 1.0], np.float32)  # correct digit: black on white
PREDICTION_BOX = np.array([0.7, 0.0, 0.0], np.float32)  # network's answer: white on red
ERROR_FRAME = np.array([0.9, 0.0, 0.0], np.float32)  # misread colour pictures: a red frame
GAP = np.array([0.82, 0.82, 0.82], np.float32)  # between large tiles, so labels pair with theirs
MAX_TILE = 32  # larger pictures are shrunk to this many pixels a side
MNIST_SHAPE = (28, 28, 1)  # the lab's digits

# A 3 x 5 pixel font for the digits 0-9, drawn twice as large on the tiles.
_FONT = [
    "111 101 101 101 111", "010 110 010 010 111", "111 001 111 100 111",
    "111 001 111 001 111", "101 101 111 001 001", "111 100 111 001 111",
    "111 100 111 101 111", "111 001 001 001 001", "111 101 111 101 111",
    "111 101 111 001 111",
]
GLYPHS = np.array([[[c == "1" for c in row] for row in glyph.split()] for glyph in _FONT])
GLYPHS = GLYPHS.repeat(2, axis=1).repeat(2, axis=2)  # 10 glyphs of 10 x 6 pixels


def digit_grid(images, labels, predictions, count=100, lines=10, gap=0):
    """Arrange count pictures on lines lines as one RGB picture (floats in [0, 1]).

    Misread ones come first, with the correct class in the bottom left corner (black on
    white) and the predicted one in the bottom right corner (white on red), for the
    classes 0-9; then the recognised ones in their original order. Greyscale pictures are
    drawn as ink, black on white (on red for the misread ones), colour ones as they are
    (misread ones in a red frame). If there are fewer than count, the rest stays white.
    gap: pixels of grey between the tiles (a large grid reads better with them: each
    tile's two digits then pair with each other, not with the next tile's).

    images: [N, 28, 28], [N, 28, 28, 1] or [N, 784] MNIST digits, white ink (1) on black
    (0); or any pictures as picture_shape takes them (see _tiles for their values).
    labels, predictions: N class numbers.
    """
    if count % lines:
        raise ValueError(f"count ({count}) must be a multiple of lines ({lines})")
    shape = picture_shape(images)
    if shape is None:
        raise ValueError(f"images of shape {shape_of(images)} are not pictures")
    labels = np.asarray(labels).reshape(-1).astype(int)
    predictions = np.asarray(predictions).reshape(-1).astype(int)
    if not len(images) == len(labels) == len(predictions):
        raise ValueError(f"{len(images)} images, {len(labels)} labels, "
                         f"{len(predictions)} predictions")
    order = shown_digits(labels, predictions, count)
    labels, predictions = labels[order], predictions[order]
    wrong = labels != predictions
    pictures = _tiles(np.asarray(images)[order], shape)
    _, height, width, channels = pictures.shape

    tiles = np.ones((count, height, width, 3), np.float32)
    errors = np.flatnonzero(wrong)
    if channels == 1:  # black ink on white, on red for the misread ones
        background = np.where(wrong[:, None, None, None], ERROR_BACKGROUND, BACKGROUND)
        tiles[:len(order)] = background * (1 - pictures)
    else:  # colour: as they are, the misread ones in a red frame
        tiles[:len(order)] = pictures
        frame = max(1, min(height, width) // 14)
        edges, everything = (slice(None, frame), slice(-frame, None)), slice(None)
        for edge in edges:
            tiles[errors, edge, everything] = ERROR_FRAME  # top and bottom
            tiles[errors, everything, edge] = ERROR_FRAME  # left and right
    if height >= 12 and width >= 16:  # room for the two labels
        _stamp(tiles, errors, labels[errors], 0, LABEL_BOX, BLACK)
        _stamp(tiles, errors, predictions[errors], width - 8, PREDICTION_BOX, BACKGROUND)
    if gap:  # a grey line right of and below every tile
        tiles = np.pad(tiles, ((0, 0), (0, gap), (0, gap), (0, 0)))
        tiles[:, height:, :] = tiles[:, :, width:] = GAP
        height, width = height + gap, width + gap

    per_line = count // lines
    return (tiles.reshape(lines, per_line, height, width, 3).swapaxes(1, 2)
            .reshape(lines * height, per_line * width, 3))


def _stamp(tiles, which, digits, left, box, ink):
    """Write the digits (font GLYPHS) into the bottom corner of the tiles number which
    (left: the corner's first column); only the digits 0-9 (other class numbers: none)."""
    which, digits = which[digits < 10], digits[digits < 10]
    glyphs = GLYPHS[digits][..., None]  # (k, 10, 6, 1)
    area = np.empty((len(which), 12, 8, 3), np.float32)
    area[:] = box
    area[:, 1:11, 1:7] = np.where(glyphs, ink, box)
    tiles[which, -12:, left:left + 8] = area


def shown_digits(labels, predictions, count):
    """Which digits a grid of count shows, in order: the misread ones, then the others."""
    return np.argsort(np.asarray(labels) == np.asarray(predictions), kind="stable")[:count]


def shape_of(array):
    """An array's shape, without copying it (TensorFlow tensors have one too)."""
    shape = getattr(array, "shape", None)
    return tuple(shape) if shape is not None else np.shape(array)


def picture_shape(images):
    """(height, width, channels) of each picture in images: [N, H, W], [N, H, W, 1 or 3],
    [N, 1 or 3, H, W] (PyTorch's order) or [N, 784] (MNIST digits, flattened); None if they
    are not pictures (features, sequences...)."""
    shape = shape_of(images)[1:]
    if shape == (784,):
        return MNIST_SHAPE
    if len(shape) == 3 and shape[0] in (1, 3) and shape[2] not in (1, 3):  # channels first
        shape = (*shape[1:], shape[0])
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) == 3 and shape[2] in (1, 3) and min(shape[:2]) >= 8:
        return tuple(int(n) for n in shape)
    return None


def _tiles(images, shape):
    """Pictures as floats in [0, 1], at most MAX_TILE pixels a side: [N, h, w, channels].

    uint8 pictures are divided by 255, and so are floats above 1 up to 255; floats in [0, 1]
    stay; any other range (standardised pictures) is stretched from its min to its max.
    """
    height, width, channels = shape
    pictures = np.asarray(images)
    if pictures.ndim == 4 and pictures.shape[-1] != channels:  # channels first: [N, C, H, W]
        pictures = np.moveaxis(pictures, 1, -1)
    pictures = pictures.reshape(len(pictures), height, width, channels)
    every = math.ceil(max(height, width) / MAX_TILE)  # a thumbnail: every k-th pixel is enough
    tiles = pictures[:, ::every, ::every].astype(np.float32)
    if tiles.size == 0:
        return tiles
    low, high = float(tiles.min()), float(tiles.max())
    # (with a little room: interpolated pictures, e.g. augmented ones, may pass 1 by a hair)
    if pictures.dtype == np.uint8 or (low >= 0 and 1.01 < high <= 255):
        tiles /= 255
    elif low < -0.01 or high > 1.01:
        tiles = (tiles - low) / max(high - low, 1e-12)
    return np.clip(tiles, 0, 1)


# ---------------------------------------------------------------- weights as pictures


def first_layer(weights):
    """Of a model's weights, the first layer's: the one that reads the image (a
    convolution's [h, w, 1, filters], or a dense layer's [784, neurons]); None if none."""
    for v in weights:
        shape = list(v.shape)
        if (len(shape) == 4 and shape[2] == 1) or (len(shape) == 2 and shape[0] == 784):
            return v
    return None


def filter_pictures(filters):
    """The first layer's filters as pictures [h, w, count]: a convolution's [h, w, 1, count]
    directly, a dense layer's [784, count] as 28x28 pictures (lesson 1.0: one per digit);
    None for anything else (no first layer that reads the image)."""
    filters = np.asarray(filters)
    if filters.ndim == 4 and filters.shape[2] == 1:
        return filters[:, :, 0, :]
    if filters.ndim == 2 and filters.shape[0] == 784:
        return filters.reshape(28, 28, -1)
    return None


def mosaic(maps, aspect=2.0, gap=1):
    """Feature maps [h, w, channels] side by side as one image about `aspect` times as wide
    as high, NaN between them (drawn as the background): one image, one colour scale."""
    h, w, count = maps.shape
    _, columns = mosaic_grid(maps.shape, aspect, gap)
    rows = math.ceil(count / columns)
    picture = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap), np.nan, np.float32)
    for k in range(count):
        r, c = divmod(k, columns)
        picture[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = maps[..., k]
    return picture


def mosaic_grid(shape, aspect=2.0, gap=1):
    """(rows, columns) of the mosaic of maps of this shape [h, w, channels]."""
    h, w, count = shape
    columns = min(count, max(1, round(math.sqrt(count * aspect * (h + gap) / (w + gap)))))
    return math.ceil(count / columns), columns


# ---------------------------------------------------------------- on the dashboard


class DigitPanel:
    """A dashboard panel of digits (3: training, 6: test) on a matplotlib Axes: a grid of
    them, misread first (digit_grid), each few lines labelled with the accuracy at which
    the red would reach them. show() gives it digits; update() draws the latest ones."""

    def __init__(self, ax, fontsize):
        self.ax, self.digits, self.total = ax, None, None  # digits: (images, labels, answers)
        self.changed = False
        self.not_pictures = False  # given inputs that are not pictures (features...)
        self.ticks_for = None  # (digits, per line, tile): what the ticks say
        self.image = ax.imshow(np.full((28, 28, 4), 255, np.uint8), interpolation="antialiased")
        self.waiting = ax.text(0.5, 0.5, "waiting for the first measurement", ha="center",
                               transform=ax.transAxes, fontsize=fontsize, color="#777777")
        ax.set_xticks([])
        ax.set_yticks([])  # until there are digits: then the accuracy of each line
        ax.grid(False)
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_xlabel("red: misread  (correct | predicted)", fontsize=fontsize - 2, va="top")

    def show(self, images, labels, predictions, total=None):
        """The digits to draw at the next update (total: how many they were picked from)."""
        self.digits, self.total, self.changed = (images, labels, predictions), total, True

    def update(self, count, lines, gap=0, measured=False):
        """Draw the latest digits as a grid of count on lines lines, if they changed
        (measured: the loop measured something, so "no images given" if none came)."""
        if self.digits is None:
            if measured:
                self.waiting.set_text("no images given")
            return
        if not self.changed:
            return
        self.changed = False
        images, labels, _ = self.digits
        self.not_pictures = picture_shape(images) is None
        self.ax.xaxis.label.set_visible(not self.not_pictures)
        if self.not_pictures:  # (features, sequences): a note instead
            self.waiting.set_text(f"inputs {list(shape_of(images)[1:])}: not pictures")
            self.image.set_visible(False)
            return
        grid = digit_grid(*self.digits, count=count, lines=lines, gap=gap)
        shrunk = shrink(grid, self._pixels_at_most())
        rgba = np.full((*shrunk.shape[:2], 4), 255, np.uint8)  # (RGBA bytes: drawn fastest)
        rgba[..., :3] = shrunk * 255 + 0.5
        if rgba.shape != self.image.get_array().shape:  # another grid: the axes follow
            height, width = grid.shape[:2]  # (in the grid's pixels: the ticks are)
            self.image.set_extent((-0.5, width - 0.5, height - 0.5, -0.5))
        self.image.set_data(rgba)
        self.image.set_visible(True)
        self.waiting.set_visible(False)
        # Every few lines: the accuracy at which the red (misread first) would reach them.
        per_line, tile = count // lines, grid.shape[0] // lines
        rows = np.arange(0, lines + 1, 5 if lines > 10 else 2)
        ticks_for = (self.total or len(labels), per_line, tile)
        if self.ticks_for != ticks_for:
            self.ax.set_yticks(rows * tile - 0.5,
                               [f"{1 - r * per_line / ticks_for[0]:.0%}" for r in rows])
            self.ticks_for = ticks_for


    def kept(self, count, indices=None):
        """What a finished run's history keeps of this panel, to draw it again from MNIST
        (show_panel): the digits' indices, labels and answers; with `indices` (where the
        digits are in the training set), the count shown, else the misread ones."""
        images, labels, predictions = self.digits
        labels, predictions = (np.asarray(a).reshape(-1) for a in (labels, predictions))
        if indices is not None:
            shown = shown_digits(labels, predictions, count)
            return {"indices": np.asarray(indices).reshape(-1)[shown], "labels": labels[shown],
                    "predictions": predictions[shown], "batch_size": len(labels)}
        wrong = np.flatnonzero(labels != predictions)
        return {"indices": wrong[:count], "labels": labels[wrong[:count]],
                "predictions": predictions[wrong[:count]], "misread": len(wrong),
                "total": len(labels)}

    def show_kept(self, kept, dataset, what):
        """Show what kept() kept, reading the digits from the MNIST dataset (training or
        test); UserError if they are not the digits the run used."""
        indices = np.asarray(kept["indices"], dtype=int)
        labels = np.asarray(kept["labels"], dtype=int)
        if indices.size and (indices.max() >= dataset.num_examples
                             or not np.array_equal(dataset.labels[indices], labels)):
            raise UserError(f"the MNIST {what} found are not the ones this run used: "
                            "use the same MNIST files (--data-dir, or $MNIST_DATA_DIR)")
        if "batch_size" in kept:  # the training digits shown
            self.show(dataset.images[indices], labels, kept["predictions"], kept["batch_size"])
            return
        if kept["total"] != dataset.num_examples:
            raise UserError(f"this run was tested on {kept['total']:,} digits, "
                            f"the MNIST test set found has {dataset.num_examples:,}")
        predictions = dataset.labels.astype(int)  # the others were read right
        predictions[indices] = kept["predictions"]
        self.show(dataset.images, dataset.labels, predictions)


    def _pixels_at_most(self, dpi=100):
        """(height, width): the panel's size in the pixels of a saved PNG (100 dpi), the
        largest it is drawn at; a grid of digits larger than that is shrunk to it first,
        which costs far less than matplotlib's resampling at every redraw."""
        box = self.ax.get_position()
        width, height = self.ax.figure.get_size_inches()
        return box.height * height * dpi, box.width * width * dpi


def shrink(picture, size):
    """An RGB picture [h, w, 3] shrunk by a whole factor, each new pixel the mean of the
    pixels it covers, so that it is no more than about twice `size` (height, width)."""
    factor = int(min(picture.shape[0] / size[0], picture.shape[1] / size[1]) / 2) + 1
    if factor < 2:
        return picture
    height, width = -(-picture.shape[0] // factor), -(-picture.shape[1] // factor)
    padded = np.ones((height * factor, width * factor, 3), np.float32)  # white
    padded[:picture.shape[0], :picture.shape[1]] = picture
    total = sum(padded[i::factor, j::factor] for i in range(factor) for j in range(factor))
    return total / (factor * factor)


class FiltersPanel:
    """The dashboard's key f: the first layer's weights as pictures (a convolution's
    filters, or each dense neuron's 784 weights as a 28x28 picture), red for, blue against."""

    def __init__(self, fig, fontsize):
        self.ax = fig.add_axes((0.03, 0.04, 0.94, 0.86), visible=False)
        self.ax.set_title("The first layer's weights (filters): red where ink counts for, "
                          "blue against", fontsize=fontsize)
        self.image = self.ax.imshow(np.zeros((1, 1)), cmap="RdBu_r", vmin=-1, vmax=1,
                                    interpolation="nearest")
        self.ax.set_axis_off()
        self.filters = self.shown = None

    def update(self):
        if self.filters is None or self.shown is self.filters:
            return
        maps = filter_pictures(self.filters)
        if maps is not None:
            box = self.ax.get_position(original=True)  # (not as shrunk to the image)
            width, height = self.ax.figure.get_size_inches()
            picture = mosaic(maps, box.width * width / (box.height * height))
            limit = float(np.nanmax(np.abs(picture))) or 1.0
            self.image.set_data(picture)
            self.image.set_extent((-0.5, picture.shape[1] - 0.5, picture.shape[0] - 0.5, -0.5))
            self.image.set_clim(-limit, limit)
        self.shown = self.filters
