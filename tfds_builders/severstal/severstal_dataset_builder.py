"""Severstal: Steel Defect Detection (Kaggle, 2019): steel sheet images, four classes, RLE masks."""

import collections
import csv
import dataclasses
import io
from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from defect_aux_net.datasets.defect_examples import defect_example
from defect_aux_net.datasets.features import defect_features
from defect_aux_net.datasets.image_files import read_image
from defect_aux_net.datasets.manual_dirs import find_manual_root
from defect_aux_net.datasets.rle import rle_decode
from defect_aux_net.datasets.seeded_splits import seeded_split

# Kaggle's ClassId k (1..4) is class index k - 1; the competition never named them.
CLASS_NAMES = ("class_1", "class_2", "class_3", "class_4")
SPLIT_SEED = 0
_CSV_NAME = "train.csv"
_IMAGES_FOLDER = "train_images"


@dataclasses.dataclass(frozen=True)
class RleRow:
    """One defect annotation of `train.csv`: a class's run-length encoding on one image."""

    line: int
    class_index: int
    encoded: str


def _parse_class_id(text: str, where: str) -> int:
    """Returns the class index of Kaggle's ClassId `text` (1..4 -> 0..3)."""
    try:
        class_id = int(text)
    except ValueError:
        class_id = None
    if class_id is None or not 1 <= class_id <= len(CLASS_NAMES):
        raise ValueError(f"{where}: class id {text!r} is not one of 1..{len(CLASS_NAMES)}.")
    return class_id - 1


def read_annotations(csv_path: epath.Path) -> dict[str, list[RleRow]]:
    """Reads `train.csv` in either Kaggle layout into image name -> its defect rows.

    Accepts `ImageId,ClassId,EncodedPixels` (one row per image and class present)
    and the older `ImageId_ClassId,EncodedPixels` (`0002cc93b.jpg_1`, four rows
    per image). Rows with empty EncodedPixels are skipped. Every class of an image
    is kept (keying by image alone would keep only its last class).

    Raises:
      ValueError: naming the file and line, for an unknown header, a class id
        outside 1..4 or a second row for the same image and class.
    """
    rows = collections.defaultdict(list)
    first_line = {}
    reader = csv.DictReader(io.StringIO(csv_path.read_text()))
    header = reader.fieldnames or []
    if {"ImageId", "ClassId", "EncodedPixels"} <= set(header):
        layout = "current"
    elif {"ImageId_ClassId", "EncodedPixels"} <= set(header):
        layout = "older"
    else:
        raise ValueError(
            f"{csv_path}: header {header} is neither `ImageId,ClassId,EncodedPixels` "
            "nor `ImageId_ClassId,EncodedPixels`."
        )
    for row in reader:
        where = f"{csv_path}, line {reader.line_num}"
        if layout == "current":
            image_name, class_text = row["ImageId"], row["ClassId"]
        else:
            image_name, _, class_text = row["ImageId_ClassId"].rpartition("_")
            if not image_name:
                raise ValueError(
                    f"{where}: {row['ImageId_ClassId']!r} is not `<image>_<class id>`."
                )
        class_index = _parse_class_id(class_text, where)
        encoded = (row["EncodedPixels"] or "").strip()
        if not encoded:
            continue
        key = (image_name, class_index)
        if key in first_line:
            raise ValueError(
                f"{where}: a second mask for {image_name} class {class_text} "
                f"(the first is on line {first_line[key]})."
            )
        first_line[key] = reader.line_num
        rows[image_name].append(RleRow(reader.line_num, class_index, encoded))
    return dict(rows)


