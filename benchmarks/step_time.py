"""A lesson's training step (and test pass), A against B: copies of the code side by side.

For judging a speed-up on a busy machine. The figure that counts is each variant's median
ratio to the first, measured pairwise (A and B in the same turn, so a noisy neighbour hits
both alike). Two ways to take turns:

  --in-process (the default when no variant sets environment variables): every variant's
      lesson is loaded into one process (its own blocks.py and lesson file), and they train
      in turns of 20 steps, A B C A B C ... (the order rotated every round): contention from
      other processes changes within seconds, and this sees it hit every variant alike.
      (Not for a change that acts on the whole process, e.g. a gradient registered anew:
      it would act on every variant. Use --processes; a variant whose blocks.py has
      use_subpixel_gradient against one without it is refused.)
  separate processes (--processes, or when a variant sets environment variables, which
      TensorFlow reads when it loads): each measurement in a fresh process, the variants
      alternating, the order rotated each repeat.

Either way a lesson trains as the lab trains it (MNIST as tensors, batches of 100 gathered
inside one compiled call of 20 steps, augmented if the lesson augments), warmed up, then
timed: training images per second (wall clock) and per CPU second (this process's threads:
less sensitive to other processes taking turns on the cores); optionally a test pass
(10,000 images in chunks of the given sizes), in milliseconds.

    python benchmarks/step_time.py --lessons 4.2 base=../baseline new=.
    python benchmarks/step_time.py --lessons 3.0,5.1 --rounds 40 base=../a new=.
    python benchmarks/step_time.py --lessons 4.2 --test-batches 500,1000,2000,10000 this=.
    python benchmarks/step_time.py --lessons 3.0 base=. 't1=.:TF_NUM_INTRAOP_THREADS=1'
    python benchmarks/step_time.py --lessons 3.0,4.2 float32=. bf16=.:precision=bf16

A variant is NAME=DIR[:KEY=VALUE[:KEY=VALUE...]] (environment variables for its process),
and precision=bf16 trains it as the lab's --precision bf16 does (blocks.mixed_bfloat16).
"""

import argparse
import contextlib
import importlib
import json
import os
import runpy
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _bench as B  # noqa: E402

# The lab's own modules (ls *.py at the root, lessons aside), loaded afresh from each
# variant's folder; a module a variant lacks is simply not there. (plumbing too: TensorFlow,
# already imported, is not loaded again.)
PROJECT_MODULES = ("plumbing", "history", "mnistdata", "blocks", "tracing", "pictures", "figures",
                   "movie", "savedmodel", "compare", "screens", "tensorflowvisu",
                   "dashboard_callback", "cluster", "lab", "checking", "exercises", "explain",
                   "predict")


class Trainer:
    """A variant's lesson, loaded from its folder, ready to train in calls of 20 steps."""

    def __init__(self, folder, number, mnist, test_batches, precision="float32"):
        import numpy as np

        import plumbing

        tf = plumbing.load_tensorflow()
        folder = str(Path(folder).resolve())
        os.chdir(folder)
        sys.path.insert(0, folder)
        for name in PROJECT_MODULES:
            sys.modules.pop(name, None)
        importlib.invalidate_caches()
        script = B.lesson(number, folder)
        sys.argv = [str(script), "--no-vis"]
        lesson = runpy.run_path(str(script), run_name="lesson")
        self.modules = {name: sys.modules.get(name) for name in PROJECT_MODULES}
        sys.path.remove(folder)
        train_images = tf.constant(mnist.train.images)
        train_labels = tf.constant(mnist.train.labels)
        model, train_step, augment = lesson["model"], lesson["train_step"], lesson.get("augment")
        if "optimizer" in lesson and not lesson["optimizer"].built:
            lesson["optimizer"].build([v for v in lesson["variables"] if v.trainable])
        self.speed_ups = _speed_ups(self.modules["blocks"], lesson.get("optimizer"))

        def batch(indices):
            images = tf.gather(train_images, indices)
            return (augment(images) if augment else images), tf.gather(train_labels, indices)

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
        def train_on(batches):  # as lab.Training._compile_training, without XLA
            for k in tf.range(tf.shape(batches)[0]):
                train_step(*batch(batches[k]))
            images, labels = batch(batches[-1])
            return tf.reduce_mean(model(images, training=False))

        self.rng = np.random.default_rng(0)
        test_images = tf.constant(mnist.test.images)
        self.test_passes = {}
        tracing = getattr(self.modules["blocks"], "one_channel_convolutions", None)
        if tracing:  # traced as lab.Training traces them
            self.speed_ups.append("one_channel_convolutions")
        with tracing() if tracing else contextlib.nullcontext():
            self.train_on = train_on.get_concrete_function()
            for size in test_batches:
                @tf.function(input_signature=[])
                def test_pass(size=size):
                    return tf.concat([model(test_images[k:k + size], training=False)
                                      for k in range(0, 10000, size)], axis=0)
                self.test_passes[size] = test_pass.get_concrete_function()
        # precision=bf16: every call made inside blocks.mixed_bfloat16, as the lab does with
        # --precision bf16 (TensorFlow runs the calls made there in bfloat16).
        bfloat16 = self.modules["blocks"].mixed_bfloat16 if precision == "bf16" else None
        self.precision = bfloat16 or contextlib.nullcontext

    def call(self, steps=20):
        """20 training steps, in one compiled call; returns (wall, CPU) seconds."""
        import numpy as np
        import tensorflow as tf

        batches = tf.constant(self.rng.integers(0, 60000, (steps, 100)).astype(np.int32))
        with self.precision():
            start, cpu = time.perf_counter(), time.process_time()
            float(self.train_on(batches))
            return time.perf_counter() - start, time.process_time() - cpu

    def test(self, size):
        with self.precision():
            start = time.perf_counter()
            self.test_passes[size]().numpy()
            return time.perf_counter() - start


