"""Markdown of `launch.benchmark` results, with the issue's targets checked."""

from defect_aux_net.config import TASKS
from defect_aux_net.performance.inference_latency import MULTI_TASK

# (name, JSON path, comparison, bound) of each target (issues 5 and 16).
TARGETS = (
    ("multi-task latency / sum of single-task latencies", ("table6", "latency_ratio"), "<=", 0.45),
    ("multi-task parameters / sum of single-task parameters", ("table6", "params_ratio"), "<=", 0.45),
    (
        "gated / ungated latency, 5 % defective stream, the trained network",
        ("gated", "ratio_5"), "<=", 0.5,
    ),
    (
        "gated / ungated latency, 5 % defective stream, the paper network (trained gate deciding)",
        ("gated", "paper_network", "ratio_5"), "<=", 0.5,
    ),
    (
        "passing images: gated results = ungated results (to float32 rounding)",
        ("gated", "identical_passing_results"), "==", True,
    ),
    ("pipeline images/s per core / model images/s", ("pipeline", "ratio"), ">=", 3.0),
    # Issue 16: speed-ups over float32 and the largest change of a headline metric.
    ("bfloat16 speed-up over float32", ("precision", "speedup", "bfloat16"), ">=", 1.4),
    (
        "bfloat16: largest change of a test metric",
        ("precision", "max_metric_change", "bfloat16"), "<=", 0.01,
    ),
    ("INT8 (OpenVINO) speed-up over float32", ("precision", "speedup", "int8"), ">=", 2.0),
    (
        "INT8 (OpenVINO): largest change of a test metric",
        ("precision", "max_metric_change", "int8"), "<=", 0.02,
    ),
)
_COMPARE = {"<=": lambda a, b: a <= b, ">=": lambda a, b: a >= b, "==": lambda a, b: a == b}


def check_targets(results: dict) -> list:
    """`(name, measured, target, met)` for each target whose part was measured."""
    checked = []
    for name, path, comparison, bound in TARGETS:
        measured = results
        for key in path:
            if key not in measured:
                break
            measured = measured[key]
        else:
            met = _COMPARE[comparison](measured, bound)
            checked.append((name, measured, f"{comparison} {bound}", met))
    return checked


def benchmark_markdown(results: dict) -> str:
    """The results of `launch.benchmark` as markdown tables."""
    machine = results["machine"]
    lines = [
        "# Benchmark results",
        "",
        f"`{results['command']}`",
        "",
        f"{machine['cpu_cores']} CPU cores, TensorFlow {machine['tensorflow']}, "
        f"Keras {machine['keras']}, {machine['date']}. Medians after warm-up; "
        "`cpu/wall` is process CPU time over wall time, about the cores used.",
        "",
        "## Targets",
        "",
        "| target | measured | bound | met |",
        "|---|---|---|---|",
    ]
    for name, measured, bound, met in check_targets(results):
        lines.append(f"| {name} | {_number(measured)} | {bound} | {'yes' if met else 'no'} |")
    if "table6" in results:
        lines += _table6_lines(results["table6"])
    if "gated" in results:
        lines += _gated_lines(results["gated"])
    if "train" in results:
        lines += _train_lines(results["train"])
    if "precision" in results:
        lines += _precision_lines(results["precision"])
    if "pipeline" in results:
        pipeline = results["pipeline"]
        lines += [
            "",
            "## Input pipeline",
            "",
            f"{_number(pipeline['images_per_s_per_core'])} images/s on one core "
            f"(cpu/wall {_number(pipeline['cpu_per_wall'])}), augmentation and target "
            f"encoding at {pipeline['input_size']}; the multi-task model trains on "
            f"{_number(pipeline['model_images_per_s'])} images/s: ratio "
            f"{_number(pipeline['ratio'])}.",
        ]
    if "memory" in results:
        lines += ["", "## Peak memory (resident, whole process)", "", "| process | MiB |", "|---|---|"]
        for name, value in results["memory"].items():
            lines.append(f"| {name} | {value / 2**20:.0f} |")
    return "\n".join(lines) + "\n"


