"""Markdown tables of an `Evaluator.result()`."""


def _format(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return str(value) if isinstance(value, int) else f"{value:.4f}"


def _table(rows: list[tuple[str, dict]]) -> list[str]:
    """A markdown table: one row per `(name, metrics)`, columns in first-seen order."""
    columns = []
    for _, metrics in rows:
        columns += [column for column in metrics if column not in columns]
    lines = [
        "| | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for name, metrics in rows:
        cells = [_format(metrics[column]) if column in metrics else "" for column in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def metrics_markdown(result: dict) -> str:
    """Renders a metrics dict as markdown, one table per top-level key.

    Each table has an `all` row with the key's own metrics and, when the key has a
    `per_class` entry, one row per class. Floats are written with 4 decimals.

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
        overall = {name: value for name, value in metrics.items() if name != "per_class"}
        rows = [("all", overall)] + list(metrics.get("per_class", {}).items())
        sections.append("\n".join([f"### {key}", "", *_table(rows)]))
    return "\n\n".join(sections) + "\n"
