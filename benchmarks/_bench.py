"""Helpers shared by the benchmark scripts (and the tests' Xvfb): machine facts, statistics,
lesson runs, JSON, a private X server.

Not a benchmark itself. Imports neither TensorFlow nor PyTorch: the benchmarks run the
frameworks in child processes, one measurement per process, so that no framework's
thread pools or caches influence another's figures.
"""

import datetime
import importlib.metadata
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository: lab.py and the lessons
sys.path.insert(0, str(ROOT))
import plumbing  # noqa: E402  (light: it imports TensorFlow only when asked to)
RESULTS = Path(__file__).resolve().parent / "results"  # default place of the JSON results
PYTHON = sys.executable

# The lessons by their number, e.g. "2.1" -> mnist_2.1_five_layers_relu.py.
LESSON_NAME = re.compile(r"^mnist_(\d+\.\d+)_.*\.py$")


def lessons(folder=ROOT):
    """{number: path} of every mnist_N.M_*.py lesson in folder, in lesson order."""
    found = {}
    for path in Path(folder).glob("mnist_*.py"):
        match = LESSON_NAME.match(path.name)
        if match:
            found[match.group(1)] = path
    return dict(sorted(found.items(), key=lambda item: tuple(int(n) for n in item[0].split("."))))


def lesson(number, folder=ROOT):
    """The path of lesson `number` ("2.1") in folder; SystemExit with the choices if absent."""
    found = lessons(folder)
    if number not in found:
        raise SystemExit(f"error: no lesson {number} (mnist_{number}_*.py) in {folder}; "
                         f"there are: {', '.join(found) or 'none'}")
    return found[number]


def data_dir(arg=None):
    """The MNIST folder to use (--data-dir, else $MNIST_DATA_DIR, else data/): checked to exist."""
    folder = arg or os.environ.get("MNIST_DATA_DIR") or str(ROOT / "data")
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    if not all((Path(folder) / n).exists() or (Path(folder) / (n + ".gz")).exists() for n in names):
        raise SystemExit(f"error: the four MNIST files are not in {folder}: "
                         "set MNIST_DATA_DIR or pass --data-dir (benchmarks never download)")
    return str(Path(folder).resolve())


def lesson_env(mnist_dir, **extra):
    """The environment of a lesson run: no window unless asked, quiet TensorFlow, real MNIST."""
    env = dict(os.environ, MNIST_DATA_DIR=mnist_dir, MPLBACKEND="Agg", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONUNBUFFERED="1")
    env.pop("DISPLAY", None)
    env.update({k: str(v) for k, v in extra.items() if v is not None})
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
    return env


def run_lesson(script, args=(), env=None, timeout=3600, cwd=None, model=None, python=PYTHON):
    """Run a lesson with --history and --save-model in a temporary folder (the model: into
    `model`, when given, to be kept), with this Python unless another is given.

    Returns dict(wall=seconds from launch to exit, history=the run's history (dict),
    stdout, stderr, returncode). Raises RuntimeError with the end of stderr on failure.
    """
    with tempfile.TemporaryDirectory(prefix="mnist-bench-") as tmp:
        history_path = Path(tmp) / "history.json"
        command = [str(python), str(script), *map(str, args),
                   "--history", str(history_path),
                   "--save-model", str(model or Path(tmp) / "model")]
        start = time.perf_counter()
        result = subprocess.run(command, cwd=cwd or tmp, env=env, capture_output=True, text=True,
                                timeout=timeout)
        wall = time.perf_counter() - start
        if result.returncode != 0 or not history_path.exists():
            raise RuntimeError(f"{' '.join(command)} failed (exit {result.returncode}):\n"
                               + "\n".join(result.stderr.strip().splitlines()[-15:]))
        history = json.loads(history_path.read_text())
    return {"wall": wall, "history": history, "stdout": result.stdout, "stderr": result.stderr,
            "returncode": result.returncode}


def run_json_worker(command, env=None, timeout=1800):
    """Run a child that prints one JSON object on its last stdout line; return that object."""
    result = subprocess.run([str(c) for c in command], env=env, capture_output=True, text=True,
                            timeout=timeout, cwd=ROOT)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(map(str, command))} failed (exit {result.returncode}):\n"
                           + "\n".join(result.stderr.strip().splitlines()[-15:]))
    return json.loads(lines[-1])


# ------------------------------------------------------------------------- a run's speed


def rates(history, from_step=200):
    """Images per second of a run, from its history (a dict, as saved), from step
    `from_step` to the last (the warm-up before it: the first calls compile and trace).

    training: the training alone (from the end of each measurement, its test pass
    included, to the end of the next training call); end to end: with the test passes.
    """
    def column(part, key):
        return history[part].get(key) or history[part].get("iteration")  # (histories before "step")

    # trained[i]: when the training call i ended; tested[i]: when the test pass at i ended
    trained = dict(zip(column("train", "step"), history["train"]["wall_time"]))
    tested = dict(zip(column("test", "step"), history["test"]["wall_time"]))
    points = [i for i in trained if i >= from_step]
    if len(points) < 2:
        return {"training_images_per_second": None, "images_per_second": None}
    training = sum(trained[b] - tested.get(a, trained[a]) for a, b in zip(points, points[1:]))
    end_to_end = (tested.get(points[-1], trained[points[-1]])
                  - tested.get(points[0], trained[points[0]]))
    images = (points[-1] - points[0]) * history["config"]["batch_size"]
    return {"training_images_per_second": round(images / training),
            "images_per_second": round(images / end_to_end)}


