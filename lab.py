"""lab.py: everything the lessons share, written once.

A lesson (mnist_1.0_softmax.py, mnist_2.0_..., ...) is about one model. It reads its
flags, defines the weights and biases, the model as a function, the optimizer and the
training step, then hands them to `lab.train`, which does the rest:

    import lab
    args = lab.parse_args(__doc__, steps=2000)  # the flags, checked before TensorFlow loads
    import tensorflow as tf
    ...                                         # the lesson: variables, model, train_step
    lab.train(args, model, train_step, optimizer)

`lab.train` loads MNIST (mnistdata.py), runs the training loop (its documentation shows
the loop written plainly), feeds the dashboard (tensorflowvisu.py), prints progress, and
at the end writes the run's history (JSON), the evaluation report, the trained model (a
SavedModel) and, on request, TensorBoard logs. In a notebook, `lab.run(lesson, steps=...)`
runs a lesson and returns its history.

Importing lab does not import TensorFlow: that takes seconds, so the flags are checked
first (`parse_args`), then `load_tensorflow` chooses the engine and imports it.
"""

import argparse
import contextlib
import datetime
import hashlib
import math
import os
import platform
import runpy
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import cluster
import mnistdata
import tensorflowvisu

ROOT = Path(__file__).resolve().parent  # runs/, models/ and data/ live next to the scripts
TRAIN_EVERY = 20  # metrics of the current training batch every 20 steps
TRAIN_IMAGES = 60_000  # MNIST's training set (mnistdata checks the files' SHA-256)
TEST_BATCH = 1000  # the test images go through the model 1,000 at a time (faster than 10,000 at once)
CHECKPOINT_EVERY = 500  # lesson 6.0: the workers save a checkpoint every 500 steps

tf = None  # TensorFlow, once load_tensorflow() has imported it
_last_history = None  # the history of the latest lab.train, for lab.run
_share_of_steps = None  # lab.run(..., share=0.2): the lesson runs this share of its own steps


class LabError(Exception):
    """A problem the user can fix: the message says how. Scripts print it as one line."""

    def _render_traceback_(self):  # IPython (notebooks) shows this instead of a traceback
        return [f"error: {self}"]


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


def parse_args(doc, steps, argv=None, *, distributed=False):
    """Parse the flags shared by every lesson, check them, load TensorFlow, seed it.

    `doc` is the lesson's docstring (its first paragraph becomes the -h description),
    `steps` its default number of training steps. Everything that can be checked without
    TensorFlow is checked first, so that a typo is reported in a fraction of a second.
    Seeding happens here, before the lesson creates its variables, so that the same
    --seed gives the same run.

    distributed=True (lesson 6.0) adds the flags of data-parallel training (cluster.py):
    without TF_CONFIG, args.devices are the devices of --replicas N replicas in this
    process; with TF_CONFIG, args.cluster is True and args.worker is this process's place
    in the cluster of machines.
    """
    name = script_name()
    lesson_steps = steps
    if _share_of_steps is not None:  # lab.run(..., share=0.2)
        steps = max(TRAIN_EVERY, round(steps * _share_of_steps / TRAIN_EVERY) * TRAIN_EVERY)
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
                        help=f"where to write the run's history as JSON, for 'python tensorflowvisu.py "
                             f"compare' (default: runs/{name}.json, the latest run, and a copy of each run "
                             f"in runs/{name}/)")
    parser.add_argument("--save-model", metavar="DIR",
                        help=f"where to save the trained model, for predict.py (default: models/{name}/)")
    parser.add_argument("--logdir", metavar="DIR",
                        help="also write TensorBoard logs, one sub-folder per run (view: tensorboard --logdir DIR)")
    parser.add_argument("--xla", choices=["auto", "on", "off"], default="auto",
                        help="compile the training loop with XLA: auto = on for models without "
                             "convolutions or dropout, where it measurably wins on CPU (default: auto)")
    if distributed:
        parser.add_argument("--replicas", type=_count, metavar="N",
                            help="train N replicas of the model in this process, one per device "
                                 "(default: 2); with TF_CONFIG set, each worker is one replica")
        parser.add_argument("--workers", type=_count, dest="replicas", help=argparse.SUPPRESS)  # its old name
        parser.add_argument("--checkpoint-dir", metavar="DIR",
                            help=f"where to save checkpoints; running the same command again resumes "
                                 f"from the last one (default: runs/{name}-checkpoints/)")
        parser.add_argument("--checkpoint-every", type=_count, default=CHECKPOINT_EVERY, metavar="N",
                            help=f"save a checkpoint every N steps (default: {CHECKPOINT_EVERY})")
        parser.add_argument("--join-timeout", type=_count, default=120, metavar="SECONDS",
                            help="TF_CONFIG: stop if the other workers have not joined after this long "
                                 "(default: 120)")
    args = parser.parse_args(argv)
    if args.batch_size > TRAIN_IMAGES:
        parser.error(f"--batch-size {args.batch_size} is larger than the {TRAIN_IMAGES:,} training images")
    args.name = name
    # What this run changes from the lesson's defaults, e.g. {"seed": 1}: its history says so.
    defaults = dict(vars(parser.parse_args([])), steps=lesson_steps)  # (replicas: None unless given)
    args.flags = {k: v for k, v in vars(args).items() if k in _LEARNING_FLAGS and v != defaults[k]}
    args.run_history = None  # each run's own copy of its history, next to the latest one
    if not args.history:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        changes = "".join(f"--{k.replace('_', '-')}-{v}" for k, v in args.flags.items())
        args.run_history = str(ROOT / "runs" / name / f"{stamp}{changes}.json")
    args.history = args.history or str(ROOT / "runs" / f"{name}.json")
    args.save_model = args.save_model or str(ROOT / "models" / name)
    args.distributed, args.cluster, args.worker = distributed, False, None
    if distributed and "tensorflow" in sys.modules:  # e.g. a notebook that ran other lessons
        raise SystemExit(f"error: {name}.py needs a process of its own (TensorFlow already runs in this one, and "
                         f"the replicas' devices must be made before it starts): run it from a terminal, or in "
                         f"a notebook as !{{sys.executable}} {name}.py")
    if distributed:
        try:
            _cluster_args(args, parser)
        except cluster.ClusterError as error:
            raise SystemExit(f"error: {error}") from None
    if args.worker is None or args.worker.chief:
        _check_outputs(args)  # the other workers write nothing but checkpoints
    if args.worker:
        try:
            args.worker.check_port()
        except cluster.ClusterError as error:
            raise SystemExit(f"error: {error}") from None
        args.worker.warn()
        args.worker.watch_joining()
    def replica_devices(tf):  # lesson 6.0 on one machine: one device per replica
        args.devices = cluster.replica_devices(tf, args.replicas)

    load_tensorflow(replica_devices if distributed and not args.cluster else None, cluster=args.cluster)
    tf.random.set_seed(args.seed)
    return args


