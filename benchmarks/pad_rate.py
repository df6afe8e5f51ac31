"""How often the drawing pad (predict.py --draw) can show what every layer sees, per second.

The pad asks the network about the drawing at most every DrawingPad.INTERVAL (0.1 s) while
the pen moves: 10 updates a second if each one (preprocessing the drawing, the model's
explain signature with its integrated gradients, redrawing the view) takes under 0.1 s.
This draws a stroke of --events pen motions, asking at every one (INTERVAL = 0), and times
each update, the figure's drawing included: in a real TkAgg window on a private Xvfb
display when there is one, else offscreen (Agg). The model: a lesson saved as lab.py saves
it, untrained (the speed does not depend on the weights' values).

    python benchmarks/pad_rate.py                 # lesson 4.2's model
    python benchmarks/pad_rate.py --lesson 3.0 --events 100
"""

import argparse
import os
import runpy
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _bench as B


def measure(lesson_number, events, window):
    import numpy as np

    import pictures
    import plumbing
    import predict
    import savedmodel

    tf = plumbing.load_tensorflow()
    script = B.lesson(lesson_number)
    sys.argv = [str(script), "--no-vis"]
    lesson = runpy.run_path(str(script), run_name="lesson")  # variables and model, no training
    traced = tf.function(lesson["model"]).get_concrete_function(tf.TensorSpec([None, 28, 28, 1]))
    first = pictures.first_layer(traced.trainable_variables)
    with tempfile.TemporaryDirectory(prefix="mnist-pad-") as tmp:
        savedmodel.save(lesson["model"], traced.variables, Path(tmp) / "model", filters=first)
        model = savedmodel.load(Path(tmp) / "model")
        import matplotlib

        matplotlib.use("TkAgg" if window else "Agg")
        import matplotlib.pyplot as plt
        from matplotlib.backend_bases import MouseEvent

        fig = plt.figure(figsize=(16, 9), dpi=72)
        pad = predict.DrawingPad(model, fig, explain=True)
        pad.INTERVAL = 0
        if window:
            fig.show()
        fig.canvas.draw()
        fig.canvas.flush_events()

        def event(kind, x, y):
            return MouseEvent(kind, fig.canvas, *pad.pad_ax.transData.transform((x, y)), button=1)

        pad.on_press(event("button_press_event", 80, 60))
        seconds = []
        for k in range(events):  # a zigzag across the pad
            x, y = 80 + 120 * np.sin(k / 7), 60 + 160 * k / events
            start = time.perf_counter()
            pad.on_motion(event("motion_notify_event", x, y))  # predicts, draws (blits)
            fig.canvas.flush_events()  # the window shows it
            seconds.append(time.perf_counter() - start)
        plt.close(fig)
    seconds = seconds[3:]  # the first calls trace and warm up
    median = statistics.median(seconds)
    return {"lesson": lesson_number, "window": "TkAgg on Xvfb" if window else "Agg (offscreen)",
            "events": len(seconds), "median_seconds": round(median, 4),
            "p90_seconds": round(sorted(seconds)[int(0.9 * len(seconds))], 4),
            "updates_per_second": round(1 / median, 1)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lesson", default="4.2",
                   help="the lesson whose model to explain (default: 4.2)")
    p.add_argument("--events", type=int, default=60, help="pen motions to time (default: 60)")
    p.add_argument("--offscreen", action="store_true", help="Agg only, no window")
    p.add_argument("--output", help="the JSON file (default: benchmarks/results/pad_rate.json)")
    args = p.parse_args(argv)
    machine = B.start()
    xvfb = None
    if not args.offscreen and B.which("Xvfb"):
        xvfb = B.Xvfb()
        os.environ["DISPLAY"] = xvfb.display
    try:
        result = measure(args.lesson, args.events, window=xvfb is not None)
    finally:
        if xvfb:
            xvfb.stop()
    print(f"lesson {result['lesson']}'s model, {result['window']}: "
          f"{result['median_seconds'] * 1000:.0f} ms "
          f"per update (median; 90% under {result['p90_seconds'] * 1000:.0f} ms): "
          f"{result['updates_per_second']} updates/s (target: 10)")
    B.save({"machine": machine, "result": result}, args.output, "pad_rate.json")


if __name__ == "__main__":
    main()
