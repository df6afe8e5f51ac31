"""plumbing.py: what the lab needs that is neither training nor drawing, written once.

In the order a run meets it: the lab's folders and lessons, the one-line errors and
flags, TensorFlow loaded quietly with the lab's settings, "am I in a notebook", Ctrl-C
held while something must not stop half-way, and files written so that nobody ever sees
half of one. Importing it imports neither TensorFlow nor matplotlib.
"""

import argparse
import contextlib
import gc
import importlib.abc
import importlib.util
import os
import platform
import re
import secrets
import shutil
import signal
import sys
import tempfile
import threading
import types
from pathlib import Path


# The lab's folders, next to its code, whichever folder it runs from and whichever door
# trains (a lesson, lab.train_model, DashboardCallback): runs/ for the histories, models/
# for the saved networks, data/ for MNIST when it is downloaded.
ROOT = Path(__file__).resolve().parent
RUNS = ROOT / "runs"
MODELS = ROOT / "models"
DATA = ROOT / "data"
LESSON_NAME = re.compile(r"^mnist_(\d+\.\d+)_.*\.py$")  # mnist_2.0_five_layers_sigmoid.py


def in_lab_folders(path):
    """Is `path` in the lab's own runs/ or models/ (where missing folders are made)?"""
    path = Path(path).absolute()
    return any(folder == path or folder in path.parents for folder in (RUNS, MODELS))


def lessons():
    """{number: path} of every lesson (mnist_N.M_*.py next to this file), in order:
    {"1.0": .../mnist_1.0_softmax.py, ...}."""
    found = {}
    for path in ROOT.glob("mnist_*.py"):
        match = LESSON_NAME.match(path.name)
        if match:
            found[match.group(1)] = path
    return dict(sorted(found.items(), key=lambda item: tuple(map(int, item[0].split(".")))))


# ---------------------------------------------------------------- errors and flags


class UserError(Exception):
    """A problem the user can fix. Its message is one line that says what to do; the
    command lines print it as "error: ..." and exit with status 1, without a traceback."""

    def _render_traceback_(self):  # IPython (notebooks) shows this instead of a traceback
        return [f"error: {self}"]


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with a bad flag reported in one line instead of the usage block (exit
    status 1; lab.run turns it into a UserError). Every command line of the lab uses it."""

    def error(self, message):
        raise SystemExit(f"{self.prog}: error: {message} (see {self.prog} -h)")


@contextlib.contextmanager
def one_line_errors():
    """A UserError inside ends a script with its message in one line and exit status 1,
    without a traceback; in a notebook it stays a UserError, which shows as one line."""
    try:
        yield
    except UserError as error:
        if in_notebook():
            raise
        raise SystemExit(f"error: {error}") from None


def count(text):
    """A flag's value that counts something: a whole number, at least 1 (argparse type)."""
    return _whole_number(text, 1, None)


def seed(text):
    """A random seed: a whole number from 0 to 2**31 - 1 (argparse type)."""
    return _whole_number(text, 0, 2**31 - 1)


def _whole_number(text, low, high):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
    if high is not None and value > high:
        raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {value}")
    return value


def flag_words(flags):
    """Keywords as command-line words, as typed: {"steps": 2000, "no_vis": True} ->
    ["--steps", "2000", "--no-vis"] (False or None: left out; a list: several values)."""
    words = []
    for key, value in flags.items():
        if value is False or value is None:  # (by identity: 0 stays a value)
            continue
        words.append("--" + key.replace("_", "-"))
        if value is not True:
            words.extend(str(v) for v in (value if isinstance(value, list) else [value]))
    return words


def check_installed(*packages):
    """Stop with one line if this Python lacks one of the lab's packages (a lesson started
    outside the lab's virtual environment), before an import fails with a traceback."""
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if missing:
        names = [_PACKAGE_NAMES.get(name, name) for name in missing]
        names = " and ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)
        message = (f"{names} {'is' if len(missing) == 1 else 'are'} not installed in this "
                   f"Python ({sys.executable}): activate the lab's environment first (source "
                   ".venv/bin/activate; on Windows .venv\\Scripts\\activate), or install "
                   "what it needs: pip install -r requirements.txt")
        if in_notebook():
            raise UserError(message)
        raise SystemExit(f"error: {message}")


_PACKAGE_NAMES = {"tensorflow": "TensorFlow", "numpy": "NumPy", "PIL": "Pillow"}


# ---------------------------------------------------------------- TensorFlow


tf = None  # TensorFlow, once load_tensorflow() has imported it


