"""Keras callback overhead: model.fit with tensorflowvisu.DashboardCallback vs without it.

Trains lesson 2.1's network written in Keras (dense ReLU layers 200-100-60-30-10, logits,
Adam 0.003) on all of MNIST, batches of 100, --epochs 3 by default (1,800 steps), each run
in a fresh process (or a fresh Jupyter kernel), the modes in turn:

  plain           model.fit(x, y, validation_data=(x_test, y_test)): Keras measures the
                  10,000 test digits at each epoch's end. THE baseline.
  window          model.fit(x, y, callbacks=[DashboardCallback(validation_data=(x_test,
                  y_test), training_data=(x, y))]): the callback measures the test digits
                  (at the start and at each epoch's end) and draws its live TkAgg window on
                  a private Xvfb server.
  notebook        the same in a real Jupyter kernel (nbclient, ipykernel's inline backend):
                  the dashboard is a picture under the cell, replaced while fit runs.
  plain-notebook  plain, in a Jupyter kernel: the notebook's own baseline.
  both            window, and fit gets validation_data too: the test digits measured twice
                  at each epoch's end (by Keras for its val_ logs, and by the callback).
  lab             window, with test_every="lab": the test digits at the lessons' rhythm
                  (every 20 steps up to step 180, then every 100: 28 times in 1,800 steps,
                  instead of 4), what that costs.

Measured: fit's wall time (around model.fit: the callback's final measurement, history,
picture and closing the window included; imports and data excluded), and the CPU time of
the process meanwhile (all its threads; steadier than the wall time when other processes
share the cores, but without the X server's share of drawing). Prints the medians
(and the fastest run, which other processes slowed least) and the ratios window / plain,
notebook / plain-notebook (target: at most 1.10), both / plain and lab / plain; writes
JSON (default benchmarks/results/callback_overhead.json).

Needs Xvfb (apt-get install xvfb), and requirements-dev.txt for the notebook modes.

Examples:
  python benchmarks/callback_overhead.py                    # 2 repeats of 6 modes, ~6 minutes
  python benchmarks/callback_overhead.py --repeats 3 --epochs 5 --modes plain window
"""

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import _bench as B

TARGET_RATIO = 1.10
MODES = ("plain", "window", "notebook", "plain-notebook", "both", "lab")
BASELINE = {"window": "plain", "notebook": "plain-notebook", "both": "plain", "lab": "plain"}
WINDOWS = ("window", "both", "lab")  # the modes with a live window on Xvfb


