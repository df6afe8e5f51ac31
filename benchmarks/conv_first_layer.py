"""The first layer's convolution (one-channel images): TensorFlow's own kernel against
blocks.one_channel_conv2d, a sum of shifted images compiled by XLA.

While the lab traces a lesson's training and test calls, tf.nn.conv2d of the one-channel
MNIST images with at most blocks.FEW_FILTERS filters of at most blocks.FEW_TAPS taps
(height x width) is blocks.one_channel_conv2d (docs/speed.md says why). This times both
as a lesson uses them: relu(conv + bias), 20 times in one compiled call (as the lab's
loop calls a step), forward only at a test chunk's 1,000 images and a training batch's
100, and forward and backward (the gradients of the filter and the bias) at 100. The two
take turns; the figure is the median of the turn-by-turn ratios. It checks that they
agree, and tells where the lab uses which. Run it on another CPU (AVX-512) to see
whether the threshold holds there.

    python benchmarks/conv_first_layer.py [--turns 15] [--json FILE]

Writes benchmarks/results/conv_first_layer.json (or --json FILE).
"""
import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench as B  # noqa: E402  (puts the repository on sys.path)

# (what, filter [height, width, 1, filters])
SHAPES = [
    ("3.0 and 6.0", [5, 5, 1, 4]),
    ("3.1", [6, 6, 1, 6]),
    ("4.2 to 5.1", [6, 6, 1, 24]),
    ("fewer filters", [5, 5, 1, 2]),
    ("smaller filters", [3, 3, 1, 4]),
    ("bigger filters", [6, 6, 1, 4]),
    ("more filters", [3, 3, 1, 8]),
]
CASES = [("test chunk, forward", 1000, False), ("training batch, forward", 100, False),
         ("training batch, forward + backward", 100, True)]
CALLS = 20  # per compiled call, as the lab's loop


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=15, help="timed calls of each (default: 15)")
    parser.add_argument("--json", metavar="FILE", help="where to write the figures (default: "
                        "benchmarks/results/conv_first_layer.json)")
    args = parser.parse_args(argv)
    machine = B.start()
    import numpy as np

    import plumbing

    tf = plumbing.load_tensorflow()
    import blocks

    rng = np.random.default_rng(0)
    rows = []
    for what, shape in SHAPES:
        W = tf.Variable(rng.standard_normal(shape).astype(np.float32) / 10)
        bias = tf.Variable(tf.fill([shape[3]], 0.1))
        for case, batch, backward in CASES:
            X = tf.constant(rng.random([batch, 28, 28, 1]).astype(np.float32))
            calls = {name: compiled(tf, conv, X, W, bias, backward) for name, conv in
                     (("tensorflow", tf.nn.conv2d), ("shifted", shifted(blocks)))}
            expected, got = (calls[name]() for name in ("tensorflow", "shifted"))
            np.testing.assert_allclose(got, expected, rtol=1e-4)
            seconds = {name: [] for name in calls}
            for turn in range(args.turns + 2):  # (the first two: warm-up)
                for name in B.rotate(list(calls), turn):
                    start = time.perf_counter()
                    calls[name]()
                    if turn >= 2:
                        seconds[name].append((time.perf_counter() - start) / CALLS)
            ratio = B.median([a / b for a, b in zip(seconds["tensorflow"], seconds["shifted"])])
            rows.append({"shape": what, "filter": shape, "case": case, "batch": batch,
                         "tensorflow_ms": round(1000 * B.median(seconds["tensorflow"]), 3),
                         "shifted_ms": round(1000 * B.median(seconds["shifted"]), 3),
                         "ratio": round(ratio, 2),
                         "lab_uses": (shape[3] <= blocks.FEW_FILTERS
                                      and shape[0] * shape[1] <= blocks.FEW_TAPS)})
    cpu = machine["cpu"]
    print(f"CPU: {cpu['model']}, {cpu['cores']} cores, {' '.join(cpu['flags'])}; "
          f"{plumbing.engine()}; load average {machine['load_average_at_start'][0]:.2f}")
    print(f"relu(conv + bias) of 28x28 one-channel images, ms per call, median of {args.turns}:")
    print(B.table(["layers", "filter", "what", "TensorFlow", "shifted images", "TF / shifted",
                   "the lab uses"],
                  [[r["shape"], "x".join(map(str, r["filter"])), r["case"], r["tensorflow_ms"],
                    r["shifted_ms"], r["ratio"],
                    "shifted images" if r["lab_uses"] else "TensorFlow's"] for r in rows]))
    B.save({"machine": machine, "engine": plumbing.engine(), "turns": args.turns,
            "calls_per_turn": CALLS, "rows": rows}, args.json, "conv_first_layer.json")


def shifted(blocks):
    return lambda X, W, strides, padding: blocks.one_channel_conv2d(X, W)


def compiled(tf, conv, X, W, bias, backward):
    """CALLS times relu(conv(X, W) + bias) in one compiled call, forward only (their sum)
    or with the gradients of W and bias (their sum: every value is needed)."""
    def once():
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(tf.nn.relu(conv(X, W, strides=1, padding="SAME") + bias))
        if not backward:
            return total
        dW, dbias = tape.gradient(total, [W, bias])
        return total + tf.reduce_sum(dW) + tf.reduce_sum(dbias)

    @tf.function
    def call():
        total = tf.constant(0.0)
        for _ in tf.range(CALLS):
            total += once()
        return total

    return lambda: call().numpy()


if __name__ == "__main__":
    main()
