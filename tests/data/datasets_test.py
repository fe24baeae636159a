import numpy as np
import pytest
import tensorflow_datasets as tfds

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.data import datasets
from defect_aux_net.data.datasets import SplitSummary

from .synthetic_fixture import synthetic_small_builder


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    return synthetic_small_builder(tmp_path_factory)


def test_load_builder_builds_the_synthetic_dataset_when_missing(builder):
    assert builder.is_prepared()
    sizes = {name: split.num_examples for name, split in builder.info.splits.items()}
    assert sizes == {"train": 512, "validation": 128, "test": 128}
    # Loading again reads what was built.
    again = datasets.load_builder("synthetic_defects/small", builder.data_dir_root)
    assert again.data_dir == builder.data_dir


def test_summarize_split_counts_what_tfds_reads(builder):
    examples = list(tfds.as_numpy(builder.as_dataset(split="validation")))
    expected = SplitSummary(
        num_examples=len(examples),
        with_masks=sum(bool(example["has_mask"]) for example in examples),
        with_boxes=sum(bool(example["has_boxes"]) for example in examples),
        defective=sum(bool(example["is_defective"]) for example in examples),
    )

    summary = datasets.summarize_split(builder, "validation")

    assert summary == expected
    # Half of the synthetic images are defect-free; all carry masks and boxes.
    assert summary.num_examples == summary.with_masks == summary.with_boxes == 128
    assert 0 < summary.defective < 128
    assert summary.defective == sum(np.any(example["labels"]) for example in examples)


def test_summarize_split_reads_slices(builder):
    assert datasets.summarize_split(builder, "train[:25%]").num_examples == 128


@pytest.mark.parametrize(
    "summary, task",
    [
        (SplitSummary(10, with_masks=0, with_boxes=10, defective=5), "segmentation"),
        (SplitSummary(10, with_masks=10, with_boxes=0, defective=5), "detection"),
    ],
)
def test_check_tasks_names_the_field_and_the_missing_task(summary, task):
    expected = rf"^DefectAuxNetConfig.tasks includes {task} .*neu_det train.* drop {task} from"
    with pytest.raises(ConfigError, match=expected) as error:
        datasets.check_tasks(
            ("classification", "segmentation", "detection"), summary, "neu_det", "train"
        )
    assert error.value.field == "DefectAuxNetConfig.tasks" and "--" not in str(error.value)


def test_check_tasks_accepts_tasks_the_split_supports():
    boxes_only = SplitSummary(10, with_masks=0, with_boxes=10, defective=5)
    datasets.check_tasks(("classification", "detection"), boxes_only, "neu_det", "train")
    datasets.check_tasks(("classification",), SplitSummary(10, 0, 0, 5), "images", "train")


def test_unknown_dataset_names_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"^ExperimentConfig.dataset='no_such_defects'") as error:
        datasets.load_builder("no_such_defects", str(tmp_path))
    assert error.value.field == "ExperimentConfig.dataset" and "--" not in str(error.value)


def test_unknown_dataset_message_is_short_and_suggests_the_near_name(tmp_path):
    with pytest.raises(ValueError) as error:
        datasets.load_builder("synthetic_defect", str(tmp_path))
    message = str(error.value)
    # One line, not TFDS's catalogue of hundreds of datasets.
    assert "\n" not in message and "abstract_reasoning" not in message
    assert message.startswith("ExperimentConfig.dataset='synthetic_defect': no dataset")
    assert "defect_folder, kolektor_sdd" in message  # This project's builders.
    assert message.endswith("Did you mean 'synthetic_defects'?")


def test_unknown_config_names_the_field_and_the_configs(tmp_path):
    with pytest.raises(
        ConfigError,
        match=r"^ExperimentConfig.dataset='synthetic_defects/no_such_config': synthetic_defects "
        r"has no config "
        r"'no_such_config' \(its configs are default, small, quickstart, rgb, rare_defects\)",
    ):
        datasets.load_builder("synthetic_defects/no_such_config", str(tmp_path))


def test_manual_dataset_not_built_tells_the_build_command(tmp_path):
    with pytest.raises(ValueError) as error:
        datasets.load_builder("neu_det", str(tmp_path))
    message = str(error.value)
    assert message.startswith("ExperimentConfig.dataset='neu_det' is not built")
    assert "tfds build tfds_builders/neu_det --config=" not in message  # no configs
    assert "tfds build tfds_builders/neu_det --manual_dir=" in message
    assert f"--data_dir={tmp_path}" in message
    assert not list(tmp_path.iterdir())  # nothing was generated


def test_not_built_config_is_named_in_the_build_command(tmp_path):
    with pytest.raises(ValueError, match=r"tfds build tfds_builders/dagm2007 --config=class3 "):
        datasets.load_builder("dagm2007/class3", str(tmp_path))


def test_a_config_named_empty_is_given_by_its_index(tmp_path):
    # KolektorSDD's default config is named "": `--config=` would build every config.
    with pytest.raises(ValueError) as error:
        datasets.load_builder("kolektor_sdd", str(tmp_path))
    assert "tfds build tfds_builders/kolektor_sdd --config_idx=0 --manual_dir=" in str(error.value)


def test_class_names_of_the_synthetic_dataset(builder):
    assert datasets.class_names(builder) == ("scratch", "crack", "pit", "blotch")
