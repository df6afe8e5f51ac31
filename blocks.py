"""blocks.py: the later lessons' building blocks, and the lab's speed-ups, written once.

- ExponentialDecay: the learning rate of lessons 2.1 and after, fast at first, slow at the end.
- BatchNorm: batch normalisation of one layer (lessons 4.0 and after).
- FusedAdam: Keras's Adam, each variable's update in one operation; the lab's training
  loop gives it to the lessons' tf.keras.optimizers.Adam (fuse_adam), for speed only.
- strided_conv_input_gradient: the gradient of a strided convolution with respect to its
  input, as one ordinary convolution; the lab's training loop has TensorFlow use it where
  it is faster (use_subpixel_gradient), for speed only.
- one_channel_conv2d: the first layer's convolution of one-channel images as a sum of
  shifted images; the lab's training loop traces its compiled calls inside
  one_channel_convolutions(), which uses it where it is faster, for speed only.
- seeded_dropout: dropout whose masks XLA compiles and the run's seed repeats; the lab's
  training loop traces its XLA-compiled calls inside it (lesson 2.2), for speed only.
- mixed_bfloat16: --precision bf16, the matrix products and convolutions in bfloat16 while
  the lab trains (TensorFlow's own rewrite of its compiled calls), the variables in float32.

speed_ups(optimizer) is what the lab's training loop does with FusedAdam and
strided_conv_input_gradient, once per run.

A lesson imports this module after lab.parse_args, which loads TensorFlow with the
lab's settings:

    args = lab.parse_args(__doc__, steps=10000)
    import tensorflow as tf
    import blocks
    decay = blocks.ExponentialDecay(0.003, decay_steps=2000, floor=0.0001)
    optimizer = tf.keras.optimizers.Adam(decay)
"""

import contextlib

import numpy as np

import plumbing

tf = plumbing.load_tensorflow()  # already loaded by lab.parse_args: this only returns it

# Autograph rewrites the Python `if` and `for` over tensors of the code tf.function
# traces. The lab's speed-ups below, which a lesson's model calls while the lab traces it,
# have none: they are marked @tf.autograph.experimental.do_not_convert (or traced with
# autograph=False), so that autograph does not read them: 0.03 to 0.16 s each as a lesson
# starts (measured), for nothing.


class ExponentialDecay(tf.keras.optimizers.schedules.LearningRateSchedule):
    """The lab's learning-rate decay: lr(step) = floor + start * e^(-step / decay_steps).

    Starts fast (big steps while far from a good solution) and ends slow (small steps
    to settle in a minimum instead of bouncing around it). TF1: floor +
    tf.train.exponential_decay(start, step, decay_steps, 1/math.e). A Keras optimizer
    calls it with its step count before every step.
    """

    def __init__(self, start, decay_steps, floor):
        self.start, self.decay_steps, self.floor = start, decay_steps, floor

    def __call__(self, step):
        return self.floor + self.start * tf.exp(-tf.cast(step, tf.float32) / self.decay_steps)

    def get_config(self):  # what Keras saves of it
        return {"start": self.start, "decay_steps": self.decay_steps, "floor": self.floor}


