"""blocks.py: the learning-rate decay and batch normalisation."""
import math

import numpy as np
import pytest
import tensorflow as tf

import blocks
import tracing
from helpers import load_lesson


def test_learning_rate_decay_values():
    decay = blocks.ExponentialDecay(0.003, decay_steps=2000, floor=0.0001)
    assert float(decay(0)) == pytest.approx(0.0031)
    assert float(decay(2000)) == pytest.approx(0.0001 + 0.003 / math.e)
    assert float(decay(10000)) == pytest.approx(0.0001 + 0.003 * math.exp(-5))
    assert float(decay(10**6)) == pytest.approx(0.0001)


def test_an_optimizer_with_a_schedule_reports_its_current_rate(monkeypatch, batch):
    lesson = load_lesson("mnist_2.1_five_layers_relu.py", monkeypatch)
    X, Y_ = batch
    for _ in range(5):
        lesson["train_step"](X, Y_)
    rate = float(lesson["optimizer"].learning_rate)
    assert rate == pytest.approx(0.0001 + 0.003 * math.exp(-5 / 2000))


def test_batch_norm_uses_the_batch_in_training_and_moving_averages_at_test_time():
    tf.random.set_seed(1)
    bn = blocks.BatchNorm(3)
    offset, scale = tf.constant([0.5, -1.0, 0.0]), tf.constant([2.0, 1.0, 3.0])
    Y = tf.random.normal([200, 3]) * [1.0, 5.0, 0.1] + [10.0, -3.0, 0.5]

    out = bn(Y, offset, scale, training=True)  # normalised with this batch's statistics
    np.testing.assert_allclose(tf.reduce_mean(out, 0), offset, atol=1e-4)
    np.testing.assert_allclose(tf.math.reduce_std(out, 0), scale, rtol=1e-3)
    mean, variance = tf.nn.moments(Y, [0])
    # first update: the average forgets fast, decay (1 + 0) / (10 + 0) = 0.1
    np.testing.assert_allclose(bn.moving_mean, 0.9 * mean, rtol=1e-5)
    np.testing.assert_allclose(bn.moving_variance, 0.1 + 0.9 * variance, rtol=1e-5)

    for _ in range(300):
        bn(Y, offset, scale, training=True)
    np.testing.assert_allclose(bn.moving_mean, mean, rtol=1e-3)
    # at test time each image is normalised on its own: independent of the rest of the batch
    alone = bn(Y[:1], offset, scale, training=False)
    np.testing.assert_allclose(alone, bn(Y, offset, scale, training=False)[:1], rtol=1e-5)
    np.testing.assert_allclose(alone, out[:1], rtol=1e-2, atol=1e-2)  # averages ~ batch statistics
    # ... and in training mode the same image depends on its batch
    assert not np.allclose(bn(Y[:2], offset, scale, training=True)[:1], out[:1], atol=1e-2)


def test_convolutional_batch_norm_normalises_each_channel_over_batch_and_positions():
    bn = blocks.BatchNorm(4)
    Y = tf.random.normal([8, 5, 5, 4], seed=2) * 3 + 7
    out = bn(Y, tf.zeros([4]), training=True)
    assert out.shape == Y.shape and bn.moving_mean.shape == (4,)
    np.testing.assert_allclose(tf.reduce_mean(out, [0, 1, 2]), np.zeros(4), atol=1e-4)


@pytest.mark.parametrize("shape", [[100, 7], [6, 5, 5, 4]])
def test_batch_norm_is_the_maths_of_moments_and_batch_normalization(shape):
    """blocks.BatchNorm runs as one fused op (for speed): its values, gradients and moving
    averages are those of tf.nn.moments + tf.nn.batch_normalization, as the docstring
    writes it out."""
    tf.random.set_seed(4)
    size = shape[-1]
    Y = tf.random.normal(shape) * 3 + 2
    offset, scale = tf.Variable(tf.random.normal([size])), tf.Variable(tf.random.normal([size]))
    weights = tf.random.normal(shape)  # a loss that weighs every value differently
    axes = list(range(len(shape) - 1))
    bn = blocks.BatchNorm(size)
    outputs, gradients = [], []
    for fused in (True, False):
        with tf.GradientTape() as tape:
            tape.watch(Y)
            if fused:
                out = bn(Y, offset, scale, training=True)
            else:
                mean, variance = tf.nn.moments(Y, axes)
                out = tf.nn.batch_normalization(Y, mean, variance, offset, scale, 1e-5)
            loss = tf.reduce_sum(tf.nn.relu(out) * weights)
        outputs.append(out.numpy())
        gradients.append([g.numpy() for g in tape.gradient(loss, [Y, offset, scale])])
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-4, atol=1e-4)
    for fused, plain in zip(*gradients):
        np.testing.assert_allclose(fused, plain, rtol=1e-3, atol=1e-4 * np.abs(plain).max())
    mean, variance = tf.nn.moments(Y, axes)
    np.testing.assert_allclose(bn.moving_mean, 0.9 * mean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.moving_variance, 0.1 + 0.9 * variance, rtol=1e-5)
    test_time = tf.nn.batch_normalization(Y, bn.moving_mean, bn.moving_variance, offset, scale,
                                          1e-5)
    np.testing.assert_allclose(bn(Y, offset, scale), test_time, rtol=1e-4, atol=1e-4)


