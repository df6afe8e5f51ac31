"""The whole lab's wall time, and every lesson's accuracy at its default number of steps.

Runs the lessons one after another, as a student would, each at its default number of
steps with --no-vis (history and model go to a temporary folder), and prints for each one:
its wall time (process start to exit: imports, data loading, training, tests, saving), its
training and test seconds, its training throughput, its max and final test accuracy, and
the accuracy its docstring promises ("Test accuracy about 98.9%"); then the total.
The roofline columns: the lesson's training FLOPs per image (flops.py), the GFLOP/s its
training reached, and their share of the machine's tf.matmul peak (measured before and
after the runs; the better of the two counts).

  default   lessons 1.0, 2.0, 2.1, 2.2, 3.0: the issue's "whole lab", target < 180 s in total
  --all     every mnist_*.py lesson present (3.1, 4.x, 5.x as they come): the accuracy table
  --lessons a chosen list, e.g. --lessons 2.1,3.1

Writes JSON (default benchmarks/results/lab_time.json, or lab_all.json with --all).

Examples:
  python benchmarks/lab_time.py                 # ~2-3 minutes
  python benchmarks/lab_time.py --all           # every lesson: the accuracy table (longer)
  python benchmarks/lab_time.py --repeats 3     # medians of 3 runs of the whole lab
  python benchmarks/lab_time.py --lessons 2.2 --seeds 5 --args="--xla on"   # 5 seeds, a flag
"""

import argparse
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import _bench as B
import flops

WHOLE_LAB = ["1.0", "2.0", "2.1", "2.2", "3.0"]
ENSEMBLES = ["5.2"]  # lessons that train nothing: they vote with the models of MEMBERS
MEMBERS = ["5.0", "5.1"]  # lessons whose models are kept for them
TARGET_SECONDS = 180
PROMISE = re.compile(r"(?:about|around|~)\s*(\d+(?:\.\d+)?)\s*%", re.IGNORECASE)


