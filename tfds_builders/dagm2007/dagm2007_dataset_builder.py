"""DAGM 2007: ten synthetic texture classes, each a binary defect problem with ellipse masks."""

import dataclasses
from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath

from defect_aux_net.datasets.defect_examples import defect_example
from defect_aux_net.datasets.features import defect_features
from defect_aux_net.datasets.image_files import read_image, read_mask

CLASS_NAMES = ("defect",)
# Source split folder -> TFDS split; the source's own split is kept.
SPLIT_FOLDERS = {"Train": "train", "Test": "test"}
_LABEL_SUFFIX = "_label.png"


@dataclasses.dataclass(eq=False)
class Dagm2007Config(tfds.core.BuilderConfig):
    """One DAGM texture class.

    Attributes:
      class_number: the `N` of the source folder `ClassN` (1..10).
    """

    class_number: int = 1

    @property
    def folder(self) -> str:
        return f"Class{self.class_number}"


def _label_stem(path: epath.Path) -> str | None:
    """Returns `NAME` for a `NAME_label.PNG` file (any case), None for other files."""
    if path.name.lower().endswith(_LABEL_SUFFIX):
        return path.name[: -len(_LABEL_SUFFIX)]
    return None


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for DAGM 2007, one config per texture class (manual download)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: classes 1-10, source train/test split."}
    BUILDER_CONFIGS = [
        Dagm2007Config(
            name=f"class{number}",
            description=f"Texture class {number} (folder Class{number}), defect vs. defect-free.",
            class_number=number,
        )
        for number in range(1, 11)
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download the DAGM 2007 competition data ("Weakly Supervised Learning for
    Industrial Optical Inspection", classes 1-10, e.g. Class1.zip .. Class10.zip)
    from https://hci.iwr.uni-heidelberg.de/content/weakly-supervised-learning-industrial-optical-inspection
    (also mirrored on Zenodo and Kaggle), unzip them side by side and pass their
    parent folder to `--manual_dir` (or put them in `<data_dir>/downloads/manual/`
    or `.../manual/dagm2007/`). Expected layout, for N in 1..10:

      ClassN/Train/<name>.PNG               grey image
      ClassN/Train/Label/<name>_label.PNG   mask, only for defective images
      ClassN/Test/...                       the same for the test split

    Other files in Label/ (e.g. Labels.txt) are ignored.
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=defect_features(CLASS_NAMES, channels=1, image_encoding="png"),
            homepage=(
                "https://hci.iwr.uni-heidelberg.de/content/"
                "weakly-supervised-learning-industrial-optical-inspection"
            ),
        )

    def _class_dir(self, manual_dir: epath.Path) -> epath.Path:
        """Returns `ClassN` under `manual_dir` or under `manual_dir/dagm2007`."""
        folder = self.builder_config.folder
        for root in (manual_dir, manual_dir / self.name):
            if (root / folder).is_dir():
                return root / folder
        raise FileNotFoundError(
            f"{manual_dir} has no folder {folder} (found "
            f"{sorted(path.name for path in manual_dir.iterdir())[:10]}).\n"
            f"{self.MANUAL_DOWNLOAD_INSTRUCTIONS}"
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        class_dir = self._class_dir(dl_manager.manual_dir)
        splits = {}
        for folder, split in SPLIT_FOLDERS.items():
            if not (class_dir / folder).is_dir():
                raise FileNotFoundError(
                    f"{class_dir / folder} does not exist.\n{self.MANUAL_DOWNLOAD_INSTRUCTIONS}"
                )
            splits[split] = self._generate_examples(class_dir / folder)
        return splits

    def _find_pairs(self, split_dir: epath.Path) -> list[tuple[epath.Path, epath.Path | None]]:
        """Returns `(image, label or None)` for every image of a split folder, by name."""
        images = sorted(
            path for path in split_dir.iterdir() if path.suffix.lower() == ".png"
        )
        if not images:
            raise FileNotFoundError(f"{split_dir} holds no .PNG images.")
        label_dir = split_dir / "Label"
        labels = {}
        if label_dir.is_dir():
            for path in label_dir.iterdir():
                stem = _label_stem(path)
                if stem is not None:
                    labels[stem] = path
        by_stem = {image.stem: image for image in images}
        orphans = sorted(str(path) for stem, path in labels.items() if stem not in by_stem)
        if orphans:
            raise FileNotFoundError(
                f"{len(orphans)} label file(s) have no image `<name>.PNG` in {split_dir}, "
                f"e.g. {orphans[:3]}."
            )
        return [(image, labels.get(image.stem)) for image in images]

    def _generate_examples(self, split_dir: epath.Path) -> Iterator[tuple[str, dict]]:
        """Yields one example per image, keyed by `ClassN/<split folder>/<file name>`."""
        prefix = f"{self.builder_config.folder}/{split_dir.name}"
        empty_labels = []
        for image_path, label_path in self._find_pairs(split_dir):
            image = read_image(image_path, channels=1)
            mask = np.zeros((image.height, image.width, 1), dtype=np.uint8)
            if label_path is not None:
                # Masks are stored as 0 / 255; any nonzero pixel is defect.
                mask[..., 0] = read_mask(label_path, image.height, image.width) > 0
                if not mask.any():
                    empty_labels.append(str(label_path))
            yield f"{prefix}/{image_path.name}", defect_example(
                image.feature_value("png"),
                image_id=f"{prefix}/{image_path.stem}",
                height=image.height,
                width=image.width,
                num_classes=len(CLASS_NAMES),
                mask=mask,
                # The label file's existence makes the image defective.
                image_labels=[] if label_path is None else [0],
            )
        if empty_labels:
            logging.warning(
                "%d label files of %s are all zero (images kept as defective, without "
                "boxes), e.g. %s",
                len(empty_labels),
                prefix,
                empty_labels[:3],
            )
