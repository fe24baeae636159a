import numpy as np
import pytest
import tensorflow as tf

from defect_aux_net.losses.segdec import (
    balance_weights,
    decision_loss,
    dilate_masks,
    segmentation_loss,
    soft_targets,
)


def test_soft_targets_average_a_reflection_padded_window_by_hand():
    # Stride 2 on 4x4: reflection pad 2 maps padded rows 0..7 to rows 2,1,0,1,2,3,2,1;
    # output row i averages padded rows 2i..2i+4, i.e. rows {2,1,0,1,2} and {0,1,2,3,2}.
    # A single 1 at (1, 1) is counted twice in the first window, once in the second.
    values = np.zeros((1, 4, 4, 1), np.float32)
    values[0, 1, 1, 0] = 1
    expected = np.array([[2 * 2, 2 * 1], [1 * 2, 1 * 1]], np.float32) / 25
    np.testing.assert_allclose(np.array(soft_targets(values, stride=2))[0, ..., 0], expected, rtol=1e-6)


def test_soft_targets_at_stride_8_give_one_eighth_of_the_input_and_keep_constants():
    values = np.full((2, 64, 96, 3), 0.25, np.float32)
    targets = np.array(soft_targets(values))
    assert targets.shape == (2, 8, 12, 3)
    np.testing.assert_allclose(targets, 0.25, rtol=1e-6)


def test_dilation_is_a_centred_square_max_filter():
    masks = np.zeros((1, 5, 5, 1), np.float32)
    masks[0, 2, 2, 0] = 1
    masks[0, 0, 4, 0] = 1
    expected = np.zeros((5, 5), np.float32)
    expected[1:4, 1:4] = 1
    expected[0:2, 3:5] = 1  # The corner pixel's square, cut by the border.
    np.testing.assert_array_equal(np.array(dilate_masks(masks, 3))[0, ..., 0], expected)
    np.testing.assert_array_equal(np.array(dilate_masks(masks, 1)), masks)


@pytest.mark.parametrize(
    "epoch, expected",
    [(0, (1.0, 0.0)), (25, (0.5, 0.005)), (50, (0.0, 0.01))],
)
def test_balance_weights_at_epochs_0_n_and_N(epoch, expected):
    # KolektorSDD: N = 50 epochs, delta = 0.01.
    np.testing.assert_allclose(balance_weights(epoch, 50, 0.01), expected, rtol=1e-12)


def test_segmentation_loss_weights_pixels_and_skips_images_without_masks():
    # Logits 0: the BCE is log 2 at every pixel whatever the target.
    masks = np.zeros((2, 64, 64, 1), np.float32)
    masks[0, 20:30, 20:30] = 1
    logits = np.zeros((2, 8, 8, 1), np.float32)
    weights = np.full((2, 64, 64, 1), 3.0, np.float32)
    loss = segmentation_loss(masks, logits, np.array([1.0, 0.0]), 7, weights)
    np.testing.assert_allclose(float(loss), 3 * np.log(2), rtol=1e-6)
    assert float(segmentation_loss(masks, logits, np.zeros(2), 7)) == 0


def test_segmentation_loss_against_soft_targets_by_hand():
    # A full mask: soft target 1 everywhere, BCE of logit 2 against 1 is log(1 + e^-2).
    masks = np.ones((1, 64, 64, 1), np.float32)
    logits = np.full((1, 8, 8, 1), 2.0, np.float32)
    loss = segmentation_loss(masks, logits, np.ones(1), 1)
    np.testing.assert_allclose(float(loss), np.log1p(np.exp(-2.0)), rtol=1e-6)


def test_decision_loss_is_mean_bce_with_logits():
    labels = np.array([[1.0], [0.0]], np.float32)
    logits = np.array([[0.0], [2.0]], np.float32)
    expected = (np.log(2) + np.log1p(np.exp(2.0))) / 2
    np.testing.assert_allclose(float(decision_loss(labels, logits)), expected, rtol=1e-6)


def test_a_label_only_image_gets_no_segmentation_gradient_but_a_decision_gradient():
    # Mixed supervision: image 1 has a mask in the batch but has_mask 0 (label only).
    masks = np.ones((2, 16, 16, 1), np.float32)  # soft target 1 at the 2x2 pixels at 1/8
    # Logit 2 at every pixel of image 0, -1 of image 1.
    segmentation_logits = tf.constant(
        np.array([2.0, -1.0], np.float32).reshape(2, 1, 1, 1) * np.ones((1, 2, 2, 1), np.float32)
    )
    decision_logits = tf.constant([[0.5], [-0.5]], tf.float32)
    labels = np.ones((2, 1), np.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch([segmentation_logits, decision_logits])
        seg = segmentation_loss(
            masks, segmentation_logits, np.array([1.0, 0.0]), 1
        )
        dec = decision_loss(labels, decision_logits)
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    # d BCE / d logit = sigmoid(x) - t, over the 4 pixels of the one image with a mask.
    gradient = np.asarray(tape.gradient(seg, segmentation_logits))
    np.testing.assert_allclose(gradient[0], (sigmoid(2.0) - 1) / 4, rtol=1e-6)
    np.testing.assert_array_equal(gradient[1], 0.0)
    # The decision loss averages over both images: each gets (sigmoid(z) - 1) / 2.
    np.testing.assert_allclose(
        tape.gradient(dec, decision_logits),
        [[(sigmoid(0.5) - 1) / 2], [(sigmoid(-0.5) - 1) / 2]],
        rtol=1e-6,
    )


def test_summed_losses_are_the_reference_loop_over_single_images():
    # The reference runs one image at a time and adds up the images' losses; a label-only
    # image (has_mask 0) adds its decision loss only.
    rng = np.random.default_rng(0)
    masks = (rng.random((3, 64, 64, 2)) > 0.9).astype(np.float32)
    logits = rng.normal(size=(3, 8, 8, 2)).astype(np.float32)
    weights = rng.random((3, 64, 64, 2)).astype(np.float32) + 1
    has_mask = np.array([1.0, 0.0, 1.0], np.float32)
    labels = masks.max(axis=(1, 2))
    decisions = rng.normal(size=(3, 2)).astype(np.float32)
    one = lambda i: slice(i, i + 1)  # noqa: E731
    segmentation = sum(
        float(segmentation_loss(masks[one(i)], logits[one(i)], np.ones(1), 3, weights[one(i)]))
        for i in (0, 2)
    )
    decision = sum(float(decision_loss(labels[one(i)], decisions[one(i)])) for i in range(3))
    summed = segmentation_loss(masks, logits, has_mask, 3, weights, reduction="sum")
    np.testing.assert_allclose(float(summed), segmentation, rtol=1e-6)
    np.testing.assert_allclose(
        float(decision_loss(labels, decisions, reduction="sum")), decision, rtol=1e-6
    )
    # The mean divides by the images that count: two masked images, three decisions.
    mean = segmentation_loss(masks, logits, has_mask, 3, weights)
    np.testing.assert_allclose(float(mean), segmentation / 2, rtol=1e-6)
    np.testing.assert_allclose(float(decision_loss(labels, decisions)), decision / 3, rtol=1e-6)


def test_an_unknown_reduction_is_named():
    with pytest.raises(ValueError, match="reduction"):
        decision_loss(np.ones((1, 1)), np.zeros((1, 1)), reduction="max")
