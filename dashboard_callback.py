"""dashboard_callback.py: the lab's dashboard for Keras' model.fit, as a callback.

    dashboard = tensorflowvisu.DashboardCallback(validation_data=(x_test, y_test),
                                                 training_data=(x_train, y_train),
                                                 name="my_network")
    model.fit(x_train, y_train, batch_size=100, epochs=5, callbacks=[dashboard])
    tensorflowvisu.compare(dashboard.history, "runs/mnist_2.1_five_layers_relu.json")

An adapter, as lab.py is for the lessons' own loop: Keras calls it at every batch and
epoch; it feeds tensorflowvisu's Dashboard through its public methods (train, test,
save, finish). tensorflowvisu.DashboardCallback is this class bound to that Dashboard
(keras_callback below), made at first use: importing Keras loads TensorFlow.
"""

import contextlib
import datetime
import math
import sys

import numpy as np

import pictures
import plumbing
from history import MEASURE_EVERY, test_due
from plumbing import RUNS, UserError

VALIDATION_BATCH = 1000  # the validation data goes through the model 1,000 at a time
TRAINING_DIGITS = 100  # panel 3: this many training examples, at random


def keras_callback(Dashboard):
    """The DashboardCallback class: this adapter as a Keras Callback feeding `Dashboard`."""
    import keras

    class DashboardCallback(Adapter, keras.callbacks.Callback):
        __doc__ = Adapter.__doc__
        dashboard_class = Dashboard

    return DashboardCallback


