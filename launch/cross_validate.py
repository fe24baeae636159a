r"""Trains one launch.train run per fold of a cross-validation and writes the papers' summary.

KolektorSDD as the two-stage papers evaluate it (3 folds; AP averaged, FP and FN summed):

  python -m launch.cross_validate --preset=segdec_kolektor --dataset=kolektor_sdd \
    --folds=3 --data_dir=DATA --model_dir=runs/ksdd_cv

Fold k is the launch.train run of the dataset's config `<dataset>/fold<k>` (build them
first: `tfds build tfds_builders/kolektor_sdd --manual_dir=... --data_dir=DATA`) in
<model_dir>/fold_k: it trains on that config's `train` split (the other folds) and is
evaluated on its `test` split (the fold). Every launch.train flag is accepted and applies
to every fold. Without --validation_split the fold's test split also picks the best epoch
and the thresholds, as the reference code validates on the test fold (VALIDATE_ON_TEST);
--validation_split='holdout(train,10%,seed=0)' keeps the test fold unseen until the end.

Running the same command again resumes: a complete fold is not trained again and a
killed one resumes from its last finished epoch (launch.train's own checks; a fold
folder holding a run of other flags is refused). Written to --model_dir:
cross_validation_config.json (the resolved experiment and the folds, before training),
then cross_validation.json and .md (per-fold per-image AP, FP and FN at each fold's
best-F1 threshold, and AP averaged, FP and FN summed).
"""

import os
import shlex
import time

from absl import app, flags

import launch
from launch import experiment_flags, flag_errors, run_flags
from launch import train as train_script

# --help lists launch.train's flags: each fold takes them.
flags.adopt_module_key_flags(train_script)

FOLDS = flags.DEFINE_integer(
    "folds", 3, "Folds: the dataset's configs fold1 .. fold<N> (KolektorSDD: 3).", lower_bound=2
)
# launch.train's flag, which here holds the folds' folders.
flags.FLAGS["model_dir"].help = (
    "Where fold_1 .. fold_<N> (each a launch.train run) and cross_validation.json/.md go."
)
flags.register_validator(
    "strategy",
    lambda value: value != "multi_worker",
    message="--strategy=multi_worker trains one run on several machines; "
    "launch.cross_validate trains the folds one after another on one.",
)
flags.register_validator(
    "test_split",
    lambda value: value != "",
    message="--test_split='' skips the evaluation each fold is scored by.",
)

# Files of the whole cross-validation in --model_dir (each fold's are in fold_k).
CONFIG_FILE = "cross_validation_config.json"


def fold_dataset(dataset: str, fold: int) -> str:
    return f"{dataset}/fold{fold}"


def fold_dir(model_dir: str, fold: int) -> str:
    return os.path.join(model_dir, f"fold_{fold}")


def _train_flags() -> list:
    """The launch.train flags given (absl's form), without those set per fold."""
    modules = (train_script.__name__, experiment_flags.__name__, run_flags.__name__)
    given = [
        flag
        for module in modules
        for flag in flags.FLAGS.get_flags_for_module(module)
        if flag.present and flag.name not in ("dataset", "model_dir", "preset", "validation_split")
    ]
    return [flag.serialize() for flag in sorted(given, key=lambda flag: flag.name)]


def fold_command(fold: int, dataset: str, model_dir: str) -> str:
    """The launch.train command that trains (or, when complete, finds) fold `fold`."""
    return shlex.join(
        ["python", "-m", "launch.train", f"--preset={experiment_flags.PRESET.value}"]
        + [f"--dataset={fold_dataset(dataset, fold)}"]
        + [f"--validation_split={experiment_flags.VALIDATION_SPLIT.value}"]
        + _train_flags()
        + [f"--model_dir={fold_dir(model_dir, fold)}"]
    )


