"""cluster.py: the plumbing of lesson 6.0's data parallelism, written once.

The lesson (mnist_6.0_distributed.py) shows the strategy, its scope and strategy.run;
this module does the rest, through lab's hooks: its flags (`add_flags`, `prepare`),
and `Hooks`, which lab.train calls at a few points of a run: set-up (scope, resume),
around the loop (watch), after each measurement, at the end (finish, leave). For the
other lessons, `NoHooks` does nothing.

- Replicas on one machine (`replica_devices`): --replicas N splits this process's CPU
  into N logical devices (or takes N GPUs), one per replica of a MirroredStrategy. The
  replicas talk in memory: nothing listens on the network.
- A worker of a cluster of machines (`Worker`, when TF_CONFIG is set): its port is
  checked before TensorFlow starts (in use: said at once); it warns that TensorFlow's
  server listens on every network interface, without authentication; if the other
  workers have not joined within --join-timeout seconds, it says which ones it waits for
  and stops; when one stops answering, `failure` names it in one line.
- Checkpoints (`Checkpoints`): every --checkpoint-every steps, the variables, the
  optimizer and the step are saved (in a cluster by every worker: the chief into
  --checkpoint-dir, the others into a temporary folder, as TensorFlow requires); running
  the same command again resumes from the last one, with the result of an uninterrupted run.

TF_CONFIG, for one worker of a cluster on two machines (JSON; README has the details):
    {"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]},
     "task": {"type": "worker", "index": 0}}
"""

import argparse
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import plumbing
from history import MEASURE_EVERY, History
from plumbing import RUNS, UserError

CHECKPOINT_EVERY = 500  # steps between two checkpoints


# ---------------------------------------------------------------------- lab's hooks


def add_flags(parser, name):
    """Lesson 6.0's own flags."""
    add = parser.add_argument
    add("--replicas", type=int, metavar="N",
        help="train N replicas of the model in this process, one per device (default: 2); with "
             "TF_CONFIG set, each worker is one replica")
    add("--workers", type=int, dest="replicas", help=argparse.SUPPRESS)  # its name before replicas
    add("--checkpoint-dir", metavar="DIR",
        help=f"where to save checkpoints; running the same command again resumes from the last one "
             f"(default: runs/{name}-checkpoints/)")
    add("--checkpoint-every", type=int, default=CHECKPOINT_EVERY, metavar="N",
        help=f"save a checkpoint every N steps (default: {CHECKPOINT_EVERY})")
    add("--join-timeout", type=int, default=120, metavar="SECONDS",
        help="TF_CONFIG: stop if the other workers have not joined after this long (default: 120)")


