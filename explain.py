"""explain.py: what the network sees, layer by layer, for one digit.

For one digit (a picture, a test digit, what is being drawn), from the saved model alone:

- the 28x28 input, as the network gets it;
- every layer in order, as in the lesson's sketch: a convolutional layer as its feature
  maps (one small image per filter), a dense layer as a strip of its neurons;
- the output: ten probabilities, the answer marked;
- the first layer's filters as pictures (for lesson 1.0: what each digit's neuron looks
  for, its 784 weights as a 28x28 picture);
- which pixels made the decision: integrated gradients (Sundararajan et al., 2017). The
  plain gradient of the answer's probability says where NEW ink would change the answer,
  mostly off the digit; integrated gradients add up the gradients along the way from a
  black image to the digit, times the ink: the share of the answer each pixel's ink earned.

How: every lesson's SavedModel has, beside `serving_default`, a signature `explain`
(made by `signature` below when lab.py saves the model): images [N, 28, 28] ->
probabilities, attribution [N, 28, 28], the first layer's filters, and one output per
layer, named after the lesson's tensors (the lesson names them with lab.show_layers).

    import explain
    seen = explain.explain(images, "models/mnist_3.0_convolutional")  # arrays, one per digit
    seen[0].layers["Y1"].shape     # (28, 28, 4): the 4 feature maps of the first layer
    explain.show(seen[0])          # the picture (under the cell in a notebook)

predict.py --explain draws it for pictures or test digits; predict.py --draw follows the pen.
"""

import math

import numpy as np

import plumbing
from plumbing import UserError

STEPS = 32  # integrated gradients: points between the black image and the digit
LAYER_PREFIX = "layer_"  # explain's outputs "layer_1_Y1", "layer_2_Y2"... in order
FIGURE_SIZE = (16, 9)


# ---------------------------------------------------------------- in the lessons

_recording = []  # while explain's signature is traced: the layers the model shows


def record(layers):
    """lab.show_layers: keep the named layer outputs, if the explain signature is being
    traced (then the tensors are its outputs); otherwise (training) do nothing."""
    if _recording:
        _recording[-1].update(layers)


def signature(model, filters):
    """The `explain` signature of a lesson's SavedModel (lab.save_model), for `model`
    (images [N, 28, 28, 1] -> logits) whose first layer's weights are `filters`."""
    tf = plumbing.load_tensorflow()

    @tf.function(input_signature=[tf.TensorSpec([None, 28, 28], tf.float32, name="images")])
    def explain(images):
        X = images[..., tf.newaxis]
        _recording.append({})
        try:
            Ylogits = model(X, training=False)
        finally:
            layers = _recording.pop()
        probabilities = tf.nn.softmax(Ylogits)
        answers = tf.argmax(probabilities, axis=1)
        outputs = {"probabilities": probabilities,
                   "attribution": _integrated_gradients(tf, model, X, answers)[..., 0],
                   "filters": tf.identity(filters)}
        for k, (name, Y) in enumerate(layers.items(), start=1):
            outputs[f"{LAYER_PREFIX}{k}_{name}"] = Y
        return outputs

    return explain


def _integrated_gradients(tf, model, X, answers):
    """Each pixel's share of the answer's probability: the gradient of that probability,
    averaged over STEPS images on the way from black (no ink) to the digit, times the ink.
    Their sum is (nearly) the answer's probability minus the black image's."""
    n = tf.shape(X)[0]
    alphas = (tf.range(STEPS, dtype=tf.float32) + 0.5) / STEPS  # the midpoints of STEPS intervals
    path = alphas[:, None, None, None, None] * X[None]  # [STEPS, N, 28, 28, 1]
    path = tf.reshape(path, [-1, 28, 28, 1])
    wanted = tf.tile(answers, [STEPS])
    with tf.GradientTape() as tape:
        tape.watch(path)
        probabilities = tf.nn.softmax(model(path, training=False))
        answer = tf.gather(probabilities, wanted, axis=1, batch_dims=1)
    gradients = tf.reshape(tape.gradient(answer, path), [STEPS, n, 28, 28, 1])
    return X * tf.reduce_mean(gradients, axis=0)


# ---------------------------------------------------------------- the arrays


