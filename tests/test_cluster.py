"""cluster.py: lesson 6.0's data parallelism, with real processes, no mocks.

On one machine the replicas are devices of one process: one uninterrupted two-replica
run (module fixture) is the reference; its copies end identical, nothing of it listens on
the network, and a run killed mid-way then resumed ends with the same weights. A cluster
of machines (TF_CONFIG) is played by worker processes on loopback addresses.
"""
import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from conftest import FINAL_LINES, ROOT, child_env

pytestmark = pytest.mark.slow  # lesson processes, all of them

LESSON = str(ROOT / "mnist_6.0_distributed.py")
STEPS, EVERY = 200, 100  # a checkpoint at step 100
WEIGHTS = re.compile(r"weights sha256 ([0-9a-f]{16}) \((.*)\)")


def command(folder, *extra):
    return [sys.executable, LESSON, "--replicas", "2", "--no-vis", "--steps", str(STEPS),
            "--checkpoint-every", str(EVERY), "--history", str(folder / "run.json"),
            "--save-model", str(folder / "model"), "--checkpoint-dir", str(folder / "checkpoints"),
            *extra]


def environment(mnist_dir, **extra):
    """A user's shell: no display, TensorFlow's logging as the lab sets it."""
    return child_env(mnist_dir, TF_CPP_MIN_LOG_LEVEL=None, **extra)


@pytest.fixture
def start():
    """Popen, remembered: every process a test starts is gone when it ends (killed if need
    be, which fails the test). Only these: never processes found by name."""
    started = []

    def popen(args, **kwargs):
        started.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, **kwargs))
        return started[-1]

    yield popen
    left = [p for p in started if p.poll() is None]
    for p in left:
        p.kill()
        p.communicate()
    assert not left, "processes were left running"


def listening(pid):
    """The local addresses that process `pid` and its children listen on."""
    process = psutil.Process(pid)
    return [c.laddr.ip for p in [process, *process.children(recursive=True)]
            for c in p.net_connections(kind="inet") if c.status == psutil.CONN_LISTEN]


def train_until(process, step):
    """Read the process's output until it has tested at `step` or later; the lines read."""
    lines = []
    for line in process.stdout:
        lines.append(line)
        found = re.match(r"step +(\d+) ", line)
        if found and int(found.group(1)) >= step:
            return lines
    raise AssertionError(f"the run ended before step {step}: " + "".join(lines[-5:]))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, mnist_dir):
    """An uninterrupted run of two replicas: (folder, stdout, stderr, returncode, the
    addresses it listened on while training)."""
    folder = tmp_path_factory.mktemp("reference")
    process = subprocess.Popen(command(folder), env=environment(mnist_dir), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, cwd=folder)
    try:
        lines = train_until(process, 100)
        addresses = listening(process.pid)
        out, err = process.communicate(timeout=300)
    finally:
        process.kill()
    return folder, "".join(lines) + out, err, process.returncode, addresses


def test_two_replicas_train_one_model_and_end_with_identical_copies(reference):
    folder, out, err, status, _ = reference
    assert status == 0, err
    assert err == ""
    assert FINAL_LINES.search(out), out[-500:]
    assert "; 2 replicas of 50 images each," in out.splitlines()[0]
    assert WEIGHTS.search(out).group(2) == "the same for every replica's copy"
    history = json.loads((folder / "run.json").read_text())
    assert history["final"]["steps"] == STEPS and history["final"]["max_test_accuracy"] > 0.95
    assert (folder / "model" / "saved_model.pb").exists()
    assert not (folder / "checkpoints").exists(), "a complete run leaves nothing to resume"


def test_replicas_on_one_machine_open_nothing_to_the_network(reference):
    """TensorFlow's distributed server has no authentication: on one machine, nothing of
    the run may listen on an address another machine can reach (it listens on none)."""
    *_, addresses = reference
    exposed = [a for a in addresses if not ipaddress.ip_address(a).is_loopback]
    assert exposed == [], f"listening on {exposed}"