_LEARNING_FLAGS = ("steps", "batch_size", "seed", "xla", "replicas")  # what changes the curves


def _cluster_args(args, parser):
    """Check the distributed flags; with TF_CONFIG, args.worker is this process's place."""
    args.checkpoint_dir = args.checkpoint_dir or str(ROOT / "runs" / f"{args.name}-checkpoints")
    args.checkpoint_every = -(-args.checkpoint_every // TRAIN_EVERY) * TRAIN_EVERY  # at a measurement
    config = cluster.tf_config()
    if config and args.replicas is not None:
        parser.error(f"--replicas {args.replicas}: with TF_CONFIG, each worker is one replica "
                     f"(this cluster has {len(config[0])}); leave --replicas out")
    count = len(config[0]) if config else args.replicas or 2
    args.replicas = count
    if args.batch_size % count:
        parser.error(f"--batch-size {args.batch_size} does not split evenly over {count} replicas")
    if config:
        args.cluster, args.worker = True, cluster.Worker(args.join_timeout)
        if not args.worker.chief:
            args.no_vis = True  # only the chief shows the dashboard, tests, reports and saves
            args.save_png = args.save_movie = args.logdir = None


def _check_outputs(args):
    """Fail before training, not after, when outputs cannot be written: all of them in one line."""
    if args.logdir:
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:
            raise SystemExit("error: --logdir needs TensorBoard: pip install tensorboard")
    if args.save_movie:
        problem = tensorflowvisu.Movie.check_name(args.save_movie)
        if problem:
            raise SystemExit(f"error: --save-movie {args.save_movie}: {problem}")
    model_dir = Path(args.save_model)
    if model_dir.exists() and not (model_dir / "saved_model.pb").exists() and \
            (not model_dir.is_dir() or any(model_dir.iterdir())):
        raise SystemExit(f"error: --save-model {model_dir}: exists and is not a saved model; "
                         "choose a new or empty folder (a saved model there is replaced)")
    outputs = [("--history", args.history, "file"), ("--save-model", args.save_model, "folder"),
               ("--save-png", args.save_png, "file"), ("--save-movie", args.save_movie, "file"),
               ("--logdir", args.logdir, "folder")]
    problems = []
    for flag, path, kind in outputs:
        problem = path and tensorflowvisu.cannot_write(path, folder=kind == "folder")
        if problem:
            problems.append(f"{flag} {path} ({problem})")
    if problems:
        raise SystemExit(f"error: cannot write {'; '.join(problems)}: choose other places with "
                         f"{'these flags' if len(problems) > 1 else 'this flag'}")


# ---------------------------------------------------------------- TensorFlow, engine


@contextlib.contextmanager
def quiet_stderr():
    """Hide what TensorFlow's C++ core prints while it loads and looks for GPUs.

    Those lines come before TF_CPP_MIN_LOG_LEVEL is read (or are CUDA errors on machines
    without a GPU), so they are caught by pointing the process's stderr at a temporary
    file; they are shown only if something fails.
    """
    sys.stderr.flush()
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


def load_tensorflow(devices=None, cluster=False):
    """Import TensorFlow with the lab's settings, quietly, once; returns the module.

    The settings must be in the environment before the import, which reads them:
    - oneDNN on x86-64 CPUs. TensorFlow 2.21 uses Intel's oneDNN library for convolutions
      and matrix products only on CPUs with AVX-512 VNNI, BF16 or AMX; everywhere else
      (AMD processors, most laptops) it runs Eigen's kernels, 2 to 5 times slower for
      the convolutional lessons (measured: benchmarks/throughput.py). The user's own
      TF_ENABLE_ONEDNN_OPTS (0 or 1) always wins.
    - TensorFlow's C++ info and warning lines: off (TF_CPP_MIN_LOG_LEVEL=2).
    Lesson 6.0: devices(tf) makes the replicas' devices before the runtime starts. In a
    cluster (cluster=True) the runtime is left unstarted: the lesson's
    tf.distribute.MultiWorkerMirroredStrategy must configure it. Its C++ error lines are
    then off too (3): they come where they cannot be caught, and a failing worker is
    reported by lab in one line.
    """
    global tf
    if tf is None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3" if cluster else "2")
        if platform.machine().lower() in ("x86_64", "amd64"):
            os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
        with quiet_stderr():
            import tensorflow

            if devices:
                devices(tensorflow)
            if not cluster:
                tensorflow.config.list_logical_devices("GPU")  # starts the runtime (and CUDA's complaints)
        # Its Python logger prints INFO lines in interactive sessions (notebooks): warnings only.
        tensorflow.get_logger().setLevel("WARNING")
        tf = tensorflow
    return tf


def engine():
    """What runs the computations: 'CPU, oneDNN', 'CPU, Eigen' or 'GPU (...)'."""
    gpus = load_tensorflow().config.list_logical_devices("GPU")
    if gpus:
        return f"GPU ({gpus[0].name})"
    try:
        from tensorflow.python.util import _pywrap_util_port  # what TensorFlow itself decided

        onednn = _pywrap_util_port.IsMklEnabled()
    except (ImportError, AttributeError):
        onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "1"
    return "CPU, oneDNN" if onednn else "CPU, Eigen"


# SIMD instruction sets that decide how fast TensorFlow's CPU kernels can be.
_CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16",
              "amx_bf16", "amx_int8", "amx_tile")


