r"""Lesson 5.1: the moving average of the weights, and a cosine schedule. About 99.6% (final).

Lesson 5.0's network and augmentation, trained 40 epochs, with two changes:

- A cosine schedule: the learning rate starts at 0.01 and falls along half a cosine to 0 at
  the last step (tf.keras.optimizers.schedules.CosineDecay): fast while far from a good
  solution, then ever gentler, with no step where it drops at once.
- The moving average of the weights (Polyak averaging). As long as the learning rate is
  not 0, the weights never settle: each step pulls them towards its own batch, so they
  jitter around the middle of a good region instead of sitting in it. An average of the
  last thousand or so steps' weights sits nearer that middle, where small changes to the
  digits change the answers least: it generalises better than any single step's weights.
  After every step each average moves a thousandth of the way to its weight (DECAY 0.999;
  faster at first, as batch norm's averages do). The network that is tested, shown and
  saved is the averaged one; training uses the live weights.

Watch panels 1 and 2: they show the averaged network, on the training batch and on the
test digits; its test curve is smoother than 5.0's. Panel 4 shows how far the live weights
jitter around their average, panel 5 the averages themselves. Compare with 5.0:
`python tensorflowvisu.py compare runs/mnist_5.0*.json runs/mnist_5.1*.json`.

  @ @ @ @ @ @ @ @ @ @    -- conv. layer 6x6x1=>24 stride 1 +BN  W1 [6, 6, 1, 24]   B1 [24]
  :::::::::::::::::::                                      Y1 [batch, 28, 28, 24]
    @ @ @ @ @ @ @ @      -- conv. layer 5x5x24=>48 stride 2 +BN W2 [5, 5, 24, 48]  B2 [48]
    :::::::::::::::                                        Y2 [batch, 14, 14, 48]
      @ @ @ @ @ @        -- conv. layer 4x4x48=>64 stride 2 +BN W3 [4, 4, 48, 64]  B3 [64]
      :::::::::::                                          Y3 [batch, 7, 7, 64] => [batch, 3136]
      \x/x\x/x\x/ D      -- fully connected layer (BN+relu+D)   W4 [3136, 200]     B4 [200]
       . . . . .                                           Y4 [batch, 200]
        \x/x\x/          -- fully connected layer (softmax)     W5 [200, 10]       B5 [10]
         . . .                                             Y  [batch, 10]
   (tested and saved: the same network with the averages of W1..W5 and B1..B5)
"""

import math

import lab  # the shared machinery: flags, data, training loop, dashboard, reports

args = lab.parse_args(__doc__, steps=24000)  # the flags first: a typo is reported at once

import tensorflow as tf  # loaded by parse_args (it takes seconds), with the lab's settings
import blocks  # the lab's batch normalisation


def augment(X):
    """A batch of images X [batch, 28, 28, 1], each randomly rotated, zoomed and shifted.

    For every pixel (x, y) of the new image, an affine transformation says where to
    read in the old one (bilinear interpolation between its four neighbours; outside
    the image is black):
        (x_old, y_old) = A . ((x, y) - centre) + centre - shift,
        A = [[cos a, -sin a], [sin a, cos a]] / zoom
    """
    n = tf.shape(X)[0]
    angle = tf.random.uniform([n], -10.0, 10.0) * math.pi / 180
    zoom = tf.random.uniform([n], 0.9, 1.1)
    shift_x, shift_y = tf.random.uniform([n], -2.5, 2.5), tf.random.uniform([n], -2.5, 2.5)
    c = 13.5  # the centre of a 28x28 image
    a0, a1 = tf.cos(angle) / zoom, -tf.sin(angle) / zoom
    b0, b1 = tf.sin(angle) / zoom, tf.cos(angle) / zoom
    a2 = c - a0 * c - a1 * c - shift_x
    b2 = c - b0 * c - b1 * c - shift_y
    zeros = tf.zeros([n])
    transforms = tf.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], axis=1)  # one row per image
    return tf.keras.ops.image.affine_transform(X, transforms, interpolation="bilinear",
                                               fill_mode="constant", fill_value=0.0)


