"""cluster.py: the plumbing of lesson 6.0's data parallelism, written once.

The lesson (mnist_6.0_distributed.py) shows the strategy, its scope and strategy.run;
this module does the rest:

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
    {"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]}, "task": {"type": "worker", "index": 0}}
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path


class ClusterError(Exception):
    """A problem with the replicas or workers that the user can fix; one line."""


# ---------------------------------------------------------------------- one machine


def replica_devices(tf, replicas):
    """The devices of `replicas` replicas in this process, for tf.distribute.MirroredStrategy:
    the first GPUs if there are enough, else the CPU split into that many logical devices.
    Must run before TensorFlow's runtime starts (lab.parse_args calls it)."""
    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) >= replicas:
        return [f"/gpu:{k}" for k in range(replicas)]
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
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
        raise ClusterError(f"TF_CONFIG is not valid ({type(error).__name__}: {error}); expected "
                           '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", '
                           '"index": N}}') from None
    if set(config["cluster"]) != {"worker"} or task.get("type") != "worker":
        raise ClusterError("TF_CONFIG: only a list of 'worker' tasks is supported here "
                           "(worker 0 is the chief)")
    if not 0 <= index < len(workers):
        raise ClusterError(f"TF_CONFIG: task index {index} is not one of the {len(workers)} workers")
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
            raise ClusterError(f"worker {self.index} ({self.addresses[self.index]}): {problem}; "
                               "stop it, or choose other ports in TF_CONFIG")

    def warn(self):
        """TensorFlow's distributed runtime has no authentication, and its server listens on
        every network interface (it cannot be told otherwise): say so before it starts."""
        print(f"warning: worker {self.index} listens on port {_port(self.addresses[self.index])} of "
              "every network interface while it trains, without authentication: whoever can reach "
              "it can run TensorFlow operations here (read and write your files). Use a cluster "
              "only on a trusted network, or behind a firewall that admits only its workers.",
              file=sys.stderr, flush=True)

    def watch_joining(self):
        """Say what this worker waits for; stop it if the others have not joined in time.

        The watch is a separate little process: while the strategy connects the workers,
        TensorFlow holds Python's lock, so no thread of this process could speak. It is
        released through a pipe (joined), and ends with this process too.
        """
        others = ", ".join(f"worker {k} ({a})" for k, a in enumerate(self.addresses) if k != self.index)
        print(f"worker {self.index} of {self.count} ({self.addresses[self.index]}): joining {others}",
              flush=True)
        message = (f"error: worker {self.index}: the other workers did not join within "
                   f"{self.join_timeout:g} s ({others}): are they started, with the same TF_CONFIG "
                   "cluster, and are their ports free?")
        read_end, self._joined = os.pipe()
        subprocess.Popen([sys.executable, "-c", _WATCH, str(read_end), str(os.getpid()),
                          str(self.join_timeout), message], pass_fds=[read_end])
        os.close(read_end)

    def joined(self):
        """The cluster is up: release the join watch."""
        if self._joined is not None:
            os.close(self._joined)
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


# The join watch: waits for the pipe to close (joined, or the worker ended), else says
# why the worker stops and stops it (SIGKILL: it may be deaf to SIGTERM inside TensorFlow).
_WATCH = """import os, select, signal, sys
pipe, worker, seconds, message = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
if not select.select([pipe], [], [], seconds)[0]:
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
        self.step.assign(step)
        self.manager.save(checkpoint_number=step)
        if self.chief:
            history.save(self.history_path)
        else:  # nobody reads it: empty it (the folder stays private, made once by mkdtemp)
            for path in self.mine.iterdir():
                shutil.rmtree(path) if path.is_dir() else path.unlink()

    def remove(self):
        """After a complete run: nothing left to resume."""
        shutil.rmtree(self.folder if self.chief else self.mine, ignore_errors=True)
