"""Watching a neural network learn: the lab's dashboard, run histories, movies, comparisons.

History: what one training run measured, saved as JSON (runs/NAME.json). The training loop
(lab.py) measures the accuracy and the cross-entropy loss on the current training batch
every 20 steps, and on the 10,000 test digits every 20 steps at first, then about 100
times per run, and at the last step.

Dashboard: six live panels, in a window or as a picture under a notebook cell:

    1 accuracy          2 cross-entropy loss      3 training digits
    4 weights           5 biases                  6 test digits

Thin orange curves: the current training batch (noisy); bold blue: the test digits. Panels
4 and 5: how the values spread (bands of percentiles around the median). Panels 3 and 6:
misread digits first, on red, with the correct digit bottom left and the network's answer
bottom right. Window keys: space pauses, 1-6 one panel large, 7 the curves, 8 panels 4 and
5, 9 the digits, 0 all six. Drawing costs as much as dozens of training steps, so the
dashboard draws rarely: at most 5 frames a second and 2 % of the time (3 % for a notebook
picture, a whole PNG); it times each redraw and waits accordingly before the next one.

Your own network: any training loop feeds a Dashboard (its docstring is the API), and
Keras' model.fit gets it as a callback, DashboardCallback (made at first use: importing
Keras loads TensorFlow). Panels 3 and 6 show any pictures, greyscale or colour; for inputs
that are not pictures they say so, and the other panels work as usual.

Finished runs, from the command line or a notebook (where pictures go under the cell):

    python tensorflowvisu.py compare runs/*.json --save-png compare.png
    python tensorflowvisu.py confusion runs/mnist_2.1_five_layers_relu.json
    python tensorflowvisu.py panel runs/mnist_2.1_five_layers_relu.json 6
    tensorflowvisu.show_panel(history, 6)     # a run's panel 6, large

Importing this module imports neither TensorFlow nor matplotlib.pyplot.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import history as history_module
import plumbing
from history import History
from plumbing import UserError

# How often the dashboard may redraw: at most MAX_FPS frames a second, and drawing may
# take at most DRAW_BUDGET of the wall time (NOTEBOOK_BUDGET for a picture in a notebook,
# which is a whole PNG each time). Between redraws, window events are processed at most
# every EVENT_INTERVAL seconds.
MAX_FPS = 5  # enough to watch the curves grow; each frame also costs the X server CPU time
DRAW_BUDGET = 0.02
NOTEBOOK_BUDGET = 0.03
EVENT_INTERVAL = 0.05

# Look: sized for a projector. The figure is 16 x 9 inches, fonts are large.
FIGURE_SIZE = (16, 9)
SCREEN_DPI = 72  # the window: 1152 x 648 pixels, fits a 1366 x 768 laptop screen
PNG_DPI = 100  # saved pictures: 1600 x 900
MP4_DPI = 80  # 1280 x 720: both even, as the H.264 encoder needs
GIF_DPI = 50  # 800 x 450: GIF frames are kept in memory until the end
MOVIE_FPS = 8
TITLE_SIZE = 18
TEXT_SIZE = 14
TRAIN_STYLE = dict(color="#e69f00", linewidth=1.5, alpha=0.9, label="training batch")
TEST_STYLE = dict(color="#0072b2", linewidth=3.5, label="test digits")
PANEL4_COLOUR = "#009e73"
PANEL5_COLOUR = "#cc79a7"
# Compared runs: these colours while they last, then a colormap's; and the line styles in
# turn, so that neighbouring runs differ twice.
RUN_COLOURS = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9",
               "#000000", "#f0e442", "#999999", "#882255"]
RUN_LINESTYLES = ["-", "--", "-.", ":"]

# Digit tiles: black ink on white, or on red for the misread ones.
BLACK = np.array([0.0, 0.0, 0.0], np.float32)
BACKGROUND = np.array([1.0, 1.0, 1.0], np.float32)
ERROR_BACKGROUND = np.array([1.0, 0.55, 0.55], np.float32)
LABEL_BOX = np.array([1.0, 1.0, 1.0], np.float32)  # correct digit: black on white
PREDICTION_BOX = np.array([0.7, 0.0, 0.0], np.float32)  # network's answer: white on red

ERROR_FRAME = np.array([0.9, 0.0, 0.0], np.float32)  # misread colour pictures: a red frame
MAX_TILE = 32  # larger pictures are shrunk to this many pixels a side in panels 3 and 6
MNIST_SHAPE = (28, 28, 1)  # the lab's digits: what show_panel can draw again from MNIST

# A 3 x 5 pixel font for the digits 0-9, drawn twice as large on the tiles.
_FONT = [
    "111 101 101 101 111", "010 110 010 010 111", "111 001 111 100 111",
    "111 001 111 001 111", "101 101 111 001 001", "111 100 111 001 111",
    "111 100 111 101 111", "111 001 001 001 001", "111 101 111 101 111",
    "111 101 111 001 111",
]
GLYPHS = np.array([[[c == "1" for c in row] for row in glyph.split()] for glyph in _FONT])
GLYPHS = GLYPHS.repeat(2, axis=1).repeat(2, axis=2)  # 10 glyphs of 10 x 6 pixels

# Panels 4 and 5 keep 11 percentiles (0, 10, ..., 100) of the values at each call;
# those of a regular sample of at most HISTOGRAM_SAMPLE values are as good for a
# picture, and much faster to get than those of all the weights.
PERCENTILES = np.linspace(0, 100, 11)
HISTOGRAM_SAMPLE = 20_000

# The accuracy axis: its lower end (see _accuracy_floor) -> the distance between its ticks.
ACCURACY_TICKS = {0.0: 0.2, 0.8: 0.05, 0.9: 0.02, 0.95: 0.01, 0.98: 0.005}
ACCURACY_KEEP = 0.8  # the share of the test curve (after step 0) the accuracy axis must show

# The digit panels: (digits shown, lines). Panel 6 shows fewer, larger digits when it has
# more room: TEST_GRIDS maps the number of panels shown to its grid (tiles of about 7, 24
# and 37 pixels in the window).
TRAIN_GRID = (100, 10)
TEST_GRIDS = {6: (1000, 25), 2: (440, 22), 1: (392, 14)}
MAX_KEPT_ERRORS = 1000  # misread test digits a History keeps for show_panel

# Dashboard keys: which panels each one shows.
VIEWS = {"1": (1,), "2": (2,), "3": (3,), "4": (4,), "5": (5,), "6": (6,),
         "7": (1, 2), "8": (4, 5), "9": (3, 6), "0": (1, 2, 3, 4, 5, 6)}
VIEWS["escape"] = VIEWS["0"]
VIEWS["f"] = ("f",)  # the first layer's weights, as pictures: noise turning into strokes
PAUSE_KEY = " "


# --------------------------------------------------------------------------- the dashboard


class Dashboard:
    """The lab's six panels: a view of a training run, which also keeps its History.

    Any training loop can feed it: the lessons (through lab.py), Keras (DashboardCallback),
    PyTorch, JAX or plain TensorFlow. Arrays are numpy arrays (or anything np.asarray takes):

        dashboard = tensorflowvisu.Dashboard("my_network", steps=1000)
        for step in range(1001):
            ...                                             # a training step
            if step % 20 == 0:                              # the training batch's figures
                dashboard.train(step, accuracy, loss)
            if step % 100 == 0:                             # the test images'
                dashboard.test(step, test_accuracy, test_loss, images=x_test, labels=y_test,
                               predictions=test_predictions, panels=[all_weights, all_biases])
        dashboard.finish("runs/my_network.json")            # saves the history for compare

    train(step, accuracy, loss, learning_rate=None, *, images, labels, predictions, indices)
        the training batch's figures; its pictures for panel 3 (all optional).
    test(step, accuracy, loss, *, images, labels, predictions, panels, filters)
        the test (or validation) data's; its pictures for panel 6; panels: the values whose
        spread panels 4 and 5 show (e.g. [all the weights, all the biases]).
    finish(*history_paths, wait=True): the end: writes the history (JSON, for compare),
        the PNG and the movie; a window stays open until closed (wait).
    Closing the window makes train or test raise KeyboardInterrupt once: stop the loop, then
    call finish. The history is .history; the matplotlib figure .figure.

    name: the run's name (title, history); steps: how many the run will take (the axes
    span them from the start); config: what describes the run, kept in its history.
    live: show a window (or, in a notebook, a picture under the cell) if possible; `live`
    then tells whether it does, and `not_live` why not ("no display", ...). Without it,
    nothing is drawn until a picture is needed: png (a PNG of the final state) or movie
    (an MP4 or GIF, a frame at every test). panel_titles: what panels 4 and 5 show.
    legend: the names of the thin and the bold curves; image_titles: of panels 3 and 6.
    view: the key whose view shows first (0: the six panels; f: the first layer's filters).
    Images: [N, H, W], [N, H, W, 1] (greyscale: drawn as ink, black on white, as the digits),
    [N, H, W, 3] (colour, as they are; misread ones get a red frame), [N, 1 or 3, H, W]
    (PyTorch's order) or [N, 784] (MNIST, flattened); uint8, or floats in [0, 1] (other
    ranges are stretched to it); larger than 32 pixels, shrunk. Other inputs (features,
    sequences) are not pictures: panels 3 and 6 say so. Labels and predictions: N class
    numbers (0-9 are written on misread pictures).
    Arrays are kept by reference: pass fresh ones.
    """

    def __init__(self, name, steps=None, *, config=None, panel_titles=("weights", "biases"),
                 legend=("training batch", "test digits"),
                 image_titles=("Training digits", "Test digits"), live=True, movie=None,
                 png=None, view="0"):
        self.history = History(name, dict(config or {}, steps=steps) if steps else config)
        self.title = str(name) or "MNIST lab"
        self.view = VIEWS[view]  # what shows first: a key's view (0: all six panels)
        self.panel_titles = ["Accuracy", "Cross-entropy loss", image_titles[0], *panel_titles,
                             image_titles[1]]
        self.legend = tuple(legend)
        self.png = png
        self.movie = Movie(movie) if movie else None
        self.mode = None  # "window" (GUI window or notebook widget), "notebook" (pictures) or None
        self.not_live = ""  # why live was asked for and is not possible
        self.paused = False
        self.closed = False  # the user closed the window
        self.draw_times = []  # seconds each live redraw took (to check the drawing budget)
        self._panels = None  # built when first needed (live view, data pushed, a picture asked for)
        self._step = None
        self._steps = steps if isinstance(steps, int) and steps > 0 else None
        self._training_indices = None  # where the training digits are in the training set
        self._training = True  # until the run ends: space pauses, closing stops it
        self._close_requested = False
        self._shown = False  # the window has appeared
        self._next_draw = self._next_events = 0.0
        self._drawn_state = None  # the data the screen shows
        self._display = None  # the display handle of a notebook picture, or of a widget
        self._start = time.perf_counter()
        self._saved = False  # save() ran (or finish() runs it)
        if live:
            self._open()

    @property
    def live(self):
        """True while a window (or a notebook picture) shows the dashboard."""
        return self.mode is not None and not self.closed

    @property
    def wants_pictures(self):
        """Will anything show the digits and panels 4 and 5: a window or notebook picture, a
        movie, a PNG, or the figure asked for already (picture, show_panels)? (Else they
        need not be computed.)"""
        return self.live or bool(self.movie or self.png) or self._panels is not None

    @property
    def figure(self):
        """The matplotlib Figure (None until something needed it)."""
        return self._panels.fig if self._panels else None

    def clock(self):
        """Seconds since the run started (a resumed run's clock goes on)."""
        return round(time.perf_counter() - self._start, 3)

    # ----- what the training loop tells

    def train(self, step, accuracy, loss, learning_rate=None, *, images=None, labels=None,
              predictions=None, indices=None):
        """What was measured on a training batch at `step`: its accuracy and loss (and the
        learning rate); its images, labels and the network's predictions for panel 3
        (indices: where they are in the training set, for show_panel). Then draws if it
        is time. Raises KeyboardInterrupt once if the user closed the window."""
        self.history.append_train(step, accuracy, loss,
                                  math.nan if learning_rate is None else learning_rate,
                                  self.clock())
        if images is not None:
            self._show_training_images(images, labels, predictions, indices)
        self.refresh(step)

    def _show_training_images(self, images, labels, predictions, indices=None):
        """Panel 3's pictures, if anything will show them (DashboardCallback also shows
        some between two measurements: Keras' training batches are out of its sight)."""
        if self.wants_pictures:
            self._ensure_panels()
            self._panels.train_digits = (images, labels, predictions)
            self._panels.digits_changed[0] = True
            self._training_indices = indices

    def test(self, step, accuracy, loss, *, images=None, labels=None, predictions=None,
             panels=None, filters=None):
        """What was measured on the test images at `step`: accuracy and loss; the images,
        labels and predictions for panel 6; panels: the values whose spread panels 4 and 5
        show (e.g. [all the weights, all the biases]); filters: the first layer's weights
        (key f shows them as pictures). Then draws if it is time."""
        self.history.append_test(step, accuracy, loss, self.clock())
        if self.wants_pictures and images is not None:
            self._ensure_panels()
            self._panels.test_digits = (images, labels, predictions)
            self._panels.digits_changed[1] = True
        if self.wants_pictures and panels is not None:
            self._ensure_panels()
            self._panels.append_histograms(step, *panels)
        if self.wants_pictures and filters is not None:
            self._ensure_panels()
            self._panels.filters = np.array(filters)  # (a copy: the weights go on changing)
        if self.movie:
            self.movie.add_frame(self.picture(), step)
        self.refresh(step)

    def continue_from(self, earlier, step):
        """Go on from the history of the same run, interrupted at `step` (lesson 6.0)."""
        self.history.resume(earlier, step)
        self._start -= (self.history.train["wall_time"][-1:] or [0])[0]

    def refresh(self, step):
        """Redraw if it is time (within the budget), else let the window handle its events;
        wait while paused. Raises KeyboardInterrupt once if the user closed the window."""
        self._step = step
        if self._panels:
            self._panels.step, self._panels.steps = step, self._steps
        if self.live:
            now = time.perf_counter()
            if now >= self._next_draw:
                self._draw()
            elif now >= self._next_events:
                self._process_events()
            while self.paused and self.live:
                time.sleep(EVENT_INTERVAL)
                self._process_events()
        if self._close_requested:
            self._close_requested = False
            raise KeyboardInterrupt("the dashboard window was closed")

    def resume(self):
        """End a pause (space), e.g. because Ctrl-C came: the loop goes on to stop."""
        self.paused = False

    def _redraw_due(self):
        """Would a refresh now redraw the window (so that fresh pictures would show)?"""
        return self.live and time.perf_counter() >= self._next_draw

    # ----- the end of the run

    def save(self, *history_paths):
        """At the end of the run: keep what panels 3 to 6 show in the history, write it to
        each of history_paths, write the PNG and the movie; returns the paths written."""
        self._training = self.paused = False
        self._saved = True
        self.keep_pictures()
        for path in history_paths:
            self.history.save(path)
        saved = list(history_paths)
        if self.png:
            save_figure(self.picture(), self.png)
            saved.append(self.png)
        if self.movie:
            self.movie.finish(self.picture(), self._step)
            saved.append(self.movie.path)
        return saved

    def finish(self, *history_paths, wait=True):
        """The end of the run: save (see save) unless that is done, draw the final state;
        with wait and a window on screen, print a hint and keep the window open until the
        user closes it; then close it. Safe to call twice."""
        if history_paths or not self._saved:
            self.save(*history_paths)
        self._training = self.paused = False
        try:
            if not self.live:
                return
            if self._drawn_state != self._panels.data_state():
                self._draw()
            if self.mode == "window" and self._display is not None:
                # %matplotlib widget: the notebook keeps, as the widget's picture, the one
                # made when it was shown; show the final state instead.
                self._display.update(self.figure.canvas)
            if wait and self.mode == "window" and not _is_notebook_widget(_chosen_backend()):
                print("Close the dashboard window to finish.", flush=True)
                while self.live:
                    time.sleep(EVENT_INTERVAL)
                    self._process_events()
        finally:
            if (self.mode == "window" and not self.closed
                    and not _is_notebook_widget(_chosen_backend())):
                import matplotlib.pyplot as plt

                plt.close(self.figure)
            self.mode = None

    def keep_pictures(self):
        """Keep in the history what panels 3 to 6 show now, so that show_panel can draw
        them after the run: the training digits shown (if train() had their indices), the
        misread test digits, the percentiles of panels 4 and 5. Indices,
        not images: show_panel reads the digits from MNIST. Keeps nothing without them;
        of inputs that are not MNIST digits, only their shape (show_panel says why not)."""
        panels = self._panels
        if panels is None:
            return
        pictures = {"step": panels.step}
        inputs = [digits[0] for digits in (panels.train_digits, panels.test_digits)
                  if digits is not None]
        if any(picture_shape(images) != MNIST_SHAPE for images in inputs):
            pictures["inputs"] = list(_shape(inputs[-1])[1:])
        elif panels.train_digits is not None and self._training_indices is not None:
            labels, predictions = (np.asarray(a).reshape(-1) for a in panels.train_digits[1:])
            shown = _shown_digits(labels, predictions, TRAIN_GRID[0])
            pictures["training_digits"] = {
                "indices": np.asarray(self._training_indices).reshape(-1)[shown],
                "labels": labels[shown], "predictions": predictions[shown],
                "batch_size": len(labels)}
        if panels.test_digits is not None and "inputs" not in pictures:
            labels, predictions = (np.asarray(a).reshape(-1) for a in panels.test_digits[1:])
            wrong = np.flatnonzero(labels != predictions)
            kept = wrong[:MAX_KEPT_ERRORS]
            pictures["test_digits"] = {"indices": kept, "labels": labels[kept],
                                       "predictions": predictions[kept], "misread": len(wrong),
                                       "total": len(labels)}
        if panels.histogram_steps:
            pictures["histograms"] = {
                "titles": self.panel_titles[3:5], "steps": panels.histogram_steps,
                # 5 significant digits are plenty for a picture, and keep the file small
                "percentiles": [[[float(f"{v:.5g}") for v in row] for row in rows]
                                for rows in panels.percentiles]}
        self.history.pictures = history_module._plain(pictures)

    def picture(self):
        """The figure, up to date (for a movie frame, a PNG)."""
        self._ensure_panels()
        panels = self._panels
        # (paused too: a pause ended by Ctrl-C (resume) or by the end of the run must not
        # stay in the PNG or the movie's last frame)
        panels.step, panels.steps, panels.paused = self._step, self._steps, self.paused
        panels.update()
        return panels.fig

    def show_panels(self, *panels):
        """Show one panel, two side by side, or all six, as the window's keys do:
        show_panels(3), show_panels(1, 2), show_panels(1, 2, 3, 4, 5, 6)."""
        self._ensure_panels()
        self._panels.show(*panels)

    # ----- showing: window, notebook or nothing

    def _open(self):
        try:
            if _notebook_pictures():  # a picture under the cell, replaced in place
                from IPython.display import display

                start = time.perf_counter()
                self._ensure_panels()
                self._panels.update()
                self._display = display(self._notebook_picture(), display_id=True)
                self.mode = "notebook"
                # This first picture counts in the budget: the next one waits its turn
                # (a picture is a whole PNG; on a short run every one of them shows).
                self._next_draw = start + (time.perf_counter() - start) / NOTEBOOK_BUDGET
                return
            self._ensure_panels(window=True)  # the window appears at the first draw
            self.mode = "window"
            print("Dashboard keys: space pause, 1-6 one panel, 7 curves, 8 panels 4+5, f filters, "
                  "9 digits, 0 all six.", flush=True)
        except Exception as error:  # no window: training goes on without
            self.not_live = str(error) if isinstance(error, UserError) else \
                f"could not open a window ({type(error).__name__}: {error})"
            if self._panels is not None and self.mode is None and self._panels.fig.canvas.manager:
                import matplotlib.pyplot as plt

                plt.close(self._panels.fig)
            self._panels = None  # half made: an offscreen one is built if needed

    def _ensure_panels(self, window=False):
        if self._panels is not None:
            return
        if window:
            fig = window_figure(FIGURE_SIZE, self.title)
            fig.canvas.mpl_connect("close_event", self._on_close)
            manager = fig.canvas.manager
            if getattr(manager, "key_press_handler_id", None) is not None:
                # Our handler passes the keys it does not use on to matplotlib's.
                fig.canvas.mpl_disconnect(manager.key_press_handler_id)
        else:
            fig = offscreen_figure(FIGURE_SIZE)
        fig.canvas.mpl_connect("key_press_event", self._on_key)
        self._panels = _Panels(fig, self.history, self.title, self.panel_titles, self.legend)
        self._panels.show(*self.view)
        self._panels.step, self._panels.steps = self._step, self._steps

    def _draw(self):
        """Redraw now, measure the cost, and plan the next redraw within the budget."""
        start = time.perf_counter()
        panels = self._panels
        panels.paused = self.paused
        panels.update()
        first = self.mode == "window" and not self._shown
        if self.mode == "notebook":
            self._display.update(self._notebook_picture())
        else:
            if first:
                self._show_window()
            panels.render()
            self._process_events()
        cost = time.perf_counter() - start
        self.draw_times.append(cost)
        self._drawn_state = panels.data_state()
        # The first draw also loads fonts and the like, once: like opening the window,
        # it is not part of the budget.
        budget = NOTEBOOK_BUDGET if self.mode == "notebook" else DRAW_BUDGET
        self._next_draw = start + max(1 / MAX_FPS, 0 if first else cost / budget)

    def _notebook_picture(self):
        """The dashboard as a PNG picture for the notebook (its Title says which step)."""
        from IPython.display import Image

        i, n = self._panels.step, self._panels.steps
        when = "starting" if i is None else f"step {i:,}" + (f" of {n:,}" if n else "")
        return Image(data=png_bytes(self.figure, title=f"{self.title}: {when}"), format="png")

    def _show_window(self):
        """Show the window (or the widget under the cell), cheaply."""
        canvas = self.figure.canvas
        if _is_notebook_widget(_chosen_backend()):
            # %matplotlib widget: the canvas goes under the cell, live and interactive. Its
            # display handle lets finish() leave the final picture in the saved notebook.
            from IPython.display import display

            if hasattr(canvas, "_repr_mimebundle_"):  # ipympl
                self._display = display(canvas, display_id=True)
            else:
                self.figure.show()
            _leave_pyplot(self.figure)
        else:
            # While a window appears, it draws itself (often twice): hide the panels until
            # then, and then draw them once.
            for ax in self.figure.axes:
                ax.set_visible(False)
            self.figure.show()
        self._process_events()
        self._shown = True
        self._panels.show(*self._panels.view)

    def _process_events(self):
        """Let the window handle clicks, keys and resizing (this runs our key handler)."""
        if self.mode == "window" and not self.closed:
            self.figure.canvas.flush_events()
        self._next_events = time.perf_counter() + EVENT_INTERVAL

    def _on_close(self, event):
        self.closed = True
        self._close_requested = self._training

    def _on_key(self, event):
        """Dashboard keys; every other key goes to matplotlib's usual handler (zoom, save...)."""
        from matplotlib.backend_bases import key_press_handler

        if event.key == PAUSE_KEY:
            if not self._training:
                return
            self.paused = not self.paused
        elif event.key in VIEWS:
            self._panels.show(*VIEWS[event.key])
        else:
            if self.mode == "window":
                key_press_handler(event)
            return
        self._panels.paused = self.paused
        if self.live:  # redraw soon, with the latest data
            self._panels.update()
            self.figure.canvas.draw_idle()


# --------------------------------------------------------------------------- Keras' door

VALIDATION_BATCH = 1000  # the validation data goes through the model 1,000 at a time


class _DashboardCallback:
    """The lab's dashboard for Keras' model.fit: tensorflowvisu.DashboardCallback.

        dashboard = tensorflowvisu.DashboardCallback(validation_data=(x_test, y_test),
                                                     training_data=(x_train, y_train),
                                                     name="my_network")
        model.fit(x_train, y_train, batch_size=100, epochs=5, callbacks=[dashboard])
        tensorflowvisu.compare(dashboard.history, "runs/mnist_2.1_five_layers_relu.json")

    For a Keras classifier (one output per class: logits or probabilities), compiled with
    metrics=["accuracy"]; x: arrays; y: class numbers or one-hot. A step is a batch,
    counted from the first epoch as the lessons count theirs: with batches of 100, the
    curves overlay the lessons'. What the panels show:

    1, 2 thin: Keras' own training accuracy and loss every 20 batches, as the mean over the
        batches since the previous point (Keras logs running means over the epoch; their
        differences give it). Measured as Keras trains: in training mode (dropout on),
        before each batch's update; not the lessons' "current batch, after the step".
    1, 2 bold: the validation data, measured by the callback: one pass of predict_on_batch
        over it gives the accuracy, the loss (the compiled loss, without regularisation
        terms) and panel 6. At the start, then with test_every="epoch" at each epoch's
        end; N: every N batches; "lab": the lessons' rhythm (lab.test_due: every 20 batches
        over the first tenth of the run, then about 100 times a run) and at the end. Each
        measurement is a forward pass over the validation data: for MNIST's 10,000 digits,
        about as long as 10 training batches of 100 (lesson 2.1's network), so the lessons'
        rhythm adds 10 to 20 % to a fit (benchmarks/callback_overhead.py).
        Without validation_data: the val_ figures Keras logs at each epoch's end, when
        fit has validation_data (no pictures then).
    3: Keras callbacks do not see the batches being trained on: 100 examples drawn at
        random from training_data, with the model's current answers, at every redraw and
        every validation.
    4, 5: the spread of all the weights (kernels: 2 or more dimensions) and all the biases
        (vectors: biases, batch-norm scales and offsets) of every layer, at each validation.
    6: the validation pictures, misread ones first. Inputs that are not pictures: the
        curves and panels 4 and 5 only (panels 3 and 6 say so).

    name: the run's name (title, history; default: the model's). history: its JSON file,
    for compare (default runs/NAME.json; False: none). live, png, movie, view: as for
    Dashboard. wait: at the end of fit, a window stays open until it is closed. seed: which
    training examples panel 3 draws.
    Ctrl-C (a notebook's stop button) or closing the window stops fit after the current
    batch (model.stop_training): the history and pictures are still written. A second
    Ctrl-C interrupts at once. After fit: .history (the run's History) and .dashboard.
    """

    def __init__(self, validation_data=None, training_data=None, *, name=None,
                 test_every="epoch", history=None, live=True, png=None, movie=None, view="0",
                 wait=True, seed=0):
        super().__init__()
        self.validation_data = _examples(validation_data, "validation_data")
        self.training_data = _examples(training_data, "training_data")
        if not (test_every in ("epoch", "lab") or type(test_every) is int and test_every > 0):
            raise UserError(f'test_every={test_every!r}: choose "epoch", "lab" or a number '
                            "of batches")
        self.name, self.test_every, self.history_file, self.wait = name, test_every, history, wait
        self.options = dict(live=live, png=png, movie=movie, view=view)
        self.random = np.random.default_rng(seed)  # which training examples panel 3 shows
        self.dashboard = self.history = None

    # -- what Keras calls

    def on_train_begin(self, logs=None):
        import keras

        import lab  # (light: it loads TensorFlow only through parse_args)

        self.every, self.lab_test_due = lab.MEASURE_EVERY, lab.test_due
        per_epoch, epochs = self.params.get("steps"), self.params.get("epochs")
        self.per_epoch, self.steps = per_epoch, per_epoch * epochs if per_epoch else None
        config = {"model": self.model.name, "epochs": epochs, "steps_per_epoch": per_epoch,
                  "test_every": self.test_every, "flags": {},
                  "framework": f"Keras {keras.__version__} ({keras.backend.backend()})",
                  "date": datetime.datetime.now().isoformat(timespec="seconds")}
        self.dashboard = Dashboard(self.name or self.model.name, self.steps, config=config,
                                   legend=("training batches", "validation data"),
                                   image_titles=("Training images", "Validation images"),
                                   **self.options)
        self.history = self.dashboard.history
        if self.dashboard.not_live:
            hint = "" if self.options["png"] else " (png=FILE keeps a picture)"
            print(f"{self.dashboard.not_live}: fit goes on without the live dashboard{hint}",
                  file=sys.stderr, flush=True)
        loss = self.model.loss
        self.loss = None if loss is None or isinstance(loss, (dict, list, tuple)) else \
            keras.losses.get(loss)  # (a model of several outputs: no validation loss)
        self.step = self.epoch_start = 0
        self.logs = self.accuracy_key = self.last_point = self.tested = None
        self.stopping = False
        # Ctrl-C stops fit after the batch, until on_train_end, which Keras skips when fit
        # fails: then Ctrl-C must interrupt as usual (_on_ctrl_c checks that fit runs).
        self.fit_code = _caller_code("fit")
        self.ctrl_c = contextlib.ExitStack()
        self.ctrl_c.enter_context(plumbing.ctrl_c_held(on_press=self._on_ctrl_c))

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = epoch * self.per_epoch if self.per_epoch else self.step
        self.step = max(self.step, self.epoch_start)
        self.mark = (0, np.zeros(2))  # Keras' running means start again
        if self.tested is None and self.validation_data is not None:
            self._test(self.step)  # the untrained model, as the lessons' step 0

    def on_train_batch_end(self, batch, logs=None):
        self.step, self.logs = self.epoch_start + batch + 1, logs
        if self.step // self.every > (self.last_point or 0) // self.every:
            self._train_point()
        if self._test_due():
            self._test(self.step)

    def on_epoch_end(self, epoch, logs=None):
        if self.test_every != "epoch" or self.step == self.tested:
            return
        if self.validation_data is not None:
            self._test(self.step)
        elif logs and "val_loss" in logs:  # fit measured its validation_data: curves only
            self.tested = self.step
            self._show_training_pictures()
            self._tell(self.dashboard.test, self.step, logs.get(_accuracy_key(logs, "val_"),
                                                                 math.nan),
                       logs["val_loss"], **self._weights())

    def on_train_end(self, logs=None):
        self.ctrl_c.close()
        with plumbing.ctrl_c_held() as ctrl_c:  # the files are written whole, Ctrl-C or not
            self._train_point()  # the last batches, since the previous point
            if self.validation_data is not None and self.tested != self.step:
                self._test(self.step)  # (an interrupted fit gets its final measurement too)
            else:
                self._show_training_pictures()  # (for the final picture)
            history = self.history
            accuracies = history.test["accuracy"]
            history.final = {"steps": self.step, "interrupted": self.stopping,
                             "max_test_accuracy": history.max_test_accuracy,
                             "final_test_accuracy": accuracies[-1] if accuracies else None,
                             "wall_seconds": self.dashboard.clock()}
            paths = [] if self.history_file is False else \
                [self.history_file or Path("runs") / f"{history.name}.json"]
            saved = self.dashboard.save(*paths)
        if accuracies:
            print(f"{history.name}: max validation accuracy {max(accuracies):.4f}, "
                  f"final {accuracies[-1]:.4f}", flush=True)
        if saved:
            print(f"saved: {', '.join(map(str, saved))}", flush=True)
        self.dashboard.finish(wait=self.wait and not (self.stopping or ctrl_c.pressed))

    # -- measuring

    def _train_point(self):
        """Tell the dashboard the training figures: the means over the batches since the
        previous point, from Keras' running means over the epoch (k batches so far)."""
        step, logs = self.step, self.logs
        if not logs or step == self.last_point:
            return
        if self.accuracy_key is None:
            self.accuracy_key = _accuracy_key(logs)
        k = step - self.epoch_start
        sums = k * np.array([logs.get(self.accuracy_key, math.nan), logs.get("loss", math.nan)])
        (k0, sums0), self.mark, self.last_point = self.mark, (k, sums), step
        accuracy, loss = (sums - sums0) / max(k - k0, 1)
        if self.dashboard._redraw_due():
            self._show_training_pictures()
        self._tell(self.dashboard.train, step, accuracy, loss, self._learning_rate())

    def _show_training_pictures(self):
        """Panel 3: 100 training examples at random, with the model's current answers."""
        if self.training_data is None or not self.dashboard.wants_pictures:
            return
        x, _, labels = self.training_data
        indices = np.sort(self.random.choice(len(x), min(TRAIN_GRID[0], len(x)), replace=False))
        images = x[indices]
        self.dashboard._show_training_images(
            images, labels[indices], _classes(self.model.predict_on_batch(images)), indices)

    def _test_due(self):
        if self.validation_data is None or self.step == self.tested:
            return False
        if self.test_every == "lab":
            return self.lab_test_due(self.step, self.steps or 10_000)
        if self.test_every == "epoch":
            return False
        return self.step // self.test_every > (self.tested or 0) // self.test_every

    def _test(self, step):
        """Measure the validation data; tell the dashboard, with panels 4 to 6."""
        x, y, labels = self.validation_data
        outputs = np.concatenate([self.model.predict_on_batch(x[k:k + VALIDATION_BATCH])
                                  for k in range(0, len(x), VALIDATION_BATCH)])
        predictions = _classes(outputs)
        loss = float(np.mean(self.loss(y, outputs))) if self.loss else math.nan
        self.tested = step
        self._show_training_pictures()
        self._tell(self.dashboard.test, step, float(np.mean(predictions == labels)), loss,
                   images=x, labels=labels, predictions=predictions, **self._weights())

    def _weights(self):
        """Panels 4 and 5 (all the weights, all the biases) and the first layer's filters
        (key f), if anything will show them."""
        if not self.dashboard.wants_pictures:
            return {}
        import keras

        import explain  # (light: no TensorFlow)

        values = [keras.ops.convert_to_numpy(v) for v in self.model.trainable_weights]
        weights, biases = [v for v in values if v.ndim >= 2], [v for v in values if v.ndim < 2]
        return {"panels": [np.concatenate([v.reshape(-1) for v in part] or [np.zeros(0)])
                           for part in (weights, biases)],
                "filters": explain.first_layer(weights)}

    def _learning_rate(self):
        import keras

        try:
            return float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        except (AttributeError, TypeError, ValueError):  # (an optimizer without one)
            return None

    # -- stopping

    def _tell(self, what, *args, **kwargs):
        """dashboard.train or .test; the window closed (or Ctrl-C during a movie frame)
        raises KeyboardInterrupt there: fit stops."""
        try:
            what(*args, **kwargs)
        except KeyboardInterrupt:
            self._stop("the dashboard window was closed" if self.dashboard.closed else "Ctrl-C")

    def _on_ctrl_c(self):
        """Ctrl-C: fit stops after this batch (a pause ends). A second Ctrl-C, or one after
        a fit that failed (Keras then skips on_train_end), interrupts as usual."""
        if self.stopping or not _running(self.fit_code):
            self.ctrl_c.close()
            raise KeyboardInterrupt
        self.dashboard.resume()
        self._stop("Ctrl-C")

    def _stop(self, reason):
        if not self.stopping:
            print(f"\n{reason}: fit stops after this batch; the history and pictures are "
                  "still written", file=sys.stderr, flush=True)
        self.stopping = self.model.stop_training = True


def __getattr__(name):
    """tensorflowvisu.DashboardCallback, made at first use: a subclass of Keras' Callback.
    (Importing Keras loads TensorFlow, which importing this module must not.)"""
    if name != "DashboardCallback":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import keras

    class DashboardCallback(_DashboardCallback, keras.callbacks.Callback):
        __doc__ = _DashboardCallback.__doc__

    globals()["DashboardCallback"] = DashboardCallback
    return DashboardCallback


def _examples(data, what):
    """(x, y, labels) of a pair of arrays (x, y): labels are y's class numbers (y may be
    one-hot). None for None; UserError for anything else."""
    if data is None:
        return None
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise UserError(f"{what}: give a pair of arrays (x, y), e.g. (x_test, y_test), "
                        f"not a {type(data).__name__}")
    x, y = (np.asarray(a) for a in data)
    if len(x) != len(y):
        raise UserError(f"{what}: {len(x)} examples in x but {len(y)} labels in y")
    labels = y.argmax(-1) if y.ndim > 1 and y.shape[-1] > 1 else y.reshape(len(y))
    return x, y, labels.astype(int)


def _classes(outputs):
    """The classes a classifier's outputs say: the largest of one output per class; with
    a single output (a sigmoid's probability), 1 above 0.5."""
    outputs = np.asarray(outputs)
    if outputs.ndim == 2 and outputs.shape[1] == 1:
        return (outputs[:, 0] > 0.5).astype(int)
    return outputs.argmax(axis=-1)


def _accuracy_key(logs, prefix=""):
    """The accuracy among Keras' logs ("accuracy", "acc", "sparse_categorical_accuracy"...)."""
    keys = [k for k in logs if k.startswith(prefix) and "acc" in k.removeprefix(prefix)
            and (prefix or not k.startswith("val_"))]
    return min(keys, key=len, default=None)


def _caller_code(name):
    """The code of the nearest function called `name` up the call stack (None if none)."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_name != name:
        frame = frame.f_back
    return frame.f_code if frame is not None else None


def _running(code):
    """Is the function with this code still running, up the call stack? (None: yes.)"""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code is code:
            return True
        frame = frame.f_back
    return code is None


# --------------------------------------------------------------------------- the dashboard's panels


def _shorten_to_fit(text, right):
    """Shorten a Text artist, ending it with "…", until it ends left of x = right (pixels)."""
    full = text.get_text()
    for length in range(len(full) - 1, 0, -1):
        if text.get_window_extent().x1 <= right:
            return
        text.set_text(full[:length].rstrip() + "…")


# The six panels on a 16 x 9 figure: (left, bottom, width, height) in figure fractions.
_PANEL_BOXES = [(left, bottom, 0.26, 0.36)
                for bottom in (0.53, 0.065) for left in (0.055, 0.38, 0.705)]


class _Panels:
    """The six panels drawn on one matplotlib Figure, from the run's data.

    The artists are made once and updated in place (update), never recreated. The ones
    that change at every redraw are "animated": matplotlib leaves them out of its own
    drawing, and after every full draw (ours, the window's, savefig's) _on_draw adds
    them, keeping the picture of everything else (axes, ticks, titles) as the background
    for cheap redraws ("blits", see render).
    """

    def __init__(self, fig, history, title, panel_titles,
                 legend=("training batch", "test digits")):
        self.fig, self.history = fig, history
        self.step = self.steps = None  # shown at the top right
        self.paused = False  # shows the PAUSED overlay
        self.train_digits = self.test_digits = None  # (images, labels, predictions)
        self.train_total = None  # the batch size, when train_digits are only the ones shown
        self.digits_changed = [False, False]
        self.histogram_steps, self.percentiles = [], ([], [])  # panels 4 and 5
        self.filters, self.filters_shown = None, None  # the first layer's weights (key f)
        self.view = VIEWS["0"]  # the panels shown
        # y ranges, which only grow (see _round_limits); the loss range starts where
        # MNIST losses are (from 2.3 down to a few hundredths), so it rarely changes
        self.limits = {"loss": (0.02, 5.0)}
        self.tick_totals = {}  # digit panel -> (digits, per line, tile): what its ticks are for
        self.not_pictures = [False, False]  # panels 3 and 6 got inputs that are not pictures
        self.background = self.background_layout = None  # for blitting
        # A function, not the bound method, which matplotlib would hold weakly: the figure
        # keeps its panels alive (show_panel keeps only the figure).
        fig.canvas.mpl_connect("draw_event", lambda event: self._on_draw(event))
        self.measured = legend[1].split()[0]  # "test" (digits), "validation" (data)...
        self._build(title, panel_titles, legend)
        self.show(*self.view)

    # -- the data

    def append_histograms(self, step, panel4_values, panel5_values):
        self.histogram_steps.append(int(step))
        for values, store in zip((panel4_values, panel5_values), self.percentiles):
            values = np.asarray(values, dtype=np.float32).reshape(-1)
            if values.size == 0:
                store.append(np.full(len(PERCENTILES), np.nan))
                continue
            sample = np.sort(values[::max(1, values.size // HISTOGRAM_SAMPLE)])
            store.append(sample[np.round(PERCENTILES / 100 * (sample.size - 1)).astype(int)])

    def data_state(self):
        """Something that changes when there is new data to show."""
        return (len(self.history.train["step"]), len(self.history.test["step"]),
                len(self.histogram_steps), self.step, tuple(self.digits_changed), id(self.filters))

    # -- layout

    def show(self, *panels):
        """Show one panel, two side by side, or all six; ("f",): the first layer's filters."""
        if panels == ("f",):
            for ax in self.axes:
                ax.set_visible(False)
            self.legend.set_visible(False)
            self.filters_ax.set_visible(True)
            self.view = panels
            return
        if len(panels) not in (1, 2, 6) or not set(panels) <= {1, 2, 3, 4, 5, 6}:
            raise ValueError(f"show_panels takes 1, 2 or 6 panel numbers from 1 to 6, or 'f', "
                             f"not {panels}")
        self.filters_ax.set_visible(False)
        if TEST_GRIDS[len(panels)] != TEST_GRIDS[len(self.view)]:
            self.digits_changed[1] = True  # panel 6 gets the grid that suits its size
        self.view = panels
        self.legend.set_visible(bool({1, 2} & set(panels)))  # it tells the curves' colours
        if len(panels) == 6:
            boxes = _PANEL_BOXES
        elif len(panels) == 2:
            boxes = [(0.055, 0.07, 0.42, 0.82), (0.555, 0.07, 0.42, 0.82)]
        else:
            boxes = [(0.06, 0.07, 0.9, 0.82)]
        for ax in self.axes:
            ax.set_visible(False)
        for number, box in zip(panels, boxes):
            self.axes[number - 1].set_position(box)
            self.axes[number - 1].set_visible(True)

    def _build(self, title, panel_titles, legend):
        from matplotlib.collections import PolyCollection
        from matplotlib.patches import Patch

        fig = self.fig
        fig.set_facecolor("white")
        # Header: the title on the left, the legend of panels 1 and 2 (where no curve can
        # cover it), the step on the right.
        title = fig.text(0.01, 0.985, title, fontsize=TITLE_SIZE, weight="bold", va="top")
        self.status = fig.text(0.99, 0.985, "", fontsize=TITLE_SIZE, ha="right", va="top")
        self.paused_text = fig.text(0.5, 0.5, "PAUSED: press space to resume", fontsize=32,
                                    ha="center", va="center", visible=False,
                                    bbox=dict(facecolor="white", edgecolor="#0072b2",
                                              linewidth=3, pad=12))
        self.axes = [fig.add_axes(box) for box in _PANEL_BOXES]
        for ax, name in zip(self.axes, panel_titles):
            # Fixed positions for titles and axis labels: matplotlib would otherwise
            # measure all the tick labels at every draw to place them.
            ax.set_title(name[:1].upper() + name[1:], fontsize=TITLE_SIZE, y=1.0, pad=8)
            ax.xaxis.set_label_coords(0.5, -0.03)
            ax.yaxis.set_label_coords(-0.12, 0.5)
            ax.tick_params(labelsize=TEXT_SIZE, length=6, width=1.5)
            ax.grid(True, color="#dddddd", linewidth=1)
            ax.set_axisbelow(True)
        accuracy, loss, train_ax, panel4, panel5, test_ax = self.axes
        self.accuracy_floor = 0.0
        _format_accuracy_axis(accuracy, self.accuracy_floor)
        _set_loss_range(loss, *self.limits["loss"])

        self.lines = {}
        for ax, measure in ((accuracy, "accuracy"), (loss, "loss")):
            self.lines["train", measure], = ax.plot([], [], **dict(TRAIN_STYLE, label=legend[0]))
            self.lines["test", measure], = ax.plot([], [], **dict(TEST_STYLE, label=legend[1]))
        curves = [self.lines["train", "accuracy"], self.lines["test", "accuracy"]]
        self.legend = fig.legend(handles=curves,
                                 loc="upper right", bbox_to_anchor=(0.79, 1.003), ncols=2,
                                 fontsize=TEXT_SIZE, frameon=False)
        _shorten_to_fit(title, self.legend.get_window_extent().x0)

        self.bands = []
        for ax, colour in ((panel4, PANEL4_COLOUR), (panel5, PANEL5_COLOUR)):
            bands = [PolyCollection([], facecolors=colour, alpha=0.22, edgecolors="none")
                     for _ in range(5)]
            for band in bands:
                ax.add_collection(band, autolim=False)
            median, = ax.plot([], [], color=colour, linewidth=2)
            self.bands.append((bands, median))
            ax.legend([median, Patch(color=colour, alpha=0.6), Patch(color=colour, alpha=0.22)],
                      ["median", "40-60 %", "min-max"], loc="upper left", ncols=3,
                      fontsize=TEXT_SIZE - 2, handlelength=1.5, columnspacing=1)

        self.images, self.waiting = [], []
        for ax, (count, lines) in ((train_ax, TRAIN_GRID), (test_ax, TEST_GRIDS[6])):
            blank = np.full((lines * 28, count // lines * 28, 4), 255, np.uint8)
            self.images.append(ax.imshow(blank, interpolation="antialiased"))
            self.waiting.append(ax.text(0.5, 0.5, "waiting for the first measurement",
                                        transform=ax.transAxes, ha="center", fontsize=TEXT_SIZE,
                                        color="#777777"))
            ax.set_xticks([])
            ax.set_yticks([])  # until there are digits: then the accuracy of each line
            ax.grid(False)
            for spine in ax.spines.values():
                spine.set_visible(False)
            ax.set_xlabel("red: misread  (correct | predicted)", fontsize=TEXT_SIZE - 2, va="top")
        self.digit_axes = (train_ax, test_ax)

        # Key f: the first layer's weights as pictures (a convolution's filters, or for a
        # dense layer each neuron's 784 weights as a 28x28 picture), red for, blue against.
        self.filters_ax = fig.add_axes((0.03, 0.04, 0.94, 0.86), visible=False)
        self.filters_ax.set_title("The first layer's weights (filters): red where ink counts for, "
                                  "blue against", fontsize=TITLE_SIZE)
        self.filters_image = self.filters_ax.imshow(np.zeros((1, 1)), cmap="RdBu_r", vmin=-1,
                                                    vmax=1, interpolation="nearest")
        self.filters_ax.set_xticks([])
        self.filters_ax.set_yticks([])
        for spine in self.filters_ax.spines.values():
            spine.set_visible(False)

        self.moving = [*self.lines.values(),
                       *[a for bands, median in self.bands for a in (*bands, median)],
                       *self.images, *self.waiting, accuracy.title, self.status, self.paused_text,
                       self.filters_image]
        for artist in self.moving:
            artist.set_animated(True)

    # -- updating and drawing

    def update(self):
        """Copy the current data into the artists."""
        history, axes = self.history, self.axes
        for series, columns in (("train", history.train), ("test", history.test)):
            for measure in ("accuracy", "loss"):
                self.lines[series, measure].set_data(columns["step"], columns[measure])
        best = history.max_test_accuracy
        axes[0].title.set_text("Accuracy" if best is None else
                               f"Accuracy ({self.measured} max {best:.2%})")
        floor = _accuracy_floor(history.test["step"], history.test["accuracy"])
        if floor != self.accuracy_floor:
            _format_accuracy_axis(axes[0], floor)
            self.accuracy_floor = floor
        # The loss range follows the test loss: the training loss of a network that
        # learns its training digits by heart falls towards 0 and may leave the panel.
        loss_range = _finite_range(history.test["loss"] or history.train["loss"], positive=True)
        if loss_range:
            limits = _round_limits(*loss_range, self.limits.get("loss"), log=True)
            if limits != self.limits.get("loss"):
                _set_loss_range(axes[1], *limits)
                self.limits["loss"] = limits

        if self.filters is not None and self.filters_shown is not self.filters:
            self._update_filters()

        x = np.asarray(self.histogram_steps, dtype=float)
        for ax, (bands, median), percentiles in zip(axes[3:5], self.bands, self.percentiles):
            if not percentiles:
                continue
            p = np.asarray(percentiles)  # one row per call, 11 columns
            for k, band in enumerate(bands):  # band k: from percentile 10k to 100-10k
                band.set_verts([np.concatenate([np.column_stack([x, p[:, k]]),
                                                np.column_stack([x[::-1], p[::-1, 10 - k]])])])
            median.set_data(x, p[:, 5])
            value_range = _finite_range(p)
            if value_range:  # with room above the values for the legend
                low, high = value_range
                self.limits[ax] = _round_limits(low, high + 0.3 * (high - low), self.limits.get(ax))
                ax.set_ylim(*self.limits[ax])

        right = max([1, self.steps or 0, *history.train["step"][-1:],
                     *history.test["step"][-1:], *self.histogram_steps[-1:]])
        for ax in (axes[0], axes[1], axes[3], axes[4]):
            ax.set_xlim(0, right)

        shown = ((self.train_digits, TRAIN_GRID), (self.test_digits, TEST_GRIDS[len(self.view)]))
        for k, (digits, (count, lines)) in enumerate(shown):
            if digits is None:
                if history.test["step"] if k else history.train["step"]:  # measured, no images
                    self.waiting[k].set_text("no images given")
                continue
            if not self.digits_changed[k]:
                continue
            self.digits_changed[k] = False
            self.not_pictures[k] = picture_shape(digits[0]) is None
            self.digit_axes[k].xaxis.label.set_visible(not self.not_pictures[k])
            if self.not_pictures[k]:  # (features, sequences): a note instead
                self.waiting[k].set_text(f"inputs {list(_shape(digits[0])[1:])}: not pictures")
                self.images[k].set_visible(False)
                continue
            grid = digit_grid(*digits, count=count, lines=lines)
            self.images[k].set_visible(True)
            # matplotlib draws RGBA bytes fastest
            rgba = np.full((*grid.shape[:2], 4), 255, np.uint8)
            rgba[..., :3] = grid * 255 + 0.5
            image = self.images[k]
            if rgba.shape != image.get_array().shape:  # another grid: the axes follow
                image.set_extent((-0.5, rgba.shape[1] - 0.5, rgba.shape[0] - 0.5, -0.5))
            image.set_data(rgba)
            self.waiting[k].set_visible(False)
            total = (self.train_total if k == 0 else None) or len(digits[1])
            self._set_accuracy_ticks(self.digit_axes[k], total, count // lines, lines,
                                     grid.shape[0] // lines)

        status = ""
        if self.step is not None:
            status = f"step {self.step:,}"
            if self.steps:
                status += f" / {self.steps:,}"
        self.status.set_text(status)
        self.paused_text.set_visible(self.paused)

    def _set_accuracy_ticks(self, ax, total, per_line, lines, tile):
        """Label every few lines of a digit grid (tiles `tile` pixels high) with the accuracy
        at which red would reach it."""
        rows = np.arange(0, lines + 1, 5 if lines > 10 else 2)
        ticks = rows * tile - 0.5
        made_for = (total, per_line, tile)
        if not np.array_equal(ax.get_yticks(), ticks) or self.tick_totals.get(ax) != made_for:
            ax.set_yticks(ticks, [f"{1 - r * per_line / total:.0%}" for r in rows])
            self.tick_totals[ax] = made_for

    def _update_filters(self):
        import explain  # (light: no TensorFlow)

        pictures = explain.filter_pictures(self.filters)
        if pictures is not None:
            box = self.filters_ax.get_position(original=True)  # (not as shrunk to the image)
            width, height = self.fig.get_size_inches()
            picture = explain.mosaic(pictures, box.width * width / (box.height * height))
            limit = float(np.nanmax(np.abs(picture))) or 1.0
            self.filters_image.set_data(picture)
            height, width = picture.shape
            self.filters_image.set_extent((-0.5, width - 0.5, height - 0.5, -0.5))
            self.filters_image.set_clim(-limit, limit)
        self.filters_shown = self.filters

    def layout(self):
        """What the static picture depends on: visible panels, axis ranges, ticks, size."""
        return (self.view, self.fig.bbox.bounds, tuple(self.tick_totals.values()),
                tuple(self.not_pictures),
                *[(ax.get_xlim(), ax.get_ylim(), tuple(ax.get_yticks())) for ax in self.axes])

    def render(self):
        """Draw on the screen: everything when the layout changed, else only the moving
        artists over the kept background (a blit, several times faster)."""
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
        for artist in self.moving:
            if artist.axes is None or artist.axes.get_visible():
                artist.draw(renderer)


# --------------------------------------------------------------------------- files


def save_figure(fig, path, dpi=PNG_DPI):
    """Save a figure as a PNG file, atomically. Raises UserError if it cannot be written."""
    plumbing.write_atomically(path, lambda file: fig.savefig(file, format="png", dpi=dpi))


# --------------------------------------------------------------------------- digits


def _stamp(tiles, which, digits, left, box, ink):
    """Write the digits (font GLYPHS) into the bottom corner of the tiles number which
    (left: the corner's first column); only the digits 0-9 (other class numbers: none)."""
    which, digits = which[digits < 10], digits[digits < 10]
    glyphs = GLYPHS[digits][..., None]  # (k, 10, 6, 1)
    area = np.empty((len(which), 12, 8, 3), np.float32)
    area[:] = box
    area[:, 1:11, 1:7] = np.where(glyphs, ink, box)
    tiles[which, -12:, left:left + 8] = area


def _shown_digits(labels, predictions, count):
    """Which digits a grid of count shows, in order: the misread ones, then the others."""
    return np.argsort(np.asarray(labels) == np.asarray(predictions), kind="stable")[:count]


def _shape(array):
    """An array's shape, without copying it (TensorFlow tensors have one too)."""
    shape = getattr(array, "shape", None)
    return tuple(shape) if shape is not None else np.shape(array)


def picture_shape(images):
    """(height, width, channels) of each picture in images: [N, H, W], [N, H, W, 1 or 3],
    [N, 1 or 3, H, W] (PyTorch's order) or [N, 784] (MNIST digits, flattened); None if they
    are not pictures (features, sequences...)."""
    shape = _shape(images)[1:]
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


def digit_grid(images, labels, predictions, count=100, lines=10):
    """Arrange count pictures on lines lines as one RGB picture (floats in [0, 1]).

    Misread ones come first, with the correct class in the bottom left corner (black on
    white) and the predicted one in the bottom right corner (white on red), for the
    classes 0-9; then the recognised ones in their original order. Greyscale pictures are
    drawn as ink, black on white (on red for the misread ones), colour ones as they are
    (misread ones in a red frame). If there are fewer than count, the rest stays white.

    images: [N, 28, 28], [N, 28, 28, 1] or [N, 784] MNIST digits, white ink (1) on black
    (0); or any pictures as picture_shape takes them (see _tiles for their values).
    labels, predictions: N class numbers.
    Pure numpy, and quick: the labels are pixels, not matplotlib text.
    """
    if count % lines:
        raise ValueError(f"count ({count}) must be a multiple of lines ({lines})")
    shape = picture_shape(images)
    if shape is None:
        raise ValueError(f"images of shape {_shape(images)} are not pictures")
    labels = np.asarray(labels).reshape(-1).astype(int)
    predictions = np.asarray(predictions).reshape(-1).astype(int)
    if not len(images) == len(labels) == len(predictions):
        raise ValueError(f"{len(images)} images, {len(labels)} labels, "
                         f"{len(predictions)} predictions")
    order = _shown_digits(labels, predictions, count)
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

    per_line = count // lines
    return (tiles.reshape(lines, per_line, height, width, 3).swapaxes(1, 2)
            .reshape(lines * height, per_line * width, 3))


# ------------------------------------------------------------------------- figures: where they show


def _chosen_backend():
    """The matplotlib backend chosen by the user or a notebook ('' if matplotlib would pick)."""
    import matplotlib

    try:
        name = matplotlib.get_backend(auto_select=False)  # matplotlib >= 3.10
    except TypeError:
        name = os.environ.get("MPLBACKEND")
    return (name or "").lower()


def _no_display():
    """True on Linux without an X11 or Wayland display: no window can open."""
    return sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _is_notebook_widget(backend):
    return any(word in backend for word in ("ipympl", "widget", "nbagg"))


def _notebook_pictures():
    """True where figures should be pictures under a notebook cell: a Jupyter kernel with
    its default (inline) backend, or none chosen; not with %matplotlib widget."""
    backend = _chosen_backend()
    return plumbing.in_notebook() and not _is_notebook_widget(backend) and (
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
    if _no_display() and not _is_notebook_widget(_chosen_backend()):
        raise UserError("no display")
    import matplotlib.pyplot as plt

    with plt.rc_context({} if toolbar else {"toolbar": "None"}):
        fig = plt.figure(figsize=figsize, dpi=dpi)
    if (fig.canvas.required_interactive_framework is None
            and not _is_notebook_widget(plt.get_backend().lower())):
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


def show_figure(draw, figsize, title="MNIST lab"):
    """Show a picture: under the cell in a notebook, else in a window until it is closed.

    draw(fig) draws on the figure. Raises UserError("no display") and the like when
    neither is possible (callers suggest --save-png).
    """
    if _notebook_pictures():
        from IPython.display import Image, display

        fig = offscreen_figure(figsize)
        draw(fig)
        display(Image(data=png_bytes(fig), format="png"))
        return
    fig = window_figure(figsize, title)
    draw(fig)
    if _is_notebook_widget(_chosen_backend()):  # %matplotlib widget: shown under the cell, once
        fig.show()
        _leave_pyplot(fig)
        return
    import matplotlib.pyplot as plt

    plt.show()


def _leave_pyplot(fig):
    """Take a figure shown under a cell (%matplotlib widget) out of pyplot's list of figures.

    Else later cells show it again: ipympl shows pyplot's current figure at every plt.show(),
    which %run calls; and %run's "a figure was made" flag would make it draw a new, empty one.
    """
    import matplotlib.pyplot as plt
    from matplotlib._pylab_helpers import Gcf

    Gcf.figs.pop(fig.canvas.manager.num, None)
    if hasattr(plt.draw_if_interactive, "called"):  # set by IPython's %run
        plt.draw_if_interactive.called = False


# --------------------------------------------------------------------------- axes


def _accuracy_floor(steps, accuracies):
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


DECADES = [10.0 ** k for k in range(-6, 7)]
ROUND_NUMBERS = [s * decade for decade in DECADES for s in (1, 2, 5)]  # 1e-6, 2e-6, 5e-6, ... 5e6


def _round_limits(low, high, current=None, log=False):
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


def _finite_range(values, positive=False):
    """(min, max) of the finite (and, if positive, > 0) values; None if there is none."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values) & ((values > 0) if positive else True)]
    return (values.min(), values.max()) if values.size else None


def _format_accuracy_axis(ax, floor):
    """Accuracy in per cent, from floor to 100 %, with ticks on round values that their
    labels give exactly (98.5 %, not 98 %)."""
    from matplotlib.ticker import MultipleLocator, PercentFormatter

    step = ACCURACY_TICKS[floor]
    ax.set_ylim(floor, 1.0)
    ax.yaxis.set_major_locator(MultipleLocator(step))
    decimals = 0 if round(step * 100, 6).is_integer() else 1
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=decimals))


def _set_loss_range(ax, low, high):
    """A logarithmic loss axis from low to high, labelled with plain numbers (0.05, 0.1, 0.2...)."""
    ax.set_yscale("log")
    ax.set_ylim(low, high)
    ticks = [r for r in ROUND_NUMBERS if low <= r <= high]
    if len(ticks) > 9:  # too many: keep the powers of ten
        ticks = [r for r in ticks if r in DECADES]
    ax.set_yticks(ticks, [f"{r:g}" for r in ticks])
    ax.minorticks_off()


# --------------------------------------------------------------------------- movies


class Movie:
    """The dashboard recorded into a movie: MP4 (H.264, with ffmpeg) or GIF (Pillow).

    A frame is added at every add_frame (the lab adds one at every test measurement);
    finish adds the final state if it is new and moves the complete file into place, so
    the file at `path` is never half-written. Without ffmpeg, an .mp4 becomes a .gif.
    """

    @staticmethod
    def check_name(path):
        """What is wrong with this movie file name, or None."""
        if Path(path).suffix not in (".mp4", ".gif"):
            return "a movie file name must end in .mp4 or .gif"
        return plumbing.cannot_write(path)

    def __init__(self, path):
        from matplotlib import animation

        path = Path(path)
        problem = self.check_name(path)
        if problem:
            raise UserError(f"cannot record the movie {path} ({problem}): "
                            "choose another file name or folder")
        if path.suffix == ".mp4" and not animation.writers.is_available("ffmpeg"):
            path = path.with_suffix(".gif")
            print(f"ffmpeg not found: the movie will be {path} (install ffmpeg for MP4)",
                  file=sys.stderr)
        self.path = str(path)
        self._temp = plumbing.temporary_name(path)
        self._writer = None
        self.frames = 0
        self._last_step = None

    def add_frame(self, figure, step):
        if self._writer is None:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._writer, dpi = _movie_writer(Path(self.path))
            self._writer.setup(figure, str(self._temp), dpi=dpi)
        with plumbing.ctrl_c_held() as ctrl_c:  # half a frame would garble the movie
            self._writer.grab_frame()
        self.frames += 1
        self._last_step = step
        if ctrl_c.pressed:
            raise KeyboardInterrupt

    def finish(self, figure, step):
        """Add the final state (if it is new), close the movie file and move it into place."""
        try:
            if self.frames == 0 or step != self._last_step:
                self.add_frame(figure, step)
            self._writer.finish()
            os.replace(self._temp, self.path)
        except (OSError, subprocess.CalledProcessError) as error:
            raise UserError(f"cannot write the movie {self.path} ({error})") from None
        finally:
            with contextlib.suppress(OSError):
                self._temp.unlink()


def _movie_writer(path):
    """A matplotlib movie writer for path (.mp4: ffmpeg, .gif: Pillow) and its dpi."""
    from matplotlib import animation

    if path.suffix == ".gif":
        return animation.PillowWriter(fps=MOVIE_FPS), GIF_DPI

    class FFMpegWriterOwnSession(animation.FFMpegWriter):
        """FFMpegWriter whose ffmpeg does not get the terminal's Ctrl-C.

        Ctrl-C goes to every process of the terminal's foreground group: ffmpeg would
        stop, and the movie could not be finished with the frames so far.
        """

        def _run(self):
            self._proc = subprocess.Popen(
                self._args(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                start_new_session=True,  # (POSIX; Windows: its own process group, below)
                creationflags=(animation.subprocess_creation_flags
                               | getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)))

    return FFMpegWriterOwnSession(fps=MOVIE_FPS, codec="h264"), MP4_DPI


# --------------------------------------------------------------------------- comparing runs


def _lesson_name(history):
    """A run's lesson, short: "2.1 five layers relu" for mnist_2.1_five_layers_relu."""
    return history.name.removesuffix(".py").removeprefix("mnist_").replace("_", " ")


def _flags_text(flags):
    """Flags as typed: {"batch_size": 600, "no_vis": True} -> "--batch-size 600 --no-vis"."""
    words = []
    for key, value in flags.items():
        if value is False or value is None:
            continue
        words.append(f"--{key.replace('_', '-')}")
        if value is not True:
            words.extend(str(v) for v in (value if isinstance(value, list) else [value]))
    return " ".join(words)


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
        name = " ".join(filter(None, [_lesson_name(history), _flags_text(flags)]))
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


def _run_styles(count):
    """A colour and a line style for each of count runs, as a matplotlib cycler: all the
    colours differ, and the line styles too when there are more runs than RUN_COLOURS."""
    from cycler import cycler
    from matplotlib import colormaps

    if count <= len(RUN_COLOURS):
        return cycler(color=RUN_COLOURS[:max(count, 1)])
    if count <= 20:
        colours = colormaps["tab20"].colors
    else:
        colours = colormaps["turbo"](np.linspace(0, 1, count))
    styles = [RUN_LINESTYLES[k % len(RUN_LINESTYLES)] for k in range(count)]
    return cycler(color=list(colours[:count]), linestyle=styles)


def _legend_columns(labels):
    return 1 if len(labels) == 1 or max(map(len, labels)) > 70 else 2


def comparison_size(histories):
    """The figure size for plot_comparison: taller when its legend has many lines."""
    labels = run_labels(histories)
    return (16, 6.5 + 0.35 * math.ceil(len(labels) / _legend_columns(labels)))


def plot_comparison(histories, fig):
    """Draw the test accuracy and test loss of several runs on fig, each its own colour
    (and line style), the legend under the curves (see run_labels)."""
    fig.set_layout_engine("constrained")
    accuracy, loss = fig.subplots(1, 2)
    styles = _run_styles(len(histories))
    labels = run_labels(histories)
    for ax, measure, title in ((accuracy, "accuracy", "Test accuracy"),
                               (loss, "loss", "Test cross-entropy loss")):
        ax.set_prop_cycle(styles)
        for history, label in zip(histories, labels):
            ax.plot(history.test["step"], history.test[measure], linewidth=3,
                    label=label if ax is accuracy else None)  # one legend for both
        ax.set_title(title, fontsize=TITLE_SIZE)
        ax.set_xlabel("step", fontsize=TEXT_SIZE)
        ax.set_xlim(0, max([1, *[i for h in histories for i in h.test["step"][-1:]]]))
        ax.tick_params(labelsize=TEXT_SIZE)
        ax.grid(True, color="#dddddd")
    # The axis zooms in as far as it can while still showing most of every run's curve.
    floors = [_accuracy_floor(h.test["step"], h.test["accuracy"]) for h in histories]
    _format_accuracy_axis(accuracy, min(floors, default=0.0))
    loss_range = _finite_range([x for h in histories for x in h.test["loss"]], positive=True)
    if loss_range:
        _set_loss_range(loss, *_round_limits(*loss_range, log=True))
    fig.legend(loc="outside lower center", ncols=_legend_columns(labels), fontsize=TEXT_SIZE,
               frameon=False, handlelength=3)
    return fig


def most_confused(matrix, top=5):
    """The largest off-diagonal cells of a confusion matrix: [(true, predicted, count)]."""
    matrix = np.asarray(matrix)
    cells = [(-matrix[t, p], t, p) for t in range(len(matrix)) for p in range(len(matrix))
             if t != p and matrix[t, p] > 0]
    return [(t, p, int(-c)) for c, t, p in sorted(cells)[:top]]


def plot_confusion(history, fig):
    """Draw the run's confusion matrix (rows: true digit, columns: predicted) on fig, with
    the recall and precision of each digit from the run's report (lab.report)."""
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


def _histories(runs):
    return [run if isinstance(run, History) else History.load(run) for run in runs]


def _show_or_save(draw, figsize, save_png):
    """Draw into a PNG file, or show the picture (notebook or window)."""
    if save_png:
        fig = offscreen_figure(figsize)
        draw(fig)
        save_figure(fig, save_png)
        print(f"Saved {save_png}")
        return
    try:
        show_figure(draw, figsize)
    except UserError as error:
        raise UserError(f"{error}: add --save-png FILE") from None


def compare(*runs, save_png=None):
    """Overlay the test curves of runs (History objects or their JSON files): under the
    cell in a notebook, in a window in a terminal, or into save_png."""
    histories = _histories(runs)
    _show_or_save(lambda fig: plot_comparison(histories, fig), comparison_size(histories), save_png)


def confusion(run, save_png=None):
    """Show a run's confusion matrix (a History or its JSON file), like compare."""
    history, = _histories([run])
    _show_or_save(lambda fig: plot_confusion(history, fig), (14, 9), save_png)


def ensemble(accuracies, alone, save_png=None):
    """Show an ensemble's test accuracy as its members are added (mnist_5.2_ensemble.py):
    accuracies[k - 1], the vote of the first k members; alone[k - 1], member k's. Like compare."""
    _show_or_save(lambda fig: plot_ensemble(accuracies, alone, fig), (10, 6), save_png)


def plot_ensemble(accuracies, alone, fig):
    ax = fig.add_subplot()
    members = range(1, len(accuracies) + 1)
    ax.plot(members, accuracies, "o-", color="#0072b2", linewidth=3,
            label="the first k members, voting")
    ax.plot(members, alone, "s", color="#e69f00", label="member k alone")
    ax.set_xticks(members)
    ax.set_xlabel("members", fontsize=14)
    ax.set_ylabel("test accuracy", fontsize=14)
    ax.set_title("An ensemble: what each added member changes", fontsize=16)
    ax.grid(True, color="#dddddd")
    ax.legend(fontsize=13)


# ------------------------------------------------------------------------ a finished run's panels


# What panels 3 to 6 need from History.pictures (Dashboard.keep_pictures).
_KEPT = {3: "training_digits", 4: "histograms", 5: "histograms", 6: "test_digits"}


def _panel_numbers(number):
    """The panels to show: 1-6 one panel; 7, 8, 9 and 0 as the dashboard's keys (panels 1
    and 2, 4 and 5, 3 and 6, all six); or a tuple of 1, 2 or 6 panel numbers."""
    panels = tuple(number) if isinstance(number, (tuple, list)) else VIEWS.get(str(number))
    if not panels or len(panels) not in (1, 2, 6) or not set(panels) <= {1, 2, 3, 4, 5, 6}:
        raise UserError(f"no panel {number}: choose 1 to 6, 7 (panels 1 and 2), "
                        "8 (4 and 5), 9 (3 and 6) or 0 (all six)")
    return panels


def _check_kept(history, panels):
    """UserError naming the first panel the run did not keep the pictures of."""
    inputs = history.pictures.get("inputs")  # (a run of one's own on other pictures)
    if inputs is not None and {3, 6} & set(panels):
        raise UserError(f"run {history.name} did not train on MNIST digits (its inputs: "
                        f"{inputs}): show_panel draws panels 3 and 6 of MNIST runs only; keep "
                        "a picture of the dashboard with png= (--save-png) instead")
    for number in panels:
        if number in _KEPT and _KEPT[number] not in history.pictures:
            raise UserError(f"run {history.name} kept no picture of panel {number} (it ran "
                            "with --no-vis, or with an older lab): run the lesson again "
                            "without --no-vis")


def _kept_digits(kept, dataset, what):
    """The kept digits' indices and labels, checked against the MNIST dataset's."""
    indices, labels = np.asarray(kept["indices"], dtype=int), np.asarray(kept["labels"], dtype=int)
    if indices.size and (indices.max() >= dataset.num_examples
                         or not np.array_equal(dataset.labels[indices], labels)):
        raise UserError(f"the MNIST {what} found are not the ones this run used: "
                        "use the same MNIST files (--data-dir, or $MNIST_DATA_DIR)")
    return indices, labels


def plot_panel(history, number, fig, mnist=None):
    """Draw panels of a finished run on fig (16 x 9), large, from its History (number: as
    for show_panel). Panels 3 and 6 need mnist, as mnistdata.read_data_sets(reshape=False,
    validation_size=0) gives it: the history keeps the digits' indices, not their images."""
    panels = _panel_numbers(number)
    _check_kept(history, panels)
    pictures = history.pictures
    histograms = pictures.get("histograms", {})
    test = pictures.get("test_digits")
    panel6 = "Test digits"
    if test:
        panel6 += f": {test['misread']:,} of {test['total']:,} misread"
    titles = ["Accuracy", "Cross-entropy loss", "Training digits",
              *histograms.get("titles", ["weights", "biases"]), panel6]
    view = _Panels(fig, history, history.name, titles)
    last = (history.train["step"] or history.test["step"] or [None])[-1]
    view.step = pictures.get("step", last)
    view.steps = history.config.get("steps")
    if 3 in panels:
        kept = pictures["training_digits"]
        indices, labels = _kept_digits(kept, mnist.train, "training digits")
        view.train_digits = (mnist.train.images[indices], labels, kept["predictions"])
        view.train_total = kept["batch_size"]
        view.digits_changed[0] = True
    if 6 in panels:
        indices, labels = _kept_digits(test, mnist.test, "test digits")
        if test["total"] != mnist.test.num_examples:
            raise UserError(f"this run was tested on {test['total']:,} digits, "
                            f"the MNIST test set found has {mnist.test.num_examples:,}")
        # All the test digits: the misread ones kept, the others read right
        predictions = mnist.test.labels.astype(int)
        predictions[indices] = test["predictions"]
        view.test_digits = (mnist.test.images, mnist.test.labels, predictions)
        view.digits_changed[1] = True
    if histograms:
        view.histogram_steps = list(histograms["steps"])
        view.percentiles = tuple([np.asarray(row, dtype=float) for row in rows]
                                 for rows in histograms["percentiles"])
    view.show(*panels)
    view.update()
    return fig


def _read_mnist(panels, data_dir=None):
    """The MNIST digits for panels 3 and 6 (None if neither is shown); UserError if missing."""
    if not {3, 6} & set(panels):
        return None
    import mnistdata

    try:
        return mnistdata.read_data_sets(data_dir, reshape=False, validation_size=0)
    except mnistdata.MnistError as error:
        raise UserError(f"panels 3 and 6 show MNIST digits: {error}") from None


def show_panel(run, number, save_png=None, data_dir=None):
    """Draw panels of a finished run (a History or its JSON file) large: under the cell in a
    notebook, in a window in a terminal, or into save_png.

    number: 1 to 6 for one panel, or as the dashboard's keys: 7 panels 1 and 2, 8 panels 4
    and 5, 9 panels 3 and 6, 0 all six. Panel 6 shows the misread test digits large enough
    to read. Panels 3 and 6 read the digits from MNIST (data_dir: as the lessons' --data-dir).
    """
    history, = _histories([run])
    panels = _panel_numbers(number)
    _check_kept(history, panels)
    mnist = _read_mnist(panels, data_dir)
    _show_or_save(lambda fig: plot_panel(history, panels, fig, mnist), FIGURE_SIZE, save_png)


def main(argv=None):
    """The command line: python tensorflowvisu.py {compare,confusion,panel} ... (-h for help)."""
    parser = plumbing.ArgumentParser(
        prog="tensorflowvisu.py",
        description="Look at finished MNIST lab runs (the runs/*.json files).")
    commands = parser.add_subparsers(dest="command", required=True,
                                     metavar="{compare,confusion,panel}")
    compare_parser = commands.add_parser(
        "compare", help="overlay the test curves of several runs",
        description="Overlay the test accuracy and test loss curves of several runs, "
                    "e.g. sigmoid vs ReLU vs dropout vs convolutions. The legend says what differs "
                    "between the runs, and gives their best and final test accuracy.")
    compare_parser.add_argument("runs", nargs="+", metavar="RUN.json",
                                help="run histories written by the lab")
    confusion_parser = commands.add_parser(
        "confusion", help="show a run's confusion matrix",
        description="Show which digits a run's network confuses: rows are the true digits, "
                    "columns the predicted ones; the most frequent confusions are called out.")
    confusion_parser.add_argument("run", metavar="RUN.json",
                                  help="a run history written by the lab")
    panel_parser = commands.add_parser(
        "panel", help="show one panel of a run's dashboard, large",
        description="Show a panel of a finished run's dashboard, large, as it was at the end: "
                    "1 accuracy, 2 loss, 3 training digits, 4 and 5 (weights and biases), 6 test "
                    "digits, the misread ones first; or as the dashboard's keys: 7 panels 1 and 2, "
                    "8 panels 4 and 5, 9 panels 3 and 6, 0 all six. Panels 3 and 6 read the digits "
                    "from the MNIST files.")
    panel_parser.add_argument("run", metavar="RUN.json", help="a run history written by the lab")
    panel_parser.add_argument("number", metavar="N", type=int, choices=range(10),
                              help="the panel: 1 to 6, or 7, 8, 9, 0 as the dashboard's keys")
    panel_parser.add_argument("--data-dir", metavar="DIR",
                              help="folder with the four MNIST files (default: as the lessons)")
    for command in (compare_parser, confusion_parser, panel_parser):
        command.add_argument("--save-png", metavar="FILE",
                             help="write the picture into FILE instead of showing it")
    args = parser.parse_args(argv)
    try:
        if args.command == "compare":
            compare(*args.runs, save_png=args.save_png)
        elif args.command == "confusion":
            confusion(args.run, save_png=args.save_png)
        else:
            show_panel(args.run, args.number, save_png=args.save_png, data_dir=args.data_dir)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
