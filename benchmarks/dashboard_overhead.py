"""Dashboard overhead: a training run with the live window vs the same run with --no-vis.

Starts its own X server (Xvfb, on a free display, stopped at the end) and runs lesson 2.1
(five-layer ReLU, 10,000 steps by default) alternately with the live dashboard window
(DISPLAY set, MPLBACKEND=TkAgg) and with --no-vis, --repeats times each. Measured per run:

  train   final.wall_seconds of the run's history: from the start of the training loop
          to its end, final test included. With the window, this includes opening it and
          every redraw: it is the time the dashboard costs while training. THE ratio.
  e2e     launch of the process until the line "final test accuracy" appears on stdout
          (imports, data, training, saving the model): what the user waits for. In a
          notebook: launch of the kernel until the cell's last line.

A live run keeps its window open at the end ("Close the dashboard window to finish..."):
when that line appears (the history is already written), the script presses "q" in the
window with xdotool (matplotlib's close key), and if the process has not exited 10 s
later, sends it Ctrl-C (SIGINT), then kills it. Nothing after that line is measured.

Prints the medians and the ratio median(live) / median(--no-vis); target (issue 2):
train ratio <= 1.10. Writes JSON (default benchmarks/results/dashboard_overhead.json).

Needs Xvfb (apt-get install xvfb) and, to close the window politely, xdotool.

--variant NAME=DIR adds a third mode: the live window with the lessons, lab.py and
tensorflowvisu.py of DIR (a patched copy of the repository), to measure a proposed change
side by side; its ratio is also against the repository's --no-vis runs.

--notebook adds a mode "notebook": the lesson run by %run in a real Jupyter kernel (nbclient,
ipykernel's inline backend), where the dashboard is a picture under the cell; its train
ratio is against the --no-vis runs too (target: at most 1.10, issue 12).

Examples:
  python benchmarks/dashboard_overhead.py                # 2 x 2 runs of 10,000 steps, ~2 minutes
  python benchmarks/dashboard_overhead.py --notebook     # also in a notebook's kernel
  python benchmarks/dashboard_overhead.py --repeats 4 --lesson 3.0 --steps 2000
"""

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _bench as B

TARGET_RATIO = 1.10
CLOSE_LINE = "Close the dashboard window to finish"
FINAL_LINE = "final test accuracy"


def close_window(process, display, title, log):
    """Close the lesson's window as a user would ('q'), else Ctrl-C, else kill. Returns how."""
    env = dict(os.environ, DISPLAY=display)
    if B.which("xdotool"):
        found = subprocess.run(["xdotool", "search", "--name", title], env=env,
                               capture_output=True, text=True).stdout.split()
        for window in found:
            subprocess.run(["xdotool", "windowfocus", "--sync", window], env=env,
                           capture_output=True, timeout=10)
            subprocess.run(["xdotool", "key", "--window", window, "q"], env=env,
                           capture_output=True, timeout=10)
        try:
            process.wait(10)
            return "q key"
        except subprocess.TimeoutExpired:
            pass
    process.send_signal(signal.SIGINT)
    try:
        process.wait(10)
        return "SIGINT"
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        log.append("the process had to be killed")
        return "killed"


