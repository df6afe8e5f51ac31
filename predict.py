"""predict.py: read your own handwritten digits with a network the lab trained.

    python predict.py --model models/mnist_3.0_convolutional my_seven.png photo.jpg
    python predict.py my_seven.png --show        # also see what the network sees
    python predict.py --draw                     # draw digits with the mouse

For each picture it prints the digit it reads and how sure the network is (the
probability it gives that digit), then the next two candidates:

    my_seven.png: 7 (p=0.97)
      then 1 (p=0.02), 9 (p=0.01)

--draw opens a canvas: draw with the mouse (button pressed), the bars follow as you
draw; key c clears, q closes.

Every lesson saves its trained network (models/<lesson name>/, a TensorFlow SavedModel).
Without --model, predict.py uses the most recently saved one. It needs only that folder:
not the lessons, not the lab's code.

Why the pictures must be prepared first
---------------------------------------
The network only ever saw MNIST digits, and those were made in a very particular way.
Yann LeCun's team took digits written on forms, scanned them in black and white, then:

1. scaled each one to fit in a 20x20 pixel box, keeping its proportions (a "1" stays
   thin), with anti-aliasing, which turns the edges into shades of grey;
2. put that box in a 28x28 field so that the digit's centre of mass (the average
   position of its ink, weighted by how dark it is) lands in the middle of the field.

So every MNIST digit is roughly the same size, in the same place, stored as light ink
(1.0) on a black background (0.0). A network learns exactly what it is shown: give it a
digit drawn small in a corner of a photo, black on white, with grey paper around it,
and it sees something it has never met. Its answer is then close to a guess.

`preprocess` does to your picture what was done to MNIST's digits:

1. grey levels: colours (and transparency) become shades of grey;
2. light ink on a dark background: the border of the picture is taken as the paper; if
   it is light (dark ink on white paper, the usual case), the picture is inverted.
   Ink is then measured against the paper, and faint marks (paper texture, shadows,
   JPEG ripples: less than a quarter of the ink's contrast) are dropped;
3. specks dropped: pieces of ink that touch nothing else and hold less than 5 % of the
   largest piece's ink (dust, dots on the paper). A digit's own pieces are large: the
   top bar of a 5 written apart, or the two halves of a 4 with a gap, stay;
4. crop to the ink;
5. scale so that the longer side is 20 pixels, keeping the proportions, anti-aliased;
6. place it in 28x28 with its centre of mass in the middle, at full contrast (0 to 1).

Tips for your own pictures: one digit per picture, a dark pen on plain paper, nothing
else in the frame (a shadow or the edge of the sheet is a large piece of ink: it stays,
and shrinks the digit). --show displays the 28x28 digit the network actually gets.
"""

import math
import sys
import time
from pathlib import Path

import plumbing  # first: a Python without the lab's packages gets one line

plumbing.check_installed("numpy", "PIL", "matplotlib", "tensorflow")

import numpy as np  # noqa: E402
from PIL import Image, ImageOps, UnidentifiedImageError  # noqa: E402

import explain as explain_module  # noqa: E402 (what the network sees: --explain)
import figures  # noqa: E402
import mnistdata  # noqa: E402
import savedmodel  # noqa: E402 (the lessons' saved networks: found and loaded)
from plumbing import UserError  # noqa: E402

SIZE = 28  # MNIST's field: 28x28 pixels
BOX = 20  # the digit fits in a 20x20 box inside it...
CENTRE = 14.0  # ...placed so that its centre of mass is at row 14, column 14 (MNIST's average)
NOISE = 0.25  # ink fainter than this share of the strongest ink is paper, not pen
SPECK = 0.05  # a piece of ink with less than 5 % of the largest piece's ink is dust, not digit
MIN_CONTRAST = 0.1  # ink and paper differ by less than 10 % of black-to-white: a blank picture
SHOW_AT_MOST = 30  # --show and --save-png draw this many digits at most

