import numpy as np
import pytest

from defect_aux_net.evaluation.image_rule_choice import (
    ap_standard_error,
    choose_image_rule,
    weight_grid,
)

LABELS = [1, 1, 0, 0]
# Ranks the defective images last: AP = 1/2 * 1/3 + 1/2 * 2/4 = 5/12.
BACKWARD = [0.1, 0.2, 0.9, 0.8]
# Ranks them first, with a narrow gap: 0.55 > 0.5.
NARROW = [0.55, 0.7, 0.5, 0.4]


def test_the_grid_covers_the_simplex_classifier_heaviest_first():
    grid = weight_grid(("classification", "mask", "detection"))
    # Compositions of 10 steps into 3 parts: C(12, 2).
    assert len(grid) == 66
    assert grid[0] == (1.0, 0.0, 0.0) and grid[-1] == (0.0, 0.0, 1.0)
    assert all(abs(sum(weights) - 1) < 1e-9 for weights in grid)
    assert weight_grid(("detection", "mask"), step=0.5) == [
        (0.0, 1.0, 0.0), (0.0, 0.5, 0.5), (0.0, 0.0, 1.0)
    ]
    with pytest.raises(ValueError, match="divide 1"):
        weight_grid(("mask", "detection"), step=0.3)


def test_detection_ranking_perfectly_takes_the_weight():
    choice = choose_image_rule(LABELS, {"classification": BACKWARD, "detection": NARROW})
    assert choice.aps["classification"] == pytest.approx(5 / 12)
    assert choice.aps["detection"] == 1.0
    # Any classifier weight w >= 0.1 breaks the order: image 0 scores
    # 0.1 w + 0.55 (1 - w) < 0.9 w + 0.5 (1 - w) (image 2) once w > 0.05 / 0.85.
    assert choice.rule.weights_by_source() == {
        "classification": 0.0, "mask": 0.0, "detection": 1.0
    }
    assert choice.aps["fused"] == 1.0
    # Best F1 on the fused (detection) score at the lowest defective score, 0.55; the
    # threshold midway to the highest defect-free one, 0.5.
    assert choice.rule.threshold == pytest.approx(0.525)


def test_on_ties_the_equal_blend_wins():
    forward = [0.9, 0.8, 0.1, 0.2]
    choice = choose_image_rule(LABELS, {"classification": forward, "detection": NARROW})
    # Both heads rank perfectly, as do all blends: the equal blend stays.
    assert choice.rule.weights == (0.5, 0.0, 0.5)
    # Fused: 0.725, 0.75 (defective), 0.3, 0.3; midway between 0.725 and 0.3.
    assert choice.rule.threshold == pytest.approx(0.5125)


# Each head misplaces one image; half and half orders all four.
BLEND_CLASSIFICATION = [0.9, 0.3, 0.4, 0.1]  # defect-free image 2 above defective image 1
BLEND_MASK = [0.2, 0.9, 0.1, 0.3]  # defect-free image 3 above defective image 0


def test_the_equal_blend_beats_each_head():
    choice = choose_image_rule(LABELS, {"classification": BLEND_CLASSIFICATION, "mask": BLEND_MASK})
    # Classifier: precision 1 at recall 1/2, then 2/3 at recall 1.
    assert choice.aps["classification"] == pytest.approx(1 / 2 + 1 / 2 * 2 / 3)
    assert choice.aps["mask"] < 1
    assert choice.rule.weights == (0.5, 0.5, 0.0)
    assert choice.aps["fused"] == 1.0
    # Fused: 0.55, 0.6 (defective), 0.25, 0.2: midway between 0.55 and 0.25.
    assert choice.rule.threshold == pytest.approx(0.4, abs=1e-6)


# The mask is confidently wrong on defect-free image 2; the classifier ranks all four.
RIGHT_CLASSIFICATION = [0.9, 0.6, 0.5, 0.1]
WRONG_MASK = [0.9, 0.1, 0.9, 0.1]


def test_a_blend_better_than_the_equal_one_by_its_sampling_error_takes_the_weight():
    # Ten copies of the four images: twenty defective images make the gain certain.
    labels, classification, mask = (np.tile(values, 10) for values in (
        LABELS, RIGHT_CLASSIFICATION, WRONG_MASK
    ))
    choice = choose_image_rule(labels, {"classification": classification, "mask": mask})
    # The equal blend (0.9, 0.35, 0.7, 0.1) puts image 2 above image 1: AP 5/6. The
    # classifier alone ranks all four (AP 1), more than sqrt(5/6 * 1/6 / 20) = 0.083
    # better; the grid meets it first (classifier-heaviest first).
    assert choice.rule.weights == (1.0, 0.0, 0.0)
    assert choice.aps["fused"] == 1.0
    assert choice.rule.threshold == pytest.approx(0.55)


def test_a_better_blend_on_two_defective_images_keeps_the_equal_blend():
    choice = choose_image_rule(LABELS, {"classification": RIGHT_CLASSIFICATION, "mask": WRONG_MASK})
    # The classifier ranks all four images (AP 1 against 5/6), but two defective images
    # cannot tell: the gain is below 1/2, one image's share of the AP.
    assert ap_standard_error(5 / 6, 2) == 0.5
    assert choice.rule.weights == (0.5, 0.5, 0.0)
    assert choice.aps["fused"] == pytest.approx(5 / 6)
    # Best F1 of the fused scores 0.9, 0.35 | 0.7, 0.1: 0.35 takes both defective images
    # and one other; the threshold lies midway to the next score, 0.1.
    assert choice.rule.threshold == pytest.approx(0.225)


def test_no_rule_for_one_head_or_a_split_of_one_kind():
    single = choose_image_rule(LABELS, {"mask": NARROW})
    assert single.rule is None and single.aps == {"mask": 1.0}
    assert "single head" in single.reason
    one_kind = choose_image_rule([0, 0, 0, 0], {"mask": NARROW, "detection": BACKWARD})
    assert one_kind.rule is None and "defective and defect-free" in one_kind.reason


def test_evidence_of_another_length_is_named():
    with pytest.raises(ValueError, match=r"`mask` evidence must hold one score per image \(4\)"):
        choose_image_rule(LABELS, {"classification": BACKWARD, "mask": np.zeros(3)})
