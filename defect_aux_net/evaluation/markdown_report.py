"""Markdown tables of an `Evaluator.result()`."""

COUNTS = ("tp", "fp", "fn", "tn")
# What the counts mean to whoever signs the inspection off.
COUNTS_NOTE = (
    "tp/fp/fn/tn count images at the thresholds shown; a class's row uses that class's "
    "threshold, and an `all` row without one calls an image defective when any class "
    "reaches its threshold. In the `all` row, fn are missed defective images and fp "
    "defect-free images rejected. An `is_defective` row counts the model's own decision."
)


def _format(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return str(value) if isinstance(value, int) else f"{value:.4f}"


def _table(rows: list[tuple[str, dict]], corner: str = "") -> list[str]:
    """A markdown table: one row per `(name, metrics)`, columns in first-seen order."""
    columns = []
    for _, metrics in rows:
        columns += [column for column in metrics if column not in columns]
    lines = [
        (f"| {corner} | " if corner else "| | ") + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name, metrics in rows:
        cells = [_format(metrics[column]) if column in metrics else "" for column in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def _confusion_matrix(matrix: dict) -> list[str]:
    """The confusion matrix as a table: rows true class, columns predicted class."""
    classes = matrix["classes"]
    rows = [(name, dict(zip(classes, counts))) for name, counts in zip(classes, matrix["counts"])]
    lines = ["", "Confusion matrix (images; rows: true class, columns: predicted class):", ""]
    lines += _table(rows, corner="true \\ predicted")
    if matrix.get("images_with_several_labels"):
        lines += [
            "",
            f"{matrix['images_with_several_labels']} images with several labels are not in "
            "the matrix; the per-class counts include them.",
        ]
    return lines


def metrics_markdown(result: dict) -> str:
    """Renders a metrics dict as markdown, one table per top-level key.

    Each table has an `all` row with the key's own metrics, one row per entry of its
    `per_class` or `per_source` (each class, each image score) and one per other
    entry that is a dict of metrics (named by its key). Floats are written with 4
    decimals. A table with confusion counts is followed by what they mean, and a `confusion_matrix`
    entry (`image_confusion_matrix`) by a table of its own.

    Args:
      result: `Evaluator.result()` (or a dict of the same layout).

    Returns:
      markdown text: a `### <key>` heading and a table per key.
    """
    if not isinstance(result, dict):
        raise TypeError(f"`result` must be a dict of metrics, got {type(result).__name__}.")
    sections = []
    for key, metrics in result.items():
        if not isinstance(metrics, dict):
            raise TypeError(
                f"`result['{key}']` must be a dict of metrics, got {type(metrics).__name__}."
            )
        overall = {name: value for name, value in metrics.items() if not isinstance(value, dict)}
        rows = [("all", overall)]
        for name, value in metrics.items():
            if name in ("per_class", "per_source"):
                rows += list(value.items())
            elif isinstance(value, dict) and name != "confusion_matrix":
                rows.append((name, value))  # E.g. `image_ap`'s `is_defective`.
        lines = [f"### {key}", "", *_table(rows)]
        if any(count in row for _, row in rows for count in COUNTS):
            lines += ["", COUNTS_NOTE]
        if "confusion_matrix" in metrics:
            lines += _confusion_matrix(metrics["confusion_matrix"])
        sections.append("\n".join(lines))
    return "\n\n".join(sections) + "\n"
