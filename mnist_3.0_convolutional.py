r"""Lesson 3.0: a convolutional network. Max test accuracy about 98.9%.

Flattening the images threw away their shape. A convolutional layer slides small
filters (5x5 pixels here) over the image: the same few weights look for the same
feature everywhere. Three convolutional layers with 4, 8 and 12 filters, the last two
with stride 2 to halve the image size, then a fully connected layer of 200 neurons.
With fewer weights than lesson 2 it gets further: about 99%.

  @ @ @ @ @ @ @ @ @ @    -- conv. layer 5x5x1=>4 stride 1      W1 [5, 5, 1, 4]    B1 [4]
  :::::::::::::::::::                                         Y1 [batch, 28, 28, 4]
    @ @ @ @ @ @ @ @      -- conv. layer 5x5x4=>8 stride 2      W2 [5, 5, 4, 8]    B2 [8]
    :::::::::::::::                                           Y2 [batch, 14, 14, 8]
      @ @ @ @ @ @        -- conv. layer 4x4x8=>12 stride 2     W3 [4, 4, 8, 12]   B3 [12]
      :::::::::::                                             Y3 [batch, 7, 7, 12] => [batch, 588]
      \x/x\x/x\x/        -- fully connected layer (relu)       W4 [588, 200]      B4 [200]
       . . . . .                                              Y4 [batch, 200]
        \x/x\x/          -- fully connected layer (softmax)    W5 [200, 10]       B5 [10]
         . . .                                                Y  [batch, 10]
"""

import lab  # the shared machinery: flags, data, training loop, dashboard, reports

args = lab.parse_args(__doc__, steps=10000)  # the flags first: a typo is reported at once

import tensorflow as tf  # loaded by parse_args (it takes seconds), with the lab's settings
import blocks  # the lab's learning-rate decay and batch normalisation

K, L, M, N = 4, 8, 12, 200  # filters in the three convolutional layers, neurons in the dense one

# A convolutional layer's weights: [filter height, filter width, input channels, output channels]
W1 = tf.Variable(tf.random.truncated_normal([5, 5, 1, K], stddev=0.1))
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


def model(X, training=False):
    """Images X [batch, 28, 28, 1] -> logits [batch, 10]."""
    # padding="SAME": the output has the input's size divided by the stride
    Y1 = tf.nn.relu(tf.nn.conv2d(X, W1, strides=1, padding="SAME") + B1)   # 28x28
    Y2 = tf.nn.relu(tf.nn.conv2d(Y1, W2, strides=2, padding="SAME") + B2)  # 14x14
    Y3 = tf.nn.relu(tf.nn.conv2d(Y2, W3, strides=2, padding="SAME") + B3)  # 7x7
    YY = tf.reshape(Y3, [-1, 7 * 7 * M])  # flatten for the fully connected layer
    Y4 = tf.nn.relu(tf.matmul(YY, W4) + B4)
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
