"""dashboard_callback.py: the dashboard for Keras' model.fit (tensorflowvisu.DashboardCallback).

Real Keras fits on a small share of real MNIST, in this process (Agg: no window) and in a
real window on Xvfb; a CIFAR-shaped colour model and a model of plain features on random
data. (In a real notebook kernel: test_notebook.py.)
"""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest
from PIL import Image

import compare
import figures
import lab
import pictures
import plumbing
import tensorflowvisu as tv
from conftest import ROOT, child_env
from helpers import assert_picture, dense_model
from history import History
from plumbing import UserError


# --------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def digits(mnist_dir):
    """A small share of real MNIST as Keras users hold it: 3,000 training and 1,000 test
    digits [N, 28, 28, 1] in [0, 1], labels 0-9."""
    import mnistdata

    mnist = mnistdata.read_data_sets(mnist_dir, reshape=False, validation_size=0)
    return (mnist.train.images[:3000], mnist.train.labels[:3000],
            mnist.test.images[:1000], mnist.test.labels[:1000])


class AtBatch(keras.callbacks.Callback):
    """Does something at the end of the batch number `at` of the fit (counted from 1)."""

    def __init__(self, at, action):
        super().__init__()
        self.at, self.action, self.seen = at, action, 0

    def on_train_batch_end(self, batch, logs=None):
        self.seen += 1
        if self.seen == self.at:
            self.action()


def red_frames(picture):
    """How many pixels have the red frame of misread colour pictures."""
    return int(np.all(np.abs(picture[..., :3] / 255 - pictures.ERROR_FRAME) < 0.02, axis=-1).sum())


# ----------------------------------------------------------------------- Keras