def prepare(args, parser):
    """Check lesson 6.0's flags before TensorFlow loads. Sets args.cluster (TF_CONFIG is
    set), args.worker (then: this process's place), args.saves (False for a worker of a
    cluster that is not the chief), args.replicas; returns what plumbing.load_tensorflow
    needs: (before_start, start)."""
    if "tensorflow" in sys.modules:  # e.g. a notebook that ran other lessons
        raise UserError(f"{args.name}.py needs a process of its own (TensorFlow already runs in "
                        f"this one, and the replicas' devices must be made before it starts): "
                        f"run it from a terminal, or in a notebook as "
                        f"!{{sys.executable}} {args.name}.py")
    for flag in ("replicas", "checkpoint_every", "join_timeout"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')}: must be at least 1, "
                         f"got {getattr(args, flag)}")
    args.checkpoint_dir = args.checkpoint_dir or str(RUNS / f"{args.name}-checkpoints")
    every = MEASURE_EVERY
    args.checkpoint_every = -(-args.checkpoint_every // every) * every  # at a measurement
    config = tf_config()
    if config and args.replicas is not None:
        parser.error(f"--replicas {args.replicas}: with TF_CONFIG, each worker is one replica "
                     f"(this cluster has {len(config[0])}); leave --replicas out")
    args.replicas = len(config[0]) if config else args.replicas or 2
    if args.batch_size % args.replicas:
        parser.error(f"--batch-size {args.batch_size} does not split evenly over "
                     f"{args.replicas} replicas")
    args.cluster, args.worker, args.saves = bool(config), None, True
    if not config:
        def make_devices(tf):
            args.devices = replica_devices(tf, args.replicas)

        return make_devices, True
    args.worker = Worker(args.join_timeout)
    if not args.worker.chief:  # only the chief shows the dashboard, reports and saves
        args.saves, args.no_vis = False, True
        args.save_png = args.save_movie = args.logdir = None
    args.worker.check_port()
    args.worker.warn()
    args.worker.watch_joining()
    return None, False


class NoHooks:
    """What lab.train does for one model on one device: nothing more."""

    saves = True  # this process reports and saves

    def scope(self):
        return contextlib.nullcontext()

    def describe(self):
        return ""

    def resume(self, training):
        return 0  # steps already done

    def watch(self):
        return contextlib.nullcontext()

    def after_measurement(self, step, training):
        pass

    def finish(self, training, interrupted):
        pass

    def leave(self, interrupted):
        pass


class Hooks(NoHooks):
    """Lesson 6.0 in lab.train: the strategy's scope, checkpoints and resuming, the
    replicas' identical weights, and the workers of a cluster."""

    def __init__(self, args, strategy):
        self.args, self.strategy, self.worker = args, strategy, args.worker
        self.saves = args.saves
        self.checkpoints = None
        if self.worker:
            self.worker.joined()  # the lesson made its strategy and variables: the cluster is up

    def scope(self):
        return self.strategy.scope()

    def describe(self):
        replicas = self.strategy.num_replicas_in_sync
        text = f"; {replicas} replicas of {self.args.batch_size // replicas} images each"
        text = text if replicas > 1 else ""
        if self.worker:
            text += f", {self.worker.name} of {self.worker.count} workers"
        return text

    def resume(self, training):
        """After an interrupted run, carry on from the last checkpoint: its variables and
        optimizer, its step, the same batches next, its history so far."""
        tf = plumbing.load_tensorflow()  # (loaded by now: this only returns it)
        self.checkpoints = Checkpoints(tf, self.args.checkpoint_dir, self.saves,
                                       variables=training.variables, optimizer=training.optimizer)
        step = self.checkpoints.restore()
        if self.worker:  # every worker must carry on from the same step
            def every_workers_step():
                return self.strategy.gather(self.strategy.run(lambda: tf.constant([step])), 0)

            gather = tf.function(every_workers_step, autograph=False)
            found = gather().numpy()
            if found.min() != found.max():
                raise UserError(f"the workers found different checkpoints (steps {found.min()} "
                                f"and {found.max()}) in {self.checkpoints.folder}: on several "
                                "machines, --checkpoint-dir must be a folder that every worker "
                                "sees (shared storage)")
        if step:
            for _ in range(step):  # skip the batches done: the next ones are as without a stop
                training.mnist.train.next_batch_indices(self.args.batch_size)
            if self.saves and self.checkpoints.history_path.exists():
                earlier = History.load(self.checkpoints.history_path)
                training.dashboard.continue_from(earlier, step)
            print(f"resumed from step {step} (the checkpoint in {self.checkpoints.folder})",
                  flush=True)
        return step

    def after_measurement(self, step, training):
        if 0 < step < self.args.steps and step % self.args.checkpoint_every == 0:
            self.checkpoints.save(step, training.history)

    @contextlib.contextmanager
    def watch(self):
        """Around the training loop: a TensorFlow error that stopped a worker of a cluster
        becomes one line that says which worker failed."""
        tf = plumbing.load_tensorflow()
        try:
            yield
        except tf.errors.OpError as error:
            if not self.worker:
                raise
            raise UserError(self.worker.failure(error)) from None

    def finish(self, training, interrupted):
        if not interrupted:
            self.checkpoints.remove()  # the run is complete: nothing to resume
        digests = training.weights_digests()
        if not self.saves:
            print(f"{self.worker.name}: trained {training.done} steps; weights sha256 {digests[0]}",
                  flush=True)
        elif not interrupted:  # are the copies still identical?
            same = ("the same for every replica's copy" if len(set(digests)) == 1
                    else f"COPIES DIFFER: {digests}")
            print(f"weights sha256 {digests[0]} ({same}"
                  + (f"; {self.worker.name}, every worker prints its own)" if self.worker else ")"))

    def leave(self, interrupted):
        """A worker of a cluster leaves at once (TensorFlow's own shutdown takes long)."""
        if self.worker:
            self.worker.exit(130 if interrupted else 0)


# ---------------------------------------------------------------------- one machine


def replica_devices(tf, replicas):
    """The devices of `replicas` replicas in this process, for tf.distribute.MirroredStrategy:
    the first GPUs if there are enough, else the CPU split into that many logical devices.
    Must run before TensorFlow's runtime starts (lab.parse_args calls it)."""
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) >= replicas:
        return [f"/gpu:{k}" for k in range(replicas)]
    cpu = tf.config.list_physical_devices("CPU")[0]
    devices = [tf.config.LogicalDeviceConfiguration() for _ in range(replicas)]
    tf.config.set_logical_device_configuration(cpu, devices)
    return [f"/cpu:{k}" for k in range(replicas)]


