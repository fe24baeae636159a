"""Cross-validation as the two-stage papers report it: per-image AP averaged over the
folds, false positives and false negatives summed.

Bozic et al. (ICPR 2020, section IV-D) compute each metric per fold rather than on the
folds' scores pooled, because the scores of models trained on different folds are not
calibrated to one another; the reference code (`join_folds_results.py` of
vicoslab/mixed-segdec-net-comind2021) averages AP and sums FP and FN the same way.
"""

import dataclasses
import os
from typing import Sequence

from defect_aux_net import atomic_writes

# The `image_ap` fields of a metrics file (`Evaluator.result()`) a fold's result needs.
_FIELDS = ("ap", "fp", "fn", "tp", "tn")


@dataclasses.dataclass(frozen=True)
class FoldResult:
    """One fold's per-image defect metrics on the images it tests on.

    Attributes:
      name: the fold, e.g. "fold1".
      ap: per-image average precision (`ImageDefectMetrics`).
      fp: defect-free images rejected at the fold's best-F1 threshold.
      fn: defective images missed at that threshold.
      images: images tested.
      defective: defective images among them.
    """

    name: str
    ap: float
    fp: int
    fn: int
    images: int
    defective: int


def fold_result(name: str, metrics: dict, source: str) -> FoldResult:
    """A fold's result from its evaluation (`Evaluator.result()`, a metrics_<split>.json).

    Args:
      name: the fold's name.
      metrics: the evaluation, with its `image_ap` section.
      source: where `metrics` was read, for errors.

    Raises:
      ValueError: naming `source`, when `image_ap` or one of its fields is missing, or
        the fold tests no defective image (its AP would be 0 whatever the model).
    """
    section = metrics.get("image_ap") if isinstance(metrics, dict) else None
    missing = [field for field in _FIELDS if field not in (section or {})]
    if missing:
        raise ValueError(
            f"{source} has no per-image AP of the fold ({name}): `image_ap` lacks "
            f"{missing}. Evaluate the fold's test split with a model that scores images."
        )
    defective = int(section["tp"]) + int(section["fn"])
    if defective == 0:
        raise ValueError(
            f"{source}: fold {name} tests no defective image, so its AP says nothing; "
            "give each fold defective images."
        )
    return FoldResult(
        name=name,
        ap=float(section["ap"]),
        fp=int(section["fp"]),
        fn=int(section["fn"]),
        images=defective + int(section["fp"]) + int(section["tn"]),
        defective=defective,
    )


def aggregate(folds: Sequence[FoldResult]) -> dict:
    """The papers' summary: `ap` the folds' mean, `fp`, `fn`, `images`, `defective` sums.

    Raises:
      ValueError: for no folds or repeated fold names.
    """
    names = [fold.name for fold in folds]
    if not folds or len(set(names)) != len(names):
        raise ValueError(f"Cross-validation needs distinct folds, got {names}.")
    return {
        "folds": len(folds),
        "ap": sum(fold.ap for fold in folds) / len(folds),
        **{
            field: sum(getattr(fold, field) for fold in folds)
            for field in ("fp", "fn", "images", "defective")
        },
    }


def report(folds: Sequence[FoldResult], commands: Sequence[str] = ()) -> dict:
    """`{"folds": [per-fold results], "aggregate": aggregate(folds), "commands": ...}`."""
    return {
        "folds": [dataclasses.asdict(fold) for fold in folds],
        "aggregate": aggregate(folds),
        "commands": list(commands),
    }


def report_markdown(values: dict, heading: str) -> str:
    """`report()` as a markdown table, one row per fold and the aggregate last."""
    columns = ("ap", "fp", "fn", "images", "defective")
    lines = [
        f"# Cross-validation: {heading}",
        "",
        "| fold | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    rows = [(fold["name"], fold) for fold in values["folds"]]
    rows.append(("all (AP mean, counts summed)", values["aggregate"]))
    for name, row in rows:
        cells = [f"{row['ap']:.4f}"] + [str(row[column]) for column in columns[1:]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Per-image AP of each fold's test images; FP (defect-free images rejected) and FN "
        "(defective images missed) at each fold's best-F1 threshold.",
    ]
    if values["commands"]:
        lines += ["", "Each fold is one launch.train run:", "", "```"]
        lines += list(values["commands"]) + ["```"]
    return "\n".join(lines) + "\n"


def write_report(values: dict, heading: str, folder: str) -> dict:
    """Writes cross_validation.json and .md into `folder` whole; returns their paths."""
    paths = {
        "json": os.path.join(folder, "cross_validation.json"),
        "md": os.path.join(folder, "cross_validation.md"),
    }
    atomic_writes.write_json(paths["json"], values)
    atomic_writes.write_text(paths["md"], report_markdown(values, heading))
    return paths
