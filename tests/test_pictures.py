"""pictures.py: digits and other pictures as grids, labelled; feature maps as mosaics."""
import numpy as np
import pytest

import pictures
from helpers import fake_digits


def test_digit_grid_puts_misrecognised_first_on_red_with_label_pixels():
    labels = np.array([0, 1, 2, 3, 4, 5])
    predictions = np.array([0, 1, 7, 3, 9, 5])  # digits 2 and 4 are misrecognised
    images = fake_digits(labels)
    grid = pictures.digit_grid(images, labels, predictions, count=10, lines=2)
    assert grid.shape == (56, 140, 3) and grid.dtype == np.float32
    assert grid.min() >= 0 and grid.max() <= 1
    tiles = grid.reshape(2, 28, 5, 28, 3).swapaxes(1, 2).reshape(10, 28, 28, 3)

    # order: the misrecognised 2 and 4, then 0, 1, 3, 5, then empty tiles
    for tile, index in zip(tiles[:6], [2, 4, 0, 1, 3, 5]):
        ink = images[index] > 0.5
        assert np.all(tile[:16][ink[:16]] < 0.1), "the digit's ink is black"
    red, white = pictures.ERROR_BACKGROUND, pictures.BACKGROUND
    assert np.allclose(tiles[0, 0, 14], red) and np.allclose(tiles[1, 0, 14], red)
    assert np.allclose(tiles[2, 0, 14], white)
    assert np.allclose(tiles[6:], 1.0), "missing digits leave white tiles"

    # labels: the correct digit (black on white) bottom left,
    # the prediction (white on dark red) bottom right
    for tile, correct, predicted in ((tiles[0], 2, 7), (tiles[1], 4, 9)):
        left, right = tile[17:27, 1:7], tile[17:27, 21:27]
        assert (np.allclose(left[pictures.GLYPHS[correct]], 0)
                and np.allclose(left[~pictures.GLYPHS[correct]], pictures.LABEL_BOX))
        assert (np.allclose(right[pictures.GLYPHS[predicted]], 1)
                and np.allclose(right[~pictures.GLYPHS[predicted]], pictures.PREDICTION_BOX))
    assert not np.allclose(tiles[2, 17:27, 21:27], pictures.PREDICTION_BOX[None, None]), \
        "no labels on recognised digits"

    # the same picture from [N, 784] and [N, 28, 28, 1] images, and from uint8 ones
    assert np.array_equal(grid, pictures.digit_grid(images.reshape(6, 784), labels, predictions, 10, 2))
    assert np.array_equal(grid, pictures.digit_grid(images[..., None], labels, predictions, 10, 2))
    uint8_images = (images * 255).astype(np.uint8)
    assert np.allclose(grid, pictures.digit_grid(uint8_images, labels, predictions, 10, 2), atol=0.01)


def test_digit_grid_edge_cases():
    assert np.all(pictures.digit_grid(np.zeros((0, 28, 28)), [], [], count=100, lines=10) == 1)
    with pytest.raises(ValueError):
        pictures.digit_grid(np.zeros((3, 28, 28)), [1, 2, 3], [1, 2, 3], count=100, lines=7)
    with pytest.raises(ValueError):
        pictures.digit_grid(np.zeros((3, 28, 28)), [1, 2], [1, 2, 3])


