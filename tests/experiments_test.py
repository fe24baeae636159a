import json

import pytest

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.experiments import PRESETS, ExperimentConfig
from defect_aux_net.models.model_builders import model_config


def test_paper_presets_follow_section_iv():
    severstal = ExperimentConfig.from_preset("severstal")
    assert (severstal.batch_size, severstal.epochs) == (128, 50)
    assert severstal.model.input_shape == (128, 800, 3)
    assert ExperimentConfig.from_preset("tekerreka").model.input_shape == (600, 600, 3)


def test_overrides_replace_fields():
    experiment = ExperimentConfig.from_preset("quickstart", dataset="neu_det", epochs=3)
    assert (experiment.dataset, experiment.epochs) == ("neu_det", 3)
    assert experiment.model == PRESETS["quickstart"].model


def test_train_fraction_slices_the_split():
    assert ExperimentConfig.from_preset("severstal").train_split_slice == "train"
    half = ExperimentConfig.from_preset("quickstart", train_fraction=0.25)
    assert half.train_split_slice == "train[:25%]"


def test_round_trips_through_json():
    experiment = ExperimentConfig.from_preset("quickstart", distance_weights=[1.0, 2.0])
    restored = ExperimentConfig.from_dict(json.loads(json.dumps(experiment.to_dict())))
    assert restored == experiment


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("train_fraction", 0.0, "train_fraction"),
        ("train_fraction", 1.5, "train_fraction"),
        ("batch_size", 0, "batch_size"),
        ("epochs", 0, "epochs"),
        ("learning_rate", -1.0, "learning_rate"),
    ],
)
def test_bad_values_name_the_field(field, value, message):
    with pytest.raises(ValueError, match=message):
        ExperimentConfig.from_preset("quickstart", **{field: value})


def test_unknown_preset_lists_the_presets():
    with pytest.raises(ValueError, match="quickstart"):
        ExperimentConfig.from_preset("imagenet")


def test_for_classes_sets_the_model_class_count():
    experiment = ExperimentConfig.from_preset("quickstart").for_classes(["a", "b"])
    assert experiment.model.num_classes == 2


def test_training_leaves_out_the_holdout_it_validates_on():
    holdout = "holdout(train,10%,seed=0)"
    experiment = ExperimentConfig.from_preset("quickstart", validation_split=holdout)
    assert experiment.train_split_slice == f"train-{holdout}"
    quarter = ExperimentConfig.from_preset(
        "quickstart", validation_split=holdout, train_fraction=0.25
    )
    assert quarter.train_split_slice == f"train[:25%]-{holdout}"
    # A holdout of another split leaves the training split whole.
    other = ExperimentConfig.from_preset("quickstart", validation_split="holdout(extra,5%,seed=0)")
    assert other.train_split_slice == "train"


def test_split_fields_reject_malformed_holdouts():
    with pytest.raises(ConfigError, match=r"holdout\(SPLIT,PERCENT%,seed=N\)") as error:
        ExperimentConfig.from_preset("quickstart", validation_split="holdout(train,10%)")
    assert error.value.field == "ExperimentConfig.validation_split"
    with pytest.raises(ConfigError, match="train_split must be a TFDS split") as error:
        ExperimentConfig.from_preset("quickstart", train_split="holdout(train,10%,seed=0)")
    assert error.value.field == "ExperimentConfig.train_split"


@pytest.mark.parametrize(
    "field, value",
    [("time_budget", 0), ("early_stopping_patience", 0), ("train_fraction", 1.5),
     ("batch_size", 0), ("epochs", 0), ("learning_rate", 0.0), ("weight_decay", -1e-4),
     ("weight_decay", float("nan")), ("weight_decay", "1e-4"), ("ema_momentum", 1.0),
     ("ema_momentum", 0), ("ema_momentum", True)],
)
def test_invalid_values_are_config_errors_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=f"ExperimentConfig.{field} must be") as error:
        ExperimentConfig.from_preset("quickstart", **{field: value})
    assert error.value.field == f"ExperimentConfig.{field}"


@pytest.mark.parametrize("name", ["faster_rcnn", "cascade_rcnn", "segdec"])
def test_early_stopping_is_refused_where_validation_losses_do_not_compare(name):
    # The box heads' losses are over the proposals of an RPN that is learning; segdec's
    # loss weights change every epoch.
    fields = dict(model=model_config(name, "small"), model_name=name)
    with pytest.raises(ConfigError, match=f"and {name}'s does not compare") as error:
        ExperimentConfig.from_preset("quickstart", early_stopping_patience=3, **fields)
    assert error.value.field == "ExperimentConfig.early_stopping_patience"
    assert ExperimentConfig.from_preset("quickstart", **fields).early_stopping_patience is None


def test_the_range_test_needs_a_time_budget():
    with pytest.raises(ConfigError, match="lr_range_test runs within the time budget") as error:
        ExperimentConfig.from_preset("quickstart", lr_range_test=True)
    assert error.value.field == "ExperimentConfig.lr_range_test"
    assert ExperimentConfig.from_preset("auto", lr_range_test=True).lr_range_test


