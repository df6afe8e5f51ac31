"""lab.py: a training run, from the first step to the saved model, shared by every lesson.

A lesson defines its model and its training step, then hands them to `train`:

    args = lab.parse_args(__doc__, steps=2000)   # the flags, checked before TensorFlow loads
    import tensorflow as tf
    ...                                          # variables, model(X), train_step(X, Y_)
    lab.train(args, model, train_step, optimizer)

Written plainly, without the dashboard, the reports and the speed-ups, `train` is this loop
(lesson 1.0 shows it too, as plain_training_loop; a test runs both and checks that they
measure what `train` measures):

    mnist = mnistdata.read_data_sets(args.data_dir, one_hot=True, reshape=False, validation_size=0,
                                     seed=args.seed)
    for step in range(args.steps + 1):
        if lab.test_due(step, args.steps):  # time to measure how well it reads the test digits?
            Ylogits = model(mnist.test.images)
            correct = tf.equal(tf.argmax(Ylogits, 1), tf.argmax(mnist.test.labels, 1))
            accuracy = tf.reduce_mean(tf.cast(correct, tf.float32))
            print(f"step {step}: test accuracy {float(accuracy):.4f}")
        if step < args.steps:
            batch_X, batch_Y = mnist.train.next_batch(args.batch_size)
            train_step(batch_X, batch_Y)  # TF1: sess.run(train_step, {X: batch_X, Y_: batch_Y})

`train`, just below, is the real loop. Everything after it serves it, in the order a run
meets it: setting up (data, variables, compiled calls, dashboard), training and testing,
the end (report, history, saved model); then the flags, and the doors for notebooks and
your own models (run, train_model). Elsewhere: the measuring schedule and the History in
history.py, the dashboard in tensorflowvisu.py, the SavedModel in savedmodel.py, lesson
6.0's replicas in cluster.py, what a model is from its graph in tracing.py, the rest in
plumbing.py.
"""

import argparse
import contextlib
import datetime
import hashlib
import math
import os
import runpy
import sys
import time
from pathlib import Path

import plumbing  # first: a Python without the lab's packages gets one line, not a traceback

plumbing.check_installed("numpy", "tensorflow", "matplotlib")

import numpy as np  # noqa: E402

import cluster  # noqa: E402
import history as history_module  # noqa: E402
import mnistdata  # noqa: E402
import pictures  # noqa: E402
import savedmodel  # noqa: E402
import tensorflowvisu  # noqa: E402
import tracing  # noqa: E402
from history import MEASURE_EVERY, test_due  # noqa: E402,F401 (lab.test_due: the plain loop's)
from plumbing import MODELS, RUNS, UserError  # noqa: E402

TEST_BATCH = 1000  # the test images go through the model 1,000 at a time (faster than all at once)
TRAIN_IMAGES = 60_000  # MNIST's training set (mnistdata checks the files' SHA-256)

tf = None  # TensorFlow, once parse_args has loaded it


def train(args, model, train_step, optimizer, *, distributions=None, augment=None, strategy=None):
    """Train `model` with `train_step` on the dashboard; then report and save; returns the
    run's History. Unlike the plain loop above, MNIST stays in TensorFlow as tensors, and
    the 20 steps between two measurements run in one compiled call (TF1's Session.run with
    a feed_dict per step could not): Python is out of the inner loop.

    model(X, training=False) -> logits [batch, 10], for images X [batch, 28, 28, 1].
    train_step(X, Y_): one optimisation step on a batch, with one-hot labels Y_.
    optimizer: the lesson's Keras optimizer (its learning rate is shown and recorded).
    distributions(X) -> {title: values, title: values}: the values whose spread dashboard
        panels 4 and 5 show, for a training batch X (default: all the weights, all the biases).
    augment(X) -> X: applied to every training batch before train_step.
    strategy: lesson 6.0's tf.distribute strategy (cluster.Hooks: checkpoints, workers).
    A problem the user can fix ends the run with one line; Ctrl-C (the notebook's stop
    button, closing the window) stops training, and the run is still reported and saved.
    """
    global _last_history
    if _handed_over is not None:  # the exercises' check: keep what the lesson hands over
        _handed_over.append(dict(args=args, model=model, train_step=train_step,
                                 optimizer=optimizer, distributions=distributions,
                                 augment=augment))
        return None
    import blocks  # (here: it loads TensorFlow, which parse_args loads first)

    bfloat16 = blocks.mixed_bfloat16() if args.precision == "bf16" else contextlib.nullcontext()
    with _one_line_errors(args), bfloat16:  # --precision bf16: while the lab trains and tests
        training = Training(args, model, train_step, optimizer, distributions, augment, strategy)
        interrupted = False
        try:  # (ctrl_c_held: Ctrl-C stops the loop at the next measurement, not inside TensorFlow)
            with plumbing.ctrl_c_held(on_press=training.dashboard.resume) as ctrl_c, \
                    training.hooks.watch():  # lesson 6.0: a worker that stops answering
                for step in training.steps_to_measure():  # 0, 20, 40, ..., args.steps
                    training.train_until(step)  # the steps up to here in one compiled call
                    if test_due(step, args.steps):
                        training.test(step)  # the 10,000 test images
                    training.hooks.after_measurement(step, training)  # 6.0: checkpoints
                    if ctrl_c.pressed:
                        raise KeyboardInterrupt
        except KeyboardInterrupt:  # Ctrl-C, the notebook's stop button, the window closed
            interrupted = True
        training.finish(interrupted)
    _last_history = training.history
    if training.history.final["interrupted"] and not plumbing.in_notebook():
        raise SystemExit(130)
    return training.history


