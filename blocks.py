"""blocks.py: two building blocks of the later lessons, written once with TensorFlow.

- ExponentialDecay: the learning rate of lessons 2.1 and after, fast at first, slow at the end.
- BatchNorm: batch normalisation of one layer (lessons 4.0 and after).
- FusedAdam: Keras's Adam, each variable's update in one operation; the lab's training
  loop gives it to the lessons' tf.keras.optimizers.Adam (fuse_adam), for speed only.

A lesson imports this module after lab.parse_args, which loads TensorFlow with the
lab's settings:

    args = lab.parse_args(__doc__, steps=10000)
    import tensorflow as tf
    import blocks
    decay = blocks.ExponentialDecay(0.003, decay_steps=2000, floor=0.0001)
    optimizer = tf.keras.optimizers.Adam(decay)
"""

import plumbing

tf = plumbing.load_tensorflow()  # already loaded by lab.parse_args: this only returns it


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
