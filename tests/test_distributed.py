"""Lesson 6.0 on several workers: real processes on loopback ports, no mocks.

One uninterrupted two-worker run (module fixture) is the reference: the workers end
with identical weights, and a run killed mid-way then resumed ends with the same ones.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from conftest import ROOT

LESSON = str(ROOT / "mnist_6.0_distributed.py")
STEPS, EVERY = 400, 200  # a checkpoint at step 200
WEIGHTS = re.compile(r"weights sha256 ([0-9a-f]{16})")
FINAL_LINES = re.compile(r"max test accuracy: (0\.\d{4})\nfinal test accuracy: (0\.\d{4})\n$")


def command(folder, *extra):
    return [sys.executable, LESSON, "--workers", "2", "--no-vis", "--steps", str(STEPS),
            "--checkpoint-every", str(EVERY), "--history", str(folder / "run.json"),
            "--save-model", str(folder / "model"), "--checkpoint-dir", str(folder / "checkpoints"), *extra]


def environment(mnist_dir):
    """A user's shell: no display, TensorFlow's logging as the lab sets it."""
    env = dict(os.environ, MNIST_DATA_DIR=mnist_dir, MPLBACKEND="Agg")
    for name in ("DISPLAY", "TF_CPP_MIN_LOG_LEVEL"):
        env.pop(name, None)
    return env


def lesson_processes():
    """The pids of every process running lesson 6.0 now."""
    found = subprocess.run(["pgrep", "-f", "mnist_6.0_distributed.py"], capture_output=True, text=True).stdout
    return [int(p) for p in found.split()]


@pytest.fixture(autouse=True)
def nothing_left_behind():
    """Every test ends with no worker left running (and starts with none)."""
    assert lesson_processes() == []
    yield
    time.sleep(0.5)
    left = lesson_processes()
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == [], "worker processes were left behind"


@pytest.fixture(scope="module")
def reference(tmp_path_factory, mnist_dir):
    """An uninterrupted run on two workers: (folder, CompletedProcess)."""
    folder = tmp_path_factory.mktemp("reference")
    result = subprocess.run(command(folder), env=environment(mnist_dir), capture_output=True, text=True,
                            timeout=300, cwd=folder)
    return folder, result


def test_two_workers_train_one_model_and_end_with_identical_weights(reference):
    folder, result = reference
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert FINAL_LINES.search(result.stdout), result.stdout[-500:]
    assert "worker 0 (the chief) of 2, 50 images each" in result.stdout
    chief = WEIGHTS.search(result.stdout).group(1)
    log = (folder / "mnist_6.0_distributed.worker-1.log").read_text()
    assert "worker 1 of 2, 50 images each" in log
    assert WEIGHTS.search(log).group(1) == chief, "the mirrored variables stay identical on both workers"
    history = json.loads((folder / "run.json").read_text())
    assert history["final"]["steps"] == STEPS and history["final"]["max_test_accuracy"] > 0.95
    assert (folder / "model" / "saved_model.pb").exists()
    assert not (folder / "checkpoints").exists(), "a complete run leaves nothing to resume"


def test_a_killed_worker_stops_the_run_and_the_same_command_resumes_it(reference, mnist_dir, tmp_path):
    _, uninterrupted = reference
    env = environment(mnist_dir)
    run = subprocess.Popen(command(tmp_path), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           cwd=tmp_path)
    workers = dict(re.findall(r"worker (\d) pid (\d+)", run.stdout.readline()))
    deadline = time.monotonic() + 120
    while not (tmp_path / "checkpoints" / f"ckpt-{EVERY}.index").exists():
        assert time.monotonic() < deadline and run.poll() is None, "no checkpoint"
        time.sleep(0.2)
    os.kill(int(workers["1"]), signal.SIGKILL)
    killed = time.monotonic()
    out, err = run.communicate(timeout=60)
    assert time.monotonic() - killed < 30
    assert run.returncode == 1
    assert err == f"error: worker 1 (pid {workers['1']}) was killed (SIGKILL): the run was stopped\n"
    assert lesson_processes() == [], "the other worker was stopped too"

    resumed = subprocess.run(command(tmp_path), env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed from step {EVERY} " in resumed.stdout
    assert WEIGHTS.search(resumed.stdout).group(1) == WEIGHTS.search(uninterrupted.stdout).group(1), \
        "the same result as an uninterrupted run"
    history = json.loads((tmp_path / "run.json").read_text())
    reference_history = json.loads((reference[0] / "run.json").read_text())
    assert history["test"]["accuracy"] == reference_history["test"]["accuracy"], "the curves of the whole run"
    assert history["config"]["resumed_from"] == [EVERY]


def busy_port():
    """A port that something listens on (closed when the test ends)."""
    server = socket.create_server(("127.0.0.1", 0))
    return server, server.getsockname()[1]


def test_a_port_in_use_is_reported_at_once(mnist_dir, tmp_path):
    server, port = busy_port()
    with server:
        started = time.monotonic()
        result = subprocess.run(command(tmp_path, "--port", str(port)), env=environment(mnist_dir),
                                capture_output=True, text=True, timeout=60, cwd=tmp_path)
        assert time.monotonic() - started < 5, "before TensorFlow starts"
    assert result.returncode == 1
    assert result.stderr == (f"error: worker 0 (127.0.0.1:{port}): port {port} is in use (another program, or a "
                             "worker still running); stop it, or choose other ports (--port P)\n")


def test_with_tf_config_every_worker_reports_a_port_in_use(mnist_dir, tmp_path):
    """Two workers started by hand (TF_CONFIG), worker 0's port taken: worker 0 says so at
    once; worker 1, waiting for it, says what it waits for and stops at its join timeout."""
    server, port = busy_port()
    with server:
        other = socket.socket()
        other.bind(("127.0.0.1", 0))
        addresses = [f"127.0.0.1:{port}", f"127.0.0.1:{other.getsockname()[1]}"]
        other.close()
        processes = []
        for k in (0, 1):
            env = dict(environment(mnist_dir), TF_CONFIG=json.dumps(
                {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": k}}))
            processes.append(subprocess.Popen([sys.executable, LESSON, "--no-vis", "--join-timeout", "5",
                                               "--history", str(tmp_path / f"run{k}.json")],
                                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        started = time.monotonic()
        results = [p.communicate(timeout=60) + (p.returncode, time.monotonic() - started) for p in processes]
    (out0, err0, status0, seconds0), (out1, err1, status1, seconds1) = results
    assert status0 == 1 and seconds0 < 5
    assert err0.startswith(f"error: worker 0 ({addresses[0]}): port {port} is in use")
    assert out1.startswith(f"worker 1 of 2 ({addresses[1]}): joining worker 0 ({addresses[0]})")
    assert status1 != 0 and seconds1 < 20
    assert err1 == (f"error: worker 1: the other workers did not join within 5 s (worker 0 ({addresses[0]})): "
                    "are they started, with the same TF_CONFIG cluster, and are their ports free?\n")


def test_with_tf_config_a_frozen_worker_stops_the_others_with_one_line(mnist_dir, tmp_path):
    """Two workers started by hand (TF_CONFIG), no supervisor: worker 1 frozen (SIGSTOP)
    mid-run. Worker 0 notices by TensorFlow's heartbeat, says which worker, and exits."""
    ports = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        ports.append(s)
    addresses = [f"127.0.0.1:{s.getsockname()[1]}" for s in ports]
    for s in ports:
        s.close()
    processes = []
    for k in (0, 1):
        env = dict(environment(mnist_dir), TF_CONFIG=json.dumps(
            {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": k}}))
        processes.append(subprocess.Popen(
            [sys.executable, LESSON, "--no-vis", "--steps", "5000", "--history", str(tmp_path / f"run{k}.json"),
             "--save-model", str(tmp_path / f"model{k}"), "--checkpoint-dir", str(tmp_path / "checkpoints")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    chief, frozen = processes
    try:
        for line in chief.stdout:  # training has started
            if re.match(r"step +200 ", line):
                break
        os.kill(frozen.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        _, err = chief.communicate(timeout=60)
        assert time.monotonic() - stopped < 30
    finally:
        for p in processes:
            p.kill()
            p.communicate()
    assert chief.returncode == 1
    assert err == "error: worker 1 stopped answering (UnavailableError)\n"