class BatchNorm:
    """Batch normalisation of one layer, at the low level (Ioffe and Szegedy, 2015).

    In training, the layer's weighted sums (before the activation function) are
    normalised with the mean and variance of the current batch, neuron by neuron (for a
    convolutional layer, channel by channel, over the batch and all positions):

        Ybn = scale * (Ylogits - batch mean) / sqrt(batch variance + 1e-5) + offset

    so every layer gets inputs centred on 0 with a spread of 1, whatever the layers
    before it do: training can use much higher learning rates. `offset` (beta) and
    `scale` (gamma) are trainable variables of the lesson: the offset takes over the
    role of the bias (a bias added before the normalisation would be subtracted again
    with the mean), the scale is only worth having before a sigmoid (a ReLU does not care
    about the scale of its input).

    At test time there is no batch to average over (or a batch of one), so the layer
    uses moving averages of the training batches' means and variances, updated at every
    training step; they are variables too (not trained, but saved with the model). Like
    TF1's tf.train.ExponentialMovingAverage(decay, step), the average forgets fast at
    first (decay (1 + n) / (10 + n) at update n), then with `decay`.

    Written out with two TensorFlow calls, the training case is

        mean, variance = tf.nn.moments(Ylogits, axes)  # axes [0], or [0, 1, 2]
        Ybn = tf.nn.batch_normalization(Ylogits, mean, variance, offset, scale, 1e-5)

    which reads the layer's values three times (mean, variance, normalisation) and its
    gradient as many more small operations. The code below asks for the same maths as one
    fused operation (tf.raw_ops.FusedBatchNormV3: one pass forwards, one backwards, run by
    oneDNN on a CPU), which wants 4 dimensions: a dense layer [batch, N] goes through it
    as [batch, 1, 1, N]. It gives the batch variance with Bessel's correction (divided by
    count - 1), which is undone so that the averages are those of tf.nn.moments.
    """

    def __init__(self, size, decay=0.999):
        self.decay = decay
        self.moving_mean = tf.Variable(tf.zeros([size]), trainable=False)
        self.moving_variance = tf.Variable(tf.ones([size]), trainable=False)
        self.updates = tf.Variable(0.0, trainable=False)

    def __call__(self, Ylogits, offset, scale=None, training=False):
        size = self.moving_mean.shape[0]
        dense = Ylogits.shape.rank == 2  # [batch, N]: as [batch, 1, 1, N] for the fused op
        X = tf.reshape(Ylogits, [-1, 1, 1, size]) if dense else Ylogits
        if scale is None:
            scale = tf.ones([size])
        if training:
            Ybn, mean, variance, _, _, _ = tf.raw_ops.FusedBatchNormV3(
                x=X, scale=scale, offset=offset, mean=tf.zeros([0]), variance=tf.zeros([0]),
                epsilon=1e-5, is_training=True)
            count = tf.cast(tf.size(X) // size, tf.float32)  # values per neuron or channel
            variance = variance * (count - 1) / count  # without Bessel's correction
            decay = tf.minimum(self.decay, (1 + self.updates) / (10 + self.updates))
            self.moving_mean.assign(decay * self.moving_mean + (1 - decay) * mean)
            self.moving_variance.assign(decay * self.moving_variance + (1 - decay) * variance)
            self.updates.assign_add(1)
        else:
            Ybn = tf.raw_ops.FusedBatchNormV3(
                x=X, scale=scale, offset=offset, mean=self.moving_mean,
                variance=self.moving_variance, epsilon=1e-5, is_training=False)[0]
        return tf.reshape(Ybn, [-1, size]) if dense else Ybn


class FusedAdam(tf.keras.optimizers.Adam):
    """Keras's Adam, with each variable's update in one TensorFlow operation: same maths.

    Keras updates a variable with a dozen small operations (its two moving averages, then
    the step, each a pass over the variable, and the scalars in between);
    tf.raw_ops.ResourceApplyAdam does it in one pass, with the same formula:
        m += (g - m)(1 - beta_1),  v += (g^2 - v)(1 - beta_2),
        variable -= lr sqrt(1 - beta_2^t) / (1 - beta_1^t) * m / (sqrt(v) + epsilon).
    Where the step is made of small operations, this is felt: lesson 2.2 trains about 1.3
    times faster. Nothing else changes: the same variables, schedule and saved state.
    """

    def update_step(self, gradient, variable, learning_rate):
        if self.amsgrad:
            return super().update_step(gradient, variable, learning_rate)
        dtype = variable.dtype
        step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].handle,
            v=self._velocities[index].handle, beta1_power=tf.pow(beta_1, step),
            beta2_power=tf.pow(beta_2, step), lr=tf.cast(learning_rate, dtype), beta1=beta_1,
            beta2=beta_2, epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(gradient, dtype))


def fuse_adam(optimizer):
    """A lesson's plain tf.keras.optimizers.Adam gets FusedAdam's update (its class only:
    its settings and variables stay); any other optimizer, or a subclass, is left alone."""
    if type(optimizer) is tf.keras.optimizers.Adam and not optimizer.amsgrad:
        optimizer.__class__ = FusedAdam
    return optimizer


# ---------------------------------------------------------------------- strided convolutions


