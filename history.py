"""history.py: what one training run measured, when, saved as JSON to compare runs.

The schedule: every MEASURE_EVERY (20) steps the training loop measures the accuracy and
the cross-entropy loss on the current training batch; when test_due says so (every 20
steps at first, then about 50 to 100 times a run, and at the last step) the same two on
the 10,000 test digits, which the network never trains on. A History keeps them; at the
end (History.finish) the run's final figures and its report (per-digit precision and
recall, confusion matrix). A lesson writes runs/<lesson>.json; `python tensorflowvisu.py
compare` reads them.
"""

from __future__ import annotations

import json
import math

import numpy as np

from plumbing import UserError, write_atomically

FORMAT = "mnist-lab-history/1"
MEASURE_EVERY = 20  # the training batch's accuracy and loss, every 20 steps


def test_due(step, steps):
    """Is `step` (of a run of `steps`) a time to measure the test digits?

    Every 20 steps over the first tenth of the run (at most its first 200 steps), where
    the curves climb fastest; then every 100 steps (every fifth of a run shorter than 500
    steps, every hundredth of one longer than 10,000; always a multiple of 20); and at the
    last step. Lesson 1.0's 2,000 steps get 29 test points, 2.1's 10,000 get 109.
    """
    every = max(MEASURE_EVERY, min(100, steps // 5), steps // 100) // MEASURE_EVERY * MEASURE_EVERY
    return step == steps or step % MEASURE_EVERY == 0 and (
        step < min(200, steps // 10) or step % every == 0)


class History:
    """Everything one training run measured.

    train and test are columns of numbers, one list per measurement ("step", "accuracy",
    "loss", "wall_time" in seconds since the start, and the training's "learning_rate");
    config describes the run (script, steps, the flags it changed, date, engine...); final
    (see finish) and report are filled at the end; panels is what the dashboard's panels
    3 to 6 showed at the end (tensorflowvisu.show_panel draws them again).
    """

    def __init__(self, name: str, config: dict | None = None):
        self.name = str(name)
        self.config = dict(config or {})
        self.train = {"step": [], "accuracy": [], "loss": [], "learning_rate": [], "wall_time": []}
        self.test = {"step": [], "accuracy": [], "loss": [], "wall_time": []}
        self.final = {}
        self.report = None
        self.panels = {}

    def append_train(self, step, accuracy, loss, learning_rate, wall_time):
        """Record what was measured on the current training batch."""
        for key, value in zip(self.train, (step, accuracy, loss, learning_rate, wall_time)):
            self.train[key].append(int(value) if key == "step" else float(value))

    def append_test(self, step, accuracy, loss, wall_time):
        """Record what was measured on the test digits."""
        for key, value in zip(self.test, (step, accuracy, loss, wall_time)):
            self.test[key].append(int(value) if key == "step" else float(value))

    @property
    def max_test_accuracy(self):
        """The best test accuracy so far, None before the first test. Chosen on the test set
        itself, it flatters the network a little: the final one is the honest figure."""
        values = [a for a in self.test["accuracy"] if not math.isnan(a)]
        return max(values) if values else None

    def finish(self, steps, interrupted, wall_seconds, **more):
        """The run's final figures, the same keys from every training loop: the steps
        done, whether it was interrupted, the max and the final test accuracy, its wall
        time, and `more` (the lab's loop: its training and testing seconds)."""
        accuracies = self.test["accuracy"]
        self.final = {"steps": int(steps), "interrupted": bool(interrupted),
                      "max_test_accuracy": self.max_test_accuracy,
                      "final_test_accuracy": accuracies[-1] if accuracies else None,
                      "wall_seconds": wall_seconds, **more}

    def check_panels(self, numbers):
        """UserError if the run did not keep what these dashboard panels showed at its end
        (tensorflowvisu.show_panel draws them again): panels 3 and 6 of MNIST digits only,
        and only from a run that drew them."""
        if self.panels.get("inputs") is not None and {3, 6} & set(numbers):
            raise UserError(f"run {self.name} did not train on MNIST digits (its inputs: "
                            f"{self.panels['inputs']}): show_panel draws panels 3 and 6 of "
                            "MNIST runs only; keep a picture of the dashboard with png= "
                            "(--save-png) instead")
        needs = {3: "training_digits", 4: "histograms", 5: "histograms", 6: "test_digits"}
        for number in numbers:
            if number in needs and needs[number] not in self.panels:
                raise UserError(f"run {self.name} kept no picture of panel {number} (it "
                                "drew no dashboard: --no-vis, no display, or an older lab): "
                                "run it again with --save-png FILE (or a display, without "
                                "--no-vis)")

    def summary(self):
        """The last lines a run prints: its max and final test accuracy."""
        if not self.test["accuracy"]:
            return f"{self.name}: no test"
        return (f"max test accuracy: {self.max_test_accuracy:.4f}\n"
                f"final test accuracy: {self.test['accuracy'][-1]:.4f}")

    def resume(self, earlier, step):
        """Carry on from the history of the same run, interrupted after `step` (lesson 6.0)."""
        for part in ("train", "test"):
            mine, theirs = getattr(self, part), getattr(earlier, part)
            keep = [k for k, i in enumerate(theirs["step"]) if i <= step]
            for key in mine:
                mine[key] = [theirs[key][k] for k in keep]
        self.config["resumed_from"] = [*earlier.config.get("resumed_from", []), step]

    def __repr__(self):
        """One line: History(mnist_2.1_five_layers_relu: 10,000 steps, max test accuracy ...)."""
        last = (self.train["step"] or self.test["step"] or [None])[-1]
        steps = self.final.get("steps", last)
        planned = self.config.get("steps")
        of = f" of {planned:,}" if isinstance(planned, int) and planned != steps else ""
        if steps is None:
            return f"History({self.name}: no measurement yet)"
        if not self.final:
            done = f"step {steps:,}{of} so far"
        elif self.final.get("interrupted"):
            done = f"interrupted at step {steps:,}{of}"
        else:
            done = f"{steps:,} steps"
        best = self.max_test_accuracy
        if best is None:
            return f"History({self.name}: {done}, no test yet)"
        final = f"{'final' if self.final else 'last'} {self.test['accuracy'][-1]:.4f}"
        return f"History({self.name}: {done}, max test accuracy {best:.4f}, {final})"

    # -- JSON

    def to_dict(self) -> dict:
        return {"format": FORMAT, "name": self.name, "config": plain(self.config),
                "train": plain(self.train), "test": plain(self.test), "final": plain(self.final),
                "report": plain(self.report), "panels": plain(self.panels)}

    @classmethod
    def from_dict(cls, d):
        """The History stored in d (as made by to_dict); UserError if d is not one. Files
        written before the lab said "step" (it said "iteration") still load."""
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise UserError(f'not a run history (no "format": "{FORMAT}")')
        history = cls(d.get("name", ""), d.get("config") or {})
        for part in ("train", "test"):
            columns = d.get(part)
            if isinstance(columns, dict) and "iteration" in columns and "step" not in columns:
                columns = {("step" if k == "iteration" else k): v for k, v in columns.items()}
            wanted = getattr(history, part)
            if not isinstance(columns, dict) or not all(isinstance(columns.get(k), list)
                                                        for k in wanted):
                raise UserError(f'damaged run history: "{part}" needs the lists '
                                f'{", ".join(wanted)}')
            for key in wanted:
                wanted[key] = list(columns[key])
        history.final = dict(d.get("final") or {})
        history.report = d.get("report")
        history.panels = dict(d.get("panels") or d.get("pictures") or {})  # (older: "pictures")
        return history

    def save(self, path):
        """Write the history as JSON, atomically; creates missing folders (runs/NAME/).
        UserError if it cannot be written."""
        text = json.dumps(self.to_dict(), indent=1)
        write_atomically(path, lambda file: file.write(text.encode("utf-8")), new_folders=True)

    @classmethod
    def load(cls, path) -> History:
        """Read a history written by save; UserError naming the file if that fails."""
        try:
            with open(path, encoding="utf-8") as file:
                d = json.load(file)
        except FileNotFoundError:
            raise UserError(f"{path}: no such file") from None
        except OSError as error:
            raise UserError(f"{path}: cannot read it ({error.strerror or error})") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise UserError(f"{path}: not a JSON file ({error})") from None
        try:
            return cls.from_dict(d)
        except UserError as error:
            raise UserError(f"{path}: {error}") from None


def load_all(runs):
    """Histories, from History objects or the paths of their JSON files."""
    return [run if isinstance(run, History) else History.load(run) for run in runs]


def plain(value):
    """The value with numpy numbers and arrays turned into plain Python ones (for JSON)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


# ---------------------------------------------------------------------- the report


def report(labels, predictions):
    """Per-digit precision, recall and F1, the accuracy, and the confusion matrix (rows:
    the true digit, columns: the predicted one), from the test digits and the answers."""
    labels, predictions = np.asarray(labels), np.asarray(predictions)
    confusion = np.zeros((10, 10), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    correct = np.diag(confusion).astype(np.float64)
    support = confusion.sum(axis=1)  # how many of each digit there are
    predicted = confusion.sum(axis=0)  # how often each digit was predicted
    precision = np.divide(correct, predicted, out=np.zeros(10), where=predicted > 0)
    recall = np.divide(correct, support, out=np.zeros(10), where=support > 0)
    total = precision + recall
    f1 = np.divide(2 * precision * recall, total, out=np.zeros(10), where=total > 0)
    return {"accuracy": float(correct.sum() / max(1, confusion.sum())),
            "precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist(),
            "support": support.tolist(),
            "confusion_matrix": confusion.tolist()}


def format_report(rep):
    """The report as a table followed by the confusion matrix, ready to print."""
    lines = ["digit  precision  recall     f1  support"]
    for d in range(10):
        lines.append(f"{d:>5}  {rep['precision'][d]:9.4f}  {rep['recall'][d]:6.4f}  "
                     f"{rep['f1'][d]:5.4f}  {rep['support'][d]:7d}")
    lines.append(f"accuracy {rep['accuracy']:.4f} on {sum(rep['support'])} test images")
    lines.append("confusion matrix (rows: true digit, columns: predicted digit)")
    lines.append("     " + "".join(f"{d:>6}" for d in range(10)))
    for d, row in enumerate(rep["confusion_matrix"]):
        lines.append(f"{d:>5}" + "".join(f"{n:>6}" for n in row))
    return "\n".join(lines)
