import json
import os

import numpy as np
import pytest

from defect_aux_net.inference.postprocessing import ImageRule
from defect_aux_net.training import run_files, thresholds_file

CLASS_NAMES = ("scratch", "pit")


@pytest.mark.parametrize(
    "content, expected",
    [
        ('{"scratch": 0.4, "pit"', r"thresholds.json is not valid JSON"),
        ('{"scratch": 0.4}', r"thresholds.json has no threshold for class\(es\) \['pit'\]"),
        ('{"scratch": 0.4, "pit": "high"}', r"threshold of 'pit' must be in \[0, 1\], got 'high'"),
    ],
    ids=["truncated", "missing_class", "not_a_number"],
)
def test_broken_thresholds_are_named(tmp_path, content, expected):
    (tmp_path / "thresholds.json").write_text(content)
    with pytest.raises(ValueError, match=expected):
        thresholds_file.read_thresholds(str(tmp_path), CLASS_NAMES)


def test_thresholds_round_trip_in_class_order(tmp_path):
    path = run_files.model_dir_paths(str(tmp_path))["thresholds"]
    thresholds_file.write_thresholds(CLASS_NAMES, [0.25, 0.75], path)
    np.testing.assert_array_equal(
        thresholds_file.read_thresholds(str(tmp_path), ("pit", "scratch")), [0.75, 0.25]
    )
    assert [name for name in os.listdir(tmp_path)] == ["thresholds.json"]  # No partial left.


def test_the_image_rule_round_trips_beside_the_thresholds(tmp_path):
    model_dir = str(tmp_path)
    path = run_files.model_dir_paths(model_dir)["thresholds"]
    rule = ImageRule.from_weights({"classification": 0.3, "detection": 0.7}, 0.45)
    thresholds_file.write_thresholds(CLASS_NAMES, [0.25, 0.75], path, rule)
    assert json.loads((tmp_path / "thresholds.json").read_text()) == {
        "scratch": 0.25, "pit": 0.75,
        "image_score": {
            "weights": {"classification": 0.3, "mask": 0.0, "detection": 0.7},
            "threshold": 0.45,
        },
    }
    assert thresholds_file.read_image_rule(model_dir) == rule
    # The per-class thresholds read as before, beside the rule.
    np.testing.assert_array_equal(
        thresholds_file.read_thresholds(model_dir, CLASS_NAMES), [0.25, 0.75]
    )


def test_a_thresholds_file_without_an_image_rule_keeps_the_per_class_rule(tmp_path):
    # As written before image rules, and for single-head models.
    (tmp_path / "thresholds.json").write_text('{"scratch": 0.4, "pit": 0.6}')
    assert thresholds_file.read_image_rule(str(tmp_path)) is None
    np.testing.assert_allclose(thresholds_file.read_thresholds(str(tmp_path), CLASS_NAMES), [0.4, 0.6])
    assert thresholds_file.read_image_rule(str(tmp_path / "no_run")) is None


@pytest.mark.parametrize(
    "rule, expected",
    [
        ('{"weights": {"mask": 0.5, "detection": 0.6}, "threshold": 0.5}', "summing to 1"),
        ('{"weights": {"counting": 1.0}, "threshold": 0.5}', "among"),
        ('{"weights": {"mask": 1.0}}', "exactly `weights` and `threshold`"),
        ('{"weights": {"mask": "all"}, "threshold": 0.5}', "must map sources to numbers"),
    ],
    ids=["sum", "source", "threshold_missing", "not_a_number"],
)
def test_a_broken_image_rule_is_named(tmp_path, rule, expected):
    (tmp_path / "thresholds.json").write_text(f'{{"scratch": 0.4, "image_score": {rule}}}')
    with pytest.raises(ValueError, match=f"thresholds.json: bad 'image_score'.*{expected}"):
        thresholds_file.read_image_rule(str(tmp_path))


def test_a_class_named_like_the_image_rule_is_refused_with_a_rule(tmp_path):
    path = str(tmp_path / "thresholds.json")
    rule = ImageRule.from_weights({"mask": 1.0}, 0.5)
    with pytest.raises(ValueError, match="A class is named 'image_score'"):
        thresholds_file.write_thresholds(["image_score", "pit"], [0.5, 0.5], path, rule)
