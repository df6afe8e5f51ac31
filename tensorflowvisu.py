"""tensorflowvisu.py: the lab's dashboard, six panels that show a network learning.

    1 accuracy          2 cross-entropy loss      3 training digits
    4 weights           5 biases                  6 test digits

Panels 1 and 2, thin orange: the current training batch (noisy); bold blue: the test
digits. Panels 4 and 5: how the values spread, bands of percentiles around the median
(the batch-norm lessons show activations there). Panels 3 and 6: misread digits first,
on red, with the correct digit bottom left and the network's answer bottom right.
Window keys: space pauses, 1-6 one panel large, 7 the curves, 8 panels 4 and 5, 9 the
digits, 0 all six, f the first layer's weights as pictures.

A training loop feeds a Dashboard: dashboard.train(step, accuracy, loss) every 20 steps,
dashboard.test(...) at every test, dashboard.finish() at the end. The lessons do it
through lab.py, Keras through DashboardCallback (dashboard_callback.py), any other loop
directly. The Dashboard keeps the run's History (history.py) and draws the Panels where
screens.py says: a window, or a picture under a notebook cell.

Finished runs, from the command line or a notebook (compare.py draws the first two):

    python tensorflowvisu.py compare runs/*.json --save-png compare.png
    python tensorflowvisu.py confusion runs/mnist_2.1_five_layers_relu.json
    python tensorflowvisu.py panel runs/mnist_2.1_five_layers_relu.json 6
    tensorflowvisu.show_panel(history, 6)     # a run's panel 6, large

Importing this module imports neither TensorFlow nor matplotlib.pyplot.
"""

import math
import sys
import time

import plumbing  # first: a Python without the lab's packages gets one line

plumbing.check_installed("numpy", "matplotlib")

import numpy as np  # noqa: E402

import figures  # noqa: E402
import pictures  # noqa: E402
import screens  # noqa: E402
from compare import compare, confusion, ensemble  # noqa: E402,F401 (tensorflowvisu.compare)
from figures import FIGURE_SIZE, TEXT_SIZE, TITLE_SIZE  # noqa: E402
from history import History, load_all, plain  # noqa: E402
from movie import Movie  # noqa: E402
from plumbing import ArgumentParser, UserError  # noqa: E402

TRAIN_STYLE = dict(color="#e69f00", linewidth=1.5, alpha=0.9)
TEST_STYLE = dict(color="#0072b2", linewidth=3.5)
PANEL4_COLOUR, PANEL5_COLOUR = "#009e73", "#cc79a7"
# Panels 4 and 5 keep 11 percentiles (0, 10, ..., 100) of the values at each test; those
# of a regular sample of at most SAMPLE values are as good for a picture, and much faster.
PERCENTILES = np.linspace(0, 100, 11)
SAMPLE = 20_000
# The digit panels: (digits shown, lines). Panel 6 shows fewer, larger digits when it has
# more room: TEST_GRIDS maps the number of panels shown to its grid.
TRAIN_GRID = (100, 10)
TEST_GRIDS = {6: (1000, 25), 2: (440, 22), 1: (392, 14)}
MAX_KEPT_ERRORS = 1000  # misread test digits a History keeps for show_panel
# Dashboard keys: which panels each one shows ("f": the first layer's weights).
VIEWS = {"1": (1,), "2": (2,), "3": (3,), "4": (4,), "5": (5,), "6": (6,), "7": (1, 2),
         "8": (4, 5), "9": (3, 6), "0": (1, 2, 3, 4, 5, 6), "f": ("f",)}
VIEWS["escape"] = VIEWS["0"]
PAUSE_KEY = " "


