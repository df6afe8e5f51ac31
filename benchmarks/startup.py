"""Start-up: from `python mnist_1.0_softmax.py` to the first training step, and its parts.

Launches `mnist_1.0_softmax.py --no-vis --steps 20` and timestamps its stdout lines as
they arrive (from the launch of the process):

  header   "mnist_1.0_softmax: 20 steps of 100 images...": the flags checked, TensorFlow
           loaded (plumbing.load_tensorflow), MNIST read and verified, the tensors made, the
           model traced once; the training functions are traced next
  step 0   the "step      0" line: the training functions traced, the untrained model's
           metrics and first test done; the next thing the process does is the first
           training step (THE figure)
  step 20  the "step     20" line: the first compiled training call (with XLA: compiling
           + 20 steps) is done
  summary  the last line (the run's summary): the model is saved
  exit     the process has exited (exit - summary: Python and TensorFlow tearing down)

and separately, each in a fresh process, the parts:

  python          `python -c pass`
  import tf       `import tensorflow` (in a process; the time of the import statement)
  import lab      `import lab, plumbing; plumbing.load_tensorflow()` (TensorFlow with the lab's
                  settings, GPU look-up, mnistdata, tensorflowvisu)
  read_data_sets  mnistdata.read_data_sets(one_hot=True, reshape=False, validation_size=0)
                  alone (numpy only: gzip, SHA-256 check, conversion to float32)

Prints medians over --repeats (default 5) and writes JSON (default
benchmarks/results/startup.json).

Examples:
  python benchmarks/startup.py
  python benchmarks/startup.py --repeats 10 --lesson 3.0
"""

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import _bench as B

MARKS = [("header", None), ("step 0", "step      0 "), ("step 20", "step     20 ")]

PARTS = {
    "python": "pass",
    "import tf": ("import time; t = time.perf_counter(); import tensorflow as tf; "
                  "print(time.perf_counter() - t)"),
    "import lab": ("import sys, time; sys.path.insert(0, {root!r}); t = time.perf_counter(); "
                   "import lab, plumbing; plumbing.load_tensorflow(); "
                   "print(time.perf_counter() - t)"),
    "read_data_sets": ("import sys, time; sys.path.insert(0, {root!r}); import mnistdata; "
                       "t = time.perf_counter(); "
                       "mnistdata.read_data_sets({data!r}, one_hot=True, reshape=False, "
                       "validation_size=0, seed=0); print(time.perf_counter() - t)"),
}


def time_lesson(script, mnist_dir, steps):
    """Seconds from launch to each mark, and to exit."""
    with tempfile.TemporaryDirectory(prefix="mnist-start-") as tmp:
        command = [B.PYTHON, str(script), "--no-vis", "--steps", str(steps),
                   "--history", str(Path(tmp) / "h.json"), "--save-model", str(Path(tmp) / "model")]
        errors = open(Path(tmp) / "stderr.txt", "w+")
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=tmp, env=B.lesson_env(mnist_dir),
                                   stdout=subprocess.PIPE, stderr=errors, text=True, bufsize=1)
        seen = {}
        header = f"{script.stem}: "
        for line in process.stdout:
            now = time.perf_counter() - start
            if "header" not in seen and line.startswith(header):
                seen["header"] = now
            for name, prefix in MARKS[1:]:
                if name not in seen and line.startswith(prefix):
                    seen[name] = now
            seen["summary"] = now  # the latest line: once the process ends, its last
        process.wait()
        seen["exit"] = time.perf_counter() - start
        errors.seek(0)
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed (exit {process.returncode}):\n"
                               + errors.read()[-2000:])
        errors.close()
    return {k: round(v, 3) for k, v in seen.items()}


def time_part(code, mnist_dir):
    """(process seconds, the statement's own seconds or None) for one snippet in a fresh python."""
    env = B.lesson_env(mnist_dir)
    start = time.perf_counter()
    result = subprocess.run([B.PYTHON, "-c", code.format(root=str(B.ROOT), data=mnist_dir)],
                            env=env, capture_output=True, text=True, cwd=B.ROOT)
    process = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(f"python -c {code!r} failed:\n{result.stderr[-2000:]}")
    out = result.stdout.strip().splitlines()
    inner = float(out[-1]) if out else None
    return round(process, 3), (round(inner, 3) if inner is not None else None)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lesson", default="1.0", help="lesson number (default: 1.0)")
    p.add_argument("--steps", type=int, default=20,
                   help="training steps of the timed runs (default: 20)")
    p.add_argument("--repeats", type=int, default=5, help="runs of everything (default: 5)")
    p.add_argument("--data-dir", help="MNIST folder (default: $MNIST_DATA_DIR)")
    p.add_argument("--json", metavar="FILE",
                   help="where to write the results (default: benchmarks/results/startup.json)")
    args = p.parse_args(argv)
    mnist_dir = B.data_dir(args.data_dir)
    script = B.lesson(args.lesson)
    machine = B.start()  # the machine, and the load before the runs

    lesson_runs, part_runs = [], {name: [] for name in PARTS}
    for r in range(args.repeats):
        marks = time_lesson(script, mnist_dir, args.steps)
        lesson_runs.append(marks)
        parts = {}
        for name in B.rotate(list(PARTS), r):
            process, inner = time_part(PARTS[name], mnist_dir)
            part_runs[name].append({"process_seconds": process, "statement_seconds": inner})
            parts[name] = inner if inner is not None else process
        print(f"repeat {r + 1}/{args.repeats}: "
              + "  ".join(f"{k} {v:.2f}" for k, v in marks.items())
              + " | " + "  ".join(f"{k} {v:.2f}" for k, v in parts.items()), flush=True)

    lesson_med = {k: B.median([m.get(k) for m in lesson_runs])
                  for k in ["header", "step 0", "step 20", "summary", "exit"]}
    part_med = {name: {"process_seconds": B.median([x["process_seconds"] for x in rs]),
                       "statement_seconds": B.median([x["statement_seconds"] for x in rs])}
                for name, rs in part_runs.items()}
    print(f"\n{script.name} --no-vis --steps {args.steps}: "
          f"seconds from launch, median of {args.repeats}")
    print(B.table(["until", "seconds"], [[k, B.fmt(v, 2)] for k, v in lesson_med.items()]))
    print(f"\nThe parts, each in a fresh process, median of {args.repeats}")
    print(B.table(["part", "statement s", "process s"],
                  [[k, B.fmt(v["statement_seconds"], 2), B.fmt(v["process_seconds"], 2)]
                   for k, v in part_med.items()]))
    print(f"\nfirst training step after {lesson_med['step 0']:.2f} s")

    data = {
        "benchmark": "startup",
        "description": "seconds from launching the lesson to its header line, to the 'step 0' line "
                       "(the first training step comes next), to the 'step 20' line, to the last line "
                       "and to exit; "
                       "and the parts (python, import tensorflow, import lab, read_data_sets) "
                       "in fresh processes",
        "first_training_step_seconds": lesson_med["step 0"],
        "settings": {"lesson": args.lesson, "script": script.name, "steps": args.steps,
                     "repeats": args.repeats},
        "machine": machine,
        "median": {"lesson": lesson_med, "parts": part_med},
        "runs": {"lesson": lesson_runs, "parts": part_runs},
    }
    B.save(data, args.json, "startup.json")


if __name__ == "__main__":
    main()