# --show and --save-png: sizes in inches (72 screen pixels, 100 PNG pixels) and points (1/72 inch)
TITLE = "What the network sees (28x28) and what it answers"
COLUMNS = 3  # pictures side by side
DIGIT_INCHES = 1.6  # each 28x28 digit: 115 pixels square on screen, 160 in the PNG
BARS_INCHES = 2.4  # its probabilities' bars, beside it, as high
PANEL_MARGIN = 0.55  # around a digit and its bars: the bars' tick labels, the gaps
ROW_MARGIN = 0.55  # above and below a row: the titles and the digits 0-9 under the bars
TITLE_MARGIN = 0.3  # around the figure's title: above, below, at each end
TITLE_POINTS, ANSWER_POINTS, NAME_POINTS, TICK_POINTS = 13, 11, 10, 9  # font sizes
NAME_AT_MOST = 40  # longer file names are shortened in the middle, keeping the extension


class NoInkError(UserError, ValueError):
    """The picture has no digit in it: one uniform colour, or only faint noise."""


# ------------------------------------------------------------------- preprocessing


def preprocess(image):
    """Turn a picture of one handwritten digit into an MNIST digit: float32 [28, 28] in [0, 1].

    image: a PIL image (any mode and size; transparency allowed), or an array
    [height, width] of grey levels or [height, width, 3 or 4] of colours (RGB, RGBA),
    integers (0-255) or floats (0.0-1.0). Dark ink on light paper or light ink on dark
    paper. The result is light ink (up to 1.0) on black (0.0), the longer side of the
    digit 20 pixels, its centre of mass in the middle of the 28x28 field, like MNIST's.

    Raises NoInkError when there is nothing to read (a blank picture).
    """
    grey = _grey_levels(image)  # 1. 0.0 black ... 1.0 white
    ink = _ink(grey)  # 2. 0.0 paper ... 1.0 the strongest ink, faint marks dropped
    ink = _drop_specks(ink)  # 3. dust and dots far smaller than the digit's strokes
    rows = np.flatnonzero(ink.any(axis=1))  # 4. crop to the ink
    columns = np.flatnonzero(ink.any(axis=0))
    ink = ink[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]
    digit = _fit_in_box(ink, BOX)  # 5. longer side 20 pixels
    return _centre(digit)  # 6. in 28x28, by centre of mass


def _grey_levels(image):
    """The picture as grey levels: float32 [height, width], 0.0 = black ... 1.0 = white."""
    if isinstance(image, Image.Image):
        image = ImageOps.exif_transpose(image)  # phone photos: turn them the way they were taken
        if image.mode in ("1", "L", "I", "I;16", "I;16L", "I;16B", "F"):
            array = np.asarray(image)  # already grey: keep every level (16-bit too)
        elif "A" in image.getbands() or "transparency" in image.info:
            array = np.asarray(image.convert("RGBA"))
        else:
            array = np.asarray(image.convert("L"))
    else:
        array = np.asarray(image)
    if array.dtype == bool:
        array = array.astype(np.float32)
    elif np.issubdtype(array.dtype, np.integer):  # 0-255, or 0-65535 for 16-bit pictures
        array = array.astype(np.float32) / (255 if array.size == 0 or array.max() <= 255 else 65535)
    array = array.astype(np.float32)

    alpha = None
    if array.ndim == 3 and array.shape[2] in (1, 2, 3, 4):
        if array.shape[2] in (2, 4):  # the last channel is the opacity
            array, alpha = array[..., :-1], array[..., -1]
        if array.shape[2] == 3:  # colour -> grey, with the eye's weights for red, green, blue
            array = array @ np.array([0.299, 0.587, 0.114], np.float32)
        else:
            array = array[..., 0]
    if array.ndim != 2:
        raise ValueError(f"expected a picture [height, width] or [height, width, channels], "
                         f"got an array of shape {np.shape(image)}")
    if array.size == 0:
        raise NoInkError("no ink: the picture is empty (0 pixels)")

    if alpha is not None:  # see-through parts: put them on paper that the ink stands out from
        if alpha.max() == 0:
            raise NoInkError("no ink: the picture is fully transparent")
        ink_is_dark = (array * alpha).sum() / alpha.sum() < 0.5  # what is visible is mostly ink
        paper = 1.0 if ink_is_dark else 0.0
        array = array * alpha + paper * (1 - alpha)
    return array


