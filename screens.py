"""screens.py: where the dashboard shows while a network trains, and when it redraws.

Two screens:

- Window: a matplotlib window in a terminal (TkAgg, Qt...): the user's keys and clicks
  go to the dashboard, closing it stops training;
- NotebookPicture: in a Jupyter notebook, a PNG picture under the cell, replaced in place
  (the same display message in JupyterLab, VS Code and Colab). Under %matplotlib widget
  too: ipympl's canvas waits for the browser's answers, which a kernel busy training does
  not read, so it would stay blank until the cell ends.

Drawing costs as much as dozens of training steps, so a screen redraws rarely: it times
each redraw and waits accordingly, so that drawing takes at most its budget of the time
(BUDGET), and never sooner than MIN_INTERVAL. A picture under a cell is drawn the cheap
way (figures.Blitter: only what moved, over a kept background) and encoded fast; its
digit panels, which cost the most, are refreshed less often than its curves; and it is
replaced at least every MAX_INTERVAL seconds.
"""

import io
import time

import figures
from plumbing import UserError

EVENT_INTERVAL = 0.05  # between redraws, a window handles its events this often


class Window:
    """The dashboard in a window: redrawn at most 5 times a second and within 2 % of the
    time; its events (keys, clicks, resizing, closing) handled between redraws."""

    BUDGET, MIN_INTERVAL, MAX_INTERVAL = 0.02, 0.2, None

    def __init__(self, title, figsize):
        self.figure = figures.window_figure(figsize, title)  # UserError: no window here
        self.figure.canvas.mpl_connect("close_event", self._on_close)
        manager = self.figure.canvas.manager
        if getattr(manager, "key_press_handler_id", None) is not None:
            # The dashboard's key handler passes the keys it does not use on to matplotlib's
            # (zoom, save...)
            self.figure.canvas.mpl_disconnect(manager.key_press_handler_id)
        self.closed = False  # the user closed it
        self.close_requested = False  # ... while training: the loop stops once
        self.training = True
        self.shown = False
        self.draw_times = []  # seconds each redraw took (to check the budget)
        self.next_draw = self.next_events = 0.0

    def due(self):
        return time.perf_counter() >= self.next_draw

    def draw(self, blitter, title=None, digits=True):
        """Redraw now (the figure's data is up to date), time it, plan the next redraw."""
        start = time.perf_counter()
        first = not self.shown
        if first:
            self._show()
        blitter.draw()
        self.poll()
        self._plan(start, first)

    def _plan(self, start, first):
        cost = time.perf_counter() - start
        self.draw_times.append(cost)
        # The first draw also loads fonts and the like, once: not part of the budget.
        wait = max(self.MIN_INTERVAL, 0 if first else cost / self.BUDGET)
        self.next_draw = start + min(wait, self.MAX_INTERVAL or wait)

    def _show(self):
        """Show the window, cheaply: while it appears it draws itself (often twice), so the
        panels are hidden until then, and then drawn once."""
        axes = [ax for ax in self.figure.axes if ax.get_visible()]
        for ax in axes:
            ax.set_visible(False)
        self.figure.show()
        self.poll()
        for ax in axes:
            ax.set_visible(True)
        self.shown = True

    def poll(self):
        """Let the window handle clicks, keys and resizing (this runs the key handler)."""
        if not self.closed:
            self.figure.canvas.flush_events()
        self.next_events = time.perf_counter() + EVENT_INTERVAL

    def idle(self):
        """Between redraws: handle events if it is time."""
        if time.perf_counter() >= self.next_events:
            self.poll()

    def _on_close(self, event):
        self.closed = True
        self.close_requested = self.training

    def finish(self, wait):
        """The end of the run: with wait, keep the window open until the user closes it
        or presses Ctrl-C in the terminal; then close it."""
        import matplotlib.pyplot as plt

        self.training = False
        try:
            if wait and not self.closed:
                print("Close the dashboard window to finish (or press Ctrl-C here).", flush=True)
                while not self.closed:
                    time.sleep(EVENT_INTERVAL)
                    self.poll()
        except KeyboardInterrupt:  # Ctrl-C at the end: the window goes, the run is saved
            pass
        finally:
            if not self.closed:
                plt.close(self.figure)
                self.closed = True


class NotebookPicture:
    """The dashboard as a PNG picture under the notebook cell, replaced in place.

    The first one shows at once ("starting"); the next ones when the training is measured,
    at most every MIN_INTERVAL seconds and within BUDGET of the time, yet at least every
    MAX_INTERVAL seconds: a picture is drawn cheaply (a blit of what moved) and encoded
    fast (PNG at zlib level 1). The digit panels, the dearest part, are redrawn at most
    every DIGITS_INTERVAL seconds (and at the end)."""

    BUDGET, MIN_INTERVAL, MAX_INTERVAL = 0.06, 1.0, 2.0
    DIGITS_INTERVAL = 5.0

    def __init__(self, title, figsize):
        from IPython.display import display

        # As wide as the output area: no wider (the browser would shrink it, at a cost),
        # and a quarter fewer pixels to draw and encode than the window's.
        self.figure = figures.offscreen_figure(figsize, dpi=figures.NOTEBOOK_WIDTH / figsize[0])
        self.closed = self.close_requested = False
        self.draw_times = []
        self.next_draw = self.next_digits = 0.0
        self.title = title
        self._display = display
        self._handle = None

    def due(self):
        return time.perf_counter() >= self.next_draw

    def digits_due(self):
        """May the digit panels be redrawn this time?"""
        return time.perf_counter() >= self.next_digits

    def draw(self, blitter, title=None, digits=True):
        start = time.perf_counter()
        first = self._handle is None
        blitter.draw()
        picture = self.picture(title)
        if first:
            self._handle = self._display(picture, display_id=True)
        else:
            self._handle.update(picture)
        if digits:
            self.next_digits = start + self.DIGITS_INTERVAL
        cost = time.perf_counter() - start
        self.draw_times.append(cost)
        wait = max(self.MIN_INTERVAL, cost / self.BUDGET)
        self.next_draw = start + (0 if first else min(wait, self.MAX_INTERVAL))

    def picture(self, title=None):
        """What the canvas shows, as a PNG picture for IPython (its Title: which step)."""
        from IPython.display import Image
        from PIL import Image as PILImage, PngImagePlugin

        canvas = self.figure.canvas
        width, height = canvas.get_width_height(physical=True)
        image = PILImage.frombuffer("RGBA", (width, height), canvas.buffer_rgba(), "raw",
                                    "RGBA", 0, 1)
        info = PngImagePlugin.PngInfo()
        info.add_text("Title", title or self.title)
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="png", compress_level=1, pnginfo=info)
        return Image(data=buffer.getvalue(), format="png")

    def idle(self):
        pass

    def poll(self):
        pass

    def finish(self, wait):
        self.closed = True


def open_screen(title, figsize):
    """The screen for a live dashboard here: a picture under the cell in a notebook (also
    with %matplotlib widget), else a window. Raises UserError ("no display"...) if none."""
    import plumbing

    if plumbing.in_notebook() and (figures.notebook_pictures()
                                   or figures.is_notebook_widget(figures.chosen_backend())):
        return NotebookPicture(title, figsize)
    try:
        return Window(title, figsize)
    except UserError:
        raise
    except Exception as error:  # a backend that fails to open one
        raise UserError(f"could not open a window ({type(error).__name__}: {error})") from None
