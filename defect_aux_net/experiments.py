"""Training experiments: a model config plus data and schedule, with named presets.

The paper's runs (section IV-B/D: Adam, one-cycle LR, batch 128, 50 epochs) are
the `severstal` and `tekerreka` presets; `quickstart` trains the small model on the
embedded synthetic dataset in minutes on a CPU; `auto` is the starting point of the
recipe derived from the data (`defect_aux_net.recipes`). The companion papers'
recipes are `segdec_kolektor`, `segdec_dagm`, `segdec_severstal` (Bozic et al.) and
`deeplab_severstal_<backbone>` (Nie et al.).
"""

import dataclasses
import json
from typing import Optional

from defect_aux_net.config import DefectAuxNetConfig
from defect_aux_net.config_errors import ConfigError
from defect_aux_net.data.augmentation import AUGMENTATIONS
from defect_aux_net.data.holdout import parse_split, split_names, without_holdout
from defect_aux_net.data.weighted_augmentation import (
    DEFAULT_OPERATION_WEIGHTS,
    OPERATIONS,
    check_operation_weights,
)
from defect_aux_net.models.deeplab_config import DeepLabV3PlusConfig
from defect_aux_net.models.model_builders import (
    DEFAULT_MODEL,
    config_class,
    model_name,
    validation_loss_compares,
)
from defect_aux_net.models.segdec_config import SegDecConfig
from defect_aux_net.preset_configs import PresetConfig

