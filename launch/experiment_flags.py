"""Flags that pick an experiment preset and override its fields (train and lr_find).

A flag given on the command line overrides the preset; one left out keeps the
preset's value, so `--preset=quickstart --dataset=neu_det` changes only the data.
`--dataset` without `--preset` is `--preset=auto`: the recipe is derived from the
training split (`training.auto_recipe`), and the flags given still win.
"""

import dataclasses

from absl import flags

from defect_aux_net.config import (
    ATTENTIONS,
    BACKBONES,
    INPUT_NORMALIZATIONS,
    SEGMENTATION_LOSSES,
    TASKS,
)
from defect_aux_net.config_errors import ConfigError
from defect_aux_net.experiments import PRESETS, ExperimentConfig
from defect_aux_net.models.model_builders import MODELS, model_config
from defect_aux_net.training import auto_recipe, time_budget, training_run
from launch import flag_errors

# The preset a model trains with when no --preset is given (the default model's: auto
# or quickstart, as below).
MODEL_PRESETS = {"segdec": "segdec_kolektor"}

MODEL = flags.DEFINE_enum(
    "model", None, list(MODELS), "Network (README 'Models'): defect_aux_net (default: "
    "classification, segmentation and detection heads on an attention ResNet with FPN), "
    "segdec (Bozic et al.; default preset segdec_kolektor), the papers' baselines and "
    "detectors. Default: the preset's.",
)
MODEL_PRESET = flags.DEFINE_string(
    "model_preset", None, "Named preset of the network's config (every network has "
    "'small', for CPUs; e.g. tekerreka, severstal, severstal_resnet101). Default: the "
    "network's defaults at the experiment preset's input size.",
)
PRESET = flags.DEFINE_enum(
    "preset", None, sorted(PRESETS), "Experiment preset (default: auto, the recipe derived "
    "from the data, when --dataset is given; else quickstart).",
)
DATASET = flags.DEFINE_string(
    "dataset", None, 'TFDS dataset, "name" or "name/config" (default: the preset\'s).'
)
DATA_DIR = flags.DEFINE_string(
    "data_dir", None, "TFDS data_dir; gs://... on Cloud TPU (default: ~/tensorflow_datasets)."
)
TRAIN_SPLIT = flags.DEFINE_string(
    "train_split", None, "Training split, TFDS slicing allowed (default: the preset's)."
)
VALIDATION_SPLIT = flags.DEFINE_string(
    "validation_split", None, "Split for best-model selection and thresholds (default: "
    "the preset's, 'validation'; on a dataset without one, a stratified holdout of the "
    "training split: 'holdout(train,10%,seed=0)').",
)
BACKBONE = flags.DEFINE_enum("backbone", None, BACKBONES, "Bottom-up pathway depth.")
ATTENTION = flags.DEFINE_enum("attention", None, ATTENTIONS, "Attention in residual blocks.")
TASKS_FLAG = flags.DEFINE_list("tasks", None, f"Heads to train, a subset of {','.join(TASKS)}.")
SEGMENTATION_LOSS = flags.DEFINE_enum(
    "segmentation_loss", None, SEGMENTATION_LOSSES, "Segmentation loss (paper Table I)."
)
LOSS_WEIGHTS = flags.DEFINE_list(
    "loss_weights", None, "b0,b1,b2: classification, segmentation, detection loss weights."
)
INPUT_SIZE = flags.DEFINE_list(
    "input_size", None, "height,width the images are resized to (paper: 128,800 / 600,600)."
)
BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "Global batch size (paper: 128).", lower_bound=1)
EPOCHS = flags.DEFINE_integer("epochs", None, "Training epochs (paper: 50).", lower_bound=1)
PASSES_PER_EPOCH = flags.DEFINE_float(
    "passes_per_epoch", None, "An epoch's length in passes over the training split "
    "(default 1; --time_budget sets it, spreading the budget's time over its epochs).",
    lower_bound=1e-6,
)
LEARNING_RATE = flags.DEFINE_float(
    "learning_rate", None, "Peak learning rate of the one-cycle schedule, or SGD's "
    "constant one (presets with the sgd optimizer: segdec_kolektor).", lower_bound=0.0
)
WEIGHT_DECAY = flags.DEFINE_float(
    "weight_decay", None, "Decoupled weight decay, w -= learning_rate * weight_decay * w "
    "at every step (DeepLabV3+ paper: 1e-4; default: the preset's, 0 for none).",
    lower_bound=0.0,
)
EMA_MOMENTUM = flags.DEFINE_float(
    "ema_momentum", None, "Validate, keep and export the moving average of the weights, "
    "average = m * average + (1 - m) * weights at every step (e.g. 0.99; default: the "
    "preset's, none).", lower_bound=0.0, upper_bound=1.0,
)
TRAIN_FRACTION = flags.DEFINE_float(
    "train_fraction", None, "Fraction of the training split used (paper Fig. 10).",
)
AUGMENT = flags.DEFINE_boolean("augment", None, "Augment training images as the paper.")
NEGATIVE_SAMPLING = flags.DEFINE_boolean(
    "negative_sampling", None, "Frequency-of-use sampling of defect-free images."
)
DISTANCE_WEIGHTS = flags.DEFINE_list(
    "distance_weights", None, "w_pos,p: distance-transform weights of positive mask pixels."
)
BACKBONE_WEIGHTS = flags.DEFINE_string(
    "backbone_weights", None, '"imagenet" or a keras.applications ResNet weights file.'
)
INPUT_NORMALIZATION = flags.DEFINE_enum(
    "input_normalization", None, INPUT_NORMALIZATIONS, "Pixel normalisation before "
    "the backbone (default: what --backbone_weights expect, caffe for keras.applications "
    "ResNet weights; min_max without).",
)
P2_OUTPUT_CONV = flags.DEFINE_boolean(
    "p2_output_conv", None, "Give the top-down pathway's P2 the FPN's 3x3 output conv "
    "(--nop2_output_conv: the segmentation branch's own convs smooth it; cheaper).",
)
SEGMENTATION_CHANNELS = flags.DEFINE_integer(
    "segmentation_channels", None, "Channels of the segmentation branch's convolutions "
    "(paper-size network 128; 64 with --nop2_output_conv is the lean top-down pathway).",
    lower_bound=1,
)
INIT_CHECKPOINT = flags.DEFINE_string(
    "init_checkpoint", None, "A run's --model_dir (its best.keras) or a .keras file to "
    "start from: layers whose names and shapes match are copied (fine-tuning).",
)
SEED = flags.DEFINE_integer("seed", None, "Seed of initialisation, shuffling and augmentation.")
TIME_BUDGET = flags.DEFINE_string(
    "time_budget", None, "Wall time of the whole run, e.g. 30m, 1h or 90s: the epochs are "
    "fitted to the step time measured at the start (instead of --epochs; --preset=auto: 30m).",
)
EARLY_STOPPING_PATIENCE = flags.DEFINE_integer(
    "early_stopping_patience", None, "Stop after this many epochs without a lower "
    "validation loss (default: run every epoch).", lower_bound=1,
)
LR_RANGE_TEST = flags.DEFINE_boolean(
    "lr_range_test", None, "With the automatic recipe and a time budget: the learning rate "
    "from a short range test instead of the rule 1e-3 * sqrt(batch / 16).",
)