def promised_accuracy(path):
    """The accuracy the lesson's docstring announces on its first line, as a fraction, or None."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        first = text.lstrip("rRbBuU").lstrip("\"'").splitlines()[0]
    except (OSError, IndexError):
        return None
    match = PROMISE.search(first)
    return float(match.group(1)) / 100 if match else None


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--all", action="store_true", help="every mnist_*.py lesson present")
    which.add_argument("--lessons",
                       help="comma-separated lesson numbers (default: 1.0,2.0,2.1,2.2,3.0)")
    p.add_argument("--repeats", type=int, default=1,
                   help="runs of each lesson; medians are shown (default: 1)")
    p.add_argument("--steps", type=int,
                   help="override every lesson's default number of steps "
                        "(not the target's setting)")
    p.add_argument("--seeds", type=int, default=1, metavar="N",
                   help="run each lesson with --seed 0 to N-1 (in each repeat); "
                        "the mean accuracy is shown too (default: 1: seed 0)")
    p.add_argument("--args", default="", metavar="FLAGS",
                   help='extra lesson flags, e.g. --args="--xla on"')
    p.add_argument("--data-dir", help="MNIST folder (default: $MNIST_DATA_DIR)")
    p.add_argument("--json", metavar="FILE", help="where to write the results "
                   "(default: benchmarks/results/lab_time.json, lab_all.json with --all)")
    args = p.parse_args(argv)
    mnist_dir = B.data_dir(args.data_dir)
    available = B.lessons()
    numbers = (list(available) if args.all
               else (args.lessons.split(",") if args.lessons else WHOLE_LAB))
    scripts = {n: B.lesson(n) for n in numbers}
    ensemble = [n for n in numbers if n in ENSEMBLES]  # 5.2: no training, it votes (below)
    numbers = [n for n in numbers if n not in ENSEMBLES]
    machine = B.start()  # the machine, and the load before the runs
    peaks = [flops.measure_peak_in_child()]
    lesson_flops = flops.flops_in_child(numbers)

    extra = ["--no-vis"] + (["--steps", str(args.steps)] if args.steps else []) + args.args.split()
    kept = tempfile.mkdtemp(prefix="mnist-ensemble-")  # the models its members come from
    runs = {n: [] for n in numbers}
    # each pass: every lesson once
    passes = [(r, seed) for r in range(args.repeats) for seed in range(args.seeds)]
    for r, seed in passes:
        total = 0.0
        for n in numbers:
            model = Path(kept) / f"{n}-seed-{seed}-{r}" if n in MEMBERS else None
            run = B.run_lesson(scripts[n], extra + ["--seed", str(seed)],
                               env=B.lesson_env(mnist_dir), model=model)
            final = run["history"]["final"]
            record = {
                "wall_seconds": round(run["wall"], 3),  # process start to exit
                "steps": final["steps"],
                "training_seconds": final["training_seconds"],
                "test_seconds": final["testing_seconds"],
                # training loop start to end (history)
                "lesson_wall_seconds": final["wall_seconds"],
                "images_per_second": B.rates(run["history"])["training_images_per_second"],
                "max_test_accuracy": final["max_test_accuracy"],
                "final_test_accuracy": final["final_test_accuracy"],
                "xla": run["history"]["config"].get("xla"),
                "engine": run["history"]["config"].get("engine"),
                "seed": seed,
            }
            runs[n].append(record)
            total += run["wall"]
            print(f"run {r + 1}/{args.repeats} seed {seed}  {n}: {run['wall']:6.1f} s  "
                  f"max test accuracy {final['max_test_accuracy']:.4f}  "
                  f"final {final['final_test_accuracy']:.4f}", flush=True)
        print(f"run {r + 1}/{args.repeats} seed {seed}  total: {total:.1f} s", flush=True)

    peaks.append(flops.measure_peak_in_child())
    peak = max(p["peak_gflops"] for p in peaks)
    results, rows = {}, []
    for n in numbers:
        rs = runs[n]
        med = {k: B.median([x[k] for x in rs]) for k in
               ("wall_seconds", "training_seconds", "test_seconds", "images_per_second",
                "max_test_accuracy", "final_test_accuracy")}
        promised = promised_accuracy(scripts[n])
        training_flops = lesson_flops[n]["training"]
        gflops = (training_flops * med["images_per_second"] / 1e9
                  if med["images_per_second"] else None)
        mean_max = sum(x["max_test_accuracy"] for x in rs) / len(rs)
        finals = [x["final_test_accuracy"] for x in rs]
        results[n] = {"script": scripts[n].name, "steps": rs[0]["steps"], "xla": rs[0]["xla"],
                      "engine": rs[0]["engine"], "promised_max_test_accuracy": promised,
                      "median": med, "training_flops_per_image": training_flops,
                      "training_gflops": round(gflops, 1) if gflops else None,
                      "fraction_of_peak": round(gflops / peak, 3) if gflops else None,
                      "mean_max_test_accuracy": round(mean_max, 5),
                      "final_test_accuracy_over_seeds": {
                          "mean": round(statistics.mean(finals), 5), "min": min(finals),
                          "max": max(finals), "stdev": round(statistics.stdev(finals), 5)
                          if len(finals) > 1 else None},
                      "runs": rs}
        rows.append([n, scripts[n].stem.split("_", 2)[2], rs[0]["steps"],
                     B.fmt(med["wall_seconds"], 1), B.fmt(med["training_seconds"], 1),
                     B.fmt(med["test_seconds"], 1), B.fmt(med["images_per_second"]),
                     B.fmt(gflops, 1), f"{gflops / peak:.0%}" if gflops else "-",
                     "-" if promised is None else f"{promised:.3f}",
                     f"{med['max_test_accuracy']:.4f}", f"{med['final_test_accuracy']:.4f}"])
    totals = [sum(runs[n][k]["wall_seconds"] for n in numbers) for k in range(len(passes))]
    total = B.median(totals)
    rows.append(["total", "", "", B.fmt(total, 1), "", "", "", "", "", "", "", ""])
    at_steps = "--steps " + str(args.steps) if args.steps else "their default steps"
    print(f"\nLessons at {at_steps}, --no-vis"
          + (f" {args.args}" if args.args else "")
          + (f", median of {len(passes)} runs" if len(passes) > 1 else "")
          + (f" (seeds 0 to {args.seeds - 1})" if args.seeds > 1 else ""))
    print(B.table(["lesson", "name", "steps", "wall s", "train s", "test s", "images/s", "GFLOP/s",
                   "of peak", "promised", "max acc", "final acc"], rows))
    print(f"(images/s, GFLOP/s: the training alone; peak: tf.matmul, {peak} GFLOP/s)")
    if args.seeds > 1:
        print("mean max test accuracy over the seeds: " + ", ".join(
            f"{n} {results[n]['mean_max_test_accuracy']:.4f}" for n in numbers))
        print("final test accuracy over the seeds, mean (min-max): " + ", ".join(
            f"{n} {results[n]['final_test_accuracy_over_seeds']['mean']:.4f} "
            f"({min(x['final_test_accuracy'] for x in runs[n]):.4f}-"
            f"{max(x['final_test_accuracy'] for x in runs[n]):.4f})" for n in numbers))
    for n in ensemble:  # the members: every model the runs of 5.1 (else 5.0) saved
        members = sorted(Path(kept).glob("5.1-*")) or sorted(Path(kept).glob("5.0-*"))
        if len(members) < 2:
            print(f"{n}: needs two models or more: run 5.1 (or 5.0) with --seeds 2 or more")
            continue
        start = time.perf_counter()
        vote = subprocess.run([B.PYTHON, str(scripts[n]), *map(str, members), "--no-vis"],
                              env=B.lesson_env(mnist_dir), capture_output=True, text=True)
        if vote.returncode:
            raise RuntimeError(vote.stderr)
        lines = vote.stdout.splitlines()
        voted = [float(re.search(r"test accuracy (0\.\d+)", line).group(1)) for line in lines
                 if line.startswith("the first ")]
        results[n] = {"script": scripts[n].name, "members": [m.name for m in members],
                      "accuracy_with_k_members": voted,
                      "wall_seconds": round(time.perf_counter() - start, 1)}
        print(f"{n} (ensemble of {len(members)}): test accuracy with 1, 2, ... members: "
              + ", ".join(f"{a:.4f}" for a in voted))
    shutil.rmtree(kept, ignore_errors=True)
    whole_lab = not args.steps and not args.args and set(WHOLE_LAB) <= set(numbers)
    if whole_lab:
        lab_total = B.median([sum(runs[n][k]["wall_seconds"] for n in WHOLE_LAB)
                              for k in range(len(passes))])
        verdict = "OK" if lab_total < TARGET_SECONDS else "OVER TARGET"
        print(f"\nthe whole lab ({', '.join(WHOLE_LAB)}): {lab_total:.1f} s, "
              f"target < {TARGET_SECONDS} s: {verdict}")
    else:
        lab_total = None
    below = [n for n in numbers if results[n]["promised_max_test_accuracy"] is not None
             and (results[n]["median"]["max_test_accuracy"]
                  < results[n]["promised_max_test_accuracy"] - 0.002)]
    if below and not args.steps:
        print("max test accuracy more than 0.2 points below the docstring's promise: "
              + ", ".join(below))

    data = {
        "benchmark": "lab_time",
        "description": "each lesson at its default steps with --no-vis, run one after another; "
                       "wall = process start to exit",
        "target_seconds": TARGET_SECONDS,
        "whole_lab": WHOLE_LAB,
        "whole_lab_seconds": lab_total,
        "total_seconds": total,
        "total_seconds_per_run": totals,
        "settings": {"lessons": numbers, "repeats": args.repeats, "steps": args.steps,
                     "seeds": args.seeds, "args": args.args},
        "machine": machine,
        "peak": {"gflops": peak, "measurements": peaks},
        "results": results,
    }
    B.save(data, args.json, "lab_all.json" if args.all else "lab_time.json")


if __name__ == "__main__":
    main()
