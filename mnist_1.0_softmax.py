r"""Lesson 1.0: one layer of 10 softmax neurons. Max test accuracy about 92%.

Each 28x28 image is flattened into 784 pixels. Each of the 10 neurons (one per digit)
computes a weighted sum of all the pixels plus a bias; softmax turns the 10 sums into
probabilities. Training nudges the weights and biases so that the probability of the
right digit goes up. Run with -h for the flags.

  . . . . . . . . . .    (input data, flattened pixels)      X [batch, 784]
  \x/x\x/x\x/x\x/x\x/    -- fully connected layer (softmax)  W [784, 10]   b [10]
    . . . . . . . .                                          Y [batch, 10]

The model:  Y = softmax(X . W + b)
   X: [batch, 784] images, one per line;  W: [784, 10] weights;  b: [10] biases
   +: b is added to every line (broadcasting);  softmax is applied line by line
"""

import lab  # the shared machinery: flags, data, training loop, dashboard, reports
import mnistdata  # the MNIST loader (TF1's input_data.read_data_sets)

args = lab.parse_args(__doc__, steps=2000)  # the flags first: a typo is reported at once

import tensorflow as tf  # loaded by parse_args (it takes seconds), with the lab's settings

# The model's parameters, what training learns. Zero is a fine start for a single layer.
# (TF1 created them the same way, then needed Session.run(tf.global_variables_initializer()).)
W = tf.Variable(tf.zeros([784, 10]))
b = tf.Variable(tf.zeros([10]))


def model(X, training=False):
    """Images X [batch, 28, 28, 1] -> logits [batch, 10], the scores before softmax.

    TF1 built this once as a graph fed through a placeholder; in TF2 it is a plain
    function, run eagerly or compiled with tf.function.
    """
    XX = tf.reshape(X, [-1, 784])  # flatten the images into lines of 784 pixels
    return tf.matmul(XX, W) + b


# The loss: cross-entropy between the one-hot labels Y_ and the softmax of the logits,
#   -sum(Y_ * log(softmax(Ylogits))), averaged over the batch.
# tf.nn.softmax_cross_entropy_with_logits computes it in one numerically stable step;
# the old lab's tf.log(softmax) gives NaN as soon as a probability rounds to 0.
#
# The optimizer: plain gradient descent (TF1: tf.train.GradientDescentOptimizer).
# The lab used 0.005 on the cross-entropy summed over 100 images; on the mean that is 0.5.
optimizer = tf.keras.optimizers.SGD(learning_rate=0.5)


@tf.function  # compiled into a graph: what Session.run(train_step, feed_dict) ran in TF1
def train_step(X, Y_):
    with tf.GradientTape() as tape:  # records the computation to differentiate it
        Ylogits = model(X, training=True)
        loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(labels=Y_, logits=Ylogits))
    gradients = tape.gradient(loss, [W, b])  # d(loss)/dW and d(loss)/db
    optimizer.apply_gradients(zip(gradients, [W, b]))  # W -= 0.5 * d(loss)/dW, same for b


def plain_training_loop():
    """The training loop, plainly: what lab.train runs, without its dashboard, its reports
    and its speed-ups (20 steps per compiled call, the images kept in TensorFlow).
    In TF1, train_step(...) was sess.run(train_step, feed_dict={X: batch_X, Y_: batch_Y})."""
    mnist = mnistdata.read_data_sets(args.data_dir, one_hot=True, reshape=False, validation_size=0,
                                     seed=args.seed)
    for step in range(args.steps + 1):
        if lab.test_due(step, args.steps):  # time to measure how well it reads the test digits?
            Ylogits = model(mnist.test.images)
            correct = tf.equal(tf.argmax(Ylogits, 1), tf.argmax(mnist.test.labels, 1))
            accuracy = tf.reduce_mean(tf.cast(correct, tf.float32))
            print(f"step {step}: test accuracy {float(accuracy):.4f}")
        if step < args.steps:
            batch_X, batch_Y = mnist.train.next_batch(args.batch_size)
            train_step(batch_X, batch_Y)


if __name__ == "__main__":
    lab.train(args, model, train_step, optimizer)  # plain_training_loop() with dashboard, reports
