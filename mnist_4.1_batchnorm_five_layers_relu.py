r"""Lesson 4.1: lesson 2.1 with batch normalisation. Max test accuracy about 98.5%.

Batch normalisation (blocks.BatchNorm, see lesson 4.0) on the five ReLU layers. A ReLU
does not care about the scale of its input, so only the offset is learnt (B, which
replaces the bias and starts at 0.1 as the biases of lesson 2.1 did). The learning rate
starts ten times higher than in lesson 2.1.
Watch panel 5: the largest activation of each neuron over the batch. Without batch
norm some neurons die (always 0) and others explode; with it they stay in one range.

  . . . . . . . . . .    (input data, flattened pixels)        X  [batch, 784]
  \x/x\x/x\x/x\x/x\x/    -- fully connected layer (BN+relu)    W1 [784, 200]  B1 [200]
   . . . . . . . . .                                           Y1 [batch, 200]
    \x/x\x/x\x/x\x/      -- fully connected layer (BN+relu)    W2 [200, 100]  B2 [100]
     . . . . . . .                                             Y2 [batch, 100]
      \x/x\x/x\x/        -- fully connected layer (BN+relu)    W3 [100, 60]   B3 [60]
       . . . . .                                               Y3 [batch, 60]
        \x/x\x/          -- fully connected layer (BN+relu)    W4 [60, 30]    B4 [30]
         . . .                                                 Y4 [batch, 30]
          \x/            -- fully connected layer (softmax)    W5 [30, 10]    B5 [10]
           .                                                   Y5 [batch, 10]
"""

import lab  # the shared machinery: flags, data, training loop, dashboard, reports

args = lab.parse_args(__doc__, steps=10000)  # the flags first: a typo is reported at once

import tensorflow as tf  # loaded by parse_args (it takes seconds), with the lab's settings
import blocks  # the lab's learning-rate decay and batch normalisation

W1 = tf.Variable(tf.random.truncated_normal([784, 200], stddev=0.1))
B1 = tf.Variable(tf.ones([200]) / 10)  # the batch-norm offset of layer 1
W2 = tf.Variable(tf.random.truncated_normal([200, 100], stddev=0.1))
B2 = tf.Variable(tf.ones([100]) / 10)
W3 = tf.Variable(tf.random.truncated_normal([100, 60], stddev=0.1))
B3 = tf.Variable(tf.ones([60]) / 10)
W4 = tf.Variable(tf.random.truncated_normal([60, 30], stddev=0.1))
B4 = tf.Variable(tf.ones([30]) / 10)
W5 = tf.Variable(tf.random.truncated_normal([30, 10], stddev=0.1))
B5 = tf.Variable(tf.ones([10]) / 10)  # a real bias: no batch norm on the last layer
variables = [W1, B1, W2, B2, W3, B3, W4, B4, W5, B5]

BN1, BN2, BN3, BN4 = (blocks.BatchNorm(size) for size in (200, 100, 60, 30))


def layers(X, training=False):
    """Images X [batch, 28, 28, 1] -> logits [batch, 10], and what the layers computed."""
    XX = tf.reshape(X, [-1, 784])
    Y1l = tf.matmul(XX, W1)
    Y1 = tf.nn.relu(BN1(Y1l, B1, training=training))
    Y2l = tf.matmul(Y1, W2)
    Y2 = tf.nn.relu(BN2(Y2l, B2, training=training))
    Y3l = tf.matmul(Y2, W3)
    Y3 = tf.nn.relu(BN3(Y3l, B3, training=training))
    Y4l = tf.matmul(Y3, W4)
    Y4 = tf.nn.relu(BN4(Y4l, B4, training=training))
    lab.name_layers(Y1=Y1, Y2=Y2, Y3=Y3, Y4=Y4)  # the layers predict.py --explain shows
    Ylogits = tf.matmul(Y4, W5) + B5
    return Ylogits, [Y1l, Y2l, Y3l, Y4l], [Y1, Y2, Y3, Y4]


def model(X, training=False):
    return layers(X, training)[0]


def distributions(X):
    """What dashboard panels 4 and 5 show the spread of, for a training batch: the weighted
    sums, and each neuron's largest activation over the batch."""
    _, sums, activations = layers(X)
    return {"weighted sums (before BN)": tf.concat([tf.reshape(Y, [-1]) for Y in sums], 0),
            "batch-max activations": tf.concat([tf.reduce_max(Y, axis=0) for Y in activations], 0)}


optimizer = tf.keras.optimizers.Adam(blocks.ExponentialDecay(0.03, decay_steps=1000, floor=0.0001))


@tf.function
def train_step(X, Y_):
    with tf.GradientTape() as tape:
        Ylogits = model(X, training=True)
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=Y_, logits=Ylogits))
    gradients = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(gradients, variables))


if __name__ == "__main__":
    lab.train(args, model, train_step, optimizer, distributions=distributions)