def _speed_ups(blocks, optimizer):
    """What lab.Training does for speed, as far as this variant's blocks.py has it; returns
    the names of what it did."""
    if hasattr(blocks, "speed_ups"):
        blocks.speed_ups(optimizer)
        return ["fuse_adam", "use_subpixel_gradient"]
    if hasattr(blocks, "fuse_adam") and optimizer is not None:
        blocks.fuse_adam(optimizer)
        return ["fuse_adam"]
    return []


def read_mnist():
    import mnistdata

    return mnistdata.read_data_sets(B.data_dir(), one_hot=True, reshape=False,
                                    validation_size=0, seed=0)


def child(folder, number, calls, test_batches, precision):
    """One measurement of one variant, in this process: prints one JSON line."""
    sys.modules.pop("plumbing", None)  # (_bench imported this repository's: the variant's own)
    sys.path.insert(0, str(Path(folder).resolve()))
    trainer = Trainer(folder, number, read_mnist(), test_batches, precision)
    for _ in range(3):  # tracing, oneDNN's primitive caches
        trainer.call()
    wall = cpu = 0.0
    for _ in range(calls):
        w, c = trainer.call()
        wall, cpu = wall + w, cpu + c
    images = calls * 20 * 100
    result = {"training_images_per_second": round(images / wall, 1),
              "training_images_per_cpu_second": round(images / cpu, 1)}
    for size in test_batches:
        for _ in range(2):
            trainer.test(size)
        result[f"test_ms_{size}"] = round(1000 * B.median([trainer.test(size)
                                                          for _ in range(5)]), 1)
    print(json.dumps(result))


def in_process(variants, number, rounds, test_batches):
    """Every variant in this process, taking turns; returns {name: [result per round]}."""
    mnist = read_mnist()
    trainers = {name: Trainer(folder, number, mnist, test_batches, env.get("precision"))
                for name, folder, env in variants}
    subpixel = {name: "use_subpixel_gradient" in t.speed_ups for name, t in trainers.items()}
    if len(set(subpixel.values())) > 1:  # a gradient registered anew acts on every variant
        raise SystemExit(f"error: only some variants replace the strided convolutions' gradient "
                         f"({subpixel}), which acts on the whole process: use --processes")
    for trainer in trainers.values():
        for _ in range(3):
            trainer.call()
        for size in test_batches:
            trainer.test(size)
    runs = {name: [] for name in trainers}
    for r in range(rounds):
        for name in B.rotate(list(trainers), r):
            wall, cpu = trainers[name].call()
            result = {"training_images_per_second": round(2000 / wall, 1),
                      "training_images_per_cpu_second": round(2000 / cpu, 1)}
            for size in B.rotate(test_batches, r) if test_batches else []:
                result[f"test_ms_{size}"] = round(1000 * trainers[name].test(size), 1)
            runs[name].append(result)
    return runs