def test_fused_adam_takes_the_steps_of_keras_adam():
    """The lab gives a lesson's tf.keras.optimizers.Adam a one-op update (for speed only)."""
    tf.random.set_seed(3)
    start = [tf.random.normal([30, 20]), tf.random.normal([20])]
    schedule = blocks.ExponentialDecay(0.01, decay_steps=10, floor=0.001)
    runs = []
    for fused in (False, True):
        variables = [tf.Variable(v) for v in start]
        optimizer = tf.keras.optimizers.Adam(schedule)
        if fused:
            assert isinstance(blocks.fuse_adam(optimizer), blocks.FusedAdam)

        @tf.function
        def step(k, variables=variables, optimizer=optimizer):
            with tf.GradientTape() as tape:  # gradients that change with the step k
                value = tf.reduce_sum(tf.sin(variables[0]) * k) + tf.reduce_sum(variables[1] ** 2)
            optimizer.apply_gradients(zip(tape.gradient(value, variables), variables))

        for k in range(20):
            step(tf.constant(float(k)))
        runs.append([v.numpy() for v in variables + optimizer.variables[1:]])
    for keras_value, fused_value in zip(*runs):
        scale = np.abs(keras_value).max()
        np.testing.assert_allclose(fused_value, keras_value, rtol=1e-5, atol=1e-5 * scale)
    assert type(blocks.fuse_adam(tf.keras.optimizers.SGD(0.1))) is tf.keras.optimizers.SGD
    amsgrad = tf.keras.optimizers.Adam(amsgrad=True)
    assert type(blocks.fuse_adam(amsgrad)) is tf.keras.optimizers.Adam


