r"""Trains Defect-Aux-Net, keeps the best model on validation, exports and evaluates it.

Quickstart (builds the embedded synthetic dataset when missing):

  python -m launch.train --preset=quickstart --model_dir=runs/quickstart

Cloud TPU VM (data and model_dir on GCS, see README "Training on Cloud TPU"):

  python -m launch.train --preset=severstal --strategy=tpu --tpu=local \
    --data_dir=gs://BUCKET/tensorflow_datasets --model_dir=gs://BUCKET/runs/severstal

With --dataset and no --preset, the recipe (input size, anchors, tasks, sampling, batch,
learning rate, loss weights) is derived from the training split and the epochs from a
30-minute budget; config.json's `recipe` says what was chosen and why:

  python -m launch.train --dataset=neu_det --time_budget=30m --model_dir=runs/neu_det

Fine-tuning a trained run on the next product (layers whose names and shapes match are
copied; the log lists those that are not, e.g. a head for another class count):

  python -m launch.train --dataset=defect_folder/next_product \
    --init_checkpoint=runs/first_product --model_dir=runs/next_product

Running the same command again after a kill or preemption resumes from the last
backup (written at the end of an epoch every --backup_steps steps at least); after a
complete run it prints where the outputs are and exits. A --model_dir holding a run of
another configuration is refused; --overwrite deletes it and starts afresh.
"""

import time

# The time budget counts from here.
_STARTED = time.monotonic()

from absl import app, flags, logging  # noqa: E402

import launch  # noqa: E402
from defect_aux_net.training import training_run  # noqa: E402
from launch import experiment_flags, flag_errors, run_flags  # noqa: E402

# --help lists the flags it shares with the other scripts too.
flags.adopt_module_key_flags(experiment_flags)
flags.adopt_module_key_flags(run_flags)

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")

MODEL_DIR = flags.DEFINE_string(
    "model_dir", None, "Where checkpoints, logs, config, metrics and the export go."
)
MIXED_PRECISION = flags.DEFINE_enum(
    "mixed_precision", "auto", PRECISIONS, "Keras dtype policy; auto: mixed_bfloat16 on TPU."
)
EXPORT = flags.DEFINE_boolean(
    "export", True, "Export the best model to <model_dir>/export/<next version>."
)
OVERWRITE = flags.DEFINE_boolean(
    "overwrite", False, "Delete what --model_dir holds (another run, or this one complete) "
    "and train afresh.",
)
TEST_SPLIT = flags.DEFINE_string(
    "test_split", None, "Split evaluated after training (default: the preset's; '' skips)."
)
BACKUP_STEPS = flags.DEFINE_integer(
    "backup_steps", training_run.BACKUP_STEPS, "Training steps at least between two backups "
    "of the training state, written at the end of an epoch and when training ends; a kill "
    "loses the steps since the last (1: every epoch).", lower_bound=1,
)
CPU_DEVICES = flags.DEFINE_integer(
    "cpu_devices", None, "Split the CPU into this many logical devices (tests mirrored "
    "training with 8 replicas like a TPU v2-8 on a CPU machine).", lower_bound=1
)

flags.mark_flag_as_required("model_dir")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    # Imported here: logical CPU devices must be configured before TF starts.
    from defect_aux_net.training import strategies

    if CPU_DEVICES.value:
        strategies.configure_logical_cpus(CPU_DEVICES.value)
    import keras

    from defect_aux_net.config_errors import ConfigError
    from defect_aux_net.training import auto_recipe, run_files, time_budget

    policy = MIXED_PRECISION.value
    if policy == "auto":
        policy = "mixed_bfloat16" if run_flags.STRATEGY.value == "tpu" else "float32"
    keras.mixed_precision.set_global_policy(policy)
    jit_compile = run_flags.jit_compile()
    try:
        budget = experiment_flags.experiment_from_flags(TEST_SPLIT.value).time_budget
        if budget is not None and run_flags.STRATEGY.value == "multi_worker":
            # Each worker would measure its own step and choose its own epochs.
            raise ValueError(
                "--time_budget (--preset=auto's default: 30m) cannot be used with "
                "--strategy=multi_worker: give --epochs."
            )
        strategy = strategies.make_strategy(run_flags.STRATEGY.value, run_flags.TPU.value)
        # A rerun of the same run reuses its measured choices (loss weights, epochs).
        stored = None
        if not OVERWRITE.value and run_files.has_config(MODEL_DIR.value):
            stored = run_files.read_stored_config(MODEL_DIR.value)
        data = experiment_flags.training_data_from_flags(TEST_SPLIT.value, stored)
        if data.experiment.time_budget is not None:
            data = time_budget.fit_epochs_to_budget(
                data, strategy, jit_compile, _STARTED, stored, export=EXPORT.value
            )
        schedule = training_run.one_cycle_schedule(data)
        # Before anything trains: a model_dir holding another run stops here.
        state = run_files.model_dir_state(
            MODEL_DIR.value, data.experiment, data.class_names, OVERWRITE.value
        )
    except ValueError as error:
        raise app.UsageError(flag_errors.flag_message(error)) from error
    if state == run_files.COMPLETE:
        print(
            f"{MODEL_DIR.value} holds this run, complete: nothing to train "
            "(--overwrite trains it afresh)."
        )
        print_outputs(run_files.read_completion(MODEL_DIR.value))
        return
    experiment = data.experiment
    # After the check: the model_dir holds this run or none, so the plot is its own.
    auto_recipe.write_range_test_plot(experiment, MODEL_DIR.value)
    logging.info("Training %s on %d replica(s)", experiment, strategy.num_replicas_in_sync)
    test_split = experiment.test_split  # The flag's, checked by prepare_training_data.
    try:
        best, _ = training_run.run_training(
            data,
            schedule,
            MODEL_DIR.value,
            strategy,
            export=EXPORT.value,
            jit_compile=jit_compile,
            test_split=test_split,
            overwrite=OVERWRITE.value,
            backup_steps=BACKUP_STEPS.value,
        )
    # Only what a flag can fix (a broken backup, an --init_checkpoint that --overwrite
    # would delete): any other error keeps its traceback.
    except ConfigError as error:
        raise app.UsageError(flag_errors.flag_message(error)) from error
    if best is None:  # A multi-worker run's non-chief worker: the chief reports.
        return
    print_outputs(run_files.read_completion(MODEL_DIR.value))


def print_outputs(outputs: dict):
    print(f"\nBest model: {outputs['best']}")
    if "export" in outputs:
        print(f"SavedModel: {outputs['export']}")
    if "metrics" in outputs:
        print(f"Test metrics: {outputs['metrics']}")
    print(f"TensorBoard: tensorboard --logdir={outputs['logs']}")


def run():
    launch.run_command(main, __name__)


if __name__ == "__main__":
    app.run(main)
