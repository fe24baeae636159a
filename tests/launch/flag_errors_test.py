import pytest

from defect_aux_net.config_errors import ConfigError
from launch import experiment_flags, flag_errors


def test_every_experiment_flag_is_the_flag_of_its_field():
    # experiment_flags sets `model.<name>` of the experiment: DefectAuxNetConfig.<name>.
    for flag, field in experiment_flags._FIELDS.items():
        spelled = field.replace("model.", "DefectAuxNetConfig.", 1)
        if "." not in spelled:
            spelled = f"ExperimentConfig.{field}"
        assert flag_errors.flag_name(spelled) == flag, field


@pytest.mark.parametrize(
    "field, message, printed",
    [
        (
            "ExperimentConfig.epochs",
            "ExperimentConfig.epochs=1 x 2 steps per epoch (ExperimentConfig.batch_size=16) "
            "= 2 steps are too few",
            "--epochs=1 x 2 steps per epoch (--batch_size=16) = 2 steps are too few",
        ),
        (
            "DefectAuxNetConfig.tasks",
            "DefectAuxNetConfig.tasks includes detection but x train has no image with boxes; "
            "drop detection from DefectAuxNetConfig.tasks.",
            "--tasks includes detection but x train has no image with boxes; drop detection "
            "from --tasks.",
        ),
        (
            "model_dir",
            "model_dir=runs/a holds a run of another configuration. Use a new model_dir, or "
            "overwrite=True to delete that run.",
            "--model_dir=runs/a holds a run of another configuration. Use a new model_dir, or "
            "--overwrite to delete that run.",
        ),
        (
            "ExperimentConfig.negative_sampling",
            "ExperimentConfig.negative_sampling=True needs defective images.",
            "--negative_sampling needs defective images.",
        ),
        # The flag of a renamed field; ConfigError puts the field first where it is missing.
        (
            "DefectAuxNetConfig.input_shape",
            "the defects vanish at (32, 32, 3).",
            "--input_size: the defects vanish at (32, 32, 3).",
        ),
        # A message naming its field later starts with the flag.
        (
            "ExperimentConfig.validation_split",
            "x has no validation split: set ExperimentConfig.validation_split.",
            "--validation_split: x has no validation split: set --validation_split.",
        ),
        # Every model's config class, by its name.
        (
            "SegDecConfig.delta",
            "SegDecConfig.delta must be >= 0, got -1.",
            "--delta must be >= 0, got -1.",
        ),
        # `tfds build`'s own flags, and arguments named without a value, stay as they are.
        (
            "ExperimentConfig.dataset",
            "ExperimentConfig.dataset='neu_det' is not built in /d. Build it first: tfds build "
            "neu_det --data_dir=/d; the model_dir and overwrite are untouched.",
            "--dataset='neu_det' is not built in /d. Build it first: tfds build neu_det "
            "--data_dir=/d; the model_dir and overwrite are untouched.",
        ),
    ],
)
def test_config_errors_are_printed_with_flags(field, message, printed):
    assert flag_errors.flag_message(ConfigError(field, message)) == printed


def test_other_errors_are_printed_as_they_are():
    message = "ExperimentConfig.dataset is named in a plain ValueError"
    assert flag_errors.flag_message(ValueError(message)) == message
