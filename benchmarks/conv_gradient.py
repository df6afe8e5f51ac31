"""A strided convolution's input gradient: TensorFlow's own kernel against the sub-pixel one.

The lab differentiates a strided tf.nn.conv2d with fewer than 16 input channels with
blocks.strided_conv_input_gradient (one ordinary convolution, then its phases interleaved)
instead of TensorFlow's Conv2DBackpropInput (blocks.FEW_CHANNELS; docs/speed.md says why). This
times both, each alone in a compiled call, at the shapes of the lessons' strided layers
(batch of 100) and at a few more around the threshold, and checks that they agree. Run it
on another CPU (AVX-512, a GPU) to see whether the threshold holds there.

    python benchmarks/conv_gradient.py [--repeats 50] [--json FILE]

Prints, per shape, the median milliseconds of each and their ratio (TensorFlow's / the
sub-pixel one: above 1, the sub-pixel one is faster), and whether the lab uses it there.
Writes benchmarks/results/conv_gradient.json (or --json FILE).
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench as B  # noqa: E402  (puts the repository on sys.path)
from profile_ops import timed  # noqa: E402  (median seconds of a compiled call, warmed up)

# (what, image size, filter size, input channels, output channels), all with stride 2
SHAPES = [
    ("3.0, layer 2", 28, 5, 4, 8),
    ("3.0, layer 3", 14, 4, 8, 12),
    ("3.1, layer 2", 28, 5, 6, 12),
    ("3.1, layer 3", 14, 4, 12, 24),
    ("16 channels", 28, 3, 16, 16),
    ("4.2 to 5.1, layer 2", 28, 5, 24, 48),
    ("4.2 to 5.1, layer 3", 14, 4, 48, 64),
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--json", metavar="FILE", help="where to write the figures (default: "
                        "benchmarks/results/conv_gradient.json)")
    args = parser.parse_args(argv)
    machine = B.start()
    import numpy as np

    import plumbing

    tf = plumbing.load_tensorflow()
    import blocks

    rng = np.random.default_rng(0)
    rows = []
    for what, size, k, c_in, c_out in SHAPES:
        W = tf.constant(rng.standard_normal([k, k, c_in, c_out]), tf.float32)
        dY = tf.constant(rng.standard_normal([100, size // 2, size // 2, c_out]), tf.float32)
        tensorflows = tf.function(lambda W=W, dY=dY, size=size, c_in=c_in:
                                  tf.raw_ops.Conv2DBackpropInput(
                                      input_sizes=[100, size, size, c_in], filter=W,
                                      out_backprop=dY, strides=[1, 2, 2, 1], padding="SAME"))
        subpixel = tf.function(lambda W=W, dY=dY, size=size:
                               blocks.strided_conv_input_gradient(dY, W, (size, size), 2))
        np.testing.assert_allclose(subpixel(), tensorflows(), rtol=1e-4, atol=1e-3)
        ours, theirs = (1000 * timed(f, args.repeats) for f in (subpixel, tensorflows))
        rows.append({"shape": what, "image": size, "filter": k, "channels": [c_in, c_out],
                     "tensorflow_ms": round(theirs, 3), "subpixel_ms": round(ours, 3),
                     "ratio": round(theirs / ours, 2), "lab_uses": c_in < blocks.FEW_CHANNELS})
    cpu = machine["cpu"]
    print(f"CPU: {cpu['model']}, {cpu['cores']} cores, {' '.join(cpu['flags'])}; "
          f"{plumbing.engine()}; load average {machine['load_average_at_start'][0]:.2f}")
    print(f"input gradient of a stride-2 convolution, batch of 100, median of {args.repeats}:")
    print(B.table(["layer", "image", "filter", "channels", "TensorFlow ms", "sub-pixel ms",
                   "TF / sub-pixel", "the lab uses"],
                  [[r["shape"], r["image"], f"{r['filter']}x{r['filter']}",
                    "{} -> {}".format(*r["channels"]), r["tensorflow_ms"], r["subpixel_ms"],
                    r["ratio"], "sub-pixel" if r["lab_uses"] else "TensorFlow's"]
                   for r in rows]))
    B.save({"machine": machine, "engine": plumbing.engine(), "repeats": args.repeats,
            "shapes": rows}, args.json, "conv_gradient.json")


if __name__ == "__main__":
    main()