# ---------------------------------------------------------------------- TF_CONFIG


def tf_config():
    """(worker addresses, this process's index) from TF_CONFIG, or None without it."""
    text = os.environ.get("TF_CONFIG")
    if not text:
        return None
    try:
        config = json.loads(text)
        workers = list(config["cluster"]["worker"])
        task = config["task"]
        index = int(task["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(f"TF_CONFIG is not valid ({type(error).__name__}: {error}); expected "
                           '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", '
                           '"index": N}}') from None
    if set(config["cluster"]) != {"worker"} or task.get("type") != "worker":
        raise UserError("TF_CONFIG: only a list of 'worker' tasks is supported here "
                           "(worker 0 is the chief)")
    if not 0 <= index < len(workers):
        raise UserError(f"TF_CONFIG: task index {index} is not one of the {len(workers)} workers")
    return workers, index


def _port(address):
    return int(address.rpartition(":")[2])


def port_problem(address):
    """Why this worker's address cannot be listened on here (its port in use...), or None."""
    port = _port(address)
    try:
        with socket.create_server(("", port)):  # TensorFlow listens on every interface
            return None
    except OSError as error:
        if error.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            return f"port {port} is in use (another program, or a worker still running)"
        return f"cannot listen on port {port} ({error.strerror or error})"


def task_of(message):
    """The worker a TensorFlow error message is about ('/job:worker/replica:0/task:1'), or None."""
    found = (re.findall(r"/job:worker/replica:\d+/task:(\d+)", message)
             or re.findall(r"task[ _:]?(\d+)", message))
    return int(found[-1]) if found else None


class Worker:
    """This process's place in a cluster of machines, from TF_CONFIG."""

    def __init__(self, join_timeout):
        self.addresses, self.index = tf_config()
        self.count = len(self.addresses)
        self.chief = self.index == 0
        self.join_timeout = join_timeout
        self._joined = None  # the pipe that releases the join watch

    @property
    def name(self):
        return f"worker {self.index}" + (" (the chief)" if self.chief else "")

    def check_port(self):
        """Before TensorFlow starts: this worker's own port must be free."""
        problem = port_problem(self.addresses[self.index])
        if problem:
            raise UserError(f"worker {self.index} ({self.addresses[self.index]}): {problem}; "
                               "stop it, or choose other ports in TF_CONFIG")

    def warn(self):
        """TensorFlow's distributed runtime has no authentication, and its server listens on
        every network interface (it cannot be told otherwise): say so before it starts."""
        port = _port(self.addresses[self.index])
        print(f"warning: worker {self.index} listens on port {port} of "
              "every network interface while it trains, without authentication: whoever can reach "
              "it can run TensorFlow operations here (read and write your files). Use a cluster "
              "only on a trusted network, or behind a firewall that admits only its workers.",
              file=sys.stderr, flush=True)

    def watch_joining(self):
        """Say what this worker waits for; stop it if the others have not joined in time.

        The watch is a separate little process: while the strategy connects the workers,
        TensorFlow holds Python's lock, so no thread of this process could speak. It reads
        its standard input, a pipe from this process: closed (joined, or this process
        ended), the watch ends.
        """
        others = ", ".join(f"worker {k} ({address})" for k, address in enumerate(self.addresses)
                           if k != self.index)
        print(f"worker {self.index} of {self.count} ({self.addresses[self.index]}): "
              f"joining {others}", flush=True)
        message = (f"error: worker {self.index}: the other workers did not join within "
                   f"{self.join_timeout:g} s ({others}): are they started, with the same TF_CONFIG "
                   "cluster, and are their ports free?")
        self._joined = subprocess.Popen([sys.executable, "-c", _WATCH, str(os.getpid()),
                                         str(self.join_timeout), message], stdin=subprocess.PIPE)

    def joined(self):
        """The cluster is up: release the join watch."""
        if self._joined is not None:
            self._joined.stdin.close()
            self._joined = None

    def failure(self, error):
        """One line for a TensorFlow error that stopped this worker: which worker failed."""
        message = str(error).strip().splitlines()[0] if str(error).strip() else ""
        other = task_of(str(error))
        if other is not None and other != self.index:
            return f"worker {other} stopped answering ({type(error).__name__})"
        return f"the cluster failed ({type(error).__name__}: {message[:200]})"

    def exit(self, status):
        """Leave now, after the report: a cluster's shutdown takes long and adds nothing."""
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


# The join watch: waits for its standard input to close (joined, or the worker ended),
# else says why the worker stops, and stops it (SIGKILL: it may be deaf to SIGTERM while
# inside TensorFlow; Windows has no SIGKILL, its SIGTERM cannot be ignored).
_WATCH = """import os, signal, sys, threading
worker, seconds, message = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
reading = threading.Thread(target=sys.stdin.read, daemon=True)
reading.start()
reading.join(seconds)
if reading.is_alive():
    print(message, file=sys.stderr, flush=True)
    os.kill(worker, getattr(signal, "SIGKILL", signal.SIGTERM))
"""


# ---------------------------------------------------------------------- checkpoints


class Checkpoints:
    """The variables, the optimizer and the step, saved every few steps; restored on a rerun.

    The chief (or the only process) writes into `folder`; in a cluster, the other workers
    write into a private temporary folder, deleted after each save (in TensorFlow's
    multi-worker training every worker must save). The chief also keeps the run's history
    there, so that a resumed run goes on with the curves of the interrupted one.
    """

    def __init__(self, tf, folder, chief=True, **objects):
        self.tf, self.folder, self.chief = tf, Path(folder), chief
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.checkpoint = tf.train.Checkpoint(step=self.step, **objects)
        self.mine = self.folder if chief else Path(tempfile.mkdtemp(prefix="mnist-lab-worker-"))
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(self.mine), max_to_keep=1)
        self.history_path = self.folder / "history.json"

    def restore(self):
        """Restore the latest checkpoint of `folder` (if any); returns its step (0: none)."""
        latest = self.tf.train.latest_checkpoint(str(self.folder))
        if latest:
            self.checkpoint.restore(latest).assert_existing_objects_matched()
        return int(self.step.numpy())

    def save(self, step, history):
        # The history first: a crash between the two writes leaves it ahead of the last
        # checkpoint, and resume cuts it back to that checkpoint's step (the other order
        # could leave a checkpoint with no history of its steps).
        if self.chief:
            history.save(self.history_path)
        self.step.assign(step)
        self.manager.save(checkpoint_number=step)
        if not self.chief:  # nobody reads it: empty it (the folder stays private, made once)
            for path in self.mine.iterdir():
                shutil.rmtree(path) if path.is_dir() else path.unlink()

    def remove(self):
        """After a complete run: nothing left to resume."""
        shutil.rmtree(self.folder if self.chief else self.mine, ignore_errors=True)
