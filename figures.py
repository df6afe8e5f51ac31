"""figures.py: where the lab's pictures go, and how their axes read.

Every picture of the lab (the dashboard, compare, a confusion matrix, what the network
sees, your own digits) is drawn on a matplotlib Figure, then:

- shown: under the cell in a notebook (a PNG), else in a window (or, with
  `%matplotlib widget`, the live figure under the cell): show_figure;
- or saved into a PNG file, atomically: save_figure;
- either one, as the user asked: show_or_save, the one place that decides.

A Blitter redraws only what moves on a figure (the dashboard's curves, the drawing pad's
strokes) over a kept picture of the rest. The axis helpers at the end make accuracy and
loss axes read well (round ticks, a zoom that follows the curves).

Importing it imports neither TensorFlow nor matplotlib.pyplot.
"""

import io
import math
import os
import sys

import numpy as np

import plumbing
from plumbing import UserError

# Look: sized for a projector. The dashboard is 16 x 9 inches, fonts are large.
FIGURE_SIZE = (16, 9)
SCREEN_DPI = 72  # the window: 1152 x 648 pixels, fits a 1366 x 768 laptop screen
PNG_DPI = 100  # saved pictures: 1600 x 900
NOTEBOOK_WIDTH = 928  # pixels: a picture or widget under a cell fits JupyterLab's output area
TITLE_SIZE = 18
TEXT_SIZE = 14


# ---------------------------------------------------------------- where figures show


def chosen_backend():
    """The matplotlib backend chosen by the user or a notebook ('' if matplotlib would pick)."""
    import matplotlib

    try:
        name = matplotlib.get_backend(auto_select=False)  # matplotlib >= 3.10
    except TypeError:
        name = os.environ.get("MPLBACKEND")
    return (name or "").lower()


def no_display():
    """True on Linux without an X11 or Wayland display: no window can open."""
    return sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def is_notebook_widget(backend):
    """Does this backend draw live figures under notebook cells (%matplotlib widget)?"""
    return any(word in backend for word in ("ipympl", "widget", "nbagg"))


def notebook_pictures():
    """True where figures should be pictures under a notebook cell: a Jupyter kernel with
    its default (inline) backend, or none chosen; not with %matplotlib widget."""
    backend = chosen_backend()
    return plumbing.in_notebook() and not is_notebook_widget(backend) and (
        "inline" in backend or backend in ("", "agg"))


def offscreen_figure(figsize, dpi=SCREEN_DPI):
    """A figure that is only rendered to files or pictures (no pyplot, no window)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def window_figure(figsize, title, dpi=SCREEN_DPI, toolbar=True):
    """A pyplot figure that will show in a window (or an ipympl widget in a notebook).

    Raises UserError with the reason when no window can open here ("no display", or a
    backend that cannot show windows).
    """
    widget = is_notebook_widget(chosen_backend())
    if no_display() and not widget:
        raise UserError("no display")
    import matplotlib.pyplot as plt

    if widget:  # under a cell: no wider than the notebook's output area
        dpi = min(dpi, NOTEBOOK_WIDTH / figsize[0])
    with plt.rc_context({} if toolbar else {"toolbar": "None"}):
        fig = plt.figure(figsize=figsize, dpi=dpi)
    if (fig.canvas.required_interactive_framework is None
            and not is_notebook_widget(plt.get_backend().lower())):
        plt.close(fig)
        raise UserError(f"the matplotlib backend {plt.get_backend()!r} cannot open windows")
    fig.stale_callback = None  # we decide when to draw, not pyplot's interactive mode
    fig.canvas.manager.set_window_title(title)
    return fig


def png_bytes(fig, dpi=SCREEN_DPI, title=None):
    """The figure as a PNG file's bytes; title goes into the file's Title field."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, metadata={"Title": title} if title else None)
    return buffer.getvalue()


def save_figure(fig, path, dpi=PNG_DPI):
    """Save a figure as a PNG file, atomically. Raises UserError if it cannot be written."""
    plumbing.write_atomically(path, lambda file: fig.savefig(file, format="png", dpi=dpi))


