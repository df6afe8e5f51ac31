"""MNIST for the lab: find, download, verify and serve the handwritten digits.

MNIST is the "hello world" of image classification: 70,000 photos of handwritten
digits, each a 28x28 grid of ink levels (0 = background, 255 = full ink) with its
label, the digit 0-9 it shows. Yann LeCun, Corinna Cortes and Christopher
Burges published it as four files in the simple IDX format: a big-endian header
(magic number, item count, and for images the 28x28 size) followed by raw bytes.

    train-images-idx3-ubyte   60,000 training images      (magic number 2051)
    train-labels-idx1-ubyte   60,000 training labels      (magic number 2049)
    t10k-images-idx3-ubyte    10,000 test images
    t10k-labels-idx1-ubyte    10,000 test labels

The contract (the one TensorFlow 1's tutorials used):

    import mnistdata
    mnist = mnistdata.read_data_sets("data", one_hot=True)
    mnist.train.images.shape         # (55000, 784) float32, 0.0 = no ink ... 1.0 = full ink
    mnist.train.labels.shape         # (55000, 10)  float32 one-hot: 3 -> [0,0,0,1,0,0,0,0,0,0]
    mnist.validation.num_examples    # 5000: the FIRST 5,000 images of the training file
    mnist.test.num_examples          # 10000
    images, labels = mnist.train.next_batch(100)   # 100 examples, freshly shuffled each epoch

Pixel values are the amount of ink: 0.0 = no ink (the background) ... 1.0 = full ink.
Drawn as grey levels (0.0 black, 1.0 white, as plt.imshow(cmap="gray") does), a digit
is white ink on black: the lab's "white ink (1) on black (0)".

- `reshape=False` keeps the images as 28x28x1 (height, width, channels) for
  convolutional networks instead of flat rows of 784 pixels.
- `one_hot=False` gives the labels as plain digits: uint8 numbers 0-9, shape (N,),
  as in the files (use `.astype(np.int64)` before doing arithmetic with them).
- `validation_size=0` keeps all 60,000 training images for training (the
  validation set is then empty).
- `seed` makes the shuffling of `next_batch` reproducible; each split has its own
  random generator derived from it, so the training order does not depend on
  whether you ever draw from the validation set.
- `DataSet.to_tf_dataset()` gives a split as a `tf.data.Dataset`, for readers who
  move on to TensorFlow's input pipelines.

Where the files come from, first match wins:

1. the `data_dir` argument,
2. the `MNIST_DATA_DIR` environment variable,
3. the `data/` folder next to this file (not the current directory).

A relative folder (data_dir or MNIST_DATA_DIR) is relative to the current directory.
That folder may hold the four files gzipped (`train-images-idx3-ubyte.gz`, ...)
or uncompressed (same names without `.gz`; preferred when both are there). It is
only read: a read-only folder is fine. Missing files are downloaded into it from
the mirrors in `MIRRORS`, tried in order (override them with the `mirrors`
argument or with the `MNIST_MIRRORS` environment variable, space-separated base
URLs, e.g. an internal mirror, which may be http://). The built-in mirrors are all
https://, and a download is never redirected from https:// to http://. Every file,
local or downloaded, is checked: its IDX header must make sense and the SHA-256 of
its decompressed bytes must match `SHA256`, whichever mirror it came from. Anything
wrong raises `MnistError` with a one-line message naming the file and the problem.

Run `python mnistdata.py [DATA_DIR]` to load everything and print a summary.
"""
import gzip
import hashlib
import http.client
import io
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from plumbing import DATA, UserError, write_atomically

# Base URLs tried in order for missing files (the file name plus ".gz" is appended).
# https:// only: nobody on the way can see or swap the download (users may choose http://).
MIRRORS = [
    "https://storage.googleapis.com/cvdf-datasets/mnist/",  # Google's CVDF mirror
    "https://ossci-datasets.s3.amazonaws.com/mnist/",  # PyTorch's mirror
    "https://yann.lecun.com/exdb/mnist/",  # the original site (answers 403 these days)
]

# SHA-256 of the DECOMPRESSED files: mirrors recompress, the content never changes.
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

FILES = list(SHA256)  # the four file names, without ".gz"
DEFAULT_DATA_DIR = DATA  # data/ next to the lessons (plumbing.py: the lab's folders)
TIMEOUT = 30  # seconds without an answer before a mirror is given up
# Bigger than any MNIST file (the biggest: 47 MB decompressed). A download, or a gzip file
# decompressing, beyond it is refused: a hostile mirror cannot fill the memory.
MAX_SIZE = 64_000_000  # bytes


