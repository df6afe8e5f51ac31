"""The lessons' models rebuilt in Keras (model.fit) and in PyTorch, timed on the lab's schedule.

The baselines of throughput.py: the same architecture, batch size (100), optimizer (Adam)
and learning-rate schedule (0.0001 + 0.003 * e^(-step/2000)) as the lesson, trained on the
real MNIST training images held in memory, and measured the way the lab measures: the
loss and accuracy of the current batch every 20 steps, and the accuracy and loss on the
10,000 test images every 100 steps (every 20 during the first 200). The clock runs from
the measurement at step 200 (tracing, compiling and warming up are over) to the one at
the last step: end to end, training and test measurements together, as the learner waits
for them. The training alone is timed too (the same span without the test measurements).

Each run prints one JSON line (the last line of stdout) with every variant's figures.

  keras: model.fit(x, y, batch_size=100) on numpy arrays, TensorFlow with oneDNN on (as the
         lessons run it), a callback making the test measurements with a compiled function
         (chunks of 1,000 images; faster than model.evaluate's per-call set-up). Variants:
         "auto" (Keras' default jit_compile="auto": no XLA on CPU), "xla" (jit_compile=True),
         each with "-spe20": steps_per_execution=20, Keras' own several-steps-per-call
         (the callback runs every 20 steps, which is exactly where the lab measures).
  torch: a plain loop: x[idx] / y[idx] from tensors in memory (a fresh permutation per
         epoch), forward, F.cross_entropy, backward, Adam step, the learning rate set per
         step; test measurements under torch.no_grad() in eval mode, 1,000 images at a
         time. Variants: "eager" (torch's defaults), "fused" (Adam(fused=True)), "cl"
         (fused + channels_last memory format), "t1" (fused, one thread), "compile"
         (fused + torch.compile of the model: Inductor generates C++ for this CPU).
         TF's padding="SAME" is reproduced exactly: symmetric padding in the convolution,
         the extra row and column (bottom, right) with F.pad where TF pads asymmetrically.

Usage (normally run by throughput.py, one child process per measurement):
  python benchmarks/baselines.py keras --model 3.0 --steps 1500 --variants auto,auto-spe20
  python benchmarks/baselines.py torch --model 2.1 --steps 3000 --variants eager,fused,t1,compile
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # the repository, for mnistdata and lab

# The lessons' architectures. dense: hidden layer sizes and activation; conv: (kernel, stride,
# filters) per convolutional layer, then one dense ReLU layer; dropout: rate (the lab's
# pkeep = 0.75) and where.
MODELS = {
    "1.0": {"kind": "dense", "hidden": [], "activation": None, "dropout": None, "optimizer": "sgd"},
    "2.0": {"kind": "dense", "hidden": [200, 100, 60, 30], "activation": "sigmoid",
            "dropout": None},
    "2.1": {"kind": "dense", "hidden": [200, 100, 60, 30], "activation": "relu", "dropout": None},
    "2.2": {"kind": "dense", "hidden": [200, 100, 60, 30], "activation": "relu", "dropout": 0.25},
    "3.0": {"kind": "conv", "convs": [(5, 1, 4), (5, 2, 8), (4, 2, 12)], "dense": 200,
            "dropout": None},
    "3.1": {"kind": "conv", "convs": [(6, 1, 6), (5, 2, 12), (4, 2, 24)], "dense": 200,
            "dropout": 0.25},
}
BATCH = 100
MEASURE_EVERY, TIMED_FROM = 20, 200  # as lab.py
TEST_CHUNK = 1000


def learning_rate(step):
    """The lessons' schedule (blocks.ExponentialDecay(0.003, 2000, floor=0.0001))."""
    return 0.0001 + 0.003 * math.exp(-step / 2000)


def is_test_point(i, steps):
    import lab  # (light: no TensorFlow)

    return lab.test_due(i, steps)  # the lessons' schedule


def load_mnist(data_dir):
    import mnistdata

    m = mnistdata.read_data_sets(data_dir, one_hot=True, reshape=False, validation_size=0, seed=0)
    return m.train.images, m.train.labels, m.test.images, m.test.labels