# The config field each flag sets (model fields dotted), for `given_fields`.
_FIELDS = {
    "model": "model_name",
    "backbone": "model.backbone",
    "attention": "model.attention",
    "tasks": "model.tasks",
    "segmentation_loss": "model.segmentation_loss",
    "loss_weights": "model.loss_weights",
    "input_size": "model.input_shape",
    "backbone_weights": "model.backbone_weights",
    "input_normalization": "model.input_normalization",
    "p2_output_conv": "model.p2_output_conv",
    "segmentation_channels": "model.segmentation_channels",
    "init_checkpoint": "init_checkpoint",
    "dataset": "dataset",
    "train_split": "train_split",
    "validation_split": "validation_split",
    "batch_size": "batch_size",
    "epochs": "epochs",
    "passes_per_epoch": "passes_per_epoch",
    "learning_rate": "learning_rate",
    "weight_decay": "weight_decay",
    "ema_momentum": "ema_momentum",
    "train_fraction": "train_fraction",
    "augment": "augment",
    "negative_sampling": "negative_sampling",
    "distance_weights": "distance_weights",
    "seed": "seed",
    "time_budget": "time_budget",
    "early_stopping_patience": "early_stopping_patience",
    "lr_range_test": "lr_range_test",
}


def preset_name() -> str:
    """--preset, or its default: the model's (`MODEL_PRESETS`), else auto with --dataset,
    quickstart without."""
    if PRESET.value is not None:
        return PRESET.value
    if MODEL.value in MODEL_PRESETS:
        return MODEL_PRESETS[MODEL.value]
    return "auto" if DATASET.value is not None else "quickstart"


