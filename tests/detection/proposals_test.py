import numpy as np

from defect_aux_net.detection.proposals import generate_proposals


def logit(p):
    return np.log(p / (1 - p))


def propose(scores, deltas, anchors, **kwargs):
    # One image; per level its scores (as probabilities), deltas and anchors.
    return generate_proposals(
        [logit(np.array(s, np.float32))[None] for s in scores],
        [np.array(d, np.float32)[None] for d in deltas],
        [np.array(a, np.float32) for a in anchors],
        **kwargs,
    )


def test_known_deltas_decode_and_clip():
    # Anchor centre (5, 25), side 10; dy 0.1 -> centre y 6; dx -0.2 -> centre x 23;
    # log 2 -> height 20; width unchanged -> box (-4, 18, 16, 28), clipped at y = 0.
    result = propose(
        [[0.9]], [[[0.1, -0.2, np.log(2.0), 0.0]]], [[[0, 20, 10, 30]]],
        image_size=(32, 64), num_proposals=2,
    )
    np.testing.assert_allclose(result["boxes"][0, 0], [0, 18, 16, 28], atol=1e-5)
    np.testing.assert_allclose(result["scores"][0, 0], 0.9, rtol=1e-6)
    assert int(result["num_proposals"][0]) == 1


def test_nms_and_padding():
    anchors = [[0, 0, 10, 10], [0, 1, 10, 11], [0, 3, 10, 13], [20, 20, 30, 30]]
    # Anchor 1 overlaps anchor 0 at IoU 0.82 > 0.7: suppressed. Anchor 2 overlaps
    # anchor 0 at 70/130 = 0.54 and anchor 1 at 80/120 = 0.67: kept.
    result = propose(
        [[0.9, 0.8, 0.7, 0.6]], [np.zeros((4, 4))], [anchors],
        image_size=(32, 32), num_proposals=6,
    )
    assert int(result["num_proposals"][0]) == 3
    np.testing.assert_allclose(result["boxes"][0, :3], [anchors[0], anchors[2], anchors[3]])
    np.testing.assert_allclose(result["scores"][0, :3], [0.9, 0.7, 0.6], rtol=1e-6)
    np.testing.assert_array_equal(result["boxes"][0, 3:], 0)
    np.testing.assert_array_equal(result["scores"][0, 3:], 0)


def test_tiny_boxes_dropped_and_top_k_per_level():
    # Level A: a 1-pixel box (dropped at min_size 2) and two boxes, of which the
    # pre-NMS top 1 keeps the best. Level B: one box. Merged by score across levels.
    result = propose(
        [[0.95, 0.5, 0.4], [0.7]],
        [np.zeros((3, 4)), np.zeros((1, 4))],
        [[[0, 0, 1, 1], [0, 0, 8, 8], [20, 20, 28, 28]], [[10, 10, 26, 26]]],
        image_size=(32, 32), pre_nms_top_k=1, num_proposals=4, min_size=2.0,
    )
    assert int(result["num_proposals"][0]) == 2
    np.testing.assert_allclose(result["boxes"][0, :2], [[10, 10, 26, 26], [0, 0, 8, 8]])
    np.testing.assert_allclose(result["scores"][0, :2], [0.7, 0.5], rtol=1e-6)