class Adapter:
    """The lab's dashboard for Keras' model.fit: tensorflowvisu.DashboardCallback.

    For a Keras classifier (one output per class: logits or probabilities), compiled with
    metrics=["accuracy"]; x: arrays; y: class numbers or one-hot. A step is a batch,
    counted from the first epoch as the lessons count theirs: with batches of 100, the
    curves overlay the lessons'. What the panels show:

    1, 2 thin: Keras' own training accuracy and loss every 20 batches, as the mean over the
        batches since the previous point (Keras logs running means over the epoch; their
        differences give it), measured as Keras trains: dropout on, before each update.
    1, 2 bold: the validation data, measured by the callback (one pass of predict_on_batch
        gives the accuracy, the compiled loss and panel 6): at the start, then with
        test_every="epoch" at each epoch's end; N: every N batches; "lab": the lessons'
        rhythm (history.test_due) and at the end. Without validation_data: the val_
        figures Keras logs when fit has validation_data (no pictures then).
    3: 100 examples drawn at random from training_data (Keras callbacks do not see the
        batches being trained on), with the model's current answers.
    4, 5: the spread of all the weights (kernels) and all the biases (vectors: biases,
        batch-norm scales and offsets) of every layer, at each validation.
    6: the validation pictures, misread ones first. Inputs that are not pictures: the
        curves and panels 4 and 5 only (panels 3 and 6 say so).

    name: the run's name (title, history; default: the model's). history: its JSON file,
    for compare (default: runs/NAME.json in the lab's folder; False: none). live, png,
    movie, view: as for Dashboard. wait: at the end of fit, a window stays open until it is
    closed. seed: which training examples panel 3 draws.
    Ctrl-C (a notebook's stop button) or closing the window stops fit after the current
    batch (model.stop_training): the history and pictures are still written. A second
    Ctrl-C interrupts at once. After fit: .history (the run's History) and .dashboard.
    """

    dashboard_class = None  # tensorflowvisu.Dashboard (keras_callback)

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

        with plumbing.one_line_errors():
            self._check_inputs()
        per_epoch, epochs = self.params.get("steps"), self.params.get("epochs")
        self.per_epoch, self.steps = per_epoch, per_epoch * epochs if per_epoch else None
        config = {"model": self.model.name, "epochs": epochs, "steps_per_epoch": per_epoch,
                  "test_every": self.test_every, "flags": {},
                  "framework": f"Keras {keras.__version__} ({keras.backend.backend()})",
                  "date": datetime.datetime.now().isoformat(timespec="seconds")}
        self.dashboard = self.dashboard_class(
            self.name or self.model.name, self.steps, config=config,
            legend=("training batches", "validation data"),
            image_titles=("Training images", "Validation images"), **self.options)
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
        if self.step // MEASURE_EVERY > (self.last_point or 0) // MEASURE_EVERY:
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
            self._show_training_digits()
            self._tell(self.dashboard.test, self.step,
                       logs.get(_accuracy_key(logs, "val_"), math.nan), logs["val_loss"],
                       **self._weights())

    def on_train_end(self, logs=None):
        self.ctrl_c.close()
        with plumbing.ctrl_c_held() as ctrl_c:  # the files are written whole, Ctrl-C or not
            self._train_point()  # the last batches, since the previous point
            if self.validation_data is not None and self.tested != self.step:
                self._test(self.step)  # (an interrupted fit gets its final measurement too)
            else:
                self._show_training_digits()  # (for the final picture)
            history = self.history
            history.finish(self.step, self.stopping, self.dashboard.clock())
            paths = [] if self.history_file is False else \
                [self.history_file or RUNS / f"{history.name}.json"]
            saved = self.dashboard.save(*paths)
        if history.test["accuracy"]:
            print(f"{history.name}: max validation accuracy {history.max_test_accuracy:.4f}, "
                  f"final {history.test['accuracy'][-1]:.4f}", flush=True)
        if saved:
            print(f"saved: {', '.join(map(str, saved))}", flush=True)
        self.dashboard.finish(wait=self.wait and not (self.stopping or ctrl_c.pressed))

    # -- measuring

    def _check_inputs(self):
        """The model must take the examples as they are: else say so in one line, before
        the first measurement fails deep inside Keras."""
        try:
            wanted = tuple(self.model.input_shape)
        except (AttributeError, TypeError, ValueError):  # (no fixed input: nothing to check)
            return
        for data, what in ((self.validation_data, "validation_data"),
                           (self.training_data, "training_data")):
            shape = tuple(data[0].shape[1:]) if data is not None else None
            if shape is not None and (len(shape) != len(wanted) - 1 or any(
                    w is not None and w != n for w, n in zip(wanted[1:], shape))):
                raise UserError(f"the model takes inputs {list(wanted[1:])}, {what} gives it "
                                f"{list(shape)}: build the model for them (keras.Input({shape}),"
                                " then layers.Flatten() before Dense layers), or reshape them")

    def _train_point(self):
        """Tell the dashboard the training figures: the means over the batches since the
        previous point, from Keras' running means over the epoch (k batches so far)."""
        step, logs = self.step, self.logs
        if not logs or step == self.last_point:
            return
        if self.accuracy_key is None:
            self.accuracy_key = _accuracy_key(logs) or ""
            if not self.accuracy_key:
                print('warning: the model was compiled without metrics=["accuracy"]: the '
                      "training accuracy curve stays empty (model.compile(..., "
                      'metrics=["accuracy"]))', file=sys.stderr, flush=True)
        k = step - self.epoch_start
        sums = k * np.array([logs.get(self.accuracy_key, math.nan), logs.get("loss", math.nan)])
        (k0, sums0), self.mark, self.last_point = self.mark, (k, sums), step
        accuracy, loss = (sums - sums0) / max(k - k0, 1)
        if self.dashboard.redraw_due:
            self._show_training_digits()
        self._tell(self.dashboard.train, step, accuracy, loss, self._learning_rate())

    def _show_training_digits(self):
        """Panel 3: examples at random from training_data, with the model's current answers."""
        if self.training_data is None or not self.dashboard.wants_pictures:
            return
        x, _, labels = self.training_data
        indices = np.sort(self.random.choice(len(x), min(TRAINING_DIGITS, len(x)), replace=False))
        images = x[indices]
        self.dashboard.training_digits(images, labels[indices],
                                       _classes(self.model.predict_on_batch(images)), indices)

    def _test_due(self):
        if self.validation_data is None or self.step == self.tested:
            return False
        if self.test_every == "lab":
            return test_due(self.step, self.steps or 10_000)
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
        self._show_training_digits()
        self._tell(self.dashboard.test, step, float(np.mean(predictions == labels)), loss,
                   images=x, labels=labels, predictions=predictions, **self._weights())

    def _weights(self):
        """Panels 4 and 5 (all the weights, all the biases) and the first layer's filters
        (key f), if anything will show them."""
        if not self.dashboard.wants_pictures:
            return {}
        import keras

        values = [keras.ops.convert_to_numpy(v) for v in self.model.trainable_weights]
        weights, biases = [v for v in values if v.ndim >= 2], [v for v in values if v.ndim < 2]
        return {"distributions": [np.concatenate([v.reshape(-1) for v in part] or [np.zeros(0)])
                                  for part in (weights, biases)],
                "filters": pictures.first_layer(weights)}

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
