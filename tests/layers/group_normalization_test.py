import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from defect_aux_net.layers.group_normalization import GroupNormalization
from tests.layer_harness import check_layer
from tests.tolerances import FLOAT32_UNIT_ROUNDOFF, MARGIN, bfloat16_output_tolerance

SHAPE = (2, 9, 7, 64)
GROUPS = 8


def weighted_pair(seed=0):
    """Ours and Keras' GroupNormalization with the same non-trivial weights."""
    rng = np.random.default_rng(seed)
    gamma = rng.uniform(0.5, 1.5, SHAPE[-1]).astype(np.float32)
    beta = rng.normal(size=SHAPE[-1]).astype(np.float32)
    layers = GroupNormalization(GROUPS), keras.layers.GroupNormalization(GROUPS)
    for layer in layers:
        layer.build(SHAPE)
        layer.set_weights([gamma, beta])
    return layers, gamma, beta


def inputs(seed=1):
    # Off-centre and wider than unit scale, per channel, as a convolution's outputs.
    rng = np.random.default_rng(seed)
    return (rng.normal(size=SHAPE) * rng.uniform(0.5, 3, SHAPE[-1]) + 1.0).astype(np.float32)


def tolerance(outputs):
    """float32 reordering of the statistics' sums, at the outputs' own scale.

    Mean and variance are sums of n = H * W * C / G terms: reordered, each moves by
    about sqrt(n) roundoffs of its scale, and the normalised outputs (beta added) with
    them, relatively.
    """
    n = SHAPE[1] * SHAPE[2] * SHAPE[3] / GROUPS
    return MARGIN * math.sqrt(n) * FLOAT32_UNIT_ROUNDOFF * float(np.abs(outputs).max())


def test_outputs_are_group_normalisation_computed_in_float64():
    (layer, _), gamma, beta = weighted_pair()
    x = inputs()
    grouped = x.astype(np.float64).reshape(*SHAPE[:3], GROUPS, -1)
    mean = grouped.mean(axis=(1, 2, 4), keepdims=True)
    variance = grouped.var(axis=(1, 2, 4), keepdims=True)
    normalised = ((grouped - mean) / np.sqrt(variance + layer.epsilon)).reshape(SHAPE)
    expected = normalised * gamma + beta
    actual = np.asarray(layer(x))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tolerance(expected))


def test_outputs_and_gradients_equal_keras_group_normalization():
    (ours, keras_layer), _, _ = weighted_pair()
    x = tf.constant(inputs())
    results = []
    for layer in (ours, keras_layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            outputs = layer(x)
            # A loss whose gradient differs per element, so every path is exercised.
            loss = tf.reduce_sum(outputs * tf.sin(x))
        gradients = tape.gradient(loss, [x, layer.gamma.value, layer.beta.value])
        results.append([outputs] + gradients)
    for name, a, b in zip(("outputs", "inputs", "gamma", "beta"), *results):
        a, b = np.asarray(a), np.asarray(b)
        # Gradients of gamma and beta are sums over H * W of a channel.
        np.testing.assert_allclose(a, b, rtol=0, atol=4 * tolerance(b), err_msg=name)


def test_bfloat16_policy_computes_statistics_in_float32_and_returns_bfloat16():
    (layer, _), gamma, beta = weighted_pair()
    low = GroupNormalization(GROUPS, dtype="mixed_bfloat16")
    low.build(SHAPE)
    low.set_weights([gamma, beta])
    x = inputs()
    outputs = low(x)
    assert outputs.dtype == "bfloat16"
    expected = np.asarray(layer(x))
    # Unit-scale outputs rounded to bfloat16, times the outputs' own scale.
    atol = bfloat16_output_tolerance() * float(np.abs(expected).max())
    np.testing.assert_allclose(np.asarray(outputs, np.float32), expected, rtol=0, atol=atol)


@pytest.mark.parametrize(
    "shape, axis", [((2, 5, 64), -1), ((2, 64, 4, 4), 1)], ids=["3d", "channels_first"]
)
def test_refuses_inputs_other_than_channels_last_maps(shape, axis):
    with pytest.raises(ValueError, match=r"GroupNormalization takes \[B, H, W, C\]"):
        GroupNormalization(GROUPS, axis=axis).build(shape)


def test_layer_harness(tmp_path):
    check_layer(
        lambda: GroupNormalization(GROUPS), inputs(), tmp_path, expected_output_shape=SHAPE
    )


class Norms(keras.layers.Layer):
    """Holds its norms in a list, as `PredictionHead` does."""

    def __init__(self, norm_class, **kwargs):
        super().__init__(**kwargs)
        self.norms = [norm_class(GROUPS) for _ in range(2)]

    def call(self, x):
        for norm in self.norms:
            x = norm(x)
        return x


def test_weights_saved_with_keras_layer_load_into_ours(tmp_path):
    def model_of(norm_class):
        inputs = keras.Input(SHAPE[1:])
        return keras.Model(inputs, Norms(norm_class, name="norms")(inputs))

    saved = model_of(keras.layers.GroupNormalization)
    rng = np.random.default_rng(3)
    for weight in saved.weights:
        weight.assign(rng.normal(size=weight.shape))
    saved.save_weights(tmp_path / "norms.weights.h5")
    ours = model_of(GroupNormalization)
    ours.load_weights(tmp_path / "norms.weights.h5")
    for a, b in zip(ours.weights, saved.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