def test_a_killed_run_resumes_from_its_checkpoint_with_the_same_result(
        reference, mnist_dir, tmp_path, start):
    folder, uninterrupted, *_ = reference
    env = environment(mnist_dir)
    run = start(command(tmp_path), env=env, cwd=tmp_path)
    deadline = time.monotonic() + 120
    # A checkpoint counts once TensorFlow's record of the latest one names it (written
    # after its files): a kill between the two left nothing to resume, and this test flaky.
    state = tmp_path / "checkpoints" / "checkpoint"
    while f'"ckpt-{EVERY}"' not in (state.read_text() if state.exists() else ""):
        assert time.monotonic() < deadline and run.poll() is None, "no checkpoint"
        time.sleep(0.2)
    run.kill()  # a crash: nothing is saved but the checkpoint
    run.communicate()

    resumed = subprocess.run(command(tmp_path), env=env, capture_output=True, text=True,
                             timeout=300, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from step {EVERY} " in resumed.stdout
    assert WEIGHTS.search(resumed.stdout).group(1) == WEIGHTS.search(uninterrupted).group(1), \
        "the same result as an uninterrupted run"
    history = json.loads((tmp_path / "run.json").read_text())
    reference_history = json.loads((folder / "run.json").read_text())
    assert history["test"]["accuracy"] == reference_history["test"]["accuracy"], \
        "the curves of the whole run"
    assert history["config"]["resumed_from"] == [EVERY]


def test_replicas_must_split_the_batch_evenly(run_script):
    result = run_script("mnist_6.0_distributed.py", "--replicas", "3")
    assert result.returncode == 1
    assert result.stderr.strip().endswith("error: --batch-size 100 does not split evenly over "
                                          "3 replicas (see mnist_6.0_distributed.py -h)")


# ---------------------------------------------------------------- a cluster (TF_CONFIG)


def free_addresses(count):
    sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
    addresses = [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    for s in sockets:
        s.close()
    return addresses


def worker_env(mnist_dir, addresses, k):
    return environment(mnist_dir, TF_CONFIG=json.dumps(
        {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": k}}))


def test_with_tf_config_every_worker_reports_a_port_in_use(mnist_dir, tmp_path, start):
    """Two workers started by hand (TF_CONFIG), worker 0's port taken: worker 0 says so at
    once; worker 1, waiting for it, says what it waits for and stops at its join timeout."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        addresses = [f"127.0.0.1:{port}", *free_addresses(1)]
        processes = [start([sys.executable, LESSON, "--no-vis", "--join-timeout", "5",
                            "--history", str(tmp_path / f"run{k}.json")],
                           env=worker_env(mnist_dir, addresses, k))
                     for k in (0, 1)]
        started = time.monotonic()
        results = [p.communicate(timeout=60) + (p.returncode, time.monotonic() - started)
                   for p in processes]
    (out0, err0, status0, seconds0), (out1, err1, status1, seconds1) = results
    assert status0 == 1 and seconds0 < 5
    assert err0 == (f"error: worker 0 ({addresses[0]}): port {port} is in use "
                    "(another program, or a worker still running); "
                    "stop it, or choose other ports in TF_CONFIG\n")
    assert out1.startswith(f"worker 1 of 2 ({addresses[1]}): joining worker 0 ({addresses[0]})")
    assert status1 != 0 and seconds1 < 20
    warning, error = err1.splitlines()
    assert warning.startswith(f"warning: worker 1 listens on port {addresses[1].split(':')[1]} "
                              "of every network interface while it trains, without authentication")
    assert error == (f"error: worker 1: the other workers did not join within 5 s "
                     f"(worker 0 ({addresses[0]})): "
                     "are they started, with the same TF_CONFIG cluster, and are their ports free?")


def test_with_tf_config_a_frozen_worker_stops_the_others_with_one_line(mnist_dir, tmp_path, start):
    """Two workers started by hand (TF_CONFIG): they listen on every interface (so the first
    line warns), and worker 1 frozen (SIGSTOP) mid-run makes worker 0 say which, and exit."""
    addresses = free_addresses(2)
    chief, frozen = [start([sys.executable, LESSON, "--no-vis", "--steps", "5000",
                            "--history", str(tmp_path / f"run{k}.json"),
                            "--save-model", str(tmp_path / f"model{k}"),
                            "--checkpoint-dir", str(tmp_path / "checkpoints")],
                           env=worker_env(mnist_dir, addresses, k))
                     for k in (0, 1)]
    train_until(chief, 200)
    exposed = [a for a in listening(chief.pid) if not ipaddress.ip_address(a).is_loopback]
    assert exposed, "TensorFlow's server listens on every interface: the reason for the warning"
    os.kill(frozen.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    _, err = chief.communicate(timeout=60)
    assert time.monotonic() - stopped < 30
    assert chief.returncode == 1
    warning, error = err.splitlines()
    assert warning.startswith("warning: worker 0 listens on port ")
    assert error == "error: worker 1 stopped answering (UnavailableError)"
    frozen.kill()  # a frozen process obeys no other signal
    frozen.communicate()