def given_fields() -> frozenset:
    """The config fields set by flags given on the command line (the recipe keeps them)."""
    return frozenset(field for name, field in _FIELDS.items() if flags.FLAGS[name].present)


def _floats(flag, count: int) -> tuple:
    try:
        values = tuple(float(value) for value in flag.value)
    except ValueError:
        values = ()
    if len(values) != count:
        raise ValueError(f"--{flag.name} takes {count} comma-separated numbers, got {flag.value}.")
    return values


def experiment_from_flags(test_split: str | None = None) -> ExperimentConfig:
    """The preset with every given flag applied; ValueError names a bad flag.

    Args:
      test_split: launch.train's --test_split ('' for none), None for the preset's.
    """
    preset = with_model(ExperimentConfig.from_preset(preset_name()))
    _check_model_flags(preset)
    model_changes = {}
    if BACKBONE.value is not None:
        model_changes["backbone"] = BACKBONE.value
    if ATTENTION.value is not None:
        model_changes["attention"] = ATTENTION.value
    if TASKS_FLAG.value is not None:
        unknown = set(TASKS_FLAG.value) - set(TASKS)
        if unknown or not TASKS_FLAG.value:
            raise ValueError(f"--tasks must be a non-empty subset of {TASKS}, got {TASKS_FLAG.value}.")
        model_changes["tasks"] = tuple(TASKS_FLAG.value)
    if SEGMENTATION_LOSS.value is not None:
        model_changes["segmentation_loss"] = SEGMENTATION_LOSS.value
    if LOSS_WEIGHTS.value is not None:
        model_changes["loss_weights"] = _floats(LOSS_WEIGHTS, 3)
    if INPUT_SIZE.value is not None:
        height, width = (int(size) for size in _floats(INPUT_SIZE, 2))
        model_changes["input_shape"] = (height, width, preset.model.input_shape[2])
    if BACKBONE_WEIGHTS.value is not None:
        model_changes["backbone_weights"] = BACKBONE_WEIGHTS.value
    if INPUT_NORMALIZATION.value is not None:
        model_changes["input_normalization"] = INPUT_NORMALIZATION.value
    if P2_OUTPUT_CONV.value is not None:
        model_changes["p2_output_conv"] = P2_OUTPUT_CONV.value
    if SEGMENTATION_CHANNELS.value is not None:
        model_changes["segmentation_channels"] = SEGMENTATION_CHANNELS.value
    try:
        model = dataclasses.replace(preset.model, **model_changes)
    except ValueError as error:
        raise ValueError(f"Model flags: {error}") from error

    changes = {"model": model}
    for flag, field in (
        (DATASET, "dataset"),
        (TRAIN_SPLIT, "train_split"),
        (VALIDATION_SPLIT, "validation_split"),
        (BATCH_SIZE, "batch_size"),
        (EPOCHS, "epochs"),
        (PASSES_PER_EPOCH, "passes_per_epoch"),
        (LEARNING_RATE, "learning_rate"),
        (WEIGHT_DECAY, "weight_decay"),
        (EMA_MOMENTUM, "ema_momentum"),
        (TRAIN_FRACTION, "train_fraction"),
        (AUGMENT, "augment"),
        (NEGATIVE_SAMPLING, "negative_sampling"),
        (SEED, "seed"),
        (INIT_CHECKPOINT, "init_checkpoint"),
    ):
        if flag.value is not None:
            changes[field] = flag.value
    if test_split is not None:
        changes["test_split"] = test_split or None
    if DISTANCE_WEIGHTS.value is not None:
        changes["distance_weights"] = _floats(DISTANCE_WEIGHTS, 2)
    for flag in (EPOCHS, PASSES_PER_EPOCH):
        if flag.value is not None and TIME_BUDGET.value is not None:
            raise ValueError(f"Give --{flag.name} or --time_budget, not both.")
    if TIME_BUDGET.value is not None:
        try:
            changes["time_budget"] = time_budget.parse_duration(TIME_BUDGET.value)
        except ConfigError as error:
            raise ValueError(flag_errors.flag_message(error)) from error
    elif EPOCHS.value is not None or PASSES_PER_EPOCH.value is not None:
        changes["time_budget"] = None  # The preset's budget gives way to the epochs given.
    if EARLY_STOPPING_PATIENCE.value is not None:
        changes["early_stopping_patience"] = EARLY_STOPPING_PATIENCE.value
    if LR_RANGE_TEST.value is not None:
        if LR_RANGE_TEST.value and LEARNING_RATE.value is not None:
            raise ValueError("Give --learning_rate or --lr_range_test, not both.")
        changes["lr_range_test"] = LR_RANGE_TEST.value
    if TRAIN_FRACTION.value is not None and not 0 < TRAIN_FRACTION.value <= 1:
        raise ValueError(f"--train_fraction must be in (0, 1], got {TRAIN_FRACTION.value}.")
    return dataclasses.replace(preset, **changes)