def name_layers(**layers):
    """Name the tensors of the lesson's sketch in its model function, in order
    (lab.name_layers(Y1=Y1, Y2=Y2, ...)): the saved model's explain signature returns
    them, for predict.py --explain. While training it does nothing."""
    savedmodel.name_layers(layers)


# ---------------------------------------------------------------------- one run


class Training:
    """One training run: MNIST as tensors, the lesson's variables, the compiled calls, the
    dashboard (which keeps the run's History), and how far training has got."""

    def __init__(self, args, model, train_step, optimizer, distributions, augment, strategy):
        global tf
        tf = plumbing.load_tensorflow()  # (loaded by parse_args: this only returns it)
        self.args, self.model, self.optimizer = args, model, optimizer
        self.strategy = strategy
        self.hooks = cluster.Hooks(args, strategy) if strategy else cluster.NoHooks()

        # The data, as in the lab: all 60,000 training images (no validation split) with
        # one-hot labels; the 10,000 test images measure how well the model generalises.
        # TF1 fed every batch through placeholders with feed_dict. Here the whole training
        # set is one tensor, and batches are gathered from it inside the compiled call.
        self.mnist = mnistdata.read_data_sets(args.data_dir, one_hot=True, reshape=False,
                                              validation_size=0, seed=args.seed)
        self.train_images = tf.constant(self.mnist.train.images)
        self.train_labels = tf.constant(self.mnist.train.labels)
        self.test_images = tf.constant(self.mnist.test.images)
        self.test_labels = tf.constant(self.mnist.test.labels)
        self.test_digits = np.argmax(self.mnist.test.labels, axis=1)

        # (Dropout's random numbers where XLA compiles it, blocks.seeded_dropout; 6.0: none.)
        self.dropout_numbers = None if strategy else tf.random.Generator.from_seed(
            args.seed, alg="threefry")  # (under XLA on a CPU: faster than Philox, measured)
        self._find_variables(model, optimizer)
        # XLA wins for the dense models on a CPU, not for the convolutional ones. Under XLA,
        # a lesson's dropout draws its masks the lab's way (blocks.seeded_dropout, which XLA
        # compiles and the seed repeats); other random numbers from TensorFlow's global seed
        # keep XLA off: under it they come from a counter of the process (the same seed
        # would give other numbers on a second run in one notebook kernel).
        convolutional = any(len(v.shape) == 4 for v in self.weights)
        # (Nor with --precision bf16: TensorFlow's bfloat16 rewrite leaves XLA's calls alone.)
        self.xla = args.xla == "on" or (args.xla == "auto" and not convolutional
                                        and not self.draws_from_the_global_seed
                                        and args.precision == "float32")
        import blocks  # (here: it loads TensorFlow, which parse_args loads first)

        # For speed, the same maths (blocks.py): Adam's update of a variable in one op, not a
        # dozen; a strided convolution's gradient in one convolution; the first layer's
        # convolution of the one-channel images as a sum of shifted images, and dropout
        # under XLA, in the calls traced here. (Under lesson 6.0's strategy only the gradient.)
        blocks.speed_ups(None if strategy else optimizer)
        with self._traced_the_lab_way(self.xla):
            self.train_on = self._compile_training(model, train_step, augment)
            self.test_metrics = self._compile_test(model)
        self.distributions = self._compile_distributions(distributions)
        self._open_dashboard()
        self.tensorboard = TensorBoard(args, self.variables, self.names) if args.logdir else None
        self.done = self.hooks.resume(self)  # steps trained so far (lesson 6.0: maybe resumed)
        self.seconds = {"training": 0.0, "testing": 0.0}
        self.not_learning = None  # variables that did not change in the first compiled call
        self._initial = [(v, v.numpy()) for v in self.trainable]

    def _find_variables(self, model, optimizer):
        """The lesson's variables, found by tracing its model once: the weights (matrices,
        filters) and biases (vectors) for the dashboard; all of them are saved. Checks that
        the model gives logits [batch, 10] for the lab's images, in one line if not."""
        def call(X, training):  # (autograph rewrites the model once, for here and train_step)
            return model(X, training=training)

        try:
            traced = tf.function(call).get_concrete_function(tracing.images_spec(),
                                                             training=False)
        except Exception:  # a Keras model built for other inputs: one line, not autograph's 40
            try:
                shape = tuple(model.input_shape)
            except (AttributeError, TypeError, ValueError):  # (not a Keras model)
                shape = None
            if shape is None or shape[1:] == (28, 28, 1):
                raise
            raise UserError(f"the model takes inputs {shape}, the lab gives it images [batch, "
                            "28, 28, 1]: build it for them (keras.Input((28, 28, 1)), then "
                            "layers.Flatten() before Dense layers)") from None
        shape = getattr(traced.structured_outputs, "shape", None)
        if shape is None or shape.rank != 2 or shape[1] != 10:
            raise UserError(f"the model's outputs are {shape}, the lab expects logits [batch, "
                            "10], one per digit: layers.Flatten() before the Dense layers?")
        # Outputs that are already probabilities (a softmax at the end) would go through the
        # loss's own softmax again: the untrained model's answers tell.
        answers = traced(self.train_images[:100]).numpy()
        if answers.min() >= 0 and np.allclose(answers.sum(axis=1), 1, atol=1e-3):
            raise UserError("the model's outputs are already probabilities (they sum to 1); "
                            "the lab expects logits and applies softmax in its loss: remove "
                            "the last softmax (layers.Dense(10), not Dense(10, "
                            'activation="softmax"))')
        self.variables = tracing.lesson_variables(traced.variables)  # what the tested one uses
        with self._traced_the_lab_way(xla=True):  # (its dropout as XLA would compile it)
            trained = tf.function(call).get_concrete_function(tracing.images_spec(),
                                                              training=True)
        self.draws_from_the_global_seed = tracing.draws_from_the_global_seed(
            trained.graph.get_operations())
        self.trainable = tracing.lesson_variables(trained.trainable_variables)
        self.weights = [v for v in self.trainable if len(v.shape) >= 2]
        self.biases = [v for v in self.trainable if len(v.shape) < 2]
        self.names = tracing.variable_names(tracing.lesson_globals())
        # The weights that read the image, as tested and saved: shown and saved as pictures.
        self.filters = pictures.first_layer(
            [v for v in self.variables if len(v.shape) >= 2])
        # The optimizer's own variables (Adam's moving averages) made now: made while
        # train_step is traced, they would make TensorFlow trace it twice (a second or two).
        if not optimizer.built:
            with self.hooks.scope():
                optimizer.build(self.trainable)

    @contextlib.contextmanager
    def _traced_the_lab_way(self, xla):
        """The speed-ups that act while the lab traces (blocks.py): the first layer's
        convolution of one-channel images, and, where XLA compiles the call, dropout. Not
        under lesson 6.0's strategy."""
        import blocks  # (here: it loads TensorFlow, which parse_args loads first)

        with contextlib.ExitStack() as speed_ups:
            if not self.strategy:
                speed_ups.enter_context(blocks.one_channel_convolutions())
                if xla:
                    speed_ups.enter_context(blocks.seeded_dropout(self.dropout_numbers))
            yield

    def _compile_test(self, model):
        @tf.function(input_signature=[])
        def test_metrics():  # (without XLA: measured faster for every lesson)
            n = self.test_images.shape[0]
            logits = tf.concat([model(self.test_images[k:k + TEST_BATCH], training=False)
                                for k in range(0, n, TEST_BATCH)], axis=0)
            return _accuracy_loss_predictions(logits, self.test_labels)

        return test_metrics.get_concrete_function()

    def _compile_distributions(self, distributions):
        """Dashboard panels 4 and 5: all weights and all biases, unless the lesson shows
        something else there (the batch-norm lessons show activations)."""
        weights, biases = self.weights, self.biases

        def all_values(variables):
            return tf.concat([tf.reshape(v, [-1]) for v in variables] or [tf.zeros([0])], 0)

        def weights_and_biases(X):
            return {"weights": all_values(weights), "biases": all_values(biases)}

        # (autograph for a lesson's own function; the lab's has no Python if or for on tensors)
        return tf.function(distributions or weights_and_biases,
                           autograph=distributions is not None).get_concrete_function(
            tracing.images_spec())

    def _open_dashboard(self):
        args, engine = self.args, plumbing.engine()
        print(f"{args.name}: {args.steps} steps of {args.batch_size} images"
              f"{self.hooks.describe()}, {len(self.train_images)} training and "
              f"{len(self.test_images)} test images; {engine}{', XLA' if self.xla else ''}"
              f"{', bfloat16' if args.precision == 'bf16' else ''} "
              f"({plumbing.cpu_name()}, {os.cpu_count()} cores)", flush=True)
        config = {"script": f"{args.name}.py", "steps": args.steps, "batch_size": args.batch_size,
                  "seed": args.seed, "flags": args.flags, "xla": self.xla, "engine": engine,
                  "precision": args.precision,
                  "cpu": plumbing.cpu_name(), "tensorflow": tf.__version__,
                  "date": datetime.datetime.now().isoformat(timespec="seconds")}
        self.dashboard = tensorflowvisu.Dashboard(
            args.name, args.steps, config=config,
            distribution_titles=list(self.distributions.structured_outputs),
            live=not args.no_vis, movie=args.save_movie, png=args.save_png, view=args.view)
        self.history = self.dashboard.history
        if self.dashboard.not_live:
            hint = "" if args.save_png else " (use --save-png FILE to keep a picture)"
            print(f"{self.dashboard.not_live}: training without the live dashboard{hint}",
                  file=sys.stderr, flush=True)

    # -- training and testing

    def steps_to_measure(self):
        """0, 20, 40, ..., args.steps: the steps after which the training batch is measured
        (a resumed run starts after the steps it has done)."""
        steps = [*range(0, self.args.steps, MEASURE_EVERY), self.args.steps]
        return [step for step in steps if step > self.done or step == self.done == 0]

    def _compile_training(self, model, train_step, augment):
        """train_on(batches): train_step on each batch (a row of image indices), in one
        compiled call; then the last batch (as trained on: augmented, if it is) and the
        model's accuracy, loss and predictions on it."""
        def batch(indices):
            images = tf.gather(self.train_images, indices)
            return (augment(images) if augment else images), tf.gather(self.train_labels, indices)

        @tf.function(jit_compile=self.xla, input_signature=[tf.TensorSpec([None, None], tf.int32)])
        def train_on(batches):
            for k in tf.range(tf.shape(batches)[0]):
                train_step(*batch(batches[k]))
            images, labels = batch(batches[-1])
            return (images, *_accuracy_loss_predictions(model(images, training=False), labels))

        # Traced now, once per run: a lesson run again and again in one notebook does not
        # make TensorFlow warn about retracing.
        return train_on.get_concrete_function()

    def train_until(self, step):
        """Train up to `step` in one compiled call, train_on (at step 0: nothing, the
        untrained model); measure the model on the last batch; record and show it."""
        start = time.perf_counter()
        size = self.args.batch_size
        batches = [self.mnist.train.next_batch_indices(size) for _ in range(step - self.done)]
        if batches:
            images, accuracy, loss, predictions = self.train_on(tf.constant(np.stack(batches)))
        else:  # step 0
            indices = np.arange(size)
            images = tf.gather(self.train_images, indices)
            accuracy, loss, predictions = _accuracy_loss_predictions(
                self.model(images, training=False), tf.gather(self.train_labels, indices))
        loss = float(loss)  # waits for the compiled call to finish
        self.seconds["training"] += time.perf_counter() - start
        self.done = step
        if not math.isfinite(loss):
            raise UserError(f"the loss became {loss} at step {step}: training diverged. The "
                            f"learning rate ({self.learning_rate():.4g}) is probably too high "
                            "for this model: lower it and run again")
        if step > 0 and self.not_learning is None:
            self._warn_not_learning(step)
        indices = batches[-1] if batches else indices
        self.last_images = images  # (as trained on: augmented, if they are)
        self.dashboard.train(step, float(accuracy), loss, self.learning_rate(),
                             images=images.numpy(),
                             labels=self.mnist.train.labels[indices].argmax(1),
                             predictions=predictions.numpy(), indices=indices)
        if self.tensorboard:
            self.tensorboard.train(step, float(accuracy), loss, self.learning_rate())

    def _warn_not_learning(self, step):
        """The classic mistake when adding a layer: its variables missing from the list that
        train_step differentiates. They never change; say so after the first compiled call."""
        self.not_learning = [v for v, initial in self._initial
                             if np.array_equal(v.numpy(), initial)]
        for v in self.not_learning:
            print(f"warning: {tracing.name_of(v, self.names)} {v.shape.as_list()} did not change "
                  f"in the first {step} training steps: is it missing from the variables that "
                  "train_step updates (tape.gradient(loss, [...]))?", file=sys.stderr, flush=True)
        self._initial = None

    def test(self, step):
        """Measure the model on the 10,000 test images; record, print and show it."""
        start = time.perf_counter()
        accuracy, loss, predictions = self.test_metrics()
        predictions, loss = predictions.numpy(), float(loss)
        accuracy = float(np.mean(predictions == self.test_digits))  # exact, not float32
        self.seconds["testing"] += time.perf_counter() - start
        train = {key: values[-1] for key, values in self.history.train.items()}
        _progress(f"step {step:>6} (epoch {step * self.args.batch_size / TRAIN_IMAGES:5.2f}): "
                  f"train accuracy {train['accuracy']:.4f} loss {train['loss']:.4f} | test "
                  f"accuracy {accuracy:.4f} loss {loss:.4f} | lr {train['learning_rate']:.3g}")
        distributions = filters = None
        if self.dashboard.wants_pictures:  # computed only when something will show them
            distributions = [np.asarray(values) for values in
                             self.distributions(self.last_images).values()]
            filters = self.filters.numpy() if self.filters is not None else None
        images, digits = self.mnist.test.images, self.test_digits
        self.dashboard.test(step, accuracy, loss, images=images, labels=digits,
                            predictions=predictions, distributions=distributions,
                            filters=filters)
        self.test_predictions = predictions
        if self.tensorboard:
            self.tensorboard.test(step, accuracy, loss, images, digits, predictions,
                                  final=step == self.args.steps)

    def learning_rate(self):
        return float(self.optimizer.learning_rate)

    # -- the end of the run

    def finish(self, interrupted):
        """The final test, the report, and the files: history, model, pictures. Ctrl-C is
        held back meanwhile (a second Ctrl-C waits until the files are written), so the
        history and the model are always a pair from this run."""
        args, history = self.args, self.history
        _progress(None)  # (in a notebook: the step line stays, the report goes under it)
        with plumbing.ctrl_c_held() as ctrl_c:
            if interrupted:
                print(f"\ninterrupted at step {self.done} of {args.steps}: saving what was learned "
                      "so far", flush=True)
            if history.test["step"][-1:] != [self.done]:
                self.test(self.done)  # an interrupted run still gets its final test
                _progress(None)
            history.report = history_module.report(self.test_digits, self.test_predictions)
            history.finish(self.done, interrupted, self.dashboard.clock(),
                           training_seconds=round(self.seconds["training"], 3),
                           testing_seconds=round(self.seconds["testing"], 3))
            if not self.hooks.saves:  # lesson 6.0: only the chief of a cluster reports and saves
                self.hooks.finish(self, interrupted)
                return self.hooks.leave(interrupted)
            seconds = self.seconds
            print(f"\ntrained {self.done} steps in {self.dashboard.clock():.1f} s "
                  f"({seconds['training']:.1f} s training, {seconds['testing']:.1f} s testing)")
            print(history_module.format_report(history.report), flush=True)
            saved = self.dashboard.save(*filter(None, (args.history, args.run_history)))
            savedmodel.save(self.model, self.variables, args.save_model, filters=self.filters)
            saved.append(args.save_model)
            if self.tensorboard:
                saved.append(self.tensorboard.close())
            self.hooks.finish(self, interrupted)  # lesson 6.0: checkpoints, the replicas' weights
        print("saved: " + ", ".join(map(str, saved)))
        if ctrl_c.pressed:
            print("Ctrl-C while saving: it waited until the files above were complete",
                  file=sys.stderr)
            history.final["interrupted"] = True  # (for the exit status: the file is written)
        print(history.summary(), flush=True)
        self.dashboard.finish(wait=not history.final["interrupted"])  # a window stays till closed
        self.hooks.leave(history.final["interrupted"])  # lesson 6.0: a worker leaves at once

    def weights_digests(self):
        """A fingerprint of every variable's value, one per replica's copy (lesson 6.0:
        identical copies have the same one)."""
        copies = [getattr(v, "values", [v]) for v in self.variables]  # mirrored: a copy per replica
        return [hashlib.sha256(b"".join(v[k].numpy().tobytes() for v in copies)).hexdigest()[:16]
                for k in range(len(copies[0]))]