def show_figure(draw, figsize, title="MNIST lab"):
    """Show a picture: under the cell in a notebook, else in a window until it is closed.

    draw(fig) draws on the figure. Raises UserError("no display") and the like when
    neither is possible.
    """
    if notebook_pictures():  # (no wider than the output area: the browser would shrink it)
        from IPython.display import Image, display

        fig = offscreen_figure(figsize, dpi=min(SCREEN_DPI, NOTEBOOK_WIDTH / figsize[0]))
        draw(fig)
        display(Image(data=png_bytes(fig, dpi=fig.dpi), format="png"))
        return
    fig = window_figure(figsize, title)
    draw(fig)
    if is_notebook_widget(chosen_backend()):  # %matplotlib widget: shown under the cell, once
        fig.show()
        leave_pyplot(fig)
        return
    import matplotlib.pyplot as plt

    plt.show()


def show_or_save(draw, figsize, png=None, *, title="MNIST lab", dpi=PNG_DPI,
                 keep_it="save_png=FILE"):
    """Draw a picture into the PNG file `png`, or show it (show_figure). Where nothing can
    show it, say so in one warning line that tells how to keep it (keep_it: the keyword or
    flag that saves it), and go on. Returns where it went: the file, "shown" or None.
    Raises UserError only when the file cannot be written."""
    if png:
        fig = offscreen_figure(figsize, dpi=dpi)
        draw(fig)
        save_figure(fig, png, dpi=dpi)
        return png
    try:
        show_figure(draw, figsize, title)
    except UserError as problem:
        print(f"{problem}: the picture is not shown (add {keep_it} to keep it)",
              file=sys.stderr, flush=True)
        return None
    return "shown"


def leave_pyplot(fig):
    """Take a figure shown under a cell (%matplotlib widget) out of pyplot's list of figures.

    Else later cells show it again: ipympl shows pyplot's current figure at every plt.show(),
    which %run calls; and %run's "a figure was made" flag would make it draw a new, empty one.
    """
    import matplotlib.pyplot as plt
    from matplotlib._pylab_helpers import Gcf

    Gcf.figs.pop(fig.canvas.manager.num, None)
    if hasattr(plt.draw_if_interactive, "called"):  # set by IPython's %run
        plt.draw_if_interactive.called = False


def shorten_to_fit(text, right):
    """Shorten a Text artist, ending it with "…", until it ends left of x = right (pixels)."""
    full = text.get_text()
    for length in range(len(full) - 1, 0, -1):
        if text.get_window_extent().x1 <= right:
            return
        text.set_text(full[:length].rstrip() + "…")


# ---------------------------------------------------------------- redrawing only what moves


class Blitter:
    """Redraws only the artists that move, over a kept picture of everything else.

    The moving artists are "animated": matplotlib leaves them out of its own drawing, and
    after every full draw (ours, a window's, savefig's) this draws them on top and keeps
    the picture of the rest (axes, ticks, titles) as the background. draw() then restores
    that background and draws only the moving artists (a "blit", several times faster),
    or everything when layout() (what the background depends on: visible axes, ranges,
    ticks) has changed since it was kept.
    """

    def __init__(self, fig, artists, layout=lambda: None):
        self.fig, self.artists, self.layout = fig, list(artists), layout
        for artist in self.artists:
            artist.set_animated(True)
        self.background = self.background_layout = None
        # A function, not the bound method, which matplotlib would hold weakly: the figure
        # keeps its blitter alive.
        fig.canvas.mpl_connect("draw_event", lambda event: self._on_draw(event))

    def draw(self):
        """Draw the figure on its canvas: a blit if the kept background is still right."""
        canvas = self.fig.canvas
        if (self.background is None or self.layout() != self.background_layout
                or not canvas.supports_blit):
            canvas.draw()  # everything; _on_draw keeps the new background
        else:
            canvas.restore_region(self.background)
            self._draw_moving(canvas.get_renderer())
            canvas.blit(self.fig.bbox)

    def _on_draw(self, event):
        if not event.canvas.is_saving():
            self.background = event.canvas.copy_from_bbox(self.fig.bbox)
            self.background_layout = self.layout()
        self._draw_moving(event.renderer)

    def _draw_moving(self, renderer):
        for artist in self.artists:
            if artist.axes is None or artist.axes.get_visible():
                artist.draw(renderer)