# ------------------------------------------------------------------------- statistics


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summary(values):
    """median, min, max and the values themselves (None-free), for the JSON."""
    values = [v for v in values if v is not None]
    if not values:
        return {"median": None, "min": None, "max": None, "values": []}
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "values": values}


def rotate(items, k):
    """items rotated left by k: the order of the k-th repeat, so no one always goes first."""
    k %= len(items)
    return items[k:] + items[:k]


# ------------------------------------------------------------------------- the machine


def _package_version(name):
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _git(*args):
    try:
        git = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return git.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# SIMD instruction sets that decide how fast TensorFlow's CPU kernels can be.
CPU_FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16",
             "amx_bf16", "amx_int8", "amx_tile")


def cpu():
    """This machine's processor: {"model", "cores", "flags"}, e.g. {"model": "AMD EPYC
    (family 23, model 1)", "cores": 2, "flags": ["avx", "avx2", "fma"]}."""
    flags = plumbing.cpu_flags() or set()
    return {"model": plumbing.cpu_name(), "cores": os.cpu_count(),
            "flags": [f for f in CPU_FLAGS if f in flags]}


def machine_info():
    """What the figures depend on: CPU, cores, memory, versions, the code's commit, the load."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        memory = None
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpu": cpu(),  # model (with family/model numbers on x86), cores, SIMD flags
        "cores": os.cpu_count(),
        "usable_cores": (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                         else os.cpu_count()),
        "memory_gib": round(memory, 1) if memory else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: _package_version(name) for name in
                     ("tensorflow", "keras", "numpy", "matplotlib", "torch")},
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "tf_env": {k: v for k, v in os.environ.items()
                   if k.startswith(("TF_", "OMP_", "KMP_", "MKL_", "XLA_"))},
    }


def load_warning():
    """A warning line when other processes already keep the cores busy, else ''."""
    if not hasattr(os, "getloadavg"):
        return ""
    load = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    if load > 0.5 * cores:
        return (f"warning: load average {load:.1f} on {cores} cores before starting: "
                "other processes are running, the figures will be noisy "
                "(compare ratios measured in the same run)")
    return ""


def start():
    """The machine's details, taken before the runs; a warning on stderr if it is already busy."""
    machine = machine_info()
    warning = load_warning()
    if warning:
        print(warning, file=sys.stderr)
    return machine


def save(data, path, default_name):
    """Write the results, with the command that made them, as JSON (default:
    benchmarks/results/<default_name>), written atomically, and say where."""
    path = Path(path) if path else RESULTS / default_name
    path.parent.mkdir(parents=True, exist_ok=True)
    data = dict(data, command=" ".join([Path(sys.argv[0]).name] + sys.argv[1:]))
    if "machine" in data and hasattr(os, "getloadavg"):
        data["machine"]["load_average_at_end"] = list(os.getloadavg())
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=1) + "\n")
    temporary.replace(path)
    print(f"\nwritten: {path}")


def table(headers, rows):
    """A plain-text table: right-aligned columns, a rule under the headers."""
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in row]
                                           for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def fmt(value, digits=0, unit=""):
    if value is None:
        return "-"
    return f"{value:,.{digits}f}{unit}"


def which(program):
    return shutil.which(program)


class Xvfb:
    """A private X server, stopped by stop() or at the end of a with block. Raises RuntimeError
    if Xvfb is missing or does not start.

    The display number is drawn at random from a high range rather than the first free one
    (Xvfb -displayfd would pick :0): a machine that runs several jobs in containers sharing
    one network namespace shares the abstract X sockets too, so another job's :0 can answer
    a client meant for ours. A display counts as started only once a client could open it."""

    def __init__(self, size="1280x1024x24", tries=5):
        if not shutil.which("Xvfb"):
            raise RuntimeError("Xvfb is not installed (apt-get install xvfb)")
        import random

        numbers = random.Random().sample(range(200, 30000), tries)
        for number in numbers:
            self.display = f":{number}"
            self.process = subprocess.Popen(
                ["Xvfb", self.display, "-screen", "0", size, "-nolisten", "tcp"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if self._opens():
                return
            self.stop()
        raise RuntimeError(f"Xvfb did not start on any of the displays {numbers}")

    def _opens(self, seconds=15):
        """Whether a client can open the display (checked with libX11 as matplotlib does)."""
        import ctypes
        import ctypes.util

        library = ctypes.util.find_library("X11")
        x11 = ctypes.CDLL(library) if library else None
        if x11:
            x11.XOpenDisplay.restype = ctypes.c_void_p
            x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
            x11.XCloseDisplay.argtypes = [ctypes.c_void_p]
        socket_file = Path(f"/tmp/.X11-unix/X{self.display[1:]}")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self.process.poll() is None:
            if socket_file.exists():
                if x11 is None:
                    return True
                connection = x11.XOpenDisplay(self.display.encode())
                if connection:
                    x11.XCloseDisplay(connection)
                    return True
            time.sleep(0.1)
        return False

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def xvfb_or_exit():
    """An Xvfb for a benchmark's windows, or exit with its one-line error."""
    try:
        return Xvfb()
    except RuntimeError as error:
        raise SystemExit(f"error: {error}") from None
