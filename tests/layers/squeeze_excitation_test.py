import numpy as np
import keras

from defect_aux_net.layers.squeeze_excitation import SqueezeExcitation
from tests.layer_harness import check_layer


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def test_squeeze_excitation_matches_hand_computation():
    # 1 example, 2x2 pixels, 4 channels, ratio 2 -> bottleneck of 2 units.
    x = np.arange(16, dtype=np.float32).reshape(1, 2, 2, 4) / 10.0
    layer = SqueezeExcitation(ratio=2)
    layer.build(x.shape)
    w1 = np.array([[1, 0], [0, 1], [1, -1], [-1, 1]], np.float32) * 0.5
    b1 = np.array([0.1, -0.2], np.float32)
    w2 = np.array([[1, -1, 0.5, 0], [0, 1, -1, 2]], np.float32)
    b2 = np.array([0, 0.1, 0.2, -0.3], np.float32)
    layer.squeeze_dense.set_weights([w1, b1])
    layer.excite_dense.set_weights([w2, b2])

    squeezed = x.mean(axis=(1, 2))  # channel means: [0.6, 0.7, 0.8, 0.9]
    np.testing.assert_allclose(squeezed, [[0.6, 0.7, 0.8, 0.9]], rtol=1e-6)
    hidden = np.maximum(squeezed @ w1 + b1, 0)
    scale = sigmoid(hidden @ w2 + b2)
    expected = x * scale[:, None, None, :]

    np.testing.assert_allclose(np.array(layer(x)), expected, rtol=1e-5)


def test_squeeze_excitation_parameters():
    layer = SqueezeExcitation(ratio=16)
    layer.build((None, 8, 8, 256))
    # 256 -> 16 -> 256 with biases.
    assert layer.count_params() == 256 * 16 + 16 + 16 * 256 + 256


def test_squeeze_excitation_layer_harness(tmp_path):
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 32)).astype("float32")
    check_layer(lambda: SqueezeExcitation(ratio=4), x, tmp_path, expected_output_shape=x.shape)
