import math
import types

import pytest
import tensorflow_datasets as tfds

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.data import datasets, splits

from .folder_fixture import NAME, build_train_test_folder


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return build_train_test_folder(tmp_path_factory.mktemp("train_test"))


@pytest.fixture(scope="module")
def builder(data_dir):
    return datasets.load_builder(NAME, data_dir)


def image_ids(builder, split):
    return [
        example["image_id"].decode()
        for example in tfds.as_numpy(splits.read_split(builder, split, shuffle_files=False))
    ]


def test_a_dataset_without_validation_holds_out_a_stratified_tenth_of_train(builder):
    validation = splits.resolve_validation_split(builder, "validation", "train")
    assert validation == "holdout(train,10%,seed=0)"

    # The strata, computed from the raw examples: (defective, classes).
    train = {
        example["image_id"].decode(): (bool(example["is_defective"]), tuple(example["labels"]))
        for example in tfds.as_numpy(builder.as_dataset(split="train"))
    }
    held = image_ids(builder, validation)
    rest = image_ids(builder, f"train-{validation}")

    assert len(train) == 80 and len(held) == 8  # round(10 % of 80)
    assert not set(held) & set(rest) and sorted(held + rest) == sorted(train)
    by_stratum = {}
    for image_id, stratum in train.items():
        by_stratum.setdefault(stratum, []).append(image_id)
    assert len(by_stratum) == 4  # defect-free, crack, pit, crack and pit
    for stratum, members in by_stratum.items():
        count = sum(image_id in held for image_id in members)
        assert math.floor(0.1 * len(members)) <= count <= math.ceil(0.1 * len(members)), stratum
    defective_share = sum(train[image_id][0] for image_id in held) / len(held)
    assert abs(defective_share - sum(value[0] for value in train.values()) / 80) <= 1 / 8


def test_the_holdout_is_the_same_when_read_again_from_scratch(builder, data_dir):
    first = image_ids(builder, "holdout(train,10%,seed=0)")
    splits._STRATA.clear()  # As a new process (launch.evaluate) reads it.
    again = datasets.load_builder(NAME, data_dir)
    assert image_ids(again, "holdout(train,10%,seed=0)") == first
    assert image_ids(again, "holdout(train,10%,seed=1)") != first


def test_summaries_count_the_holdout_and_the_rest(builder):
    held = datasets.summarize_split(builder, "holdout(train,10%,seed=0)")
    rest = datasets.summarize_split(builder, "train-holdout(train,10%,seed=0)")
    assert (held.num_examples, rest.num_examples) == (8, 72)
    train = datasets.summarize_split(builder, "train")
    assert held.defective + rest.defective == train.defective


@pytest.mark.parametrize(
    "field, split, message",
    [
        ("validation_split", "val", "has no split val; its splits are test, train"),
        ("validation_split", "validation[:32]", "has no split validation; its splits are"),
        ("test_split", "tset", "has no split tset; its splits are test, train"),
        ("validation_split", "holdout(valid,10%,seed=0)", "has no split valid;"),
        ("train_split", "train[:200%]", r"boundaries should be in \[-100, 100\]"),
    ],
)
def test_missing_splits_name_the_field_and_the_splits_there_are(builder, field, split, message):
    field = f"ExperimentConfig.{field}"
    with pytest.raises(ConfigError, match=rf"^{field}='{split[:5]}.*{message}") as error:
        splits.check_split(builder, split, field)
    assert error.value.field == field


def test_defaults_resolve_only_where_the_dataset_lacks_the_split(builder):
    assert splits.resolve_test_split(builder, "test") == "test"
    assert splits.resolve_test_split(builder, "") is None
    with pytest.raises(ConfigError, match="^ExperimentConfig.validation_split='val'") as error:
        splits.resolve_validation_split(builder, "val", "train")
    assert error.value.field == "ExperimentConfig.validation_split"
    train_and_validation = types.SimpleNamespace(
        info=types.SimpleNamespace(splits={"train": 1, "validation": 1}, full_name="x/y/1.0.0")
    )
    assert splits.resolve_test_split(train_and_validation, "test") is None
    with pytest.raises(ValueError, match="^ExperimentConfig.test_split='tset': x/y has no split"):
        splits.resolve_test_split(train_and_validation, "tset")
