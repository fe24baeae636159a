"""A user's own defect images: a folder, its annotations and a `dataset.yaml`."""

import dataclasses
import functools
from typing import Any, Iterator

import tensorflow_datasets as tfds
from etils import epath

from defect_aux_net.datasets.defect_examples import defect_example
from defect_aux_net.datasets.features import defect_features
from defect_aux_net.datasets.image_files import list_images, pair_with_annotations, read_image
from defect_aux_net.datasets.seeded_splits import seeded_split

from . import folder_annotations
from .folder_spec import ANNOTATION_LOCATIONS, TFDS_SPLITS, FolderSpec, load_folder_spec

_READERS = {
    "masks": folder_annotations.read_index_mask,
    "voc": folder_annotations.read_voc,
    "yolo_detection": folder_annotations.read_yolo_detection,
    "yolo_segmentation": folder_annotations.read_yolo_segmentation,
    "csv": folder_annotations.read_csv_labels,
}
_EXAMPLE_YAML = epath.Path(__file__).parent / "dummy_data" / "masks" / "dataset.yaml"

# (key, image file, annotation: a file, or the CSV's class indices)
Item = tuple[str, epath.Path, Any]


@dataclasses.dataclass(eq=False)
class DefectFolderConfig(tfds.core.BuilderConfig):
    """Names a defect folder by its `dataset.yaml` (local path or gs://).

    `_info` needs the class names when the builder is created, before TFDS
    hands out `manual_dir`, so the YAML's path travels in the config:
    `tfds build ... --config '{"name": "mine", "dataset_yaml": "DIR/dataset.yaml"}'`.
    """

    dataset_yaml: str = ""


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for a folder of defect images described by `dataset.yaml`."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: masks, VOC, YOLO and CSV annotations."}
    BUILDER_CONFIGS = [
        DefectFolderConfig(
            name="example",
            dataset_yaml=str(_EXAMPLE_YAML),
            description="The five-image example bundled in dummy_data/masks.",
        )
    ]

    @functools.cached_property
    def folder_spec(self) -> FolderSpec:
        if not self.builder_config.dataset_yaml:
            raise ValueError(
                f"Config {self.builder_config.name!r} names no `dataset_yaml`; pass "
                '--config \'{"name": "NAME", "dataset_yaml": "DIR/dataset.yaml"}\'.'
            )
        return load_folder_spec(self.builder_config.dataset_yaml)

    def _info(self) -> tfds.core.DatasetInfo:
        spec = self.folder_spec
        return self.dataset_info_from_configs(
            features=defect_features(spec.class_names, channels=spec.channels),
            supervised_keys=None,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        del dl_manager  # The data is where `dataset_yaml` is.
        spec = self.folder_spec
        split_folders = [name for name in TFDS_SPLITS if (spec.root / name).is_dir()]
        if split_folders:
            if (spec.root / "images").is_dir():
                raise ValueError(
                    f"{spec.root} has both split folders {split_folders} and images/; "
                    "keep either the split folders or one images/ folder."
                )
            return {
                split: self._generate_examples(self._items(spec, spec.root / split))
                for split in split_folders
            }
        items = {item[0]: item for item in self._items(spec, spec.root)}
        keys = seeded_split(list(items), spec.split, spec.seed)
        return {
            split: self._generate_examples([items[key] for key in split_keys])
            for split, split_keys in keys.items()
        }

    def _items(self, spec: FolderSpec, folder: epath.Path) -> list[Item]:
        """Pairs each image in `folder/images/` with its annotation."""
        images_dir = folder / "images"
        if not images_dir.is_dir():
            raise FileNotFoundError(
                f"{images_dir} does not exist. Expected layout next to "
                f"{spec.root / 'dataset.yaml'}: [train/|validation/|test/]images/ "
                f"with {ANNOTATION_LOCATIONS[spec.annotation]} for annotation "
                f"{spec.annotation!r}."
            )
        images = list_images(images_dir)
        if not images:
            raise FileNotFoundError(f"{images_dir} holds no images.")
        location = ANNOTATION_LOCATIONS[spec.annotation]
        if spec.annotation == "csv":
            labels = folder_annotations.load_label_csv(folder / location, spec.class_names)
            missing = sorted(image.name for image in images if image.name not in labels)
            orphans = sorted(set(labels) - {image.name for image in images})
            if missing or orphans:
                raise FileNotFoundError(
                    f"{folder / location}: images without a row {missing[:3]}, rows "
                    f"without an image {orphans[:3]} (every image needs a row; an "
                    "empty `label` marks a defect-free one)."
                )
            pairs = [(image, labels[image.name]) for image in images]
        else:
            annotation_dir, suffix = location.split("/<image stem>")
            if not (folder / annotation_dir).is_dir():
                raise FileNotFoundError(
                    f"{folder / annotation_dir} does not exist; annotation "
                    f"{spec.annotation!r} expects {location} beside images/."
                )
            pairs = pair_with_annotations(images, (folder / annotation_dir).iterdir(), suffix)
        prefix = "" if folder == spec.root else f"{folder.name}/"
        return [(f"{prefix}images/{image.name}", image, annotation) for image, annotation in pairs]

    def _generate_examples(self, items: list[Item]) -> Iterator[tuple[str, dict]]:
        """Yields one example per image, keyed by its path inside the folder."""
        spec = self.folder_spec
        read_annotation = _READERS[spec.annotation]
        for key, image_path, annotation in items:
            image = read_image(image_path, spec.channels)
            yield key, defect_example(
                image.feature_value("png"),
                image_id=image_path.stem,
                height=image.height,
                width=image.width,
                num_classes=len(spec.class_names),
                **read_annotation(annotation, image, spec.class_names),
            )
