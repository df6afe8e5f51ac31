"""What a run leaves behind: TensorBoard logs, pictures, movie, history, report."""
import ipaddress
import json
import platform
import re
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import psutil
import pytest
import tensorflow as tf
from PIL import Image

import lab
from conftest import child_env

STEPS = 200


@pytest.mark.slow
def test_one_run_writes_every_requested_output(run_script, tmp_path):
    result = run_script("mnist_1.0_softmax.py", "--no-vis", "--steps", STEPS,
                        "--history", tmp_path / "h.json",
                        "--save-model", tmp_path / "model",
                        "--save-png", tmp_path / "dash.png", "--save-movie", tmp_path / "run.gif",
                        "--logdir", tmp_path / "logs")
    assert result.returncode == 0, result.stderr
    if platform.machine() == "x86_64":  # the engine: oneDNN, also where TensorFlow leaves it off
        assert "; CPU, oneDNN, XLA (" in result.stdout.splitlines()[0]

    # the dashboard picture and the movie, and nothing half-written beside them
    picture = np.asarray(Image.open(tmp_path / "dash.png").convert("L"), dtype=float)
    assert picture.shape == (900, 1600) and picture.std() > 20
    movie = Image.open(tmp_path / "run.gif")
    assert movie.n_frames >= 5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]

    # the report: printed, and stored in the history
    history = json.loads((tmp_path / "h.json").read_text())
    matrix = np.array(history["report"]["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 10000
    assert np.trace(matrix) / 10000 == history["final"]["final_test_accuracy"]
    assert "confusion matrix (rows: true digit, columns: predicted digit)" in result.stdout
    assert "digit  precision  recall" in result.stdout

    # TensorBoard: one sub-folder per run, with scalars, histograms and an image
    runs = list((tmp_path / "logs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("mnist_1.0_softmax-")
    tags = {}
    for event_file in runs[0].glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            for value in event.summary.value:
                tags.setdefault(value.tag, set()).add(value.metadata.plugin_data.plugin_name)
    for scalar in ("train/accuracy", "train/loss", "learning_rate", "test/accuracy", "test/loss"):
        assert tags.get(scalar) == {"scalars"}, scalar
    # named after the lesson's globals
    assert tags.get("W") == {"histograms"} and tags.get("b") == {"histograms"}
    assert tags.get("misread test digits") == {"images"}


@pytest.mark.slow
def test_tensorboard_shows_the_logs_to_this_machine_only(tmp_path):
    """README says TensorBoard serves on localhost: what it listens on, while it runs."""
    tensorboard = Path(sys.executable).with_name("tensorboard")
    process = subprocess.Popen([str(tensorboard), "--logdir", str(tmp_path), "--port", "0"],
                               env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    watchdog = threading.Timer(120, process.kill)
    watchdog.start()
    try:
        for line in process.stdout:
            if re.search(r"TensorBoard .* at http://localhost:\d+/", line):
                break
        addresses = [c.laddr.ip for c in psutil.Process(process.pid).net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN]
    finally:
        watchdog.cancel()
        process.kill()
        process.communicate()
    assert addresses and all(ipaddress.ip_address(a).is_loopback for a in addresses), addresses


@pytest.mark.slow
def test_compare_and_confusion_on_real_runs(run_script, mnist_dir, tmp_path):
    for script in ("mnist_1.0_softmax.py", "mnist_2.1_five_layers_relu.py"):
        lab.run(script, no_vis=True, steps=100, data_dir=mnist_dir,
                history=tmp_path / f"{script}.json", save_model=tmp_path / script)
    runs = sorted(tmp_path.glob("*.json"))
    compare = run_script("tensorflowvisu.py", "compare", *runs,
                         "--save-png", tmp_path / "compare.png")
    assert compare.returncode == 0, compare.stderr
    confusion = run_script("tensorflowvisu.py", "confusion", runs[0],
                           "--save-png", tmp_path / "confusion.png")
    assert confusion.returncode == 0, confusion.stderr
    for name in ("compare.png", "confusion.png"):
        assert np.asarray(Image.open(tmp_path / name).convert("L"), dtype=float).std() > 20