def _progress(line):
    """A line of progress: printed in a terminal; in a notebook, one line replaced in place
    (a carriage return), so that the output under the cell does not grow and push the
    dashboard away. None: the end of the progress lines."""
    if not plumbing.in_notebook():
        if line:
            print(line, flush=True)
    elif line:
        print("\r" + line, end="", flush=True)
        _progress.shown = True
    elif getattr(_progress, "shown", False):
        print(flush=True)
        _progress.shown = False


class _one_line_errors:
    """Around a run: a problem the user can fix ends it with one line and exit status 1
    (in a notebook: the UserError, which shows as one line); Ctrl-C before training
    started, with 130. A worker of a cluster (lesson 6.0) then leaves at once."""

    def __init__(self, args):
        self.worker = getattr(args, "worker", None)

    def __enter__(self):
        return self

    def __exit__(self, kind, error, _):
        if kind is None or not issubclass(kind, (UserError, KeyboardInterrupt)):
            return False
        interrupted = kind is KeyboardInterrupt
        message, status = ("interrupted", 130) if interrupted else (f"error: {error}", 1)
        _progress(None)
        if self.worker:
            print(message, file=sys.stderr)
            self.worker.exit(status)
        if plumbing.in_notebook() and status == 1:
            return False
        if status == 130:
            print(message, file=sys.stderr)
            raise SystemExit(130) from None
        raise SystemExit(message) from None