def cpu():
    """This machine's processor: {"model", "cores", "flags"}, e.g. {"model": "AMD EPYC
    (family 23, model 1)", "cores": 2, "flags": ["avx", "avx2", "fma"]}. On x86 the family
    and model numbers tell processor generations apart (Zen 1 is 23/1, Zen 3 is 25/1)."""
    info = {"model": platform.processor() or platform.machine(), "cores": os.cpu_count(), "flags": []}
    try:
        first = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    except OSError:
        first = ""
    fields = dict(line.split(":", 1) for line in first.splitlines() if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    if "model name" in fields:
        info["model"] = fields["model name"]
        if "cpu family" in fields:
            info["model"] += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
        flags = set(fields.get("flags", "").split())
        info["flags"] = [f for f in _CPU_FLAGS if f in flags]
    elif sys.platform == "darwin":
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            info["model"] = subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True,
                                           text=True, timeout=5).stdout.strip() or info["model"]
    return info


# ------------------------------------------------------- schedules and batch norm


def __getattr__(name):
    """lab.ExponentialDecay and lab.BatchNorm extend TensorFlow classes, so they are made
    when a lesson first asks for them (after parse_args has loaded TensorFlow)."""
    if name in ("ExponentialDecay", "BatchNorm"):
        globals().update(_tensorflow_classes())
        return globals()[name]
    raise AttributeError(f"module 'lab' has no attribute {name!r}")


def _tensorflow_classes():
    load_tensorflow()

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

    return {"ExponentialDecay": ExponentialDecay, "BatchNorm": BatchNorm}


# ------------------------------------------------------------------------ evaluation


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


