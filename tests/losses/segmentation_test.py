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
    # Example 0: sum(y*p) = 1.4, sum(y) = 2, sum(p) = 1.8 -> 1 - (2.8 + 1) / (3.8 + 1).
    # Example 1: empty mask predicted empty -> 1 - 1/1 = 0.
    np.testing.assert_allclose(np.array(dice_loss(Y_TRUE, Y_PRED)), [1 - 3.8 / 4.8, 0.0], rtol=1e-6)


def test_jaccard_loss_by_hand():
    # Union = 2 + 1.8 - 1.4 = 2.4 -> 1 - 2.4 / 3.4.
    np.testing.assert_allclose(np.array(jaccard_loss(Y_TRUE, Y_PRED)), [1 - 2.4 / 3.4, 0.0],
                               rtol=1e-6, atol=1e-7)


def test_bce_loss_by_hand():
    expected = -np.mean([np.log(0.8), np.log(0.6), np.log(0.6), np.log(1 - 1e-7)])
    np.testing.assert_allclose(np.array(bce_loss(Y_TRUE, Y_PRED))[0], expected, rtol=1e-4)


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
    np.testing.assert_allclose(
        np.array(dice_loss(Y_TRUE, Y_PRED, WEIGHTS)), [1 - 4.8 / 5.8, 0.0], rtol=1e-6, atol=1e-7
    )


def test_weighted_jaccard_loss_by_hand():
    # Union = 2.5 + 2.3 - 1.9 = 2.9 -> 1 - 2.9 / 3.9.
    np.testing.assert_allclose(
        np.array(jaccard_loss(Y_TRUE, Y_PRED, WEIGHTS)), [1 - 2.9 / 3.9, 0.0], rtol=1e-6, atol=1e-7
    )


def test_weighted_bce_loss_by_hand():
    terms = -np.log([0.8, 0.6, 0.6, 1 - 1e-7])  # y=1 p=0.8; y=0 p=0.4; y=1 p=0.6; y=0 p=0
    expected = np.dot([2.0, 1.0, 0.5, 1.0], terms) / 4.5
    np.testing.assert_allclose(np.array(bce_loss(Y_TRUE, Y_PRED, WEIGHTS))[0], expected, rtol=1e-4)


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
