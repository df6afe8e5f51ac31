"""The whole lab in two copies of the code, lesson by lesson, taking turns.

On a shared machine the speed changes from minute to minute: two runs of lab_time.py a
few minutes apart can differ by a quarter. This runs each lesson of the whole lab (1.0 to
3.0 at their default steps, --no-vis, as lab_time.py) in one copy and then in the other,
back to back, the order flipping from one lesson to the next and from one pass to the
next, so that a slow minute hits both alike. The figure that counts is the ratio of the
two totals (the second copy's over the first's), pass by pass and over all passes.

    python benchmarks/lab_turns.py before=../baseline after=.
    python benchmarks/lab_turns.py --repeats 2 before=../baseline:/tmp/old-venv/bin/python after=.

A copy is NAME=DIR[:PYTHON] (default: this Python), e.g. a worktree of an older commit
(git worktree add ../baseline COMMIT) with the virtual environment it was measured with.
Writes benchmarks/results/lab_turns.json (or --json FILE).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench as B  # noqa: E402
from lab_time import WHOLE_LAB  # noqa: E402


def copy(text):
    """NAME=DIR[:PYTHON] -> (name, folder, python)."""
    name, _, rest = text.partition("=")
    folder, _, python = rest.partition(":")
    if not name or not folder or not Path(folder).is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=DIR[:PYTHON] with a folder")
    return name, Path(folder).resolve(), python or B.PYTHON


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("copies", nargs=2, type=copy, metavar="NAME=DIR[:PYTHON]")
    p.add_argument("--lessons", default=",".join(WHOLE_LAB),
                   help="comma-separated lesson numbers (default: the whole lab, %(default)s)")
    p.add_argument("--repeats", type=int, default=1, help="passes over the lessons (default: 1)")
    p.add_argument("--json", metavar="FILE",
                   help="where to write the results (default: benchmarks/results/lab_turns.json)")
    args = p.parse_args(argv)
    mnist_dir = B.data_dir()
    numbers = args.lessons.split(",")
    scripts = {name: {n: B.lesson(n, folder) for n in numbers} for name, folder, _ in args.copies}
    machine = B.start()
    names = [name for name, _, _ in args.copies]
    runs = []  # one row per lesson run
    for repeat in range(args.repeats):
        for k, n in enumerate(numbers):
            for name, folder, python in B.rotate(args.copies, repeat + k):
                run = B.run_lesson(scripts[name][n], ["--no-vis"], env=B.lesson_env(mnist_dir),
                                   python=python, timeout=4 * 3600)  # (5.1: 30-45 min here)
                final = run["history"]["final"]
                runs.append({"pass": repeat + 1, "lesson": n, "copy": name,
                             "wall_seconds": round(run["wall"], 3),
                             "training_seconds": final["training_seconds"],
                             "test_seconds": final["testing_seconds"],
                             "max_test_accuracy": final["max_test_accuracy"],
                             "final_test_accuracy": final["final_test_accuracy"]})
                print(f"pass {repeat + 1}/{args.repeats}  {n} {name}: {run['wall']:6.1f} s  "
                      f"(training {final['training_seconds']:.1f}, testing "
                      f"{final['testing_seconds']:.1f})  max test accuracy "
                      f"{final['max_test_accuracy']:.4f}", flush=True)

    def total(name, repeat=None):
        return sum(r["wall_seconds"] for r in runs
                   if r["copy"] == name and repeat in (None, r["pass"]))

    def median(n, name):
        return B.median([r["wall_seconds"] for r in runs if r["lesson"] == n and r["copy"] == name])

    first, second = names
    rows = [[n, B.fmt(median(n, first), 1), B.fmt(median(n, second), 1),
             f"{median(n, second) / median(n, first):.2f}"] for n in numbers]
    passes = [{"pass": k + 1, **{name: round(total(name, k + 1), 1) for name in names},
               "ratio": round(total(second, k + 1) / total(first, k + 1), 3)}
              for k in range(args.repeats)]
    rows += [[f"pass {q['pass']}", B.fmt(q[first], 1), B.fmt(q[second], 1), f"{q['ratio']:.3f}"]
             for q in passes]
    ratio = total(second) / total(first)
    rows.append(["all passes", B.fmt(total(first), 1), B.fmt(total(second), 1), f"{ratio:.3f}"])
    cpu = machine["cpu"]
    print(f"\n{cpu['model']}, {cpu['cores']} cores, {' '.join(cpu['flags'])}; wall seconds, "
          f"launch to exit, taking turns (lesson rows: medians of {args.repeats})")
    print(B.table(["lesson", first, second, f"{second} / {first}"], rows))
    B.save({"benchmark": "lab_turns", "machine": machine, "lessons": numbers,
            "copies": [{"name": name, "folder": str(folder), "python": str(python)}
                       for name, folder, python in args.copies],
            "passes": passes, "ratio": round(ratio, 3), "runs": runs},
           args.json, "lab_turns.json")


if __name__ == "__main__":
    main()