def test_model_name_must_match_the_model_config_and_optimizer_is_checked():
    import dataclasses

    from defect_aux_net.config_errors import ConfigError
    from defect_aux_net.experiments import PRESETS

    segdec = PRESETS["segdec_kolektor"]
    with pytest.raises(ConfigError, match="model_name='defect_aux_net' needs a DefectAuxNetConfig"):
        dataclasses.replace(segdec, model_name="defect_aux_net")
    with pytest.raises(ConfigError, match="Unknown model 'mask_rcnn'"):
        dataclasses.replace(segdec, model_name="mask_rcnn")
    # A model of another config class: the config does not fit it.
    with pytest.raises(ConfigError, match="model_name='unet' needs a SegmentationNetworkConfig"):
        dataclasses.replace(segdec, model_name="unet")
    with pytest.raises(ConfigError, match="optimizer='rmsprop'"):
        dataclasses.replace(segdec, optimizer="rmsprop")
    # The reference code's KolektorSDD hyper-parameters.
    assert (segdec.optimizer, segdec.learning_rate, segdec.batch_size, segdec.epochs) == (
        "sgd", 1.0, 1, 50
    )
    assert (segdec.model.dilation, segdec.model.delta, segdec.distance_weights) == (
        7, 0.01, (1.0, 2.0)
    )


def test_augmentation_and_mixed_supervision_fields_are_checked():
    weighted = ExperimentConfig.from_preset(
        "segdec_small", augmentation="weighted", augmentation_weights=[1, 0, 2],
        segmentation_label_fraction=0.25,
    )
    assert weighted.augmentation_weights == (1.0, 0.0, 2.0)  # JSON's list, as a tuple
    assert ExperimentConfig.from_dict(json.loads(json.dumps(weighted.to_dict()))) == weighted
    for changes, field in [
        ({"augmentation": "mixup"}, "augmentation"),
        ({"augmentation_weights": (1, 1)}, "augmentation_weights"),
        ({"augmentation_weights": (0, 0, 0)}, "augmentation_weights"),
        ({"augmentation_weights": (1, -1, 1)}, "augmentation_weights"),
        ({"segmentation_label_fraction": 1.5}, "segmentation_label_fraction"),
        ({"segmentation_label_fraction": -0.1}, "segmentation_label_fraction"),
    ]:
        with pytest.raises(ConfigError) as raised:
            ExperimentConfig.from_preset("segdec_small", **changes)
        assert raised.value.field == f"ExperimentConfig.{field}"
    # Dropping masks needs a model that segments.
    with pytest.raises(ConfigError, match="no segmentation task"):
        ExperimentConfig.from_preset("auto", segmentation_label_fraction=0.5)


def test_segdec_dagm_and_severstal_presets_are_the_reference_codes():
    # vicoslab/mixed-segdec-net-comind2021 EXPERIMENTS_COMIND.sh, argument order of
    # EXPERIMENTS_ROOT.sh (DILATE ... EPOCHS LEARNING_RATE DELTA BATCH_SIZE weighted P MAX):
    # `train_DAGM ... N_ALL ... 7 1000 70 0.05 1 1 True 1 10 True True True`, and
    # `train_single ... STEEL ... ALL_3000_N_3000 ... 1 3000 3000 40 0.1 0.1 10 True 2 1 ...`;
    # config.py: DAGM 512 x 512 x 1, STEEL 1600 wide x 256 high x 1.
    for name, shape, dilation, epochs, rate, delta, batch, (p, w_max) in [
        ("segdec_dagm", (512, 512, 1), 7, 70, 0.05, 1.0, 1, (1.0, 10.0)),
        ("segdec_severstal", (256, 1600, 1), 1, 40, 0.1, 0.1, 10, (2.0, 1.0)),
    ]:
        preset = PRESETS[name]
        assert (preset.model_name, preset.optimizer, preset.weight_decay) == ("segdec", "sgd", 0)
        assert preset.model.input_shape == shape
        assert (preset.model.dilation, preset.model.delta) == (dilation, delta)
        assert (preset.epochs, preset.learning_rate, preset.batch_size) == (epochs, rate, batch)
        # Our field is (positive weight w_max, power p).
        assert preset.distance_weights == (w_max, p)
        assert preset.negative_sampling and not preset.augment
    assert PRESETS["segdec_dagm"].dataset == "dagm2007/class1"


def test_deeplab_severstal_presets_are_the_papers_recipe():
    # Nie et al. 2022, section 6.2: "learning rate=0.01, batch size = 16 weight decay =
    # 1e-4, and data split is train/evaluation/test=80/10/10(%)"; 6.1: "after 30 epochs";
    # 3.2: 256 x 256 images and a label map with background (softmax); 3.3: weighted
    # augmentation; 5.3: the three backbones; 5.1: the baseline without ASPP.
    backbones = {
        "resnet101": ("resnet101", True),
        "densenet201": ("densenet201", True),
        "efficientnetb1": ("efficientnetb1", True),
        "bare_bone": ("resnet101", False),
    }
    for name, (backbone, aspp) in backbones.items():
        preset = PRESETS[f"deeplab_severstal_{name}"]
        assert (preset.model_name, preset.dataset) == ("deeplabv3plus", "severstal/split_80_10_10")
        assert (preset.optimizer, preset.learning_rate, preset.batch_size) == ("sgd", 0.01, 16)
        assert (preset.weight_decay, preset.epochs) == (1e-4, 30)
        assert preset.augment and preset.augmentation == "weighted"
        model = preset.model
        assert (model.backbone, model.aspp, model.backbone_weights) == (backbone, aspp, "imagenet")
        assert (model.output, model.input_shape, model.num_classes) == ("softmax", (256, 256, 3), 4)
        assert ExperimentConfig.from_dict(json.loads(json.dumps(preset.to_dict()))) == preset
