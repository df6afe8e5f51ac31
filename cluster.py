"""cluster.py: the plumbing of training on several workers (lesson 6.0), written once.

A lesson that trains on several workers (mnist_6.0_distributed.py) shows the strategy,
its scope and strategy.run; this module does the rest:

- Launching (`launch`): `--workers N` without TF_CONFIG starts N worker processes of the
  same lesson on this machine, on loopback ports (free ones, or --port P, P+1, ...), each
  with its TF_CONFIG, and supervises them. Worker 0, the chief, shows the dashboard and
  its output passes through; the others write theirs into a log file next to the
  history. A worker that dies or freezes stops the whole run at once, with one line that
  names it; Ctrl-C goes to the chief, which saves and reports, as any lesson does.
- Being a worker (`Worker`): TF_CONFIG says where this process's place is. Its port is
  checked before TensorFlow starts (in use: said at once); if the other workers have not
  joined within --join-timeout seconds, it says which ones it waits for and stops.
- Checkpoints (`Checkpoints`): every --checkpoint-every steps, every worker saves the
  variables, the optimizer and the step (the chief into --checkpoint-dir, the others into
  a temporary folder, as TensorFlow's multi-worker training requires); running the same
  command again resumes from the last one, with the same result as an uninterrupted run.
- Ending (`exit`): a worker process leaves at once after its report. TensorFlow's cluster
  would take another 20 to 60 seconds to shut down.

TF_CONFIG, for one worker of a cluster on two machines (JSON; README has the details):
    {"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]}, "task": {"type": "worker", "index": 0}}
"""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

class ClusterError(Exception):
    """A problem with the workers that the user can fix; one line."""


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
                           '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": N}}') from None
    if set(config["cluster"]) != {"worker"} or task.get("type") != "worker":
        raise ClusterError("TF_CONFIG: only a list of 'worker' tasks is supported here (worker 0 is the chief)")
    if not 0 <= index < len(workers):
        raise ClusterError(f"TF_CONFIG: task index {index} is not one of the {len(workers)} workers")
    return workers, index


def _split(address):
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def port_problem(address):
    """Why this worker's address cannot be listened on here (its port in use...), or None."""
    host, port = _split(address)
    try:
        with socket.create_server(("", port)):  # TensorFlow listens on every interface
            return None
    except OSError as error:
        if error.errno in (98, 48, 10048):  # EADDRINUSE on Linux, macOS, Windows
            return f"port {port} is in use (another program, or a worker still running)"
        return f"cannot listen on port {port} ({error.strerror or error})"


def free_ports(count):
    """`count` loopback ports that are free now."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def task_of(message):
    """The worker a TensorFlow error message is about ('/job:worker/replica:0/task:1'), or None."""
    found = re.findall(r"/job:worker/replica:\d+/task:(\d+)", message) or re.findall(r"task[ _:]?(\d+)", message)
    return int(found[-1]) if found else None


# ---------------------------------------------------------------------- a worker


class Worker:
    """This process's place in the cluster: from TF_CONFIG, or alone (index 0 of 1)."""

    def __init__(self, join_timeout):
        config = tf_config()
        self.addresses, self.index = config if config else ([], 0)
        self.count = max(1, len(self.addresses))
        self.chief = self.index == 0
        self.join_timeout = join_timeout
        self._joined = None  # the pipe that releases the join watch

    @property
    def name(self):
        return f"worker {self.index}" + (" (the chief)" if self.chief and self.count > 1 else "")

    def check_port(self):
        """Before TensorFlow starts: this worker's own port must be free."""
        if self.addresses:
            problem = port_problem(self.addresses[self.index])
            if problem:
                raise ClusterError(f"worker {self.index} ({self.addresses[self.index]}): {problem}; "
                                   "stop it, or choose other ports (--port, or TF_CONFIG)")

    def watch_joining(self):
        """Say what this worker waits for; stop it if the others have not joined in time.

        The watch is a separate little process: while the strategy connects the workers,
        TensorFlow holds Python's lock, so no thread of this process could speak. It is
        released through a pipe (joined), and ends with this process too.
        """
        if self.count == 1:
            return
        others = ", ".join(f"worker {k} ({a})" for k, a in enumerate(self.addresses) if k != self.index)
        print(f"worker {self.index} of {self.count} ({self.addresses[self.index]}): joining {others}", flush=True)
        message = (f"error: worker {self.index}: the other workers did not join within {self.join_timeout:g} s "
                   f"({others}): are they started, with the same TF_CONFIG cluster, and are their ports free?")
        read_end, self._joined = os.pipe()
        subprocess.Popen([sys.executable, "-c", _WATCH, str(read_end), str(os.getpid()), str(self.join_timeout), message],
                         pass_fds=[read_end])
        os.close(read_end)

    def joined(self):
        """The cluster is up: release the join watch."""
        if self._joined is not None:
            os.close(self._joined)
            self._joined = None

    def exit(self, status):
        """Leave now, after the report: a cluster's shutdown takes long and adds nothing."""
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)