# ---------------------------------------------------------------- axes that read well

# The accuracy axis: its lower end (see accuracy_floor) -> the distance between its ticks.
ACCURACY_TICKS = {0.0: 0.2, 0.8: 0.05, 0.9: 0.02, 0.95: 0.01, 0.98: 0.005}
ACCURACY_KEEP = 0.8  # the share of the test curve (after step 0) the accuracy axis must show
DECADES = [10.0 ** k for k in range(-6, 7)]
ROUND_NUMBERS = [s * decade for decade in DECADES for s in (1, 2, 5)]  # 1e-6, 2e-6, 5e-6, ... 5e6


def accuracy_floor(steps, accuracies):
    """Lower end of an accuracy axis that zooms in on a test curve yet shows most of it.

    The highest of 0.98, 0.95, 0.9 and 0.8 that keeps at least ACCURACY_KEEP of the test
    points after step 0 on the axis (a short run shows its climb, a long one its plateau)
    and puts the best one in the upper 70 % of the axis; else 0.
    """
    points = np.asarray([a for i, a in zip(steps, accuracies) if i > 0], dtype=float)
    points = points[np.isfinite(points)]
    if not points.size:
        return 0.0
    for floor in (0.98, 0.95, 0.9, 0.8):
        if np.mean(points >= floor) >= ACCURACY_KEEP and points.max() >= floor + 0.3 * (1 - floor):
            return floor
    return 0.0


def format_accuracy_axis(ax, floor):
    """Accuracy in per cent, from floor to 100 %, with ticks on round values that their
    labels give exactly (98.5 %, not 98 %)."""
    from matplotlib.ticker import MultipleLocator, PercentFormatter

    step = ACCURACY_TICKS[floor]
    ax.set_ylim(floor, 1.0)
    ax.yaxis.set_major_locator(MultipleLocator(step))
    decimals = 0 if round(step * 100, 6).is_integer() else 1
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=decimals))


def round_limits(low, high, current=None, log=False):
    """Axis limits that hold [low, high], on round numbers (1, 2 or 5 times a power of ten).

    With current limits, the axis only grows: each side stays while it holds the
    data, else moves out with room to spare. So axis ranges change rarely, and the
    dashboard rarely needs a full redraw.
    """
    grow = current is not None
    if log:
        new_low = max(r for r in ROUND_NUMBERS if r <= max(low, 1e-5) / (3 if grow else 1.5))
        new_high = min(r for r in ROUND_NUMBERS if r >= min(high, 1e6) * (2 if grow else 1.2))
    else:
        room = max(high - low, 0.1 * max(abs(low), abs(high)), 1e-3) / (3 if grow else 10)
        step = min(r for r in ROUND_NUMBERS if r >= (high - low + 2 * room) / 5)
        new_low, new_high = (math.floor((low - room) / step) * step,
                             math.ceil((high + room) / step) * step)
    if not grow:
        return new_low, new_high
    return (current[0] if low >= current[0] else new_low,
            current[1] if high <= current[1] else new_high)


def finite_range(values, positive=False):
    """(min, max) of the finite (and, if positive, > 0) values; None if there is none."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & ((values > 0) if positive else True)]
    return (values.min(), values.max()) if values.size else None


def set_loss_range(ax, low, high):
    """A logarithmic loss axis from low to high, labelled with plain numbers (0.05, 0.1, 0.2...)."""
    ax.set_yscale("log")
    ax.set_ylim(low, high)
    ticks = [r for r in ROUND_NUMBERS if low <= r <= high]
    if len(ticks) > 9:  # too many: keep the powers of ten
        ticks = [r for r in ticks if r in DECADES]
    ax.set_yticks(ticks, [f"{r:g}" for r in ticks])
    ax.minorticks_off()
