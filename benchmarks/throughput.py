"""Throughput on the lab's schedule: our loop vs Keras model.fit vs PyTorch, and the roofline.

For each lesson model (default 2.1 five-layer ReLU, 3.0 and 3.1 convolutional), batch 100,
on CPU, every framework trains the same model on the lab's schedule: the current batch's
loss and accuracy every 20 steps, the 10,000 test images every 100 steps (every 20 in
the first 200). Images per second are counted from the measurement at step 200 (tracing,
compiling and warming up are over) to the last one:

  end to end   training steps and test measurements together: what a learner waits for;
               THE comparison (target: ours >= 1.2 x the faster of Keras and PyTorch)
  training     the same span without the test measurements

  ours   the lesson itself, in a child process: `mnist_X.py --no-vis --steps N`; its
         history gives the clock at each measurement and its training-only throughput.
  keras  baselines.py: keras.Sequential, model.fit, TensorFlow with oneDNN on; variants
         auto/xla x steps_per_execution 1/20; the fastest variant's median counts.
  torch  baselines.py: PyTorch, a plain loop; variants eager, fused Adam, channels_last,
         one thread, torch.compile; the fastest variant's median counts.

The roofline: each model's training FLOPs per image (flops.py: counted from the lesson's
layer shapes, forward and backward), the GFLOP/s of our training, and their ratio to the
machine's tf.matmul peak (flops.py --peak, measured before and after the runs: the best
of the two counts).

Every measurement runs in its own child process; in each repeat the frameworks run one
after another in a rotated order (ours, keras, torch; then keras, torch, ours; ...), so a
noisy neighbour hits them all alike. Writes JSON (default benchmarks/results/throughput.json)
with every measurement and the machine's details.

Patched copies of the lab can be compared side by side with the current one:
  --ours-variant NAME=DIR   runs the lessons found in DIR (a copy of the repository with a
                            changed lab.py) as an extra framework called NAME;
  --ours-env NAME=KEY=VALUE sets an environment variable for variant NAME (which runs
                            the repository's own lessons unless --ours-variant gives a DIR),
                            e.g. --ours-env t1=TF_NUM_INTRAOP_THREADS=1;
  --ours-args NAME=ARGS     extra lesson flags for variant NAME, e.g. --ours-args "xla=--xla on".
Each variant's row shows its median and its ratio to ours (the repository as it is).

Examples:
  python benchmarks/throughput.py                          # 2.1, 3.0, 3.1; 3 repeats (~40 min)
  python benchmarks/throughput.py --models 2.1 --repeats 5
  python benchmarks/throughput.py --frameworks ours --ours-env eigen=TF_ENABLE_ONEDNN_OPTS=0
"""

import argparse
import sys
from pathlib import Path

import _bench as B
import flops

HERE = Path(__file__).resolve().parent
DEFAULT_MODELS = ["2.1", "3.0", "3.1"]
CONV = {"3.0", "3.1"}  # the convolutional ones (fewer steps: they are slower)
TIMED_FROM = 200  # as baselines.py


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(DEFAULT_MODELS),
                   help="comma-separated lesson numbers (default: 2.1,3.0,3.1; also 1.0, 2.0, 2.2)")
    p.add_argument("--frameworks", default="ours,keras,torch",
                   help="comma-separated, from ours, keras, torch (default: all three; torch is "
                        "skipped when not installed)")
    p.add_argument("--repeats", type=int, default=3,
                   help="measurements of each framework and model (default: 3)")
    p.add_argument("--steps-dense", type=int, default=3000,
                   help="training steps of a dense model (default: 3000)")
    p.add_argument("--steps-conv", type=int, default=1500,
                   help="training steps of a convolutional model (default: 1500)")
    p.add_argument("--keras-variants-dense", default="auto-spe20,xla-spe20",
                   help="keras variants for dense models, from auto, xla, noxla, "
                        "each optionally with -spe20 (steps_per_execution=20) "
                        "(default: auto-spe20,xla-spe20)")
    p.add_argument("--keras-variants-conv", default="auto,auto-spe20",
                   help="keras variants for convolutional models (default: auto,auto-spe20; "
                        "XLA is several times slower for convolutions on CPU)")
    p.add_argument("--torch-variants-dense", default="eager,fused,t1,compile",
                   help="torch variants, dense models (default: eager,fused,t1,compile)")
    p.add_argument("--torch-variants-conv", default="eager,cl,compile",
                   help="torch variants, convolutional models (default: eager,cl,compile)")
    p.add_argument("--ours-variant", action="append", default=[], metavar="NAME=DIR",
                   help="also run the lessons of DIR (a patched copy of the repository) as NAME")
    p.add_argument("--ours-env", action="append", default=[], metavar="NAME=KEY=VALUE",
                   help="an environment variable for variant NAME (repeatable)")
    p.add_argument("--ours-args", action="append", default=[], metavar="NAME=ARGS",
                   help="extra lesson flags for variant NAME, e.g. 'xla=--xla on' (repeatable)")
    p.add_argument("--data-dir", help="MNIST folder (default: $MNIST_DATA_DIR)")
    p.add_argument("--json", metavar="FILE",
                   help="where to write the results (default: benchmarks/results/throughput.json)")
    args = p.parse_args(argv)
    args.models = args.models.split(",")
    args.frameworks = args.frameworks.split(",")
    for f in args.frameworks:
        if f not in ("ours", "keras", "torch"):
            p.error(f"unknown framework {f!r}: "
                    "use ours, keras, torch (and --ours-variant for more)")
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