def report(number, variants, runs):
    names = [name for name, _, _ in variants]
    keys = list(runs[names[0]][0])
    rows = []
    for name in names:
        row = [name]
        for key in keys:
            values = [x[key] for x in runs[name]]
            ref = [x[key] for x in runs[names[0]]]
            ratios = [v / w for v, w in zip(values, ref)]  # pairwise, turn by turn
            quartiles = sorted(ratios)[len(ratios) // 4], sorted(ratios)[(3 * len(ratios)) // 4]
            row.append(f"{B.median(values):,.1f} x{B.median(ratios):.3f} "
                       f"[{quartiles[0]:.2f}-{quartiles[1]:.2f}]")
        rows.append(row)
    print(f"\nlesson {number}: median, median of the pairwise ratios to {names[0]} "
          f"[interquartile range of the ratios], {len(runs[names[0]])} turns each")
    print(B.table(["variant", *keys], rows), flush=True)
    sizes = [key for key in keys if key.startswith("test_ms_")]
    if len(sizes) > 1:  # the test pass's chunk sizes against the first one
        rows = []
        for name in names:
            ref = [x[sizes[0]] for x in runs[name]]
            rows.append([name] + [f"{B.median([x[key] for x in runs[name]]):,.1f} x"
                                  f"{B.median([x[key] / r for x, r in zip(runs[name], ref)]):.3f}"
                                  for key in sizes])
        print(f"\ntest pass (ms), median, and the median ratio to chunks of {sizes[0][8:]}")
        print(B.table(["variant", *sizes], rows), flush=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("variants", nargs="*",
                   help="NAME=DIR[:KEY=VALUE...], the first is the reference")
    p.add_argument("--lessons", default="4.2", help="lesson numbers (default: 4.2)")
    p.add_argument("--rounds", type=int, default=30,
                   help="in one process: turns of 20 steps of each variant (default: 30)")
    p.add_argument("--processes", action="store_true",
                   help="a fresh process per measurement instead (always, with environments)")
    p.add_argument("--repeats", type=int, default=5,
                   help="separate processes: measurements of each (default: 5)")
    p.add_argument("--calls", type=int, default=8,
                   help="separate processes: timed calls of 20 steps (default: 8)")
    p.add_argument("--test-batches", default="", help="also time a test pass in chunks of these")
    p.add_argument("--output", help="the JSON file (default: benchmarks/results/step_time.json)")
    p.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    p.add_argument("--in-process-child", nargs=2, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    test_batches = [int(s) for s in args.test_batches.split(",") if s]
    if args.child:
        child(*args.child[:2], args.calls, test_batches, args.child[2])
        return
    variants = []
    for text in args.variants or ["this=."]:
        name, _, rest = text.partition("=")
        folder, *settings = rest.split(":")
        variants.append((name, str(Path(folder).resolve()),
                         dict(s.split("=", 1) for s in settings)))
    if args.in_process_child:
        variants = json.loads(args.in_process_child[0])
        runs = in_process(variants, args.in_process_child[1], args.rounds, test_batches)
        print(json.dumps(runs))
        return
    separate = args.processes or any(set(env) - {"precision"} for _, _, env in variants)
    machine = B.start()
    print(f"{machine['cpu']['model']}, {machine['cores']} cores, "
          f"{' '.join(machine['cpu']['flags'])}", flush=True)
    results = {}
    for number in args.lessons.split(","):
        if separate:
            runs = {name: [] for name, _, _ in variants}
            for r in range(args.repeats):
                for name, folder, env in B.rotate(variants, r):
                    precision = env.get("precision", "float32")
                    command = [B.PYTHON, __file__, "--child", folder, number, precision,
                               "--calls", str(args.calls), "--test-batches", args.test_batches]
                    child_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
                                     **{k: v for k, v in env.items() if k != "precision"})
                    runs[name].append(B.run_json_worker(command, env=child_env, timeout=3600))
                    print(f"{number} {name:>10}: {json.dumps(runs[name][-1])}", flush=True)
        else:
            command = [B.PYTHON, __file__, "--in-process-child", json.dumps(variants), number,
                       "--rounds", str(args.rounds), "--test-batches", args.test_batches]
            runs = B.run_json_worker(command, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
                                     timeout=7200)
        report(number, variants, runs)
        results[number] = runs
    B.save({"machine": machine, "variants": [[n, f, e] for n, f, e in variants],
            "mode": "separate processes" if separate else "in one process, taking turns",
            "lessons": results}, args.output, "step_time.json")


if __name__ == "__main__":
    main()
