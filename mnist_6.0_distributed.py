r"""Lesson 6.0: lesson 3.0's network, trained data-parallel by several replicas: about 98.9%.

Data parallelism: several copies of the model ("replicas") share every training step.
The batch of 100 images is split between them, 50 each with two replicas; each replica
computes the gradients of the loss on its share; the replicas add their gradients up
(an "all-reduce"), and every copy takes the same step with the sum. The copies stay
identical, and they learn exactly what one copy would learn from the whole batch: the
curves of lesson 3.0. What changes is who does the arithmetic.

TensorFlow's engine for this is a tf.distribute strategy. Variables (and the
optimizer's) made inside strategy.scope() are "mirrored": one copy per replica, all
starting from the same values. strategy.run(replica_step) runs the step on every
replica; the optimizer's apply_gradients does the all-reduce.
- On one machine, tf.distribute.MirroredStrategy: one replica per device of this process
  (--replicas N splits the CPU into N devices; with GPUs, one replica per GPU). The
  all-reduce happens in memory, and nothing is opened to the network.
- On several machines, tf.distribute.MultiWorkerMirroredStrategy: every machine runs
  this script as one "worker" process, TF_CONFIG says where the others are, and the
  all-reduce goes over the network (README: "On several machines"). Worker 0, the chief,
  measures the test accuracy, shows the dashboard and writes the report and the model.

    python mnist_6.0_distributed.py                 # two replicas on this machine
    python mnist_6.0_distributed.py --replicas 1    # one replica: lesson 3.0, alone
    TF_CONFIG='{...}' python mnist_6.0_distributed.py   # one worker of a cluster (README)

What to watch: the curves of lesson 3.0, and the time. On one machine the replicas
share its cores: two are not faster than one. The gain comes with more devices (GPUs,
machines) or bigger models. Every 500 steps a checkpoint is saved (--checkpoint-dir):
after Ctrl-C, a crash or a worker that dies, the same command resumes from it
("resumed from step N") and ends as an uninterrupted run would.

  @ @ @ @ @ @ @ @ @ @    -- conv. layer 5x5x1=>4 stride 1      W1 [5, 5, 1, 4]    B1 [4]
  :::::::::::::::::::                                         Y1 [share, 28, 28, 4]
    @ @ @ @ @ @ @ @      -- conv. layer 5x5x4=>8 stride 2      W2 [5, 5, 4, 8]    B2 [8]
    :::::::::::::::                                           Y2 [share, 14, 14, 8]
      @ @ @ @ @ @        -- conv. layer 4x4x8=>12 stride 2     W3 [4, 4, 8, 12]   B3 [12]
      :::::::::::                                             Y3 [share, 7, 7, 12] => [share, 588]
      \x/x\x/x\x/        -- fully connected layer (relu)       W4 [588, 200]      B4 [200]
       . . . . .                                              Y4 [share, 200]
        \x/x\x/          -- fully connected layer (softmax)    W5 [200, 10]       B5 [10]
         . . .                                                Y  [share, 10]
      (share: each replica's part of the 100 images of a step)
"""

import lab  # the shared machinery: flags, data, training loop, dashboard, reports

args = lab.parse_args(__doc__, steps=10000, distributed=True)  # + --replicas, --checkpoint-dir...

import tensorflow as tf  # loaded by parse_args (it takes seconds), with the lab's settings
import blocks  # the lab's learning-rate decay and batch normalisation

if args.cluster:  # TF_CONFIG is set: this process is one worker of a cluster of machines
    strategy = tf.distribute.MultiWorkerMirroredStrategy()  # connects to the other workers
else:  # one machine: one replica per device of this process (args.devices: --replicas N)
    strategy = tf.distribute.MirroredStrategy(args.devices)

K, L, M, N = 4, 8, 12, 200  # filters in the three convolutional layers, neurons in the dense one

with strategy.scope():  # made here, variables are mirrored: one copy per replica, kept identical
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
    decay = blocks.ExponentialDecay(0.003, decay_steps=2000, floor=0.0001)
    optimizer = tf.keras.optimizers.Adam(decay)


def model(X, training=False):
    """Images X [batch, 28, 28, 1] -> logits [batch, 10]: lesson 3.0's network."""
    Y1 = tf.nn.relu(tf.nn.conv2d(X, W1, strides=1, padding="SAME") + B1)   # 28x28
    Y2 = tf.nn.relu(tf.nn.conv2d(Y1, W2, strides=2, padding="SAME") + B2)  # 14x14
    Y3 = tf.nn.relu(tf.nn.conv2d(Y2, W3, strides=2, padding="SAME") + B3)  # 7x7
    YY = tf.reshape(Y3, [-1, 7 * 7 * M])
    Y4 = tf.nn.relu(tf.matmul(YY, W4) + B4)
    lab.name_layers(Y1=Y1, Y2=Y2, Y3=Y3, Y4=Y4)  # the layers predict.py --explain shows
    return tf.matmul(Y4, W5) + B5


def replica_step(X, Y_):
    """One replica's part of a training step: its share of the batch X, Y_."""
    replica = tf.distribute.get_replica_context()  # which replica runs this, of how many
    share = args.batch_size // replica.num_replicas_in_sync
    first = replica.replica_id_in_sync_group * share  # replica 1 of 2: images 50 to 99
    X, Y_ = X[first:first + share], Y_[first:first + share]
    with tf.GradientTape() as tape:
        Ylogits = model(X, training=True)
        # Summed over this replica's images, divided by the WHOLE batch's size (not the
        # share's): the replicas' gradients then add up to the gradient of the mean over
        # the whole batch, as one copy would compute it.
        losses = tf.nn.softmax_cross_entropy_with_logits(labels=Y_, logits=Ylogits)
        loss = tf.nn.compute_average_loss(losses, global_batch_size=args.batch_size)
    gradients = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(gradients, variables))  # all-reduce (a sum over replicas), a step


@tf.function
def train_step(X, Y_):
    """X, Y_: the whole batch. Every replica runs replica_step at the same time."""
    strategy.run(replica_step, args=(X, Y_))


if __name__ == "__main__":
    lab.train(args, model, train_step, optimizer, strategy=strategy)