class Seen:
    """What the network saw of one digit: the input [28, 28], the probabilities [10] and the
    answer, the attribution [28, 28], the layers {name: array} in order (a convolutional
    layer's [h, w, channels], a dense layer's [neurons]) and the first layer's filters."""

    def __init__(self, image, probabilities, attribution, layers, filters, name=""):
        self.image, self.probabilities, self.attribution = image, probabilities, attribution
        self.answer = int(np.argmax(probabilities))
        self.layers, self.filters, self.name = layers, filters, name

    def blank(self):
        """The same shapes, no ink, no answer (the drawing pad before anything is drawn)."""
        zero = np.zeros_like
        return Seen(zero(self.image), zero(self.probabilities), zero(self.attribution),
                    {name: zero(Y) for name, Y in self.layers.items()}, self.filters)

    def __repr__(self):
        shapes = ", ".join(f"{name} {list(Y.shape)}" for name, Y in self.layers.items())
        return (f"Seen({self.name or 'digit'}: {self.answer} "
                f"(p={self.probabilities[self.answer]:.2f}); {shapes})")


def explain(images, model=None, names=()):
    """What the network sees of each image [28, 28] (prepared as MNIST's: predict.preprocess
    does it for pictures): a list of Seen. model: a SavedModel folder saved by the lab (or a
    loaded predict.Model; default: the most recent in models/). Raises UserError."""
    if not hasattr(model, "explain"):  # a folder, not a loaded predict.Model
        import predict  # (predict imports this module)

        model = predict.load_model(model or predict.latest_model())
    images = np.asarray(images, np.float32).reshape(-1, 28, 28)
    if not images.size:
        raise UserError("no digit to explain")
    blank = [k for k, image in enumerate(images) if image.max() <= 0]
    if blank:
        raise UserError(f"image {blank[0]} has no ink: nothing to explain")
    outputs = model.explain(images)
    order = sorted((key for key in outputs if key.startswith(LAYER_PREFIX)),
                   key=lambda key: int(key.split("_")[1]))
    names = list(names) + [""] * len(images)
    return [Seen(images[k], outputs["probabilities"][k], outputs["attribution"][k],
                 {key.split("_", 2)[2]: outputs[key][k] for key in order}, outputs["filters"],
                 names[k])
            for k in range(len(images))]


# ---------------------------------------------------------------- the picture