def test_keras_fit_on_mnist_gets_the_lessons_dashboard_and_history(digits, tmp_path,
                                                                   lesson_history, capsys):
    x, y, x_test, y_test = digits
    model = dense_model()
    raw = []  # Keras' own logs at every batch: running means over the epoch
    recorder = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: raw.append((batch + 1, dict(logs))))
    dashboard = tv.DashboardCallback(validation_data=(x_test, y_test), training_data=(x, y),
                                     name="keras_dense", history=tmp_path / "run.json",
                                     png=tmp_path / "run.png", live=False)
    model.fit(x, y, batch_size=40, epochs=2, callbacks=[recorder, dashboard], verbose=0)
    history = dashboard.history  # epochs of 75 batches
    assert history.name == "keras_dense" and history.config["steps"] == 150
    assert history.train["step"] == [20, 40, 60, 80, 100, 120, 140, 150], "every 20, the end"
    assert history.test["step"] == [0, 75, 150], "the start and each epoch's end"
    # The training curve: the mean over the batches since the previous point (or since the
    # epoch began), not Keras' running mean over the epoch
    per_batch = [k * logs["loss"] - (k - 1) * previous["loss"] if k > 1 else logs["loss"]
                 for (k, logs), (_, previous) in zip(raw, [(0, {})] + raw)]
    points = history.train["step"]
    for since, step, loss in zip([0, *points], points, history.train["loss"]):
        since = max(since, (step - 1) // 75 * 75)
        assert loss == pytest.approx(np.mean(per_batch[since:step]), rel=1e-3), step
    # The validation curve: the model's own figures on the validation data
    scores = model.evaluate(x_test, y_test, verbose=0, return_dict=True)
    assert history.test["accuracy"][-1] == pytest.approx(scores["accuracy"], abs=1e-6)
    assert history.test["loss"][-1] == pytest.approx(scores["loss"], rel=1e-4)
    assert history.final["steps"] == 150 and not history.final["interrupted"]
    assert history.test["accuracy"][-1] > 0.85
    assert not np.isnan(history.train["learning_rate"]).any()

    saved = History.load(tmp_path / "run.json")
    assert saved.to_dict() == history.to_dict()
    kept = saved.panels
    assert len(kept["histograms"]["steps"]) == 3, "panels 4 and 5 at every validation"
    assert kept["training_digits"]["batch_size"] == 100, "100 training examples (panel 3)"
    assert kept["test_digits"]["total"] == 1000
    assert (tmp_path / "run.png").stat().st_size > 50_000
    out = capsys.readouterr().out
    assert f"keras_dense: max validation accuracy {max(history.test['accuracy']):.4f}" in out

    # compare overlays it on a lesson's curves
    fig = compare.plot_comparison([History.load(lesson_history), saved],
                             figures.offscreen_figure((16, 7)))
    assert list(fig.axes[0].lines[1].get_xdata()) == [0, 75, 150]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[0].startswith("1.0 softmax") and labels[1].startswith("keras dense: max ")


def test_validation_at_the_lessons_rhythm_or_every_n_batches(digits, tmp_path):
    x, y, x_test, y_test = digits
    for every, expected in (("lab", [i for i in range(121) if lab.test_due(i, 120)]),
                            (50, [0, 50, 100, 120])):
        dashboard = tv.DashboardCallback((x_test[:200], y_test[:200]), name="rhythm",
                                         test_every=every, history=False, live=False)
        dense_model().fit(x, y, batch_size=50, epochs=2, callbacks=[dashboard], verbose=0)
        assert dashboard.history.test["step"] == expected, every
    assert expected != [0, 60, 120] and lab.test_due(20, 120)
    with pytest.raises(UserError, match="test_every='hourly': choose"):
        tv.DashboardCallback(test_every="hourly")
    with pytest.raises(UserError, match="validation_data: give a pair of arrays"):
        tv.DashboardCallback(validation_data=x_test)
    with pytest.raises(UserError, match="1000 examples in x but 3000 labels"):
        tv.DashboardCallback(training_data=(x_test, y))
    # Without its own validation data: the val_ figures Keras logs, at each epoch's end
    dashboard = tv.DashboardCallback(history=False, live=False)
    one_hot = keras.utils.to_categorical(y_test, 10)
    model = dense_model()
    model.compile("adam", "categorical_crossentropy", metrics=["accuracy"])
    logs = model.fit(x_test, one_hot, validation_data=(x_test, one_hot), batch_size=100,
                     epochs=2, callbacks=[dashboard], verbose=0).history
    assert dashboard.history.test["step"] == [10, 20]
    assert dashboard.history.test["accuracy"] == pytest.approx(logs["val_accuracy"])


def test_ctrl_c_stops_fit_after_the_batch_and_the_history_is_still_written(digits, tmp_path):
    x, y, x_test, y_test = digits
    before = signal.getsignal(signal.SIGINT)
    dashboard = tv.DashboardCallback((x_test, y_test), (x, y), name="stopped", live=False,
                                     history=tmp_path / "run.json", png=tmp_path / "run.png")
    ctrl_c = AtBatch(30, lambda: os.kill(os.getpid(), signal.SIGINT))
    model = dense_model()
    model.fit(x, y, batch_size=50, epochs=3, callbacks=[dashboard, ctrl_c], verbose=0)
    assert model.stop_training and ctrl_c.seen == 30, "stopped after that batch"
    history = History.load(tmp_path / "run.json")
    assert history.final["interrupted"] and history.final["steps"] == 30
    assert history.test["step"] == [0, 30], "an interrupted fit gets its final measurement"
    assert (tmp_path / "run.png").exists()
    assert signal.getsignal(signal.SIGINT) is before, "Ctrl-C as before, once fit is over"

    # A fit that fails (Keras then skips on_train_end): Ctrl-C interrupts as usual after it
    def fail():
        raise ValueError("a bug in the user's callback")

    dashboard = tv.DashboardCallback((x_test, y_test), history=False, live=False)
    with pytest.raises(ValueError, match="a bug"):
        model.fit(x, y, batch_size=50, callbacks=[dashboard, AtBatch(5, fail)], verbose=0)
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)
    assert signal.getsignal(signal.SIGINT) is before


