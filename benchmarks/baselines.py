"""The lessons' models rebuilt in Keras (model.fit) and in PyTorch (eager), timed on CPU.

The baselines of throughput.py: the same architecture, batch size (100), optimizer (Adam)
and learning-rate schedule (0.0001 + 0.003 * e^(-step/2000)) as the lesson, trained on the
real MNIST training images held in memory. Each run prints one JSON line (the last line of
stdout) with the training images per second of every variant, measured after a warm-up:

  keras: model.fit(x, y, batch_size=100, epochs=1) on numpy arrays, no metrics, after one
         warm-up fit (tracing and compiling); an epoch callback times the epoch alone
         (batches only: not fit's set-up of the data adapter). Variants: "auto" (Keras'
         default jit_compile="auto"), "xla" (jit_compile=True), "noxla" (jit_compile=False),
         and with "-spe20" steps_per_execution=20 (Keras' own several-steps-per-call).
  torch: a plain eager loop: x[idx] / y[idx] from tensors in memory (a fresh permutation per
         epoch), forward, F.cross_entropy, backward, Adam step, the learning rate set per
         step. Variants: "eager" (torch's defaults: Adam's default implementation, NCHW,
         torch's default thread count), "fused" (Adam(fused=True)), "cl" (fused +
         channels_last memory format), "t1" (fused, one thread: torch.set_num_threads(1)).
         TF's padding="SAME" is reproduced exactly: symmetric padding in the convolution,
         the extra row and column (bottom, right) with F.pad where TF pads asymmetrically.

Usage (normally run by throughput.py, one child process per measurement):
  python benchmarks/baselines.py keras --model 3.0 --variants auto,xla
  python benchmarks/baselines.py torch --model 2.1 --variants eager,fused,t1
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the repository, for mnistdata

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# The lessons' architectures. dense: hidden layer sizes and activation; conv: (kernel, stride,
# filters) per convolutional layer, then one dense ReLU layer; dropout: rate (the lab's
# pkeep = 0.75) and where.
MODELS = {
    "1.0": {"kind": "dense", "hidden": [], "activation": None, "dropout": None, "optimizer": "sgd"},
    "2.0": {"kind": "dense", "hidden": [200, 100, 60, 30], "activation": "sigmoid", "dropout": None},
    "2.1": {"kind": "dense", "hidden": [200, 100, 60, 30], "activation": "relu", "dropout": None},
    "2.2": {"kind": "dense", "hidden": [200, 100, 60, 30], "activation": "relu", "dropout": 0.25},
    "3.0": {"kind": "conv", "convs": [(5, 1, 4), (5, 2, 8), (4, 2, 12)], "dense": 200, "dropout": None},
    "3.1": {"kind": "conv", "convs": [(6, 1, 6), (5, 2, 12), (4, 2, 24)], "dense": 200, "dropout": 0.25},
}
BATCH = 100


def learning_rate(step):
    """The lessons' schedule (lab.ExponentialDecay(0.003, 2000, floor=0.0001))."""
    return 0.0001 + 0.003 * math.exp(-step / 2000)


def load_mnist(data_dir):
    import mnistdata

    m = mnistdata.read_data_sets(data_dir, one_hot=True, reshape=False, validation_size=0, seed=0)
    return m.train.images, m.train.labels  # (60000, 28, 28, 1) float32, (60000, 10) one-hot


# ---------------------------------------------------------------------------- Keras


