"""Tests of mnistdata: real MNIST contract, batching, bad files, folders and the downloader.

Small fake IDX files (made by `write_fake_mnist`) stand in for MNIST wherever the real
files are not needed; their checksums are passed through the `checksums=` parameter and
the test HTTP server's URLs through `mirrors=`: nothing in mnistdata is patched.
"""
import functools
import gzip
import hashlib
import http.server
import os
import shutil
import socket
import ssl
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import mnistdata
from mnistdata import DataSet, MnistError, read_data_sets

ROOT = Path(__file__).resolve().parent.parent
TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = mnistdata.FILES
# Number of each digit 0-9 among the 60,000 training labels.
TRAIN_CLASS_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


# ---------------------------------------------------------------- fake IDX files

def idx_images(pixels: np.ndarray, magic=2051) -> bytes:
    n, rows, cols = pixels.shape
    header = np.array([magic, n, rows, cols], dtype=">u4").tobytes()
    return header + pixels.astype(np.uint8).tobytes()


def idx_labels(labels, magic=2049) -> bytes:
    labels = np.asarray(labels, dtype=np.uint8)
    return np.array([magic, len(labels)], dtype=">u4").tobytes() + labels.tobytes()


def fake_contents(n_train=50, n_test=20, seed=0) -> dict:
    """Decompressed bytes of four small, valid IDX files, by file name (without .gz)."""
    rng = np.random.default_rng(seed)
    return {
        TRAIN_IMAGES: idx_images(rng.integers(0, 256, (n_train, 28, 28))),
        TRAIN_LABELS: idx_labels(rng.integers(0, 10, n_train)),
        TEST_IMAGES: idx_images(rng.integers(0, 256, (n_test, 28, 28))),
        TEST_LABELS: idx_labels(rng.integers(0, 10, n_test)),
    }


def sha256s(contents: dict) -> dict:
    return {name: hashlib.sha256(data).hexdigest() for name, data in contents.items()}


def write_fake_mnist(folder: Path, contents=None, gz=True) -> dict:
    """Write four IDX files into folder (gzipped or not); return their checksums."""
    contents = contents or fake_contents()
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in contents.items():
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return sha256s(contents)


def pixels_of(idx_bytes: bytes) -> np.ndarray:
    return np.frombuffer(idx_bytes, np.uint8, offset=16).reshape(-1, 28, 28)


def labels_of(idx_bytes: bytes) -> np.ndarray:
    return np.frombuffer(idx_bytes, np.uint8, offset=8)


def listing(folder: Path) -> dict:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


# ---------------------------------------------------------------- real MNIST

@pytest.fixture(scope="module")
def mnist(mnist_dir):
    """Real MNIST, classic options: read once for the module."""
    return read_data_sets(mnist_dir, one_hot=True)


@pytest.fixture(scope="module")
def raw_training(mnist_dir):
    """The training file read independently of mnistdata: uint8 pixels and labels."""
    folder = Path(mnist_dir)

    def read(name):
        path = folder / name
        gz = folder / (name + ".gz")
        return path.read_bytes() if path.exists() else gzip.decompress(gz.read_bytes())

    return pixels_of(read(TRAIN_IMAGES)), labels_of(read(TRAIN_LABELS))


def test_classic_contract_shapes_and_values(mnist):
    for split, n in [(mnist.train, 55000), (mnist.validation, 5000), (mnist.test, 10000)]:
        assert split.num_examples == n
        assert split.images.shape == (n, 784) and split.images.dtype == np.float32
        assert split.images.min() == 0.0 and split.images.max() == 1.0
        assert split.labels.shape == (n, 10) and split.labels.dtype == np.float32
        assert set(np.unique(split.labels)) == {0.0, 1.0}
        assert (split.labels.sum(axis=1) == 1).all()  # exactly one 1 per row
        assert split.epochs_completed == 0


@pytest.mark.parametrize("options, n_train, n_validation, image_shape", [
    (dict(one_hot=False, reshape=False), 55000, 5000, (28, 28, 1)),
    (dict(one_hot=True, reshape=False), 55000, 5000, (28, 28, 1)),
    (dict(one_hot=False, validation_size=0), 60000, 0, (784,)),
])
def test_options_shapes(mnist_dir, options, n_train, n_validation, image_shape):
    data = read_data_sets(mnist_dir, **options)
    for split, n in [(data.train, n_train), (data.validation, n_validation), (data.test, 10000)]:
        assert split.images.shape == (n, *image_shape) and split.images.dtype == np.float32
        if options["one_hot"]:
            assert split.labels.shape == (n, 10) and split.labels.dtype == np.float32
        else:
            assert split.labels.shape == (n,) and split.labels.dtype == np.uint8
            assert n == 0 or split.labels.max() <= 9
    assert data.train.images.max() == 1.0 and data.test.images.min() == 0.0


