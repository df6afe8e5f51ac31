r"""Lesson 4.2: a bigger convolutional network, batch-normalised. Test accuracy about 99.5%.

Lesson 3.1 with many more filters (24, 48 and 64) and batch normalisation
(blocks.BatchNorm, see lesson 4.0) after every convolutional and dense layer, channel by
channel for the convolutions. The offsets B replace the biases. Batch norm lets the
learning rate start at 0.02; dropout (keep 0.75) stays on the dense layer.
Watch panels 4 and 5: each neuron's largest activation over the batch, for the
convolutional and for the dense layer: batch norm keeps them in one tidy range.

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

import lab  # the shared machinery: flags, data, training loop, dashboard, reports

args = lab.parse_args(__doc__, steps=10000)  # the flags first: a typo is reported at once

import tensorflow as tf  # loaded by parse_args (it takes seconds), with the lab's settings
import blocks  # the lab's learning-rate decay and batch normalisation

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
DROP = 0.25


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


optimizer = tf.keras.optimizers.Adam(blocks.ExponentialDecay(0.02, decay_steps=1600, floor=0.0001))


@tf.function
def train_step(X, Y_):
    with tf.GradientTape() as tape:
        Ylogits = model(X, training=True)
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=Y_, logits=Ylogits))
    gradients = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(gradients, variables))


if __name__ == "__main__":
    lab.train(args, model, train_step, optimizer, distributions=distributions)