# How the run's optimizer is made (`training.optimizers.make_optimizer`): Adam on the
# one-cycle schedule peaking at `learning_rate` (Defect-Aux-Net), or plain SGD at a
# constant `learning_rate` (the segmentation + decision network's paper).
OPTIMIZERS = ("one_cycle_adam", "sgd")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig(PresetConfig):
    """Everything `launch.train` needs besides where to read and write.

    Attributes:
      model: the network and its loss: the config of the model `model_name` names.
      dataset: TFDS name, `"name"` or `"name/config"`.
      train_split: split to train on (TFDS slicing allowed).
      validation_split: split for best-model selection and per-class thresholds.
        `holdout(train,10%,seed=0)` is a seeded, stratified holdout of `train`
        (`defect_aux_net.data.holdout`), which training then leaves out. The default
        "validation" becomes that holdout on a dataset without a validation split
        (`training_run.prepare_training_data`; `config.json` has the result).
      test_split: split evaluated after training, or None. The default "test" becomes
        None on a dataset without a test split.
      batch_size: global batch size (paper: 128).
      epochs: training epochs (paper: 50).
      passes_per_epoch: an epoch's length in passes over the training split (its
        steps are this many times a pass's, rounded). 1 but where a `time_budget`
        sets it: the budget's training time split evenly between its epochs, which
        is less than one pass when the budget is shorter than that.
      learning_rate: peak learning rate of the one-cycle schedule (`lr_find` suggests one).
      train_fraction: fraction of `train_split` used (paper Fig. 10), in (0, 1].
      augment: augment training images (with `augmentation`).
      augmentation: one of `AUGMENTATIONS`: "defect_aux_net", the Defect-Aux-Net
        paper's flips, rotation, zoom, shear and channel shift; "weighted", the
        DeepLabV3+ paper's random weighted augmentation (an image is augmented with
        probability 1 - p of its rarest class, p the class's share of the training
        split's defects, by random crop, vertical flip or rotation drawn with
        `augmentation_weights`; `data.weighted_augmentation`).
      augmentation_weights: `W`, the weights of random crop, vertical flip and
        rotation in the weighted augmentation (normalised; the paper gives none).
      segmentation_label_fraction: mixed supervision (segmentation + decision paper,
        Table III): the fraction of the defective training images with masks that keep
        them, chosen by image id with `seed`; the others train with their image labels
        only (no segmentation loss). 1 keeps every mask, 0 none (weak supervision).
      negative_sampling: frequency-of-use sampling of defect-free images (two-stage paper).
      distance_weights: `(positive_weight, power)` for positive mask pixels, or None.
      cache: keep decoded training examples in memory (datasets that fit in RAM).
      seed: seed of initialisation, shuffling, augmentation and sampling.
      init_checkpoint: a run's model_dir (its best.keras) or a `.keras` file whose
        weights start training, layer by layer where names and shapes match
        (`training.init_checkpoint`): fine-tuning on a new product. None: the
        model's initialisation (and `model.backbone_weights`).
      time_budget: seconds the whole run may take, or None. `epochs` and
        `passes_per_epoch` are then set from the step time measured at the start
        (`training.time_budget`); config.json holds them, and a resumed run keeps them.
      early_stopping_patience: stop after this many epochs without a lower validation
        loss, or None to run every epoch (the best model is kept either way).
      lr_range_test: the automatic recipe's learning rate from a range test within the
        `time_budget` (`training.auto_recipe.range_test_learning_rate`) instead of its
        rule. Off by default: on NEU-DET and KolektorSDD it never beat the rule.
      batch_norm_images: after training, the best model's batch-norm statistics are
        recomputed as means over this many un-augmented training images
        (`training.batch_norm_statistics`); 0 keeps the moving averages of training.
      model_name: the model of `models.model_builders.MODELS` that `model` configures
        (config.json names it, so the config reads back as its class).
      optimizer: one of `OPTIMIZERS`.
      weight_decay: decoupled weight decay of the optimizer, `w -= lr * weight_decay
        * w` at every step (`training.optimizers`; for plain SGD the same update as
        PyTorch's `weight_decay`, the DeepLabV3+ paper's 1e-4). 0: none.
      ema_momentum: where set, the optimizer keeps an exponential moving average of
        the weights, `average = ema_momentum * average + (1 - ema_momentum) * weights`
        at every step, and validation, the best model and everything after training
        use the average (`training.weight_average`). None: the weights themselves.
      recipe: what the automatic recipe (`--preset=auto`, `recipes`) and the time budget
        chose, `{field: {"value", "reason"}}` plus the `survey` it read, or None.
    """

    model: DefectAuxNetConfig
    dataset: str
    train_split: str = "train"
    validation_split: str = "validation"
    test_split: Optional[str] = "test"
    batch_size: int = 128
    epochs: int = 50
    passes_per_epoch: float = 1.0
    learning_rate: float = 1e-3
    train_fraction: float = 1.0
    augment: bool = True
    negative_sampling: bool = False
    distance_weights: Optional[tuple] = None
    cache: bool = False
    seed: int = 0
    init_checkpoint: Optional[str] = None
    time_budget: Optional[float] = None
    early_stopping_patience: Optional[int] = None
    lr_range_test: bool = False
    recipe: Optional[dict] = None
    model_name: str = DEFAULT_MODEL
    optimizer: str = "one_cycle_adam"
    augmentation: str = "defect_aux_net"
    augmentation_weights: tuple = DEFAULT_OPERATION_WEIGHTS
    segmentation_label_fraction: float = 1.0
    batch_norm_images: int = 0
    weight_decay: float = 0.0
    ema_momentum: Optional[float] = None

    def __post_init__(self):
        try:
            model_class = config_class(self.model_name)
        except ValueError as error:
            raise ConfigError("ExperimentConfig.model_name", str(error)) from None
        if not isinstance(self.model, model_class):
            raise ConfigError(
                "ExperimentConfig.model_name",
                f"ExperimentConfig.model_name={self.model_name!r} needs a "
                f"{model_class.__name__} model config, got a {type(self.model).__name__}.",
            )
        # Models that share a config class are told apart by its values (`MODELS`).
        described = model_name(self.model)
        if described != self.model_name:
            raise ConfigError(
                "ExperimentConfig.model_name",
                f"ExperimentConfig.model_name={self.model_name!r}, but its model config "
                f"describes {described!r} (a model field changed the network): set "
                f"ExperimentConfig.model_name={described}, or leave that field as "
                f"{self.model_name!r} has it.",
            )
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                "ExperimentConfig.optimizer",
                f"Unknown ExperimentConfig.optimizer={self.optimizer!r}; allowed values: "
                f"{', '.join(OPTIMIZERS)}.",
            )
        if self.augmentation not in AUGMENTATIONS:
            raise ConfigError(
                "ExperimentConfig.augmentation",
                f"Unknown ExperimentConfig.augmentation={self.augmentation!r}; allowed "
                f"values: {', '.join(AUGMENTATIONS)}.",
            )
        try:
            weights = check_operation_weights(self.augmentation_weights)
        except ValueError:
            raise ConfigError(
                "ExperimentConfig.augmentation_weights",
                f"ExperimentConfig.augmentation_weights={self.augmentation_weights!r} must "
                f"be {len(OPERATIONS)} numbers >= 0 with a positive sum, the weights of "
                f"{', '.join(OPERATIONS)}.",
            ) from None
        object.__setattr__(self, "augmentation_weights", weights)
        if not 0 <= self.segmentation_label_fraction <= 1:
            raise ConfigError(
                "ExperimentConfig.segmentation_label_fraction",
                "ExperimentConfig.segmentation_label_fraction="
                f"{self.segmentation_label_fraction!r} must be in [0, 1].",
            )
        if self.segmentation_label_fraction < 1 and "segmentation" not in self.model.tasks:
            raise ConfigError(
                "ExperimentConfig.segmentation_label_fraction",
                "ExperimentConfig.segmentation_label_fraction="
                f"{self.segmentation_label_fraction!r} drops masks, but the model has no "
                f"segmentation task (tasks {self.model.tasks}).",
            )
        if self.distance_weights is not None:
            object.__setattr__(self, "distance_weights", tuple(self.distance_weights))
        if self.recipe is not None:
            # As config.json holds it (lists, not tuples), so a stored run compares equal.
            object.__setattr__(self, "recipe", json.loads(json.dumps(self.recipe)))
        if self.time_budget is not None and not self.time_budget > 0:
            raise ConfigError(
                "ExperimentConfig.time_budget",
                f"ExperimentConfig.time_budget must be > 0 seconds, got {self.time_budget}.",
            )
        if self.lr_range_test and self.time_budget is None:
            raise ConfigError(
                "ExperimentConfig.lr_range_test",
                "ExperimentConfig.lr_range_test runs within the time budget, which pays "
                "for it: give ExperimentConfig.time_budget too.",
            )
        if not isinstance(self.batch_norm_images, int) or self.batch_norm_images < 0:
            raise ConfigError(
                "ExperimentConfig.batch_norm_images",
                "ExperimentConfig.batch_norm_images must be a whole number >= 0 (0: keep "
                f"the moving averages), got {self.batch_norm_images!r}.",
            )
        if self.early_stopping_patience is not None and self.early_stopping_patience < 1:
            raise ConfigError(
                "ExperimentConfig.early_stopping_patience",
                "ExperimentConfig.early_stopping_patience must be >= 1, got "
                f"{self.early_stopping_patience}.",
            )
        if self.early_stopping_patience is not None and not validation_loss_compares(
            self.model
        ):
            raise ConfigError(
                "ExperimentConfig.early_stopping_patience",
                "ExperimentConfig.early_stopping_patience stops on the validation loss, "
                f"and {self.model_name}'s does not compare across epochs (a two-stage "
                "detector's second stage is scored on changing proposals; segdec's "
                "dynamic_balance reweighs its losses every epoch): leave it out.",
            )
        if not 0 < self.train_fraction <= 1:
            raise ConfigError(
                "ExperimentConfig.train_fraction",
                f"ExperimentConfig.train_fraction must be in (0, 1], got {self.train_fraction}.",
            )
        for name in ("batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"ExperimentConfig.{name}",
                    f"ExperimentConfig.{name} must be >= 1, got {getattr(self, name)}.",
                )
        passes = self.passes_per_epoch
        if isinstance(passes, bool) or not isinstance(passes, (int, float)) or not passes > 0:
            raise ConfigError(
                "ExperimentConfig.passes_per_epoch",
                "ExperimentConfig.passes_per_epoch must be a number > 0 (1: an epoch is "
                f"one pass over the training split), got {passes!r}.",
            )
        decay = self.weight_decay
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not decay >= 0:
            raise ConfigError(
                "ExperimentConfig.weight_decay",
                f"ExperimentConfig.weight_decay must be a number >= 0 (0: no decay), got "
                f"{self.weight_decay!r}.",
            )
        momentum = self.ema_momentum
        if momentum is not None and (
            isinstance(momentum, bool) or not isinstance(momentum, (int, float))
            or not 0 < momentum < 1
        ):
            raise ConfigError(
                "ExperimentConfig.ema_momentum",
                "ExperimentConfig.ema_momentum must be a number in (0, 1) (e.g. 0.99: an "
                f"average over about 100 steps) or None, got {momentum!r}.",
            )
        if self.learning_rate <= 0:
            raise ConfigError(
                "ExperimentConfig.learning_rate",
                f"ExperimentConfig.learning_rate must be > 0, got {self.learning_rate}.",
            )
        if parse_split(self.train_split).holdout is not None:
            raise ConfigError(
                "ExperimentConfig.train_split",
                f"ExperimentConfig.train_split must be a TFDS split, got {self.train_split!r}; "
                "a holdout named by ExperimentConfig.validation_split is left out of training "
                "by itself.",
            )
        try:
            parse_split(self.validation_split)
        except ValueError as error:  # A malformed holdout.
            raise ConfigError("ExperimentConfig.validation_split", str(error)) from None

    @property
    def train_split_slice(self) -> str:
        """The split string of the training data: `train_fraction` applied, holdout left out."""
        split = self.train_split
        if self.train_fraction != 1:
            split = f"{split}[:{self.train_fraction * 100:g}%]"
        holdout = parse_split(self.validation_split).holdout
        if holdout is not None and split_names(holdout.split) & split_names(self.train_split):
            split = without_holdout(split, holdout)
        return split

    def for_classes(self, class_names) -> "ExperimentConfig":
        """This experiment with the model's `num_classes` set to the dataset's classes."""
        model = dataclasses.replace(self.model, num_classes=len(class_names))
        return dataclasses.replace(self, model=model)

    @classmethod
    def from_dict(cls, values: dict) -> "ExperimentConfig":
        model_class = config_class(values.get("model_name", DEFAULT_MODEL))
        return cls(**(values | {"model": model_class(**values["model"])}))