# The join watch: waits for the pipe to close (joined, or the worker ended), else says
# why the worker stops and stops it.
_WATCH = """import os, select, signal, sys
pipe, worker, seconds, message = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
if not select.select([pipe], [], [], seconds)[0]:
    print(message, file=sys.stderr, flush=True)
    os.kill(worker, signal.SIGKILL)  # it may be deaf to SIGTERM while it waits inside TensorFlow
"""


# ---------------------------------------------------------------------- checkpoints


class Checkpoints:
    """Every worker's variables, optimizer and step, saved every few steps; restored on a rerun.

    The chief writes into `folder`; the other workers into a temporary folder of their
    own, deleted after each save (in TensorFlow's multi-worker training every worker must
    save). The chief also keeps the run's history there, so that a resumed run goes on
    with the curves of the interrupted one.
    """

    def __init__(self, tf, folder, worker, **objects):
        self.tf, self.folder, self.worker = tf, Path(folder), worker
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.checkpoint = tf.train.Checkpoint(step=self.step, **objects)
        self.mine = self.folder if worker.chief else self.folder / f".worker-{worker.index}"
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
        if self.worker.chief:
            history.save(self.history_path)
        else:
            shutil.rmtree(self.mine, ignore_errors=True)

    def remove(self):
        """After a complete run: nothing left to resume."""
        if self.worker.chief:
            shutil.rmtree(self.folder, ignore_errors=True)


# ---------------------------------------------------------------------- launching


def launch(args, argv, script):
    """Run the lesson on args.workers worker processes on this machine and supervise them.

    Returns the exit status for the whole run: the chief's, or 1 if a worker failed.
    """
    count = args.workers
    ports = [args.port + k for k in range(count)] if args.port else free_ports(count)
    addresses = [f"127.0.0.1:{port}" for port in ports]
    for k, address in enumerate(addresses):  # before anything starts: a port in use, at once
        problem = port_problem(address)
        if problem:
            raise ClusterError(f"worker {k} ({address}): {problem}; stop it, or choose other ports (--port P)")
    logs = [Path(args.history).with_name(f"{args.name}.worker-{k}.log") for k in range(count)]
    supervisor = _Supervisor(script, argv, addresses, logs)
    workers = ", ".join(f"worker {k} pid {p.pid} on {a}" for (k, p, _), a in zip(supervisor.workers, addresses))
    print(f"{args.name}: {count} workers on this machine ({workers}); the chief's (worker 0's) output "
          f"follows, the others' is in {logs[1].parent}/{args.name}.worker-N.log", flush=True)
    return supervisor.run()


