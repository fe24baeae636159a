import numpy as np

from defect_aux_net.layers.prediction_head import PredictionHead
from tests.layer_harness import check_layer


def test_prediction_head_rows_follow_anchor_order(tmp_path):
    x = np.random.default_rng(0).normal(size=(2, 4, 3, 8)).astype("float32")
    layer = PredictionHead(
        anchors_per_location=2, values_per_anchor=5, depth=1, channels=8, group_norm=False
    )
    rows = np.array(layer(x))
    assert rows.shape == (2, 4 * 3 * 2, 5)
    # Row r is (y, x, anchor) in C order: row 7 = y 1, x 0, anchor 1 -> channels 5..9.
    hidden = np.maximum(np.array(layer.hidden_convs[0](x)), 0.0)
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


def test_group_norm_normalises_each_group_of_channels_per_image(tmp_path):
    x = np.random.default_rng(1).normal(3.0, 20.0, size=(2, 5, 4, 8)).astype("float32")
    layer = PredictionHead(anchors_per_location=1, values_per_anchor=3, depth=1, channels=64)
    rows = np.array(layer(x))
    conv = np.array(layer.hidden_convs[0](x)).reshape(2, 5, 4, 32, 2)
    # 32 groups of 2 channels; each normalised over its pixels and channels (epsilon 1e-3).
    mean = conv.mean(axis=(1, 2, 4), keepdims=True)
    variance = conv.var(axis=(1, 2, 4), keepdims=True)
    hidden = np.maximum((conv - mean) / np.sqrt(variance + 1e-3), 0.0).reshape(2, 5, 4, 64)
    expected = np.array(layer.output_conv(hidden)).reshape(2, -1, 3)
    np.testing.assert_allclose(rows, expected, rtol=1e-4, atol=1e-5)
    # About half of the normalised units are active, whatever the input's scale.
    assert 0.3 < (hidden > 0).mean() < 0.7
    check_layer(
        lambda: PredictionHead(1, 3, depth=1, channels=64), x, tmp_path,
        expected_output_shape=(2, 20, 3),
    )