def _accuracy_loss_predictions(Ylogits, labels):
    predictions = tf.argmax(Ylogits, axis=1, output_type=tf.int32)
    correct = tf.equal(predictions, tf.argmax(labels, axis=1, output_type=tf.int32))
    loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=labels, logits=Ylogits))
    return tf.reduce_mean(tf.cast(correct, tf.float32)), loss, predictions


class TensorBoard:
    """TensorBoard logs of one run (--logdir), in a sub-folder of their own: scalars, weight
    histograms and a picture of the misread test digits (every 1,000 steps)."""

    def __init__(self, args, variables, names):
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.folder = Path(args.logdir) / f"{args.name}-{stamp}"
        self.writer = tf.summary.create_file_writer(str(self.folder))
        self.variables, self.names = variables, names

    def train(self, step, accuracy, loss, learning_rate):
        with self.writer.as_default(step=step):
            tf.summary.scalar("train/accuracy", accuracy)
            tf.summary.scalar("train/loss", loss)
            tf.summary.scalar("learning_rate", learning_rate)

    def test(self, step, accuracy, loss, images, digits, predictions, final=False):
        with self.writer.as_default(step=step):
            tf.summary.scalar("test/accuracy", accuracy)
            tf.summary.scalar("test/loss", loss)
            for v in self.variables:
                tf.summary.histogram(tracing.name_of(v, self.names), v)
            if step % 1000 == 0 or final:
                wrong = predictions != digits
                grid = pictures.digit_grid(images[wrong], digits[wrong],
                                                          predictions[wrong], count=100, lines=10)
                tf.summary.image("misread test digits", grid[None], max_outputs=1)

    def close(self):
        self.writer.close()
        return self.folder


