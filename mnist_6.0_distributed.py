r"""Lesson 6.0: lesson 3.0's network, trained on several workers at once. Max test accuracy about 98.9%.

Data parallelism: every worker (a process, on this machine or on another) holds a
whole copy of the model. The batch of each training step (100 images) is split
between the workers, 50 each with two; each worker computes the gradients of the
loss on its share, the workers add their gradients up over the network (an
"all-reduce"), and every copy takes the same step with the sum. The copies stay
identical, and they learn exactly what one process would learn from the whole
batch: the same curves as lesson 3.0. What changes is who does the arithmetic.

TensorFlow's engine for this is tf.distribute.MultiWorkerMirroredStrategy. Variables
(and the optimizer's) made inside strategy.scope() are "mirrored": a copy on every
worker, all starting from worker 0's values. strategy.run(replica_step) runs the
step on each worker, on its own share of the batch; the optimizer's apply_gradients
does the all-reduce. Worker 0, the chief, also measures the test accuracy, shows the
dashboard, writes the report, the history and the model.

    python mnist_6.0_distributed.py --workers 2   # two workers on this machine
    python mnist_6.0_distributed.py               # one worker: the same lesson, alone
    TF_CONFIG='{...}' python mnist_6.0_distributed.py   # one worker of a cluster (README)

What to watch: the curves of lesson 3.0, and the time. On one machine the workers
share its cores and add the traffic of the all-reduce: two are slower than one. The
gain comes with more machines (or with bigger models than this one, whose steps are
short next to the cost of talking). Every 500 steps the workers save a checkpoint
(--checkpoint-dir): if one dies or freezes, the run stops with one line that says
which, and the same command resumes from the last checkpoint ("resumed from step N").

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
      (batch: each worker's share of the 100 images of a step)
"""

import lab  # the shared machinery: flags, data, training loop, dashboard, reports; cluster.py starts the workers

args = lab.parse_args(__doc__, steps=10000, distributed=True)  # also --workers, --checkpoint-dir...

import tensorflow as tf  # loaded by parse_args (it takes seconds), with the lab's settings

# The cluster: this process's place in it comes from TF_CONFIG (lab sets it for --workers;
# without TF_CONFIG, a cluster of one). Creating the strategy connects the workers.
strategy = tf.distribute.MultiWorkerMirroredStrategy()

K, L, M, N = 4, 8, 12, 200  # filters in the three convolutional layers, neurons in the dense one

with strategy.scope():  # made here, the variables are mirrored: one copy per worker, kept identical
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
    # The optimizer too: its moving averages are variables, mirrored like the weights.
    optimizer = tf.keras.optimizers.Adam(lab.ExponentialDecay(0.003, decay_steps=2000, floor=0.0001))


def model(X, training=False):
    """Images X [batch, 28, 28, 1] -> logits [batch, 10]: lesson 3.0's network."""
    Y1 = tf.nn.relu(tf.nn.conv2d(X, W1, strides=1, padding="SAME") + B1)   # 28x28
    Y2 = tf.nn.relu(tf.nn.conv2d(Y1, W2, strides=2, padding="SAME") + B2)  # 14x14
    Y3 = tf.nn.relu(tf.nn.conv2d(Y2, W3, strides=2, padding="SAME") + B3)  # 7x7
    YY = tf.reshape(Y3, [-1, 7 * 7 * M])
    Y4 = tf.nn.relu(tf.matmul(YY, W4) + B4)
    return tf.matmul(Y4, W5) + B5


def replica_step(X, Y_):
    """One training step on one worker, on its share of the batch."""
    with tf.GradientTape() as tape:
        Ylogits = model(X, training=True)
        # Summed over this worker's images, divided by the WHOLE batch's size (not the
        # share's): the workers' gradients are then added up into the gradient of the
        # mean over the whole batch, as one process would compute it.
        loss = tf.nn.compute_average_loss(tf.nn.softmax_cross_entropy_with_logits(labels=Y_, logits=Ylogits),
                                          global_batch_size=args.batch_size)
    gradients = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(gradients, variables))  # all-reduce (add up every worker's gradients), then step


@tf.function
def train_step(X, Y_):
    """X, Y_: this worker's share of the batch. Every worker runs this at the same time."""
    strategy.run(replica_step, args=(X, Y_))


if __name__ == "__main__":
    lab.train(args, model, train_step, optimizer, strategy=strategy)
