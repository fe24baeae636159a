import numpy as np

from defect_aux_net.layers.prediction_head import PredictionHead
from tests.layer_harness import check_layer


def test_prediction_head_rows_follow_anchor_order(tmp_path):
    x = np.random.default_rng(0).normal(size=(2, 4, 3, 8)).astype("float32")
    layer = PredictionHead(anchors_per_location=2, values_per_anchor=5, depth=1, channels=8)
    rows = np.array(layer(x))
    assert rows.shape == (2, 4 * 3 * 2, 5)
    # Row r is (y, x, anchor) in C order: row 7 = y 1, x 0, anchor 1 -> channels 5..9.
    hidden = np.array(layer.hidden_convs[0](x))
    conv = np.array(layer.output_conv(hidden))
    np.testing.assert_allclose(rows[:, 7], conv[:, 1, 0, 5:10], rtol=1e-5)
    check_layer(
        lambda: PredictionHead(2, 5, depth=1, channels=8), x, tmp_path, expected_output_shape=(2, 24, 5)
    )


def test_class_head_starts_at_prior_probability():
    x = np.zeros((1, 2, 2, 4), np.float32)
    layer = PredictionHead(anchors_per_location=3, values_per_anchor=2, depth=2, channels=4,
                           prior_probability=0.01)
    probabilities = 1 / (1 + np.exp(-np.array(layer(x))))
    # Zero input: the output is the bias alone.
    np.testing.assert_allclose(probabilities, 0.01, rtol=1e-5)