class Clock:
    """Seconds from the measurement at step TIMED_FROM to the last one, and how much of it
    went into test measurements."""

    def __init__(self):
        self.start = self.end = None
        self.test_seconds = 0.0

    def measured(self, i, steps, test):
        """Call after the measurement at step i; test() makes the test measurement."""
        if is_test_point(i, steps):
            t = time.perf_counter()
            test()
            if self.start is not None:
                self.test_seconds += time.perf_counter() - t
        if i == TIMED_FROM:
            self.start = time.perf_counter()
        if i == steps:
            self.end = time.perf_counter()

    def result(self, steps):
        seconds = self.end - self.start
        images = (steps - TIMED_FROM) * BATCH
        return {"images_per_second": round(images / seconds),  # end to end: what learners wait for
                "training_images_per_second": round(images / (seconds - self.test_seconds)),
                "seconds": round(seconds, 3), "test_seconds": round(self.test_seconds, 3)}


# ---------------------------------------------------------------------------- Keras


def keras_run(spec, variants, steps, data_dir):
    import plumbing

    tf = plumbing.load_tensorflow()  # oneDNN on, as the lessons have it
    import keras

    class Schedule(keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            return 0.0001 + 0.003 * tf.exp(-tf.cast(step, tf.float32) / 2000.0)

        def get_config(self):
            return {}

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
                layers.append(keras.layers.Conv2D(filters, kernel, strides=stride, padding="same",
                                                  activation="relu"))
            layers.append(keras.layers.Flatten())
            layers.append(keras.layers.Dense(spec["dense"], activation="relu"))
            if spec["dropout"]:
                layers.append(keras.layers.Dropout(spec["dropout"]))
        layers.append(keras.layers.Dense(10))
        return keras.Sequential(layers)

    x, y, x_test, y_test = load_mnist(data_dir)
    x_test, y_test = tf.constant(x_test), tf.constant(y_test)
    results = {}
    for variant in variants:
        jit, _, spe = variant.partition("-spe")
        jit_compile = {"auto": "auto", "xla": True, "noxla": False}[jit]
        keras.utils.set_random_seed(0)
        model = build()
        optimizer = (keras.optimizers.SGD(0.5) if spec.get("optimizer") == "sgd"
                     else keras.optimizers.Adam(Schedule()))
        model.compile(optimizer=optimizer,
                      loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                      metrics=["accuracy"], jit_compile=jit_compile,
                      steps_per_execution=int(spe or 1))

        @tf.function(jit_compile=jit_compile is True)
        def test():
            logits = tf.concat([model(x_test[k:k + TEST_CHUNK], training=False)
                                for k in range(0, len(x_test), TEST_CHUNK)], axis=0)
            correct = tf.equal(tf.argmax(logits, 1), tf.argmax(y_test, 1))
            loss = tf.reduce_mean(
                tf.nn.softmax_cross_entropy_with_logits(labels=y_test, logits=logits))
            return tf.reduce_mean(tf.cast(correct, tf.float32)), loss

        clock = Clock()
        per_epoch = len(x) // BATCH

        class LabMeasurements(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch

            def on_train_batch_end(self, batch, logs=None):
                i = self.epoch * per_epoch + batch + 1  # steps done
                if i % MEASURE_EVERY == 0 or i == steps:
                    float(logs["loss"])  # the batch's loss and accuracy, as the lab reads them
                    clock.measured(i, steps, lambda: [float(v) for v in test()])
                if i >= steps:
                    self.model.stop_training = True

        clock.measured(0, steps, lambda: [float(v) for v in test()])
        model.fit(x, y, batch_size=BATCH, epochs=math.ceil(steps / per_epoch), verbose=0,
                  shuffle=True, callbacks=[LabMeasurements()])
        results[variant] = dict(clock.result(steps), jit_compile_resolved=bool(model.jit_compile),
                                steps_per_execution=int(spe or 1))
        del model
    return {"framework": "keras", "keras": keras.__version__, "tensorflow": tf.__version__,
            "engine": plumbing.engine(), "variants": results}


# ---------------------------------------------------------------------------- PyTorch


def torch_run(spec, variants, steps, data_dir):
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

    images, onehot, test_images, test_onehot = load_mnist(data_dir)
    # NCHW, as PyTorch wants it; labels as class numbers for F.cross_entropy
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    y_all = torch.from_numpy(onehot.argmax(1).astype(np.int64))
    x_test_all = torch.from_numpy(test_images).permute(0, 3, 1, 2).contiguous()
    y_test = torch.from_numpy(test_onehot.argmax(1).astype(np.int64))
    n = len(x_all)

    results = {}
    for variant in variants:
        threads = 1 if variant == "t1" else default_threads
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        model = build()
        x, x_test = x_all, x_test_all
        if variant == "cl":
            model = model.to(memory_format=torch.channels_last)
            x = x_all.contiguous(memory_format=torch.channels_last)
            x_test = x_test_all.contiguous(memory_format=torch.channels_last)
        if spec.get("optimizer") == "sgd":
            optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
        else:
            optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate(0),
                                         fused=variant != "eager")
        forward = torch.compile(model) if variant == "compile" else model
        order, position = torch.randperm(n), 0

        def test():
            model.eval()
            with torch.no_grad():
                logits = torch.cat([forward(x_test[k:k + TEST_CHUNK])
                                    for k in range(0, len(x_test), TEST_CHUNK)])
                loss = F.cross_entropy(logits, y_test).item()
                accuracy = (logits.argmax(1) == y_test).float().mean().item()
            model.train()
            return accuracy, loss

        clock = Clock()
        clock.measured(0, steps, test)
        for i in range(1, steps + 1):
            if position + BATCH > n:
                order, position = torch.randperm(n), 0
            idx = order[position:position + BATCH]
            position += BATCH
            if spec.get("optimizer") != "sgd":
                for group in optimizer.param_groups:
                    group["lr"] = learning_rate(i - 1)
            logits = forward(x[idx])
            loss = F.cross_entropy(logits, y_all[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if i % MEASURE_EVERY == 0 or i == steps:
                loss.item()  # the batch's loss and accuracy, as the lab reads them
                (logits.argmax(1) == y_all[idx]).float().mean().item()
                clock.measured(i, steps, test)
        results[variant] = dict(clock.result(steps), threads=threads)
    torch.set_num_threads(default_threads)
    return {"framework": "torch", "torch": torch.__version__, "default_threads": default_threads,
            "mkldnn": bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
            "variants": results}


# ---------------------------------------------------------------------------- command line


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__)
    parser.add_argument("framework", choices=["keras", "torch"])
    parser.add_argument("--model", choices=sorted(MODELS), default="2.1",
                        help="the lesson's number (default: 2.1)")
    parser.add_argument("--steps", type=int, default=None,
                        help="training steps (default: 3000 dense, 1500 conv)")
    parser.add_argument("--variants",
                        help="comma-separated (default: keras auto-spe20,xla-spe20 "
                             "for dense models, auto,auto-spe20 for convolutional ones; "
                             "torch eager,fused,t1,compile for dense models, "
                             "eager,cl,compile for convolutional ones)")
    parser.add_argument("--data-dir", default=os.environ.get("MNIST_DATA_DIR"),
                        help="MNIST folder (default: $MNIST_DATA_DIR)")
    args = parser.parse_args(argv)
    spec = MODELS[args.model]
    dense = spec["kind"] == "dense"
    steps = args.steps or (3000 if dense else 1500)
    if steps <= TIMED_FROM or steps % MEASURE_EVERY:
        parser.error(f"--steps must be a multiple of {MEASURE_EVERY} above {TIMED_FROM}")
    if args.framework == "keras":
        default = "auto-spe20,xla-spe20" if dense else "auto,auto-spe20"
        variants = (args.variants or default).split(",")
        out = keras_run(spec, variants, steps, args.data_dir)
    else:
        default = "eager,fused,t1,compile" if dense else "eager,cl,compile"
        variants = (args.variants or default).split(",")
        out = torch_run(spec, variants, steps, args.data_dir)
    out.update(model=args.model, steps=steps)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
