"""Magnetic tile surface defects (Huang et al., 2018): five defect classes plus defect-free."""

from typing import Iterator

import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath

from defect_aux_net.datasets.defect_examples import defect_example
from defect_aux_net.datasets.features import defect_features
from defect_aux_net.datasets.image_files import pair_with_annotations, read_image, read_mask
from defect_aux_net.datasets.manual_dirs import find_manual_root
from defect_aux_net.datasets.seeded_splits import seeded_split

CLASS_NAMES = ("blowhole", "break", "crack", "fray", "uneven")
# Source folder -> class index; the folder decides the class, MT_Free is defect-free.
FOLDER_CLASSES = {
    "MT_Blowhole": 0,
    "MT_Break": 1,
    "MT_Crack": 2,
    "MT_Fray": 3,
    "MT_Uneven": 4,
    "MT_Free": None,
}
# No official split: 80/20 within each folder (stratified by class), fixed by the seed.
SPLIT_FRACTIONS = {"train": 0.8, "test": 0.2}
SPLIT_SEED = 0
# Masks are anti-aliased grey images; this and brighter is defect.
MASK_THRESHOLD = 128


class Builder(tfds.core.GeneratorBasedBuilder):
    """DatasetBuilder for the magnetic tile defect dataset (manual download)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: seeded 80/20 split stratified by folder."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = """
    Download the magnetic tile defect dataset of Huang et al. from
    https://github.com/abin24/Magnetic-tile-defect-datasets. (clone or "Download
    ZIP") and pass the folder holding the MT_* folders to `--manual_dir` (or put
    them in `<data_dir>/downloads/manual/` or `.../manual/magnetic_tile/`).
    Expected layout, one folder per class, each image with its mask:

      MT_Blowhole/Imgs/<stem>.jpg   grey image
      MT_Blowhole/Imgs/<stem>.png   grey mask (>= 128 is defect)
      MT_Break/Imgs/...   MT_Crack/Imgs/...   MT_Fray/Imgs/...
      MT_Uneven/Imgs/...  MT_Free/Imgs/...    (MT_Free: all-zero masks)
    """

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=defect_features(CLASS_NAMES, channels=1, image_encoding="jpeg"),
            homepage="https://github.com/abin24/Magnetic-tile-defect-datasets.",
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        root = find_manual_root(
            dl_manager.manual_dir,
            self.name,
            lambda folder: any((folder / name).is_dir() for name in FOLDER_CLASSES),
            f"folder of {list(FOLDER_CLASSES)}",
            self.MANUAL_DOWNLOAD_INSTRUCTIONS,
        )
        missing = [folder for folder in FOLDER_CLASSES if not (root / folder / "Imgs").is_dir()]
        if missing:
            raise FileNotFoundError(
                f"{root} lacks {[f'{folder}/Imgs' for folder in missing]}.\n"
                f"{self.MANUAL_DOWNLOAD_INSTRUCTIONS}"
            )
        split_pairs = {split: [] for split in SPLIT_FRACTIONS}
        for folder in FOLDER_CLASSES:
            files = list((root / folder / "Imgs").iterdir())
            images = sorted(path for path in files if path.suffix.lower() == ".jpg")
            if not images:
                raise FileNotFoundError(f"{root / folder / 'Imgs'} holds no .jpg images.")
            pairs = {
                image.name: (folder, image, mask)
                for image, mask in pair_with_annotations(images, files, ".png")
            }
            for split, names in seeded_split(list(pairs), SPLIT_FRACTIONS, SPLIT_SEED).items():
                split_pairs[split].extend(pairs[name] for name in names)
        return {split: self._generate_examples(pairs) for split, pairs in split_pairs.items()}

    def _generate_examples(
        self, pairs: list[tuple[str, epath.Path, epath.Path]]
    ) -> Iterator[tuple[str, dict]]:
        """Yields one example per image, keyed by `<folder>/<file name>`."""
        empty_defect_masks = []
        for folder, image_path, mask_path in pairs:
            class_index = FOLDER_CLASSES[folder]
            image = read_image(image_path, channels=1)
            defect = read_mask(mask_path, image.height, image.width) >= MASK_THRESHOLD
            mask = np.zeros((image.height, image.width, len(CLASS_NAMES)), dtype=np.uint8)
            if class_index is None:
                if defect.any():
                    raise ValueError(
                        f"{mask_path}: {int(defect.sum())} mask pixel(s) >= {MASK_THRESHOLD}, "
                        "but MT_Free images are defect-free (all-zero masks)."
                    )
            else:
                mask[..., class_index] = defect
                if not defect.any():
                    empty_defect_masks.append(str(mask_path))
            yield f"{folder}/{image_path.name}", defect_example(
                image.feature_value("jpeg"),
                image_id=f"{folder}/{image_path.stem}",
                height=image.height,
                width=image.width,
                num_classes=len(CLASS_NAMES),
                mask=mask,
                image_labels=[] if class_index is None else [class_index],
            )
        if empty_defect_masks:
            logging.warning(
                "%d defect images have no mask pixel >= %d (labelled by their folder, "
                "without boxes), e.g. %s",
                len(empty_defect_masks),
                MASK_THRESHOLD,
                empty_defect_masks[:3],
            )
