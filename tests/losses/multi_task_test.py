import numpy as np
import pytest

from defect_aux_net import DefectAuxNetConfig
from defect_aux_net.losses.multi_task import MultiTaskLoss
from defect_aux_net.losses.segmentation import SEGMENTATION_LOSS_FUNCTIONS, dice_loss


def batch():
    rng = np.random.default_rng(0)
    y_true = {
        "classification": np.array([[1.0], [0.0]]),
        "segmentation": (rng.random((2, 4, 4, 1)) > 0.5).astype("float32"),
    }
    y_pred = {
        "classification": np.array([[0.8], [0.3]], np.float32),
        "segmentation": rng.random((2, 4, 4, 1)).astype("float32"),
    }
    return y_true, y_pred


def test_weighted_sum_of_task_losses():
    config = DefectAuxNetConfig(
        tasks=("classification", "segmentation"), loss_weights=(0.5, 2.0, 1.0)
    )
    y_true, y_pred = batch()
    losses = MultiTaskLoss(config)(y_true, y_pred)
    bce = -np.mean([np.log(0.8), np.log(0.7)])
    dice = float(dice_loss(y_true["segmentation"], y_pred["segmentation"]))
    np.testing.assert_allclose(float(losses["classification"]), bce, rtol=1e-5)
    np.testing.assert_allclose(float(losses["segmentation"]), dice, rtol=1e-5)
    np.testing.assert_allclose(float(losses["total"]), 0.5 * bce + 2.0 * dice, rtol=1e-5)
    assert "detection" not in losses


def test_examples_without_an_annotation_do_not_count():
    config = DefectAuxNetConfig(tasks=("classification", "segmentation"))
    y_true, y_pred = batch()
    weights = {"segmentation": np.array([0.0, 1.0]), "classification": np.array([1.0, 0.0])}
    losses = MultiTaskLoss(config)(y_true, y_pred, weights)
    second_dice = float(dice_loss(y_true["segmentation"][1:], y_pred["segmentation"][1:]))
    np.testing.assert_allclose(float(losses["segmentation"]), second_dice, rtol=1e-5)
    np.testing.assert_allclose(float(losses["classification"]), -np.log(0.8), rtol=1e-5)


def test_no_annotated_example_gives_zero_not_nan():
    config = DefectAuxNetConfig(tasks=("segmentation",))
    y_true, y_pred = batch()
    losses = MultiTaskLoss(config)(y_true, y_pred, {"segmentation": np.zeros(2)})
    assert float(losses["total"]) == 0.0


@pytest.mark.parametrize("name", ["bce", "jaccard", "dice+bce", "jaccard+bce"])
def test_segmentation_loss_is_selectable(name):
    y_true, y_pred = batch()
    config = DefectAuxNetConfig(tasks=("segmentation",), segmentation_loss=name)
    dice_config = DefectAuxNetConfig(tasks=("segmentation",))
    assert float(MultiTaskLoss(config)(y_true, y_pred)["total"]) != pytest.approx(
        float(MultiTaskLoss(dice_config)(y_true, y_pred)["total"])
    )


@pytest.mark.parametrize("name", ["dice", "bce"])
def test_segmentation_weights_in_y_true_weight_the_pixels(name):
    config = DefectAuxNetConfig(tasks=("segmentation",), segmentation_loss=name)
    y_true, y_pred = batch()
    weights = np.random.default_rng(1).uniform(0.5, 3.0, (2, 4, 4, 1)).astype("float32")
    loss = SEGMENTATION_LOSS_FUNCTIONS[name]
    weighted = float(loss(y_true["segmentation"], y_pred["segmentation"], weights))
    plain = float(loss(y_true["segmentation"], y_pred["segmentation"]))
    losses = MultiTaskLoss(config)(y_true, y_pred)
    np.testing.assert_allclose(float(losses["segmentation"]), plain, rtol=1e-5)
    losses = MultiTaskLoss(config)({**y_true, "segmentation_weights": weights}, y_pred)
    np.testing.assert_allclose(float(losses["segmentation"]), weighted, rtol=1e-5)
    assert weighted != pytest.approx(plain)


def test_segmentation_weights_and_missing_masks_combine():
    config = DefectAuxNetConfig(tasks=("segmentation",))
    y_true, y_pred = batch()
    weights = np.random.default_rng(1).uniform(0.5, 3.0, (2, 4, 4, 1)).astype("float32")
    losses = MultiTaskLoss(config)(
        {**y_true, "segmentation_weights": weights}, y_pred, {"segmentation": np.array([0.0, 1.0])}
    )
    expected = dice_loss(y_true["segmentation"][1:], y_pred["segmentation"][1:], weights[1:])
    np.testing.assert_allclose(float(losses["segmentation"]), float(expected), rtol=1e-5)