# ------------------------------------------------------------------- the flags


def parse_args(doc, steps, argv=None, *, distributed=False, name=None):
    """Parse the flags shared by every lesson, check them, load TensorFlow, seed it.

    `doc` is the lesson's docstring (its first paragraph becomes the -h description),
    `steps` its default number of training steps. Everything that can be checked without
    TensorFlow is checked first, so that a typo is reported in a fraction of a second.
    Seeding happens here, before the lesson creates its variables, so that the same
    --seed gives the same run. distributed=True: lesson 6.0's flags (cluster.py).
    name: the run's name (default: the script's), which titles the dashboard and names
    runs/NAME.json and models/NAME/. In a notebook's own cells (not %run, not lab.run),
    argv=None reads no flags (sys.argv is the kernel's), and the run needs a name.
    """
    global tf
    if plumbing.in_notebook() and "__file__" not in tracing.lesson_globals():
        argv = [] if argv is None else argv
        if not name:
            raise UserError('in a notebook, name the run: lab.parse_args(..., name="my_network")'
                            " (it titles the dashboard and names runs/NAME.json, models/NAME/)")
    name = name or script_name()
    lesson_steps = steps
    if _fraction_of_steps is not None:  # lab.run(..., fraction=0.2)
        steps = max(1, round(steps * _fraction_of_steps / MEASURE_EVERY)) * MEASURE_EVERY
    description = (doc or "").strip().split("\n\n")[0]  # the lesson's first paragraph
    parser = plumbing.ArgumentParser(prog=f"{name}.py", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--steps", type=plumbing.count, default=steps, metavar="N",
        help=f"training steps, one batch each (default: {steps})")
    add("--batch-size", type=plumbing.count, default=100, metavar="N",
        help="images per training step (default: 100)")
    add("--seed", type=plumbing.seed, default=0, metavar="N",
        help="random seed for initial weights, batch order and dropout; the same seed gives the "
             "same curves on the same machine (default: 0)")
    add("--data-dir", metavar="DIR",
        help="folder with the four MNIST files (default: $MNIST_DATA_DIR, else data/ next to the "
             "lessons, where they are downloaded if missing)")
    add("--no-vis", action="store_true", help="no live dashboard: print progress as text only")
    add("--save-png", metavar="FILE", help="save the final dashboard as a PNG picture")
    add("--save-movie", metavar="FILE",
        help="record the dashboard as a movie: MP4 with ffmpeg, GIF otherwise")
    add("--history", metavar="FILE",
        help=f"where to write the run's history as JSON, for 'python tensorflowvisu.py compare' "
             f"(default: runs/{name}.json, the latest run, and a copy of each run in runs/{name}/)")
    add("--save-model", metavar="DIR",
        help=f"where to save the trained model, for predict.py (default: models/{name}/)")
    add("--logdir", metavar="DIR",
        help="also write TensorBoard logs, one sub-folder per run (view: tensorboard --logdir DIR)")
    add("--view", choices=[*"0123456789", "f"], default="0", metavar="KEY",
        help="what the dashboard shows first, as its keys: 0 the six panels, 1-6 one of them, "
             "f the first layer's weights as pictures (--save-movie records it) (default: 0)")
    add("--xla", choices=["auto", "on", "off"], default="auto",
        help="compile the training loop with XLA: auto = on for models without convolutions, "
             "where it measurably wins on a CPU (default: auto)")
    add("--precision", choices=["float32", "bf16"], default="float32",
        help="bf16: mixed precision, the matrix products and convolutions in bfloat16, the "
             "variables in float32; only on CPUs with bfloat16 arithmetic, AVX512_BF16 or AMX "
             "(AMD Zen 4 and 5, recent Xeons) (default: float32)")
    if distributed:
        cluster.add_flags(parser, name)
    args = parser.parse_args(argv)
    if args.batch_size > TRAIN_IMAGES:
        parser.error(f"--batch-size {args.batch_size} is larger than the {TRAIN_IMAGES:,} "
                     "training images")
    if args.precision == "bf16" and args.xla == "on":
        parser.error("--precision bf16 with --xla on: TensorFlow's bfloat16 rewrite leaves "
                     "XLA-compiled calls in float32; leave one of them out")
    args.name = name
    # What this run changes from the lesson's defaults, e.g. {"seed": 1}: its history says so.
    defaults = dict(vars(parser.parse_args([])), steps=lesson_steps)
    args.flags = {k: v for k, v in vars(args).items() if k in _LEARNING_FLAGS and v != defaults[k]}
    args.run_history = None  # each run's own copy of its history, next to the latest one
    if not args.history:
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        changes = "".join(f"--{k.replace('_', '-')}-{v}" for k, v in args.flags.items())
        args.run_history = str(RUNS / name / f"{stamp}{changes}.json")
    args.history = args.history or str(RUNS / f"{name}.json")
    args.save_model = args.save_model or str(MODELS / name)
    args.worker = None  # lesson 6.0 in a cluster: this process's place in it
    try:
        before_start, start = cluster.prepare(args, parser) if distributed else (None, True)
        _check_outputs(args)
        if args.precision == "bf16" and plumbing.bfloat16_arithmetic() is False:
            raise UserError(f"--precision bf16: this CPU ({plumbing.cpu_name()}) has no "
                            "bfloat16 arithmetic (AVX512_BF16 or AMX), and TensorFlow would "
                            "fall back to kernels 1.6 to 12 times slower than float32 "
                            "(docs/speed.md): leave --precision out")
        tf = plumbing.load_tensorflow(before_start, start, pictures=not (
            args.no_vis and not plumbing.in_notebook()))
        if args.precision == "bf16" and (engine := plumbing.engine()) != "CPU, oneDNN":
            raise UserError(f"--precision bf16 is oneDNN's rewrite for CPUs, and this run has "
                            f"{engine}: leave --precision out")
    except UserError as error:
        raise SystemExit(f"error: {error}") from None
    tf.random.set_seed(args.seed)
    return args


