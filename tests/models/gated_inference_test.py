import numpy as np
import pytest
import tensorflow as tf

from defect_aux_net import DefectAuxNetConfig, build_defect_aux_net
from defect_aux_net.models.gated_inference import GATED_OUT_LOGIT, GatedModel
from tests import tolerances

CONFIG = DefectAuxNetConfig.from_preset("small", input_shape=(64, 64, 3), attention="none")


@pytest.fixture(scope="module")
def model_and_images():
    model = build_defect_aux_net(CONFIG)
    images = np.random.default_rng(0).random((6, 64, 64, 3)).astype("float32")
    return model, images


def test_passing_images_get_the_models_results_and_the_others_nothing(model_and_images):
    model, images = model_and_images
    expected = {name: np.asarray(value) for name, value in model(images, training=False).items()}
    top = expected["classification"].max(axis=-1)
    threshold = float(np.sort(top)[3])  # 3 of the 6 images pass.
    outputs = GatedModel(model)(images, threshold)
    passed = top >= threshold
    np.testing.assert_array_equal(np.asarray(outputs["gate_passed"]), passed)
    assert passed.sum() == 3
    np.testing.assert_array_equal(outputs["classification"], expected["classification"])
    # Equal up to float32 rounding: the CPU kernels sum in an order that depends on
    # the batch size.
    for name in ("segmentation", "box_regression", "box_classification"):
        tolerances.assert_close(
            np.asarray(outputs[name])[passed],
            expected[name][passed],
            tolerances.float32_output_tolerance(),
            name,
        )
    assert not np.asarray(outputs["segmentation"])[~passed].any()
    assert not np.asarray(outputs["box_regression"])[~passed].any()
    assert (np.asarray(outputs["box_classification"])[~passed] == GATED_OUT_LOGIT).all()


# Eager and traced: on AVX-512 CPUs the oneDNN convolutions fail on an empty batch
# in eager mode and return a wrong shape inside a tf.function, so the heads must not
# run at all when nothing passes.
@pytest.mark.parametrize("traced", [False, True])
@pytest.mark.parametrize("threshold, passing", [(0.0, 6), (1.01, 0)])
def test_all_or_no_images_pass(model_and_images, threshold, passing, traced):
    model, images = model_and_images
    gated = GatedModel(model)
    call = tf.function(gated.__call__) if traced else gated
    outputs = {name: np.asarray(value) for name, value in call(images, threshold).items()}
    assert int(outputs["gate_passed"].sum()) == passing
    expected = {name: np.asarray(value) for name, value in model(images, training=False).items()}
    tolerances.assert_close(
        outputs["classification"], expected["classification"], tolerances.float32_output_tolerance()
    )
    assert outputs["segmentation"].shape == (6, 64, 64, 4)
    assert outputs["box_regression"].shape == expected["box_regression"].shape
    assert outputs["box_classification"].shape == expected["box_classification"].shape
    if passing == 0:
        assert not outputs["segmentation"].any() and not outputs["box_regression"].any()
        assert (outputs["box_classification"] == GATED_OUT_LOGIT).all()


@pytest.mark.parametrize("traced", [False, True])
def test_an_empty_batch_gets_empty_outputs(model_and_images, traced):
    model, _ = model_and_images
    gated = GatedModel(model)
    call = tf.function(gated.__call__) if traced else gated
    outputs = call(np.zeros((0, 64, 64, 3), np.float32), 0.0)
    expected = model(np.zeros((1, 64, 64, 3), np.float32), training=False)
    for name, value in expected.items():
        assert tuple(outputs[name].shape) == (0, *value.shape[1:]), name
    assert tuple(outputs["gate_passed"].shape) == (0,)


@pytest.mark.parametrize(
    "tasks", [("classification",), ("segmentation", "detection")]
)
def test_a_model_without_gate_or_heads_is_rejected(tasks):
    model = build_defect_aux_net(DefectAuxNetConfig.from_preset("small", tasks=tasks))
    with pytest.raises(ValueError, match="classification task"):
        GatedModel(model)