def test_colour_pictures_of_cifar_size(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (400, 32, 32, 3), dtype=np.uint8)
    y = rng.integers(0, 10, 400)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255),
                              keras.layers.Conv2D(8, 3, strides=2, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(10)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    dashboard = tv.DashboardCallback((x[:200], y[:200]), (x, y), name="cifar_shaped",
                                     history=tmp_path / "run.json", png=tmp_path / "run.png",
                                     movie=tmp_path / "fit.gif", live=False)
    model.fit(x, y, batch_size=40, epochs=2, callbacks=[dashboard], verbose=0)
    fig = dashboard.dashboard.figure
    assert [fig.axes[k].get_title() for k in (2, 5)] == ["Training images", "Validation images"]
    validation = fig.axes[5].images[0].get_array()
    assert fig.axes[5].images[0].get_extent() == [-0.5, 40 * 32 - 0.5, 25 * 32 - 0.5, -0.5]
    assert validation.shape == (25 * 32 // 2, 40 * 32 // 2, 4), \
        "a grid larger than the panel at 100 dpi is shrunk before it is drawn"
    assert red_frames(validation) > 100 * 4 * 15, "the misread ones, framed (shrunk: 15 px a side)"
    rgb = validation[:32 * 5, :, :3].astype(float)
    assert np.std(rgb[..., 0] - rgb[..., 1]) > 20, "in colour"
    assert fig.axes[2].images[0].get_visible() and red_frames(fig.axes[2].images[0].get_array())
    assert (tmp_path / "run.png").exists()
    with Image.open(tmp_path / "fit.gif") as movie:
        assert movie.n_frames == 3, "a frame at each validation: the start, 2 epochs' ends"
    history = History.load(tmp_path / "run.json")
    assert history.panels["inputs"] == [32, 32, 3]
    assert len(history.panels["histograms"]["steps"]) == 3
    with pytest.raises(UserError, match="did not train on MNIST digits"):
        tv.show_panel(history, 9)


def test_a_model_of_plain_features_gets_the_curves_and_histograms(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 20)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0)  # 3 classes
    model = dense_model(inputs=(20,), outputs=3)
    dashboard = tv.DashboardCallback((x[:200], y[:200]), (x, y), name="features",
                                     history=tmp_path / "run.json", png=tmp_path / "run.png",
                                     live=False, test_every="lab")
    model.fit(x, y, batch_size=20, epochs=2, callbacks=[dashboard], verbose=0)
    history = dashboard.history
    assert history.test["accuracy"][-1] > 0.7 and len(history.train["step"]) == 3
    fig = dashboard.dashboard.figure
    for k in (2, 5):
        assert [t.get_text() for t in fig.axes[k].texts if t.get_visible()] == \
            ["inputs [20]: not pictures"]
    assert len(fig.axes[3].lines[0].get_xdata()) == len(history.test["step"])
    assert History.load(tmp_path / "run.json").panels["inputs"] == [20]


# --------------------------------------------------------------- a real window


@pytest.mark.slow
def test_keras_fit_in_a_real_window_stops_when_it_is_closed(xvfb, tmp_path, mnist_dir):
    shot = tmp_path / "screen.png"
    code = textwrap.dedent(f"""
        import json
        import keras, matplotlib.pyplot as plt, mnistdata, plumbing, tensorflowvisu
        from PIL import ImageGrab
        plumbing.load_tensorflow()
        mnist = mnistdata.read_data_sets(reshape=False, validation_size=0)
        x, y = mnist.train.images[:6000], mnist.train.labels[:6000]
        model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                                  keras.layers.Dense(64, activation="relu"),
                                  keras.layers.Dense(10)])
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        dashboard = tensorflowvisu.DashboardCallback(
            (mnist.test.images, mnist.test.labels), (x, y), name="window", test_every=20,
            history={str(tmp_path / "run.json")!r}, png={str(tmp_path / "run.png")!r})

        def close():  # a look at the screen, then the user closes the window
            ImageGrab.grab(xdisplay={xvfb!r}).save({str(shot)!r})
            plt.close(dashboard.dashboard.figure)

        class AtBatch60(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if batch + 1 == 60:
                    close()

        model.fit(x, y, batch_size=100, epochs=2, callbacks=[dashboard, AtBatch60()],
                  verbose=0)
        print(json.dumps({{"backend": plt.get_backend(), "live": dashboard.dashboard.live,
                          "draws": len(dashboard.dashboard.draw_times)}}))
    """)
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=300,
                            env=child_env(mnist_dir, DISPLAY=xvfb, MPLBACKEND="TkAgg"))
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["backend"].lower() == "tkagg" and out["draws"] >= 2 and not out["live"]
    assert "the dashboard window was closed: fit stops after this batch" in result.stderr
    history = History.load(tmp_path / "run.json")
    assert history.final["interrupted"] and history.final["steps"] == 80, \
        "fit stops at the dashboard's next measurement after the window closed"
    screen = np.asarray(Image.open(shot).convert("RGB"))
    assert screen[:600, :1100].std() > 40, "the dashboard is drawn in the window"
    assert (tmp_path / "run.png").exists()


# ------------------------------------------------- mistakes and places (issue 28)


WRONG_INPUTS = ("error: the model takes inputs [784], validation_data gives it [28, 28, 1]: "
                "build the model for them (keras.Input((28, 28, 1)), then layers.Flatten() "
                "before Dense layers), or reshape them")


