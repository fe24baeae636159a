import numpy as np
import tensorflow as tf

from defect_aux_net.layers.feature_norm import FeatureNorm
from tests.layer_harness import check_layer
from tests.tolerances import float32_output_tolerance


def test_feature_norm_matches_hand_computation():
    # One channel [[1, 2], [3, 6]]: mean 3, deviations -2, -1, 0, 3, squares sum 14,
    # unbiased std sqrt(14 / 3); the reference divides by sqrt(std + eps).
    x = np.array([1, 2, 3, 6], np.float32).reshape(1, 2, 2, 1)
    layer = FeatureNorm(epsilon=1e-3)
    layer.build(x.shape)
    layer.set_weights([np.array([2.0], np.float32), np.array([0.5], np.float32)])
    expected = 2 * (x - 3) / np.sqrt(np.sqrt(14 / 3) + 1e-3) + 0.5
    np.testing.assert_allclose(np.array(layer(x)), expected, rtol=1e-5)


def test_feature_norm_is_per_sample_and_per_channel():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 4, 2)).astype(np.float32) * [1.0, 10.0] + [5.0, -3.0]
    out = np.array(FeatureNorm()(x))
    np.testing.assert_allclose(out.mean(axis=(1, 2)), 0, atol=1e-5)
    # Each sample's own spread: the second sample scaled by 100 gives the same output.
    x[1] = x[0] * 100
    out = np.array(FeatureNorm(epsilon=0.0)(x))
    std = x[0].std(axis=(0, 1), ddof=1)
    np.testing.assert_allclose(out[0], (x[0] - x[0].mean(axis=(0, 1))) / np.sqrt(std), rtol=1e-4)
    np.testing.assert_allclose(out[1], out[0] * np.sqrt(100), rtol=1e-4)


def test_scale_and_bias_start_at_one_and_zero_and_both_train():
    # The reference's FeatureNorm, its segmentation output's included: nn.Parameter
    # trains whatever requires_grad its zeros were made with. d(sum out)/d(bias) is the
    # pixel count per channel; d(sum out)/d(scale) is the sum of the normalised map, 0.
    x = np.random.default_rng(2).normal(size=(1, 3, 4, 2)).astype(np.float32)
    layer = FeatureNorm()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x))
    assert [w.name for w in layer.trainable_weights] == ["scale", "bias"]
    np.testing.assert_array_equal(layer.scale.numpy(), [1, 1])
    np.testing.assert_array_equal(layer.bias.numpy(), [0, 0])
    scale_gradient, bias_gradient = tape.gradient(loss, [layer.scale, layer.bias])
    np.testing.assert_allclose(bias_gradient, [12, 12])
    np.testing.assert_allclose(scale_gradient, [0, 0], atol=float32_output_tolerance())


def test_a_single_pixel_map_gives_the_bias_not_nan():
    out = np.array(FeatureNorm()(np.full((2, 1, 1, 3), 7.0, np.float32)))
    np.testing.assert_array_equal(out, 0.0)


def test_feature_norm_layer_harness(tmp_path):
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 3)).astype(np.float32)
    check_layer(lambda: FeatureNorm(epsilon=1e-2), x, tmp_path, (2, 4, 4, 3))


def test_a_constant_map_has_finite_gradients():
    x = tf.ones((1, 1, 1, 2))
    layer = FeatureNorm()
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(layer(x))
    gradients = tape.gradient(loss, [x, *layer.trainable_weights])
    assert all(np.all(np.isfinite(g)) for g in gradients)