def load_tensorflow(before_start=None, start=True, pictures=True):
    """Import TensorFlow with the lab's settings, quietly, once; returns the module.

    The settings must be in the environment before the import, which reads them:
    - oneDNN on x86-64 CPUs. TensorFlow 2.21 uses Intel's oneDNN library for convolutions
      and matrix products only on CPUs with AVX-512 VNNI, BF16 or AMX; everywhere else
      (AMD Zen 1-3, most laptops) it runs Eigen's kernels, 2 to 5 times slower for the
      convolutional lessons (benchmarks/README.md). The user's TF_ENABLE_ONEDNN_OPTS wins.
    - TensorFlow's C++ info and warning lines: off (TF_CPP_MIN_LOG_LEVEL=2).
    before_start(tf) runs before TensorFlow's runtime starts (lesson 6.0 makes its
    replicas' devices). start=False leaves the runtime unstarted, for a
    MultiWorkerMirroredStrategy to configure (lesson 6.0 in a cluster); C++ error lines
    are then off too (3): they would come where they cannot be caught.
    pictures=False (a run that draws nothing, --no-vis): Keras, which TensorFlow imports,
    does not import matplotlib.pyplot on the way, a second of the four the import takes.
    """
    global tf
    if tf is None:
        _settings(start)
        _TensorFlowImport.stand_aside()  # (this is the lab's own import, the one below)
        without = contextlib.nullcontext() if pictures else _not_importable("matplotlib")
        with quiet_stderr(), without, _collected_once_loaded():
            import tensorflow

            if before_start:
                before_start(tensorflow)
            if start:
                tensorflow.config.list_logical_devices("GPU")  # starts the runtime (CUDA complains)
        _imported(tensorflow)
        tf = tensorflow
    return tf


def _settings(start=True):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2" if start else "3")
    if platform.machine().lower() in ("x86_64", "amd64"):
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def _imported(tensorflow):
    """Once TensorFlow is imported, by load_tensorflow or by whoever imports it first."""
    # Its Python logger prints INFO lines in interactive sessions (notebooks): warnings only.
    tensorflow.get_logger().setLevel("WARNING")


@contextlib.contextmanager
def _collected_once_loaded():
    """Around TensorFlow's import: no garbage collection while it runs, then its objects
    frozen. TensorFlow's modules are some 300,000 Python objects that live as long as the
    process. As they load, the garbage collector would walk them again and again (0.7 s
    of the 4 s the import takes, measured with gc.callbacks); frozen (gc.freeze: moved
    where collections never look), it skips them in each of its full collections (0.2 s)
    and in the ones at exit (1.3 s of every lesson's end). Objects are still freed when
    nothing refers to them; only cycles among them would stay."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()  # (before collecting again: all of them are still in the youngest generation)
        if enabled:
            gc.enable()


@contextlib.contextmanager
def _not_importable(package):
    """Inside: importing `package` or a module of it fails with ImportError, as if it were
    not installed. (Keras imports matplotlib.pyplot if it can, for keras.visualization's
    image galleries, which the lab does not use; it does without otherwise.) Once
    imported elsewhere, a package is not imported again: this changes nothing then."""

    class NotImportable(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == package or name.startswith(package + "."):
                raise ImportError(f"{package} is not imported now (plumbing.load_tensorflow)")
            return None

    finder = NotImportable()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


class _TensorFlowImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Whoever imports TensorFlow first once a lab module is imported (Keras, your own
    notebook cell) gets it as load_tensorflow loads it: with the lab's settings, and its
    start-up lines (CUDA's complaints on a machine without a GPU) kept out of the terminal
    or the cell. It wraps the usual loader of the `tensorflow` package, once."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        # The usual spec, found without this finder; it stays in place until TensorFlow is
        # really imported (check_installed only asks whether it is there).
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is not None:
            self.loader, spec.loader = spec.loader, self
        return spec

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        global tf
        self.stand_aside()
        _settings()
        with quiet_stderr(), _collected_once_loaded():
            self.loader.exec_module(module)
            module.config.list_logical_devices("GPU")  # starts the runtime (CUDA complains)
        _imported(module)
        tf = module

    @staticmethod
    def stand_aside():
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _TensorFlowImport)]


if "tensorflow" not in sys.modules:
    sys.meta_path.insert(0, _TensorFlowImport())


@contextlib.contextmanager
def quiet_stderr():
    """Hide what TensorFlow's C++ core prints while it loads and looks for GPUs.

    Those lines come before TF_CPP_MIN_LOG_LEVEL is read (or are CUDA errors on machines
    without a GPU), so they are caught by pointing the process's stderr (file descriptor
    2, which C++ writes to: Python's sys.stderr cannot catch them) at a temporary file;
    they are shown only if something fails.
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


def engine():
    """What runs the computations: 'CPU, oneDNN', 'CPU, Eigen' or 'GPU (...)'."""
    gpus = load_tensorflow().config.list_logical_devices("GPU")
    if gpus:
        return f"GPU ({gpus[0].name})"
    try:  # what TensorFlow itself decided; a private module: the environment is the fallback
        from tensorflow.python.util import _pywrap_util_port

        onednn = _pywrap_util_port.IsMklEnabled()
    except (ImportError, AttributeError):
        onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "1"
    return "CPU, oneDNN" if onednn else "CPU, Eigen"


def _cpuinfo():
    """The first processor's fields in Linux's /proc/cpuinfo ({'model name': ..., 'flags':
    ...}), or None elsewhere (Windows, macOS)."""
    try:
        first = Path("/proc/cpuinfo").read_text().split("\n\n")[0]
    except OSError:
        return None
    fields = {}
    for line in first.splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def cpu_flags():
    """This CPU's instruction-set flags as Linux names them (e.g. {'avx2', 'avx512_bf16'}),
    or None where /proc/cpuinfo does not say (Windows, macOS)."""
    fields = _cpuinfo()
    return None if fields is None or "flags" not in fields else set(fields["flags"].split())


