"""lab.py: everything the lessons share, written once.

A lesson (mnist_1.0_softmax.py, mnist_2.0_..., ...) is about one model. It defines the
weights and biases, the model as a function, the optimizer and the training step, then
hands them to `lab.train`, which does the rest:

    args = lab.parse_args(__doc__, steps=2000)    # the flags, shared by every lesson
    ...                                           # the lesson: variables, model, train_step
    lab.train(args, model, train_step, optimizer)

`lab.train` loads MNIST (mnistdata.py), runs the training loop under the dashboard
(tensorflowvisu.py), prints progress, and at the end writes the run's history (JSON),
the evaluation report, the trained model (a SavedModel) and, on request, TensorBoard logs.

For speed the training data stays in TensorFlow as tensors, and one compiled call
(`tf.function`, with XLA for dense models) runs all the steps between two dashboard
updates: Python is out of the inner loop. This is what TF1's Session.run with a
feed_dict per step could not do.
"""

import argparse
import contextlib
import datetime
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ info and warning logs: off


@contextlib.contextmanager
def _quiet_stderr():
    """Hide what TensorFlow's C++ core prints while it loads and looks for GPUs.

    Those lines come before TF_CPP_MIN_LOG_LEVEL is read (or are CUDA errors on machines
    without a GPU), so they are caught by pointing the process's stderr at a temporary
    file; they are shown only if something fails.
    """
    with tempfile.TemporaryFile() as log:
        saved = os.dup(2)
        os.dup2(log.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            log.seek(0)
            sys.stderr.write(log.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


with _quiet_stderr():
    import tensorflow as tf

    GPUS = tf.config.list_logical_devices("GPU")  # initialises the devices

import mnistdata
import tensorflowvisu

ROOT = Path(__file__).resolve().parent  # runs/, models/ and data/ live next to the scripts
TRAIN_EVERY = 20  # training figures (accuracy, loss on the current batch) every 20 steps
TEST_EVERY = 100  # test figures (accuracy, loss on the 10,000 test images) every 100 steps


class LabError(Exception):
    """A problem the user can fix: the message says how. Scripts print it as one line."""


# ---------------------------------------------------------------------------- flags


def _count(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seed(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value < 2**31:
        raise argparse.ArgumentTypeError(f"must be between 0 and 2147483647, got {value}")
    return value


def script_name():
    """The running lesson's name, e.g. 'mnist_1.0_softmax' (names the history and model)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None) or sys.argv[0] or "mnist"
    return Path(path).stem


def parse_args(doc, steps, argv=None):
    """Parse the flags shared by every lesson and seed the random generators.

    `doc` is the lesson's docstring (its first paragraph becomes the -h description),
    `steps` its default number of training steps. Seeding happens here, before the
    lesson creates its variables, so that the same --seed gives the same run.
    """
    name = script_name()
    parser = tensorflowvisu.ArgumentParser(
        prog=f"{name}.py",
        description=(doc or "").strip().split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--steps", type=_count, default=steps, metavar="N",
                        help=f"training steps, one batch each (default: {steps})")
    parser.add_argument("--batch-size", type=_count, default=100, metavar="N",
                        help="images per training step (default: 100)")
    parser.add_argument("--seed", type=_seed, default=0, metavar="N",
                        help="random seed for initial weights, batch order and dropout; "
                             "the same seed gives the same curves on the same machine (default: 0)")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="folder with the four MNIST files (default: $MNIST_DATA_DIR, else data/ "
                             "next to the scripts, where they are downloaded if missing)")
    parser.add_argument("--no-vis", action="store_true",
                        help="no live dashboard window: print progress as text only")
    parser.add_argument("--save-png", metavar="FILE", help="save the final dashboard as a PNG picture")
    parser.add_argument("--save-movie", metavar="FILE",
                        help="record the dashboard as a movie: MP4 with ffmpeg, GIF otherwise")
    parser.add_argument("--history", metavar="FILE",
                        help=f"where to write the run's history as JSON, for "
                             f"'python tensorflowvisu.py compare' (default: runs/{name}.json)")
    parser.add_argument("--save-model", metavar="DIR",
                        help=f"where to save the trained model, for predict.py (default: models/{name}/)")
    parser.add_argument("--logdir", metavar="DIR",
                        help="also write TensorBoard logs, one sub-folder per run (view: tensorboard --logdir DIR)")
    parser.add_argument("--xla", choices=["auto", "on", "off"], default="auto",
                        help="compile the training loop with XLA: auto = on for models without "
                             "convolutions, where it measurably wins on CPU (default: auto)")
    args = parser.parse_args(argv)
    args.name = name
    args.history = args.history or str(ROOT / "runs" / f"{name}.json")
    args.save_model = args.save_model or str(ROOT / "models" / name)
    if args.logdir:
        try:
            import tensorboard  # noqa: F401  (tf.summary writes through it)
        except ImportError:
            raise SystemExit("error: --logdir needs TensorBoard: pip install tensorboard") from None
        _check_writable(Path(args.logdir) / "run", "--logdir")
    for flag in ("history", "save_png", "save_movie", "save_model"):
        path = getattr(args, flag)
        if path:
            _check_writable(path, "--" + flag.replace("_", "-"))
    model_dir = Path(args.save_model)
    if model_dir.exists() and not (model_dir / "saved_model.pb").exists() and \
            (not model_dir.is_dir() or any(model_dir.iterdir())):
        raise SystemExit(f"error: --save-model {model_dir}: exists and is not a saved model; "
                         "choose a new or empty folder (a saved model there is replaced)")
    tf.random.set_seed(args.seed)
    return args


def _check_writable(path, flag):
    """Fail before training, not after, when an output cannot be written."""
    folder = Path(path).resolve().parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()  # the only sure test: write a file there
    except OSError as error:
        raise SystemExit(f"error: {flag} {path}: cannot write in {folder} "
                         f"({error.strerror or error}): choose another place") from None


# ------------------------------------------------------------------------- schedules


class ExponentialDecay(tf.keras.optimizers.schedules.LearningRateSchedule):
    """The lab's learning-rate decay: lr(step) = floor + start * e^(-step / decay_steps).

    Starts fast (big steps while far from a good solution) and ends slow (small steps
    to settle in a minimum instead of bouncing around it). TF1: floor +
    tf.train.exponential_decay(start, step, decay_steps, 1/math.e).
    """

    def __init__(self, start, decay_steps, floor):
        self.start, self.decay_steps, self.floor = start, decay_steps, floor

    def __call__(self, step):
        return self.floor + self.start * tf.exp(-tf.cast(step, tf.float32) / self.decay_steps)

    def get_config(self):
        return {"start": self.start, "decay_steps": self.decay_steps, "floor": self.floor}


class BatchNorm(tf.Module):
    """Batch normalisation of one layer, at the low level (Ioffe and Szegedy, 2015).

    In training, the layer's weighted sums (before the activation function) are
    normalised with the mean and variance of the current batch, neuron by neuron (for a
    convolutional layer, channel by channel, over the batch and all positions):

        Ybn = scale * (Ylogits - batch mean) / sqrt(batch variance + 1e-5) + offset

    so every layer gets inputs centred on 0 with a spread of 1, whatever the layers
    before it do: training can use much higher learning rates. `offset` (beta) and
    `scale` (gamma) are trainable variables of the lesson: the offset takes over the
    role of the bias (a bias added before the normalisation would be subtracted again
    with the mean), the scale is only worth having before a sigmoid (a ReLU does not care
    about the scale of its input).

    At test time there is no batch to average over (or a batch of one), so the layer
    uses moving averages of the training batches' means and variances, updated at every
    training step; they are variables too (not trained, but saved with the model). Like
    TF1's tf.train.ExponentialMovingAverage(decay, step), the average forgets fast at
    first (decay (1 + n) / (10 + n) at update n), then with `decay`.
    """

    def __init__(self, size, decay=0.999):
        super().__init__()
        self.decay = decay
        self.moving_mean = tf.Variable(tf.zeros([size]), trainable=False)
        self.moving_variance = tf.Variable(tf.ones([size]), trainable=False)
        self.updates = tf.Variable(0.0, trainable=False)

    def __call__(self, Ylogits, offset, scale=None, training=False):
        if training:
            axes = list(range(len(Ylogits.shape) - 1))  # [0] for a dense layer, [0, 1, 2] for a convolution
            mean, variance = tf.nn.moments(Ylogits, axes)
            decay = tf.minimum(self.decay, (1 + self.updates) / (10 + self.updates))
            self.moving_mean.assign(decay * self.moving_mean + (1 - decay) * mean)
            self.moving_variance.assign(decay * self.moving_variance + (1 - decay) * variance)
            self.updates.assign_add(1)
        else:
            mean, variance = self.moving_mean, self.moving_variance
        return tf.nn.batch_normalization(Ylogits, mean, variance, offset, scale, variance_epsilon=1e-5)


# ------------------------------------------------------------------------ evaluation


def cross_entropy(Ylogits, Y_):
    """Mean cross-entropy of a batch, computed stably from the logits."""
    return tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=Y_, logits=Ylogits))


def report(labels, predictions):
    """Per-class precision, recall and F1, accuracy, and the confusion matrix (rows: true digit)."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    correct = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)  # how many of each digit there are
    predicted = confusion.sum(axis=0)  # how often each digit was predicted
    precision = np.divide(correct, predicted, out=np.zeros(10), where=predicted > 0)
    recall = np.divide(correct, support, out=np.zeros(10), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros(10), where=total > 0)
    return {
        "accuracy": float(correct.sum() / max(1, confusion.sum())),
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "support": support.tolist(),
        "confusion_matrix": confusion.tolist(),
    }


def format_report(rep):
    """The report as a table followed by the confusion matrix, ready to print."""
    lines = ["digit  precision  recall     f1  support"]
    for d in range(10):
        lines.append(f"{d:>5}  {rep['precision'][d]:9.4f}  {rep['recall'][d]:6.4f}  "
                     f"{rep['f1'][d]:5.4f}  {rep['support'][d]:7d}")
    lines.append(f"accuracy {rep['accuracy']:.4f} on {sum(rep['support'])} test images")
    lines.append("confusion matrix (rows: true digit, columns: predicted digit)")
    lines.append("     " + "".join(f"{d:>6}" for d in range(10)))
    for d, row in enumerate(rep["confusion_matrix"]):
        lines.append(f"{d:>5}" + "".join(f"{n:>6}" for n in row))
    return "\n".join(lines)


# ---------------------------------------------------------------------- the training


def train(args, model, train_step, optimizer, *, panels=None, augment=None):
    """Train `model` with `train_step`, driven by the dashboard, then report and save.

    model(X, training=False) -> logits [batch, 10], for images X [batch, 28, 28, 1].
    train_step(X, Y_) runs one optimisation step on a batch with one-hot labels Y_.
    optimizer is the lesson's Keras optimizer (its learning rate is shown and recorded).
    panels(X) -> {title: values, title: values}: what the dashboard's panels 4 and 5
        show for a training batch X (default: all the weights and all the biases).
    augment(X) -> X: applied to every training batch before train_step (and before
        the training figures, so the dashboard shows the digits the network sees).
    Problems the user can fix end the script with one line and a non-zero exit.
    """
    try:
        run = _Run(args, model, train_step, optimizer, panels, augment)
        run.train()
    except (LabError, mnistdata.MnistError, tensorflowvisu.VisuError) as e:
        raise SystemExit(f"error: {e}") from None
    except KeyboardInterrupt:  # before training started, or a second Ctrl-C while saving
        raise SystemExit("interrupted") from None
    if run.interrupted:
        raise SystemExit(130)


class _Run:
    """One training run: the data as tensors, the compiled loop, the records."""

    def __init__(self, args, model, train_step, optimizer, panels, augment):
        self.args, self.model, self.optimizer = args, model, optimizer
        self.interrupted = False

        # The data, as in the lab: all 60,000 training images (no validation split) with
        # one-hot labels; the 10,000 test images measure how well the model generalises.
        # TF1 fed every batch through placeholders with feed_dict. Here the whole training
        # set is one tensor, and batches are gathered from it inside the compiled loop.
        self.mnist = mnistdata.read_data_sets(args.data_dir, one_hot=True, reshape=False,
                                              validation_size=0, seed=args.seed)
        train_set, test_set = self.mnist.train, self.mnist.test
        if args.batch_size > train_set.num_examples:
            raise LabError(f"--batch-size {args.batch_size} is larger than the "
                           f"{train_set.num_examples} training images")
        self.train_images = tf.constant(train_set.images)
        self.train_labels = tf.constant(train_set.labels)
        self.test_images = tf.constant(test_set.images)
        self.test_labels = tf.constant(test_set.labels)
        self.test_digits = np.argmax(test_set.labels, axis=1)

        # The model's variables, found by tracing it once: weights (matrices and conv
        # filters) and biases/offsets (vectors) feed the dashboard, all are saved.
        traced = tf.function(model).get_concrete_function(
            tf.TensorSpec([None, 28, 28, 1], tf.float32), training=False)
        self.variables = list(traced.variables)
        trainable = list(traced.trainable_variables)
        self.weights = [v for v in trainable if len(v.shape) >= 2]
        self.biases = [v for v in trainable if len(v.shape) < 2]
        self.variable_names = _variable_names(self.variables)
        convolutional = any(len(v.shape) == 4 for v in self.weights)
        self.xla = args.xla == "on" or (args.xla == "auto" and not convolutional)

        self.device = f"GPU ({GPUS[0].name})" if GPUS else "CPU"

        @tf.function(jit_compile=self.xla, input_signature=[tf.TensorSpec([None, None], tf.int32)])
        def train_steps(indices):
            """Several training steps in one compiled call, one row of indices per batch,
            then the figures on the last batch: accuracy, loss, predicted digits."""
            for k in tf.range(tf.shape(indices)[0]):
                train_step(batch_images(indices[k]), tf.gather(self.train_labels, indices[k]))
            images = batch_images(indices[-1])
            return (images, *self._figures(images, tf.gather(self.train_labels, indices[-1])))

        def batch_images(indices):
            images = tf.gather(self.train_images, indices)
            return augment(images) if augment else images

        @tf.function(jit_compile=self.xla)
        def figures(images, labels):
            return self._figures(images, labels)

        self.train_steps, self.figures = train_steps, figures

        # Panels 4 and 5 of the dashboard: all weights and all biases, unless the lesson
        # shows something else there (the batch-norm lessons show activations).
        if panels:
            self.panels = tf.function(panels)
            self.panel_titles = list(self.panels(self.train_images[:2]))
        else:
            self.panels = lambda images: {"weights": _flat(self.weights), "biases": _flat(self.biases)}
            self.panel_titles = ["weights", "biases"]
        self.history = tensorflowvisu.History(args.name, {
            "script": f"{args.name}.py", "steps": args.steps, "batch_size": args.batch_size,
            "seed": args.seed, "xla": self.xla, "device": self.device,
            "tensorflow": tf.__version__, "date": datetime.datetime.now().isoformat(timespec="seconds"),
        })
        self.writer = None
        if args.logdir:
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            self.logdir = Path(args.logdir) / f"{args.name}-{stamp}"
            self.writer = tf.summary.create_file_writer(str(self.logdir))

    def _figures(self, images, labels):
        Ylogits = self.model(images, training=False)
        predictions = tf.argmax(Ylogits, axis=1, output_type=tf.int32)
        correct = tf.equal(predictions, tf.argmax(labels, axis=1, output_type=tf.int32))
        return tf.reduce_mean(tf.cast(correct, tf.float32)), cross_entropy(Ylogits, labels), predictions

    # -- the loop, driven by the dashboard

    def train(self):
        args = self.args
        print(f"{args.name}: {args.steps} steps of {args.batch_size} images, "
              f"{self.mnist.train.num_examples} training and {self.mnist.test.num_examples} test images, "
              f"training on {self.device}{' with XLA' if self.xla else ''}", flush=True)
        self.dashboard = tensorflowvisu.Dashboard(
            self.history, title=args.name, panel4_title=self.panel_titles[0],
            panel5_title=self.panel_titles[1], live=not args.no_vis, movie=args.save_movie)
        # Digits and histograms are only worth computing when something will show them.
        self.pictures = self.dashboard.live or self.dashboard.recording or bool(args.save_png)
        self.done = 0  # steps trained so far
        self.start = time.perf_counter()
        self.train_seconds = self.test_seconds = 0.0
        self.warmup_seconds = None  # the first compiled call includes tracing and compilation
        # Long runs test less often: about 100 test points per run, at least every 100 steps.
        test_every = max(TEST_EVERY, args.steps // 100 // TRAIN_EVERY * TRAIN_EVERY)
        try:
            self.dashboard.animate(self.step, args.steps, TRAIN_EVERY, test_every, more_tests_at_start=True)
        except KeyboardInterrupt:
            self.interrupted = True
            print(f"\ninterrupted at step {self.done} of {args.steps}: saving what was learned so far", flush=True)
        self.finish()

    def step(self, i, update_train, update_test):
        """Train until step i, then compute the figures the dashboard asked for."""
        t = time.perf_counter()
        if i > self.done:
            indices = np.stack([self.mnist.train.next_batch_indices(self.args.batch_size)
                                for _ in range(i - self.done)])
            images, accuracy, loss, predictions = self.train_steps(indices)
            loss = float(loss)  # waits for the compiled call to finish
            batch = indices[-1]
            self.done = i
        else:  # step 0: the untrained model, on the first batch
            batch = np.arange(self.args.batch_size)
            images = tf.gather(self.train_images, batch)
            accuracy, loss, predictions = self.figures(images, tf.gather(self.train_labels, batch))
            loss = float(loss)
        self.batch_images = images  # the digits the network just saw (augmented, if it is)
        elapsed = time.perf_counter() - t
        self.train_seconds += elapsed
        if self.warmup_seconds is None and i > 0:
            self.warmup_seconds = elapsed
        if not math.isfinite(loss):
            raise LabError(
                f"the loss became {loss} at step {i}: training diverged. The learning rate "
                f"({self.learning_rate():.4g}) is probably too high for this model: lower it and run again")
        if update_train:
            self.history.append_train(i, round(float(accuracy), 6), loss, self.learning_rate(), self.wall_time())
            if self.pictures:
                self.dashboard.set_training_digits(images.numpy(), self.mnist.train.labels[batch].argmax(1),
                                                   predictions.numpy())
            if self.writer:
                with self.writer.as_default(step=i):
                    tf.summary.scalar("train/accuracy", accuracy)
                    tf.summary.scalar("train/loss", loss)
                    tf.summary.scalar("learning_rate", self.learning_rate())
        if update_test:
            self.test(i)

    def test(self, i):
        t = time.perf_counter()
        _, loss, predictions = self.figures(self.test_images, self.test_labels)
        loss, self.test_predictions = float(loss), predictions.numpy()
        accuracy = float(np.mean(self.test_predictions == self.test_digits))  # exact, not float32
        self.test_seconds += time.perf_counter() - t
        self.history.append_test(i, accuracy, loss, self.wall_time())
        train = self.history.train
        epoch = i * self.args.batch_size / self.mnist.train.num_examples
        print(f"step {i:>6} (epoch {epoch:5.2f}): train accuracy {train['accuracy'][-1]:.4f} "
              f"loss {train['loss'][-1]:.4f} | test accuracy {accuracy:.4f} loss {loss:.4f} "
              f"| lr {train['learning_rate'][-1]:.3g}", flush=True)
        if self.pictures:
            self.dashboard.set_test_digits(self.mnist.test.images, self.test_digits, self.test_predictions)
            panel4, panel5 = (np.asarray(values) for values in self.panels(self.batch_images).values())
            self.dashboard.append_histograms(i, panel4, panel5)
        if self.writer:
            with self.writer.as_default(step=i):
                tf.summary.scalar("test/accuracy", accuracy)
                tf.summary.scalar("test/loss", loss)
                for v in self.variables:
                    tf.summary.histogram(self.variable_names[v.ref()], v)
                if i % 1000 == 0 or i == self.args.steps:
                    wrong = self.test_predictions != self.test_digits
                    grid = tensorflowvisu.digit_grid(self.mnist.test.images[wrong], self.test_digits[wrong],
                                                     self.test_predictions[wrong], count=100, lines=10)
                    tf.summary.image("misrecognised test digits", grid[None], max_outputs=1)

    def learning_rate(self):
        return float(self.optimizer.learning_rate)

    def wall_time(self):
        return round(time.perf_counter() - self.start, 3)

    # -- the end of the run

    def finish(self):
        args, history = self.args, self.history
        if not history.test["iteration"] or history.test["iteration"][-1] != self.done:
            self.test(self.done)  # an interrupted run still gets its final test figures
        rep = report(self.test_digits, self.test_predictions)
        history.report = rep
        timed_steps = self.done - (TRAIN_EVERY if self.warmup_seconds is not None else 0)
        timed_seconds = self.train_seconds - (self.warmup_seconds or 0.0)
        history.final = {
            "steps": self.done,
            "interrupted": self.interrupted,
            "max_test_accuracy": history.max_test_accuracy,
            "final_test_accuracy": history.test["accuracy"][-1],
            "training_seconds": round(self.train_seconds, 3),
            "test_seconds": round(self.test_seconds, 3),
            "wall_seconds": self.wall_time(),
            "images_per_second": round(timed_steps * args.batch_size / timed_seconds) if timed_steps > 0 and timed_seconds > 0 else None,
        }
        print(f"\ntrained {self.done} steps in {self.wall_time():.1f} s "
              f"({self.train_seconds:.1f} s training, {self.test_seconds:.1f} s testing)")
        print(format_report(rep))
        history.save(args.history)
        save_model(self.model, self.variables, args.save_model)
        saved = [args.history, args.save_model]
        if args.save_png:
            self.dashboard.save_png(args.save_png)
            saved.append(args.save_png)
        self.dashboard.finish(wait=False)  # the movie is complete; a window stays open
        if args.save_movie:
            saved.append(self.dashboard.movie_path)
        if self.writer:
            self.writer.close()
            saved.append(str(self.logdir))
        print("saved: " + ", ".join(saved))
        print(f"max test accuracy: {history.max_test_accuracy:.4f}")
        print(f"final test accuracy: {history.test['accuracy'][-1]:.4f}", flush=True)
        self.dashboard.finish(wait=not self.interrupted)  # a window stays until the user closes it


def _flat(variables):
    return np.concatenate([v.numpy().ravel() for v in variables]) if variables else np.zeros(0)


def _variable_names(variables):
    """Name variables after the lesson's globals (W1, B1, BN1.moving_mean...) for TensorBoard."""
    main = sys.modules.get("__main__")
    by_id = {}
    for key, value in (vars(main).items() if main else ()):
        by_id[id(value)] = key
        if isinstance(value, tf.Module):  # e.g. a BatchNorm: its moving averages
            by_id.update({id(v): f"{key}.{attr}" for attr, v in vars(value).items() if isinstance(v, tf.Variable)})
    return {v.ref(): by_id.get(id(v), v.name.split(":")[0]) for v in variables}


# ------------------------------------------------------------------- the saved model


def save_model(model, variables, path):
    """Save the model as a SavedModel that loads without this code (see predict.py).

    Its serving signature takes images [N, 28, 28], float32 in [0, 1], white on black,
    and returns probabilities [N, 10] and the predicted digits [N]. Written to a temporary
    folder first, then renamed, so a folder at `path` is always a complete model.
    """
    module = tf.Module()
    module.variables_to_save = list(variables)  # what the saved functions use

    @tf.function(input_signature=[tf.TensorSpec([None, 28, 28], tf.float32, name="images")])
    def serve(images):
        Ylogits = model(images[..., tf.newaxis], training=False)
        return {"probabilities": tf.nn.softmax(Ylogits), "digits": tf.argmax(Ylogits, axis=1)}

    module.serve = serve
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp makes it private; a model folder is as readable as any other
    try:
        tf.saved_model.save(module, str(tmp), signatures={"serving_default": serve})
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