def mosaic(maps, aspect=2.0, gap=1):
    """Feature maps [h, w, channels] side by side as one image about `aspect` times as wide
    as high, NaN between them (drawn as the background): one image, one colour scale."""
    h, w, count = maps.shape
    columns = min(count, max(1, round(math.sqrt(count * aspect * (h + gap) / (w + gap)))))
    rows = math.ceil(count / columns)
    picture = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap), np.nan, np.float32)
    for k in range(count):
        r, c = divmod(k, columns)
        picture[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = maps[..., k]
    return picture


def first_layer(weights):
    """Of a model's weights, the first layer's: the one that reads the image (a
    convolution's [h, w, 1, filters], or a dense layer's [784, neurons])."""
    for v in weights:
        shape = list(v.shape)
        if (len(shape) == 4 and shape[2] == 1) or (len(shape) == 2 and shape[0] == 784):
            return v
    return None


def filter_pictures(filters):
    """The first layer's filters as pictures [h, w, count]: a convolution's [h, w, 1, count]
    directly, a dense layer's [784, count] as 28x28 pictures (lesson 1.0: one per digit)."""
    filters = np.asarray(filters)
    if filters.ndim == 4:
        return filters[:, :, 0, :]
    if filters.ndim == 2 and filters.shape[0] == 784:
        return filters.reshape(28, 28, -1)
    return None


class View:
    """The picture of what the network sees, drawn on a matplotlib figure (in the box
    rect = (left, bottom, right, top) of it); update(seen) shows another digit cheaply
    (the drawing pad calls it as the pen moves)."""

    def __init__(self, fig, seen, title="", rect=(0.03, 0.06, 0.98, 0.95)):
        self.fig = fig
        fig.set_facecolor("white")
        left, bottom, right, top = rect
        if title:
            fig.suptitle(title, fontsize=16, x=0.01, ha="left", fontweight="bold")
            top -= 0.05
        names = list(seen.layers)
        rows = max(len(names), 1) + 1  # the layers, then the output
        grid = fig.add_gridspec(rows, 3, width_ratios=[1.0, 1.0, 3.2], left=left, right=right,
                                top=top, bottom=bottom, hspace=0.55, wspace=0.15)
        ink = dict(cmap="gray", vmin=0, vmax=1)
        half = max(1, rows // 2)
        self.input_ax = fig.add_subplot(grid[:half, 0])
        self.input = self.input_ax.imshow(seen.image, **ink)
        self._label(self.input_ax, "the input X [28, 28]")
        self.attribution_ax = fig.add_subplot(grid[:half, 1])
        self.digit_under = self.attribution_ax.imshow(seen.image, cmap="gray_r", vmin=0, vmax=3)
        self.attribution = self.attribution_ax.imshow(self._red_blue(seen.attribution),
                                                      interpolation="nearest")
        self._label(self.attribution_ax, "which ink made the answer\n(red for it, blue against)")
        pictures = filter_pictures(seen.filters)
        self.filters_ax = fig.add_subplot(grid[half:, :2])
        self.filters = None
        if pictures is not None:
            limit = np.abs(pictures).max() or 1
            self.filters = self.filters_ax.imshow(mosaic(pictures, self._aspect(self.filters_ax)),
                                                  cmap="RdBu_r", vmin=-limit, vmax=limit)
            what = "one per digit" if pictures.shape[2] == 10 else f"{pictures.shape[2]} filters"
            self._label(self.filters_ax,
                        f"the first layer's weights, {what}\n(red: ink there counts for)")
        else:
            self.filters_ax.set_visible(False)
        self.layer_images, self.aspects = {}, {}
        for k, name in enumerate(names):
            ax = fig.add_subplot(grid[k, 2])
            Y = seen.layers[name]
            self.aspects[name] = self._aspect(ax)
            self.layer_images[name] = ax.imshow(self._layer_picture(Y, self.aspects[name]),
                                                cmap="magma",
                                                aspect="auto" if Y.ndim == 1 else "equal",
                                                interpolation="nearest")
            self._label(ax, f"{name} {list(Y.shape)}", left=True)
        self.output_ax = fig.add_subplot(grid[rows - 1, 2])
        self.bars = self.output_ax.bar(range(10), seen.probabilities, color="#b0b0b0")
        self.output_ax.set_ylim(0, 1)
        self.output_ax.set_xticks(range(10))
        self.output_ax.set_yticks([0, 1])
        self.output_ax.set_title("", loc="left")
        self.answer = self.output_ax.set_title("", fontsize=13, loc="left")
        self.update(seen)

    @staticmethod
    def _label(ax, text, left=False):
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_title(text, fontsize=12, loc="left" if left else "center")

    def _aspect(self, ax):
        """How many times wider than high the axes are on the figure."""
        box = ax.get_position(original=True)
        width, height = self.fig.get_size_inches()
        return box.width * width / (box.height * height)

    @staticmethod
    def _layer_picture(Y, aspect):
        """One layer as one picture, scaled to its own largest value (one scale per layer)."""
        Y = np.asarray(Y, np.float32)
        picture = mosaic(Y, aspect) if Y.ndim == 3 else Y[None, :]
        top = np.nanmax(np.abs(picture)) if np.isfinite(picture).any() else 0
        return picture / top if top > 0 else picture

    @staticmethod
    def _red_blue(attribution):
        """Attribution as RGBA: red where the ink counts for the answer, blue against, its
        strength as the opacity (the digit shows through where it is weak)."""
        top = np.abs(attribution).max() or 1
        a = np.clip(attribution / top, -1, 1)
        rgba = np.zeros((*a.shape, 4), np.float32)
        rgba[..., 0] = a > 0
        rgba[..., 2] = a < 0
        rgba[..., 3] = np.abs(a) ** 0.7
        return rgba

    def update(self, seen):
        """Show another digit (same model)."""
        self.input.set_data(seen.image)
        self.digit_under.set_data(seen.image)
        self.attribution.set_data(self._red_blue(seen.attribution))
        for name, image in self.layer_images.items():
            picture = self._layer_picture(seen.layers[name], self.aspects[name])
            image.set_data(picture)
            image.set_clim(min(0, np.nanmin(picture)), 1)
        inked = seen.probabilities.sum() > 0  # (nothing drawn yet on the pad: no answer)
        for d, bar in enumerate(self.bars):
            bar.set_height(seen.probabilities[d])
            bar.set_color("#0072b2" if inked and d == seen.answer else "#b0b0b0")
        p = seen.probabilities[seen.answer]
        self.answer.set_text(f"the output: {seen.answer} (p={p:.2f})" if inked else "the output: ?")

    def artists(self):
        """What update changes (for blitting)."""
        return [self.input, self.digit_under, self.attribution, *self.layer_images.values(),
                *self.bars, self.answer]


def show(seen, save_png=None):
    """Draw what the network saw of one digit: under the cell in a notebook, in a window,
    or into a PNG file."""
    import tensorflowvisu

    title = f"What the network sees of {seen.name or 'this digit'}"

    def draw(fig):
        View(fig, seen, title)

    if save_png:
        fig = tensorflowvisu.offscreen_figure(FIGURE_SIZE, dpi=100)
        draw(fig)
        tensorflowvisu.save_figure(fig, save_png, dpi=100)
        return
    tensorflowvisu.show_figure(draw, FIGURE_SIZE, "predict.py --explain")