def fit_once(mode, epochs, folder):
    """One measured model.fit in this process; prints its figures as one JSON line."""
    import plumbing

    plumbing.load_tensorflow()  # TensorFlow as the lab loads it (oneDNN on)
    import keras

    import mnistdata
    import tensorflowvisu

    mnist = mnistdata.read_data_sets(reshape=False, validation_size=0)
    x, y = mnist.train.images, mnist.train.labels
    x_test, y_test = mnist.test.images, mnist.test.labels
    keras.utils.set_random_seed(0)
    dense = [keras.layers.Dense(n, activation="relu") for n in (200, 100, 60, 30)]
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), *dense,
                              keras.layers.Dense(10)])
    model.compile(keras.optimizers.Adam(0.003),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    callback = None
    if mode.startswith("plain"):
        options = dict(validation_data=(x_test, y_test))
    else:
        callback = tensorflowvisu.DashboardCallback(
            validation_data=(x_test, y_test), training_data=(x, y), name="keras_2.1",
            test_every="lab" if mode == "lab" else "epoch",
            history=str(Path(folder) / "history.json"), wait=False)
        options = dict(callbacks=[callback])
        if mode == "both":
            options["validation_data"] = (x_test, y_test)
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(x, y, batch_size=100, epochs=epochs, verbose=0, **options)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    result = {"mode": mode, "fit_seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3),
              "steps": epochs * len(x) // 100, "live": None, "redraws": 0, "draw_seconds": 0.0}
    if callback:
        dashboard = callback.dashboard
        result.update(live=not dashboard.not_live, not_live=dashboard.not_live,
                      redraws=len(dashboard.draw_times),
                      draw_seconds=round(sum(dashboard.draw_times), 3),
                      tests=len(callback.history.test["step"]),
                      final_accuracy=callback.history.test["accuracy"][-1])
    print(json.dumps(result), flush=True)


def process_run(mode, epochs, mnist_dir, display):
    """fit_once in a fresh Python process (the window modes on the Xvfb display)."""
    with tempfile.TemporaryDirectory(prefix="mnist-callback-") as folder:
        extra = dict(DISPLAY=display, MPLBACKEND="TkAgg") if mode in WINDOWS else {}
        env = B.lesson_env(mnist_dir, PYTHONPATH=str(B.ROOT), **extra)
        return B.run_json_worker([B.PYTHON, __file__, "--worker", mode, "--epochs", epochs,
                                  "--folder", folder], env=env)


def notebook_run(mode, epochs, mnist_dir):
    """fit_once in a fresh Jupyter kernel: a user's notebook (no MPLBACKEND, no display)."""
    import nbformat
    from nbclient import NotebookClient

    with tempfile.TemporaryDirectory(prefix="mnist-callback-") as folder:
        code = (f"import sys\nsys.path[:0] = [{str(B.ROOT)!r}, {str(Path(__file__).parent)!r}]\n"
                f"import callback_overhead\n"
                f"callback_overhead.fit_once({mode.removesuffix('-notebook')!r}, {epochs}, "
                f"{folder!r})")
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
        env = B.lesson_env(mnist_dir, MPLBACKEND=None, TF_CPP_MIN_LOG_LEVEL=None)
        NotebookClient(nb, kernel_name="python3", timeout=3600,
                       resources={"metadata": {"path": folder}}).execute(env=env)
        outputs = nb.cells[0].outputs
        text = "".join(o.get("text", "") for o in outputs if o.get("name") == "stdout")
        lines = [line for line in text.splitlines() if line.startswith("{")]
        if not lines:
            raise RuntimeError(f"the notebook's fit failed: {str(outputs)[:1500]}")
        result = json.loads(lines[-1])
        result["pictures"] = sum("image/png" in o.get("data", {}) for o in outputs)
        result["mode"] = mode
        return result


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=3, help="epochs of 600 steps (default: 3)")
    p.add_argument("--repeats", type=int, default=2, help="runs of each mode (default: 2)")
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES),
                   help="the modes to run (default: all)")
    p.add_argument("--data-dir", help="MNIST folder (default: $MNIST_DATA_DIR)")
    p.add_argument("--json", metavar="FILE", help="where to write the results (default: "
                   "benchmarks/results/callback_overhead.json)")
    p.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)  # (one run, this process)
    p.add_argument("--folder", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        sys.path.insert(0, str(B.ROOT))
        return fit_once(args.worker, args.epochs, args.folder)

    mnist_dir = B.data_dir(args.data_dir)
    modes = [m for m in MODES if m in args.modes]
    machine = B.start()
    runs = {mode: [] for mode in modes}
    with B.xvfb_or_exit() as xvfb:
        for r in range(args.repeats):
            for mode in B.rotate(modes, r):
                if mode.endswith("notebook"):
                    result = notebook_run(mode, args.epochs, mnist_dir)
                else:
                    result = process_run(mode, args.epochs, mnist_dir, xvfb.display)
                if result["live"] is False:  # (a window, or a picture under the cell)
                    raise SystemExit(f"error: mode {mode} drew nothing live: {result['not_live']}")
                runs[mode].append(result)
                print(f"repeat {r + 1}/{args.repeats}  {mode:>14}: "
                      f"fit {result['fit_seconds']:7.2f} s  ({result['redraws']} redraws, "
                      f"{result['draw_seconds']:.2f} s drawing)", flush=True)

    measures = ("fit_seconds", "cpu_seconds", "draw_seconds")
    median = {mode: {k: B.median([x[k] for x in rs]) for k in measures}
              for mode, rs in runs.items()}
    fastest = {mode: min(x["fit_seconds"] for x in rs) for mode, rs in runs.items()}

    def ratio(of, mode):  # of(mode): a figure of the mode's runs
        return round(of(mode) / of(BASELINE[mode]), 4)

    compared = [mode for mode in BASELINE if mode in runs and BASELINE[mode] in runs]
    ratios = {mode: ratio(lambda m: median[m]["fit_seconds"], mode) for mode in compared}
    fastest_ratios = {mode: ratio(fastest.get, mode) for mode in compared}
    cpu_ratios = {mode: ratio(lambda m: median[m]["cpu_seconds"], mode) for mode in compared}
    rows = [[mode, B.fmt(m["fit_seconds"], 2), B.fmt(fastest[mode], 2),
             B.fmt(m["cpu_seconds"], 2), B.fmt(m["draw_seconds"], 2),
             f"{ratios[mode]:.3f} / {fastest_ratios[mode]:.3f} / {cpu_ratios[mode]:.3f} "
             f"vs {BASELINE[mode]}" if mode in ratios else ""]
            for mode, m in median.items()]
    print(f"\nKeras fit of lesson 2.1's network, {args.epochs} epochs of 600 steps, "
          f"{args.repeats} runs each: median, fastest")
    print(B.table(["mode", "fit s", "fastest s", "CPU s", "drawing s",
                   "ratio: fit / fastest / CPU"], rows))
    for mode in ("window", "notebook"):
        if mode in ratios:
            verdict = "OK" if ratios[mode] <= TARGET_RATIO else "OVER TARGET"
            print(f"callback overhead, {mode}: x{ratios[mode]:.3f}, target <= x{TARGET_RATIO}: "
                  f"{verdict}")
    B.save({"benchmark": "callback_overhead",
            "description": "Keras model.fit of lesson 2.1's network on MNIST with "
                           "tensorflowvisu.DashboardCallback vs without it; fit_seconds: the "
                           "wall time of model.fit, cpu_seconds: the process's CPU time in it",
            "target_ratio": TARGET_RATIO, "ratios": ratios, "fastest_ratios": fastest_ratios,
            "cpu_ratios": cpu_ratios,
            "baselines": BASELINE,
            "settings": {"epochs": args.epochs, "repeats": args.repeats, "modes": modes,
                         "batch_size": 100},
            "machine": machine, "median": median, "runs": runs},
           args.json, "callback_overhead.json")


if __name__ == "__main__":
    main()