def _ink(grey):
    """How much ink each pixel holds: 0.0 for the paper ... 1.0 for the strongest ink.

    The paper's colour is the median of the picture's border: light paper means dark
    ink, which is measured downwards from the paper (that is the inversion to MNIST's
    light-on-dark). Ink is then scaled to full contrast, and marks fainter than NOISE
    of it are dropped.
    """
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    paper = float(np.median(border))
    darkest, lightest = float(grey.min()), float(grey.max())
    if paper > (darkest + lightest) / 2:  # light paper: dark ink
        ink = paper - grey
    else:  # dark paper: light ink, as in MNIST
        ink = grey - paper
    contrast = float(ink.max())
    if contrast < MIN_CONTRAST:
        raise NoInkError("no ink: the picture is blank (one uniform colour)")
    ink = np.clip(ink / contrast, 0, 1)
    return np.clip((ink - NOISE) / (1 - NOISE), 0, 1)  # faint marks -> 0, the rest still 0-1


def _drop_specks(ink):
    """The ink without its specks: the pieces of ink (8-connected: touching by a side or a
    corner) whose ink is less than SPECK of the largest piece's.

    A digit is one or two large pieces (a 5 whose top bar is lifted, a 4 with a gap);
    dust, dots of the paper and JPEG blotches are tiny. Left in, a speck far from the
    digit widens the crop and the digit shrinks to a blob.

    The pieces are found on runs (horizontal stretches of ink in a row) rather than
    pixels: two runs in rows next to each other belong together when their columns
    overlap or touch at a corner. Far fewer runs than pixels: fast on large photos.
    """
    height, width = ink.shape
    edges = np.diff(np.pad(ink > 0, ((0, 0), (1, 1))).astype(np.int8), axis=1)
    row, start = np.nonzero(edges == 1)  # run k: row[k], columns start[k] to end[k] - 1,
    _, end = np.nonzero(edges == -1)  # in reading order
    flat = np.append(ink.ravel(), 0)  # each run's ink: the sum from its start to its end
    mass = np.add.reduceat(flat, np.stack([row * width + start, row * width + end], 1).ravel())[::2]

    # Run k touches the runs of the next row that end at or after start[k] and start at or
    # before end[k]. The key row * (width + 2) + column keeps the runs' reading order, so
    # searchsorted finds the first and the last of them.
    key = (width + 2) * row
    below = key + width + 2  # the next row's key
    first = np.searchsorted(key + end, below + start)
    count = np.maximum(np.searchsorted(key + start, below + end, side="right") - first, 0)
    a, b = np.repeat(np.arange(len(row)), count), _ranges(first, count)  # run a[i] touches b[i]

    # union-find, many links at a time: hook the larger root onto the smaller, flatten, repeat
    root = np.arange(len(row))
    while len(a):
        ra, rb = root[a], root[b]
        apart = ra != rb
        a, b, ra, rb = a[apart], b[apart], ra[apart], rb[apart]
        np.minimum.at(root, np.maximum(ra, rb), np.minimum(ra, rb))
        while not np.array_equal(root[root], root):  # each run points straight to its root
            root = root[root]
    piece_mass = np.bincount(root, weights=mass)
    specks = piece_mass[root] < SPECK * piece_mass.max()
    if not specks.any():
        return ink
    ink = ink.copy()
    length = end[specks] - start[specks]
    ink.ravel()[_ranges(row[specks] * width + start[specks], length)] = 0
    return ink


def _ranges(starts, counts):
    """np.concatenate([np.arange(s, s + c) for s, c in zip(starts, counts)]), without a loop."""
    return np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())


def _fit_in_box(ink, box):
    """Scale so that the longer side is `box` pixels, keeping the proportions.

    PIL's Lanczos filter anti-aliases: when shrinking, each new pixel averages the
    pixels it covers, so thin edges become greys, as in MNIST. The result is stretched
    back to full contrast (its strongest ink 1.0): a thin stroke shrunk a lot is faint.
    """
    height, width = ink.shape
    scale = box / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))  # PIL: (width, height)
    resized = (Image.fromarray(ink.astype(np.float32))  # mode "F"
               .resize(size, Image.Resampling.LANCZOS))
    digit = np.clip(np.asarray(resized), 0, 1)  # Lanczos overshoots a little at sharp edges
    return digit / digit.max() if digit.max() > 0 else digit


def _centre(digit):
    """Place the digit in a 28x28 black field with its centre of mass at (CENTRE, CENTRE)."""
    height, width = digit.shape
    rows, columns = np.mgrid[0:height, 0:width]
    mass = digit.sum()
    row = (rows * digit).sum() / mass  # the centre of mass, inside the digit's box
    column = (columns * digit).sum() / mass
    # whole pixels, never out of the field
    top = min(max(int(round(CENTRE - row)), 0), SIZE - height)
    left = min(max(int(round(CENTRE - column)), 0), SIZE - width)
    field = np.zeros((SIZE, SIZE), np.float32)
    field[top:top + height, left:left + width] = digit
    return field