def keras_run(spec, variants, images, warmup_images, data_dir):
    import tensorflow as tf
    import keras

    class Schedule(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            return 0.0001 + 0.003 * tf.exp(-tf.cast(step, tf.float32) / 2000.0)

        def get_config(self):
            return {}

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.start

    def build():
        layers = [keras.Input((28, 28, 1))]
        if spec["kind"] == "dense":
            layers.append(keras.layers.Flatten())
            for n in spec["hidden"]:
                layers.append(keras.layers.Dense(n, activation=spec["activation"]))
                if spec["dropout"]:
                    layers.append(keras.layers.Dropout(spec["dropout"]))
        else:
            for kernel, stride, filters in spec["convs"]:
                layers.append(keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", activation="relu"))
            layers.append(keras.layers.Flatten())
            layers.append(keras.layers.Dense(spec["dense"], activation="relu"))
            if spec["dropout"]:
                layers.append(keras.layers.Dropout(spec["dropout"]))
        layers.append(keras.layers.Dense(10))
        return keras.Sequential(layers)

    x, y = load_mnist(data_dir)
    x, y = x[:images], y[:images]
    results = {}
    for variant in variants:
        jit, _, spe = variant.partition("-spe")
        jit_compile = {"auto": "auto", "xla": True, "noxla": False}[jit]
        keras.utils.set_random_seed(0)
        model = build()
        optimizer = keras.optimizers.SGD(0.5) if spec.get("optimizer") == "sgd" else keras.optimizers.Adam(Schedule())
        model.compile(optimizer=optimizer, loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                      jit_compile=jit_compile, steps_per_execution=int(spe or 1))
        start = time.perf_counter()
        model.fit(x[:warmup_images], y[:warmup_images], batch_size=BATCH, epochs=1, verbose=0)
        warmup = time.perf_counter() - start
        timer = EpochTimer()
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, shuffle=True, callbacks=[timer])
        results[variant] = {
            "images_per_second": round(len(x) / timer.seconds),
            "seconds": round(timer.seconds, 3),
            "images": len(x),
            "warmup_seconds": round(warmup, 3),
            "jit_compile_resolved": bool(model.jit_compile),
            "steps_per_execution": int(spe or 1),
        }
        del model
    return {"framework": "keras", "keras": keras.__version__, "tensorflow": tf.__version__,
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "variants": results}


# ---------------------------------------------------------------------------- PyTorch


def torch_run(spec, variants, steps, warmup_steps, data_dir, max_seconds):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    default_threads = torch.get_num_threads()

    def same_padding(kernel, stride, size):
        """TF's padding="SAME": (before, after) so that the output is ceil(size / stride)."""
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return total // 2, total - total // 2

    class Conv2dSame(nn.Module):
        def __init__(self, cin, cout, kernel, stride, size):
            super().__init__()
            before, after = same_padding(kernel, stride, size)
            # the symmetric part inside the convolution, the extra row/column with F.pad
            self.extra = (0, after - before, 0, after - before) if after != before else None
            self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=before)

        def forward(self, x):
            if self.extra:
                x = F.pad(x, self.extra)
            return self.conv(x)

    def build():
        layers = [nn.Flatten()]
        if spec["kind"] == "dense":
            act = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid}.get(spec["activation"])
            n_in = 784
            for n in spec["hidden"]:
                layers += [nn.Linear(n_in, n), act()]
                if spec["dropout"]:
                    layers.append(nn.Dropout(spec["dropout"]))
                n_in = n
            layers.append(nn.Linear(n_in, 10))
            return nn.Sequential(*layers)
        layers, cin, size = [], 1, 28
        for kernel, stride, filters in spec["convs"]:
            layers += [Conv2dSame(cin, filters, kernel, stride, size), nn.ReLU()]
            cin, size = filters, -(-size // stride)
        layers += [nn.Flatten(), nn.Linear(size * size * cin, spec["dense"]), nn.ReLU()]
        if spec["dropout"]:
            layers.append(nn.Dropout(spec["dropout"]))
        layers.append(nn.Linear(spec["dense"], 10))
        return nn.Sequential(*layers)

    images, onehot = load_mnist(data_dir)
    # NCHW, as PyTorch wants it; labels as class numbers for F.cross_entropy
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    y_all = torch.from_numpy(onehot.argmax(1).astype(np.int64))
    n = len(x_all)

    results = {}
    for variant in variants:
        threads = 1 if variant == "t1" else default_threads
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        model = build()
        x = x_all
        if variant == "cl":
            model = model.to(memory_format=torch.channels_last)
            x = x_all.contiguous(memory_format=torch.channels_last)
        if spec.get("optimizer") == "sgd":
            optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        elif variant == "eager":
            optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate(0))
        else:
            optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate(0), fused=True)
        model.train()
        state = {"order": torch.randperm(n), "position": 0, "step": 0}

        def train_step():
            if state["position"] + BATCH > n:
                state["order"], state["position"] = torch.randperm(n), 0
            idx = state["order"][state["position"]:state["position"] + BATCH]
            state["position"] += BATCH
            if spec.get("optimizer") != "sgd":
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(state["step"])
            state["step"] += 1
            loss = F.cross_entropy(model(x[idx]), y_all[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            return loss.detach()

        start = time.perf_counter()
        for _ in range(warmup_steps):
            train_step()
        warmup = time.perf_counter() - start
        # `steps` steps, or fewer if they take more than max_seconds (a loaded machine can
        # slow a multi-threaded PyTorch down a hundredfold: the budget bounds the run)
        start = time.perf_counter()
        done = 0
        while done < steps:
            loss = train_step()
            done += 1
            if done % 10 == 0 and time.perf_counter() - start > max_seconds:
                break
        loss.item()  # waits for the last step
        seconds = time.perf_counter() - start
        results[variant] = {"images_per_second": round(done * BATCH / seconds), "seconds": round(seconds, 3),
                            "steps": done, "warmup_seconds": round(warmup, 3), "threads": threads}
    torch.set_num_threads(default_threads)
    return {"framework": "torch", "torch": torch.__version__, "default_threads": default_threads,
            "mkldnn": bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
            "variants": results}


# ---------------------------------------------------------------------------- command line


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("framework", choices=["keras", "torch"])
    parser.add_argument("--model", choices=sorted(MODELS), default="2.1", help="the lesson's number (default: 2.1)")
    parser.add_argument("--variants", help="comma-separated (default: keras auto,xla; torch eager,fused,t1 "
                                           "for dense models, eager,fused,cl,t1 for convolutional ones)")
    parser.add_argument("--images", type=int, default=None,
                        help="keras: training images in the timed epoch (default: 60000 dense, 20000 conv)")
    parser.add_argument("--warmup-images", type=int, default=2000, help="keras: images of the warm-up fit (default 2000)")
    parser.add_argument("--steps", type=int, default=None,
                        help="torch: timed steps (default: 3000 dense, 300 conv)")
    parser.add_argument("--warmup-steps", type=int, default=30, help="torch: untimed steps first (default 30)")
    parser.add_argument("--max-seconds", type=float, default=10.0,
                        help="torch: stop timing a variant after this many seconds (default 10)")
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_DATA_DIR"), help="MNIST folder (default: $MNIST_DATA_DIR)")
    args = parser.parse_args(argv)
    spec = MODELS[args.model]
    dense = spec["kind"] == "dense"
    if args.framework == "keras":
        variants = (args.variants or "auto,xla").split(",")
        images = args.images or (60000 if dense else 20000)
        images -= images % BATCH
        out = keras_run(spec, variants, images, args.warmup_images, args.data_dir)
    else:
        variants = (args.variants or ("eager,fused,t1" if dense else "eager,fused,cl,t1")).split(",")
        steps = args.steps or (3000 if dense else 300)
        out = torch_run(spec, variants, steps, args.warmup_steps, args.data_dir, args.max_seconds)
    out["model"] = args.model
    print(json.dumps(out))


if __name__ == "__main__":
    main()