def strided_conv_input_gradient(dY, W, input_size, stride):
    """The gradient of tf.nn.conv2d(X, W, stride, padding="SAME") with respect to X, for the
    gradient dY of its output: what backpropagation sends to the layer below.

    In one dimension, the convolution reads Y[o] = sum over k of X[s*o + k - p] * W[k]
    (stride s, p the padding before), so a value X[i] reached Y[o] through the taps k with
    s*o + k - p = i, and its gradient is dX[i] = sum of dY[o] * W[k] over those pairs.
    Which taps those are depends only on i's phase r = i mod s: for i = s*m + r they are
    k = r + p, r + p - s, r + p + s, ... (those in the filter), each meeting dY a fixed
    number of rows away from m. So every phase is an ordinary convolution (stride 1) of dY
    with some of W's taps, in reverse order. In two dimensions there are s*s phases: here
    they are the output channels of one convolution, interleaved into the full-size
    gradient as tf.nn.depth_to_space would ("sub-pixel convolution", Shi et al., 2016).

    TensorFlow's own gradient (Conv2DBackpropInput) computes the same sums; on a CPU its
    oneDNN kernels work on blocks of 8 or 16 channels, and with only 4 input channels (the
    layer below is small, as in lesson 3.0) most of each block is padding: this takes
    s*s*4 = 16 channels at once and is faster there (docs/speed.md).
    """
    K1, K2, C_in, C_out = W.shape
    plan_h, plan_w = _Phases(input_size[0], K1, stride), _Phases(input_size[1], K2, stride)
    # The filter: for every window position (th, tw) and phase (rh, rw), which tap of W
    # (or none: the last row of the table below, zeros)
    taps = np.full((plan_h.window, plan_w.window, stride, stride), K1 * K2, np.int32)
    for rh, taps_h in enumerate(plan_h.taps):
        for th, kh in taps_h:
            for rw, taps_w in enumerate(plan_w.taps):
                for tw, kw in taps_w:
                    taps[th, tw, rh, rw] = kh * K2 + kw
    table = tf.concat([tf.reshape(W, [K1 * K2, C_in, C_out]),
                       tf.zeros([1, C_in, C_out], W.dtype)], axis=0)
    F = tf.gather(table, taps)  # [th, tw, rh, rw, C_in, C_out]
    F = tf.reshape(tf.transpose(F, [0, 1, 5, 2, 3, 4]),  # C_out in, the phases x C_in out
                   [plan_h.window, plan_w.window, C_out, stride * stride * C_in])
    dY = tf.pad(dY, [[0, 0], [plan_h.before, plan_h.after], [plan_w.before, plan_w.after], [0, 0]])
    phases = tf.nn.conv2d(dY, F, strides=1, padding="VALID")  # [batch, H/s, W/s, s*s*C_in]
    # Interleaved: what tf.nn.depth_to_space(phases, stride) does, as a reshape and a
    # transpose (a oneDNN reordering here): for lesson 3.0's layers 1.5 to 3 times faster
    h, w = phases.shape[1], phases.shape[2]
    dX = tf.reshape(phases, [-1, h, w, stride, stride, C_in])  # [.., row phase, column phase, ..]
    dX = tf.transpose(dX, [0, 1, 3, 2, 4, 5])  # [batch, H/s, row phase, W/s, column phase, C_in]
    dX = tf.reshape(dX, [-1, h * stride, w * stride, C_in])  # [batch, H, W, C_in], or a row more
    return dX[:, :input_size[0], :input_size[1], :]


