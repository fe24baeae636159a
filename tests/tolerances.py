"""How far apart two runs of the same test network may be, derived from the arithmetic.

Two paths through the same network (eager and traced, Keras and a SavedModel, one
batch size and another, oneDNN's AVX-512 kernels and TensorFlow's own) compute the
same sums in different orders. A float sum of n terms reordered changes by about
sqrt(n) unit roundoffs of its scale (roundoff errors add as a random walk; the
worst case, n roundoffs, is never approached by sums of mixed signs), and layers
behind a normalisation keep unit scale, so the changes of successive layers add
the same way. The tests' networks (the `small` preset: ResNet-18, FPN, heads) have
sums of up to 3 * 3 * 512 terms in about 26 layers on every path to an output.
"""

import math

import numpy as np

FLOAT32_UNIT_ROUNDOFF = 2.0**-24
FLOAT64_UNIT_ROUNDOFF = 2.0**-53
# bfloat16 keeps 8 significant bits.
BFLOAT16_UNIT_ROUNDOFF = 2.0**-9
LARGEST_SUM = 3 * 3 * 512
LAYERS = 26
# Four times the estimate: the sqrt(n) rule is the typical change, not a bound.
MARGIN = 4
# Decoded box sides are anchor sides times exp(delta): with deltas up to about 1,
# a change of delta moves a corner by up to (1 + e) / 2 times as much, in image sides.
BOX_GAIN = (1 + math.e) / 2


def float32_output_tolerance() -> float:
    """Absolute tolerance of unit-scale float32 outputs (probabilities, masks, logits).

    About 8e-5: sqrt(4608 * 26) * 2^-24 * 4. A sigmoid's slope is at most 1/4, so
    probabilities move less than the logits behind them.
    """
    return MARGIN * math.sqrt(LARGEST_SUM * LAYERS) * FLOAT32_UNIT_ROUNDOFF


def float64_output_tolerance() -> float:
    """As `float32_output_tolerance`, for a network run in float64: about 1.5e-13."""
    return MARGIN * math.sqrt(LARGEST_SUM * LAYERS) * FLOAT64_UNIT_ROUNDOFF


def bfloat16_output_tolerance() -> float:
    """Absolute tolerance of unit-scale outputs of a network computing in bfloat16.

    Its weights stored in bfloat16 or cast to it at each use (`mixed_bfloat16`), the
    arithmetic is the same (`tests/export/precision_test.py`). Each layer's output is
    rounded to bfloat16 (relative 2^-9), and two kernel paths may round a value near a
    rounding boundary to neighbours one unit in the last place apart (2^-8 at unit
    scale): two such units, 2^-7, about 0.0078.
    """
    return 4 * BFLOAT16_UNIT_ROUNDOFF


def box_tolerance(output_tolerance: float) -> float:
    """Tolerance of decoded boxes in image sides, from the deltas' tolerance."""
    return BOX_GAIN * output_tolerance


def assert_close(actual, expected, tolerance, name=""):
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tolerance, err_msg=name)
