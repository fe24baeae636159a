r"""Learning-rate range test (Smith): the peak learning rate for one-cycle training.

  python -m launch.lr_find --preset=quickstart --output_dir=runs/lr_find
  python -m launch.train --preset=quickstart --learning_rate=<suggested> ...

Trains from the preset's initial weights (or --init_checkpoint's) with the learning
rate growing exponentially per step, saves the loss-vs-LR curve as a PNG and prints
the suggested peak learning rate.
"""

import os

from absl import app, flags, logging

import launch
from launch import experiment_flags, flag_errors

# --help lists the flags it shares with the other scripts too.
flags.adopt_module_key_flags(experiment_flags)

OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where lr_find.png and lr_find.json go.")
MIN_LR = flags.DEFINE_float("min_lr", 1e-7, "Learning rate of the first step.", lower_bound=0.0)
MAX_LR = flags.DEFINE_float("max_lr", 1.0, "Learning rate of the last step.", lower_bound=0.0)
NUM_STEPS = flags.DEFINE_integer("num_steps", 100, "Steps of the sweep.", lower_bound=10)

flags.mark_flag_as_required("output_dir")
flags.register_multi_flags_validator(
    ["min_lr", "max_lr"],
    lambda values: values["min_lr"] < values["max_lr"],
    message="--min_lr must be smaller than --max_lr.",
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    import keras

    from defect_aux_net.data.pipeline import make_dataset
    from defect_aux_net.models.model_builders import build_model
    from defect_aux_net.training import lr_finder, run_files, training_run
    from defect_aux_net.training.init_checkpoint import initialize_from_checkpoint

    try:
        data = experiment_flags.training_data_from_flags()
    except ValueError as error:
        raise app.UsageError(flag_errors.flag_message(error)) from error
    experiment = data.experiment
    model_config = experiment.model
    keras.utils.set_random_seed(experiment.seed)
    model = build_model(model_config)
    if experiment.init_checkpoint:  # The learning rate for fine-tuning it.
        transfer = initialize_from_checkpoint(model, experiment.init_checkpoint)
        logging.info("%s", transfer.summary(experiment.init_checkpoint))
    model.compile(optimizer=keras.optimizers.Adam())
    dataset = make_dataset(
        data.builder,
        experiment.train_split_slice,
        model_config,
        training_run.training_input_options(experiment),
    )
    result = lr_finder.find_learning_rate(
        model, dataset, MIN_LR.value, MAX_LR.value, NUM_STEPS.value
    )
    plot = os.path.join(OUTPUT_DIR.value, "lr_find.png")
    run_files.write_json(
        {
            "suggested_lr": result.suggested_lr,
            "learning_rates": result.learning_rates.tolist(),
            "losses": result.losses.tolist(),
        },
        os.path.join(OUTPUT_DIR.value, "lr_find.json"),
    )
    lr_finder.plot_lr_finder(result, plot)
    print(f"Suggested peak learning rate: {result.suggested_lr:.3g} (curve: {plot})")


def run():
    launch.run_command(main, __name__)


if __name__ == "__main__":
    app.run(main)