class _Phases:
    """strided_conv_input_gradient's plan along one dimension (size n, filter taps K,
    stride s, padding "SAME"): taps[r] lists, for the phase r, the pairs (window position,
    filter tap); `before` and `after` are the rows of zeros to add to dY on either side so
    that a "VALID" convolution with the window gives ceil(n/s) rows, as many as dY has."""

    def __init__(self, n, K, s):
        outputs = -(-n // s)  # ceil(n / s): the output size with "SAME" padding
        p = max((outputs - 1) * s + K - n, 0) // 2  # and its padding before
        offsets = []  # for each phase: (rows from row m of dY, tap of W)
        for r in range(s):
            q, first = divmod(r + p, s)
            offsets.append([(q - j, first + s * j) for j in range(-(-(K - first) // s))])
        lowest = min(o for phase in offsets for o, _ in phase)
        highest = max(o for phase in offsets for o, _ in phase)
        self.window = highest - lowest + 1
        self.taps = [[(o - lowest, k) for o, k in phase] for phase in offsets]
        self.before, self.after = -lowest, highest


def use_subpixel_gradient():
    """From now on, TensorFlow differentiates a strided tf.nn.conv2d with few input
    channels (fewer than 16) with strided_conv_input_gradient; any other convolution as
    before. (TensorFlow has no public way to replace an operation's gradient: this
    replaces the entry in its registry of gradients, kept since TensorFlow 1.) Only on a
    CPU, where it was measured: a GPU's cuDNN has its own kernels."""
    from tensorflow.python.framework import ops

    entry = getattr(ops, "_gradient_registry", None)
    entry = getattr(entry, "_registry", {}).get("Conv2D")
    if (entry is None or entry.get("type") is _conv2d_gradient
            or tf.config.list_physical_devices("GPU")):
        return
    global _tensorflows_conv2d_gradient  # (this module loaded again: the one it replaced)
    _tensorflows_conv2d_gradient = getattr(entry["type"], "tensorflows", entry["type"])
    _conv2d_gradient.tensorflows = _tensorflows_conv2d_gradient
    entry["type"] = _conv2d_gradient


_tensorflows_conv2d_gradient = None  # the gradient TensorFlow registered for Conv2D
# Measured on an AVX2 CPU (benchmarks/conv_gradient.py): 1.1 to 2.1 times faster with 4, 6
# and 8 input channels, about even with 12, slower with 16, 24 and 48.
FEW_CHANNELS = 16


def _conv2d_gradient(op, dY):
    """The gradients of a Conv2D operation's input and filter, for its output's gradient dY."""
    X, W = op.inputs
    strides = list(op.get_attr("strides"))
    if (op.get_attr("padding") != b"SAME" or op.get_attr("data_format") != b"NHWC"
            or list(op.get_attr("dilations")) != [1, 1, 1, 1] or strides[1] != strides[2]
            or strides[1] == 1 or W.shape[2] is None or W.shape[2] >= FEW_CHANNELS
            or not X.shape[1:3].is_fully_defined() or not W.shape.is_fully_defined()
            or not dY.shape[1:3].is_fully_defined()):
        return _tensorflows_conv2d_gradient(op, dY)
    dW = tf.raw_ops.Conv2DBackpropFilter(input=X, filter_sizes=tf.shape(W), out_backprop=dY,
                                         strides=strides, padding="SAME")
    return strided_conv_input_gradient(dY, W, X.shape[1:3], strides[1]), dW


# ---------------------------------------------------------------------- one-channel images


@tf.autograph.experimental.do_not_convert  # (autograph: see the top of the module)
def one_channel_conv2d(X, W):
    """tf.nn.conv2d(X, W, strides=1, padding="SAME") for images X [batch, H, W, 1] with
    one channel (the first layer reading MNIST's grey pixels), as a sum of shifted images:

        Y[b, i, j, :] = sum over the taps (u, v) of X[b, i + u - p, j + v - q, 0] * W[u, v, 0, :]

    (p, q the padding before; pixels outside the image are zeros). With one input channel
    and a few filters (4 in lesson 3.0) a convolution is little arithmetic on small
    vectors, which oneDNN's kernels, made for many channels, run at a few GFLOP/s. Written
    as K1 x K2 shifted copies of the image times one row of W each, XLA compiles the whole
    sum into one loop over the output: on a CPU, lesson 3.0's relu(conv + bias) is 1.5
    times faster forward, 1.2 times with its gradients (benchmarks/conv_first_layer.py);
    not so with more filters or bigger ones. Its gradient is TensorFlow's own.
    """
    return _shifted_images_conv2d(X, W)


@tf.custom_gradient
def _shifted_images_conv2d(X, W):
    def gradient(dY):
        dX = tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(X), filter=W, out_backprop=dY,
                                            strides=[1, 1, 1, 1], padding="SAME")
        dW = tf.raw_ops.Conv2DBackpropFilter(input=X, filter_sizes=tf.shape(W), out_backprop=dY,
                                             strides=[1, 1, 1, 1], padding="SAME")
        return dX, dW

    return _sum_of_shifted_images(X, W), gradient


@tf.function(jit_compile=True, autograph=False)  # one loop over the output: XLA fuses the sum
def _sum_of_shifted_images(X, W):
    K1, K2 = W.shape[0], W.shape[1]
    H, W_ = X.shape[1], X.shape[2]
    p, q = (K1 - 1) // 2, (K2 - 1) // 2  # "SAME": the padding before (and K - 1 - it after)
    padded = tf.pad(X, [[0, 0], [p, K1 - 1 - p], [q, K2 - 1 - q], [0, 0]])
    Y = tf.zeros([], X.dtype)
    for u in range(K1):
        for v in range(K2):
            Y += padded[:, u:u + H, v:v + W_, :] * W[u, v, 0]  # [batch, H, W, 1] x [filters]
    return Y


# Measured on an AVX2 CPU (benchmarks/conv_first_layer.py), relu(conv + bias) forward and
# backward, test chunk forward: 3x3 and 5x5 filters with 2 or 4 of them 1.1 to 1.7 times
# faster; 6x6 or 7x7 filters, or 6 filters and more, 0.3 to 0.9 (slower).
FEW_FILTERS, FEW_TAPS = 4, 25


@contextlib.contextmanager
def one_channel_convolutions():
    """While the lab traces its compiled calls inside this, a lesson's tf.nn.conv2d of
    one-channel images (stride 1, padding "SAME") with at most FEW_FILTERS filters of at
    most FEW_TAPS taps is one_channel_conv2d; any other convolution, and every call
    outside (the saved model's too), TensorFlow's own. Only on a CPU."""
    if tf.config.list_physical_devices("GPU"):
        yield
        return
    tensorflows = tf.nn.conv2d

    @tf.autograph.experimental.do_not_convert  # (autograph: see the top of the module)
    def conv2d(input, filters, strides, padding, data_format="NHWC", dilations=None,
               name=None):
        if (_one_channel(input, filters) and padding == "SAME" and data_format == "NHWC"
                and np.all(np.asarray(strides) == 1)
                and (dilations is None or np.all(np.asarray(dilations) == 1))):
            return one_channel_conv2d(input, filters)
        return tensorflows(input, filters, strides, padding, data_format, dilations, name)

    tf.nn.conv2d = conv2d
    try:
        yield
    finally:
        tf.nn.conv2d = tensorflows


def _one_channel(X, W):
    try:
        X, W = tf.TensorShape(X.shape), tf.TensorShape(W.shape)
    except (AttributeError, TypeError, ValueError):  # (not tensors or arrays)
        return False
    return (X.rank == 4 and X[1:].is_fully_defined() and X[3] == 1 and W.rank == 4
            and W.is_fully_defined() and W[2] == 1
            and W[3] <= FEW_FILTERS and W[0] * W[1] <= FEW_TAPS)


def speed_ups(optimizer=None):
    """What the lab's training loop changes for speed, not for the maths: Adam's update in
    one operation (fuse_adam, if an optimizer is given) and the strided convolutions'
    input gradient as one ordinary convolution (use_subpixel_gradient)."""
    if optimizer is not None:
        fuse_adam(optimizer)
    use_subpixel_gradient()


# ------------------------------------------------------------------ dropout under XLA

@contextlib.contextmanager
def seeded_dropout(generator):
    """While the lab traces its XLA-compiled calls inside this, a lesson's tf.nn.dropout
    draws its masks from `generator`, a tf.random.Generator the lab makes from the run's
    seed. The same maths: each value kept with probability 1 - rate and scaled by
    1 / (1 - rate). But these random numbers are computed from a state held in a variable,
    which XLA compiles with the rest of the step, and the same seed repeats them on every
    run: TensorFlow's own dropout, under XLA, draws from a counter of the process (a second
    run in one notebook kernel would get other masks)."""
    tensorflows = tf.nn.dropout

    @tf.autograph.experimental.do_not_convert  # (autograph: see the top of the module)
    def dropout(x, rate, noise_shape=None, seed=None, name=None):
        x = tf.convert_to_tensor(x)
        shape = tf.shape(x) if noise_shape is None else noise_shape
        keep = generator.uniform(shape, dtype=x.dtype) >= rate
        return tf.where(keep, x * (1 / (1 - rate)), tf.zeros_like(x))

    tf.nn.dropout = dropout
    try:
        yield
    finally:
        tf.nn.dropout = tensorflows


# ------------------------------------------------------------------ mixed precision

BFLOAT16_REWRITE = "auto_mixed_precision_onednn_bfloat16"  # grappler's name for it


@contextlib.contextmanager
def mixed_bfloat16():
    """Mixed precision on a CPU (--precision bf16). The compiled calls made inside run as
    TensorFlow's graph optimizer (grappler) rewrites them: the matrix products and
    convolutions, forward and backward, and what lies between them compute in bfloat16
    (float32's 8 exponent bits, but 8 significant bits instead of 24: half the memory,
    twice the arithmetic per instruction where the CPU has it); the variables, the loss,
    the softmax and the optimizer's update stay float32, with casts between (Keras's
    mixed_bfloat16 policy, for the lessons' own tf.Variables and functions). It is
    oneDNN's rewrite (TF_ENABLE_ONEDNN_OPTS=1). XLA-compiled calls keep float32, and so
    does the same call made outside (TensorFlow keeps both versions: the saved model, or a
    notebook's next run, is float32 again)."""
    options = tf.config.optimizer.get_experimental_options()
    tf.config.optimizer.set_experimental_options({BFLOAT16_REWRITE: True})
    try:
        yield
    finally:
        tf.config.optimizer.set_experimental_options(
            {BFLOAT16_REWRITE: options.get(BFLOAT16_REWRITE, False)})
