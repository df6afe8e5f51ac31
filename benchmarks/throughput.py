"""Training throughput: our training loop vs Keras model.fit vs PyTorch eager, same models.

For each lesson model (default 2.1 five-layer ReLU, 3.0 and 3.1 convolutional), batch 100,
on CPU, images per second of:

  ours   the lesson itself, in a child process: `mnist_X.py --no-vis --steps N`, reading
         final.images_per_second from its history JSON (the training loop's throughput,
         without the first compiled call, which traces and compiles, nor the test
         evaluations; it includes the training figures every 20 steps and all the Python
         between compiled calls).
  keras  the same architecture as a keras.Sequential, Adam with the same learning-rate
         schedule, model.fit(x, y, batch_size=100) on the real MNIST arrays; one epoch
         timed after a warm-up fit. Variants: jit_compile="auto" (Keras' default; on a
         CPU-only machine it resolves to no XLA), "xla" (jit_compile=True); the faster
         variant's median is the Keras figure.
  torch  the same architecture in PyTorch, eager, on CPU, Adam, batches gathered from
         tensors in memory; timed after a warm-up. Variants: eager (defaults), fused (Adam
         fused=True), cl (fused + channels_last), t1 (fused + 1 thread); the faster
         variant's median is the PyTorch figure.

See baselines.py for the details of the baselines. Every measurement runs in its own
child process; in each repeat the frameworks run one after another in a rotated order
(ours, keras, torch; then keras, torch, ours; ...), so a noisy neighbour hits them all
alike. It prints, per model, the median images/s of each framework and the ratio
ours / max(keras, torch) (target: >= 1.2), and writes JSON (default:
benchmarks/results/throughput.json) with every measurement and the machine's details.

Patched copies of the lab can be compared side by side with the current one:
  --ours-variant NAME=DIR   runs the lessons found in DIR (a copy of the repository with a
                            changed lab.py) as an extra framework called NAME;
  --ours-env NAME=KEY=VALUE sets an environment variable for variant NAME (which runs
                            the repository's own lessons unless --ours-variant gives a DIR),
                            e.g. --ours-env t1=TF_NUM_INTRAOP_THREADS=1;
  --ours-args NAME=ARGS     extra lesson flags for variant NAME, e.g. --ours-args "xla=--xla on".
Each variant's row shows its median and its ratio to ours (the repository as it is).

Examples:
  python benchmarks/throughput.py                          # 2.1, 3.0, 3.1; 3 repeats (~8 min)
  python benchmarks/throughput.py --models 2.1 --repeats 5
  python benchmarks/throughput.py --frameworks ours --ours-variant patched=/tmp/lab-patched
"""

import argparse
import sys
from pathlib import Path

import _bench as B

