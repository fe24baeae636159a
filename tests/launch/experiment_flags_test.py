import pytest
from absl import flags
from absl.testing import flagsaver

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.models.model_builders import model_config
from launch import experiment_flags, flag_errors


def parse(*args):
    flags.FLAGS.unparse_flags()
    flags.FLAGS(["train", *args])


@flagsaver.flagsaver
def test_dataset_without_preset_is_the_automatic_recipe_and_its_30_minutes():
    parse("--dataset=neu_det", "--batch_size=4", "--input_size=96,96")
    assert experiment_flags.preset_name() == "auto"
    experiment = experiment_flags.experiment_from_flags()
    assert experiment.time_budget == 1800
    # What the recipe must leave alone: the flags given, whatever their values.
    assert experiment_flags.given_fields() == {"dataset", "batch_size", "model.input_shape"}
    assert not experiment.lr_range_test  # The recipe's rule sets the learning rate.
    parse("--dataset=neu_det", "--lr_range_test")
    assert experiment_flags.experiment_from_flags().lr_range_test


@flagsaver.flagsaver
def test_without_dataset_the_default_stays_quickstart():
    parse()
    assert experiment_flags.preset_name() == "quickstart"
    assert experiment_flags.experiment_from_flags().time_budget is None
    parse("--dataset=neu_det", "--preset=quickstart")
    assert experiment_flags.preset_name() == "quickstart"


@flagsaver.flagsaver
def test_epochs_replace_the_budget_and_a_budget_the_epochs():
    parse("--dataset=neu_det", "--epochs=3")
    experiment = experiment_flags.experiment_from_flags()
    assert (experiment.epochs, experiment.time_budget) == (3, None)
    parse("--preset=quickstart", "--time_budget=1h30m", "--early_stopping_patience=4")
    experiment = experiment_flags.experiment_from_flags()
    assert (experiment.time_budget, experiment.early_stopping_patience) == (5400, 4)


@flagsaver.flagsaver
@pytest.mark.parametrize(
    "args, message",
    [
        (["--epochs=3", "--time_budget=30m"], "--epochs or --time_budget"),
        (["--time_budget=30"], "--time_budget='30'"),
        (["--dataset=neu_det", "--lr_range_test", "--learning_rate=1e-3"],
         "--learning_rate or --lr_range_test"),
        (["--dataset=neu_det", "--lr_range_test", "--epochs=3"],
         "lr_range_test runs within the time budget"),
    ],
)
def test_bad_budget_flags_name_the_flag(args, message):
    parse(*args)
    with pytest.raises(ValueError, match=message):
        experiment_flags.experiment_from_flags()


@flagsaver.flagsaver
def test_model_segdec_defaults_to_its_preset_and_round_trips_through_config_json():
    from defect_aux_net.experiments import ExperimentConfig
    from defect_aux_net.models.segdec_config import SegDecConfig
    from defect_aux_net.training import run_files

    parse("--model=segdec", "--input_size=256,128")
    assert experiment_flags.preset_name() == "segdec_kolektor"
    experiment = experiment_flags.experiment_from_flags()
    assert isinstance(experiment.model, SegDecConfig)
    assert (experiment.model_name, experiment.optimizer) == ("segdec", "sgd")
    assert experiment.model.input_shape == (256, 128, 1)
    values = run_files.config_dict(experiment, ["defect"])
    values.pop("class_names")
    assert ExperimentConfig.from_dict(values) == experiment
    # Another preset keeps its schedule and input shape, with the chosen network.
    parse("--model=segdec", "--preset=quickstart")
    experiment = experiment_flags.experiment_from_flags()
    assert (experiment.model_name, experiment.optimizer) == ("segdec", "one_cycle_adam")
    assert experiment.model == SegDecConfig(num_classes=4, input_shape=(128, 128, 3))


@flagsaver.flagsaver
def test_models_sharing_a_config_class_get_their_own_network_and_round_trip():
    from defect_aux_net.experiments import ExperimentConfig
    from defect_aux_net.models.model_builders import model_name
    from defect_aux_net.training import run_files

    parse("--model=linknet", "--preset=quickstart", "--attention=se")
    experiment = experiment_flags.experiment_from_flags()
    assert (experiment.model_name, experiment.model.decoder) == ("linknet", "linknet")
    assert (experiment.model.attention, experiment.model.input_shape) == ("se", (128, 128, 3))
    assert model_name(experiment.model) == "linknet"
    values = run_files.config_dict(experiment, ["a", "b", "c", "d"])
    values.pop("class_names")
    assert ExperimentConfig.from_dict(values) == experiment


