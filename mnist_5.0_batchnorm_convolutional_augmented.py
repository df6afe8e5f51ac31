r"""Lesson 5.0: batch norm and data augmentation, the best single network so far: about 99.6%.

Lesson 4.2's network learns its 60,000 training digits almost by heart. The cure
is more data, and we can make it: every training batch is randomly rotated (up to
10 degrees), zoomed (up to 10%) and shifted (up to 2.5 pixels) before the network
sees it, so it never sees the same image twice and must learn what a digit looks
like, not where its pixels are. This runs inside the TensorFlow graph, on the whole
batch at once (one affine transformation per image, one interpolation); panel 3 of the
dashboard shows the augmented digits. With so much variety the network can train
longer (30 epochs), with more dropout (keep 0.5) on its dense layer.

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
"""

import math

import lab  # the shared machinery: flags, data, training loop, dashboard, reports

args = lab.parse_args(__doc__, steps=18000)  # the flags first: a typo is reported at once

import tensorflow as tf  # loaded by parse_args (it takes seconds), with the lab's settings
import blocks  # the lab's learning-rate decay and batch normalisation


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

BN1, BN2, BN3, BN4 = (blocks.BatchNorm(size) for size in (K, L, M, N))
DROP = 0.5


def layers(X, training=False):
    """Images X [batch, 28, 28, 1] -> logits [batch, 10], and the activations of the layers."""
    Y1l = tf.nn.conv2d(X, W1, strides=1, padding="SAME")  # 28x28: weighted sums, before batch norm
    Y1 = tf.nn.relu(BN1(Y1l, B1, training=training))
    Y2l = tf.nn.conv2d(Y1, W2, strides=2, padding="SAME")  # 14x14
    Y2 = tf.nn.relu(BN2(Y2l, B2, training=training))
    Y3l = tf.nn.conv2d(Y2, W3, strides=2, padding="SAME")  # 7x7
    Y3 = tf.nn.relu(BN3(Y3l, B3, training=training))
    YY = tf.reshape(Y3, [-1, 7 * 7 * M])
    Y4 = tf.nn.relu(BN4(tf.matmul(YY, W4), B4, training=training))
    lab.name_layers(Y1=Y1, Y2=Y2, Y3=Y3, Y4=Y4)  # the layers predict.py --explain shows
    Ylogits = tf.matmul(tf.nn.dropout(Y4, rate=DROP) if training else Y4, W5) + B5
    return Ylogits, [Y1, Y2, Y3], Y4


def model(X, training=False):
    return layers(X, training)[0]


def distributions(X):
    """What dashboard panels 4 and 5 show the spread of, for a training batch: each
    neuron's largest activation over the batch."""
    _, convolutional, dense = layers(X)
    return {"batch-max conv activations": tf.concat([tf.reshape(tf.reduce_max(Y, axis=0), [-1])
                                                     for Y in convolutional], 0),
            "batch-max dense activations": tf.reduce_max(dense, axis=0)}


optimizer = tf.keras.optimizers.Adam(blocks.ExponentialDecay(0.02, decay_steps=3000, floor=0.0001))


@tf.function
def train_step(X, Y_):
    with tf.GradientTape() as tape:
        Ylogits = model(X, training=True)
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=Y_, logits=Ylogits))
    gradients = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(gradients, variables))


if __name__ == "__main__":
    lab.train(args, model, train_step, optimizer, distributions=distributions, augment=augment)