def test_due(i, steps):
    """Is step i a time to measure the 10,000 test images?

    Every 20 steps while the curves climb fastest (the first tenth of the run, at most
    200 steps), then about 100 times a run (every 100 steps for 10,000; every 40 for a
    200-step run: test passes cost more than short runs' training), and at the last step.
    """
    every = max(TRAIN_EVERY, min(100, steps // 5), steps // 100) // TRAIN_EVERY * TRAIN_EVERY
    return i == steps or i % TRAIN_EVERY == 0 and (i < min(200, steps // 10) or i % every == 0)


def train(args, model, train_step, optimizer, *, panels=None, augment=None, strategy=None):
    """Train `model` with `train_step`, show it on the dashboard, then report and save.

    model(X, training=False) -> logits [batch, 10], for images X [batch, 28, 28, 1].
    train_step(X, Y_) runs one optimisation step on a batch with one-hot labels Y_.
    optimizer is the lesson's Keras optimizer (its learning rate is shown and recorded).
    panels(X) -> {title: values, title: values}: what the dashboard's panels 4 and 5
        show for a training batch X (default: all the weights and all the biases).
    augment(X) -> X: applied to every training batch before train_step (and before
        the training metrics, so the dashboard shows the digits the network sees).
    strategy: the lesson's tf.distribute strategy (lesson 6.0, parse_args(distributed=
        True)): train_step gets the whole batch (each replica takes its share); in a
        cluster, the chief alone measures, shows, reports and saves; checkpoints are saved.
    Returns the run's tensorflowvisu.History. Problems the user can fix end the script
    with one line and a non-zero exit; Ctrl-C ends it with exit status 130 after saving.

    Written plainly, without the dashboard, the reports and the speed-ups, the training
    loop is this (lesson 1.0 has it as plain_training_loop; a test runs both):

        mnist = mnistdata.read_data_sets(args.data_dir, one_hot=True, reshape=False, validation_size=0)
        for i in range(args.steps + 1):
            if lab.test_due(i, args.steps):  # time to measure how well it reads the test digits?
                Ylogits = model(mnist.test.images)
                correct = tf.equal(tf.argmax(Ylogits, 1), tf.argmax(mnist.test.labels, 1))
                print(f"step {i}: test accuracy {float(tf.reduce_mean(tf.cast(correct, tf.float32))):.4f}")
            if i < args.steps:
                batch_X, batch_Y = mnist.train.next_batch(args.batch_size)
                train_step(batch_X, batch_Y)  # TF1: sess.run(train_step, feed_dict={X: batch_X, Y_: batch_Y})

    What `_Training.run` adds to it, for speed: the training images stay in TensorFlow as
    one tensor, and a single compiled call (tf.function, with XLA for dense models without dropout) runs
    the 20 steps between two measurements, so Python is out of the inner loop (TF1's
    Session.run with a feed_dict per step could not do that); the test images go through
    the model 1,000 at a time.
    """
    global _last_history
    worker = args.worker  # a worker of a cluster of machines (TF_CONFIG): leaves at once
    try:
        history = _Training(args, model, train_step, optimizer, panels, augment, strategy).run()
    except (LabError, mnistdata.MnistError, tensorflowvisu.VisuError) as error:
        if worker:
            print(f"error: {error}", file=sys.stderr)
            worker.exit(1)
        raise SystemExit(f"error: {error}") from None
    except KeyboardInterrupt:  # before training started
        print("interrupted", file=sys.stderr)
        if worker:
            worker.exit(130)
        raise SystemExit(130) from None
    if worker:
        worker.exit(130 if history.final.get("interrupted") else 0)
    _last_history = history
    if history.final["interrupted"] and not _in_notebook():
        raise SystemExit(130)
    return history


class _Training:
    """One training run: MNIST as tensors, the compiled calls, and the loop (run)."""

    def __init__(self, args, model, train_step, optimizer, panels, augment, strategy=None):
        load_tensorflow()
        self.args, self.model, self.optimizer, self.strategy = args, model, optimizer, strategy
        # Lesson 6.0: in a cluster of machines, the chief measures, shows and saves.
        self.worker = args.worker
        self.chief = self.worker is None or self.worker.chief
        if self.worker:
            self.worker.joined()  # the lesson made its strategy and variables: the cluster is up

        # The data, as in the lab: all 60,000 training images (no validation split) with
        # one-hot labels; the 10,000 test images measure how well the model generalises.
        # TF1 fed every batch through placeholders with feed_dict. Here the whole training
        # set is one tensor, and batches are gathered from it inside the compiled call.
        self.mnist = mnistdata.read_data_sets(args.data_dir, one_hot=True, reshape=False,
                                              validation_size=0, seed=args.seed)
        train_set, test_set = self.mnist.train, self.mnist.test
        self.train_images = tf.constant(train_set.images)
        self.train_labels = tf.constant(train_set.labels)
        self.test_images = tf.constant(test_set.images)
        self.test_labels = tf.constant(test_set.labels)
        self.test_digits = np.argmax(test_set.labels, axis=1)

        # The model's variables, found by tracing it once: weights (matrices and conv
        # filters) and biases/offsets (vectors) feed the dashboard, all are saved.
        traced = tf.function(model).get_concrete_function(
            tf.TensorSpec([None, 28, 28, 1], tf.float32), training=False)
        self.variables = _lesson_variables(traced.variables)
        self.trainable = _lesson_variables(traced.trainable_variables)
        self.weights = [v for v in self.trainable if len(v.shape) >= 2]
        self.biases = [v for v in self.trainable if len(v.shape) < 2]
        self.variable_names = _variable_names(self.variables)
        # The optimizer's own variables (Adam's moving averages) made now: made while
        # train_step is traced, they would make TensorFlow trace it twice (a second or two).
        if not optimizer.built:
            with strategy.scope() if strategy else contextlib.nullcontext():
                optimizer.build(self.trainable)
        # XLA wins for the dense models on a CPU, not for the convolutional ones. Nor with
        # dropout: under XLA its random numbers come from a counter of the process (the same
        # seed gives other masks on a second run in one notebook kernel), and 2.2 ended a
        # little less accurate (README, Benchmarks: lab_time.py --lessons 2.2 --seeds 5).
        convolutional = any(len(v.shape) == 4 for v in self.weights)
        auto = not convolutional and not _draws_random_numbers(model)
        self.xla = args.xla == "on" or (args.xla == "auto" and auto)
        self.engine, self.machine = engine(), cpu()
        replicas = strategy.num_replicas_in_sync if strategy else 1
        on = f"; {replicas} replicas of {args.batch_size // replicas} images each" if replicas > 1 else ""
        if self.worker:
            on += f", {self.worker.name} of {self.worker.count} workers"
        print(f"{args.name}: {args.steps} steps of {args.batch_size} images{on}, "
              f"{train_set.num_examples} training and {test_set.num_examples} test images; "
              f"{self.engine}{', XLA' if self.xla else ''} ({self.machine['model']}, {self.machine['cores']} cores)",
              flush=True)

        def batch_images(indices):
            images = tf.gather(self.train_images, indices)
            return augment(images) if augment else images

        @tf.function(jit_compile=self.xla, input_signature=[tf.TensorSpec([None, None], tf.int32)])
        def train_on(batches):
            """train_step on each batch (a row of indices), in one compiled call; then the
            last batch (as trained on: augmented, if it is) and the model's metrics on it."""
            for k in tf.range(tf.shape(batches)[0]):
                train_step(batch_images(batches[k]), tf.gather(self.train_labels, batches[k]))
            images = batch_images(batches[-1])
            return (images, *self._metrics(images, tf.gather(self.train_labels, batches[-1])))

        @tf.function(input_signature=[])
        def test_metrics():  # without XLA: measured faster for every lesson
            n = self.test_images.shape[0]
            logits = tf.concat([model(self.test_images[k:k + TEST_BATCH], training=False)
                                for k in range(0, n, TEST_BATCH)], axis=0)
            return _accuracy_loss_predictions(logits, self.test_labels)

        # Traced now, once per run (the first call compiles them with XLA, when it is on).
        # Calling a traced function does not trace it again, so lessons run again and
        # again in one notebook do not make TensorFlow warn about retracing.
        start = time.perf_counter()
        self.train_on = train_on.get_concrete_function()
        self.test_metrics = test_metrics.get_concrete_function()
        # Panels 4 and 5 of the dashboard: all weights and all biases, unless the lesson
        # shows something else there (the batch-norm lessons show activations).
        if panels:
            self.panel_values = tf.function(panels).get_concrete_function(tf.TensorSpec([None, 28, 28, 1], tf.float32))
            self.panel_titles = list(self.panel_values.structured_outputs)
        else:
            self.panel_values = lambda images: {"weights": _flat(self.weights), "biases": _flat(self.biases)}
            self.panel_titles = ["weights", "biases"]
        self.tracing_seconds = time.perf_counter() - start

    def _metrics(self, images, labels):
        return _accuracy_loss_predictions(self.model(images, training=False), labels)

    # -- the loop

    def run(self):
        """Train, measuring every TRAIN_EVERY steps; pass the measurements on to the history,
        the terminal, the dashboard, the movie and TensorBoard; then finish."""
        args = self.args
        self.history = history = tensorflowvisu.History(args.name, {
            "script": f"{args.name}.py", "steps": args.steps, "batch_size": args.batch_size,
            "seed": args.seed, "flags": args.flags, "xla": self.xla, "engine": self.engine, "cpu": self.machine,
            "tensorflow": tf.__version__, "date": datetime.datetime.now().isoformat(timespec="seconds"),
        })
        self.dashboard = dashboard = tensorflowvisu.Dashboard(
            history, title=args.name, panel4_title=self.panel_titles[0], panel5_title=self.panel_titles[1],
            live=not args.no_vis)
        if dashboard.not_live:
            hint = "" if args.save_png else " (use --save-png FILE to keep a picture)"
            print(f"{dashboard.not_live}: training without the live dashboard{hint}", file=sys.stderr, flush=True)
        self.movie = tensorflowvisu.Movie(args.save_movie) if args.save_movie else None
        self.tensorboard = _TensorBoard(args, self.variables, self.variable_names) if args.logdir else None
        # Digits and histograms are only worth computing when something will show them.
        self.pictures = dashboard.live or bool(self.movie or args.save_png)

        self.done = self.first_step = 0  # steps trained so far; the first one of this run
        self.train_seconds = self.test_seconds = 0.0
        # The first calls are slower: step 0's eager metrics, the first training call (which
        # compiles it with XLA, when it is on), the first test. Throughput leaves them out.
        self.warmup = {"metrics": None, "training": None, "test": None}
        # Long runs test less often: about 100 test points per run, at least every 100 steps.
        self.checkpoints = self.resume() if args.distributed else None  # lesson 6.0: may start later
        self.start = time.perf_counter() - (history.train["wall_time"][-1:] or [0])[0]  # resumed: the clock goes on
        interrupted = False
        initial_values = [v.numpy() for v in self.trainable]  # to spot variables train_step never changes
        # Ctrl-C (a notebook's stop button too) is held back until the end of the current
        # measurement: arriving inside a TensorFlow call, it would surface as an error from
        # TensorFlow's C++ code instead of an interruption. It also ends a pause.
        try:
            with tensorflowvisu.ctrl_c_held(on_press=dashboard.resume) as ctrl_c:
                for i in [*range(0, args.steps, TRAIN_EVERY), args.steps]:
                    if i < self.done or 0 < i == self.done:
                        continue  # resumed: trained already
                    images, accuracy, loss, predictions = self.train_until(i)
                    if initial_values and i > 0:
                        self.warn_unchanged(initial_values, i)
                        initial_values = None
                    if self.chief:
                        self.measure(i, images, accuracy, loss, predictions)
                    if self.checkpoints and 0 < i < args.steps and i % args.checkpoint_every == 0:
                        self.checkpoints.save(i, history)
                    dashboard.refresh(i, args.steps)  # draws when due; raises KeyboardInterrupt if closed
                    if ctrl_c.pressed:
                        raise KeyboardInterrupt
        except KeyboardInterrupt:
            interrupted = True
        except tf.errors.OpError as error:  # lesson 6.0: another worker died or froze
            if not self.worker:
                raise
            raise LabError(self.worker.failure(error)) from None
        self.finish(interrupted)
        return history

    def measure(self, i, images, accuracy, loss, predictions):
        """Record what was measured at step i, show it, and test the model when it is time."""
        args, history = self.args, self.history
        history.append_train(i, accuracy, loss, self.learning_rate(), self.clock())
        if self.pictures:
            self.dashboard.set_training_digits(images.numpy(), self.batch_labels, predictions.numpy())
        if self.tensorboard:
            self.tensorboard.train(i, accuracy, loss, self.learning_rate())
        if test_due(i, args.steps):
            self.test(i, images if self.pictures else None)

    def resume(self):
        """Lesson 6.0: the checkpoints. After an interrupted run, carry on from the last one:
        its variables and optimizer, its step, the same batches next, its history so far."""
        checkpoints = cluster.Checkpoints(tf, self.args.checkpoint_dir, self.chief,
                                          variables=self.variables, optimizer=self.optimizer)
        step = checkpoints.restore()
        if self.worker:  # every worker must carry on from the same step
            steps = tf.function(lambda: self.strategy.gather(self.strategy.run(lambda: tf.constant([step])), axis=0),
                                autograph=False)
            found = steps().numpy()
            if found.min() != found.max():
                raise LabError(f"the workers found different checkpoints (steps {found.min()} and {found.max()}) "
                               f"in {checkpoints.folder}: on several machines, --checkpoint-dir must be a folder "
                               "that every worker sees (shared storage)")
        if step:
            for _ in range(step):  # the batches of the steps done: the next ones are the same as without a stop
                self.mnist.train.next_batch_indices(self.args.batch_size)
            self.done = self.first_step = step
            if self.chief:
                if checkpoints.history_path.exists():
                    self.history.resume(tensorflowvisu.History.load(checkpoints.history_path), step)
                print(f"resumed from step {step} (the checkpoint in {checkpoints.folder})", flush=True)
        return checkpoints

    def train_until(self, i):
        """Train up to step i in one compiled call; then the model's metrics on the last batch.

        Returns the last batch's images (as trained on), accuracy, loss and predictions.
        At step 0 nothing is trained: the untrained model, on the first batch.
        """
        start = time.perf_counter()
        batch_size = self.args.batch_size
        if i > self.done:
            batches = np.stack([self.mnist.train.next_batch_indices(batch_size) for _ in range(i - self.done)])
            images, accuracy, loss, predictions = self.train_on(tf.constant(batches))
            batch = batches[-1]
        else:  # one call: not worth compiling
            batch = np.arange(batch_size)
            images = tf.gather(self.train_images, batch)
            accuracy, loss, predictions = self._metrics(images, tf.gather(self.train_labels, batch))
        loss = float(loss)  # waits for the compiled call to finish
        self.batch_labels = self.mnist.train.labels[batch].argmax(1)  # digits, for the dashboard
        elapsed = time.perf_counter() - start
        self.train_seconds += elapsed
        first = "training" if i > 0 else "metrics"
        if self.warmup[first] is None:
            self.warmup[first] = elapsed
        self.done = i
        if not math.isfinite(loss):
            raise LabError(
                f"the loss became {loss} at step {i}: training diverged. The learning rate "
                f"({self.learning_rate():.4g}) is probably too high for this model: lower it and run again")
        return images, round(float(accuracy), 6), loss, predictions

    def warn_unchanged(self, initial_values, i):
        """The classic mistake when adding a layer: its variables missing from the list that
        train_step differentiates. They never change; say so after the first compiled call."""
        for variable, initial in zip(self.trainable, initial_values):
            if np.array_equal(variable.numpy(), initial):
                print(f"warning: {self.variable_names[variable.ref()]} {variable.shape.as_list()} did not change "
                      f"in the first {i} training steps: is it missing from the variables that train_step "
                      "updates (tape.gradient(loss, [...]))?", file=sys.stderr, flush=True)

    def test(self, i, images=None):
        """Measure the model on the 10,000 test images; record, print and show it.
        images: the last training batch, for panels 4 and 5 (None: no pictures)."""
        start = time.perf_counter()
        _, loss, predictions = self.test_metrics()
        loss, self.test_predictions = float(loss), predictions.numpy()
        accuracy = float(np.mean(self.test_predictions == self.test_digits))  # exact, not float32
        self.test_seconds += time.perf_counter() - start
        if self.warmup["test"] is None:
            self.warmup["test"] = time.perf_counter() - start
        self.history.append_test(i, accuracy, loss, self.clock())
        train = self.history.train
        epoch = i * self.args.batch_size / self.mnist.train.num_examples
        print(f"step {i:>6} (epoch {epoch:5.2f}): train accuracy {train['accuracy'][-1]:.4f} "
              f"loss {train['loss'][-1]:.4f} | test accuracy {accuracy:.4f} loss {loss:.4f} "
              f"| lr {train['learning_rate'][-1]:.3g}", flush=True)
        if images is not None:
            self.dashboard.set_test_digits(self.mnist.test.images, self.test_digits, self.test_predictions)
            panel4, panel5 = (np.asarray(values) for values in self.panel_values(images).values())
            self.dashboard.append_histograms(i, panel4, panel5)
            if self.movie:
                self.movie.add_frame(self.dashboard.picture(), i)
        if self.tensorboard:
            self.tensorboard.test(i, accuracy, loss, self.mnist.test.images, self.test_digits,
                                  self.test_predictions, final=i == self.args.steps)

    def learning_rate(self):
        return float(self.optimizer.learning_rate)

    def weights_digests(self):
        """A fingerprint of every variable's value, one per replica's copy (lesson 6.0:
        identical copies have the same one)."""
        copies = [getattr(v, "values", [v]) for v in self.variables]  # a mirrored variable: its copies
        return [hashlib.sha256(b"".join(v[k].numpy().tobytes() for v in copies)).hexdigest()[:16]
                for k in range(len(copies[0]) if copies else 0)]

    def clock(self):
        return round(time.perf_counter() - self.start, 3)

    # -- the end of the run

    def finish(self, interrupted):
        """Final test, report and outputs. Ctrl-C is held back meanwhile (a second Ctrl-C
        after the one that stopped training waits until the files are written), so the
        history and the model are always a pair from this run."""
        args, history = self.args, self.history
        if not self.chief:  # lesson 6.0: the chief reports and saves, the others say they are done
            print(f"{self.worker.name}: trained {self.done} steps; weights sha256 {self.weights_digests()[0]}",
                  flush=True)
            history.final = {"steps": self.done, "interrupted": interrupted}
            if self.checkpoints:
                self.checkpoints.remove()  # its private folder: the chief keeps what resumes a run
            return
        saved = [args.history, args.save_model]
        with tensorflowvisu.ctrl_c_held() as ctrl_c:
            if interrupted:
                print(f"\ninterrupted at step {self.done} of {args.steps}: saving what was learned so far",
                      flush=True)
            if history.test["iteration"][-1:] != [self.done]:
                self.test(self.done)  # an interrupted run still gets its final test metrics
            history.report = report(self.test_digits, self.test_predictions)
            # Throughput after the warm-up (the first training call: TRAIN_EVERY steps): of the
            # training alone, and end to end with the test measurements the lab makes.
            timed_steps = self.done - self.first_step - (TRAIN_EVERY if self.warmup["training"] is not None else 0)
            warmup = {k: round(v or 0.0, 3) for k, v in self.warmup.items()}
            warmup["tracing"] = round(self.tracing_seconds, 3)  # before the loop: in no other figure
            training = self.train_seconds - warmup["metrics"] - warmup["training"]
            testing = self.test_seconds - warmup["test"]
            history.final = {
                "steps": self.done,
                "interrupted": interrupted,
                "max_test_accuracy": history.max_test_accuracy,
                "final_test_accuracy": history.test["accuracy"][-1],
                "training_seconds": round(self.train_seconds, 3),
                "test_seconds": round(self.test_seconds, 3),
                "warmup_seconds": warmup,
                "wall_seconds": self.clock(),
                "images_per_second": round(timed_steps * args.batch_size / training)
                if timed_steps > 0 and training > 0 else None,
                "end_to_end_images_per_second": round(timed_steps * args.batch_size / (training + testing))
                if timed_steps > 0 and training + testing > 0 else None,
            }
            print(f"\ntrained {self.done} steps in {self.clock():.1f} s "
                  f"({self.train_seconds:.1f} s training, {self.test_seconds:.1f} s testing)")
            print(format_report(history.report), flush=True)
            history.save(args.history)
            if args.run_history:
                history.save(args.run_history)
                saved[0] += f" (and {Path(args.run_history).relative_to(ROOT)})"
            save_model(self.model, self.variables, args.save_model)
            if args.save_png:
                self.dashboard.save_png(args.save_png)
                saved.append(args.save_png)
            if self.movie:
                self.movie.finish(self.dashboard.picture(), self.done)
                saved.append(self.movie.path)
            if self.tensorboard:
                self.tensorboard.close()
                saved.append(str(self.tensorboard.folder))
            if self.checkpoints and not interrupted:
                self.checkpoints.remove()  # the run is complete: nothing to resume
        print("saved: " + ", ".join(saved))
        if self.strategy and not interrupted:  # lesson 6.0: are the copies still identical?
            digests = self.weights_digests()
            same = "the same for every replica's copy" if len(set(digests)) == 1 else f"COPIES DIFFER: {digests}"
            print(f"weights sha256 {digests[0]} ({same}" + (f"; {self.worker.name}, every worker prints its own)"
                                                            if self.worker else ")"))
        if ctrl_c.pressed:
            print("Ctrl-C while saving: it waited until the files above were complete", file=sys.stderr)
            history.final["interrupted"] = True  # for the exit status (the file says how training ended)
        print(f"max test accuracy: {history.max_test_accuracy:.4f}")
        print(f"final test accuracy: {history.test['accuracy'][-1]:.4f}", flush=True)
        self.dashboard.finish(wait=not history.final["interrupted"])  # a window stays until the user closes it


def _draws_random_numbers(model):
    """Does model(X, training=True) draw random numbers (dropout)? From its graph."""
    graph = tf.function(model).get_concrete_function(tf.TensorSpec([None, 28, 28, 1], tf.float32),
                                                     training=True).graph
    return any("Random" in op.type or op.type.startswith("Rng") for op in graph.get_operations())


def _accuracy_loss_predictions(Ylogits, labels):
    predictions = tf.argmax(Ylogits, axis=1, output_type=tf.int32)
    correct = tf.equal(predictions, tf.argmax(labels, axis=1, output_type=tf.int32))
    loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=labels, logits=Ylogits))
    return tf.reduce_mean(tf.cast(correct, tf.float32)), loss, predictions


def _flat(variables):
    return np.concatenate([v.numpy().ravel() for v in variables]) if variables else np.zeros(0)


def _lesson_variables(traced):
    """The lesson's variables, from a traced model's. With a tf.distribute strategy (lesson
    6.0), a trace holds each mirrored variable's local copy: the mirrored variables
    themselves (for the optimizer, the checkpoints) are taken from the lesson's globals,
    in the order the lesson made them, the same in every worker."""
    main = sys.modules.get("__main__")
    mirrored = {}  # a copy's id -> its mirrored variable, in the lesson's order
    for value in (vars(main).values() if main else ()):
        for v in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(v, tf.Variable) and hasattr(v, "values"):  # a distributed variable: its copies
                mirrored.update({id(copy): v for copy in v.values if id(copy) not in mirrored})
    if not mirrored:
        return list(traced)
    wanted, ordered = {id(v) for v in traced}, {}
    for copy_id, v in mirrored.items():
        if copy_id in wanted:
            ordered.setdefault(id(v), v)
    return list(ordered.values()) + [v for v in traced if id(v) not in mirrored]


def _variable_names(variables):
    """Name variables after the lesson's globals (W1, B1, BN1.moving_mean...)."""
    main = sys.modules.get("__main__")
    by_id = {}
    for key, value in (vars(main).items() if main else ()):
        by_id[id(value)] = key
        if isinstance(value, tf.Module):  # e.g. a BatchNorm: its moving averages
            by_id.update({id(v): f"{key}.{attr}" for attr, v in vars(value).items() if isinstance(v, tf.Variable)})
    return {v.ref(): by_id.get(id(v), v.name.split(":")[0]) for v in variables}


class _TensorBoard:
    """TensorBoard logs of one run, in their own sub-folder of --logdir: scalars, weight
    histograms and a picture of the misrecognised test digits (every 1,000 steps)."""

    def __init__(self, args, variables, names):
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.folder = Path(args.logdir) / f"{args.name}-{stamp}"
        self.writer = tf.summary.create_file_writer(str(self.folder))
        self.variables, self.names = variables, names

    def train(self, i, accuracy, loss, learning_rate):
        with self.writer.as_default(step=i):
            tf.summary.scalar("train/accuracy", accuracy)
            tf.summary.scalar("train/loss", loss)
            tf.summary.scalar("learning_rate", learning_rate)

    def test(self, i, accuracy, loss, images, digits, predictions, final=False):
        with self.writer.as_default(step=i):
            tf.summary.scalar("test/accuracy", accuracy)
            tf.summary.scalar("test/loss", loss)
            for v in self.variables:
                tf.summary.histogram(self.names[v.ref()], v)
            if i % 1000 == 0 or final:
                wrong = predictions != digits
                grid = tensorflowvisu.digit_grid(images[wrong], digits[wrong], predictions[wrong], count=100, lines=10)
                tf.summary.image("misrecognised test digits", grid[None], max_outputs=1)

    def close(self):
        self.writer.close()


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


# ------------------------------------------------------------------------ notebooks


def _in_notebook():
    """True in a Jupyter kernel (JupyterLab, Notebook, VS Code, Colab)."""
    shell = sys.modules.get("IPython") and sys.modules["IPython"].get_ipython()
    return bool(shell) and hasattr(shell, "kernel")


def run(lesson, *, share=None, **flags):
    """Run a lesson in this Python process, e.g. from a notebook; returns its History.

        history = lab.run("mnist_2.1_five_layers_relu.py", steps=2000)
        history = lab.run("2.1", share=0.2, seed=1)

    lesson: a lesson's file name (found next to lab.py), path, or number ("2.1").
    share: run this share of the lesson's own number of steps (e.g. 0.2 on slow laptops).
    flags: the lesson's command-line flags, with _ for -: steps=2000 is --steps 2000,
    no_vis=True is --no-vis (False or None leaves a flag out). In a notebook the dashboard
    is a picture under the cell. Raises LabError when the lesson stops with an error;
    an interrupted run (the notebook's stop button) returns what it measured.
    """
    global _last_history, _share_of_steps
    path = _lesson_path(lesson)
    argv = [str(path)]
    for key, value in flags.items():
        flag = "--" + key.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif value is not False and value is not None:  # (0 == False: 0 must stay a value)
            argv += [flag, str(value)]
    saved_argv, sys.argv = sys.argv, argv
    _last_history, _share_of_steps = None, share
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as stop:
        if stop.code not in (None, 0, 130):
            raise LabError(str(stop.code).removeprefix("error: ") if isinstance(stop.code, str)
                           else f"{path.name} stopped with exit status {stop.code}") from None
    finally:
        sys.argv, _share_of_steps = saved_argv, None
    return _last_history


def _lesson_path(lesson):
    lesson = str(lesson)
    for candidate in (Path(lesson), ROOT / lesson):
        if candidate.is_file():
            return candidate.resolve()
    numbered = sorted(ROOT.glob(f"mnist_{lesson}_*.py"))
    if len(numbered) == 1:
        return numbered[0]
    lessons = ", ".join(p.name for p in sorted(ROOT.glob("mnist_*.py")))
    raise LabError(f"no lesson {lesson!r}: choose one of {lessons}")