@pytest.mark.parametrize("size, filter_size, stride, channels", [
    ((28, 28), (5, 5), 2, (4, 8)),   # lesson 3.0's second layer
    ((14, 14), (4, 4), 2, (8, 12)),  # and its third
    ((13, 9), (3, 6), 2, (3, 2)),    # odd sizes, a filter longer one way
    ((15, 16), (4, 2), 3, (5, 3)),   # stride 3
    ((7, 5), (1, 1), 2, (2, 2)),     # a filter smaller than the stride: some phases get nothing
    ((3, 4), (6, 5), 2, (1, 1)),     # a filter larger than the image
])
def test_strided_conv_input_gradient_is_tensorflows(size, filter_size, stride, channels):
    """The sub-pixel gradient (one ordinary convolution, then depth_to_space) gives what
    TensorFlow's own Conv2DBackpropInput gives, for a convolution with padding="SAME"."""
    rng = np.random.default_rng(5)
    C_in, C_out = channels
    W = tf.constant(rng.standard_normal([*filter_size, C_in, C_out]), tf.float32)
    outputs = [-(-n // stride) for n in size]
    dY = tf.constant(rng.standard_normal([3, *outputs, C_out]), tf.float32)
    expected = tf.raw_ops.Conv2DBackpropInput(
        input_sizes=[3, *size, C_in], filter=W, out_backprop=dY, strides=[1, stride, stride, 1],
        padding="SAME")
    got = blocks.strided_conv_input_gradient(dY, W, size, stride)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_use_subpixel_gradient_changes_how_not_what_tensorflow_differentiates():
    """Installed by the lab's training loop: a strided convolution with few input channels
    is differentiated with the sub-pixel gradient (no Conv2DBackpropInput in the gradient's
    graph), others with TensorFlow's own; the gradients are the same either way."""
    blocks.use_subpixel_gradient()
    blocks.use_subpixel_gradient()  # twice: no harm (a lesson run again in a notebook)
    rng = np.random.default_rng(6)
    for stride, C_in, subpixel in [(2, 4, True), (2, 12, True), (1, 4, False), (2, 16, False)]:
        X = tf.constant(rng.standard_normal([5, 14, 14, C_in]), tf.float32)
        W = tf.Variable(rng.standard_normal([5, 5, C_in, 6]).astype(np.float32))
        weights = tf.constant(rng.standard_normal([5, 14 // stride, 14 // stride, 6]), tf.float32)

        @tf.function
        def gradients(X):
            with tf.GradientTape() as tape:
                tape.watch(X)
                loss = tf.reduce_sum(tf.nn.conv2d(X, W, strides=stride, padding="SAME") * weights)
            return tape.gradient(loss, [X, W])

        graph = gradients.get_concrete_function(X).graph
        kinds = {op.type for op in graph.get_operations()}
        assert ("Conv2DBackpropInput" in kinds) != subpixel
        dX, dW = gradients(X)
        strides = [1, stride, stride, 1]
        np.testing.assert_allclose(dX, tf.raw_ops.Conv2DBackpropInput(
            input_sizes=X.shape, filter=W, out_backprop=weights, strides=strides,
            padding="SAME"), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(dW, tf.raw_ops.Conv2DBackpropFilter(
            input=X, filter_sizes=W.shape, out_backprop=weights, strides=strides,
            padding="SAME"), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("image, filter_shape", [
    ((28, 28), (5, 5, 1, 4)),  # lesson 3.0's first layer
    ((28, 28), (6, 6, 1, 6)),  # 3.1's: an even filter, more padding after than before
    ((13, 9), (3, 4, 1, 2)),   # odd sizes, a filter longer one way
])
def test_one_channel_conv2d_is_tensorflows(image, filter_shape):
    """The sum of shifted images gives tf.nn.conv2d's values, and the same gradients with
    respect to the images and the filter, eagerly and compiled."""
    rng = np.random.default_rng(7)
    X = tf.constant(rng.random([6, *image, 1]), tf.float32)
    W = tf.Variable(rng.standard_normal(filter_shape).astype(np.float32))
    weights = tf.constant(rng.standard_normal([6, *image, filter_shape[3]]), tf.float32)

    def values_and_gradients(conv):
        with tf.GradientTape() as tape:
            tape.watch(X)
            Y = conv(X, W)
            loss = tf.reduce_sum(Y * weights)
        return [Y, *tape.gradient(loss, [X, W])]

    expected = values_and_gradients(lambda X, W: tf.nn.conv2d(X, W, 1, "SAME"))
    for got in (values_and_gradients(blocks.one_channel_conv2d),
                tf.function(values_and_gradients)(blocks.one_channel_conv2d)):
        for a, b in zip(got, expected):
            assert a.shape == b.shape
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_one_channel_convolutions_change_only_what_is_traced_inside():
    """Inside, tf.nn.conv2d of one-channel images with few small filters (stride 1,
    "SAME") is traced as the sum of shifted images (XLA-compiled, no Conv2D op forwards);
    any other convolution stays TensorFlow's; outside, even after an error, tf.nn.conv2d
    is TensorFlow's own again."""
    tensorflows = tf.nn.conv2d
    rng = np.random.default_rng(8)

    def forward_ops(image_channels, filter_shape, stride=1, padding="SAME"):
        W = tf.constant(rng.standard_normal(filter_shape), tf.float32)
        conv = tf.function(lambda X: tf.nn.conv2d(X, W, stride, padding))
        graph = conv.get_concrete_function(tf.TensorSpec([None, 28, 28, image_channels])).graph
        return {op.type for op in graph.get_operations()}

    with blocks.one_channel_convolutions():
        assert tf.nn.conv2d is not tensorflows
        shifted = forward_ops(1, [5, 5, 1, 4])
        assert "Conv2D" not in shifted and "PartitionedCall" in shifted  # (the XLA-compiled sum)
        for others in [(1, [6, 6, 1, 24]), (1, [5, 5, 1, 8]), (1, [7, 7, 1, 4]),
                       (3, [5, 5, 3, 4]), (1, [5, 5, 1, 4], 2), (1, [5, 5, 1, 4], 1, "VALID")]:
            assert "Conv2D" in forward_ops(*others), others
    assert tf.nn.conv2d is tensorflows and "Conv2D" in forward_ops(1, [5, 5, 1, 4])
    with pytest.raises(ZeroDivisionError), blocks.one_channel_convolutions():
        1 / 0
    assert tf.nn.conv2d is tensorflows


def test_seeded_dropout_is_dropout_that_xla_compiles_and_the_seed_repeats():
    """Inside, tf.nn.dropout keeps about 1 - rate of the values, scaled by 1 / (1 - rate),
    the others 0, in an XLA-compiled call too; a new generator with the same seed repeats
    the masks (a notebook's second run), another seed does not, and each call draws new
    ones; the graph draws nothing from TensorFlow's global seed (tracing.py's test for
    XLA); outside, even after an error, tf.nn.dropout is TensorFlow's own again."""
    tensorflows = tf.nn.dropout
    x = tf.fill([200, 300], 3.0)

    def masks(seed, calls=2):
        with blocks.seeded_dropout(tf.random.Generator.from_seed(seed, alg="threefry")):
            assert tf.nn.dropout is not tensorflows
            dropout = tf.function(lambda x: tf.nn.dropout(x, rate=0.25), jit_compile=True)
            graph = dropout.get_concrete_function(tf.TensorSpec([None, 300])).graph
            assert not tracing.draws_from_the_global_seed(graph.get_operations())
            return [dropout(x).numpy() for _ in range(calls)]

    first, second = masks(1)
    assert set(np.unique(first)) == {0.0, 4.0}  # 3 / 0.75
    assert abs(np.mean(first == 4.0) - 0.75) < 0.01
    assert not np.array_equal(first, second)  # new masks every call
    again = masks(1)
    assert np.array_equal(first, again[0]) and np.array_equal(second, again[1])
    assert not np.array_equal(first, masks(2, calls=1)[0])
    assert tf.nn.dropout is tensorflows
    graph = tf.function(lambda x: tf.nn.dropout(x, rate=0.25)).get_concrete_function(x).graph
    assert tracing.draws_from_the_global_seed(graph.get_operations())  # TensorFlow's own
    with pytest.raises(ZeroDivisionError), blocks.seeded_dropout(None):
        1 / 0
    assert tf.nn.dropout is tensorflows


def test_mixed_bfloat16_rounds_the_products_of_calls_made_inside():
    """--precision bf16: a compiled call made inside blocks.mixed_bfloat16 multiplies in
    bfloat16 (8 significant bits: 1 + 2**-10 becomes 1), also inside a loop's body; its
    result is float32, and the calls made outside (of it or another) keep float32.
    (TensorFlow's rewrite needs oneDNN, which the lab turns on; on a CPU without bfloat16
    arithmetic, slower kernels give the same values.)"""
    a, one = tf.constant([[1 + 2**-10]]), tf.constant([[1.0]])

    def products(a, b):  # as the lab's train_on: a loop over steps
        total = tf.zeros([1, 1])
        for _ in tf.range(2):
            total += tf.matmul(a, b)
        return total[0, 0] / 2

    def compiled():
        spec = [tf.TensorSpec([1, 1], tf.float32)] * 2
        return tf.function(products).get_concrete_function(*spec)

    with blocks.mixed_bfloat16():
        inside = compiled()
        assert float(inside(a, one)) == 1.0
    outside = compiled()
    assert float(outside(a, one)) == 1 + 2**-10
    assert float(inside(a, one)) == 1 + 2**-10 and inside(a, one).dtype == tf.float32
    with blocks.mixed_bfloat16():
        assert float(outside(a, one)) == 1.0
    assert not tf.config.optimizer.get_experimental_options().get(blocks.BFLOAT16_REWRITE)


def test_autograph_does_not_rewrite_the_speed_ups(monkeypatch):
    """The speed-ups a lesson's model calls while the lab traces it are plain TensorFlow:
    autograph, which rewrites the model, leaves them as they are (0.03 to 0.16 s each as a
    lesson starts; docs/speed.md). (autograph's internal entry point, watched.)"""
    from tensorflow.python.autograph.impl import api

    rewritten, rewrite = [], api._convert_actual
    monkeypatch.setattr(api, "_convert_actual", lambda entity, context: (
        rewritten.append(entity.__name__), rewrite(entity, context))[1])
    W = tf.ones([5, 5, 1, 4])

    def model(X):
        return tf.nn.dropout(tf.nn.relu(tf.nn.conv2d(X, W, strides=1, padding="SAME")), 0.5)

    with blocks.one_channel_convolutions(), \
            blocks.seeded_dropout(tf.random.Generator.from_seed(0)):
        traced = tf.function(model).get_concrete_function(tf.TensorSpec([2, 28, 28, 1]))
    kinds = {op.type for op in traced.graph.get_operations()}
    assert "Conv2D" not in kinds and "RngReadAndSkip" in kinds  # (the speed-ups ran)
    assert "model" in rewritten
    assert not {"conv2d", "dropout", "one_channel_conv2d", "_one_channel",
                "_shifted_images_conv2d", "_sum_of_shifted_images"} & set(rewritten)