MnistError = UserError  # the MNIST files could not be found, downloaded, read or verified

class DataSet:
    """One split (train, validation or test): images, labels and a batch server.

    images: float32 in [0, 1] (the amount of ink), shape (N, 784) or (N, 28, 28, 1).
    labels: uint8 digits, shape (N,), or float32 one-hot rows, shape (N, 10).
    seed:   anything np.random.default_rng accepts (None: a different order every run).
    """

    def __init__(self, images, labels, seed=None):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = labels
        self.epochs_completed = 0
        self._rng = np.random.default_rng(seed)
        self._order = self._shuffled()  # the order of the current epoch
        self._position = 0  # how many examples of the current epoch were served

    @property
    def num_examples(self) -> int:
        return len(self.images)

    def _shuffled(self):
        return self._rng.permutation(self.num_examples).astype(np.int32)

    def next_batch_indices(self, batch_size: int) -> np.ndarray:
        """The int32 indices of the next batch_size examples.

        Each epoch serves every example exactly once, in a fresh random order. A
        batch that runs past the end of an epoch is completed from the next one.
        epochs_completed counts the finished passes: it goes up as soon as the
        last example of an epoch has been served.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if self.num_examples == 0:
            raise ValueError("cannot draw a batch from an empty DataSet")
        parts = []
        while batch_size > 0:
            take = min(batch_size, self.num_examples - self._position)
            parts.append(self._order[self._position:self._position + take])
            self._position += take
            batch_size -= take
            if self._position == self.num_examples:  # epoch finished: reshuffle
                self.epochs_completed += 1
                self._order = self._shuffled()
                self._position = 0
        return np.concatenate(parts)

    def next_batch(self, batch_size: int):
        """The next (images, labels) batch: see next_batch_indices."""
        i = self.next_batch_indices(batch_size)
        return self.images[i], self.labels[i]

    def to_tf_dataset(self):
        """This split as a tf.data.Dataset of (image, label) pairs, in file order."""
        import tensorflow as tf  # imported here: TensorFlow takes seconds to import

        return tf.data.Dataset.from_tensor_slices((self.images, self.labels))

    def __repr__(self):
        return f"DataSet({self.num_examples} examples, epochs_completed={self.epochs_completed})"


class Datasets(NamedTuple):
    train: DataSet
    validation: DataSet
    test: DataSet


def read_data_sets(data_dir=None, one_hot=False, reshape=True, validation_size=5000, seed=None,
                   *, mirrors=None, checksums=None) -> Datasets:
    """Load MNIST as Datasets(train, validation, test), downloading missing files.

    data_dir:        folder of the four files (default: $MNIST_DATA_DIR, else data/ next to
                     this file).
    one_hot:         labels as float32 one-hot rows (N, 10) instead of uint8 digits (N,).
    reshape:         images as flat rows (N, 784); False gives (N, 28, 28, 1).
    validation_size: how many of the first training examples form the validation set.
    seed:            makes next_batch reproducible (None: random).
    mirrors:         base URLs to download from (default: $MNIST_MIRRORS, else MIRRORS).
    checksums:       replaces SHA256, for tests (file name without .gz -> hex digest; a
                     name left out is not checksum-verified, only format-checked).
    """
    folder = data_folder(data_dir)
    checksums = SHA256 if checksums is None else checksums
    arrays = {name: _load(name, folder, mirrors, checksums) for name in FILES}
    for images, labels in [FILES[0:2], FILES[2:4]]:
        if len(arrays[images]) != len(arrays[labels]):
            raise MnistError(f"{images} and {labels} in {folder}: {len(arrays[images])} images "
                             f"but {len(arrays[labels])} labels")

    n_train = len(arrays["train-images-idx3-ubyte"])
    if not 0 <= validation_size <= n_train:
        raise MnistError(f"validation_size must be between 0 and {n_train} "
                         f"(the number of training images), got {validation_size}")

    shape = (-1, 784) if reshape else (-1, 28, 28, 1)

    def images(name):  # uint8 0-255 -> float32 0-1 in one pass (no float64 temporary)
        return np.divide(arrays[name], np.float32(255), dtype=np.float32).reshape(shape)

    def labels(name):
        digits = arrays[name]
        return np.eye(10, dtype=np.float32)[digits] if one_hot else digits.copy()

    train_images, train_labels = images(FILES[0]), labels(FILES[1])
    seeds = np.random.SeedSequence(seed).spawn(3)  # one generator per split
    n = validation_size
    return Datasets(
        train=DataSet(train_images[n:], train_labels[n:], seeds[0]),
        validation=DataSet(train_images[:n], train_labels[:n], seeds[1]),
        test=DataSet(images(FILES[2]), labels(FILES[3]), seeds[2]),
    )


def data_folder(data_dir=None) -> Path:
    """The folder read_data_sets uses: data_dir, else $MNIST_DATA_DIR, else data/ next to
    this file. Absolute: a relative one is relative to the current folder."""
    chosen = data_dir if data_dir is not None else os.environ.get("MNIST_DATA_DIR")
    return Path(os.path.abspath(Path(chosen).expanduser())) if chosen else DEFAULT_DATA_DIR


def _load(name, folder, mirrors, checksums) -> np.ndarray:
    """One file as a uint8 array: read from folder if it is there, else downloaded into it."""
    for filename in (name, name + ".gz"):
        path = folder / filename
        if path.exists():
            where = f"{filename} in {folder}"
            try:
                data = path.read_bytes()
            except OSError as error:
                raise MnistError(f"{where}: cannot read it: {error.strerror or error}") from None
            return _decode(data, filename.endswith(".gz"), name, where, checksums,
                           damaged="a damaged or interrupted download? Delete it, "
                                   "and the next run downloads it again")
    return _download(name, folder, mirrors, checksums)


def _decode(data: bytes, gzipped: bool, name, where, checksums, damaged="") -> np.ndarray:
    """Decompress and check one file's bytes; `where` says where they came from, `damaged`
    what to do about a gzip file that does not decompress (for errors)."""
    if gzipped:
        try:
            with gzip.GzipFile(fileobj=io.BytesIO(data)) as file:
                data = file.read(MAX_SIZE + 1)  # read no more: a small file may inflate hugely
        except (OSError, EOFError, zlib.error) as error:
            raise MnistError(f"{where}: not a complete gzip file ({error})"
                             + (f": {damaged}" if damaged else "")) from None
        if len(data) > MAX_SIZE:
            raise MnistError(f"{where}: decompresses to more than {_size(MAX_SIZE)}, "
                             "bigger than any MNIST file")
    array = _parse_idx(data, name, where)
    expected = checksums.get(name)
    if expected:
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected.lower():
            raise MnistError(f"{where}: checksum mismatch: SHA-256 of the decompressed content "
                             f"is {actual}, expected {expected}")
    return array


def _parse_idx(data: bytes, name, where) -> np.ndarray:
    """Check an IDX file's header and content; return a uint8 array, (N, 28, 28) or (N,)."""
    is_images = "images" in name
    kind, magic_expected, header_size = ("images", 2051, 16) if is_images else ("labels", 2049, 8)
    if len(data) < header_size:
        raise MnistError(f"{where}: truncated: {len(data)} bytes, shorter than the "
                         f"{header_size}-byte header of an IDX {kind} file")
    header = np.frombuffer(data, ">u4", count=header_size // 4)  # big-endian uint32 fields
    magic, count = int(header[0]), int(header[1])
    if magic != magic_expected:
        raise MnistError(f"{where}: wrong magic number {magic}, expected {magic_expected} "
                         f"(IDX {kind} file)")
    shape = (count,)
    if is_images:
        rows, cols = int(header[2]), int(header[3])
        if (rows, cols) != (28, 28):
            raise MnistError(f"{where}: images are {rows}x{cols}, expected 28x28")
        shape = (count, 28, 28)
    expected_size = header_size + int(np.prod(shape))
    if len(data) != expected_size:
        raise MnistError(f"{where}: size does not match its header: {count} {kind} need "
                         f"{expected_size} bytes, the file has {len(data)} (truncated?)")
    array = np.frombuffer(data, np.uint8, offset=header_size).reshape(shape)
    if not is_images and count and array.max() > 9:
        bad = int(np.argmax(array > 9))
        raise MnistError(f"{where}: label {array[bad]} at index {bad} is out of range 0-9")
    return array


def _download(name, folder, mirrors, checksums) -> np.ndarray:
    """Fetch name.gz from the first mirror that serves a verified copy; save it in folder."""
    filename = name + ".gz"
    if mirrors is None:
        mirrors = os.environ.get("MNIST_MIRRORS", "").split() or MIRRORS
    elif isinstance(mirrors, str):
        mirrors = mirrors.split()
    offline = (f"to work offline, put the four MNIST files ({', '.join(f + '.gz' for f in FILES)},"
               f" gzipped or not) in {folder} or point MNIST_DATA_DIR (or data_dir) at a folder"
               " holding them")
    folder_text = str(folder)
    if not folder.is_dir():
        folder_text += " (no such folder"
        source = os.environ.get("MNIST_DATA_DIR")
        if source and not Path(source).expanduser().is_absolute() and folder == data_folder():
            folder_text += f"; MNIST_DATA_DIR={source} is relative to the current folder"
        folder_text += ")"
    if not mirrors:
        raise MnistError(f"{filename} is missing from {folder_text} and there are no mirrors to "
                         f"download it from; {offline}")

    failures = []
    for base in mirrors:
        url = base.rstrip("/") + "/" + filename
        try:
            data = _fetch(url)
            array = _decode(data, True, name, url, checksums)
        except MnistError as error:  # a bad download: forget it, try the next mirror
            failures.append(str(error))
        except (OSError, http.client.HTTPException, ValueError) as error:  # URLError is an OSError
            failures.append(f"{url}: {_describe(error)}")
        else:
            _save(data, folder / filename)
            print(f"mnistdata: downloaded {url} ({_size(len(data))}) into {folder}",
                  file=sys.stderr)
            return array
        print(f"mnistdata: {failures[-1]}", file=sys.stderr)
    raise MnistError(f"{filename} is missing from {folder_text} and could not be downloaded: "
                     f"{'; '.join(failures)}; {offline}")


class _NoDowngrade(urllib.request.HTTPRedirectHandler):
    """Follows redirects to https://, and to http:// only from http:// (a mirror the user
    chose): a download that started encrypted must not go on in clear text."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        scheme = urllib.parse.urlsplit(newurl).scheme  # newurl is absolute here
        downgrade = req.type == "https" and scheme == "http"
        if scheme not in ("http", "https") or downgrade:
            fp.close()
            # A URLError is reported as this mirror's failure: the next mirror is tried.
            raise urllib.error.URLError(f"redirected to an {scheme}:// address, refused")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _fetch(url) -> bytes:
    """Download url (at most MAX_SIZE bytes); on a terminal, draw a progress bar on stderr."""
    show = sys.stderr.isatty()
    chunks, received = [], 0
    too_big = f"{url}: bigger than any MNIST file (over {_size(MAX_SIZE)}), refused"
    try:
        with urllib.request.build_opener(_NoDowngrade).open(url, timeout=TIMEOUT) as response:
            total = int(response.headers.get("Content-Length") or 0)
            if total > MAX_SIZE:
                raise MnistError(too_big)
            while chunk := response.read(1 << 16):
                chunks.append(chunk)
                received += len(chunk)
                if received > MAX_SIZE:  # no Content-Length, or a lying one
                    raise MnistError(too_big)
                if show and total:
                    done = received / total
                    sys.stderr.write(f"\r{url} [{'#' * int(30 * done):<30}] {done:4.0%} "
                                     f"of {_size(total)}")
                elif show:
                    sys.stderr.write(f"\r{url} {_size(received)}")
    finally:
        if show and received:
            sys.stderr.write("\n")  # end the progress line, even after an error
    if total and received != total:
        raise MnistError(f"{url}: download incomplete: received {received} of {total} bytes")
    return b"".join(chunks)


def _size(n_bytes) -> str:
    return f"{n_bytes / 1e6:.1f} MB" if n_bytes >= 100_000 else f"{n_bytes / 1e3:.1f} kB"


def _describe(error) -> str:
    """A short reason for a failed download: 'HTTP 404 Not Found', 'connection refused', ..."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    reason = getattr(error, "reason", error)  # URLError wraps the underlying error
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused"
    if isinstance(reason, TimeoutError):
        return f"no answer within {TIMEOUT} s"
    return str(getattr(reason, "strerror", None) or reason)


def _save(data: bytes, target: Path):
    """Write a verified download atomically (plumbing.write_atomically: a new, unguessable
    temporary file in the same folder, then renamed). The folder is created now, and only
    now: a failed download leaves nothing behind."""
    try:
        write_atomically(target, lambda file: file.write(data), new_folders=True)
    except UserError as error:
        raise MnistError(f"{target.name}: downloaded, but {error}") from None


if __name__ == "__main__":
    start = time.perf_counter()
    data_dir = sys.argv[1] if len(sys.argv) > 1 else None
    try:
        mnist = read_data_sets(data_dir, one_hot=True, reshape=False)
    except MnistError as error:
        sys.exit(f"mnistdata: {error}")  # message on stderr, exit status 1
    print(f"MNIST from {data_folder(data_dir)}: train {mnist.train.num_examples}, "
          f"validation {mnist.validation.num_examples}, test {mnist.test.num_examples} images, "
          f"verified and loaded in {time.perf_counter() - start:.2f} s")