class Dashboard:
    """The six panels of a training run, fed by its training loop; keeps its History.

        dashboard = tensorflowvisu.Dashboard("my_network", steps=1000)
        for step in range(1001):
            ...                                        # a training step
            if step % 20 == 0:                         # the training batch's figures
                dashboard.train(step, accuracy, loss)
            if step % 100 == 0:                        # the test images' (and pictures)
                dashboard.test(step, test_accuracy, test_loss, images=x_test, labels=y_test,
                               predictions=answers, distributions=[weights, biases])
        dashboard.finish("runs/my_network.json")       # the history, for compare

    name titles it; steps: how many the run takes (the axes span them). live: show it in
    a window or under the notebook cell if possible (not_live then says why not); png,
    movie: files of the final state, of every test. Closing the window makes train or test
    raise KeyboardInterrupt once: stop the loop there, then call finish. Images: as
    pictures.digit_grid takes them; arrays are kept by reference: pass fresh ones.
    """

    def __init__(self, name, steps=None, *, config=None,
                 distribution_titles=("weights", "biases"),
                 legend=("training batch", "test digits"),
                 image_titles=("Training digits", "Test digits"), live=True, movie=None,
                 png=None, view="0"):
        self.history = History(name, dict(config or {}, steps=steps) if steps else config)
        self.title = str(name) or "MNIST lab"
        self.steps = steps if isinstance(steps, int) and steps > 0 else None
        self.panel_titles = ["Accuracy", "Cross-entropy loss", image_titles[0],
                             *distribution_titles, image_titles[1]]
        self.legend, self.view = tuple(legend), VIEWS[view]
        self.png, self.movie = png, Movie(movie) if movie else None
        self.screen, self.not_live = None, ""  # where it shows live; why not, if asked
        self.panels = None  # the figure's six panels, made when first needed
        self.paused, self.training = False, True  # (space pauses only while training)
        self.step = None
        self.training_indices = None  # where panel 3's digits are in the training set
        self._start = time.perf_counter()
        self._saved = False
        if live:
            try:
                self.screen = screens.open_screen(self.title, FIGURE_SIZE)
                self._panels()
                if isinstance(self.screen, screens.Window):
                    print("Dashboard keys: space pause, 1-6 one panel, 7 curves, 8 panels 4+5, "
                          "f filters, 9 digits, 0 all six.", flush=True)
                else:
                    self._draw()  # "starting": the picture is there at once
            except UserError as problem:  # training goes on without
                self.screen, self.not_live, self.panels = None, str(problem), None

    @property
    def live(self):
        """True while a window (or a notebook picture) shows the dashboard."""
        return self.screen is not None and not self.screen.closed

    @property
    def closed(self):
        """Did the user close the window?"""
        return self.screen is not None and self.screen.closed and self.training

    @property
    def wants_pictures(self):
        """Will anything show the digits and panels 4 and 5 (a screen, a movie, a PNG, the
        figure made already)? Else they need not be computed."""
        return self.live or bool(self.movie or self.png) or self.panels is not None

    @property
    def redraw_due(self):
        """Would the next train or test redraw the screen (fresh pictures would show)?"""
        return self.live and self.screen.due()

    @property
    def draw_times(self):
        """Seconds each live redraw took (to check the drawing budget)."""
        return self.screen.draw_times if self.screen else []

    @property
    def figure(self):
        """The matplotlib Figure (None until something needed it)."""
        return self.panels.fig if self.panels else None

    def clock(self):
        """Seconds since the run started (a resumed run's clock goes on)."""
        return round(time.perf_counter() - self._start, 3)

    # ----- what the training loop tells

    def train(self, step, accuracy, loss, learning_rate=None, *, images=None, labels=None,
              predictions=None, indices=None):
        """A training batch's accuracy and loss at `step` (and the learning rate); its
        images, labels and the network's answers for panel 3 (indices: where they are in
        the training set, for show_panel). Then redraws if it is time."""
        self.history.append_train(step, accuracy, loss,
                                  math.nan if learning_rate is None else learning_rate,
                                  self.clock())
        if images is not None:
            self.training_digits(images, labels, predictions, indices)
        self.refresh(step)

    def training_digits(self, images, labels, predictions, indices=None):
        """Panel 3's digits, if anything will show them."""
        if self.wants_pictures:
            self._panels().digits[0].show(images, labels, predictions)
            self.training_indices = indices

    def test(self, step, accuracy, loss, *, images=None, labels=None, predictions=None,
             distributions=None, filters=None):
        """The test images' accuracy and loss at `step`; their images, labels and the
        network's answers for panel 6; distributions: the values whose spread panels 4
        and 5 show; filters: the first layer's weights (key f). Then redraws if it is time."""
        self.history.append_test(step, accuracy, loss, self.clock())
        if self.wants_pictures:
            panels = self._panels()
            if images is not None:
                panels.digits[1].show(images, labels, predictions)
            if distributions is not None:
                panels.add_distributions(step, *distributions)
            if filters is not None:
                panels.filters.filters = np.array(filters)  # (a copy: the weights change)
        if self.movie:
            self.movie.add_frame(self.drawn(), step)
        self.refresh(step)

    def continue_from(self, earlier, step):
        """Go on from the history of the same run, interrupted at `step` (lesson 6.0)."""
        self.history.resume(earlier, step)
        self._start -= (self.history.train["wall_time"][-1:] or [0])[0]

    def refresh(self, step):
        """Redraw if it is time, else let the window handle its events; wait while paused.
        Raises KeyboardInterrupt once if the user closed the window."""
        self.step = step
        if self.live:
            if self.screen.due():
                self._draw()
            else:
                self.screen.idle()
            while self.paused and self.live:
                time.sleep(screens.EVENT_INTERVAL)
                self.screen.poll()
        if self.screen and self.screen.close_requested:
            self.screen.close_requested = False
            raise KeyboardInterrupt("the dashboard window was closed")

    def resume(self):
        """End a pause (space), e.g. because Ctrl-C came: the loop goes on to stop."""
        self.paused = False

    # ----- the end of the run

    def save(self, *history_paths):
        """At the end of the run: keep what panels 3 to 6 show in the history, write it to
        each of history_paths, write the PNG and the movie; returns the paths written."""
        self.paused = self.training = False
        self._saved = True
        self.keep_panels()
        for path in history_paths:
            self.history.save(path)
        saved = list(history_paths)
        if self.png:
            figures.save_figure(self.drawn(), self.png)
            saved.append(self.png)
        if self.movie:
            self.movie.finish(self.drawn(), self.step)
            saved.append(self.movie.path)
        return saved

    def finish(self, *history_paths, wait=True):
        """The end of the run: save (see save) unless that is done, draw the final state; a
        window then stays open until the user closes it (wait). Safe to call twice."""
        if history_paths or not self._saved:
            self.save(*history_paths)
        self.paused = False
        if self.live:
            self._draw(final=True)
            self.screen.finish(wait)

    def keep_panels(self):
        """Keep in the history what panels 3 to 6 show now, for show_panel after the run:
        the indices of the training digits shown (if train() had them) and of the misread
        test digits (show_panel reads the digits from MNIST), the percentiles of panels 4
        and 5. Of inputs that are not MNIST digits, only their shape."""
        panels = self.panels
        if panels is None:
            return
        kept = {"step": self.step}
        train, test = panels.digits
        inputs = [panel.digits[0] for panel in (train, test) if panel.digits]
        if any(pictures.picture_shape(images) != pictures.MNIST_SHAPE for images in inputs):
            kept["inputs"] = list(pictures.shape_of(inputs[-1])[1:])  # (not MNIST digits)
        else:
            if train.digits and self.training_indices is not None:
                kept["training_digits"] = train.kept(TRAIN_GRID[0], self.training_indices)
            if test.digits:
                kept["test_digits"] = test.kept(MAX_KEPT_ERRORS)
        if panels.distribution_steps:
            kept["histograms"] = {  # 5 significant digits: plenty for a picture, a small file
                "titles": self.panel_titles[3:5], "steps": panels.distribution_steps,
                "percentiles": [[[float(f"{v:.5g}") for v in row] for row in rows]
                                for rows in panels.percentiles]}
        self.history.panels = plain(kept)

    def drawn(self):
        """The figure, up to date (for a movie frame, a PNG)."""
        self._panels().update(self.step, self.steps, self.paused)
        return self.panels.fig

    def show_panels(self, *numbers):
        """Show one panel, two side by side, or all six, as the window's keys do:
        show_panels(3), show_panels(1, 2), show_panels(1, 2, 3, 4, 5, 6)."""
        self._panels().show(*numbers)

    # ----- drawing

    def _panels(self):
        if self.panels is None:
            fig = self.screen.figure if self.screen else figures.offscreen_figure(FIGURE_SIZE)
            self.panels = Panels(fig, self.history, self.title, self.panel_titles, self.legend)
            self.panels.show(*self.view)
            fig.canvas.mpl_connect("key_press_event", self._on_key)
        return self.panels

    def _draw(self, final=False):
        digits = final or not hasattr(self.screen, "digits_due") or self.screen.digits_due()
        self.panels.update(self.step, self.steps, self.paused, digits=digits)
        when = "starting" if self.step is None else f"step {self.step:,}" + (
            f" of {self.steps:,}" if self.steps else "")
        self.screen.draw(self.panels.blitter, f"{self.title}: {when}", digits=digits)

    def _on_key(self, event):
        """Dashboard keys; every other key goes to matplotlib's usual handler (zoom, save...)."""
        from matplotlib.backend_bases import key_press_handler

        if event.key == PAUSE_KEY:
            self.paused = self.training and not self.paused
        elif event.key in VIEWS:
            self.panels.show(*VIEWS[event.key])
        else:
            if isinstance(self.screen, screens.Window):
                key_press_handler(event)
            return
        if self.live:  # redraw soon, with the latest data
            self.panels.update(self.step, self.steps, self.paused)
            self.figure.canvas.draw_idle()


