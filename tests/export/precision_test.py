import keras
import numpy as np
import pytest

from defect_aux_net.export.precision import with_precision
from tests import tolerances
from tests.export.serving_test import build_test_model

PROBABILITIES = ("classification", "segmentation")


def rounded_to_bfloat16(values):
    """float32 to its nearest bfloat16 (ties to even), by hand: bfloat16 is float32's
    upper 16 bits."""
    bits = np.asarray(values, np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(np.float32)


@pytest.fixture(scope="module")
def model():
    model = build_test_model()
    # Trained-looking batch-norm statistics: an untrained model's 0 and 1 are exact in
    # bfloat16 and would hide their rounding.
    rng = np.random.default_rng(3)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.1, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, layer.moving_variance.shape))
    return model


def test_a_bfloat16_copy_stores_the_weights_rounded_to_bfloat16(model):
    copy = with_precision(model, "bfloat16")
    assert {variable.dtype for variable in copy.weights} == {"bfloat16"}
    for original, stored in zip(model.get_weights(), copy.get_weights()):
        np.testing.assert_array_equal(stored.astype(np.float32), rounded_to_bfloat16(original))
    assert with_precision(copy, "bfloat16") is copy
    # Back to float32: exactly the rounded weights, computing in float32.
    back = with_precision(copy, "float32")
    assert {variable.dtype for variable in back.weights} == {"float32"}
    for original, restored in zip(model.get_weights(), back.get_weights()):
        np.testing.assert_array_equal(restored, rounded_to_bfloat16(original))


def test_a_bfloat16_copy_computes_as_mixed_bfloat16_with_float32_outputs(model):
    # mixed_bfloat16 casts each float32 weight to bfloat16 where it is used; the
    # bfloat16 copy has done so once. Batch normalisation computes in float32 either
    # way (Keras), from bfloat16 statistics here and float32 ones there: roundings of
    # the size of those of bfloat16 arithmetic. Probabilities within its tolerance; the
    # box logits (up to about 1.6 here, where a bfloat16 unit is 2^-7) on average.
    images = np.random.default_rng(0).random((2, 64, 64, 3)).astype(np.float32)
    copy = with_precision(model, "bfloat16")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = type(model).from_config(model.get_config())
    finally:
        keras.config.set_dtype_policy(previous)
    mixed.set_weights(model.get_weights())
    outputs = copy(images, training=False)
    expected = mixed(images, training=False)
    tolerance = tolerances.bfloat16_output_tolerance()
    for name, value in expected.items():
        assert outputs[name].dtype == "float32", name
        change = np.abs(np.asarray(outputs[name]) - np.asarray(value))
        if name in PROBABILITIES:
            assert change.max() <= tolerance, (name, change.max())
        else:
            assert change.mean() <= tolerance, (name, change.mean())
