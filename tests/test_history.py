"""history.py: a run's History (JSON, older files, its one-line summary), the measuring
schedule, the final report's figures."""
import json
import os

import numpy as np
import pytest

import compare
import figures
import history
import lab
from history import History
from plumbing import UserError


def test_history_round_trips_exactly_through_json(tmp_path):
    history = History("relu", {"lr": np.float32(0.003), "layers": np.array([200, 100]),
                               "seed": np.int64(0)})
    history.append_train(np.int64(0), np.float32(0.1), np.float64(2.3), 0.003, 0.5)
    history.append_train(20, 0.85, 0.4, np.float32(0.0029), 1.25)
    history.append_test(0, np.float32(0.098), 2.31, 0.7)
    history.final = {"max_test_accuracy": np.float32(0.098), "steps": np.int64(20),
                     "interrupted": False}
    history.report = {"accuracy": 0.98, "support": np.arange(10),
                      "confusion_matrix": np.eye(10, dtype=np.int64) * 5}
    path = tmp_path / "new" / "folder" / "relu.json"  # missing folders are created
    history.save(path)

    stored = json.loads(path.read_text())
    assert stored["format"] == "mnist-lab-history/1"
    assert sorted(stored["train"]) == ["accuracy", "learning_rate", "loss", "step", "wall_time"]
    assert sorted(stored["test"]) == ["accuracy", "loss", "step", "wall_time"]
    assert type(stored["train"]["accuracy"][0]) is float and type(stored["train"]["step"][0]) is int
    assert stored["config"] == {"lr": pytest.approx(0.003), "layers": [200, 100], "seed": 0}
    loaded = History.load(path)
    assert loaded.to_dict() == history.to_dict() == stored
    assert loaded.max_test_accuracy == pytest.approx(0.098)
    assert sorted(os.listdir(path.parent)) == ["relu.json"]  # the temporary file is gone


def test_history_files_from_before_steps_still_load(tmp_path):
    """The lab said "iteration" where it now says "step": its older files still load."""
    history = History("relu", {"steps": 20})
    history.append_train(0, 0.1, 2.3, 0.003, 0.5)
    history.append_train(20, 0.85, 0.4, 0.003, 1.25)
    history.append_test(20, 0.9, 0.35, 1.5)
    older = history.to_dict()
    for part in ("train", "test"):
        older[part] = {("iteration" if key == "step" else key): values
                       for key, values in older[part].items()}
    path = tmp_path / "older.json"
    path.write_text(json.dumps(older))
    assert History.load(path).to_dict() == history.to_dict()
    fig = compare.plot_comparison([History.load(path)], figures.offscreen_figure((16, 7)))
    assert list(fig.axes[0].lines[0].get_xdata()) == [20]


def test_history_repr_is_a_one_line_summary():
    history = History("relu", {"steps": 10_000})
    assert repr(history) == "History(relu: no measurement yet)"
    history.append_train(0, 0.1, 2.3, 0.003, 0)
    assert repr(history) == "History(relu: step 0 of 10,000 so far, no test yet)"
    history.append_test(0, 0.1, 2.3, 0)
    history.append_train(1200, 0.95, 0.2, 0.003, 5)
    history.append_test(1200, 0.9512, 0.2, 5)
    assert repr(history) == ("History(relu: step 1,200 of 10,000 so far, "
                             "max test accuracy 0.9512, last 0.9512)")
    history.final = {"steps": 1200, "interrupted": True}
    assert repr(history) == ("History(relu: interrupted at step 1,200 of 10,000, "
                             "max test accuracy 0.9512, final 0.9512)")
    history.append_test(10_000, 0.9819, 0.06, 50)
    history.test["accuracy"][-2] = 0.9825
    history.final = {"steps": 10_000, "interrupted": False}
    history.name = "mnist_2.1_five_layers_relu"
    assert repr(history) == ("History(mnist_2.1_five_layers_relu: 10,000 steps, "
                             "max test accuracy 0.9825, final 0.9819)")


def test_history_max_test_accuracy():
    history = History("x")
    assert history.max_test_accuracy is None
    for i, accuracy in enumerate([0.5, 0.9, float("nan"), 0.8]):
        history.append_test(i, accuracy, 1.0, i)
    assert history.max_test_accuracy == 0.9


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    ("{not json", "not a JSON file"),
    ('{"name": "x"}', "not a run history"),
    ("[1, 2]", "not a run history"),
    ('{"format": "mnist-lab-history/1", "train": {}, "test": {}}', "damaged run history"),
])
def test_history_load_errors_are_one_line_naming_the_file(tmp_path, content, message):
    path = tmp_path / "run.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UserError) as error:
        History.load(path)
    assert str(path) in str(error.value) and message in str(error.value)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("steps, test_points", [
    (10000, [*range(0, 200, 20), *range(200, 10001, 100)]),  # lessons: every 100 after the climb
    (18000, [*range(0, 200, 20), *range(360, 18001, 180)]),  # 5.0: about 100 test points
    (2000, [*range(0, 200, 20), *range(200, 2001, 100)]),  # 1.0
    (200, [0, 40, 80, 120, 160, 200]),  # a workshop's short run: few test passes, they cost
    (300, [0, 20, 60, 120, 180, 240, 300]),
    (50, [0, 20, 40, 50]),  # the last step, off the 20-step grid
])
def test_the_test_points_are_about_a_hundred_per_run_and_dense_at_first(steps, test_points):
    assert [i for i in range(steps + 1) if lab.test_due(i, steps)] == test_points


def test_report_figures_on_a_hand_made_prediction_set():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 9])
    predicted = np.array([0, 0, 1, 1, 1, 2, 2, 9, 2, 9])
    rep = history.report(labels, predicted)
    matrix = np.array(rep["confusion_matrix"])
    assert matrix.sum() == len(labels)
    assert matrix[0, 0] == 2 and matrix[0, 1] == 1 and matrix[2, 9] == 1
    assert rep["accuracy"] == pytest.approx(0.8)
    assert rep["precision"][1] == pytest.approx(2 / 3)  # predicted 1 three times, right twice
    assert rep["recall"][0] == pytest.approx(2 / 3)
    assert rep["recall"][9] == pytest.approx(1.0) and rep["precision"][9] == pytest.approx(0.5)
    assert rep["f1"][9] == pytest.approx(2 / 3)
    # 5 is never predicted: its precision is 0, not NaN
    assert rep["support"][:3] == [3, 2, 4] and rep["precision"][5] == 0.0
