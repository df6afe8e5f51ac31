"""The roofline's two numbers: a lesson's training FLOPs per image, and the machine's peak.

  python benchmarks/flops.py 3.0 4.2     # FLOPs per image of lessons 3.0 and 4.2 (JSON lines)
  python benchmarks/flops.py --peak      # the tf.matmul peak of this machine, GFLOP/s (JSON)

FLOPs are counted from the layer shapes of the lesson's own model (its graph, traced for
one image): every matrix product and convolution costs 2 x multiply-adds forward. Training
one image costs, per layer, the forward pass, the gradient of the weights (as much again)
and the gradient of the layer's input (as much again), except for the first layer, whose
input is the image: nothing asks for that gradient. Element-wise work (activations,
biases, batch norm, the loss, the optimizer) is left out: it is a few per cent of the
arithmetic, though not of the time. A test image costs the forward pass.

The peak is the best of tf.matmul on square float32 matrices (1024 to 4096), with
TensorFlow loaded as the lessons load it (plumbing.load_tensorflow: oneDNN on x86-64).

Used by throughput.py and lab_time.py (each runs this in a child process).
"""

import argparse
import json
import os
import runpy
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # the repository: lab.py and the lessons

import _bench as B  # noqa: E402


def lesson_flops(number):
    """{"forward": FLOPs, "training": FLOPs, "layers": [...]} per image, from the lesson's graph."""
    import plumbing

    script = B.lesson(number)
    sys.argv = [str(script), "--no-vis"]
    lesson = runpy.run_path(str(script), run_name="lesson")  # variables and model, no training
    tf = plumbing.load_tensorflow()  # loaded by the lesson, with its settings
    graph = tf.function(lesson["model"]).get_concrete_function(
        tf.TensorSpec([1, 28, 28, 1], tf.float32), training=False).graph

    def reads_a_variable(tensor, seen=None):
        """Does this tensor depend on a trained variable (i.e. on an earlier layer)?"""
        seen = set() if seen is None else seen
        op = tensor.op
        if op.name in seen:
            return False
        seen.add(op.name)
        if op.type in ("ReadVariableOp", "ResourceGather"):
            return True
        return any(reads_a_variable(t, seen) for t in op.inputs)

    layers = []
    for op in graph.get_operations():
        if op.type == "Conv2D":
            out = op.outputs[0].shape  # [1, h, w, cout]
            kh, kw, cin, _ = op.inputs[1].shape
            forward = 2 * out[1] * out[2] * out[3] * kh * kw * cin
        elif op.type == "MatMul":
            a, b = op.inputs[0].shape, op.inputs[1].shape
            k = a[0] if op.get_attr("transpose_a") else a[1]
            n = b[0] if op.get_attr("transpose_b") else b[1]
            forward = 2 * k * n
        else:
            continue
        first = not reads_a_variable(op.inputs[0])
        layers.append({"op": op.type, "name": op.name, "forward": int(forward),
                       "first_layer": first, "training": int(forward * (2 if first else 3))})
    return {"lesson": number, "script": script.name, "layers": layers,
            "forward": sum(layer["forward"] for layer in layers),
            "training": sum(layer["training"] for layer in layers)}


def matmul_peak(sizes=(1024, 2048, 4096), seconds=1.0):
    """The best GFLOP/s of tf.matmul on square float32 matrices of these sizes."""
    import plumbing

    tf = plumbing.load_tensorflow()
    results = {}
    for n in sizes:
        a, b = tf.random.normal([n, n]), tf.random.normal([n, n])
        tf.matmul(a, b).numpy()  # warm-up
        best, start = float("inf"), time.perf_counter()
        while time.perf_counter() - start < seconds:
            t = time.perf_counter()
            tf.matmul(a, b).numpy()
            best = min(best, time.perf_counter() - t)
        results[n] = round(2 * n ** 3 / best / 1e9, 1)
    return {"peak_gflops": max(results.values()), "gflops_by_size": results,
            "engine": plumbing.engine()}


def measure_peak_in_child():
    """matmul_peak() in a fresh process (this file with --peak)."""
    return B.run_json_worker([B.PYTHON, __file__, "--peak"],
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))


def flops_in_child(numbers):
    """{number: lesson_flops(number)} from fresh processes: one for the single-process
    lessons, one for each distributed lesson (6.0 must start TensorFlow itself)."""
    distributed = [n for n in numbers if "distributed=True" in B.lesson(n).read_text()]
    groups = [[n for n in numbers if n not in distributed], *[[n] for n in distributed]]
    result = []
    for group in filter(None, groups):
        result += B.run_json_worker([B.PYTHON, __file__, "--json-list", *group],
                                    env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    return {r["lesson"]: r for r in result}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("lessons", nargs="*", help="lesson numbers, e.g. 3.0 4.2")
    p.add_argument("--peak", action="store_true", help="measure the tf.matmul peak instead")
    p.add_argument("--json-list", action="store_true",
                   help="print one JSON list (for other scripts)")
    args = p.parse_args(argv)
    if args.peak:
        print(json.dumps(matmul_peak()))
        return
    results = [lesson_flops(n) for n in args.lessons]
    if args.json_list:
        print(json.dumps(results))
        return
    for r in results:
        print(f"{r['lesson']} {r['script']}: forward {r['forward'] / 1e6:.3f} MFLOP, "
              f"training {r['training'] / 1e6:.3f} MFLOP per image")
        for layer in r["layers"]:
            note = "  (first layer: no input gradient)" if layer["first_layer"] else ""
            print(f"    {layer['op']:7s} {layer['name']:28s} "
                  f"forward {layer['forward'] / 1e6:8.3f}  "
                  f"training {layer['training'] / 1e6:8.3f}{note}")


if __name__ == "__main__":
    main()