BFLOAT16_FLAGS = ("avx512_bf16", "amx_bf16")  # Linux's names of a CPU's bfloat16 arithmetic


def bfloat16_arithmetic():
    """Does this CPU compute in bfloat16 (AVX512_BF16 or AMX: AMD Zen 4 and 5, Intel Xeons
    since Cooper Lake)? None: cannot tell (no /proc/cpuinfo)."""
    flags = cpu_flags()
    return None if flags is None else any(flag in flags for flag in BFLOAT16_FLAGS)


def cpu_name():
    """This machine's processor, e.g. 'AMD EPYC (family 25, model 17)' (on x86, the family
    and model numbers tell processor generations apart: Zen 1 is 23/1, Zen 4 is 25/17)."""
    fields = _cpuinfo()  # (Linux)
    if fields is None:
        return platform.processor() or platform.machine()  # (Windows, macOS: a shorter name)
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields:
        name += f" (family {fields['cpu family']}, model {fields.get('model', '?')})"
    return name


# ---------------------------------------------------------------- notebooks, Ctrl-C


def in_notebook():
    """True in a Jupyter kernel (JupyterLab, Notebook, VS Code, Colab)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython and hasattr(ipython, "get_ipython") else None
    return shell is not None and hasattr(shell, "kernel")


@contextlib.contextmanager
def ctrl_c_held(on_press=None):
    """Hold Ctrl-C back while the block runs, for work that must not stop half-way
    (a file being written, a movie frame going to ffmpeg, a TensorFlow computation:
    interrupted inside TensorFlow's C++ code, it surfaces as an error, not an interruption).
    Yields an object whose `pressed` tells whether Ctrl-C came meanwhile; on_press() is
    called when it comes (e.g. to end a pause). A notebook's stop button is a Ctrl-C."""
    held = types.SimpleNamespace(pressed=False)
    if threading.current_thread() is not threading.main_thread():  # only it gets signals
        yield held
        return

    def press(*_):
        held.pressed = True
        if on_press:
            on_press()

    previous = signal.signal(signal.SIGINT, press)
    try:
        yield held
    finally:
        signal.signal(signal.SIGINT, previous)


# ---------------------------------------------------------------- files


def cannot_write(path, folder=False, new_folders=False):
    """Why `path` cannot be written, or None if it can. Creates nothing.

    `path` is a file to write (or, with folder=True, a folder to create or replace). Its
    folder must exist ("no folder ..."), unless new_folders (the lab's own runs/ and
    models/: then the nearest folder that exists must take new ones). The only sure test
    that a folder takes new files is to write one there.
    """
    path = Path(path).absolute()
    if path.exists() and path.is_dir() != folder:
        return "it is a folder" if path.is_dir() else "it is a file"
    parent = path.parent
    if not new_folders and not parent.exists():
        return f"no folder {parent}"
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        return f"{parent} is a file"
    try:
        tempfile.TemporaryFile(dir=parent).close()
    except OSError as error:
        return f"cannot write in {parent}: {error.strerror or error}"
    return None


def temporary_name(path):
    """A hidden, unguessable name next to `path`, with its suffix (writers choose the
    format by it): nobody can plant a file or a link there before we write it."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{secrets.token_hex(8)}.tmp{path.suffix}")


def write_atomically(path, write, new_folders=False):
    """Write a file so that nobody ever sees half of it.

    write(file) writes into a new temporary file next to `path` (created only if nothing
    is there, never through a link, with the permissions of any file the user makes),
    which then replaces `path` in one step (os.replace). Its folder must exist, unless
    new_folders (then missing folders are created). A device or a pipe at `path`
    (/dev/null...) is written directly. Raises UserError.
    """
    path = Path(path)
    temp = temporary_name(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)  # (POSIX)
    flags |= getattr(os, "O_BINARY", 0)  # (Windows)
    try:
        if new_folders:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.parent.is_dir():
            raise FileNotFoundError(2, f"no folder {path.parent.absolute()}")
        if path.is_dir():
            raise IsADirectoryError(21, "it is a folder")
        if path.exists() and not path.is_file():
            with open(path, "wb") as file:
                write(file)
            return
        with open(os.open(temp, flags, 0o666), "wb") as file:  # 0o666 minus the umask
            write(file)
        os.replace(temp, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise UserError(f"cannot write {path} ({error.strerror or error}): "
                        "choose another file name or folder") from None
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise


def replace_folder(path, write):
    """Write a folder (a SavedModel) so that `path` is always a complete one: write(folder)
    fills a new hidden folder next to it, which then takes its place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    new, old = temporary_name(path), temporary_name(path)
    new.mkdir(0o777)  # (minus the umask) created here, by us: nobody else's
    try:
        write(new)
        if path.exists():
            path.rename(old)
        new.rename(path)
    finally:
        shutil.rmtree(new, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