class _Supervisor:
    """Starts the workers, passes the chief's output through, stops them all when one fails."""

    def __init__(self, script, argv, addresses, logs):
        self.workers = []
        self.failure = None  # the one line that says what went wrong
        self.errors = []  # the chief's error lines (it prints its own problems as 'error: ...')
        for k, address in enumerate(addresses):
            env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CONFIG=json.dumps(
                {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": k}}))
            if k == 0:
                output = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            else:
                logs[k].parent.mkdir(parents=True, exist_ok=True)
                log = open(logs[k], "w")
                output = dict(stdout=log, stderr=subprocess.STDOUT)
            # Their own session: the terminal's Ctrl-C reaches the supervisor only, which
            # passes it to the chief. And they die with the supervisor (Linux).
            process = subprocess.Popen([sys.executable, str(script), *argv], env=env, start_new_session=True,
                                       preexec_fn=_die_with_parent, **output)
            if k > 0:
                log.close()
            self.workers.append((k, process, logs[k]))
        chief = self.workers[0][1]
        self.forwarders = [threading.Thread(target=self._forward, args=(chief.stdout, sys.stdout), daemon=True),
                           threading.Thread(target=self._forward, args=(chief.stderr, sys.stderr), daemon=True)]
        for thread in self.forwarders:
            thread.start()

    def _forward(self, source, target):
        for line in iter(source.readline, b""):
            text = line.decode(errors="replace")
            if target is sys.stderr and text.startswith("error: "):
                self.errors.append(text.strip())
                continue  # said once, in the supervisor's own line
            target.write(text)
            target.flush()

    def run(self):
        previous = signal.signal(signal.SIGINT, lambda *_: self._interrupt())
        try:
            while True:
                done = self._check()
                if done is not None:
                    return done
                time.sleep(0.2)
        finally:
            signal.signal(signal.SIGINT, previous)
            self._stop_all()
            for thread in self.forwarders:
                thread.join(5)
            if self.failure:
                print(self.failure, file=sys.stderr, flush=True)

    def _interrupt(self):
        chief = self.workers[0][1]
        if chief.poll() is None:
            chief.send_signal(signal.SIGINT)  # the chief stops, saves and reports

    def _check(self):
        """None while the run goes on; else its exit status."""
        statuses = [(k, process, log, process.poll()) for k, process, log in self.workers]
        # The root cause first: a worker killed or frozen (the others then fail because of it).
        for k, process, log, status in statuses:
            if status is not None and status < 0:
                self.failure = f"error: worker {k} (pid {process.pid}) was killed ({signal.Signals(-status).name}): " \
                               "the run was stopped"
                return 1
            if status is None and _stopped(process.pid):
                self.failure = f"error: worker {k} (pid {process.pid}) is frozen (stopped by a signal): the run was stopped"
                return 1
        chief_status = statuses[0][3]
        if chief_status in (0, 130):  # the chief has finished (or was interrupted) and reported
            return chief_status
        failed = [(k, process, self._what(k, status, log)) for k, process, log, status in statuses
                  if status not in (None, 0)]
        if failed:  # the one that failed by itself, not because another stopped answering
            k, process, what = next((f for f in failed if "stopped answering" not in f[2]), failed[0])
            self.failure = f"error: worker {k} (pid {process.pid}) {what}: the run was stopped"
            return 1
        return None

    def _what(self, k, status, log):
        """What happened to worker k, in a few words."""
        lines = self.errors if k == 0 else [line for line in _tail(log) if line.startswith("error: ")]
        if lines:
            return "stopped: " + re.sub(r"^error: (worker \d+: )?", "", lines[-1])
        return f"stopped with exit status {status}" + (f" (its output: {log})" if k else "")

    def _stop_all(self):
        """Stop every worker still running, with SIGKILL: TensorFlow's multi-worker runtime
        takes SIGTERM as a notice of preemption and carries on (and a frozen process obeys
        nothing else). A worker has nothing left to save: the checkpoints are on disk."""
        running = [p for _, p, _ in self.workers if p.poll() is None]
        for p in running:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
        for p in running:
            p.wait()


def _die_with_parent():
    """In the child, before it runs the lesson: SIGKILL it if the supervisor dies (Linux)."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _stopped(pid):
    """True if the process is stopped (SIGSTOP, Ctrl-Z): frozen. Linux only."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state in ("T", "t")


def _tail(path, lines=20):
    try:
        return Path(path).read_text(errors="replace").strip().splitlines()[-lines:]
    except OSError:
        return []
