import numpy as np
import pytest

from defect_aux_net import DefectAuxNetConfig, build_defect_aux_net
from defect_aux_net.models.gated_inference import GATED_OUT_LOGIT, GatedDefectAuxNet

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
    outputs = GatedDefectAuxNet(model)(images, threshold)
    passed = top >= threshold
    np.testing.assert_array_equal(np.asarray(outputs["gate_passed"]), passed)
    assert passed.sum() == 3
    np.testing.assert_array_equal(outputs["classification"], expected["classification"])
    # Equal up to float32 rounding: the CPU kernels sum in an order that depends on
    # the batch size (measured: 1 % of the values differ, by at most 9e-8).
    for name in ("segmentation", "box_regression", "box_classification"):
        np.testing.assert_allclose(
            np.asarray(outputs[name])[passed], expected[name][passed], rtol=0, atol=1e-6
        )
    assert not np.asarray(outputs["segmentation"])[~passed].any()
    assert not np.asarray(outputs["box_regression"])[~passed].any()
    assert (np.asarray(outputs["box_classification"])[~passed] == GATED_OUT_LOGIT).all()


@pytest.mark.parametrize("threshold, passing", [(0.0, 6), (1.01, 0)])
def test_all_or_no_images_pass(model_and_images, threshold, passing):
    model, images = model_and_images
    outputs = GatedDefectAuxNet(model)(images, threshold)
    assert int(np.asarray(outputs["gate_passed"]).sum()) == passing
    assert np.asarray(outputs["segmentation"]).shape == (6, 64, 64, 4)
    assert np.asarray(outputs["box_classification"]).shape[0] == 6


@pytest.mark.parametrize(
    "tasks", [("classification",), ("segmentation", "detection")]
)
def test_a_model_without_gate_or_heads_is_rejected(tasks):
    model = build_defect_aux_net(DefectAuxNetConfig.from_preset("small", tasks=tasks))
    with pytest.raises(ValueError, match="classification task"):
        GatedDefectAuxNet(model)
