"""Backbone levels of a tiny image and numpy pieces the decoder tests compute by hand."""

import numpy as np

# Keras' BatchNormalization epsilon: at initialisation (moving mean 0, variance 1,
# gamma 1, beta 0) inference divides by sqrt(1 + epsilon).
BN_SCALE = 1.0 / np.sqrt(1.0 + 1e-3)


def backbone_levels(rng, c5_size=(1, 2), channels=(2, 3, 4, 5, 6), batch=2):
    """`{"C1".."C5"}` as the backbone gives them for an image 32x C5's size: `Cl` at
    stride 2^l with `channels[l - 1]` channels."""
    height, width = c5_size
    return {
        f"C{level}": rng.normal(
            size=(batch, height * 2 ** (5 - level), width * 2 ** (5 - level), channels[level - 1])
        ).astype("float32")
        for level in range(1, 6)
    }


def relu(x):
    return np.maximum(x, 0.0)


def upsample_nearest(x):
    return x.repeat(2, axis=1).repeat(2, axis=2)


def centre_taps_only(conv, rng):
    """Gives a 3x3 conv random weights at its centre tap and zeros elsewhere: it then
    computes `x @ centre` per pixel, with no border effects. Returns `centre`."""
    kernel = np.zeros(conv.kernel.shape, "float32")
    kernel[1, 1] = rng.normal(size=kernel.shape[2:]) / np.sqrt(kernel.shape[2])
    conv.kernel.assign(kernel)
    return kernel[1, 1]