def test_colour_pictures_show_as_they_are_and_misread_ones_in_a_red_frame():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (30, 32, 32, 3), dtype=np.uint8)
    labels = np.arange(30) % 10
    predictions = np.where(np.arange(30) < 4, (labels + 1) % 10, labels)  # 4 misread
    grid = pictures.digit_grid(images, labels, predictions, count=40, lines=4)
    assert grid.shape == (4 * 32, 10 * 32, 3)
    tiles = grid.reshape(4, 32, 10, 32, 3).swapaxes(1, 2).reshape(40, 32, 32, 3)
    assert np.allclose(tiles[4], images[4] / 255), "recognised ones: as they are, in colour"
    for tile in tiles[:4]:
        assert np.allclose(tile[0], pictures.ERROR_FRAME)
        assert np.allclose(tile[:-12, -1], pictures.ERROR_FRAME)
    assert np.allclose(tiles[0, 21:31, 1:7][pictures.GLYPHS[0]], 0), "the correct class, bottom left"
    assert np.allclose(tiles[0, 21:31, 25:31][pictures.GLYPHS[1]], 1), "the answer, bottom right"
    assert np.allclose(tiles[30:], 1), "missing pictures leave white tiles"

    # PyTorch's order [N, 3, H, W] gives the same picture; floats in [0, 1] too
    assert np.allclose(grid, pictures.digit_grid(images.transpose(0, 3, 1, 2), labels, predictions,
                                                 count=40, lines=4))
    assert np.allclose(grid, pictures.digit_grid(images / 255, labels, predictions, 40, 4))
    # large pictures are shrunk; standardised ones stretched to [0, 1]; classes past 9 unlabelled
    big = pictures.digit_grid(rng.normal(size=(5, 224, 160, 3)), np.arange(5) + 40, np.zeros(5),
                              10, 2)
    assert big.shape == (2 * 32, 5 * 23, 3) and 0 <= big.min() and big.max() <= 1
    # greyscale pictures of another size: ink on white, as the digits
    grey = pictures.digit_grid(np.zeros((3, 20, 16), np.float32), [1, 2, 3], [1, 2, 4], 4, 2)
    assert grey.shape == (40, 32, 3) and np.allclose(grey[:20, :16][0], pictures.ERROR_BACKGROUND)
    assert pictures.picture_shape(np.zeros((2, 20))) is None
    assert pictures.picture_shape(np.zeros((2, 100, 3))) is None, "a sequence of 3 features"
    assert pictures.picture_shape(np.zeros((2, 784))) == (28, 28, 1)


def test_mosaic_keeps_every_map_at_its_place():
    maps = np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5)
    picture = pictures.mosaic(maps, aspect=10)
    assert picture.shape == (2, 5 * 4 - 1)  # one row of 5 maps, 1 pixel apart
    for k in range(5):
        np.testing.assert_array_equal(picture[:, k * 4:k * 4 + 3], maps[..., k])
    assert np.isnan(picture[:, 3]).all()


def label_columns(grid, tile_height, tile_width, box):
    """For each tile of the first line of a grid: the columns (of the grid) where the bottom
    rows of the tile (its labels' rows) show a label box of colour box."""
    rows = grid[tile_height - 12:tile_height]
    hits = np.flatnonzero(np.all(np.isclose(rows, box, atol=1e-3), axis=-1).any(axis=0))
    return [hits[(hits >= k * tile_width) & (hits < (k + 1) * tile_width)]
            for k in range(grid.shape[1] // tile_width)]


def test_a_large_grid_keeps_each_tiles_labels_apart_from_the_next_tiles():
    """Issue 28, panel 6 enlarged: a misread digit's "correct | predicted" labels sit in its
    bottom corners; without a gap the answer of one tile touched the correct digit of the
    next, and read as a pair. With gap=2 (the enlarged panel), grey columns separate them."""
    labels = np.arange(20) % 10
    predictions = (labels + 3) % 10  # every digit misread: every tile has both labels
    images = fake_digits(labels)
    for gap in (0, 2):
        grid = pictures.digit_grid(images, labels, predictions, count=20, lines=2, gap=gap)
        size = 28 + gap
        assert grid.shape == (2 * size, 10 * size, 3)
        answers = label_columns(grid, size, size, pictures.PREDICTION_BOX)
        corrects = label_columns(grid, size, size, pictures.LABEL_BOX)
        apart = [int(corrects[k + 1].min() - answers[k].max() - 1) for k in range(9)]
        if gap == 0:
            assert apart == [0] * 9, "side by side: the labels of two tiles touch"
            continue
        assert apart == [gap] * 9, "a gap between one tile's answer and the next one's label"
        for k in range(1, 10):
            between = grid[:, k * size - gap:k * size]
            assert np.allclose(between, pictures.GAP), f"grey columns before tile {k}"
