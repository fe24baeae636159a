"""Tests of the synthetic_defects builder: the TFDS harness, determinism, fidelity."""

import numpy as np
import tensorflow_datasets as tfds

from defect_aux_net.datasets import synthetic

from . import synthetic_defects_dataset_builder


# Tiny variants of the real configs, so that the harness builds in seconds.
_TINY_GREY = synthetic_defects_dataset_builder.SyntheticDefectsConfig(
    name="tiny_grey", num_train=10, num_validation=4, num_test=6
)
_TINY_RGB = synthetic_defects_dataset_builder.SyntheticDefectsConfig(
    name="tiny_rgb",
    num_train=10,
    num_validation=4,
    num_test=6,
    spec=synthetic.SyntheticSpec(height=64, width=96, channels=3, defect_free_fraction=0.3),
)


class SyntheticDefectsTest(tfds.testing.DatasetBuilderTestCase):
    """The standard TFDS builder checks on the two tiny configs."""

    DATASET_CLASS = synthetic_defects_dataset_builder.Builder
    BUILDER_CONFIG_NAMES_TO_TEST = [_TINY_GREY, _TINY_RGB]
    SPLITS = {"train": 10, "validation": 4, "test": 6}
    # Nothing is downloaded; the harness only needs an existing folder.
    EXAMPLE_DIR = str(synthetic_defects_dataset_builder.Builder.code_path.parent)


def _build_and_read(data_dir, config, split):
    builder = synthetic_defects_dataset_builder.Builder(data_dir=data_dir, config=config)
    builder.download_and_prepare()
    return list(tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False)))


def test_two_builds_give_identical_examples_in_the_same_order(tmp_path):
    first = _build_and_read(tmp_path / "first", _TINY_RGB, "train")
    second = _build_and_read(tmp_path / "second", _TINY_RGB, "train")

    assert [example["image_id"] for example in first] == [
        example["image_id"] for example in second
    ]
    for one, other in zip(first, second):
        np.testing.assert_array_equal(one["image"], other["image"])
        np.testing.assert_array_equal(one["segmentation_mask"], other["segmentation_mask"])
        np.testing.assert_array_equal(one["objects"]["bbox"], other["objects"]["bbox"])


def test_stored_examples_equal_the_generator_output(tmp_path):
    stored = _build_and_read(tmp_path, _TINY_RGB, "validation")

    assert sorted(example["image_id"] for example in stored) == [
        b"validation_000000", b"validation_000001", b"validation_000002", b"validation_000003"
    ]
    for example in stored:
        index = int(example["image_id"].decode().rsplit("_", 1)[1])
        expected = synthetic.generate_example(index, "validation", _TINY_RGB.spec)
        np.testing.assert_array_equal(example["image"], expected["image"])  # PNG is lossless
        np.testing.assert_array_equal(example["segmentation_mask"], expected["segmentation_mask"])
        np.testing.assert_array_equal(example["labels"], expected["labels"])
        np.testing.assert_array_equal(example["objects"]["label"], expected["objects"]["label"])
        np.testing.assert_allclose(example["objects"]["bbox"], expected["objects"]["bbox"])
        assert example["is_defective"] == expected["is_defective"]
        assert example["has_mask"] and example["has_boxes"]


def test_real_configs_have_the_documented_sizes():
    builder_class = synthetic_defects_dataset_builder.Builder
    configs = {config.name: config for config in builder_class.BUILDER_CONFIGS}
    sizes = {
        name: (config.num_train, config.num_validation, config.num_test)
        for name, config in configs.items()
    }

    assert sizes == {
        "default": (4000, 500, 500),
        "small": (512, 128, 128),
        "quickstart": (1024, 256, 256),
        "rgb": (4000, 500, 500),
        "rare_defects": (4000, 500, 500),
    }
    assert configs["rgb"].spec.channels == 3
    assert configs["rare_defects"].spec.defect_free_fraction == 0.9
    assert configs["quickstart"].spec.defect_contrast == 3.0
    assert builder_class.DEFAULT_BUILDER_CONFIG_NAME == "default"
