"""figures.py: accuracy axes whose labels are their positions, and that keep most of
the test curve on the panel."""
import math

import numpy as np
import pytest

import figures


@pytest.mark.parametrize("floor", sorted(figures.ACCURACY_TICKS))
def test_every_accuracy_tick_label_is_its_position(floor):
    """82.5 % must not read 82 %: a label rounded away from its line misleads the reader."""
    fig = figures.offscreen_figure((8, 4))
    ax = fig.add_subplot()
    figures.format_accuracy_axis(ax, floor)
    fig.canvas.draw()
    ticks = [t for t in ax.get_yticks() if floor - 1e-9 <= t <= 1 + 1e-9]
    labels = [label.get_text() for label in ax.get_yticklabels()]
    assert len(ticks) >= 4 and len(labels) == len(ax.get_yticks())
    for tick, label in zip(ax.get_yticks(), labels):
        if floor - 1e-9 <= tick <= 1 + 1e-9:
            assert float(label.rstrip("%")) == pytest.approx(tick * 100, abs=1e-9), (tick, label)


def test_accuracy_axis_keeps_most_of_the_test_curve_on_the_panel():
    """A short run shows its climb; a long one zooms in on its plateau."""
    def floor(points):
        return figures.accuracy_floor([i for i, _ in points], [a for _, a in points])

    # 3.1, 200 steps; its best alone would zoom on 95-100 %
    short = [(0, 0.1), (40, 0.8), (80, 0.92), (120, 0.95), (160, 0.965), (200, 0.975)]
    assert floor(short) == 0.9, "its climb stays on the panel"
    steps = [*range(0, 200, 20), *range(200, 10_001, 100)]
    long = [(i, 0.982 - 0.88 * math.exp(-i / 400)) for i in steps]  # 2.1, 10,000 steps
    assert floor(long) == 0.95
    for points in (short, long):
        after_0 = [a for i, a in points if i > 0]
        assert np.mean(np.array(after_0) >= floor(points)) >= figures.ACCURACY_KEEP
    assert floor([(0, 0.1)]) == floor([]) == 0.0, "nothing after step 0 yet: all of it"
    assert floor([(0, 0.1), (100, 0.985), (200, 0.9851)]) == 0.95, "the best not at the very bottom"
    assert floor([(0, 0.1), (20, float("nan")), (40, 0.9)]) == 0.8