PRESETS = {
    # Paper: Severstal at 128x800, 4 classes, batch 128, 50 epochs on a TPU v2-8.
    "severstal": ExperimentConfig(
        model=DefectAuxNetConfig.from_preset("severstal"), dataset="severstal"
    ),
    # Paper: TekErreka (not public) at 600x600; train your own data with
    # --dataset=defect_folder/<yours> built by tfds_builders/defect_folder.
    "tekerreka": ExperimentConfig(
        model=DefectAuxNetConfig.from_preset("tekerreka"), dataset="defect_folder"
    ),
    # About ten minutes of training on a 2-core CPU (README: measured): the small
    # network on the embedded synthetic set's quickstart config (1,024 training images,
    # defects at 3x contrast and twice as thick), 7 epochs of 64 steps. No augmentation:
    # 7 passes over generated images do not overfit, and steps are what the CPU lacks.
    "quickstart": ExperimentConfig(
        # Anchors sized to its defects: pits are 5-16 pixels, and anchors from 12 pixels
        # (1.5 x P3's stride) give half of them an anchor of IoU >= 0.5, the default
        # 32-pixel ones none; ratios 1:4 and 4:1 match straight scratches and cracks
        # (84 % and 88 % of them get such an anchor, against 67 % and 78 % without).
        # Positives from IoU 0.4 (RetinaNet: 0.5) give pits 5.7 positive anchors instead
        # of 2.0, and focal gamma 2 (RetinaNet's; the paper's 4 damps the gradient of
        # half-learned anchors) learns faster: mAP@0.5 0.416 -> 0.453 -> 0.527.
        model=DefectAuxNetConfig.from_preset(
            "small",
            anchor_size=1.5,
            anchor_aspect_ratios=(0.25, 0.5, 1.0, 2.0, 4.0),
            focal_gamma=2.0,
            positive_iou=0.4,
            negative_iou=0.3,
        ),
        dataset="synthetic_defects/quickstart",
        batch_size=16,
        epochs=7,
        learning_rate=2e-3,
        augment=False,
        cache=True,
    ),
}
# The small network with the quickstart's detection settings (focal gamma 2); input
# size, anchors, tasks, sampling, batch, learning rate and loss weights come from the
# training split (`recipes.choose_recipe`, `training.auto_recipe`), epochs from a
# 30-minute budget unless --epochs or --time_budget says otherwise. Until the recipe
# has read the split, the task every dataset has and batch 1: the checks of
# `prepare_training_data` must not stop a run over values the recipe replaces.
PRESETS["auto"] = dataclasses.replace(
    PRESETS["quickstart"],
    model=dataclasses.replace(PRESETS["quickstart"].model, tasks=("classification",)),
    batch_size=1,
    augment=True,
    cache=False,
    learning_rate=1e-3,
    time_budget=1800.0,
)
# The segmentation + decision network with the reference code's KolektorSDD settings:
# plain SGD at learning rate 1, batch 1, 50 epochs, no augmentation, frequency-of-use
# sampling of the defect-free images, distance-transform weights w_max 1 and p 2.
PRESETS["segdec_kolektor"] = ExperimentConfig(
    model=SegDecConfig.from_preset("kolektorsdd"),
    dataset="kolektor_sdd",
    model_name="segdec",
    optimizer="sgd",
    batch_size=1,
    epochs=50,
    learning_rate=1.0,
    augment=False,
    negative_sampling=True,
    distance_weights=(1.0, 2.0),
)
# The segmentation + decision network with a narrow trunk (`SegDecConfig` "small") on
# the synthetic quickstart set: a check on a CPU that the model trains, evaluates and
# exports, not the paper's recipe (that is segdec_kolektor). The paper's sampling and
# weights; the quickstart's optimizer and batch, whose steps a CPU can afford.
PRESETS["segdec_small"] = dataclasses.replace(
    PRESETS["quickstart"],
    model=SegDecConfig.from_preset("small", num_classes=4),
    model_name="segdec",
    negative_sampling=True,
    distance_weights=(1.0, 2.0),
)
# The same network with the reference code's DAGM settings (vicoslab/mixed-segdec-net-
# comind2021, EXPERIMENTS_COMIND.sh, train_DAGM N_ALL: DILATE 7, EPOCHS 70, LEARNING_RATE
# 0.05, DELTA 1, BATCH_SIZE 1, WEIGHTED_SEG_LOSS_P 1, _MAX 10, frequency-of-use sampling),
# one texture class per run: --dataset=dagm2007/classN. (The ICPR paper, section IV-C:
# 50 epochs, rate 0.01, batch 5, w_pos 20.)
PRESETS["segdec_dagm"] = dataclasses.replace(
    PRESETS["segdec_kolektor"],
    model=SegDecConfig.from_preset("dagm"),
    dataset="dagm2007/class1",
    epochs=70,
    learning_rate=0.05,
    distance_weights=(10.0, 1.0),
)
# Its Severstal settings (train_single STEEL ALL_3000_N_3000: DILATE 1, EPOCHS 40 for
# 3,000 positive images, LEARNING_RATE 0.1, DELTA 0.1, BATCH_SIZE 10, P 2, MAX 1; the
# ICPR paper, section IV-E: "90, 70, 50 and 40 epochs" for 300 ... 3,000 positive
# samples, eta 0.1, delta 0.1, p 2, batch 10) on all four classes of the builder's
# 70/10/20 split, whose 8,798 training images hold about 4,700 defective ones: the paper
# keeps class 3 only.
PRESETS["segdec_severstal"] = dataclasses.replace(
    PRESETS["segdec_kolektor"],
    model=SegDecConfig.from_preset("severstal"),
    dataset="severstal",
    batch_size=10,
    epochs=40,
    learning_rate=0.1,
    distance_weights=(1.0, 2.0),
)