def test_a_model_built_for_other_inputs_stops_fit_with_one_line(digits, tmp_path, monkeypatch):
    """keras.Input((784,)) with 28x28x1 images: one line naming the mistake and the fix, when
    fit begins (not a traceback from deep inside Keras or tensorflowvisu)."""
    x, y, x_test, y_test = digits
    model = dense_model(inputs=(784,))
    dashboard = tv.DashboardCallback((x_test, y_test), (x, y), live=False,
                                     history=tmp_path / "run.json", png=tmp_path / "run.png")
    with pytest.raises(SystemExit) as stop:  # a script: exit status 1 and the one line
        model.fit(x, y, batch_size=100, epochs=1, callbacks=[dashboard], verbose=0)
    assert stop.value.code == WRONG_INPUTS
    monkeypatch.setattr(plumbing, "in_notebook", lambda: True)  # a notebook: the UserError
    with pytest.raises(UserError) as error:
        model.fit(x, y, batch_size=100, epochs=1, callbacks=[dashboard], verbose=0)
    assert f"error: {error.value}" == WRONG_INPUTS
    assert sorted(os.listdir(tmp_path)) == [], "nothing written"


def test_a_model_compiled_without_accuracy_gets_one_warning_saying_what_to_add(digits, capsys):
    x, y, x_test, y_test = digits
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(10)])
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    dashboard = tv.DashboardCallback((x_test, y_test), name="no_metrics", live=False,
                                     history=False)
    model.fit(x, y, batch_size=100, epochs=1, callbacks=[dashboard], verbose=0)
    err = capsys.readouterr().err
    assert err == ('warning: the model was compiled without metrics=["accuracy"]: the training '
                   'accuracy curve stays empty (model.compile(..., metrics=["accuracy"]))\n')
    assert dashboard.history.test["accuracy"][-1] > 0.5, "the validation curve is still there"


def keras_script(tmp_path, inputs="(28, 28, 1)", **options):
    """A user's script, as docs/your-own-network.md writes it (smaller: 2,000 training and
    500 validation digits), run in a user's shell without a display; options are given to
    DashboardCallback."""
    words = "".join(f", {key}={value!r}" for key, value in options.items())
    code = textwrap.dedent(f"""
        import mnistdata, tensorflowvisu
        import keras

        mnist = mnistdata.read_data_sets(reshape=False, validation_size=0)
        x, y = mnist.train.images[:2000], mnist.train.labels[:2000]
        x_test, y_test = mnist.test.images[:500], mnist.test.labels[:500]
        model = keras.Sequential([keras.Input({inputs}), keras.layers.Flatten(),
                                  keras.layers.Dense(200, activation="relu"),
                                  keras.layers.Dense(10)])
        model.compile(keras.optimizers.Adam(0.003),
                      keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"])
        dashboard = tensorflowvisu.DashboardCallback(
            validation_data=(x_test, y_test), training_data=(x, y), name="keras_dense"{words})
        model.fit(x, y, batch_size=100, epochs=1, callbacks=[dashboard])
    """)
    (tmp_path / "mine.py").write_text(code)
    return subprocess.run([sys.executable, "mine.py"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env=child_env(os.environ["MNIST_DATA_DIR"],
                                                                PYTHONPATH=ROOT))


@pytest.mark.slow
def test_a_script_with_a_model_for_other_inputs_ends_with_one_line(tmp_path, mnist_dir):
    result = keras_script(tmp_path, inputs="(784,)", history=str(tmp_path / "run.json"))
    assert result.returncode == 1
    assert result.stderr == WRONG_INPUTS + "\n", "no traceback through Keras or tensorflowvisu"
    assert not (tmp_path / "run.json").exists()


@pytest.mark.slow
def test_a_headless_script_keeps_a_picture_or_says_in_one_line_how(tmp_path, mnist_dir):
    """Without a display (MPLBACKEND=Agg) fit goes on: one warning line that names png=,
    exit 0; with png= the picture is written."""
    result = keras_script(tmp_path, history=str(tmp_path / "run.json"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ("no display: fit goes on without the live dashboard (png=FILE keeps "
                             "a picture)\n")
    assert "keras_dense: max validation accuracy" in result.stdout
    assert History.load(tmp_path / "run.json").final["steps"] == 20

    result = keras_script(tmp_path, history=False, png="me.png")
    assert result.returncode == 0, result.stderr
    assert result.stderr == "no display: fit goes on without the live dashboard\n"
    assert_picture(tmp_path / "me.png")
