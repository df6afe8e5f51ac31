r"""Lesson 3.1: bigger convolutions, dropout on the dense layer. Max test accuracy about 99.3%.

Lesson 3.0 overfits a little: its test loss creeps up at the end. Here the network gets
more filters (6, 12 and 24: more features to look for), and dropout (keep 0.75) on the
fully connected layer, where most of the weights are. Convolutional layers have few
weights each and rarely need dropout.

  @ @ @ @ @ @ @ @ @ @    -- conv. layer 6x6x1=>6 stride 1      W1 [6, 6, 1, 6]    B1 [6]
  :::::::::::::::::::                                         Y1 [batch, 28, 28, 6]
    @ @ @ @ @ @ @ @      -- conv. layer 5x5x6=>12 stride 2     W2 [5, 5, 6, 12]   B2 [12]
    :::::::::::::::                                           Y2 [batch, 14, 14, 12]
      @ @ @ @ @ @        -- conv. layer 4x4x12=>24 stride 2    W3 [4, 4, 12, 24]  B3 [24]
      :::::::::::                                             Y3 [batch, 7, 7, 24] => [batch, 1176]
      \x/x\x/x\x/ (D)    -- fully connected layer (relu+D)     W4 [1176, 200]     B4 [200]
       . . . . .                                              Y4 [batch, 200]
        \x/x\x/          -- fully connected layer (softmax)    W5 [200, 10]       B5 [10]
         . . .                                                Y  [batch, 10]
"""

import lab  # the shared machinery: flags, data, training loop, dashboard, reports

args = lab.parse_args(__doc__, steps=10000)  # the flags first: a typo is reported at once

import tensorflow as tf  # loaded by parse_args (it takes seconds), with the lab's settings
import blocks  # the lab's learning-rate decay and batch normalisation

K, L, M, N = 6, 12, 24, 200

W1 = tf.Variable(tf.random.truncated_normal([6, 6, 1, K], stddev=0.1))
B1 = tf.Variable(tf.ones([K]) / 10)
W2 = tf.Variable(tf.random.truncated_normal([5, 5, K, L], stddev=0.1))
B2 = tf.Variable(tf.ones([L]) / 10)
W3 = tf.Variable(tf.random.truncated_normal([4, 4, L, M], stddev=0.1))
B3 = tf.Variable(tf.ones([M]) / 10)
W4 = tf.Variable(tf.random.truncated_normal([7 * 7 * M, N], stddev=0.1))
B4 = tf.Variable(tf.ones([N]) / 10)
W5 = tf.Variable(tf.random.truncated_normal([N, 10], stddev=0.1))
B5 = tf.Variable(tf.ones([10]) / 10)
variables = [W1, B1, W2, B2, W3, B3, W4, B4, W5, B5]

DROP = 0.25  # the lab's pkeep = 0.75


def model(X, training=False):
    """Images X [batch, 28, 28, 1] -> logits [batch, 10]; dropout only when training."""
    Y1 = tf.nn.relu(tf.nn.conv2d(X, W1, strides=1, padding="SAME") + B1)   # 28x28
    Y2 = tf.nn.relu(tf.nn.conv2d(Y1, W2, strides=2, padding="SAME") + B2)  # 14x14
    Y3 = tf.nn.relu(tf.nn.conv2d(Y2, W3, strides=2, padding="SAME") + B3)  # 7x7
    YY = tf.reshape(Y3, [-1, 7 * 7 * M])
    Y4 = tf.nn.relu(tf.matmul(YY, W4) + B4)
    if training:
        Y4 = tf.nn.dropout(Y4, rate=DROP)
    lab.name_layers(Y1=Y1, Y2=Y2, Y3=Y3, Y4=Y4)  # the layers predict.py --explain shows
    return tf.matmul(Y4, W5) + B5


optimizer = tf.keras.optimizers.Adam(blocks.ExponentialDecay(0.003, decay_steps=2000, floor=0.0001))


@tf.function
def train_step(X, Y_):
    with tf.GradientTape() as tape:
        Ylogits = model(X, training=True)
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=Y_, logits=Ylogits))
    gradients = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(gradients, variables))


if __name__ == "__main__":
    lab.train(args, model, train_step, optimizer)