class Panels:
    """The six panels drawn on one matplotlib Figure, from the run's data. The artists are
    made once (_build) and updated in place (update); what changes at every redraw is
    redrawn alone over a kept background (figures.Blitter)."""

    def __init__(self, fig, history, title, panel_titles, legend=("training batch", "test digits")):
        self.fig, self.history = fig, history
        self.distribution_steps, self.percentiles = [], ([], [])  # panels 4 and 5
        self.view = VIEWS["0"]  # the panels shown
        # y ranges, which only grow (figures.round_limits); the loss range starts where
        # MNIST losses are (from 2.3 down to a few hundredths), so it rarely changes
        self.limits = {"loss": (0.02, 5.0)}
        self.measured = legend[1].split()[0]  # "test" (digits), "validation" (data)...
        self._build(title, panel_titles, legend)
        self.blitter = figures.Blitter(fig, self.moving, self.layout)
        self.show(*self.view)

    def add_distributions(self, step, panel4_values, panel5_values):
        """Keep the percentiles of the values panels 4 and 5 show at this step."""
        self.distribution_steps.append(int(step))
        for values, store in zip((panel4_values, panel5_values), self.percentiles):
            values = np.asarray(values, dtype=np.float32).reshape(-1)
            if values.size == 0:
                store.append(np.full(len(PERCENTILES), np.nan))
                continue
            sample = np.sort(values[::max(1, values.size // SAMPLE)])
            store.append(sample[np.round(PERCENTILES / 100 * (sample.size - 1)).astype(int)])

    def show(self, *numbers):
        """Show one panel, two side by side, or all six; ("f",): the first layer's filters."""
        if numbers != ("f",) and (len(numbers) not in (1, 2, 6)
                                  or not set(numbers) <= {1, 2, 3, 4, 5, 6}):
            raise ValueError(f"show_panels takes 1, 2 or 6 panel numbers from 1 to 6, or 'f', "
                             f"not {numbers}")
        for ax in self.axes:
            ax.set_visible(False)
        self.filters.ax.set_visible(numbers == ("f",))
        self.legend.set_visible(bool({1, 2} & set(numbers)))  # it tells the curves' colours
        if numbers != ("f",) and TEST_GRIDS[len(numbers)] != TEST_GRIDS.get(len(self.view)):
            self.digits[1].changed = self.digits[1].digits is not None  # a grid for its size
        self.view = numbers
        boxes = {6: [(left, bottom, 0.26, 0.36) for bottom in (0.53, 0.065)
                     for left in (0.055, 0.38, 0.705)],
                 2: [(0.055, 0.07, 0.42, 0.82), (0.555, 0.07, 0.42, 0.82)],
                 1: [(0.06, 0.07, 0.9, 0.82)]}[len(numbers)] if numbers != ("f",) else []
        for number, box in zip(numbers, boxes):
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
        self.axes = [fig.add_axes((0, 0, 1, 1)) for _ in range(6)]
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
        figures.format_accuracy_axis(accuracy, self.accuracy_floor)
        figures.set_loss_range(loss, *self.limits["loss"])

        self.lines = {}  # panels 1 and 2
        for ax, measure in ((accuracy, "accuracy"), (loss, "loss")):
            self.lines["train", measure], = ax.plot([], [], **TRAIN_STYLE, label=legend[0])
            self.lines["test", measure], = ax.plot([], [], **TEST_STYLE, label=legend[1])
        curves = [self.lines["train", "accuracy"], self.lines["test", "accuracy"]]
        self.legend = fig.legend(handles=curves, loc="upper right", bbox_to_anchor=(0.79, 1.003),
                                 ncols=2, fontsize=TEXT_SIZE, frameon=False)
        figures.shorten_to_fit(title, self.legend.get_window_extent().x0)

        self.bands = []  # panels 4 and 5
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

        self.digits = [pictures.DigitPanel(ax, TEXT_SIZE) for ax in (train_ax, test_ax)]
        self.filters = pictures.FiltersPanel(fig, TITLE_SIZE)  # key f
        self.moving = [*self.lines.values(),
                       *[a for bands, median in self.bands for a in (*bands, median)],
                       *[a for panel in self.digits for a in (panel.image, panel.waiting)],
                       accuracy.title, self.status, self.paused_text, self.filters.image]

    def update(self, step, steps, paused=False, digits=True):
        """Copy the current data into the artists (digits=False: leave the digit panels
        as they are, the dearest part of a redraw)."""
        history, axes = self.history, self.axes
        for series, columns in (("train", history.train), ("test", history.test)):
            for measure in ("accuracy", "loss"):
                self.lines[series, measure].set_data(columns["step"], columns[measure])
        best = history.max_test_accuracy
        axes[0].title.set_text("Accuracy" if best is None else
                               f"Accuracy ({self.measured} max {best:.2%})")
        floor = figures.accuracy_floor(history.test["step"], history.test["accuracy"])
        if floor != self.accuracy_floor:
            figures.format_accuracy_axis(axes[0], floor)
            self.accuracy_floor = floor
        # The loss range follows the test loss: the training loss of a network that
        # learns its training digits by heart falls towards 0 and may leave the panel.
        loss_range = figures.finite_range(history.test["loss"] or history.train["loss"],
                                          positive=True)
        if loss_range:
            limits = figures.round_limits(*loss_range, self.limits.get("loss"), log=True)
            if limits != self.limits.get("loss"):
                figures.set_loss_range(axes[1], *limits)
                self.limits["loss"] = limits

        self.filters.update()
        x = np.asarray(self.distribution_steps, dtype=float)
        for ax, (bands, median), percentiles in zip(axes[3:5], self.bands, self.percentiles):
            if not percentiles:
                continue
            p = np.asarray(percentiles)  # one row per test, 11 columns
            for k, band in enumerate(bands):  # band k: from percentile 10k to 100-10k
                band.set_verts([np.concatenate([np.column_stack([x, p[:, k]]),
                                                np.column_stack([x[::-1], p[::-1, 10 - k]])])])
            median.set_data(x, p[:, 5])
            value_range = figures.finite_range(p)
            if value_range:  # with room above the values for the legend
                low, high = value_range
                self.limits[ax] = figures.round_limits(low, high + 0.3 * (high - low),
                                                       self.limits.get(ax))
                ax.set_ylim(*self.limits[ax])

        right = max([1, steps or 0, *history.train["step"][-1:], *history.test["step"][-1:],
                     *self.distribution_steps[-1:]])
        for ax in (axes[0], axes[1], axes[3], axes[4]):
            ax.set_xlim(0, right)
        if digits:  # panel 6's grid: larger digits, and gaps between them, when it has room
            gap = 2 if len(self.view) == 1 else 0
            self.digits[0].update(*TRAIN_GRID, measured=bool(history.train["step"]))
            self.digits[1].update(*TEST_GRIDS[len(self.view)], gap,
                                  measured=bool(history.test["step"]))
        self.status.set_text("" if step is None else f"step {step:,}" + (
            f" / {steps:,}" if steps else ""))
        self.paused_text.set_visible(paused)

    def layout(self):
        """What the picture behind the moving artists depends on: visible panels, axis
        ranges, ticks, size (figures.Blitter redraws it all when this changes)."""
        return (self.view, self.fig.bbox.bounds,
                *[(panel.ticks_for, panel.not_pictures) for panel in self.digits],
                *[(ax.get_xlim(), ax.get_ylim(), tuple(ax.get_yticks())) for ax in self.axes])


# --------------------------------------------------------------------------- a finished run


def show_panel(history, number, save_png=None, data_dir=None, keep_it="save_png=FILE"):
    """Draw panels of a finished run (a History or its JSON file) large, from what it kept:
    under the cell in a notebook, in a window in a terminal, or into save_png.
    number: 1 to 6 for one panel, or as the dashboard's keys: 7 panels 1 and 2, 8 panels 4
    and 5, 9 panels 3 and 6, 0 all six. Panels 3 and 6 read the digits from MNIST
    (data_dir: as the lessons' --data-dir)."""
    history, = load_all([history])
    numbers = _panel_numbers(number)
    history.check_panels(numbers)
    mnist = None
    if {3, 6} & set(numbers):  # (the history keeps the digits' indices, not the digits)
        import mnistdata

        try:
            mnist = mnistdata.read_data_sets(data_dir, reshape=False, validation_size=0)
        except mnistdata.MnistError as error:
            raise UserError(f"panels 3 and 6 show MNIST digits: {error}") from None
    return figures.show_or_save(lambda fig: plot_panel(history, numbers, fig, mnist),
                                FIGURE_SIZE, save_png, keep_it=keep_it)


def plot_panel(history, numbers, fig, mnist=None):
    """Draw panels of a finished run on fig (16 x 9), large (see show_panel). Panels 3 and 6
    need mnist (mnistdata.read_data_sets(reshape=False, validation_size=0)): the history
    keeps the digits' indices, not their images."""
    kept, numbers = history.panels, _panel_numbers(numbers)
    test = kept.get("test_digits")
    histograms = kept.get("histograms", {})
    panel6 = "Test digits" + (f": {test['misread']:,} of {test['total']:,} misread" if test else "")
    panels = Panels(fig, history, history.name, ["Accuracy", "Cross-entropy loss",
                                                 "Training digits",
                                                 *histograms.get("titles", ["weights", "biases"]),
                                                 panel6])
    if 3 in numbers:
        panels.digits[0].show_kept(kept["training_digits"], mnist.train, "training digits")
    if 6 in numbers:
        panels.digits[1].show_kept(test, mnist.test, "test digits")
    if histograms:
        panels.distribution_steps = list(histograms["steps"])
        panels.percentiles = tuple([np.asarray(row, dtype=float) for row in rows]
                                   for rows in histograms["percentiles"])
    panels.show(*numbers)
    last = (history.train["step"] or history.test["step"] or [None])[-1]
    panels.update(kept.get("step", last), history.config.get("steps"))
    return fig


def _panel_numbers(number):
    """The panels to show: 1-6 one panel; 7, 8, 9 and 0 as the dashboard's keys; or a
    tuple of 1, 2 or 6 panel numbers."""
    numbers = tuple(number) if isinstance(number, (tuple, list)) else VIEWS.get(str(number))
    if not numbers or len(numbers) not in (1, 2, 6) or not set(numbers) <= {1, 2, 3, 4, 5, 6}:
        raise UserError(f"no panel {number}: choose 1 to 6, 7 (panels 1 and 2), "
                        "8 (4 and 5), 9 (3 and 6) or 0 (all six)")
    return numbers


def __getattr__(name):
    """tensorflowvisu.DashboardCallback: the Dashboard as a Keras callback, made at first
    use (importing Keras loads TensorFlow, which importing this module must not)."""
    if name != "DashboardCallback":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import dashboard_callback

    globals()[name] = dashboard_callback.keras_callback(Dashboard)
    return globals()[name]


def main(argv=None):
    """python tensorflowvisu.py {compare,confusion,panel} ...: pictures of finished runs."""
    parser = ArgumentParser(prog="tensorflowvisu.py", description="Look at finished MNIST "
                            "lab runs (their histories, runs/*.json).")
    commands = parser.add_subparsers(dest="command", required=True,
                                     metavar="{compare,confusion,panel}")
    def add(name, text):
        return commands.add_parser(name, help=text, description=text[:1].upper() + text[1:])

    compare_parser = add("compare", "overlay the test curves of several runs; the legend says "
                         "what differs between them, with their max and final accuracy")
    compare_parser.add_argument("histories", nargs="+", metavar="HISTORY.json")
    confusion_parser = add("confusion", "a run's confusion matrix: rows the true digits, columns "
                           "the predicted ones, the most frequent confusions called out")
    panel_parser = add("panel", "a panel of a run's dashboard, large, as it was at the end: "
                       "1 accuracy, 2 loss, 3 training digits, 4 and 5, 6 test digits; 7, 8, 9, 0 "
                       "as the dashboard's keys (panels 3 and 6 read the MNIST files)")
    for command in (confusion_parser, panel_parser):
        command.add_argument("history", metavar="HISTORY.json", help="a run's history")
    panel_parser.add_argument("number", metavar="N", type=int, choices=range(10),
                              help="the panel: 1 to 6, or 7, 8, 9, 0 as the dashboard's keys")
    panel_parser.add_argument("--data-dir", metavar="DIR", help="the MNIST folder (as lessons')")
    for command in (compare_parser, confusion_parser, panel_parser):
        command.add_argument("--save-png", metavar="FILE", help="write the picture into FILE")
    args = parser.parse_args(argv)
    picture = dict(save_png=args.save_png, keep_it="--save-png FILE")
    try:
        if args.command == "compare":
            done = compare(*args.histories, **picture)
        elif args.command == "confusion":
            done = confusion(args.history, **picture)
        else:
            done = show_panel(args.history, args.number, data_dir=args.data_dir, **picture)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    if args.save_png:
        print(f"saved {args.save_png}")
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