def one_run(script, steps, live, display, mnist_dir):
    """Run the lesson once; returns the measurements (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="mnist-dash-") as tmp:
        history_path = Path(tmp) / "history.json"
        command = [B.PYTHON, str(script), "--steps", str(steps), "--history", str(history_path),
                   "--save-model", str(Path(tmp) / "model")]
        if live:
            env = B.lesson_env(mnist_dir, DISPLAY=display, MPLBACKEND="TkAgg")
        else:
            env = B.lesson_env(mnist_dir)
            command.append("--no-vis")
        errors = open(Path(tmp) / "stderr.txt", "w+")  # a file: a full pipe would block the lesson
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=tmp, env=env, stdout=subprocess.PIPE,
                                   stderr=errors, text=True, bufsize=1)
        e2e = close_line = None
        closed_by = None
        notes = []
        lines = []
        for line in process.stdout:
            lines.append(line)
            now = time.perf_counter() - start
            if line.startswith(FINAL_LINE) and e2e is None:
                e2e = now
            if line.strip().startswith(CLOSE_LINE):
                close_line = now
                closed_by = close_window(process, display, script.stem, notes)
                break
        process.wait()
        errors.seek(0)
        stderr = errors.read()
        errors.close()
        if not history_path.exists():
            raise RuntimeError(f"{' '.join(command)} failed (exit {process.returncode}):\n"
                               + "\n".join(stderr.strip().splitlines()[-15:]))
        history = json.loads(history_path.read_text())
    final = history["final"]
    window = "training without the live dashboard" not in stderr
    if live and not window:
        raise RuntimeError("the live run could not open its window:\n" + stderr.strip())
    return {"live": live, "train_seconds": final["wall_seconds"],
            "e2e_seconds": round(e2e, 3) if e2e else None,
            "close_line_seconds": round(close_line, 3) if close_line else None,
            "training_seconds": final["training_seconds"], "test_seconds": final["testing_seconds"],
            "images_per_second": B.rates(history)["training_images_per_second"],
            "max_test_accuracy": final["max_test_accuracy"], "closed_by": closed_by, "notes": notes}


def notebook_run(script, steps, mnist_dir):
    """The lesson run by `%run` in a real Jupyter kernel (nbclient + ipykernel: its inline
    backend, no display): the dashboard is a picture under the cell, replaced while the
    network trains. e2e here, as for the other modes: from the launch (of the kernel) until
    the cell has printed its last line (its execute_reply); the kernel's shutdown after it,
    which a user does not wait for, is left out."""
    import nbformat
    from nbclient import NotebookClient

    with tempfile.TemporaryDirectory(prefix="mnist-dash-") as tmp:
        history_path = Path(tmp) / "history.json"
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
            f"%run {script} --steps {steps} --history {history_path} "
            f"--save-model {Path(tmp) / 'model'}")])
        env = B.lesson_env(mnist_dir, MPLBACKEND=None, TF_CPP_MIN_LOG_LEVEL=None)  # a user's kernel
        start = datetime.datetime.now(datetime.timezone.utc)
        NotebookClient(nb, kernel_name="python3", timeout=3600, record_timing=True,
                       resources={"metadata": {"path": tmp}}).execute(env=env)
        replied = nb.cells[0].metadata["execution"]["shell.execute_reply"]  # ISO time, UTC
        e2e = (datetime.datetime.fromisoformat(replied.replace("Z", "+00:00"))
               - start).total_seconds()
        pictures = [o for o in nb.cells[0].outputs if "image/png" in o.get("data", {})]
        if not pictures or not history_path.exists():
            outputs = [o.get("text", o.get("ename", "")) for o in nb.cells[0].outputs]
            raise RuntimeError("the notebook showed no dashboard picture or wrote no history: "
                               + str(outputs)[:1000])
        history = json.loads(history_path.read_text())
    final = history["final"]
    return {"live": True, "train_seconds": final["wall_seconds"], "e2e_seconds": round(e2e, 3),
            "close_line_seconds": None, "training_seconds": final["training_seconds"],
            "test_seconds": final["testing_seconds"],
            "images_per_second": B.rates(history)["training_images_per_second"],
            "max_test_accuracy": final["max_test_accuracy"], "closed_by": None, "notes": []}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lesson", default="2.1", help="lesson number (default: 2.1)")
    p.add_argument("--steps", type=int, default=10000, help="training steps (default: 10000)")
    p.add_argument("--repeats", type=int, default=2, help="runs of each mode (default: 2)")
    p.add_argument("--variant", action="append", default=[], metavar="NAME=DIR",
                   help="also run the live window from DIR, a patched copy of the repository "
                        "(repeatable)")
    p.add_argument("--notebook", action="store_true",
                   help="also run the lesson in a Jupyter kernel "
                        "(%%run; the picture under the cell; needs requirements-dev.txt), "
                        "its ratio against --no-vis too")
    p.add_argument("--data-dir", help="MNIST folder (default: $MNIST_DATA_DIR)")
    p.add_argument("--json", metavar="FILE", help="where to write the results (default: "
                   "benchmarks/results/dashboard_overhead.json)")
    args = p.parse_args(argv)
    mnist_dir = B.data_dir(args.data_dir)
    script = B.lesson(args.lesson)
    scripts = {"live": script, "no-vis": script}
    for item in args.variant:
        name, _, folder = item.partition("=")
        if not name or not Path(folder).is_dir() or name in scripts:
            p.error(f"--variant {item}: expected NAME=DIR with an existing DIR and a new NAME")
        scripts[name] = B.lesson(args.lesson, Path(folder).resolve())
    if args.notebook:
        scripts["notebook"] = script
    machine = B.start()  # the machine, and the load before the runs
    if not B.which("xdotool"):
        print("xdotool is not installed: live windows are closed with Ctrl-C", file=sys.stderr)

    runs = {mode: [] for mode in scripts}
    with B.xvfb_or_exit() as xvfb:
        for r in range(args.repeats):
            for mode in B.rotate(list(scripts), r):
                if mode == "notebook":
                    result = notebook_run(scripts[mode], args.steps, mnist_dir)
                else:
                    result = one_run(scripts[mode], args.steps, mode != "no-vis", xvfb.display,
                                     mnist_dir)
                runs[mode].append(result)
                print(f"repeat {r + 1}/{args.repeats}  {mode:>6}: "
                      f"train {result['train_seconds']:6.2f} s  "
                      f"e2e {result['e2e_seconds']:6.2f} s  ({result['images_per_second']} images/s"
                      + (f", closed by {result['closed_by']}" if result["closed_by"] else "")
                      + ")", flush=True)

    measures = ("train_seconds", "e2e_seconds", "training_seconds", "test_seconds",
                "images_per_second")
    med = {mode: {k: B.median([x[k] for x in rs]) for k in measures} for mode, rs in runs.items()}
    ratio_train = med["live"]["train_seconds"] / med["no-vis"]["train_seconds"]
    ratio_e2e = med["live"]["e2e_seconds"] / med["no-vis"]["e2e_seconds"]
    rows = [[mode, B.fmt(m["train_seconds"], 2), B.fmt(m["e2e_seconds"], 2),
             B.fmt(m["training_seconds"], 2), B.fmt(m["test_seconds"], 2),
             B.fmt(m["images_per_second"])] for mode, m in med.items()]
    variant_ratios = {}
    for mode in scripts:
        if mode != "no-vis":
            variant_ratios[mode] = {
                k: round(med[mode][f"{k}_seconds"] / med["no-vis"][f"{k}_seconds"], 4)
                for k in ("train", "e2e")}
            rows.append([f"{mode}/no-vis", f"{variant_ratios[mode]['train']:.3f}",
                         f"{variant_ratios[mode]['e2e']:.3f}", "", "", ""])
    print(f"\n{script.name} --steps {args.steps}: live TkAgg window on Xvfb"
          + (", picture under a notebook cell" if args.notebook else "")
          + f" vs --no-vis, median of {args.repeats}")
    print(B.table(["mode", "train s", "e2e s", "of which steps s", "tests s", "images/s"], rows))
    verdict = "OK" if ratio_train <= TARGET_RATIO else "OVER TARGET"
    print(f"\ndashboard overhead (train): x{ratio_train:.3f}, target <= x{TARGET_RATIO}: {verdict}")

    data = {
        "benchmark": "dashboard_overhead",
        "description": "lesson with the live TkAgg window on Xvfb vs --no-vis; train = history "
                       "final.wall_seconds (training loop start to end), e2e = launch to the "
                       "'final test accuracy' line",
        "target_ratio": TARGET_RATIO,
        "ratio_train": round(ratio_train, 4),
        "ratio_e2e": round(ratio_e2e, 4),
        "ratios": variant_ratios,
        "settings": {"lesson": args.lesson, "script": script.name, "steps": args.steps,
                     "repeats": args.repeats,
                     "variants": {m: str(scripts[m].parent)
                                  for m in scripts if m not in ("live", "no-vis")}},
        "machine": machine,
        "median": med,
        "runs": runs,
    }
    B.save(data, args.json, "dashboard_overhead.json")


if __name__ == "__main__":
    main()
