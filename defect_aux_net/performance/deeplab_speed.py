"""Table 1 of the DeepLabV3+ paper (Nie et al. 2022): training iterations/s and
evaluation images/s per backbone, measured here side by side.

The paper timed PyTorch on an Nvidia Tesla P100 (Google Colab): training on batches of
16 images resized to 256x256, evaluation one image at a time at 256x256 and at the
original size. Its absolute figures do not compare with a CPU's; what compares across
machines is the ratio of two backbones' figures measured on the same machine, so each
figure is also given as a ratio to the reference backbone's, ours beside the paper's.

Every network is built with `backbone_weights=None`: keras.applications' ImageNet
weights cannot be downloaded everywhere (not on the machine these figures come
from), and weights do not change the arithmetic, hence not the speed.

Each figure comes from a fresh process (`measurement.run_isolated`): a training step
from `training_throughput`, a batch-1 inference from `inference_latency`. The
backbones are interleaved, round after round, so that a change of the machine's load
falls on all of them alike; each figure is the median over the rounds.
"""

import statistics

from defect_aux_net.models.deeplab_config import DeepLabV3PlusConfig
from defect_aux_net.models.model_builders import model_config
from defect_aux_net.performance.inference_latency import inference_latency
from defect_aux_net.performance.measurement import run_isolated
from defect_aux_net.performance.precision_comparison import cpu_features
from defect_aux_net.performance.training_throughput import training_throughput

MODEL = "deeplabv3plus"
# The paper's Table 1, keyed by the preset that builds each row's network.
PAPER_TABLE1 = {
    "severstal_bare_bone": {
        "name": "Base", "train_iterations_per_s": 24.0, "eval_images_per_s": 26.0,
        "eval_original_images_per_s": 11.0,
    },
    "severstal_densenet201": {
        "name": "DenseNet201", "train_iterations_per_s": 25.0, "eval_images_per_s": 10.0,
        "eval_original_images_per_s": 7.0,
    },
    "severstal_resnet101": {
        "name": "ResNet101", "train_iterations_per_s": 14.0, "eval_images_per_s": 16.0,
        "eval_original_images_per_s": 8.0,
    },
    "severstal_efficientnetb1": {
        "name": "EfficientNet B1", "train_iterations_per_s": 40.0, "eval_images_per_s": 20.0,
        "eval_original_images_per_s": 11.0,
    },
}
PAPER_SETUP = {
    "hardware": "Nvidia Tesla P100 (Google Colab)",
    "framework": "PyTorch",
    "train_batch_size": 16,
    "input_size": "256x256",
    "eval_batch_size": 1,
    "original_size": "256x1700",
}
FIGURES = ("train_iterations_per_s", "eval_images_per_s", "eval_original_images_per_s")
WEIGHTS_NOTE = (
    "Networks built with backbone_weights=None (keras.applications' ImageNet weights "
    "cannot be downloaded here); weights do not change the speed."
)


def speed_config(preset: str, input_size, num_classes: int) -> DeepLabV3PlusConfig:
    """The DeepLabV3+ `preset` at `input_size` (height, width), RGB, without ImageNet
    weights; ConfigError naming the field for a size the network cannot take."""
    return model_config(
        MODEL, preset, input_shape=(*input_size, 3), num_classes=num_classes,
        backbone_weights=None,
    )


