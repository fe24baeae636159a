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


def test_non_dict_section_is_named():
    with pytest.raises(TypeError, match=r"result\['map'\]"):
        metrics_markdown({"map": 0.5})