_LEARNING_FLAGS = ("steps", "batch_size", "seed", "xla", "precision", "replicas")  # change curves


def script_name():
    """The running lesson's name, e.g. 'mnist_1.0_softmax' (names the history and model)."""
    path = tracing.lesson_globals().get("__file__") or sys.argv[0] or "mnist"
    return Path(path).stem


def _check_outputs(args):
    """Fail before training, not after, when outputs cannot be written: all of them in one
    line. A file or folder needs its folder to exist, except in the lab's own runs/ and
    models/, where missing folders are made as needed."""
    if not getattr(args, "saves", True):  # lesson 6.0: a worker of a cluster that is not the chief
        return
    if args.logdir:
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:
            raise UserError("--logdir needs TensorBoard: pip install tensorboard")
    if args.save_movie and Path(args.save_movie).suffix not in tensorflowvisu.Movie.SUFFIXES:
        raise UserError(f"--save-movie {args.save_movie}: a movie file name must end in .mp4 "
                        "or .gif")
    model_dir = Path(args.save_model)
    if model_dir.exists() and not (model_dir / "saved_model.pb").exists() and \
            (not model_dir.is_dir() or any(model_dir.iterdir())):
        raise UserError(f"--save-model {model_dir}: exists and is not a saved model; "
                        "choose a new or empty folder (a saved model there is replaced)")
    outputs = [("--history", args.history, False), ("--save-model", args.save_model, True),
               ("--save-png", args.save_png, False), ("--save-movie", args.save_movie, False),
               ("--logdir", args.logdir, True)]
    problems = [f"{flag} {path} ({problem})" for flag, path, folder in outputs
                if path and (problem := plumbing.cannot_write(path, folder,
                                                              plumbing.in_lab_folders(path)))]
    if problems:
        raise UserError(f"cannot write {'; '.join(problems)}: choose other places with "
                        f"{'these flags' if len(problems) > 1 else 'this flag'}")


