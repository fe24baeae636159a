"""The `dataset.yaml` that describes a user's defect folder to the `defect_folder` builder."""

import dataclasses

import yaml
from etils import epath

ANNOTATION_KINDS = ("masks", "voc", "yolo_detection", "yolo_segmentation", "csv")
# Where each kind's annotations live inside a split folder (or the root).
ANNOTATION_LOCATIONS = {
    "masks": "masks/<image stem>.png",
    "voc": "annotations/<image stem>.xml",
    "yolo_detection": "labels/<image stem>.txt",
    "yolo_segmentation": "labels/<image stem>.txt",
    "csv": "labels.csv",
}
_KEYS = ("names", "annotation", "channels", "split", "seed")
# The TekErreka paper split its private set 80/20.
DEFAULT_SPLIT = {"train": 0.8, "validation": 0.2}
TFDS_SPLITS = ("train", "validation", "test")


@dataclasses.dataclass(frozen=True)
class FolderSpec:
    """What `dataset.yaml` says about a defect folder.

    Attributes:
      root: the folder holding `dataset.yaml`, images and annotations.
      class_names: defect class names; class index = position.
      annotation: one of `ANNOTATION_KINDS`.
      channels: 1 (grey) or 3 (RGB) image channels to store.
      split: split name to fraction, used where the folder has no split folders.
      seed: seed of that split.
    """

    root: epath.Path
    class_names: tuple[str, ...]
    annotation: str
    channels: int
    split: dict[str, float]
    seed: int


def _fail(path: epath.Path, message: str) -> ValueError:
    return ValueError(f"{path}: {message}")


def load_folder_spec(path: epath.PathLike) -> FolderSpec:
    """Reads and checks `dataset.yaml`.

    Args:
      path: the YAML file; its folder is the dataset's root.

    Raises:
      FileNotFoundError: where `path` does not exist.
      ValueError: naming `path`, the key and the bad value, for unknown keys, no
        or repeated class names, an unknown annotation kind, channels other than
        1 or 3, or split fractions that are not `train`/`validation`/`test`
        summing to 1.
    """
    path = epath.Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"No dataset YAML at {path}. Put a `dataset.yaml` with at least `names:` "
            f"and `annotation:` (one of {list(ANNOTATION_KINDS)}) next to the images."
        )
    content = yaml.safe_load(path.read_text()) or {}
    if not isinstance(content, dict):
        raise _fail(path, f"expected a mapping of {list(_KEYS)}, got {content!r}.")
    unknown = sorted(set(content) - set(_KEYS))
    if unknown:
        raise _fail(path, f"unknown key(s) {unknown}; known keys are {list(_KEYS)}.")

    names = content.get("names")
    if (
        not isinstance(names, list)
        or not names
        or not all(isinstance(name, str) and name for name in names)
        or len(set(names)) != len(names)
    ):
        raise _fail(path, f"`names` must be a list of distinct class names, got {names!r}.")
    annotation = content.get("annotation")
    if annotation not in ANNOTATION_KINDS:
        raise _fail(path, f"`annotation` must be one of {list(ANNOTATION_KINDS)}, got {annotation!r}.")
    channels = content.get("channels", 3)
    if channels not in (1, 3):
        raise _fail(path, f"`channels` must be 1 or 3, got {channels!r}.")
    split = content.get("split", DEFAULT_SPLIT)
    if (
        not isinstance(split, dict)
        or not set(split) <= set(TFDS_SPLITS)
        or not all(isinstance(value, (int, float)) and value >= 0 for value in split.values())
        or abs(sum(split.values()) - 1) > 1e-6
    ):
        raise _fail(
            path,
            f"`split` must map {list(TFDS_SPLITS)} to fractions >= 0 summing to 1, got {split!r}.",
        )
    seed = content.get("seed", 0)
    if not isinstance(seed, int):
        raise _fail(path, f"`seed` must be an integer, got {seed!r}.")
    return FolderSpec(
        root=path.parent,
        class_names=tuple(names),
        annotation=annotation,
        channels=channels,
        split={name: float(value) for name, value in split.items()},
        seed=seed,
    )