def steps_of(args, model):
    return args.steps_conv if model in CONV else args.steps_dense


def measure_ours(args, model, folder=B.ROOT, env_extra=None, flags=()):
    steps = steps_of(args, model)
    script = B.lesson(model, folder)
    env = B.lesson_env(args.mnist_dir, **(env_extra or {}))
    run = B.run_lesson(script, ["--no-vis", "--steps", steps, *flags], env=env)
    history = run["history"]
    final = history["final"]
    rates = B.rates(history, TIMED_FROM)  # the lab's schedule, from step 200 to the last
    return {**rates, "steps": steps, "engine": history["config"].get("engine"),
            "xla": history["config"].get("xla"), "process_seconds": round(run["wall"], 3),
            "max_test_accuracy": final["max_test_accuracy"]}


def measure_baseline(args, framework, model):
    conv = model in CONV
    variants = {("keras", False): args.keras_variants_dense,
                ("keras", True): args.keras_variants_conv,
                ("torch", False): args.torch_variants_dense,
                ("torch", True): args.torch_variants_conv}
    command = [B.PYTHON, HERE / "baselines.py", framework, "--model", model,
               "--data-dir", args.mnist_dir, "--steps", steps_of(args, model),
               "--variants", variants[framework, conv]]
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
        print("PyTorch is not installed: no PyTorch baseline (pip install torch==2.13.0)",
              file=sys.stderr)
        frameworks.remove("torch")
    frameworks += list(args.variants)
    machine = B.start()  # the machine, and the load before the runs
    peaks = [flops.measure_peak_in_child()]
    model_flops = flops.flops_in_child(args.models)
    print(f"tf.matmul peak {peaks[0]['peak_gflops']} GFLOP/s ({peaks[0]['engine']}); "
          "training MFLOP per image: "
          + ", ".join(f"{m} {model_flops[m]['training'] / 1e6:.2f}" for m in args.models),
          flush=True)

    raw = {m: {f: [] for f in frameworks} for m in args.models}  # every measurement, as returned
    for r in range(args.repeats):
        for model in args.models:
            for framework in B.rotate(frameworks, r):
                if framework == "ours":
                    result = measure_ours(args, model)
                    shown = (f"{result['images_per_second']} "
                             f"(training {result['training_images_per_second']})")
                elif framework in args.variants:
                    v = args.variants[framework]
                    result = measure_ours(args, model, v["dir"], v["env"], v["args"])
                    shown = (f"{result['images_per_second']} "
                             f"(training {result['training_images_per_second']})")
                else:
                    result = measure_baseline(args, framework, model)
                    shown = " ".join(f"{k}={v['images_per_second']}"
                                     for k, v in result["variants"].items())
                raw[model][framework].append(result)
                print(f"repeat {r + 1}/{args.repeats}  {model}  {framework:>8}: {shown}",
                      flush=True)
    peaks.append(flops.measure_peak_in_child())
    peak = max(p["peak_gflops"] for p in peaks)

    # medians: ours (and variants) directly; baselines per variant, the best variant's median
    results, rows, roofline_rows = {}, [], []
    for model in args.models:
        entry = {}
        for framework in frameworks:
            runs = raw[model][framework]
            if framework in ("keras", "torch"):
                names = list(runs[0]["variants"])
                variants = {name: B.summary([run["variants"][name]["images_per_second"]
                                             for run in runs])
                            for name in names}
                training = {name: B.median([run["variants"][name]["training_images_per_second"]
                                            for run in runs])
                            for name in names}
                best = max(names, key=lambda name: variants[name]["median"] or 0)
                entry[framework] = dict(variants[best], best_variant=best, variants=variants,
                                        training_median=training, runs=runs)
            else:
                training = B.median([run["training_images_per_second"] for run in runs])
                entry[framework] = dict(B.summary([run["images_per_second"] for run in runs]),
                                        training_median=training, runs=runs)
        baselines = [entry[f]["median"] for f in ("keras", "torch")
                     if f in entry and entry[f]["median"]]
        ours = entry.get("ours", {}).get("median")
        ratio = ours / max(baselines) if ours and baselines else None
        training_flops = model_flops[model]["training"]
        ours_training = entry.get("ours", {}).get("training_median")
        gflops = training_flops * ours_training / 1e9 if ours_training else None
        results[model] = {"frameworks": entry, "ratio_ours_to_best_baseline": ratio,
                          "training_flops_per_image": training_flops,
                          "forward_flops_per_image": model_flops[model]["forward"],
                          "ours_training_gflops": round(gflops, 1) if gflops else None,
                          "ours_fraction_of_peak": round(gflops / peak, 3) if gflops else None}
        row = [model]
        for framework in frameworks:
            e = entry[framework]
            label = B.fmt(e["median"]) + (f" ({e['best_variant']})" if "best_variant" in e else "")
            row.append(label)
        row.append(f"{ratio:.2f}" if ratio else "-")
        rows.append(row)
        roofline_rows.append([model, f"{training_flops / 1e6:.2f}", B.fmt(ours_training),
                              B.fmt(gflops, 1), f"{gflops / peak:.0%}" if gflops else "-"])

    print(f"\nImages per second, end to end on the lab's schedule "
          f"(steps {TIMED_FROM} to the last), "
          f"median of {args.repeats} (baselines: their fastest variant)")
    print(B.table(["model"] + frameworks + ["ours / best baseline"], rows))
    print(f"\nRoofline: our training alone, against the tf.matmul peak of {peak} GFLOP/s")
    print(B.table(["model", "training MFLOP/image", "training images/s", "GFLOP/s", "of peak"],
                  roofline_rows))
    print("\nBaseline variants (median images/s end to end; training alone)")
    variant_rows = []
    for model in args.models:
        for framework in ("keras", "torch"):
            if framework in results[model]["frameworks"]:
                e = results[model]["frameworks"][framework]
                for name, s in e["variants"].items():
                    variant_rows.append([model, framework, name, B.fmt(s["median"]),
                                         B.fmt(s["min"]), B.fmt(s["max"]),
                                         B.fmt(e["training_median"][name])])
    print(B.table(["model", "framework", "variant", "median", "min", "max", "training"],
                  variant_rows))

    data = {
        "benchmark": "throughput",
        "description": "images/s on the lab's schedule (test measurements included), batch 100, "
                       f"from step {TIMED_FROM} to the last: ours vs Keras model.fit vs PyTorch; "
                       "medians over repeats, ratio = ours / max(keras, torch); "
                       "roofline = our training FLOPs/s vs the tf.matmul peak",
        "target_ratio": 1.2,
        "peak": {"gflops": peak, "measurements": peaks},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                     if k not in ("variants", "ours_variant", "ours_env", "ours_args")},
        "ours_variants": {n: {"dir": str(v["dir"]), "env": v["env"], "args": v["args"]}
                          for n, v in args.variants.items()},
        "machine": machine,
        "flops": model_flops,
        "results": results,
    }
    B.save(data, args.json, "throughput.json")


if __name__ == "__main__":
    main()