def test_training_label_counts(mnist):
    digits = np.concatenate([mnist.validation.labels, mnist.train.labels]).argmax(axis=1)
    assert np.bincount(digits, minlength=10).tolist() == TRAIN_CLASS_COUNTS


def test_validation_is_the_first_training_examples_and_splits_are_disjoint(mnist, raw_training):
    pixels, labels = raw_training
    # validation = rows 0-4999 of the training file, train = rows 5000-59999, in order:
    # together they are the file, each row once, so the splits cannot overlap.
    for split, rows in [(mnist.validation, slice(0, 5000)), (mnist.train, slice(5000, 60000))]:
        assert np.array_equal(np.rint(split.images * 255).astype(np.uint8),
                              pixels[rows].reshape(-1, 784))
        assert np.array_equal(split.labels.argmax(axis=1), labels[rows])


def test_images_are_pixel_values_divided_by_255(mnist, raw_training):
    pixels, _ = raw_training
    expected = pixels[5000:5100].reshape(-1, 784).astype(np.float64) / 255
    assert np.abs(mnist.train.images[:100] - expected).max() < 1e-7


def test_import_does_not_import_tensorflow(tmp_path):
    code = "import sys, mnistdata; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_command_line_summary_and_error(tmp_path, mnist_dir):
    env = dict(os.environ, MNIST_MIRRORS=f"http://127.0.0.1:{closed_port()}/")
    ok = subprocess.run([sys.executable, str(ROOT / "mnistdata.py"), mnist_dir], cwd=tmp_path,
                        capture_output=True, text=True, env=env, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "train 55000, validation 5000, test 10000" in ok.stdout
    bad = subprocess.run([sys.executable, str(ROOT / "mnistdata.py"), str(tmp_path / "empty")],
                         cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 1
    assert "Traceback" not in bad.stderr
    last_line = bad.stderr.strip().splitlines()[-1]
    assert "connection refused" in last_line and "to work offline" in last_line


# ---------------------------------------------------------------- next_batch

def small_dataset(n=10, seed=0):
    images = np.arange(n, dtype=np.float32).reshape(n, 1) / n
    return DataSet(images, np.arange(n), seed=seed)


def test_each_epoch_serves_every_example_once_in_a_fresh_order():
    data = small_dataset(10)
    served = []
    for batch in range(40):  # batches of 3 do not divide the epochs of 10 evenly
        served.extend(data.next_batch_indices(3))
        assert data.epochs_completed == len(served) // 10
    epochs = np.array(served).reshape(12, 10)
    for epoch in epochs:
        assert sorted(epoch) == list(range(10))
    assert len({tuple(epoch) for epoch in epochs}) > 1  # reshuffled, not one order repeated
    assert any(list(epoch) != list(range(10)) for epoch in epochs)  # shuffled at all


def test_batch_crossing_the_epoch_boundary_is_completed_from_the_next_epoch():
    data = small_dataset(10, seed=3)
    first = np.concatenate([data.next_batch_indices(4), data.next_batch_indices(4)])
    assert data.epochs_completed == 0
    crossing = data.next_batch_indices(4)
    assert data.epochs_completed == 1
    assert len(crossing) == 4
    assert sorted(np.concatenate([first, crossing[:2]])) == list(range(10))  # rest of epoch 1
    rest = np.concatenate([data.next_batch_indices(4), data.next_batch_indices(4)])
    assert data.epochs_completed == 2
    assert sorted(np.concatenate([crossing[2:], rest])) == list(range(10))  # all of epoch 2


def test_batch_larger_than_the_data_set_spans_epochs():
    data = small_dataset(4)
    batch = data.next_batch_indices(10)
    assert data.epochs_completed == 2
    assert sorted(batch[:4]) == sorted(batch[4:8]) == [0, 1, 2, 3]


def test_next_batch_follows_next_batch_indices():
    a, b = small_dataset(10, seed=7), small_dataset(10, seed=7)
    for size in [3, 4, 5, 10, 1]:
        indices = b.next_batch_indices(size)
        assert indices.dtype == np.int32
        images, labels = a.next_batch(size)
        assert np.array_equal(labels, indices)  # labels are 0..9: they name the example
        assert np.array_equal(images, b.images[indices])
    assert a.epochs_completed == b.epochs_completed == 2


def test_seed_reproducibility():
    def sequence(seed):
        data = small_dataset(100, seed=seed)
        return np.concatenate([data.next_batch_indices(30) for _ in range(10)])

    assert np.array_equal(sequence(1), sequence(1))
    assert not np.array_equal(sequence(1), sequence(2))
    assert not np.array_equal(sequence(None), sequence(None))


def test_bad_batch_sizes():
    with pytest.raises(ValueError, match="batch_size"):
        small_dataset().next_batch(0)
    with pytest.raises(ValueError, match="empty"):
        DataSet(np.zeros((0, 784), np.float32), np.zeros(0, np.uint8)).next_batch(1)


def test_read_data_sets_seed_and_independent_generators(tmp_path):
    checksums = write_fake_mnist(tmp_path)

    def load(seed):
        return read_data_sets(tmp_path, validation_size=10, seed=seed, mirrors=[],
                              checksums=checksums)

    a, b, c = load(5), load(5), load(6)
    b.validation.next_batch(7)  # drawing from validation must not change the train order
    b.test.next_batch(3)
    train_a = [a.train.next_batch_indices(16) for _ in range(5)]
    assert all(np.array_equal(x, b.train.next_batch_indices(16)) for x in train_a)
    assert not all(np.array_equal(x, c.train.next_batch_indices(16)) for x in train_a)
    assert a.train.epochs_completed == 2  # 80 examples drawn from 40


def test_to_tf_dataset():
    data = small_dataset(6)
    dataset = data.to_tf_dataset()
    pairs = [(image.numpy(), int(label)) for image, label in dataset]
    assert len(pairs) == 6
    assert [label for _, label in pairs] == list(range(6))
    assert np.array_equal(np.stack([image for image, _ in pairs]), data.images)


# ---------------------------------------------------------------- fake files: folders and formats

def test_fake_files_load(tmp_path):
    contents = fake_contents(n_train=50, n_test=20)
    checksums = write_fake_mnist(tmp_path, contents)
    data = read_data_sets(tmp_path, one_hot=False, validation_size=10, mirrors=[],
                          checksums=checksums)
    counts = (data.train.num_examples, data.validation.num_examples, data.test.num_examples)
    assert counts == (40, 10, 20)
    pixels, labels = pixels_of(contents[TRAIN_IMAGES]), labels_of(contents[TRAIN_LABELS])
    assert np.array_equal(np.rint(data.validation.images * 255).reshape(-1, 28, 28), pixels[:10])
    assert np.array_equal(np.rint(data.train.images * 255).reshape(-1, 28, 28), pixels[10:])
    assert np.array_equal(data.validation.labels, labels[:10])
    assert np.array_equal(data.train.labels, labels[10:])
    assert np.array_equal(data.test.labels, labels_of(contents[TEST_LABELS]))
    one_hot = read_data_sets(tmp_path, one_hot=True, validation_size=0, mirrors=[],
                             checksums=checksums)
    assert np.array_equal(one_hot.train.labels.argmax(axis=1), labels)
    assert one_hot.validation.num_examples == 0


def test_uncompressed_files(tmp_path):
    contents = fake_contents()
    checksums = write_fake_mnist(tmp_path, contents, gz=False)
    data = read_data_sets(tmp_path, validation_size=5, mirrors=[], checksums=checksums)
    assert data.train.num_examples == 45 and data.test.num_examples == 20
    assert np.array_equal(np.rint(data.test.images * 255).reshape(-1, 28, 28),
                          pixels_of(contents[TEST_IMAGES]))


def test_read_only_folder(tmp_path):
    folder = tmp_path / "readonly"
    checksums = write_fake_mnist(folder)
    before = listing(folder)
    folder.chmod(0o555)
    try:
        data = read_data_sets(folder, validation_size=5, mirrors=[], checksums=checksums)
        assert data.train.num_examples == 45
        # (root may write into a 0o555 folder anyway, so also check that nothing was written)
        assert listing(folder) == before
    finally:
        folder.chmod(stat.S_IRWXU)


@pytest.mark.parametrize("size", [-1, 51])
def test_bad_validation_size(tmp_path, size):
    checksums = write_fake_mnist(tmp_path)  # 50 training examples
    with pytest.raises(MnistError, match=rf"validation_size must be between 0 and 50 .*got {size}"):
        read_data_sets(tmp_path, validation_size=size, mirrors=[], checksums=checksums)


def test_data_dir_beats_environment_beats_default(tmp_path, monkeypatch):
    argument_dir, env_dir, cwd_data = tmp_path / "arg", tmp_path / "env", tmp_path / "cwd" / "data"
    sums = {}
    for folder, n_train in [(argument_dir, 30), (env_dir, 40), (cwd_data, 50)]:
        sums.update({(folder, name): s for name, s in
                     write_fake_mnist(folder, fake_contents(n_train=n_train)).items()})
    monkeypatch.chdir(cwd_data.parent)  # a data/ folder in the current directory must be ignored

    def train_count(data_dir, folder):
        checksums = {name: sums[folder, name] for name in mnistdata.FILES}
        data = read_data_sets(data_dir, validation_size=0, mirrors=[], checksums=checksums)
        return data.train.num_examples

    monkeypatch.setenv("MNIST_DATA_DIR", str(env_dir))
    assert train_count(str(argument_dir), argument_dir) == 30
    assert train_count(None, env_dir) == 40
    monkeypatch.delenv("MNIST_DATA_DIR")
    assert mnistdata.data_folder() == ROOT / "data" == mnistdata.DEFAULT_DATA_DIR
    # The default folder is data/ next to mnistdata.py, never ./data: whether the project's
    # data/ holds real MNIST or nothing, loading with the fake checksums must fail there.
    with pytest.raises(MnistError) as error:
        train_count(None, cwd_data)
    assert str(ROOT / "data") in str(error.value)


def load_with(folder, contents, **options):
    """Write contents (name -> decompressed bytes) gzipped, load with their checksums."""
    checksums = write_fake_mnist(folder, contents)
    return read_data_sets(folder, mirrors=[], checksums=checksums, validation_size=0, **options)


def test_wrong_magic_number(tmp_path):
    contents = fake_contents()
    contents[TRAIN_IMAGES] = idx_images(pixels_of(contents[TRAIN_IMAGES]), magic=2049)
    with pytest.raises(MnistError) as error:
        load_with(tmp_path, contents)
    message = str(error.value)
    assert f"train-images-idx3-ubyte.gz in {tmp_path}" in message
    assert "wrong magic number 2049, expected 2051" in message


def test_labels_with_images_magic(tmp_path):
    contents = fake_contents()
    contents[TEST_LABELS] = idx_labels(labels_of(contents[TEST_LABELS]), magic=2051)
    with pytest.raises(MnistError, match=r"t10k-labels-idx1-ubyte\.gz in .*"
                                         r"wrong magic number 2051, expected 2049"):
        load_with(tmp_path, contents)


def test_wrong_image_size(tmp_path):
    contents = fake_contents()
    contents[TEST_IMAGES] = idx_images(np.zeros((20, 20, 20)))
    with pytest.raises(MnistError, match=r"t10k-images-idx3-ubyte\.gz in .*"
                                         r"images are 20x20, expected 28x28"):
        load_with(tmp_path, contents)


def test_truncated_content(tmp_path):
    contents = fake_contents()
    contents[TRAIN_IMAGES] = contents[TRAIN_IMAGES][:-100]  # valid gzip of a cut IDX file
    with pytest.raises(MnistError) as error:
        load_with(tmp_path, contents)
    message = str(error.value)
    assert f"train-images-idx3-ubyte.gz in {tmp_path}" in message
    assert f"50 images need {16 + 50 * 784} bytes, the file has {16 + 50 * 784 - 100}" in message


def test_shorter_than_header(tmp_path):
    contents = fake_contents()
    contents[TRAIN_LABELS] = contents[TRAIN_LABELS][:5]
    with pytest.raises(MnistError, match=r"train-labels-idx1-ubyte\.gz in .*truncated: 5 bytes"):
        load_with(tmp_path, contents)


@pytest.mark.parametrize("damage", ["truncated gzip", "corrupt gzip", "not gzip"])
def test_bad_gzip(tmp_path, damage):
    checksums = write_fake_mnist(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    data = path.read_bytes()
    if damage == "truncated gzip":
        data = data[: len(data) // 2]
    elif damage == "corrupt gzip":
        data = data[:100] + bytes(b ^ 0xFF for b in data[100:200]) + data[200:]
    else:
        data = b"<html>403 Forbidden</html>"
    path.write_bytes(data)
    with pytest.raises(MnistError) as error:
        read_data_sets(tmp_path, mirrors=[], checksums=checksums, validation_size=0)
    message = str(error.value)
    assert f"t10k-images-idx3-ubyte.gz in {tmp_path}: not a complete gzip file" in message
    assert message.endswith("Delete it, and the next run downloads it again")
    assert "\n" not in message
    assert path.read_bytes() == data  # a user's file is never deleted


def test_uncompressed_file_that_is_gzipped(tmp_path):
    checksums = write_fake_mnist(tmp_path, gz=False)
    (tmp_path / TRAIN_LABELS).write_bytes(gzip.compress((tmp_path / TRAIN_LABELS).read_bytes()))
    with pytest.raises(MnistError, match=rf"{TRAIN_LABELS} in .*wrong magic number"):
        read_data_sets(tmp_path, mirrors=[], checksums=checksums)


def test_count_mismatch(tmp_path):
    contents = fake_contents(n_train=50)
    contents[TRAIN_LABELS] = idx_labels(np.arange(49) % 10)
    with pytest.raises(MnistError) as error:
        load_with(tmp_path, contents)
    message = str(error.value)
    assert TRAIN_IMAGES in message and TRAIN_LABELS in message and str(tmp_path) in message
    assert "50 images but 49 labels" in message


def test_label_out_of_range(tmp_path):
    contents = fake_contents(n_test=20)
    labels = np.arange(20) % 10
    labels[13] = 10
    contents[TEST_LABELS] = idx_labels(labels)
    with pytest.raises(MnistError) as error:
        load_with(tmp_path, contents)
    message = str(error.value)
    assert f"t10k-labels-idx1-ubyte.gz in {tmp_path}" in message
    assert "label 10 at index 13 is out of range 0-9" in message


def test_checksum_mismatch_names_file_and_both_hashes(tmp_path):
    checksums = write_fake_mnist(tmp_path)
    wrong = dict(checksums, **{TEST_LABELS: "ab" * 32})
    before = listing(tmp_path)
    with pytest.raises(MnistError) as error:
        read_data_sets(tmp_path, mirrors=[], checksums=wrong)
    message = str(error.value)
    assert f"t10k-labels-idx1-ubyte.gz in {tmp_path}: checksum mismatch" in message
    assert "ab" * 32 in message and checksums[TEST_LABELS] in message
    assert listing(tmp_path) == before  # the user's file is left alone


def test_real_checksums_are_the_default(tmp_path):
    # Well-formed files that are not MNIST are rejected by the built-in SHA256 table.
    write_fake_mnist(tmp_path)
    with pytest.raises(MnistError) as error:
        read_data_sets(tmp_path, mirrors=[])
    message = str(error.value)
    assert "checksum mismatch" in message and mnistdata.SHA256[TRAIN_IMAGES] in message


def test_missing_files_without_mirrors(tmp_path):
    folder = tmp_path / "nothing"
    with pytest.raises(MnistError) as error:
        read_data_sets(folder, mirrors=[])
    message = str(error.value)
    assert f"train-images-idx3-ubyte.gz is missing from {folder}" in message
    assert "to work offline" in message and "MNIST_DATA_DIR" in message
    assert not folder.exists()  # nothing to download: nothing created


# ---------------------------------------------------------------- the downloader

@functools.lru_cache(maxsize=None)
def gzip_bomb() -> bytes:
    """A small gzip file (some 60 kB) that decompresses to more than mnistdata.MAX_SIZE bytes."""
    return gzip.compress(bytes(mnistdata.MAX_SIZE + 1), compresslevel=9)


class MirrorServer:
    """A local HTTP(S) server with one mirror per path prefix, recording the requested paths.

    /missing/ answers 404, /forbidden/ 403, /garbage/ serves bytes that are not gzip,
    /short/ announces the whole file but sends half of it, /wrong/ serves well-formed
    gzipped IDX files with other content, /huge/ announces more than mnistdata.MAX_SIZE
    bytes, /bomb/ serves a gzip bomb, /good/ the expected files. A mirror named in
    `redirects` answers 302 to that base URL. `before_sending`, if set, is called before
    a file is sent. tls: (certificate file, key file) to serve https://.
    """

    def __init__(self, good: dict, tls=None):
        self.good = {name + ".gz": gzip.compress(data) for name, data in good.items()}
        other = fake_contents(seed=99)
        self.wrong = {name + ".gz": gzip.compress(data) for name, data in other.items()}
        self.requests = []
        self.redirects = {}
        self.before_sending = None
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                _, mirror, filename = self.path.split("/", 2)
                if mirror == "missing" or filename not in server.good:
                    return self.send_error(404)
                if mirror == "forbidden":
                    return self.send_error(403)
                if mirror in server.redirects:
                    self.send_response(302)
                    self.send_header("Location", server.redirects[mirror] + filename)
                    self.send_header("Content-Length", "0")
                    return self.end_headers()
                if mirror == "huge":  # headers only: the download must stop there
                    self.send_response(200)
                    self.send_header("Content-Length", str(mnistdata.MAX_SIZE + 1))
                    return self.end_headers()
                if server.before_sending:
                    server.before_sending()
                body = {"garbage": b"\x00not gzip at all" * 100, "wrong": server.wrong[filename],
                        "good": server.good[filename], "short": server.good[filename],
                        "bomb": gzip_bomb() if mirror == "bomb" else None}.get(mirror)
                if body is None:
                    return self.send_error(404)
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if mirror == "short" else body)

            def log_message(self, *args):  # keep the test output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def mirrors(self, *names):
        return [f"{self.url}/{name}/" for name in names]

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


@pytest.fixture
def server():
    contents = fake_contents()
    mirror = MirrorServer(contents)
    mirror.contents = contents
    mirror.checksums = sha256s(contents)
    yield mirror
    mirror.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    """(certificate, key) files of a self-signed certificate for 127.0.0.1, made by openssl."""
    if not shutil.which("openssl"):
        pytest.skip("the openssl command is needed to make a certificate for the https tests")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert, "-days",
                    "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture
def https_server(server, certificate, monkeypatch):
    """The same mirrors as `server`, over https://: urllib trusts the certificate through
    SSL_CERT_FILE (read at each connection), so mnistdata runs unchanged."""
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    mirror = MirrorServer(server.contents, tls=certificate)
    yield mirror
    mirror.close()


def closed_port() -> int:
    """A port nobody listens on: bound, then closed, so connecting is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_downloaded(folder: Path, server):
    """The folder holds exactly the four verified .gz files, nothing temporary or corrupt."""
    assert (sorted(p.name for p in folder.iterdir())
            == sorted(name + ".gz" for name in mnistdata.FILES))
    for name in mnistdata.FILES:
        data = gzip.decompress((folder / (name + ".gz")).read_bytes())
        assert hashlib.sha256(data).hexdigest() == server.checksums[name]


def test_download_skips_bad_mirrors(tmp_path, server, capfd):
    folder = tmp_path / "new" / "data"  # does not exist yet
    mirrors = server.mirrors("missing", "forbidden", "garbage", "short", "wrong", "good")
    data = read_data_sets(folder, validation_size=10, mirrors=mirrors, checksums=server.checksums)
    assert_downloaded(folder, server)
    assert data.train.num_examples == 40 and data.test.num_examples == 20
    assert np.array_equal(np.rint(data.test.images * 255).reshape(-1, 28, 28),
                          pixels_of(server.contents[TEST_IMAGES]))
    # Every file was tried on every mirror, in order, until the good one.
    for name in mnistdata.FILES:
        tried = [path.split("/")[1] for path in server.requests
                 if path.endswith("/" + name + ".gz")]
        assert tried == ["missing", "forbidden", "garbage", "short", "wrong", "good"]
    log = capfd.readouterr().err
    for problem in ["HTTP 404", "HTTP 403", "not a complete gzip file", "download incomplete",
                    "checksum mismatch"]:
        assert problem in log
    assert f"downloaded {server.url}/good/train-images-idx3-ubyte.gz" in log
    # Once there, the files are read locally: no more requests.
    count = len(server.requests)
    read_data_sets(folder, validation_size=0, mirrors=mirrors, checksums=server.checksums)
    assert len(server.requests) == count


def test_download_only_missing_files(tmp_path, server):
    write_fake_mnist(tmp_path, server.contents)
    (tmp_path / (TEST_IMAGES + ".gz")).unlink()
    (tmp_path / (TRAIN_LABELS + ".gz")).unlink()
    read_data_sets(tmp_path, validation_size=0, mirrors=server.mirrors("good"),
                   checksums=server.checksums)
    assert sorted(server.requests) == sorted(f"/good/{name}.gz"
                                             for name in [TEST_IMAGES, TRAIN_LABELS])
    assert_downloaded(tmp_path, server)


def test_every_mirror_failing_lists_what_was_tried(tmp_path, server):
    mirrors = server.mirrors("missing", "wrong")
    with pytest.raises(MnistError) as error:
        read_data_sets(tmp_path, mirrors=mirrors, checksums=server.checksums)
    message = str(error.value)
    assert "\n" not in message
    assert f"train-images-idx3-ubyte.gz is missing from {tmp_path}" in message
    assert f"{server.url}/missing/train-images-idx3-ubyte.gz: HTTP 404" in message
    assert f"{server.url}/wrong/train-images-idx3-ubyte.gz: checksum mismatch" in message
    assert "to work offline" in message and str(tmp_path) in message
    assert list(tmp_path.iterdir()) == []  # nothing corrupt or temporary left behind


def test_connection_refused_gives_the_offline_message(tmp_path):
    port = closed_port()
    mirrors = [f"http://127.0.0.1:{port}/first/", f"http://127.0.0.1:{port}/second"]
    folder = tmp_path / "data"
    with pytest.raises(MnistError) as error:
        read_data_sets(folder, mirrors=mirrors)
    message = str(error.value)
    assert "\n" not in message
    assert (f"http://127.0.0.1:{port}/first/train-images-idx3-ubyte.gz: connection refused"
            in message)
    assert (f"http://127.0.0.1:{port}/second/train-images-idx3-ubyte.gz: connection refused"
            in message)
    assert "to work offline, put the four MNIST files" in message
    assert f"in {folder} or point MNIST_DATA_DIR" in message
    assert f"missing from {folder} (no such folder)" in message
    assert not folder.exists(), "a folder is made only to save a verified download in it"


def test_a_relative_mnist_data_dir_is_named_absolute_and_never_created(tmp_path, monkeypatch):
    """The workshop's MNIST_DATA_DIR=../shared/mnist, used from another folder."""
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    monkeypatch.setenv("MNIST_DATA_DIR", "../shared/mnist")
    assert mnistdata.data_folder() == tmp_path / "shared" / "mnist"
    with pytest.raises(MnistError) as error:
        read_data_sets(mirrors=[f"http://127.0.0.1:{closed_port()}/"])
    message = str(error.value)
    assert (f"missing from {tmp_path / 'shared' / 'mnist'} (no such folder; "
            "MNIST_DATA_DIR=../shared/mnist is relative to the current folder)") in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere"]


def test_mnist_mirrors_environment_variable(tmp_path, server, monkeypatch):
    monkeypatch.setenv("MNIST_MIRRORS", " ".join(server.mirrors("forbidden", "good")))
    read_data_sets(tmp_path / "a", validation_size=0, checksums=server.checksums)
    assert_downloaded(tmp_path / "a", server)
    assert [p.split("/")[1] for p in server.requests] == ["forbidden", "good"] * 4
    # The mirrors argument wins over the environment variable.
    monkeypatch.setenv("MNIST_MIRRORS", f"http://127.0.0.1:{closed_port()}/")
    server.requests.clear()
    read_data_sets(tmp_path / "b", validation_size=0, mirrors=server.mirrors("good"),
                   checksums=server.checksums)
    assert_downloaded(tmp_path / "b", server)
    assert [p.split("/")[1] for p in server.requests] == ["good"] * 4


# ---------------------------------------------------------------- the downloader: security

def test_default_mirrors_are_https():
    assert mnistdata.MIRRORS and all(url.startswith("https://") for url in mnistdata.MIRRORS)


@pytest.mark.parametrize("scheme, refusal", [
    ("http", "redirected to an http:// address, refused"),
    ("ftp", "redirected to an ftp:// address, refused"),
    ("file", "is not allowed"),  # urllib itself refuses file:// redirects
])
def test_https_download_is_never_redirected_to_another_scheme(tmp_path, server, https_server,
                                                             capfd, scheme, refusal):
    target = {"http": server.url, "ftp": server.url.replace("http", "ftp", 1), "file": "file://"}
    https_server.redirects["away"] = target[scheme] + "/good/"
    mirrors = https_server.mirrors("away") + server.mirrors("good")
    read_data_sets(tmp_path, validation_size=0, mirrors=mirrors, checksums=server.checksums)
    assert_downloaded(tmp_path, server)  # from the next mirror
    assert [p.split("/")[1] for p in https_server.requests] == ["away"] * 4
    assert [p.split("/")[1] for p in server.requests] == ["good"] * 4  # no redirect followed
    log = capfd.readouterr().err.splitlines()
    line = f"mnistdata: {https_server.url}/away/{TRAIN_IMAGES}.gz: "
    assert any(text.startswith(line) and refusal in text for text in log), log


def test_redirects_that_keep_or_raise_security_are_followed(tmp_path, server, https_server, capfd):
    server.redirects["up"] = https_server.url + "/good/"  # http -> https
    server.redirects["moved"] = server.url + "/good/"  # http -> http: the user chose http
    https_server.redirects["moved"] = https_server.url + "/good/"  # https -> https
    for mirror in [*server.mirrors("up", "moved"), *https_server.mirrors("moved")]:
        folder = tmp_path / str(len(list(tmp_path.iterdir())))
        read_data_sets(folder, validation_size=0, mirrors=[mirror], checksums=server.checksums)
        assert_downloaded(folder, server)
    # A user's http:// mirror is used without a word: only the downloads are reported.
    log = capfd.readouterr().err.splitlines()
    assert len(log) == 12 and all(text.startswith("mnistdata: downloaded ") for text in log), log


def test_a_user_mirror_cannot_switch_off_the_checksums(tmp_path, server, monkeypatch):
    # The served files are well-formed IDX but not MNIST: SHA256 rejects them, whichever
    # way the mirror was chosen; only the checksums parameter (for tests) replaces it.
    monkeypatch.setenv("MNIST_MIRRORS", " ".join(server.mirrors("good")))
    for options in [{}, {"mirrors": server.mirrors("good")}]:
        with pytest.raises(MnistError) as error:
            read_data_sets(tmp_path, **options)
        message = str(error.value)
        assert f"{server.url}/good/{TRAIN_IMAGES}.gz: checksum mismatch" in message
        assert mnistdata.SHA256[TRAIN_IMAGES] in message
    assert list(tmp_path.iterdir()) == []  # nothing unverified saved


@pytest.mark.parametrize("umask", [0o002, 0o027])
def test_saving_ignores_planted_links_and_follows_the_umask(tmp_path, server, umask):
    """In a shared folder, links planted under the temporary names the downloader used to
    use (.NAME.PID.part) must not make it write anywhere else."""
    folder, outside = tmp_path / "shared", tmp_path / "outside.txt"
    folder.mkdir()
    outside.write_bytes(b"not yours")
    planted = {f".{name}.gz.{os.getpid()}.part" for name in mnistdata.FILES}
    for link in planted:
        (folder / link).symlink_to(outside)
    old_umask = os.umask(umask)
    try:
        read_data_sets(folder, validation_size=0, mirrors=server.mirrors("good"),
                       checksums=server.checksums)
    finally:
        os.umask(old_umask)
    assert outside.read_bytes() == b"not yours"
    # The four files and the untouched links: no temporary file left behind.
    saved = {name + ".gz" for name in mnistdata.FILES}
    assert {p.name for p in folder.iterdir()} == saved | planted
    assert all((folder / link).is_symlink() for link in planted)
    for name in saved:  # as readable as any file the user makes
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o666 & ~umask


def test_a_failed_save_leaves_no_temporary_file(tmp_path, server):
    # While the file downloads, a folder appears where it goes: a file cannot replace it.
    in_the_way = tmp_path / (TRAIN_IMAGES + ".gz") / "something"
    server.before_sending = lambda: in_the_way.mkdir(parents=True, exist_ok=True)
    with pytest.raises(MnistError) as error:
        read_data_sets(tmp_path, mirrors=server.mirrors("good"), checksums=server.checksums)
    message = str(error.value)
    assert message.startswith(f"{TRAIN_IMAGES}.gz: downloaded, "
                              f"but cannot write {tmp_path / TRAIN_IMAGES}.gz (")
    assert "\n" not in message
    assert [p.name for p in tmp_path.iterdir()] == [TRAIN_IMAGES + ".gz"]  # the folder only


def test_oversized_downloads_are_refused(tmp_path, server, capfd):
    mirrors = server.mirrors("huge", "bomb", "good")
    read_data_sets(tmp_path, validation_size=0, mirrors=mirrors, checksums=server.checksums)
    assert_downloaded(tmp_path, server)
    log = capfd.readouterr().err
    limit = f"{mnistdata.MAX_SIZE / 1e6:.1f} MB"
    for name in mnistdata.FILES:
        huge, bomb = f"{server.url}/huge/{name}.gz", f"{server.url}/bomb/{name}.gz"
        assert f"{huge}: bigger than any MNIST file (over {limit}), refused" in log
        assert f"{bomb}: decompresses to more than {limit}" in log
