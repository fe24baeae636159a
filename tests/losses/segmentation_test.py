import numpy as np
import pytest

from defect_aux_net.losses.segmentation import (
    SEGMENTATION_LOSS_FUNCTIONS,
    bce_loss,
    dice_loss,
    jaccard_loss,
)

Y_TRUE = np.array([[[[1.0], [0.0]], [[1.0], [0.0]]], [[[0.0], [0.0]], [[0.0], [0.0]]]])
Y_PRED = np.array([[[[0.8], [0.4]], [[0.6], [0.0]]], [[[0.0], [0.0]], [[0.0], [0.0]]]])


def test_dice_loss_by_hand():
    # Over the batch (example 1 is empty, predicted empty): sum(y*p) = 1.4,
    # sum(y) = 2, sum(p) = 1.8 -> 1 - (2.8 + 1) / (3.8 + 1).
    np.testing.assert_allclose(float(dice_loss(Y_TRUE, Y_PRED)), 1 - 3.8 / 4.8, rtol=1e-6)


def test_a_stray_pixel_on_an_empty_image_costs_its_share_of_the_batch():
    # Per image, p = 0.5 on one pixel of the empty example 1 would cost it
    # 1 - 1 / 1.5 = 0.33 of a perfect score; over the batch it adds 0.5 to sum(p).
    y_pred = Y_PRED.copy()
    y_pred[1, 0, 0, 0] = 0.5
    np.testing.assert_allclose(float(dice_loss(Y_TRUE, y_pred)), 1 - 3.8 / 5.3, rtol=1e-6)


def test_dice_and_jaccard_average_the_classes():
    # Class 0 is Y_TRUE/Y_PRED; class 1 has one true pixel predicted 0.5:
    # Dice 1 - (1 + 1) / (1.5 + 1), Jaccard 1 - (0.5 + 1) / (1 + 0.5 - 0.5 + 1).
    y_true = np.concatenate([Y_TRUE, np.zeros_like(Y_TRUE)], axis=-1)
    y_pred = np.concatenate([Y_PRED, np.zeros_like(Y_PRED)], axis=-1)
    y_true[0, 0, 0, 1], y_pred[0, 0, 0, 1] = 1.0, 0.5
    np.testing.assert_allclose(
        float(dice_loss(y_true, y_pred)), np.mean([1 - 3.8 / 4.8, 1 - 2.0 / 2.5]), rtol=1e-6
    )
    np.testing.assert_allclose(
        float(jaccard_loss(y_true, y_pred)), np.mean([1 - 2.4 / 3.4, 1 - 1.5 / 2.0]), rtol=1e-6
    )


def test_jaccard_loss_by_hand():
    # Union = 2 + 1.8 - 1.4 = 2.4 -> 1 - 2.4 / 3.4.
    np.testing.assert_allclose(float(jaccard_loss(Y_TRUE, Y_PRED)), 1 - 2.4 / 3.4, rtol=1e-6)


def test_bce_loss_by_hand():
    # Mean over all 8 pixels: y=1 p=0.8; y=0 p=0.4; y=1 p=0.6; five y=0 p=0 (clipped to 1e-7).
    terms = -np.log([0.8, 0.6, 0.6] + [1 - 1e-7] * 5)
    np.testing.assert_allclose(float(bce_loss(Y_TRUE, Y_PRED)), terms.mean(), rtol=1e-4)


@pytest.mark.parametrize("name", ["dice+bce", "jaccard+bce"])
def test_combined_losses_are_sums(name):
    first = {"dice+bce": dice_loss, "jaccard+bce": jaccard_loss}[name]
    np.testing.assert_allclose(
        np.array(SEGMENTATION_LOSS_FUNCTIONS[name](Y_TRUE, Y_PRED)),
        np.array(first(Y_TRUE, Y_PRED)) + np.array(bce_loss(Y_TRUE, Y_PRED)),
        rtol=1e-6,
    )


# Example 0 pixel weights (y = 1, 0, 1, 0; p = 0.8, 0.4, 0.6, 0.0): 2, 1, 0.5, 1;
# example 1 all 1.
WEIGHTS = np.array([[[[2.0], [1.0]], [[0.5], [1.0]]], [[[1.0], [1.0]], [[1.0], [1.0]]]])


def test_weighted_dice_loss_by_hand():
    # sum(w*y*p) = 2*0.8 + 0.5*0.6 = 1.9, sum(w*y) = 2.5, sum(w*p) = 1.6 + 0.4 + 0.3 = 2.3.
    np.testing.assert_allclose(float(dice_loss(Y_TRUE, Y_PRED, WEIGHTS)), 1 - 4.8 / 5.8, rtol=1e-6)


def test_weighted_jaccard_loss_by_hand():
    # Union = 2.5 + 2.3 - 1.9 = 2.9 -> 1 - 2.9 / 3.9.
    np.testing.assert_allclose(
        float(jaccard_loss(Y_TRUE, Y_PRED, WEIGHTS)), 1 - 2.9 / 3.9, rtol=1e-6
    )


def test_weighted_bce_loss_by_hand():
    terms = -np.log([0.8, 0.6, 0.6] + [1 - 1e-7] * 5)
    expected = np.dot([2.0, 1.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0], terms) / 8.5
    np.testing.assert_allclose(float(bce_loss(Y_TRUE, Y_PRED, WEIGHTS)), expected, rtol=1e-4)


@pytest.mark.parametrize("name", sorted(SEGMENTATION_LOSS_FUNCTIONS))
def test_unit_weights_change_nothing(name):
    loss = SEGMENTATION_LOSS_FUNCTIONS[name]
    np.testing.assert_allclose(
        np.array(loss(Y_TRUE, Y_PRED, np.ones_like(WEIGHTS))), np.array(loss(Y_TRUE, Y_PRED)),
        rtol=1e-6,
    )


@pytest.mark.parametrize("name", ["dice+bce", "jaccard+bce"])
def test_weighted_combined_losses_are_sums(name):
    first = {"dice+bce": dice_loss, "jaccard+bce": jaccard_loss}[name]
    np.testing.assert_allclose(
        np.array(SEGMENTATION_LOSS_FUNCTIONS[name](Y_TRUE, Y_PRED, WEIGHTS)),
        np.array(first(Y_TRUE, Y_PRED, WEIGHTS)) + np.array(bce_loss(Y_TRUE, Y_PRED, WEIGHTS)),
        rtol=1e-6,
    )