@flagsaver.flagsaver
@pytest.mark.parametrize(
    "args, message",
    [
        (["--attention=se"], "--attention does not apply to --model=segdec"),
        (["--backbone=resnet50"], "--backbone does not apply to --model=segdec"),
        (["--loss_weights=1,1,1"], "--loss_weights does not apply"),
        (["--tasks=segmentation"], "always"),
    ],
)
def test_defect_aux_net_flags_are_refused_with_model_segdec(args, message):
    parse("--model=segdec", *args)
    with pytest.raises(ValueError, match=message):
        experiment_flags.experiment_from_flags()


@flagsaver.flagsaver
def test_model_preset_picks_the_networks_config_and_the_recipe_serves_every_network():
    parse("--model=se_resnet50", "--model_preset=small", "--dataset=neu_det")
    experiment = experiment_flags.experiment_from_flags()
    assert experiment_flags.preset_name() == "auto"
    expected = model_config("se_resnet50", "small", num_classes=experiment.model.num_classes)
    assert (experiment.model_name, experiment.model) == ("se_resnet50", expected)
    parse("--model=se_resnet50", "--model_preset=tiny", "--dataset=neu_det")
    with pytest.raises(ValueError, match="--model_preset: .*Unknown ImageClassifierConfig preset "
                       "'tiny'; choose one of severstal, small, tekerreka"):
        experiment_flags.experiment_from_flags()


@flagsaver.flagsaver
def test_the_lean_top_down_pathway_from_flags_and_kept_by_the_recipe():
    parse("--dataset=neu_det", "--nop2_output_conv", "--segmentation_channels=16")
    experiment = experiment_flags.experiment_from_flags()
    assert (experiment.model.p2_output_conv, experiment.model.segmentation_channels) == (False, 16)
    assert {"model.p2_output_conv", "model.segmentation_channels"} <= (
        experiment_flags.given_fields()
    )
    parse("--model=segdec", "--segmentation_channels=16")
    with pytest.raises(ValueError, match="--segmentation_channels does not apply to --model=seg"):
        experiment_flags.experiment_from_flags()
    with pytest.raises(flags.IllegalFlagValueError):
        flags.FLAGS["segmentation_channels"].parse("0")


def test_model_flag_is_validated_and_in_help():
    with pytest.raises(flags.IllegalFlagValueError):
        flags.FLAGS["model"].parse("unet3d")
    assert "segdec" in flags.FLAGS["model"].help


@flagsaver.flagsaver
def test_weight_decay_flag_overrides_the_preset_and_is_validated():
    parse("--preset=deeplab_severstal_resnet101")
    assert experiment_flags.experiment_from_flags().weight_decay == 1e-4
    parse("--preset=deeplab_severstal_resnet101", "--weight_decay=0")
    assert experiment_flags.experiment_from_flags().weight_decay == 0
    assert experiment_flags.given_fields() == {"weight_decay"}
    with pytest.raises(flags.IllegalFlagValueError, match="weight_decay"):
        flags.FLAGS["weight_decay"].parse("-1e-4")
    from launch import train

    # launch.train --help lists it.
    assert "weight_decay" in {flag.name for flag in flags.FLAGS.get_key_flags_for_module(train)}


@flagsaver.flagsaver
def test_ema_momentum_flag_sets_the_field_and_is_validated():
    parse("--preset=quickstart")
    assert experiment_flags.experiment_from_flags().ema_momentum is None
    parse("--preset=quickstart", "--ema_momentum=0.99")
    assert experiment_flags.experiment_from_flags().ema_momentum == 0.99
    assert experiment_flags.given_fields() == {"ema_momentum"}
    with pytest.raises(flags.IllegalFlagValueError, match="ema_momentum"):
        flags.FLAGS["ema_momentum"].parse("1.5")
    parse("--preset=quickstart", "--ema_momentum=1")
    with pytest.raises(ConfigError) as error:
        experiment_flags.experiment_from_flags()
    # What launch.train prints.
    assert flag_errors.flag_message(error.value).startswith(
        "--ema_momentum must be a number in (0, 1)"
    )
