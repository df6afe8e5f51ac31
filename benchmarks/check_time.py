"""The exercises' check: how long `python exercises.py check FILE` takes, step by step.

For every exercise (or those given), in a fresh process each, as an attendee types it in a
folder of their own:

  finished   the check of a finished file (a copy of the step's lesson, my_mnist_STEP.py):
             structure, the short training run of the file and of the lesson, accuracy;
             it must pass (exit status 0). The issue's target: under a minute on 2 cores.
  starting   the check of the step's starting file (python exercises.py start STEP): it must
             fail (exit status 1), at the structure, before any training

Seconds from the launch of the process to its exit (TensorFlow's import included), and the
CPU seconds it used (user + system: what the check costs whatever else the machine runs; on
2 idle cores the wall time is at least half of it), median over --repeats (default 1).
Writes JSON (default benchmarks/results/check_time.json).

Examples:
  python benchmarks/check_time.py
  python benchmarks/check_time.py 4.2 5.0 --repeats 3
"""

import argparse
import re
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import _bench as B  # (it puts the lab's folder on sys.path)
import checking  # (the check's short runs)
import exercises  # (the exercises and their lessons: no TensorFlow in this process)
import plumbing


def time_check(folder, name, mnist_dir, expected):
    """Wall and CPU seconds of `python lab.py check NAME` in `folder`, and its report;
    RuntimeError if its exit status is not the expected one."""
    command = [B.PYTHON, str(B.ROOT / "exercises.py"), "check", name]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, cwd=folder, env=B.lesson_env(mnist_dir),
                            capture_output=True, text=True, timeout=1200)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    if result.returncode != expected:
        raise RuntimeError(f"{' '.join(command)} in {folder}: exit {result.returncode}, expected "
                           f"{expected}:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return round(seconds, 2), round(cpu, 2), result.stdout


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("steps", nargs="*", metavar="STEP",
                   help=f"the exercises to time (default: all, {', '.join(exercises.exercises())})")
    p.add_argument("--repeats", type=int, default=1, help="checks of each file (default: 1)")
    p.add_argument("--data-dir", help="MNIST folder (default: $MNIST_DATA_DIR)")
    p.add_argument("--json", metavar="FILE",
                   help="where to write the results (default: benchmarks/results/check_time.json)")
    args = p.parse_args(argv)
    mnist_dir = B.data_dir(args.data_dir)
    steps = args.steps or exercises.exercises()
    unknown = [s for s in steps if s not in exercises.exercises()]
    if unknown:
        raise SystemExit(f"error: no exercise {', '.join(unknown)}: choose among "
                         f"{', '.join(exercises.exercises())}")
    machine = B.start()

    results = {}
    for step in steps:
        with tempfile.TemporaryDirectory(prefix="mnist-check-") as folder:
            finished = Path(folder) / "finished" / f"my_mnist_{step}.py"
            finished.parent.mkdir()
            finished.write_text(plumbing.lessons()[step].read_text())
            starting = Path(folder) / "starting"
            starting.mkdir()
            subprocess.run([B.PYTHON, str(B.ROOT / "exercises.py"), "start", step], cwd=starting,
                           check=True, capture_output=True)
            runs = {"finished": [], "finished_cpu": [], "starting": []}
            for r in range(args.repeats):
                seconds, cpu, report = time_check(finished.parent, finished.name, mnist_dir, 0)
                runs["finished"].append(seconds)
                runs["finished_cpu"].append(cpu)
                short = re.search(r"training   ok: (\d+) steps", report)
                seconds_starting, _, first = time_check(starting, finished.name, mnist_dir, 1)
                runs["starting"].append(seconds_starting)
                message = re.search(r"structure  to fix: (.*)", first)
                print(f"{step} repeat {r + 1}/{args.repeats}: finished {seconds:.1f} s "
                      f"(CPU {cpu:.1f} s, {short.group(1)} steps), starting "
                      f"{seconds_starting:.1f} s: "
                      f"{message.group(1)[:60] if message else first[-200:]}", flush=True)
        results[step] = {"short_run_steps": int(short.group(1)),
                         "finished_seconds": B.summary(runs["finished"]),
                         "finished_cpu_seconds": B.summary(runs["finished_cpu"]),
                         "starting_seconds": B.summary(runs["starting"])}

    print(f"\npython exercises.py check FILE, seconds from launch to exit, median of {args.repeats} "
          f"({machine['cpu']['model']}, {machine['cpu']['cores']} cores)")
    print(B.table(["step", "short run", "finished file (passes)", "its CPU time",
                   "starting file (fails)"],
                  [[step, f"{r['short_run_steps']} steps",
                    B.fmt(r["finished_seconds"]["median"], 1, " s"),
                    B.fmt(r["finished_cpu_seconds"]["median"], 1, " s"),
                    B.fmt(r["starting_seconds"]["median"], 1, " s")]
                   for step, r in results.items()]))
    slowest = max(r["finished_seconds"]["median"] for r in results.values())
    print(f"\nslowest check of a finished file: {slowest:.1f} s (target: under 60 s)")
    B.save({"benchmark": "check_time",
            "description": "seconds from launching `python exercises.py check FILE` to its exit (and "
                           "its CPU seconds), for a finished file (a copy of the lesson: passes) "
                           "and the starting file (python exercises.py start STEP: fails at the "
                           "structure)",
            "slowest_finished_seconds": slowest,
            "settings": {"steps": steps, "repeats": args.repeats,
                         "short_run": {"dense": checking.DENSE_STEPS,
                                       "convolutional": checking.CONVOLUTIONAL_STEPS}},
            "machine": machine, "results": results}, args.json, "check_time.json")


if __name__ == "__main__":
    main()
