import numpy as np

from defect_aux_net.layers.softmax_foreground_logits import (
    SoftmaxForegroundLogits,
    softmax_foreground_logits,
)
from tests.layer_harness import check_layer
from tests.tolerances import FLOAT32_UNIT_ROUNDOFF

# A few float32 roundings of values up to about 40 (the logits below).
TOLERANCE = 16 * 40 * FLOAT32_UNIT_ROUNDOFF


def log_softmax(logits):
    logits = np.asarray(logits, np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


LOGITS = np.array(
    [[[0.3, -1.2, 2.0], [1.0, 1.0, 1.0], [-2.0, 0.5, -0.7]],
     # A class at probability 1 - 1e-17 (float32's 1 - p is 0), and the background so.
     [[0.0, 40.0, 0.0], [40.0, 0.0, 3.0], [0.0, 20.0, 20.0]]],
    np.float32,
)


def test_sigmoid_of_the_logits_is_the_softmax_foreground_and_they_are_its_logits():
    logits = softmax_foreground_logits(LOGITS).numpy()
    log_p = log_softmax(LOGITS)
    # sigma^-1(p) = log p - log(1 - p), in float64 from the softmax itself; where
    # float64's 1 - p is 0 too, by hand: 1 - p = 2 / (e^40 + 2).
    with np.errstate(divide="ignore"):
        expected = log_p[..., 1:] - np.log1p(-np.exp(log_p[..., 1:]))
    expected[1, 0, 0] = 40.0 - np.log(2.0)
    np.testing.assert_allclose(logits, expected, atol=TOLERANCE, rtol=TOLERANCE)
    probabilities = 1 / (1 + np.exp(-logits.astype(np.float64)))
    np.testing.assert_allclose(probabilities, np.exp(log_p[..., 1:]), atol=1e-7)


def test_layer_harness(tmp_path):
    check_layer(
        lambda: SoftmaxForegroundLogits(dtype="float32"), LOGITS, tmp_path,
        expected_output_shape=(2, 3, 2),
    )
