r"""Evaluates a trained model on a split with the papers' metrics.

  python -m launch.evaluate --model_dir=runs/quickstart --split=test

Writes `--output` (JSON; default `<model_dir>/metrics_<split>.json`), a markdown
table and PR curves beside it, and prints the table.
"""

import os

from absl import app, flags

import launch
from launch import flag_errors, model_flags

# --help lists the flags it shares with the other scripts too.
flags.adopt_module_key_flags(model_flags)

DATASET = flags.DEFINE_string("dataset", None, "TFDS dataset (default: the run's).")
DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data_dir (gs://... allowed).")
SPLIT = flags.DEFINE_string("split", "test", "Split to evaluate (TFDS slicing allowed).")
OUTPUT = flags.DEFINE_string("output", None, "Metrics JSON path.")
BATCH_SIZE = flags.DEFINE_integer("batch_size", 16, "Evaluation batch size.", lower_bound=1)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from defect_aux_net.data import datasets
    from defect_aux_net.evaluation import model_evaluation
    from defect_aux_net.training import run_files

    try:
        model, experiment, class_names, thresholds = model_flags.load_trained_model()
        image_rule = model_flags.load_image_rule()
        dataset = DATASET.value or (experiment.dataset if experiment else None)
        if dataset is None:
            raise ValueError("--dataset is required when the checkpoint has no config.json.")
        builder = datasets.load_builder(dataset, DATA_DIR.value)
        if datasets.class_names(builder) != tuple(class_names) and experiment:
            raise ValueError(
                f"--dataset={dataset} has classes {datasets.class_names(builder)}, the model "
                f"was trained on {class_names}."
            )
        if experiment is None:
            class_names = datasets.class_names(builder)
    except ValueError as error:
        raise app.UsageError(flag_errors.flag_message(error)) from error
    model_dir = model_flags.run_dir()
    output = OUTPUT.value or os.path.join(model_dir, f"metrics_{SPLIT.value}.json")
    evaluator = model_evaluation.evaluate_model(
        model, builder, SPLIT.value, class_names, thresholds, BATCH_SIZE.value, image_rule
    )
    thresholds_source = None
    if thresholds is not None:
        thresholds_source = run_files.model_dir_paths(model_dir)["thresholds"]
    model_evaluation.write_evaluation(evaluator, output, thresholds_source)


def run():
    launch.run_command(main, __name__)


if __name__ == "__main__":
    app.run(main)
