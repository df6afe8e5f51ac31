"""Where a training step of lessons 4.2, 5.0 and 5.1 goes: each part timed alone.

A lesson's training reaches some share of this machine's tf.matmul peak (lab_time.py
--all: "of peak"). Why not more? This times, at the lesson's own shapes (batch of 100),
each part of a training step on its own, forward and backward: every convolution, every
matrix product, every batch norm, the augmentation, the optimizer's update; then the
whole step. For the convolutions and matrix products it gives their GFLOP/s and how far
each is from the peak; the others move memory, not arithmetic: their share of the step
is the figure that matters. The test passes are timed too (10,000 images, forward only).

    python benchmarks/profile_ops.py                 # lessons 4.2, 5.0 and 5.1
    python benchmarks/profile_ops.py --lessons 4.2 --repeats 50
"""

import argparse
import os
import runpy
import sys
import time

import _bench as B
import flops


def timed(function, repeats):
    """Median seconds of function() (a compiled TensorFlow call), after a warm-up."""
    for _ in range(3):
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return B.median(times)


def profile(number, repeats):
    import numpy as np

    import plumbing

    tf = plumbing.load_tensorflow()
    script = B.lesson(number)
    sys.argv = [str(script), "--no-vis"]
    lesson = runpy.run_path(str(script), run_name="lesson")
    import blocks

    n = 100
    rng = np.random.default_rng(0)
    X = tf.constant(rng.random((n, 28, 28, 1), np.float32))
    Y_ = tf.one_hot(rng.integers(0, 10, n), 10)
    W = {name: lesson[name] for name in ("W1", "W2", "W3", "W4", "W5")}
    batch_norms = any(isinstance(v, blocks.BatchNorm) for v in lesson.values())  # (not 3.x)
    parts = []

    def part(name, flop, function):
        seconds = timed(tf.function(function), repeats)
        parts.append({"part": name, "ms": round(seconds * 1000, 3),
                      "gflops": round(flop / seconds / 1e9, 1) if flop else None})

    # (Each part returns one value of its output too: a gradient of Y alone does not need
    # Y, and TensorFlow would leave the forward pass out.)
    def conv_and_gradients(inputs, weights, stride, first):
        def step():
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                Y = tf.nn.conv2d(inputs, weights, strides=stride, padding="SAME")
            return tape.gradient(Y, [weights] if first else [weights, inputs]), Y[0, 0, 0, 0]
        out = tf.nn.conv2d(inputs, weights, strides=stride, padding="SAME")
        kh, kw, cin, cout = weights.shape
        forward = 2 * n * out.shape[1] * out.shape[2] * cout * kh * kw * cin
        return step, forward * (2 if first else 3), out

    Y = X
    for k, stride in ((1, 1), (2, 2), (3, 2)):
        step, flop, Y = conv_and_gradients(Y, W[f"W{k}"], stride, first=k == 1)
        part(f"conv {k} {list(W[f'W{k}'].shape)} stride {stride}, forward + backward", flop, step)
        channels = Y.shape[-1]
        Yn = tf.nn.relu(Y)

        if batch_norms:
            norm = blocks.BatchNorm(channels)  # as the lesson's: moving averages updated too

            def batch_norm(Y=Y, channels=channels, norm=norm):
                with tf.GradientTape() as tape:
                    tape.watch(Y)
                    out = tf.nn.relu(norm(Y, tf.zeros([channels]), training=True))
                return tape.gradient(out, Y)
            part(f"batch norm + relu {list(Y.shape[1:])} (blocks.BatchNorm), forward + "
                 "backward", 0, batch_norm)
        Y = Yn
    YY = tf.reshape(Y, [n, -1])
    for k, inputs in ((4, YY), (5, tf.random.normal([n, W["W4"].shape[1]]))):
        weights = W[f"W{k}"]

        def matmul(inputs=inputs, weights=weights):
            with tf.GradientTape() as tape:
                tape.watch(inputs)
                out = tf.matmul(inputs, weights)
            return tape.gradient(out, [weights, inputs]), out[0, 0]
        part(f"matmul {list(weights.shape)}, forward + backward",
             3 * 2 * n * weights.shape[0] * weights.shape[1], matmul)
    if "augment" in lesson:
        part("augmentation (rotate, zoom, shift: one affine transformation per image)", 0,
             lambda: lesson["augment"](X))
    variables = lesson["variables"]
    optimizer = lesson["optimizer"]
    optimizer.build(variables)
    if hasattr(blocks, "speed_ups"):  # as lab.Training does (the same maths, faster)
        blocks.speed_ups(optimizer)
    elif hasattr(blocks, "fuse_adam"):  # (an older blocks.py: only Adam's update in one op)
        blocks.fuse_adam(optimizer)
    grads = [tf.zeros_like(v) for v in variables]
    part("the optimizer's update (Adam) of every variable", 0,
         lambda: optimizer.apply_gradients(zip(grads, variables)))
    whole = timed(lambda: lesson["train_step"](X, Y_), repeats)
    test_images = tf.constant(rng.random((10000, 28, 28, 1), np.float32))
    model = lesson["model"]
    test = timed(tf.function(lambda: tf.concat([model(test_images[k:k + 1000])
                                                for k in range(0, 10000, 1000)], 0)),
                 max(3, repeats // 10))
    training_flops = flops.lesson_flops(number)["training"] * n
    return {"lesson": number, "parts": parts, "whole_step_ms": round(whole * 1000, 3),
            "whole_step_gflops": round(training_flops / whole / 1e9, 1),
            "sum_of_parts_ms": round(sum(p["ms"] for p in parts), 3),
            "test_pass_ms": round(test * 1000, 1)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lessons", default="4.2,5.0,5.1", help="lesson numbers (default: 4.2,5.0,5.1)")
    p.add_argument("--repeats", type=int, default=30, help="timed calls of each part (default: 30)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--output", help="the JSON file (default: benchmarks/results/profile_ops.json)")
    args = p.parse_args(argv)
    if args.child:  # one lesson, in a process of its own
        import json

        print(json.dumps(profile(args.child, args.repeats)))
        return
    machine = B.start()
    peak = flops.measure_peak_in_child()["peak_gflops"]
    results = []
    for number in args.lessons.split(","):
        result = B.run_json_worker([B.PYTHON, __file__, "--child", number,
                                    "--repeats", args.repeats],
                                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        results.append(result)
        print(f"\nlesson {number}: a training step takes {result['whole_step_ms']:.1f} ms "
              f"({result['whole_step_gflops']} GFLOP/s, "
              f"{result['whole_step_gflops'] / peak:.0%} of the tf.matmul peak, {peak} GFLOP/s); "
              f"its parts alone add up to {result['sum_of_parts_ms']:.1f} ms")
        rows = [[p["part"], f"{p['ms']:.2f}", f"{p['ms'] / result['whole_step_ms']:.0%}",
                 B.fmt(p["gflops"], 1), f"{p['gflops'] / peak:.0%}" if p["gflops"] else "-"]
                for p in result["parts"]]
        print(B.table(["part", "ms", "of the step", "GFLOP/s", "of peak"], rows))
        print(f"a test pass (10,000 images, forward): {result['test_pass_ms']:.0f} ms")
    B.save({"machine": machine, "peak_gflops": peak, "lessons": results}, args.output,
           "profile_ops.json")


if __name__ == "__main__":
    main()