def read_image(path):
    """Open a PNG or JPEG file and prepare it: float32 [28, 28]. Raises UserError."""
    path = Path(path)
    if path.is_dir():
        raise UserError("is a folder, not an image")
    if path.is_file() and path.stat().st_size == 0:
        raise UserError("empty file (0 bytes), not an image")
    try:
        with Image.open(path) as image:
            image.load()
            return preprocess(image)
    except FileNotFoundError:
        raise UserError("no such file") from None
    except UnidentifiedImageError:
        raise UserError("not an image that can be read (PNG or JPEG expected)") from None
    except Image.DecompressionBombError:
        raise UserError("the image is too large (more than "
                           f"{Image.MAX_IMAGE_PIXELS * 2:,} pixels)") from None
    except OSError as error:  # unreadable, or a truncated or damaged file
        raise UserError(f"cannot read the image ({error.strerror or error})") from None


# ------------------------------------------------------------------------ pictures


def top_digits(probabilities, count=3):
    """The `count` likeliest digits, likeliest first, as (digit, probability) pairs."""
    order = np.argsort(-probabilities, kind="stable")[:count]
    return [(int(d), float(probabilities[d])) for d in order]


def plot_predictions(fig, names, digits, probabilities):
    """For each image: the 28x28 digit the network sees, and its probabilities as bars.

    Draw on a figure of _figure_size(names): matplotlib's constrained layout then places
    the titles and tick labels so that none is clipped or overlaps another.
    """
    columns, rows, cells = _grid(names)
    fig.set_layout_engine("constrained")
    fig.suptitle(TITLE, fontsize=TITLE_POINTS)
    grid = fig.add_gridspec(rows, 2 * columns,
                            width_ratios=[w for cell in cells for w in (cell, BARS_INCHES)])
    for k, (name, digit, p) in enumerate(zip(names, digits, probabilities)):
        row, column = divmod(k, columns)
        best = int(np.argmax(p))
        image_ax = fig.add_subplot(grid[row, 2 * column])
        image_ax.imshow(digit, cmap="gray", vmin=0, vmax=1)
        image_ax.set_xticks([])
        image_ax.set_yticks([])
        image_ax.set_title(explain_module.short_name(name, NAME_AT_MOST), fontsize=NAME_POINTS)
        bars_ax = fig.add_subplot(grid[row, 2 * column + 1])
        colours = ["#0072b2" if d == best else "#b0b0b0" for d in range(10)]
        bars_ax.bar(range(10), p, color=colours)
        bars_ax.set_ylim(0, 1)
        bars_ax.set_xticks(range(10))
        bars_ax.set_yticks([0, 0.5, 1])
        bars_ax.tick_params(labelsize=TICK_POINTS)
        bars_ax.set_title(f"{best} (p={p[best]:.2f})", fontsize=ANSWER_POINTS, fontweight="bold")


def _figure_size(names):
    """(width, height) in inches that fits these pictures: each digit DIGIT_INCHES square,
    its bars beside it, every file name and the title whole.

    Text is measured in points (1/72 inch), so the size holds at any dpi: 72 on screen,
    100 in a PNG. The margins leave room for the tick labels and titles around each panel.
    """
    columns, rows, cells = _grid(names)
    width = sum(cells) + columns * (BARS_INCHES + PANEL_MARGIN)
    width = max(width, _text_inches(TITLE, TITLE_POINTS) + 2 * TITLE_MARGIN)
    return width, rows * (DIGIT_INCHES + ROW_MARGIN) + TITLE_MARGIN


def _grid(names):
    """(columns, rows, widths): the pictures' arrangement, and the width in inches of each
    column's digit, wider than DIGIT_INCHES when a file name above it is."""
    columns = min(len(names), COLUMNS)
    rows = math.ceil(len(names) / columns)
    widths = [_text_inches(explain_module.short_name(name, NAME_AT_MOST), NAME_POINTS)
              for name in names]
    return columns, rows, [max([DIGIT_INCHES, *widths[c::columns]]) for c in range(columns)]