def _resolve_flags() -> str:
    """Pins the preset and the validation split the folds share; returns the dataset."""
    from defect_aux_net.experiments import ExperimentConfig

    # Set before --dataset changes per fold, which would turn no --preset into auto.
    flags.FLAGS.preset = experiment_flags.preset_name()
    if not experiment_flags.VALIDATION_SPLIT.present:
        flags.FLAGS.validation_split = "test"
    dataset = experiment_flags.DATASET.value or ExperimentConfig.from_preset(
        flags.FLAGS.preset
    ).dataset
    if "/" in dataset or ":" in dataset:
        raise app.UsageError(
            f"--dataset={dataset}: give the dataset without a config or version; its "
            f"configs fold1 .. fold{FOLDS.value} are the folds."
        )
    return dataset


def _check_folds_built(dataset: str):
    """Every fold's config is built, before the first fold trains."""
    from defect_aux_net.config_errors import ConfigError
    from defect_aux_net.data import datasets

    for fold in range(1, FOLDS.value + 1):
        try:
            datasets.load_builder(fold_dataset(dataset, fold), experiment_flags.DATA_DIR.value)
        except ConfigError as error:
            raise app.UsageError(
                f"--dataset={dataset} --folds={FOLDS.value}: {flag_errors.flag_message(error)}"
            ) from error


def _write_config(dataset: str, model_dir: str):
    from defect_aux_net import atomic_writes

    try:
        experiment = experiment_flags.experiment_from_flags(train_script.TEST_SPLIT.value)
    except ValueError as error:
        raise app.UsageError(flag_errors.flag_message(error)) from error
    atomic_writes.write_json(
        os.path.join(model_dir, CONFIG_FILE),
        {
            "dataset": dataset,
            "folds": FOLDS.value,
            "fold_datasets": [fold_dataset(dataset, k) for k in range(1, FOLDS.value + 1)],
            "experiment": experiment.to_dict(),
            "commands": [fold_command(k, dataset, model_dir) for k in range(1, FOLDS.value + 1)],
        },
    )


def _train_fold(fold: int, dataset: str, model_dir: str):
    """launch.train's main on the fold, in this process."""
    import gc

    import keras

    flags.FLAGS.dataset = fold_dataset(dataset, fold)
    flags.FLAGS.model_dir = fold_dir(model_dir, fold)
    # A fold's --time_budget counts from the fold's start, as its own process's would.
    train_script._STARTED = time.monotonic()
    print(f"\n== Fold {fold} of {FOLDS.value}: {fold_command(fold, dataset, model_dir)}")
    train_script.main(["launch.train"])
    keras.backend.clear_session()  # The fold's model, before the next one builds its own.
    gc.collect()


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from defect_aux_net.evaluation import cross_validation
    from defect_aux_net.training import run_files

    model_dir = train_script.MODEL_DIR.value
    dataset = _resolve_flags()
    _check_folds_built(dataset)
    _write_config(dataset, model_dir)
    results = []
    try:
        for fold in range(1, FOLDS.value + 1):
            _train_fold(fold, dataset, model_dir)
            outputs = run_files.read_completion(fold_dir(model_dir, fold))
            if "metrics" not in outputs:
                raise app.UsageError(
                    f"{fold_dir(model_dir, fold)} was not evaluated on a test split: "
                    f"{fold_dataset(dataset, fold)} needs one (the fold's images)."
                )
            results.append(
                cross_validation.fold_result(
                    f"fold{fold}", run_files.read_json(outputs["metrics"]), outputs["metrics"]
                )
            )
        values = cross_validation.report(
            results, [fold_command(k, dataset, model_dir) for k in range(1, FOLDS.value + 1)]
        )
    finally:
        flags.FLAGS.model_dir = model_dir
    heading = f"{dataset}, {FOLDS.value} folds, --preset={flags.FLAGS.preset}"
    paths = cross_validation.write_report(values, heading, model_dir)
    print("\n" + cross_validation.report_markdown(values, heading))
    print(f"Written: {paths['md']}, {paths['json']}")


def run():
    launch.run_command(main, __name__)


if __name__ == "__main__":
    app.run(main)
