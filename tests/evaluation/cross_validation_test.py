"""The papers' cross-validation summary, on made-up fold results worked out by hand."""

import json

import pytest

from defect_aux_net.evaluation import cross_validation


def _metrics(ap, tp, fp, fn, tn):
    return {"image_ap": {"ap": ap, "tp": tp, "fp": fp, "fn": fn, "tn": tn, "f1": 0.5}}


# Three folds of 133 images, as KolektorSDD's Ultralytics copy cut by name.
_FOLDS = [
    cross_validation.fold_result("fold1", _metrics(1.0, 16, 0, 0, 117), "a.json"),
    cross_validation.fold_result("fold2", _metrics(0.9, 18, 2, 1, 112), "b.json"),
    cross_validation.fold_result("fold3", _metrics(0.95, 15, 1, 2, 115), "c.json"),
]


def test_fold_result_reads_the_image_ap_counts():
    assert _FOLDS[1] == cross_validation.FoldResult(
        name="fold2", ap=0.9, fp=2, fn=1, images=133, defective=19
    )


def test_ap_is_averaged_and_fp_fn_are_summed():
    summary = cross_validation.aggregate(_FOLDS)
    # AP (1.0 + 0.9 + 0.95) / 3; FP 0 + 2 + 1; FN 0 + 1 + 2.
    assert summary == {
        "folds": 3, "ap": pytest.approx(0.95), "fp": 3, "fn": 3, "images": 399, "defective": 52
    }


@pytest.mark.parametrize(
    "metrics, message",
    [
        ({"classification": {}}, r"a.json has no per-image AP of the fold \(fold1\): "
         r"`image_ap` lacks \['ap', 'fp', 'fn', 'tp', 'tn'\]"),
        ({"image_ap": {"ap": 1.0, "fp": 0, "fn": 0, "tp": 1}}, r"lacks \['tn'\]"),
        (_metrics(0.0, 0, 0, 0, 9), "a.json: fold fold1 tests no defective image"),
    ],
    ids=["no_image_ap", "no_tn", "no_defective"],
)
def test_a_fold_without_usable_image_ap_is_refused_naming_its_file(metrics, message):
    with pytest.raises(ValueError, match=message):
        cross_validation.fold_result("fold1", metrics, "a.json")


def test_aggregate_refuses_no_folds_and_repeated_folds():
    with pytest.raises(ValueError, match="distinct folds, got \\[\\]"):
        cross_validation.aggregate([])
    with pytest.raises(ValueError, match="'fold1', 'fold1'"):
        cross_validation.aggregate([_FOLDS[0], _FOLDS[0]])


def test_report_is_written_as_json_and_markdown(tmp_path):
    values = cross_validation.report(_FOLDS, ["python -m launch.train --dataset=x/fold1"])
    paths = cross_validation.write_report(values, "kolektor_sdd", str(tmp_path))
    assert json.loads((tmp_path / "cross_validation.json").read_text()) == json.loads(
        json.dumps(values)
    )
    assert paths["md"] == str(tmp_path / "cross_validation.md")
    lines = (tmp_path / "cross_validation.md").read_text().splitlines()
    assert lines[0] == "# Cross-validation: kolektor_sdd"
    assert "| fold2 | 0.9000 | 2 | 1 | 133 | 19 |" in lines
    assert "| all (AP mean, counts summed) | 0.9500 | 3 | 3 | 399 | 52 |" in lines
    assert "python -m launch.train --dataset=x/fold1" in lines
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "cross_validation.json", "cross_validation.md"
    ]
