"""KolektorSDD's folds: the contiguous rule, the reference's split file, and the builder's
fold configs on the dummy data (which items each fold tests on, worked out by hand)."""

import collections
import pickle
import shutil

import pytest
import tensorflow_datasets as tfds
from etils import epath

from defect_aux_net.datasets.yolo import find_ultralytics_splits

from . import kolektor_sdd_dataset_builder as builder_module
from . import kolektor_sdd_folds

_DUMMY_DATA = epath.Path(__file__).parent / "dummy_data"
_FOLDERS = ["kos01", "kos02", "kos03", "kos04", "kos05"]


def test_contiguous_folds_cut_sorted_names_longer_runs_first():
    assert kolektor_sdd_folds.contiguous_folds(["e", "c", "a", "d", "b"]) == [
        ["a", "b"], ["c", "d"], ["e"]
    ]
    folders = [f"kos{number:02d}" for number in range(50, 0, -1)]
    folds = kolektor_sdd_folds.contiguous_folds(folders)
    assert [len(fold) for fold in folds] == [17, 17, 16]
    assert (folds[0][0], folds[0][-1], folds[1][0], folds[2][0], folds[2][-1]) == (
        "kos01", "kos17", "kos18", "kos35", "kos50"
    )
    images = [f"{number:03d}.jpg" for number in range(399)]
    assert [fold[0] for fold in kolektor_sdd_folds.contiguous_folds(images)] == [
        "000.jpg", "133.jpg", "266.jpg"
    ]


def test_contiguous_folds_refuse_repeats_and_too_few_items():
    with pytest.raises(ValueError, match=r"repeated: \['a'\]"):
        kolektor_sdd_folds.contiguous_folds(["a", "a", "b"])
    with pytest.raises(ValueError, match="2 items cannot make 3 folds"):
        kolektor_sdd_folds.contiguous_folds(["a", "b"])


def test_original_layout_folds_by_folder_without_a_split_file():
    # 5 folders cut 2 / 2 / 1; every fold tests one crack (kos01/Part0, kos03/Part1,
    # kos05/Part1 in the dummy masks).
    root = _DUMMY_DATA / "original"
    assert [builder_module.original_fold_folders(root, _FOLDERS, fold) for fold in (1, 2, 3)] == [
        {"train": ["kos03", "kos04", "kos05"], "test": ["kos01", "kos02"]},
        {"train": ["kos01", "kos02", "kos05"], "test": ["kos03", "kos04"]},
        {"train": ["kos01", "kos02", "kos03", "kos04"], "test": ["kos05"]},
    ]


def test_yolo_layout_folds_pool_the_copys_splits_by_file_name():
    root = _DUMMY_DATA / "yolo"
    items = {
        split: builder_module._yolo_items(images, labels)
        for split, (images, labels) in find_ultralytics_splits(root).items()
    }
    tested, defective = [], []
    for fold in (1, 2, 3):
        splits = builder_module.yolo_fold_items(items, fold)
        tested.append([item[1] for item in splits["test"]])
        assert sorted(item[1] for item in splits["train"] + splits["test"]) == [
            "000", "001", "002", "003", "004"
        ]
        defective.append([item[1] for item in splits["test"] if item[3].read_text().strip()])
    assert tested == [["000", "001"], ["002", "003"], ["004"]]
    assert defective == [["000"], ["002"], ["004"]]


def test_yolo_layout_folds_refuse_a_name_in_two_split_folders():
    item = ("000.jpg", "000", epath.Path("a"), epath.Path("b"))
    with pytest.raises(ValueError, match=r"\['000.jpg'\] occur in several split folders"):
        builder_module.yolo_fold_items({"train": [item], "validation": [item]}, 1)


def _write_split_file(root: epath.Path, content, protocol: int = 2) -> epath.Path:
    for folder in _FOLDERS:
        (root / folder).mkdir(parents=True, exist_ok=True)
    path = root / kolektor_sdd_folds.SPLIT_FILE
    path.write_bytes(pickle.dumps(content, protocol=protocol))
    return path


# The reference's test folds in both published layouts: Tabernik et al.'s lists of
# names, Bozic et al.'s (name, is segmented) pairs.
_TEST_FOLDS = [["kos03"], ["kos05", "kos01"], ["kos02", "kos04"]]


@pytest.mark.parametrize(
    "content",
    [
        [[], _TEST_FOLDS, _FOLDERS],
        ([], [[(name, True) for name in fold] for fold in _TEST_FOLDS]),
    ],
    ids=["names", "pairs"],
)
def test_a_split_file_beside_the_folders_gives_the_reference_folds(tmp_path, content):
    root = epath.Path(tmp_path)
    _write_split_file(root, content)
    assert builder_module.original_fold_folders(root, _FOLDERS, 2) == {
        "train": ["kos02", "kos03", "kos04"],
        "test": ["kos01", "kos05"],
    }


@pytest.mark.parametrize(
    "content, message",
    [
        ([[], [["kos01", "kos02"], ["kos03"], ["kos04", "kos07"]]],
         r"\['kos07'\] not found in .*; \['kos05'\] in no test fold"),
        ([[], [["kos01", "kos02"], ["kos02", "kos03"], ["kos04", "kos05"]]],
         r"\['kos02'\] in several test folds"),
        ([[], [["kos01"], ["kos02"]]], "expected 3 test folds"),
        ({"kos01": 1}, r"expected a pickle of \(train folds, test folds, ...\), got a dict"),
        # Loading would import and call what a pickle names: refused before that.
        ([[], collections.OrderedDict(), []],
         "refers to collections.OrderedDict; a split file holds lists of folder"),
    ],
    ids=["unknown_and_missing", "repeated", "two_folds", "dict", "class"],
)
def test_a_bad_split_file_is_refused_naming_it(tmp_path, content, message):
    path = _write_split_file(epath.Path(tmp_path), content, protocol=4)
    with pytest.raises(ValueError, match=message) as error:
        builder_module.original_fold_folders(epath.Path(tmp_path), _FOLDERS, 1)
    assert str(path) in str(error.value)


def test_fold_config_builds_the_split_files_fold(tmp_path):
    manual_dir = epath.Path(shutil.copytree(_DUMMY_DATA / "original", tmp_path / "manual"))
    _write_split_file(manual_dir, [[], _TEST_FOLDS, _FOLDERS])
    builder = builder_module.Builder(config="fold2", data_dir=tmp_path / "data")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir)
    )
    image_ids = {
        split: sorted(
            example["image_id"].decode()
            for example in tfds.as_numpy(builder.as_dataset(split=split))
        )
        for split in ("train", "test")
    }
    assert image_ids == {
        "train": ["kos02/Part0", "kos03/Part0", "kos03/Part1", "kos04/Part0"],
        "test": ["kos01/Part0", "kos01/Part1", "kos05/Part0", "kos05/Part1"],
    }
