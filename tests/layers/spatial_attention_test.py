import numpy as np

from defect_aux_net.layers.spatial_attention import SpatialAttention
from tests.layer_harness import check_layer


def test_spatial_attention_matches_hand_computation():
    x = np.array(
        [[[[1.0, 3.0], [0.0, -2.0]], [[4.0, 0.0], [2.0, 2.0]]]], dtype=np.float32
    )  # [1, 2, 2, 2]
    layer = SpatialAttention(kernel_size=1)
    layer.build(x.shape)
    # A 1x1 conv: weight 0.5 on the channel mean, -1 on the channel max, bias 0.25.
    layer.attention_conv.set_weights(
        [np.array([0.5, -1.0], np.float32).reshape(1, 1, 2, 1), np.array([0.25], np.float32)]
    )
    mean = x.mean(axis=-1, keepdims=True)  # [[2, -1], [2, 2]]
    maximum = x.max(axis=-1, keepdims=True)  # [[3, 0], [4, 2]]
    attention = 1 / (1 + np.exp(-(0.5 * mean - maximum + 0.25)))
    np.testing.assert_allclose(np.array(layer(x)), x * attention, rtol=1e-5)
    # Pixel (0, 0): sigmoid(1 - 3 + 0.25) = sigmoid(-1.75).
    np.testing.assert_allclose(
        np.array(layer(x))[0, 0, 0], x[0, 0, 0] / (1 + np.exp(1.75)), rtol=1e-5
    )


def test_spatial_attention_parameters():
    layer = SpatialAttention(kernel_size=7)
    layer.build((None, 8, 8, 64))
    assert layer.count_params() == 7 * 7 * 2 + 1


def test_spatial_attention_layer_harness(tmp_path):
    x = np.random.default_rng(0).normal(size=(2, 6, 5, 8)).astype("float32")
    check_layer(lambda: SpatialAttention(kernel_size=3), x, tmp_path, expected_output_shape=x.shape)