def _deeplab_severstal(model_preset: str) -> ExperimentConfig:
    """The DeepLabV3+ paper's recipe on Severstal with the model preset's backbone.

    Section 6.1/6.2: "learning rate=0.01, batch size = 16 weight decay = 1e-4, and data
    split is train/evaluation/test=80/10/10(%)"; "30 epochs" (6.1, the baseline; 6.2
    gives no count, so the same). The optimizer is not named: plain SGD, whose
    decoupled decay equals PyTorch's (`training.optimizers`). Section 3.2: a label map
    over background + 4 classes, the softmax output; section 3.3: the random weighted
    augmentation (its W unpublished: `augmentation_weights`' default).
    """
    model = DeepLabV3PlusConfig.from_preset(model_preset, output="softmax")
    return ExperimentConfig(
        model=model,
        dataset="severstal/split_80_10_10",
        model_name="deeplabv3plus",
        optimizer="sgd",
        batch_size=16,
        epochs=30,
        learning_rate=0.01,
        weight_decay=1e-4,
        augmentation="weighted",
    )


# The paper's three backbones (section 5.3) and its baseline without ASPP (5.1).
PRESETS.update(
    (f"deeplab_severstal_{name}", _deeplab_severstal(f"severstal_{name}"))
    for name in ("resnet101", "densenet201", "efficientnetb1", "bare_bone")
)
ExperimentConfig.presets = PRESETS