# ------------------------------------------------------------------- notebooks, your own model

_fraction_of_steps = None  # lab.run(..., fraction=0.2): the lesson runs this fraction of its steps
_last_history = None  # the history of the latest lab.train, for lab.run
_handed_over = None  # inside handed_over(): what lessons hand lab.train, instead of training


def run(lesson, *arguments, fraction=None, **flags):
    """Run a lesson in this Python process, e.g. from a notebook; returns its History.

        history = lab.run("mnist_2.1_five_layers_relu.py", steps=2000)
        history = lab.run("2.1", fraction=0.2, seed=1)
        lab.run("5.2", "models/a", "models/b")   # arguments, as on its command line

    lesson: a lesson's file name (found next to lab.py), path, or number ("2.1").
    fraction: run this fraction of the lesson's own number of steps (e.g. 0.2 on slow laptops).
    flags: the lesson's command-line flags, with _ for -: steps=2000 is --steps 2000,
    no_vis=True is --no-vis (False or None leaves a flag out). In a notebook the dashboard
    is a picture under the cell. Raises UserError when the lesson stops with an error;
    an interrupted run (the notebook's stop button) returns what it measured.
    """
    global _fraction_of_steps, _last_history
    path = _lesson_path(lesson)
    _last_history = None
    saved_argv = sys.argv
    sys.argv = [str(path), *map(str, arguments), *plumbing.flag_words(flags)]
    _fraction_of_steps = fraction
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as stop:
        if stop.code not in (None, 0, 130):
            raise UserError(str(stop.code).removeprefix("error: ") if isinstance(stop.code, str)
                            else f"{path.name} stopped with exit status {stop.code}") from None
    finally:
        sys.argv, _fraction_of_steps = saved_argv, None
    return _last_history


