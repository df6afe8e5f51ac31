"""savedmodel.py: a lesson's SavedModel: its explain signature gives the lesson's own
layers; the latest model is found; what is not the lab's model gets one line; the model
loads alone, without the lab's code."""
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import explain
import plumbing
import predict
import savedmodel
from conftest import ROOT, child_env, drawn_digit
from helpers import (LESSONS, SHARED_MODULES, lesson_variables, load_lesson, parse,
                     run_predict)


SHAPE = re.compile(r"\b(Y\d) \[batch, ([\d, ]+)\]")


def sketch_shapes(script):
    """The layer shapes the lesson's ASCII sketch announces: {"Y1": [28, 28, 4], ...}."""
    doc = (ROOT / script).read_text().split('"""')[1]
    shapes = {name: [int(n) for n in dims.split(",")] for name, dims in SHAPE.findall(doc)}
    return {name: dims for name, dims in shapes.items()
            if dims != [10]}  # the output: probabilities


# Convolutional or batch-norm lessons: 3 to 6 s each to trace and save here, in the slow tier.
HEAVY = ("3.0", "3.1", "4.0", "4.1", "4.2", "5.0", "5.1")


@pytest.mark.parametrize("script", [s for s in LESSONS if s.split("_")[1] not in HEAVY] + [
    pytest.param(s, marks=pytest.mark.slow) for s in LESSONS if s.split("_")[1] in HEAVY])
def test_the_saved_layers_are_the_lessons_own(script, mnist, monkeypatch, tmp_path):
    """Saved, then loaded without the lesson's code: every layer's output for a digit equals
    what the lesson's model computes, in the sketch's order and shapes."""
    lesson = load_lesson(script, monkeypatch)
    variables, first = lesson_variables(lesson)
    savedmodel.save(lesson["model"], variables, tmp_path / "model", filters=first)
    digits = mnist.test.images[:3, :, :, 0]
    seen = explain.explain(digits, tmp_path / "model")

    savedmodel._naming.append({})  # the lesson's own model, its layers named as it runs
    logits = lesson["model"](tf.constant(digits[..., None]))
    own = savedmodel._naming.pop()
    expected = sketch_shapes(script)
    assert list(seen[0].layers) == list(own) == list(expected), \
        "every layer of the sketch, in order"
    for k in range(3):
        np.testing.assert_allclose(seen[k].probabilities, tf.nn.softmax(logits[k]), atol=1e-5)
        for name, Y in own.items():
            assert list(seen[k].layers[name].shape) == expected[name]
            np.testing.assert_allclose(seen[k].layers[name], Y[k], rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(seen[0].filters, first.numpy())
    reads_the_image = lesson.get("W1", lesson.get("W"))
    if "averages" in lesson:  # 5.1: what is tested and saved is the average of W1
        reads_the_image = lesson["averages"][lesson["variables"].index(reads_the_image)]
    assert first is reads_the_image, "the weights that read the image"
    assert seen[0].attribution.shape == (28, 28)


@pytest.mark.slow
def test_default_model_is_the_most_recently_saved(model_dir, tmp_path):
    app = tmp_path / "app"
    app.mkdir()
    for module in SHARED_MODULES:  # predict.py and the modules it uses
        shutil.copy(module, app)
    for name, mtime in [("older", 1_000_000), ("newer", 2_000_000), (".newer.tmp123", 3_000_000)]:
        shutil.copytree(model_dir, app / "models" / name)  # the hidden one: a model being written
        os.utime(app / "models" / name / "saved_model.pb", (mtime, mtime))
    (app / "models" / "notes").mkdir()
    drawn_digit(1, 80).save(tmp_path / "one.png")
    result = run_predict("one.png", cwd=tmp_path, script=app / "predict.py")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [
        f"using the most recent model: {app / 'models' / 'newer'}"]
    assert parse(result.stdout)["one.png"][0] == 1


@pytest.mark.slow
def test_not_a_model_clear_one_line_errors(model, model_dir, tmp_path):
    import tensorflow as tf

    module = tf.Module()
    module.w = tf.Variable(2.0)
    module.f = tf.function(lambda x: {"y": x * module.w},
                           input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
    tf.saved_model.save(module, str(tmp_path / "foreign"), signatures={"serving_default": module.f})
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "saved_model.pb").write_bytes(b"not a protocol buffer")
    (tmp_path / "no_weights").mkdir()
    shutil.copy(model_dir / "saved_model.pb", tmp_path / "no_weights")
    (tmp_path / "empty").mkdir()
    cases = {
        "foreign": "not a digit model saved by the lab",
        "garbage": "cannot load it",
        "no_weights": "cannot load it",
        "empty": "not a saved model (no saved_model.pb in it)",
        "missing": "no such folder",
    }
    for name, problem in cases.items():
        with pytest.raises(plumbing.UserError) as error:
            savedmodel.load(tmp_path / name)
        message = str(error.value)
        assert message.startswith(f"model {tmp_path / name}: ") and problem in message
        assert "\n" not in message

    drawn_digit(1, 50).save(tmp_path / "one.png")
    result = run_predict("--model", "foreign", "one.png", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("error: model foreign: not a digit model saved by the lab")
    assert result.stderr.count("\n") == 1 and result.stdout == ""


@pytest.mark.slow
def test_fresh_process_without_the_project_gives_the_same_digits(model, model_dir, classified,
                                                                  pictures, tmp_path):
    folder, _ = pictures
    _, names, found = classified
    names = names[::3]
    digits = np.stack([predict.read_image(folder / n) for n in names])
    np.save(tmp_path / "digits.npy", digits)
    shutil.copytree(model_dir, tmp_path / "copied_model")
    script = textwrap.dedent("""
        import importlib.util, json, os
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
        import numpy as np
        import tensorflow as tf
        assert not any(importlib.util.find_spec(m) for m in ("lab", "predict", "mnistdata"))
        model = tf.saved_model.load("copied_model")
        out = model.signatures["serving_default"](images=tf.constant(np.load("digits.npy")))
        probabilities = out["probabilities"].numpy()
        also = model.serve(np.load("digits.npy"))["digits"].numpy()
        print(json.dumps({"digits": out["digits"].numpy().tolist(),
                          "argmax": probabilities.argmax(1).tolist(),
                          "serve": also.tolist(), "sums": probabilities.sum(1).tolist()}))
    """)
    env = child_env(PYTHONPATH="")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    cli = [found[n][0] for n in names]
    in_process = model(digits).argmax(1).tolist()
    assert out["digits"] == out["argmax"] == out["serve"] == cli == in_process
    assert np.allclose(out["sums"], 1, atol=1e-5)
