"""The two-stage training pieces chained as a training step uses them, compiled with XLA."""

import numpy as np
import tensorflow as tf

from defect_aux_net.detection.anchors import generate_anchors
from defect_aux_net.detection.proposals import generate_proposals
from defect_aux_net.detection.roi_align import multilevel_roi_align
from defect_aux_net.detection.roi_sampling import sample_rois
from defect_aux_net.detection.rpn_targets import assign_rpn_targets
from tests.tolerances import assert_close, box_tolerance, float32_output_tolerance

SIZE = 64
LEVELS = range(2, 6)
ANCHORS = [generate_anchors((SIZE, SIZE), l, l, anchor_size=8, scales_per_octave=1) for l in LEVELS]


def chain(features, logits, deltas, gt_boxes, gt_classes, seed):
    rpn = assign_rpn_targets(gt_boxes, gt_classes, np.concatenate(ANCHORS), seed, num_samples=32)
    proposals = generate_proposals(
        logits, deltas, ANCHORS, (SIZE, SIZE), pre_nms_top_k=50, num_proposals=20
    )
    sample = sample_rois(
        proposals["boxes"], proposals["num_proposals"], gt_boxes, gt_classes, seed + 1,
        num_samples=16,
    )
    crops = multilevel_roi_align(features, sample["rois"], min_level=2, output_size=3)
    return {**rpn, **{f"proposal_{k}": v for k, v in proposals.items()}, **sample, "crops": crops}


def test_compiled_chain_equals_eager():
    rng = np.random.default_rng(3)
    features = [rng.normal(size=(2, SIZE >> l, SIZE >> l, 4)).astype(np.float32) for l in LEVELS]
    logits = [rng.normal(size=(2, len(a))).astype(np.float32) for a in ANCHORS]
    deltas = [0.1 * rng.normal(size=(2, len(a), 4)).astype(np.float32) for a in ANCHORS]
    gt_boxes = np.array(
        [[[4, 6, 30, 40], [36, 30, 60, 62]], [[10, 10, 50, 34], [0, 0, 0, 0]]], np.float32
    )
    gt_classes = np.array([[0, 1], [1, -1]])
    seed = tf.constant([4, 2])
    eager = chain(features, logits, deltas, gt_boxes, gt_classes, seed)
    compiled = tf.function(chain, jit_compile=True)(
        features, logits, deltas, gt_boxes, gt_classes, seed
    )
    # The chain did real work: positives in both stages, every slot of the samples used.
    assert eager["box_weights"].numpy().sum() > 0
    np.testing.assert_array_equal(eager["objectness_weights"].numpy().sum(axis=1), 32)
    assert eager["crops"].shape == (2, 16, 3, 3, 4)
    unit = float32_output_tolerance()
    for key, value in eager.items():
        if value.dtype.is_integer or key.endswith("weights") or key == "objectness_targets":
            np.testing.assert_array_equal(compiled[key], value, err_msg=key)
        elif key in ("rois", "proposal_boxes"):
            assert_close(compiled[key], value, box_tolerance(unit) * SIZE, key)
        elif key == "box_targets":  # weighted (10, 10, 5, 5)
            assert_close(compiled[key], value, 10 * unit, key)
        else:
            assert_close(compiled[key], value, unit, key)