def _table6_lines(table6):
    networks = (*TASKS, "single_task_sum", MULTI_TASK)
    lines = ["", "## Table VI: batch-1 inference", ""]
    for size, by_threads in table6["runs"].items():
        for threads, table in by_threads.items():
            lines += [
                f"### {size}, threads={threads}",
                "",
                "| network | parameters | latency (s) | cpu/wall |",
                "|---|---|---|---|",
            ]
            for name in networks:
                cpu = table["cpu_per_wall"].get(name)
                lines.append(
                    f"| {name} | {table['params'][name]:,} | {table['latency_s'][name]:.4f} "
                    f"| {'' if cpu is None else f'{cpu:.2f}'} |"
                )
            lines += [
                "",
                f"Latency ratio {table['latency_ratio']:.3f}, parameter ratio "
                f"{table['params_ratio']:.3f} (paper: 0.544 and 0.429).",
                "",
            ]
    return lines


def _gated_lines(gated):
    lines = ["", "## Gated inference on streams (batch 1)"]
    for threads, run in gated["runs"].items():
        lines += _stream_lines(
            f"threads={threads}: the trained gate's network, {run['split']}, gate threshold "
            f"{run['gate_threshold']:.3f}",
            run,
        )
        if "paper_network" in run:
            lines += _stream_lines(
                f"threads={threads}: the {run['paper_network']['preset']} network, "
                "the trained gate deciding",
                run["paper_network"],
            )
    return lines


def _stream_lines(title, run):
    lines = [
        "",
        f"### {title}",
        "",
        "| defective | pass rate | gated mean (s) | ratio to ungated |",
        "|---|---|---|---|",
    ]
    for percent, stream in run["streams"].items():
        lines.append(
            f"| {percent} % | {stream['pass_rate']:.2f} | {stream['gated_mean_s']:.4f} "
            f"| {run['ratio_' + percent]:.3f} |"
        )
    return lines + [
        "",
        f"Ungated {_number(run['ungated_s'])} s, gate only {_number(run['gate_only_s'])} s; "
        f"gated: passing images {_number(run['full_path_s'])} s, stopped "
        f"{_number(run['stopped_s'])} s. Largest difference of a passing image's outputs "
        f"from the ungated model's: {run['max_abs_difference']:.3g}.",
    ]


def _train_lines(train):
    lines = [
        "",
        f"## Training step, {train['input_size']}, batch {train['batch_size']}",
        "",
        "| network | images/s | step (s) | cpu/wall | XLA |",
        "|---|---|---|---|---|",
    ]
    for name, run in train["runs"].items():
        xla = "yes" if run["xla_compiles"] else f"no: {run['xla_error']}"
        lines.append(
            f"| {name} | {run['images_per_s']:.2f} | {run['step_s']:.3f} "
            f"| {run['cpu_per_wall']:.2f} | {xla} |"
        )
    return lines


def _precision_lines(precision):
    cpu = precision["cpu"]
    lines = [
        "",
        f"## Precision: {precision['split']}, {precision['input_size']}, batch 1",
        "",
        f"CPU: {cpu['model_name']}; flags: {' '.join(cpu['flags']) or 'none listed'}.",
        "",
    ]
    names = list(precision["speedup"])
    metrics = list(precision["metrics"][names[0]])
    for threads, run in precision["runs"].items():
        lines += [
            f"### threads={threads}",
            "",
            "| variant | latency (s) | speed-up | cpu/wall | needs |",
            "|---|---|---|---|---|",
        ]
        for name in names:
            lines.append(
                f"| {name} | {run['latency_s'][name]:.4f} | {run['speedup'][name]:.2f}x "
                f"| {run['cpu_per_wall'][name]:.2f} "
                f"| {', '.join(precision['cpu_features_needed'][name])} |"
            )
        lines.append("")
    lines += [
        "### Test metrics (change against float32)",
        "",
        "| variant | " + " | ".join(metrics) + " | largest change, any metric |",
        "|---|" + "---|" * (len(metrics) + 1),
    ]
    for name in names:
        values = precision["metrics"][name]
        changes = precision["metric_change"][name]
        worst = precision["largest_change_any_metric"][name]
        cells = [f"{values[key]:.4f} ({changes[key]:+.4f})" for key in metrics]
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {worst['metric']} {worst['change']:+.4f} |"
        )
    return lines


def _number(value):
    if isinstance(value, bool) or value is None:
        return str(value)
    return f"{value:.4g}" if isinstance(value, float) else str(value)
