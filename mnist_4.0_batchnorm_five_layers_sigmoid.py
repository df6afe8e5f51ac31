r"""Lesson 4.0: lesson 2.0 with batch normalisation. Max test accuracy about 98.3%.

A sigmoid only works near 0: far from it, it saturates at 0 or 1 and its gradient
vanishes. Batch normalisation (blocks.BatchNorm) re-centres and re-scales every layer's
weighted sums on each training batch before the sigmoid, so the sigmoids stay in their
useful range whatever the weights do, and training can take bigger steps
(learning rate 0.01 instead of 0.003). Each neuron learns its own offset (O, which
replaces the bias) and scale (S). At test time, moving averages of the training
batches' statistics replace them.
Watch panel 4: the weighted sums before batch norm drift and spread; panel 5: the
activations after it stay a clean spread between 0 and 1.

  . . . . . . . . . .    (input data, flattened pixels)        X  [batch, 784]
  \x/x\x/x\x/x\x/x\x/    -- fully connected layer (BN+sigmoid) W1 [784, 200]  O1, S1 [200]
   . . . . . . . . .                                           Y1 [batch, 200]
    \x/x\x/x\x/x\x/      -- fully connected layer (BN+sigmoid) W2 [200, 100]  O2, S2 [100]
     . . . . . . .                                             Y2 [batch, 100]
      \x/x\x/x\x/        -- fully connected layer (BN+sigmoid) W3 [100, 60]   O3, S3 [60]
       . . . . .                                               Y3 [batch, 60]
        \x/x\x/          -- fully connected layer (BN+sigmoid) W4 [60, 30]    O4, S4 [30]
         . . .                                                 Y4 [batch, 30]
          \x/            -- fully connected layer (softmax)    W5 [30, 10]    B5 [10]
           .                                                   Y5 [batch, 10]
"""

import lab  # the shared machinery: flags, data, training loop, dashboard, reports

args = lab.parse_args(__doc__, steps=10000)  # the flags first: a typo is reported at once

import tensorflow as tf  # loaded by parse_args (it takes seconds), with the lab's settings
import blocks  # the lab's learning-rate decay and batch normalisation

# Batch-normalised layers have no bias: an offset O and a scale S per neuron instead.
W1 = tf.Variable(tf.random.truncated_normal([784, 200], stddev=0.1))
O1, S1 = tf.Variable(tf.zeros([200])), tf.Variable(tf.ones([200]))
W2 = tf.Variable(tf.random.truncated_normal([200, 100], stddev=0.1))
O2, S2 = tf.Variable(tf.zeros([100])), tf.Variable(tf.ones([100]))
W3 = tf.Variable(tf.random.truncated_normal([100, 60], stddev=0.1))
O3, S3 = tf.Variable(tf.zeros([60])), tf.Variable(tf.ones([60]))
W4 = tf.Variable(tf.random.truncated_normal([60, 30], stddev=0.1))
O4, S4 = tf.Variable(tf.zeros([30])), tf.Variable(tf.ones([30]))
W5 = tf.Variable(tf.random.truncated_normal([30, 10], stddev=0.1))
B5 = tf.Variable(tf.zeros([10]))
variables = [W1, O1, S1, W2, O2, S2, W3, O3, S3, W4, O4, S4, W5, B5]

# The moving averages of each layer's batch mean and variance, for test time.
BN1, BN2, BN3, BN4 = (blocks.BatchNorm(size, decay=0.998) for size in (200, 100, 60, 30))


def layers(X, training=False):
    """Images X [batch, 28, 28, 1] -> logits [batch, 10], and what the layers computed."""
    XX = tf.reshape(X, [-1, 784])
    Y1l = tf.matmul(XX, W1)  # the weighted sums, before batch norm
    Y1 = tf.nn.sigmoid(BN1(Y1l, O1, S1, training=training))
    Y2l = tf.matmul(Y1, W2)
    Y2 = tf.nn.sigmoid(BN2(Y2l, O2, S2, training=training))
    Y3l = tf.matmul(Y2, W3)
    Y3 = tf.nn.sigmoid(BN3(Y3l, O3, S3, training=training))
    Y4l = tf.matmul(Y3, W4)
    Y4 = tf.nn.sigmoid(BN4(Y4l, O4, S4, training=training))
    lab.name_layers(Y1=Y1, Y2=Y2, Y3=Y3, Y4=Y4)  # the layers predict.py --explain shows
    Ylogits = tf.matmul(Y4, W5) + B5
    return Ylogits, [Y1l, Y2l, Y3l, Y4l], [Y1, Y2, Y3, Y4]


def model(X, training=False):
    return layers(X, training)[0]


def distributions(X):
    """What dashboard panels 4 and 5 show the spread of, for a training batch: the values
    before batch norm, and after it and the sigmoid."""
    _, sums, activations = layers(X)
    return {"weighted sums (before BN)": tf.concat([tf.reshape(Y, [-1]) for Y in sums], 0),
            "sigmoid activations (after BN)": tf.concat([tf.reshape(Y, [-1]) for Y in activations],
                                                        0)}


optimizer = tf.keras.optimizers.Adam(blocks.ExponentialDecay(0.01, decay_steps=2000, floor=0.0001))


@tf.function
def train_step(X, Y_):
    with tf.GradientTape() as tape:
        Ylogits = model(X, training=True)  # batch statistics; also updates the moving averages
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=Y_, logits=Ylogits))
    gradients = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(gradients, variables))


if __name__ == "__main__":
    lab.train(args, model, train_step, optimizer, distributions=distributions)