def measure_table1(
    presets,
    num_classes: int,
    dataset: str,
    data_dir,
    input_size,
    original_size,
    batch_size: int,
    steps: int,
    warmup: int,
    repeats: int,
    rounds: int,
    memory: dict | None = None,
) -> dict:
    """Table 1 for the DeepLabV3+ `presets`, each in fresh processes, interleaved.

    Args:
      presets: DeepLabV3+ preset names; the first is the reference of the ratios.
      num_classes: classes of `dataset`, whose training split feeds the steps.
      input_size: `(height, width)` of training and of the resized-image evaluation.
      original_size: `(height, width)` of the original-image evaluation, or None.
      batch_size, steps: the training batch and the timed steps of each round.
      warmup, repeats: untimed and timed batch-1 inferences of each round.
      rounds: how many times each figure is measured; the median is kept.
      memory: filled with each process's peak memory by label, when given.

    Returns:
      `table1` of the measurements.
    """
    sizes = {"eval_images_per_s": tuple(input_size)}
    if original_size:
        sizes["eval_original_images_per_s"] = tuple(original_size)
    runs = {preset: [] for preset in presets}
    params = {}
    for round_index in range(rounds):
        for preset in presets:
            labels = _labels(preset, input_size, batch_size, sizes)
            print(f"Table 1 round {round_index + 1}/{rounds}: {labels['train']}")
            run = {"train": run_isolated(
                training_throughput, speed_config(preset, input_size, num_classes),
                dataset, data_dir, "train", batch_size, steps,
            )}
            for figure, size in sizes.items():
                print(f"Table 1 round {round_index + 1}/{rounds}: {labels[figure]}")
                run[figure] = run_isolated(
                    inference_latency, speed_config(preset, size, num_classes), warmup, repeats
                )
            params[preset] = run["eval_images_per_s"]["params"]
            runs[preset].append(run)
            for key, label in labels.items():
                if memory is not None:  # The largest peak over the rounds.
                    memory[label] = max(memory.get(label, 0), run[key]["peak_memory_bytes"])
    return table1(runs, params, batch_size, input_size, original_size)


def table1(runs: dict, params: dict, batch_size: int, input_size, original_size) -> dict:
    """Table 1 from each preset's rounds of measurements.

    Args:
      runs: `{preset: [{"train": training_throughput result, "eval_images_per_s":
        inference_latency result, optionally "eval_original_images_per_s": ...}, ...]}`,
        the first preset the reference.
      params: `{preset: parameter count}`.
      batch_size, input_size, original_size: as `measure_table1`'s.

    Returns:
      `{"reference", "backbones": {preset: {...}}}`, this machine's `cpu` (as the
      precision part's), the sizes, `rounds`, the paper's setup and the note on
      weights. Each backbone has its `FIGURES` measured (iterations/s = 1 / step
      time, images/s = 1 / latency; medians over the rounds), `train_images_per_s`,
      `params`, `xla_compiles`, `ratio_to_reference` (each figure over the
      reference's), the paper's figures and ratios (`paper`, `paper_ratio_to_reference`;
      None for a network the paper did not time, or for ratios whose reference it did
      not time) and the `runs`.
    """
    reference = next(iter(runs))
    backbones = {}
    for preset, rounds in runs.items():
        figures = {
            "train_iterations_per_s": statistics.median(
                1 / run["train"]["step_s"] for run in rounds
            ),
        }
        for figure in FIGURES[1:]:
            if figure in rounds[0]:
                figures[figure] = statistics.median(1 / run[figure]["latency_s"] for run in rounds)
        backbones[preset] = figures | {
            "train_images_per_s": figures["train_iterations_per_s"] * batch_size,
            "params": params[preset],
            "xla_compiles": all(run["train"]["xla_compiles"] for run in rounds),
            "paper": PAPER_TABLE1.get(preset),
            "runs": rounds,
        }
    paper_reference = PAPER_TABLE1.get(reference)
    for backbone in backbones.values():
        measured = [figure for figure in FIGURES if figure in backbone]
        backbone["ratio_to_reference"] = {
            figure: backbone[figure] / backbones[reference][figure] for figure in measured
        }
        paper = backbone["paper"]
        backbone["paper_ratio_to_reference"] = None if not (paper and paper_reference) else {
            figure: paper[figure] / paper_reference[figure] for figure in measured
        }
    return {
        "reference": reference,
        "backbones": backbones,
        "cpu": cpu_features(),
        "input_size": _size_name(input_size),
        "original_size": _size_name(original_size) if original_size else None,
        "batch_size": batch_size,
        "rounds": len(runs[reference]),
        "paper_setup": PAPER_SETUP,
        "backbone_weights": None,
        "note": WEIGHTS_NOTE,
    }


def _labels(preset: str, input_size, batch_size: int, sizes: dict) -> dict:
    """What each process of a round measures, keyed as a round's `run`."""
    train = f"training DeepLabV3+ {preset} {_size_name(input_size)} batch {batch_size}"
    return {"train": train} | {
        figure: f"inference DeepLabV3+ {preset} {_size_name(size)} batch 1"
        for figure, size in sizes.items()
    }


def _size_name(size) -> str:
    return "x".join(map(str, size))