def train_model(model, train_step, optimizer, *, name, steps=2000, distributions=None,
                augment=None, **flags):
    """Train your own model with the lab: its loop, dashboard, reports and files, without
    command-line flags (from a notebook, or a script of your own); returns the History.

        history = lab.train_model(model, train_step, optimizer, name="my_network", steps=2000)

    model, train_step, optimizer, distributions, augment: as for train (a Keras model
    works: it must take images [batch, 28, 28, 1] and return logits [batch, 10]). name: the
    run's name (the dashboard's title, runs/NAME.json, models/NAME/ in the lab's folder).
    flags: the lessons' flags, as lab.run takes them (seed=1, batch_size=200, no_vis=True,
    save_png="me.png"...). The seed sets the batch order and dropout: your model's weights
    were made before, so seed them yourself first (keras.utils.set_random_seed(0)).
    """
    try:
        args = parse_args(None, steps, ["--steps", str(steps), *plumbing.flag_words(flags)],
                          name=name)
    except SystemExit as stop:  # a bad flag: one line, as a notebook shows a UserError
        message = str(stop.code).partition("error: ")[2] or str(stop.code)
        raise UserError(message.split(" (see ")[0]) from None
    return train(args, model, train_step, optimizer, distributions=distributions,
                 augment=augment)


@contextlib.contextmanager
def handed_over():
    """While inside, lab.train trains nothing: it keeps what it is handed (args, model,
    train_step, optimizer, distributions, augment), as a dict in the list this yields.
    The exercises' check runs a lesson's file this way, to get its parts."""
    global _handed_over
    saved, _handed_over = _handed_over, []
    try:
        yield _handed_over
    finally:
        _handed_over = saved


def _lesson_path(lesson):
    lesson = str(lesson)
    for candidate in (Path(lesson), plumbing.ROOT / lesson):
        if candidate.is_file():
            return candidate.resolve()
    if lesson in plumbing.lessons():
        return plumbing.lessons()[lesson]
    names = ", ".join(path.name for path in plumbing.lessons().values())
    raise UserError(f"no lesson {lesson!r}: choose one of {names}")


if __name__ == "__main__":  # (the exercises have a door of their own)
    raise SystemExit("lab.py is the lessons' shared code, not a command: for the exercises, "
                     "python exercises.py start STEP, python exercises.py check FILE")