@dataclasses.dataclass(eq=False)
class SeverstalConfig(tfds.core.BuilderConfig):
    """A seeded partition of the labelled images into train/validation/test.

    Attributes:
      split_fractions: `(split, fraction)` pairs, in order, fractions summing to 1
        (`defect_aux_net.datasets.seeded_splits`, seed `SPLIT_SEED`).
    """

    split_fractions: tuple = ()


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for Severstal steel defects (manual download), one config per split."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release: all classes per image, seeded 70/10/20 split.",
        "1.1.0": "Configs: split_70_10_20 (the default, as 1.0.0) and split_80_10_10.",
    }
    # The first config is the default: `severstal` is `severstal/split_70_10_20`.
    BUILDER_CONFIGS = [
        SeverstalConfig(
            name="split_70_10_20",
            description="The Defect-Aux-Net paper's random 70/10/20 split (section IV-A).",
            split_fractions=(("train", 0.7), ("validation", 0.1), ("test", 0.2)),
        ),
        SeverstalConfig(
            name="split_80_10_10",
            description="The DeepLabV3+ paper's train/evaluation/test = 80/10/10 (section 6).",
            split_fractions=(("train", 0.8), ("validation", 0.1), ("test", 0.1)),
        ),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""
    Accept the rules of the Kaggle competition "Severstal: Steel Defect Detection"
    (https://www.kaggle.com/c/severstal-steel-defect-detection), download its data
    (e.g. `kaggle competitions download -c severstal-steel-defect-detection`),
    unzip it and pass the folder to `--manual_dir` (or put it in
    `<data_dir>/downloads/manual/` or `<data_dir>/downloads/manual/severstal/`).
    Expected layout:

      {_CSV_NAME}                       columns ImageId,ClassId,EncodedPixels
                                      (or the older ImageId_ClassId,EncodedPixels)
      {_IMAGES_FOLDER}/<ImageId>.jpg    all 12,568 training images

    `test_images/` and `sample_submission.csv` are not used (no masks).
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=defect_features(CLASS_NAMES, channels=3, image_encoding="jpeg"),
            homepage="https://www.kaggle.com/c/severstal-steel-defect-detection",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = find_manual_root(
            dl_manager.manual_dir,
            self.name,
            lambda folder: (folder / _CSV_NAME).exists(),
            _CSV_NAME,
            self.MANUAL_DOWNLOAD_INSTRUCTIONS,
        )
        csv_path, images_dir = root / _CSV_NAME, root / _IMAGES_FOLDER
        if not images_dir.is_dir():
            raise FileNotFoundError(
                f"{images_dir} does not exist.\n{self.MANUAL_DOWNLOAD_INSTRUCTIONS}"
            )
        image_names = sorted(path.name for path in images_dir.glob("*.jpg"))
        if not image_names:
            raise FileNotFoundError(f"{images_dir} holds no .jpg images.")
        annotations = read_annotations(csv_path)
        unknown = sorted(set(annotations) - set(image_names))
        if unknown:
            rows = annotations[unknown[0]]
            raise FileNotFoundError(
                f"{csv_path}, line {rows[0].line}: image {unknown[0]} is not in "
                f"{images_dir} ({len(unknown)} annotated images are missing)."
            )
        splits = seeded_split(image_names, dict(self.builder_config.split_fractions), SPLIT_SEED)
        return {
            split: self._generate_examples(images_dir, names, annotations, csv_path)
            for split, names in splits.items()
        }

    def _generate_examples(
        self,
        images_dir: epath.Path,
        image_names: list[str],
        annotations: dict[str, list[RleRow]],
        csv_path: epath.Path,
    ) -> Iterator[tuple[str, dict]]:
        """Yields one example per image, keyed by its file name."""
        for name in image_names:
            image = read_image(images_dir / name, channels=3)
            mask = np.zeros((image.height, image.width, len(CLASS_NAMES)), dtype=np.uint8)
            for row in annotations.get(name, []):
                try:
                    mask[..., row.class_index] = rle_decode(
                        row.encoded, image.height, image.width
                    )
                except ValueError as error:
                    raise ValueError(
                        f"{csv_path}, line {row.line} ({name}, class id "
                        f"{row.class_index + 1}): {error}"
                    ) from error
            yield name, defect_example(
                image.feature_value("jpeg"),
                image_id=name,
                height=image.height,
                width=image.width,
                num_classes=len(CLASS_NAMES),
                mask=mask,
            )
