import pytest

from defect_aux_net.evaluation.markdown_report import metrics_markdown

RESULT = {
    "classification": {
        "accuracy": 0.975,
        "f1": 0.5,
        "per_class": {
            "scratch": {"f1": 0.83333, "support": 12},
            "pit": {"f1": 0.25, "support": 3},
        },
    },
    "image_ap": {"ap": 0.8333333, "threshold": 0.7, "fp": 1, "fn": 0},
}


def test_one_table_per_key_with_per_class_rows():
    text = metrics_markdown(RESULT)
    assert "### classification" in text and "### image_ap" in text
    assert "| | accuracy | f1 | support |" in text
    assert "| all | 0.9750 | 0.5000 |  |" in text
    assert "| scratch |  | 0.8333 | 12 |" in text
    assert "| pit |  | 0.2500 | 3 |" in text
    assert "| all | 0.8333 | 0.7000 | 1 | 0 |" in text


def test_image_scores_and_the_decision_get_rows():
    image_ap = {
        "score": "fused", "ap": 0.9,
        "per_source": {"mask": {"ap": 0.8}, "fused": {"ap": 0.9}},
        "is_defective": {"tp": 3, "fp": 1},
    }
    text = metrics_markdown({"image_ap": image_ap})
    assert "| | score | ap | tp | fp |" in text
    assert "| all | fused | 0.9000 |  |  |" in text
    assert "| mask |  | 0.8000 |  |  |" in text
    assert "| fused |  | 0.9000 |  |  |" in text
    assert "| is_defective |  |  | 3 | 1 |" in text


def test_non_dict_section_is_named():
    with pytest.raises(TypeError, match=r"result\['map'\]"):
        metrics_markdown({"map": 0.5})


def test_counts_are_explained_and_the_confusion_matrix_gets_a_table():
    result = {
        "classification": {
            "precision": 0.5, "tp": 1, "fp": 1, "fn": 2, "tn": 6,
            "per_class": {"pit": {"tp": 1, "fp": 1, "fn": 2, "tn": 6, "threshold": 0.3}},
            "confusion_matrix": {
                "classes": ["pit", "defect-free"],
                "counts": [[1, 2], [1, 6]],
                "images_with_several_labels": 3,
            },
        },
        "segmentation": {"dice": 0.5},
    }
    text = metrics_markdown(result)
    classification, segmentation = text.split("### segmentation")
    assert "| all | 0.5000 | 1 | 1 | 2 | 6 |  |" in classification
    assert "| pit |  | 1 | 1 | 2 | 6 | 0.3000 |" in classification
    assert "fn are missed defective images and fp defect-free images rejected" in classification
    assert "| true \\ predicted | pit | defect-free |" in classification
    assert "| pit | 1 | 2 |" in classification and "| defect-free | 1 | 6 |" in classification
    assert "3 images with several labels are not in the matrix" in classification
    # No counts, no note; the matrix is no column of the `all` row.
    assert "missed" not in segmentation and "confusion_matrix" not in text
