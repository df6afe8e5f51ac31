r"""Lesson 2.1: five layers of ReLU neurons, learning-rate decay. Max test accuracy about 98.2%.

Two changes to lesson 2.0. ReLU (max(0, x)) replaces the sigmoid: its gradient does
not vanish, so the network starts learning at once. And the learning rate decays from
0.003 to 0.0001: at a constant 0.003 the curves are noisy, because the steps are too big
to settle into a minimum. Biases start at 0.1 so that every ReLU starts "on".
Watch the test loss: after a few epochs it starts rising again while the training loss
keeps falling. The network memorises the training images: overfitting (lesson 2.2).

  . . . . . . . . . .    (input data, flattened pixels)      X  [batch, 784]
  \x/x\x/x\x/x\x/x\x/    -- fully connected layer (relu)     W1 [784, 200]  B1 [200]
   . . . . . . . . .                                         Y1 [batch, 200]
    \x/x\x/x\x/x\x/      -- fully connected layer (relu)     W2 [200, 100]  B2 [100]
     . . . . . . .                                           Y2 [batch, 100]
      \x/x\x/x\x/        -- fully connected layer (relu)     W3 [100, 60]   B3 [60]
       . . . . .                                             Y3 [batch, 60]
        \x/x\x/          -- fully connected layer (relu)     W4 [60, 30]    B4 [30]
         . . .                                               Y4 [batch, 30]
          \x/            -- fully connected layer (softmax)  W5 [30, 10]    B5 [10]
           .                                                 Y5 [batch, 10]
"""

import lab  # the shared machinery: flags, data, training loop, dashboard, reports

args = lab.parse_args(__doc__, steps=10000)  # the flags first: a typo is reported at once

import tensorflow as tf  # loaded by parse_args (it takes seconds), with the lab's settings
import blocks  # the lab's learning-rate decay and batch normalisation

W1 = tf.Variable(tf.random.truncated_normal([784, 200], stddev=0.1))
B1 = tf.Variable(tf.ones([200]) / 10)  # 0.1: a small positive bias keeps the ReLUs alive
W2 = tf.Variable(tf.random.truncated_normal([200, 100], stddev=0.1))
B2 = tf.Variable(tf.ones([100]) / 10)
W3 = tf.Variable(tf.random.truncated_normal([100, 60], stddev=0.1))
B3 = tf.Variable(tf.ones([60]) / 10)
W4 = tf.Variable(tf.random.truncated_normal([60, 30], stddev=0.1))
B4 = tf.Variable(tf.ones([30]) / 10)
W5 = tf.Variable(tf.random.truncated_normal([30, 10], stddev=0.1))
B5 = tf.Variable(tf.ones([10]) / 10)
variables = [W1, B1, W2, B2, W3, B3, W4, B4, W5, B5]


def model(X, training=False):
    """Images X [batch, 28, 28, 1] -> logits [batch, 10]."""
    XX = tf.reshape(X, [-1, 784])
    Y1 = tf.nn.relu(tf.matmul(XX, W1) + B1)
    Y2 = tf.nn.relu(tf.matmul(Y1, W2) + B2)
    Y3 = tf.nn.relu(tf.matmul(Y2, W3) + B3)
    Y4 = tf.nn.relu(tf.matmul(Y3, W4) + B4)
    lab.name_layers(Y1=Y1, Y2=Y2, Y3=Y3, Y4=Y4)  # the layers predict.py --explain shows
    return tf.matmul(Y4, W5) + B5


# Learning rate at step s: 0.0001 + 0.003 * e^(-s/2000): 0.0031 at the start, 0.0012
# after 2000 steps, 0.0001 in the end. Keras evaluates it at every step.
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
