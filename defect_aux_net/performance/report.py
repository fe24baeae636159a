"""Markdown of `launch.benchmark` results, with the issue's targets checked."""

from defect_aux_net.config import TASKS
from defect_aux_net.performance.inference_latency import MULTI_TASK, PAPER_NETWORKS, PAPER_TABLE6

# (name, JSON path, comparison, bound) of each target (issues 5, 16 and 19).
TARGETS = (
    # Issue 19: the paper's own latency ratio, and at most 1.15x its detection network.
    (
        "Table VI: multi-task latency / sum of single-task latencies",
        ("table6", "latency_ratio"), "<=", 0.544,
    ),
    (
        "Table VI: multi-task latency / ResNet-50 RetinaNet latency",
        ("table6", "detection_latency_ratio"), "<=", 1.15,
    ),
    (
        "shared backbone: multi-task latency / sum of single-head latencies",
        ("table6_shared_backbone", "latency_ratio"), "<=", 0.45,
    ),
    (
        "shared backbone: multi-task parameters / sum of single-head parameters",
        ("table6_shared_backbone", "params_ratio"), "<=", 0.45,
    ),
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
    # Issue 16: speed-ups over float32 and the largest change of a headline metric. Both
    # bfloat16 routes the library offers: a `--precision=bfloat16` SavedModel and the
    # OpenVINO export run with its bf16 hint (`launch.export --format=openvino
    # --precision=bfloat16`); both hold bfloat16 weights.
    ("bfloat16 speed-up over float32", ("precision", "speedup", "bfloat16"), ">=", 1.4),
    (
        "bfloat16: largest change of a test metric",
        ("precision", "max_metric_change", "bfloat16"), "<=", 0.01,
    ),
    (
        "bfloat16 (OpenVINO) speed-up over float32",
        ("precision", "speedup", "openvino_bfloat16"), ">=", 1.4,
    ),
    (
        "bfloat16 (OpenVINO): largest change of a test metric",
        ("precision", "max_metric_change", "openvino_bfloat16"), "<=", 0.01,
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
        lines += _paper_table6_lines(results["table6"])
    if "table6_shared_backbone" in results:
        lines += _shared_backbone_lines(results["table6_shared_backbone"])
    if "gated" in results:
        lines += _gated_lines(results["gated"])
    if "train" in results:
        lines += _train_lines(results["train"])
    if "precision" in results:
        lines += _precision_lines(results["precision"])
    if "deeplab_speed" in results:
        lines += _deeplab_speed_lines(results["deeplab_speed"])
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


def _paper_table6_lines(table6):
    paper = PAPER_TABLE6
    paper_ratios = (
        paper["latency_s"][MULTI_TASK] / paper["latency_s"]["single_task_sum"],
        paper["params_millions"][MULTI_TASK] / paper["params_millions"]["single_task_sum"],
        paper["latency_s"][MULTI_TASK] / paper["latency_s"]["detection"],
    )
    names = {task: name for task, (name, _, _) in PAPER_NETWORKS.items()}
    names["single_task_sum"] = "sum of the single-task networks"
    lines = [
        "",
        "## Table VI: batch-1 inference, the paper's networks",
        "",
        "Rows named as in the paper (the `small` preset builds them on ResNet-18). Paper: one "
        "Xeon core at 2.2 GHz, 600x600. The FPN segmenter is Defect-Aux-Net's top-down "
        "pathway and segmentation branch on a plain ResNet.",
        "",
    ]
    for size, by_threads in table6["runs"].items():
        for threads, table in by_threads.items():
            lines += [
                f"### {size}, threads={threads}",
                "",
                "| network | parameters | paper (M) | latency (s) | paper (s) | cpu/wall |",
                "|---|---|---|---|---|---|",
            ]
            for key, name in names.items():
                lines.append(
                    f"| {name} | {table['params'][key]:,} "
                    f"| {paper['params_millions'][key]} | {table['latency_s'][key]:.4f} "
                    f"| {paper['latency_s'][key]} | {_cpu(table, key)} |"
                )
            lines += ["", _ratios_sentence(table, paper_ratios), ""]
    return lines


def _shared_backbone_lines(table6):
    lines = [
        "",
        "## Table VI, shared backbone: Defect-Aux-Net with one head",
        "",
        "Each single-task network is Defect-Aux-Net with one head (attention included): "
        "what sharing one network saves, the backbones being equal.",
        "",
    ]
    for size, by_threads in table6["runs"].items():
        for threads, table in by_threads.items():
            lines += [
                f"### {size}, threads={threads}",
                "",
                "| network | parameters | latency (s) | cpu/wall |",
                "|---|---|---|---|",
            ]
            for key in (*TASKS, "single_task_sum", MULTI_TASK):
                lines.append(
                    f"| {key} | {table['params'][key]:,} | {table['latency_s'][key]:.4f} "
                    f"| {_cpu(table, key)} |"
                )
            lines += ["", _ratios_sentence(table), ""]
    return lines


def _cpu(table, key):
    """cpu/wall of a network; blank for the sum."""
    cpu = table["cpu_per_wall"].get(key)
    return "" if cpu is None else f"{cpu:.2f}"


def _ratios_sentence(table, paper=None):
    """The multi-task network's ratios; `paper`'s beside them when given."""
    ratios = (table["latency_ratio"], table["params_ratio"], table["detection_latency_ratio"])
    names = ("latency ratio", "parameter ratio", "latency over the detection network's")
    return "Multi-task: " + ", ".join(
        f"{name} {ours:.3f}" + ("" if paper is None else f" (paper {paper[index]:.3f})")
        for index, (name, ours) in enumerate(zip(names, ratios))
    ) + "."


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
        "| defective | pass rate | gated mean (s) | ratio to ungated | mAP gated / ungated |",
        "|---|---|---|---|---|",
    ]
    for percent, stream in run["streams"].items():
        # A detector's streams score its detections (`gated_streams.detection_maps`).
        maps = stream.get("map")
        map_cell = "n/a" if maps is None else (
            f"{maps['gated']['map']:.3f} / {maps['ungated']['map']:.3f} "
            f"= {_number(maps['fraction'])}"
        )
        lines.append(
            f"| {percent} % | {stream['pass_rate']:.2f} | {stream['gated_mean_s']:.4f} "
            f"| {run['ratio_' + percent]:.3f} | {map_cell} |"
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


def _deeplab_speed_lines(speed):
    paper, cpu = speed["paper_setup"], speed["cpu"]
    original = speed["original_size"]
    lines = [
        "",
        "## DeepLabV3+ backbones (Nie et al., Table 1)",
        "",
        f"Training: batch {speed['batch_size']} at {speed['input_size']} (iterations/s); "
        f"evaluation: batch 1 at {speed['input_size']}"
        + (f" and at {original}" if original else "")
        + f" (images/s); all cores; each figure the median of {speed['rounds']} round(s), "
        "the presets taking turns in each. "
        f"Paper: {paper['framework']} on an {paper['hardware']}, batch "
        f"{paper['train_batch_size']} at {paper['input_size']}, evaluation at "
        f"{paper['input_size']} and {paper['original_size']}. Absolute figures do not "
        "compare across machines; the ratios to the reference backbone "
        f"({speed['reference']}) do. {speed['note']}",
        "",
        f"CPU: {cpu['model_name']}; flags: {' '.join(cpu['flags']) or 'none listed'}.",
        "",
        "| preset | parameters | figure | ours | paper | ours / reference | paper / reference |",
        "|---|---|---|---|---|---|---|",
    ]
    for preset, backbone in speed["backbones"].items():
        paper = backbone["paper"] or {}
        name = f"{preset} ({paper['name']})" if paper else preset
        for figure, ratio in backbone["ratio_to_reference"].items():
            paper_figure = paper.get(figure)
            paper_ratio = (backbone["paper_ratio_to_reference"] or {}).get(figure)
            lines.append(
                f"| {name} | {backbone['params']:,} | {figure} | {backbone[figure]:.3g} "
                f"| {'n/a' if paper_figure is None else f'{paper_figure:g}'} | {ratio:.3f} "
                f"| {'n/a' if paper_ratio is None else f'{paper_ratio:.3f}'} |"
            )
    return lines


def _number(value):
    if isinstance(value, bool) or value is None:
        return str(value)
    return f"{value:.4g}" if isinstance(value, float) else str(value)