K, L, M, N = 24, 48, 64, 200

W1 = tf.Variable(tf.random.truncated_normal([6, 6, 1, K], stddev=0.1))
B1 = tf.Variable(tf.ones([K]) / 10)  # batch-norm offsets
W2 = tf.Variable(tf.random.truncated_normal([5, 5, K, L], stddev=0.1))
B2 = tf.Variable(tf.ones([L]) / 10)
W3 = tf.Variable(tf.random.truncated_normal([4, 4, L, M], stddev=0.1))
B3 = tf.Variable(tf.ones([M]) / 10)
W4 = tf.Variable(tf.random.truncated_normal([7 * 7 * M, N], stddev=0.1))
B4 = tf.Variable(tf.ones([N]) / 10)
W5 = tf.Variable(tf.random.truncated_normal([N, 10], stddev=0.1))
B5 = tf.Variable(tf.ones([10]) / 10)
variables = [W1, B1, W2, B2, W3, B3, W4, B4, W5, B5]
# Their moving averages, what is tested and saved: not trained by the optimizer, but
# updated after every step (train_step). They start as copies of the weights.
averages = [tf.Variable(v, trainable=False) for v in variables]
DECAY = 0.999  # each average moves a thousandth of the way to its weight at every step

BN1, BN2, BN3, BN4 = (blocks.BatchNorm(size) for size in (K, L, M, N))
DROP = 0.5


def network(X, weights, training):
    """Images X [batch, 28, 28, 1] -> logits [batch, 10], with these weights and biases."""
    W1, B1, W2, B2, W3, B3, W4, B4, W5, B5 = weights
    Y1l = tf.nn.conv2d(X, W1, strides=1, padding="SAME")  # 28x28: weighted sums, before batch norm
    Y1 = tf.nn.relu(BN1(Y1l, B1, training=training))
    Y2l = tf.nn.conv2d(Y1, W2, strides=2, padding="SAME")  # 14x14
    Y2 = tf.nn.relu(BN2(Y2l, B2, training=training))
    Y3l = tf.nn.conv2d(Y2, W3, strides=2, padding="SAME")  # 7x7
    Y3 = tf.nn.relu(BN3(Y3l, B3, training=training))
    YY = tf.reshape(Y3, [-1, 7 * 7 * M])
    Y4 = tf.nn.relu(BN4(tf.matmul(YY, W4), B4, training=training))
    lab.name_layers(Y1=Y1, Y2=Y2, Y3=Y3, Y4=Y4)  # the layers predict.py --explain shows
    return tf.matmul(tf.nn.dropout(Y4, rate=DROP) if training else Y4, W5) + B5


def model(X, training=False):
    """Training: the live weights. Testing (and the saved model): their moving averages."""
    return network(X, variables if training else averages, training)


def distributions(X):
    """What dashboard panels 4 and 5 show the spread of: how far each weight is from its
    average, and the averages."""
    return {"live weights - their averages": tf.concat([tf.reshape(v - a, [-1])
                                                        for v, a in zip(variables, averages)], 0),
            "averaged weights and biases": tf.concat([tf.reshape(a, [-1]) for a in averages], 0)}


schedule = tf.keras.optimizers.schedules.CosineDecay(0.01, decay_steps=args.steps)  # 0.01 -> 0
optimizer = tf.keras.optimizers.Adam(schedule)


@tf.function
def train_step(X, Y_):
    with tf.GradientTape() as tape:
        Ylogits = model(X, training=True)
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=Y_, logits=Ylogits))
    gradients = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(gradients, variables))
    # The moving averages, after the step. At first they forget faster (decay 0.1, 0.18,
    # 0.25... after 0, 1, 2 steps), so that the first weights, random, do not linger.
    n = tf.cast(optimizer.iterations, tf.float32)
    decay = tf.minimum(DECAY, (1 + n) / (10 + n))
    for average, v in zip(averages, variables):
        average.assign(decay * average + (1 - decay) * v)


if __name__ == "__main__":
    lab.train(args, model, train_step, optimizer, distributions=distributions, augment=augment)
