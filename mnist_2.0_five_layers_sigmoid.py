r"""Lesson 2.0: five layers of sigmoid neurons. Max test accuracy about 97.9%.

One layer can only weigh pixels; a deeper network combines simple features into
complex ones. Five fully connected layers of 200, 100, 60, 30 and 10 neurons, sigmoid
activations, softmax at the end, trained with Adam instead of plain gradient descent.
Watch the slow start: the accuracy stalls for a few hundred steps before it takes off,
because sigmoids squash the signal and their gradients are small.

  . . . . . . . . . .    (input data, flattened pixels)      X  [batch, 784]
  \x/x\x/x\x/x\x/x\x/    -- fully connected layer (sigmoid)  W1 [784, 200]  B1 [200]
   . . . . . . . . .                                         Y1 [batch, 200]
    \x/x\x/x\x/x\x/      -- fully connected layer (sigmoid)  W2 [200, 100]  B2 [100]
     . . . . . . .                                           Y2 [batch, 100]
      \x/x\x/x\x/        -- fully connected layer (sigmoid)  W3 [100, 60]   B3 [60]
       . . . . .                                             Y3 [batch, 60]
        \x/x\x/          -- fully connected layer (sigmoid)  W4 [60, 30]    B4 [30]
         . . .                                               Y4 [batch, 30]
          \x/            -- fully connected layer (softmax)  W5 [30, 10]    B5 [10]
           .                                                 Y5 [batch, 10]
"""

import lab  # the shared machinery: flags, data, training loop, dashboard, reports

args = lab.parse_args(__doc__, steps=10000)  # the flags first: a typo is reported at once

import tensorflow as tf  # loaded by parse_args (it takes seconds), with the lab's settings

# Weights start as small random values: if they were all equal, all the neurons of a
# layer would compute the same thing and learn the same thing.
W1 = tf.Variable(tf.random.truncated_normal([784, 200], stddev=0.1))
B1 = tf.Variable(tf.zeros([200]))
W2 = tf.Variable(tf.random.truncated_normal([200, 100], stddev=0.1))
B2 = tf.Variable(tf.zeros([100]))
W3 = tf.Variable(tf.random.truncated_normal([100, 60], stddev=0.1))
B3 = tf.Variable(tf.zeros([60]))
W4 = tf.Variable(tf.random.truncated_normal([60, 30], stddev=0.1))
B4 = tf.Variable(tf.zeros([30]))
W5 = tf.Variable(tf.random.truncated_normal([30, 10], stddev=0.1))
B5 = tf.Variable(tf.zeros([10]))
variables = [W1, B1, W2, B2, W3, B3, W4, B4, W5, B5]


def model(X, training=False):
    """Images X [batch, 28, 28, 1] -> logits [batch, 10]."""
    XX = tf.reshape(X, [-1, 784])
    Y1 = tf.nn.sigmoid(tf.matmul(XX, W1) + B1)
    Y2 = tf.nn.sigmoid(tf.matmul(Y1, W2) + B2)
    Y3 = tf.nn.sigmoid(tf.matmul(Y2, W3) + B3)
    Y4 = tf.nn.sigmoid(tf.matmul(Y3, W4) + B4)
    lab.name_layers(Y1=Y1, Y2=Y2, Y3=Y3, Y4=Y4)  # the layers predict.py --explain shows
    return tf.matmul(Y4, W5) + B5  # softmax is applied in the loss


# Adam adapts the step size of every weight (TF1: tf.train.AdamOptimizer(0.003)).
optimizer = tf.keras.optimizers.Adam(learning_rate=0.003)


@tf.function
def train_step(X, Y_):
    with tf.GradientTape() as tape:
        Ylogits = model(X, training=True)
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=Y_, logits=Ylogits))
    gradients = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(gradients, variables))


if __name__ == "__main__":
    lab.train(args, model, train_step, optimizer)