HERE = Path(__file__).resolve().parent
DEFAULT_MODELS = ["2.1", "3.0", "3.1"]
CONV = {"3.0", "3.1"}  # the convolutional ones (fewer steps: they are slower)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(DEFAULT_MODELS),
                   help="comma-separated lesson numbers (default: 2.1,3.0,3.1; also 1.0, 2.0, 2.2)")
    p.add_argument("--frameworks", default="ours,keras,torch",
                   help="comma-separated, from ours, keras, torch (default: all three; torch is "
                        "skipped when not installed)")
    p.add_argument("--repeats", type=int, default=3, help="measurements of each framework and model (default: 3)")
    p.add_argument("--steps-dense", type=int, default=3000, help="ours: training steps of a dense lesson (default: 3000)")
    p.add_argument("--steps-conv", type=int, default=1500,
                   help="ours: training steps of a convolutional lesson (default: 1500)")
    p.add_argument("--keras-variants", default="auto,xla",
                   help="comma-separated, from auto, xla, noxla, each optionally with -spe20 "
                        "(steps_per_execution=20), e.g. auto-spe20 (default: auto,xla)")
    p.add_argument("--keras-images-dense", type=int, default=60000, help="keras: images in the timed epoch, dense (default: 60000)")
    p.add_argument("--keras-images-conv", type=int, default=20000, help="keras: images in the timed epoch, conv (default: 20000)")
    p.add_argument("--torch-variants-dense", default="eager,fused,t1", help="torch variants, dense models (default: eager,fused,t1)")
    p.add_argument("--torch-variants-conv", default="eager,fused,cl,t1",
                   help="torch variants, convolutional models (default: eager,fused,cl,t1)")
    p.add_argument("--torch-steps-dense", type=int, default=3000, help="torch: timed steps, dense (default: 3000)")
    p.add_argument("--torch-steps-conv", type=int, default=300, help="torch: timed steps, conv (default: 300)")
    p.add_argument("--ours-variant", action="append", default=[], metavar="NAME=DIR",
                   help="also run the lessons of DIR (a patched copy of the repository) as NAME")
    p.add_argument("--ours-env", action="append", default=[], metavar="NAME=KEY=VALUE",
                   help="an environment variable for variant NAME (repeatable)")
    p.add_argument("--ours-args", action="append", default=[], metavar="NAME=ARGS",
                   help="extra lesson flags for variant NAME, e.g. 'xla=--xla on' (repeatable)")
    p.add_argument("--data-dir", help="MNIST folder (default: $MNIST_DATA_DIR)")
    p.add_argument("--json", metavar="FILE", help="where to write the results (default: benchmarks/results/throughput.json)")
    args = p.parse_args(argv)
    args.models = args.models.split(",")
    args.frameworks = args.frameworks.split(",")
    for f in args.frameworks:
        if f not in ("ours", "keras", "torch"):
            p.error(f"unknown framework {f!r}: use ours, keras, torch (and --ours-variant for more)")
    args.variants = {}  # name -> {"dir": Path, "env": {}, "args": []}

    def variant(name):
        return args.variants.setdefault(name, {"dir": B.ROOT, "env": {}, "args": []})

    for item in args.ours_variant:
        name, _, folder = item.partition("=")
        if not name or not folder or not Path(folder).is_dir():
            p.error(f"--ours-variant {item}: expected NAME=DIR with an existing DIR")
        variant(name)["dir"] = Path(folder).resolve()
    for item in args.ours_env:
        name, _, assignment = item.partition("=")
        key, _, value = assignment.partition("=")
        if not name or not key:
            p.error(f"--ours-env {item}: expected NAME=KEY=VALUE")
        variant(name)["env"][key] = value
    for item in args.ours_args:
        name, _, flags = item.partition("=")
        if not name or not flags:
            p.error(f"--ours-args {item}: expected NAME=ARGS")
        variant(name)["args"] += flags.split()
    for name in args.variants:
        if name in ("ours", "keras", "torch"):
            p.error(f"variant name {name!r} is taken: choose another")
    return args


def measure_ours(args, model, folder=B.ROOT, env_extra=None, flags=()):
    steps = args.steps_conv if model in CONV else args.steps_dense
    script = B.lesson(model, folder)
    env = B.lesson_env(args.mnist_dir, **(env_extra or {}))
    run = B.run_lesson(script, ["--no-vis", "--steps", steps, *flags], env=env)
    final = run["history"]["final"]
    return {"images_per_second": final["images_per_second"], "steps": steps,
            "training_seconds": final["training_seconds"], "test_seconds": final["test_seconds"],
            "wall_seconds": final["wall_seconds"], "process_seconds": round(run["wall"], 3),
            "xla": run["history"]["config"].get("xla"),
            "max_test_accuracy": final["max_test_accuracy"]}


def measure_baseline(args, framework, model):
    conv = model in CONV
    command = [B.PYTHON, HERE / "baselines.py", framework, "--model", model, "--data-dir", args.mnist_dir]
    if framework == "keras":
        command += ["--variants", args.keras_variants,
                    "--images", args.keras_images_conv if conv else args.keras_images_dense]
    else:
        command += ["--variants", args.torch_variants_conv if conv else args.torch_variants_dense,
                    "--steps", args.torch_steps_conv if conv else args.torch_steps_dense]
    return B.run_json_worker(command, env=B.lesson_env(args.mnist_dir))


def torch_installed():
    return B._package_version("torch") is not None


