"""What one dashboard picture under a notebook cell costs, and what it used to.

Under a notebook cell the dashboard is a PNG picture replaced in place (screens.NotebookPicture).
How often a fresh one can come depends on what one costs: the lab spends at most 6% of the
time drawing (NotebookPicture.BUDGET) and shows one at least every 2 s. Measured here on a
dashboard fed as lesson 2.1's 3,000 steps feed it (real MNIST digits in panels 3 and 6, the
curves up to step 2,000), each way of making the next picture after a new measurement:

  savefig PNG, window size   what the dashboard sent before (the whole figure drawn again,
                             1,152 px wide, zlib level 6)
  savefig PNG, notebook size the same at the notebook's 928 px
  blit, curves only          what the lab sends between digit refreshes: the moving
                             artists over the kept background, then PNG at zlib level 1
  blit, curves and digits    the same with new digits in panels 3 and 6 (every 5 s)

CPU time per picture (median of --repeats; less sensitive than wall time to other processes
on a shared machine) and the picture's bytes, with the CPU and the load.

    python benchmarks/notebook_picture_cost.py [--repeats 15] [--json FILE]

Writes benchmarks/results/notebook_picture_cost.json (or --json FILE).
"""
import argparse
import statistics
import sys
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench as B  # noqa: E402  (puts the repository on sys.path)


def fake_ipython():
    """Enough of IPython.display for NotebookPicture outside a kernel: the pictures are kept."""
    sent = []

    class Handle:
        def update(self, picture):
            sent.append(picture)

    def display(picture, display_id=False):
        sent.append(picture)
        return Handle()

    class Image:
        def __init__(self, data, format):
            self.data = data

    ipython = types.ModuleType("IPython")
    ipython.version_info = (9, 0)
    ipython.display = types.ModuleType("IPython.display")
    ipython.display.display, ipython.display.Image = display, Image
    sys.modules["IPython"], sys.modules["IPython.display"] = ipython, ipython.display
    return sent


def cpu_ms(function, repeats, before):
    """Median CPU milliseconds of function() (before() runs first each time, not timed),
    and function's last result."""
    times = []
    for _ in range(repeats):
        before()
        start = time.process_time()
        result = function()
        times.append(time.process_time() - start)
    return 1000 * statistics.median(times), result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--json", metavar="FILE", help="where to write the figures (default: "
                        "benchmarks/results/notebook_picture_cost.json)")
    args = parser.parse_args(argv)
    machine = B.start()
    import matplotlib

    matplotlib.use("Agg")
    sent = fake_ipython()
    import figures
    import mnistdata
    import plumbing
    from tensorflowvisu import Dashboard

    plumbing.in_notebook = lambda: True  # (so the dashboard opens a NotebookPicture here)
    mnist = mnistdata.read_data_sets(B.data_dir(), one_hot=False, reshape=False,
                                     validation_size=0, seed=0)
    rng = np.random.default_rng(0)
    board = Dashboard("mnist_2.1_five_layers_relu", 3000, live=True)
    step = [0]

    def measurement(test=True):
        """The next training measurement (new digits in panel 3) and a test one."""
        step[0] += 20 if step[0] < 2000 else 1  # (past 2,000: the axes keep their ranges)
        accuracy = 0.98 - 0.88 * np.exp(-step[0] / 300)
        images, labels = mnist.train.next_batch(100)
        predictions = np.where(rng.random(100) < accuracy, labels, (labels + 1) % 10)
        board.train(step[0], accuracy, 2.3 * (1 - accuracy), 0.003, images=images,
                    labels=labels, predictions=predictions)
        if test:
            wrong = rng.random(10000) > accuracy
            board.test(step[0], accuracy, 2.3 * (1 - accuracy), images=mnist.test.images,
                       labels=mnist.test.labels,
                       predictions=np.where(wrong, (mnist.test.labels + 3) % 10, mnist.test.labels),
                       distributions=[rng.normal(0, 0.1, 200_000), rng.normal(0, 0.1, 300)])

    while step[0] < 2000:
        measurement(test=step[0] % 100 == 0)
    fig, panels, screen = board.figure, board.panels, board.screen

    def blit(digits):
        panels.update(step[0], 3000, digits=digits)
        panels.blitter.draw()
        return screen.picture().data

    rows = []
    for label, function in (
            ("savefig PNG, window size (before)", lambda: figures.png_bytes(fig, dpi=72)),
            ("savefig PNG, notebook size", lambda: figures.png_bytes(fig, dpi=fig.dpi)),
            ("blit, curves only (now)", lambda: blit(False)),
            ("blit, curves and digits (now, every 5 s)", lambda: blit(True))):
        blit(True)  # (the background kept, as between two pictures of a run)
        ms, data = cpu_ms(function, args.repeats, measurement)
        rows.append({"picture": label, "cpu_ms": round(ms, 1), "bytes": len(data)})
    width, height = fig.canvas.get_width_height()
    assert sent, "the pictures went to the notebook"
    cpu = machine["cpu"]
    print(f"CPU: {cpu['model']}, {cpu['cores']} cores, {' '.join(cpu['flags'])}; "
          f"load average {machine['load_average_at_start'][0]:.2f} at the start")
    print(f"lesson 2.1's dashboard, {width} x {height} px under the cell; CPU ms per picture "
          f"(median of {args.repeats}), bytes:")
    for row in rows:
        print(f"  {row['picture']:44} {row['cpu_ms']:7.1f} ms {row['bytes']:>10,} bytes")
    B.save({"machine": machine, "width": width, "height": height, "pictures": rows},
           args.json, "notebook_picture_cost.json")

if __name__ == "__main__":
    main()
