r"""Lesson 2.2: five ReLU layers with dropout. Max test accuracy about 98.2%.

Lesson 2.1 overfits: its test loss climbs while its training loss falls. Dropout fights
this: during training, each step switches off a random 25% of the neurons of every
hidden layer (keep probability 0.75) and scales the rest up by 1/0.75, so no neuron can
rely on another one being there. At test time all neurons work (training=False).
Watch the test loss stay flat instead of rising; the training curves get noisier.

  . . . . . . . . . .    (input data, flattened pixels)     X  [batch, 784]
  \x/x\x/x\x/x\x/x\x/ D  -- fully connected layer (relu+D)  W1 [784, 200]  B1 [200]
   . . . . . . . . .                                        Y1 [batch, 200]
    \x/x\x/x\x/x\x/ D    -- fully connected layer (relu+D)  W2 [200, 100]  B2 [100]
     . . . . . . .                                          Y2 [batch, 100]
      \x/x\x/x\x/ D      -- fully connected layer (relu+D)  W3 [100, 60]   B3 [60]
       . . . . .                                            Y3 [batch, 60]
        \x/x\x/ D        -- fully connected layer (relu+D)  W4 [60, 30]    B4 [30]
         . . .                                              Y4 [batch, 30]
          \x/            -- fully connected layer (softmax) W5 [30, 10]    B5 [10]
           .                                                Y5 [batch, 10]
"""

import lab  # the shared machinery: flags, data, training loop, dashboard, reports

args = lab.parse_args(__doc__, steps=10000)  # the flags first: a typo is reported at once

import tensorflow as tf  # loaded by parse_args (it takes seconds), with the lab's settings
import blocks  # the lab's learning-rate decay and batch normalisation

W1 = tf.Variable(tf.random.truncated_normal([784, 200], stddev=0.1))
B1 = tf.Variable(tf.ones([200]) / 10)
W2 = tf.Variable(tf.random.truncated_normal([200, 100], stddev=0.1))
B2 = tf.Variable(tf.ones([100]) / 10)
W3 = tf.Variable(tf.random.truncated_normal([100, 60], stddev=0.1))
B3 = tf.Variable(tf.ones([60]) / 10)
W4 = tf.Variable(tf.random.truncated_normal([60, 30], stddev=0.1))
B4 = tf.Variable(tf.ones([30]) / 10)
W5 = tf.Variable(tf.random.truncated_normal([30, 10], stddev=0.1))
B5 = tf.Variable(tf.ones([10]) / 10)
variables = [W1, B1, W2, B2, W3, B3, W4, B4, W5, B5]

DROP = 0.25  # the lab's pkeep = 0.75


def model(X, training=False):
    """Images X [batch, 28, 28, 1] -> logits [batch, 10]; dropout only when training."""

    def dropout(Y):  # TF1 fed pkeep=0.75 when training and pkeep=1.0 when testing
        return tf.nn.dropout(Y, rate=DROP) if training else Y

    XX = tf.reshape(X, [-1, 784])
    Y1 = dropout(tf.nn.relu(tf.matmul(XX, W1) + B1))
    Y2 = dropout(tf.nn.relu(tf.matmul(Y1, W2) + B2))
    Y3 = dropout(tf.nn.relu(tf.matmul(Y2, W3) + B3))
    Y4 = dropout(tf.nn.relu(tf.matmul(Y3, W4) + B4))
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