def with_model(preset: ExperimentConfig) -> ExperimentConfig:
    """`preset` with --model's network and --model_preset's config of it, when given.

    Without --model_preset the network's defaults take the preset's input shape; with
    it, the model preset's. (The automatic recipe then chooses the size either way.)
    """
    name = MODEL.value or preset.model_name
    if name == preset.model_name and MODEL_PRESET.value is None:
        return preset
    fields = {"num_classes": preset.model.num_classes}
    if MODEL_PRESET.value is None:
        fields["input_shape"] = preset.model.input_shape
    try:
        model = model_config(name, MODEL_PRESET.value, **fields)
    except ConfigError as error:
        if error.field == "preset":  # The config class's presets, not --preset's.
            raise ValueError(f"--model_preset: {error}") from error
        raise ValueError(flag_errors.flag_message(error)) from error
    return dataclasses.replace(preset, model=model, model_name=name)


def _check_model_flags(preset: ExperimentConfig):
    """Raises ValueError naming a given model flag that the chosen model has no field for."""
    fields = {field.name for field in dataclasses.fields(preset.model)}
    for name, field in _FIELDS.items():
        if field.startswith("model.") and flags.FLAGS[name].present:
            if field.removeprefix("model.") not in fields:
                raise ValueError(
                    f"--{name} does not apply to --model={preset.model_name} (its config "
                    f"has no {field.removeprefix('model.')} field); leave it out."
                )


def training_data_from_flags(test_split: str | None = None, stored: dict | None = None):
    """`prepare_training_data` of the flags' experiment; with --preset=auto, its recipe.

    Args:
      test_split: as for `experiment_from_flags`.
      stored: the model_dir's config.json, whose measured choices a rerun reuses.
    """
    data = training_run.prepare_training_data(experiment_from_flags(test_split), DATA_DIR.value)
    if preset_name() == "auto":
        data = auto_recipe.apply_recipe(data, given_fields(), stored)
    return data