def _text_inches(text, points):
    """How wide `text` is in inches, written `points` high: measured on the font itself."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import text_to_path

    width, _, _ = text_to_path.get_text_width_height_descent(text, FontProperties(size=points),
                                                             ismath=False)
    return width / 72  # points -> inches


def show(names, digits, probabilities, save_png=None):
    """Show the predictions (under the cell in a notebook, else in a window until it is
    closed), or save them into the PNG file save_png. Raises UserError."""
    return figures.show_or_save(lambda fig: plot_predictions(fig, names, digits, probabilities),
                                _figure_size(names), save_png, title="predict.py",
                                keep_it="--save-png FILE")


# --------------------------------------------------------------------- drawing pad


class DrawingPad:
    """Draw a digit with the mouse and watch the network read it as you draw.

    A 280x280 canvas (ten times MNIST's size), white ink on black: press the mouse
    button, drag, release, like a felt pen. The drawing is prepared like any picture
    (preprocess) and the network's probabilities are shown as bars, at most 10 times a
    second while drawing and once more when the pen is lifted. Key c clears the canvas.

    model: a function images [N, 28, 28] -> probabilities [N, 10] (savedmodel.load).
    fig: a matplotlib figure: a window's, or an offscreen one (tests drive the event
    handlers with synthetic mouse and key events).
    explain=True (a Model saved with its explain signature): beside the pad, what every
    layer of the network sees of the drawing, updated as the pen moves (explain.View).
    """

    SIZE = 280
    PEN_RADIUS = 12  # pixels: shrunk to 20x20, a digit drawn across the canvas gets MNIST's strokes
    INTERVAL = 0.1  # seconds between two predictions while drawing

    def __init__(self, model, fig, explain=False):
        self.model, self.fig = model, fig
        self.view = None
        self.image = np.zeros((self.SIZE, self.SIZE), np.float32)  # the drawing, 0-1
        self.seen = np.zeros((SIZE, SIZE), np.float32)  # what the network gets
        self.probabilities = None  # [10], None while the canvas is blank
        self.digit = None
        self.pen_down = False
        self._last_point = None  # the previous point of the stroke, None when starting one
        self._predicted_at = -math.inf

        fig.set_facecolor("white")
        self.pad_ax = fig.add_axes([0.01, 0.2, 0.27, 0.6] if explain else [0.02, 0.06, 0.48, 0.84])
        self.pad_ax.set_title("draw a digit (mouse), c: clear", fontsize=12)
        self.pad_image = self.pad_ax.imshow(self.image, cmap="gray", vmin=0, vmax=1)
        self.pad_ax.set_xticks([])
        self.pad_ax.set_yticks([])
        canvas = fig.canvas
        self._connections = [
            canvas.mpl_connect("button_press_event", self.on_press),
            canvas.mpl_connect("motion_notify_event", self.on_motion),
            canvas.mpl_connect("button_release_event", self.on_release),
            canvas.mpl_connect("key_press_event", self.on_key),
        ]
        if explain:  # the view of every layer, beside the pad
            self.blank = explain_module.explain(np.ones((1, SIZE, SIZE)), model)[0].blank()
            self.view = explain_module.View(fig, self.blank, rect=(0.31, 0.05, 0.99, 0.95))
            # Redrawing the whole figure takes longer than 0.1 s: only what changes is drawn,
            # over a picture of the rest kept at every full draw.
            self.blitter = figures.Blitter(fig, [self.pad_image, *self.view.artists()])
            return

        self.seen_ax = fig.add_axes([0.56, 0.56, 0.17, 0.3])
        self.seen_ax.set_title("the network sees\n(28x28)", fontsize=10)
        self.seen_image = self.seen_ax.imshow(self.seen, cmap="gray", vmin=0, vmax=1)
        self.seen_ax.set_xticks([])
        self.seen_ax.set_yticks([])
        self.answer = fig.text(0.86, 0.7, "?", fontsize=64, ha="center", va="center",
                               color="#0072b2")
        self.answer_p = fig.text(0.86, 0.53, "", fontsize=12, ha="center", va="center")

        self.bars_ax = fig.add_axes([0.56, 0.08, 0.41, 0.34])
        self.bars = self.bars_ax.bar(range(10), np.zeros(10), color="#b0b0b0")
        self.bars_ax.set_ylim(0, 1)
        self.bars_ax.set_xticks(range(10))
        self.bars_ax.set_title("probabilities", fontsize=10)

    # -- events

    def on_press(self, event):
        if event.inaxes is not self.pad_ax or event.xdata is None:
            return
        self.pen_down = True
        self._last_point = (event.xdata, event.ydata)
        self.stroke(self._last_point, self._last_point)  # a click leaves a dot
        self._refresh(predict=False)

    def on_motion(self, event):
        if not self.pen_down:
            return
        if event.inaxes is not self.pad_ax or event.xdata is None:
            self._last_point = None  # off the canvas: the stroke resumes where the pen comes back
            return
        point = (event.xdata, event.ydata)
        self.stroke(self._last_point or point, point)
        self._last_point = point
        self._refresh(predict=time.monotonic() - self._predicted_at >= self.INTERVAL)

    def on_release(self, event):
        if self.pen_down:
            self.pen_down = False
            self._last_point = None
            self._refresh(predict=True)

    def on_key(self, event):
        if event.key == "c":
            self.clear()

    # -- drawing and predicting

    def stroke(self, start, end):
        """Ink the segment from start to end (x, y in pixels) with a round, anti-aliased pen."""
        (x0, y0), (x1, y1) = start, end
        r = self.PEN_RADIUS + 1
        top, bottom = max(int(min(y0, y1) - r), 0), min(int(max(y0, y1) + r) + 1, self.SIZE)
        left, right = max(int(min(x0, x1) - r), 0), min(int(max(x0, x1) + r) + 1, self.SIZE)
        if top >= bottom or left >= right:
            return
        y, x = np.mgrid[top:bottom, left:right]
        dx, dy = x1 - x0, y1 - y0
        length2 = dx * dx + dy * dy
        # distance from each pixel to the nearest point of the segment
        t = np.clip(((x - x0) * dx + (y - y0) * dy) / length2, 0, 1) if length2 > 0 else 0.0
        distance = np.hypot(x - (x0 + t * dx), y - (y0 + t * dy))
        ink = np.clip(self.PEN_RADIUS + 0.5 - distance, 0, 1)  # soft by one pixel at the edge
        region = self.image[top:bottom, left:right]
        np.maximum(region, ink, out=region)

    def predict(self):
        """Ask the network about the drawing (nothing drawn: no answer)."""
        self._predicted_at = time.monotonic()
        try:
            self.seen = preprocess(self.image)
        except NoInkError:
            self.seen = np.zeros((SIZE, SIZE), np.float32)
            self.probabilities = self.digit = None
            if self.view:
                self.view.update(self.blank)
            return
        if self.view:  # the layers too
            seen = explain_module.explain(self.seen[np.newaxis], self.model)[0]
            self.view.update(seen)
            self.probabilities = seen.probabilities.astype(np.float64)
        else:
            self.probabilities = np.asarray(self.model(self.seen[np.newaxis])[0], np.float64)
        self.digit = int(np.argmax(self.probabilities))

    def clear(self):
        self.image[:] = 0
        self.pen_down = False
        self._last_point = None
        self._refresh(predict=True)

    def _refresh(self, predict):
        if predict:
            self.predict()
        self.pad_image.set_data(self.image)
        if self.view:
            self.blitter.draw()
            return
        self.seen_image.set_data(self.seen)
        p = self.probabilities if self.probabilities is not None else np.zeros(10)
        for d, bar in enumerate(self.bars):
            bar.set_height(p[d])
            bar.set_color("#0072b2" if d == self.digit else "#b0b0b0")
        self.answer.set_text("?" if self.digit is None else str(self.digit))
        self.answer_p.set_text("" if self.digit is None else f"p={p[self.digit]:.2f}")
        self.fig.canvas.draw_idle()


# --------------------------------------------------------------------- command line


def parse_args(argv=None):
    parser = plumbing.ArgumentParser(
        prog="predict.py",
        description="Classify your own pictures of handwritten digits (PNG or JPEG, any size, "
                    "dark on light or light on dark) with a network trained by the lab's lessons, "
                    "or draw digits with the mouse (--draw).")
    parser.add_argument("images", nargs="*", metavar="IMAGE", help="pictures of one digit each")
    parser.add_argument("--model", metavar="DIR",
                        help="a saved model folder (default: the most recent one in models/ "
                             "next to predict.py)")
    parser.add_argument("--show", action="store_true",
                        help="show the digits as the network sees them, and its probabilities, "
                             "in a window")
    parser.add_argument("--save-png", metavar="FILE", help="save that picture into FILE instead")
    parser.add_argument("--draw", action="store_true",
                        help="open a canvas to draw digits with the mouse, with live predictions "
                             "(and what every layer sees, for models that can be explained)")
    parser.add_argument("--explain", action="store_true",
                        help="show what every layer of the network sees of each digit, and which "
                             "ink made its answer (with --save-png: into FILE, FILE-2...)")
    parser.add_argument("--test-digit", type=int, action="append", default=[], metavar="INDEX",
                        help="also read MNIST's test digit number INDEX (0-9999; repeatable)")
    args = parser.parse_args(argv)
    if args.draw and (args.images or args.show or args.save_png or args.explain or args.test_digit):
        parser.error("--draw takes no IMAGE, --show, --save-png, --explain or --test-digit")
    if not args.draw and not args.images and not args.test_digit:
        parser.error("give one or more IMAGE files, --test-digit N, or --draw")
    bad = [n for n in args.test_digit if not 0 <= n < 10000]
    if bad:
        parser.error(f"--test-digit {bad[0]}: MNIST's test digits are numbered 0 to 9999")
    return args


def main(argv=None):
    args = parse_args(argv)
    try:
        return _run(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _run(args):
    if args.draw:  # no window possible: say so before anything else
        try:
            window = figures.window_figure((16, 9), "predict.py --draw", toolbar=False)
        except UserError as problem:  # no zoom and pan tools: in the pad, dragging draws
            raise UserError(f"{problem}: --draw needs a window to draw in") from None
    folder = Path(args.model) if args.model else savedmodel.latest()
    if not args.model:
        print(f"using the most recent model: {folder}", file=sys.stderr)
    savedmodel.check_folder(folder)
    problem = args.save_png and plumbing.cannot_write(args.save_png)
    if problem:
        raise UserError(f"--save-png {args.save_png}: {problem}")
    if args.draw:
        import matplotlib.pyplot as plt

        model = savedmodel.load(folder)
        explaining = model.explains
        if not explaining:
            print(f"{model.folder} was saved by an older version of the lab: the pad shows its "
                  "answers, not its layers (run its lesson again to see them)", file=sys.stderr)
        pad = DrawingPad(model, window, explain=explaining)
        # until the window is closed (pad stays referenced: matplotlib's handlers are weak)
        plt.show()
        del pad
        return 0

    names, digits, failed = [], [], False
    for name in args.images:  # a bad file gets one line and does not stop the others
        try:
            digits.append(read_image(name))
            names.append(name)
        except UserError as error:
            print(f"error: {name}: {error}", file=sys.stderr)
            failed = True
    if args.test_digit:
        test = mnistdata.read_data_sets(validation_size=0, reshape=False).test
        for index in args.test_digit:
            digits.append(test.images[index, :, :, 0])
            names.append(f"test digit {index} (a {test.labels[index]})")
    if not digits:
        return 1
    model = savedmodel.load(folder)
    if args.explain:
        seen = explain_module.explain(np.stack(digits), model, names)
        for k, one in enumerate(seen):
            print(f"{one.name}: {one.answer} (p={one.probabilities[one.answer]:.2f})")
            if args.save_png:
                path = Path(args.save_png)
                path = path if k == 0 else path.with_name(f"{path.stem}-{k + 1}{path.suffix}")
                explain_module.show(one, save_png=path)
                print(f"saved {path}", file=sys.stderr)
            else:
                explain_module.show(one, keep_it="--save-png FILE")
        return 1 if failed else 0
    probabilities = model(np.stack(digits))
    for name, p in zip(names, probabilities):
        (best, p_best), *others = top_digits(p)
        print(f"{name}: {best} (p={p_best:.2f})")
        print("  then " + ", ".join(f"{d} (p={q:.2f})" for d, q in others))
    sys.stdout.flush()

    if args.show or args.save_png:
        shown = names[:SHOW_AT_MOST]
        if len(names) > len(shown):
            print(f"showing the first {len(shown)} of {len(names)} images", file=sys.stderr)
        show(shown, digits[:len(shown)], probabilities[:len(shown)], args.save_png)
        if args.save_png:
            print(f"saved {args.save_png}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