def main(argv=None):
    args = parse_args(argv)
    args.mnist_dir = B.data_dir(args.data_dir)
    for model in args.models:
        B.lesson(model)  # fail early on an unknown lesson
    frameworks = list(args.frameworks)
    if "torch" in frameworks and not torch_installed():
        print("PyTorch is not installed: no PyTorch baseline (pip install torch==2.13.0)", file=sys.stderr)
        frameworks.remove("torch")
    frameworks += list(args.variants)
    machine = B.start()  # the machine, and the load before the runs

    raw = {m: {f: [] for f in frameworks} for m in args.models}  # every measurement, as returned
    for r in range(args.repeats):
        for model in args.models:
            for framework in B.rotate(frameworks, r):
                if framework == "ours":
                    result = measure_ours(args, model)
                    shown = result["images_per_second"]
                elif framework in args.variants:
                    v = args.variants[framework]
                    result = measure_ours(args, model, v["dir"], v["env"], v["args"])
                    shown = result["images_per_second"]
                else:
                    result = measure_baseline(args, framework, model)
                    shown = " ".join(f"{k}={v['images_per_second']}" for k, v in result["variants"].items())
                raw[model][framework].append(result)
                print(f"repeat {r + 1}/{args.repeats}  {model}  {framework:>8}: {shown}", flush=True)

    # medians: ours (and variants) directly; baselines per variant, the best variant's median
    results, rows = {}, []
    for model in args.models:
        entry = {}
        for framework in frameworks:
            runs = raw[model][framework]
            if framework in ("keras", "torch"):
                names = list(runs[0]["variants"])
                per_variant = {n: B.summary([run["variants"][n]["images_per_second"] for run in runs]) for n in names}
                best = max(names, key=lambda n: per_variant[n]["median"] or 0)
                entry[framework] = {"median": per_variant[best]["median"], "best_variant": best,
                                    "variants": per_variant, "runs": runs}
            else:
                entry[framework] = dict(B.summary([run["images_per_second"] for run in runs]), runs=runs)
        ours = entry.get("ours", {}).get("median")
        others = [entry[f]["median"] for f in ("keras", "torch") if f in entry and entry[f]["median"]]
        best_other = max(others) if others else None
        entry["ratio_ours_over_best_baseline"] = round(ours / best_other, 3) if ours and best_other else None
        for name in args.variants:
            if ours and entry[name]["median"]:
                entry[name]["ratio_over_ours"] = round(entry[name]["median"] / ours, 3)
        results[model] = entry
        row = [model]
        for framework in frameworks:
            e = entry[framework]
            cell = B.fmt(e["median"])
            if framework in ("keras", "torch"):
                cell += f" ({e['best_variant']})"
            elif framework != "ours" and e.get("ratio_over_ours"):
                cell += f" (x{e['ratio_over_ours']:.2f})"
            row.append(cell)
        ratio = entry["ratio_ours_over_best_baseline"]
        row.append("-" if ratio is None else f"{ratio:.2f}" + ("" if ratio >= 1.2 else "  < 1.2!"))
        rows.append(row)

    print(f"\nTraining images per second, batch 100, median of {args.repeats} "
          f"(baselines: their fastest variant)")
    print(B.table(["model"] + frameworks + ["ours / best baseline"], rows))
    print("\nBaseline variants (median images/s):")
    variant_rows = []
    for model in args.models:
        for framework in ("keras", "torch"):
            if framework in results[model]:
                for name, s in results[model][framework]["variants"].items():
                    variant_rows.append([model, framework, name, B.fmt(s["median"]), B.fmt(s["min"]), B.fmt(s["max"])])
    print(B.table(["model", "framework", "variant", "median", "min", "max"], variant_rows))

    data = {
        "benchmark": "throughput",
        "description": "training images/s, batch 100: ours (lesson's final.images_per_second) vs "
                       "Keras model.fit vs PyTorch eager; medians over repeats, ratio = ours / max(keras, torch)",
        "target_ratio": 1.2,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                     if k not in ("variants", "ours_variant", "ours_env", "ours_args")},
        "ours_variants": {n: {"dir": str(v["dir"]), "env": v["env"], "args": v["args"]}
                          for n, v in args.variants.items()},
        "machine": machine,
        "results": results,
    }
    B.save(data, args.json, "throughput.json")


if __name__ == "__main__":
    main()
