"""Writes the tiny `dummy_data/` fixture of the Severstal builder tests.

Run from this folder: `python make_dummy_data.py`. Ten 32 x 64 JPEGs with grey
content stored as RGB (as Kaggle's are), four of them defective, written twice:
`current/` with `ImageId,ClassId,EncodedPixels` rows for defects only, `older/`
with four `ImageId_ClassId,EncodedPixels` rows per image.
"""

import csv
import pathlib

import numpy as np
from PIL import Image

from defect_aux_net.datasets.rle import rle_encode

_ROOT = pathlib.Path(__file__).parent / "dummy_data"
_HEIGHT, _WIDTH = 32, 64
# image name -> {Kaggle ClassId: [(row slice, column slice), ...]}.
_DEFECTS = {
    # Two overlapping classes on one image: both must be kept.
    "000000000.jpg": {1: [(slice(2, 6), slice(3, 11))], 3: [(slice(4, 13), slice(8, 21))]},
    # One class, two separate regions.
    "000000001.jpg": {2: [(slice(0, 3), slice(0, 64)), (slice(20, 22), slice(40, 45))]},
    # Ends on the very last pixel (bottom-right corner).
    "000000002.jpg": {4: [(slice(30, 32), slice(60, 64))]},
    "000000003.jpg": {
        1: [(slice(10, 11), slice(10, 11))],
        2: [(slice(5, 9), slice(50, 52))],
        4: [(slice(16, 32), slice(0, 8))],
    },
}
_IMAGE_NAMES = [f"{index:09d}.jpg" for index in range(10)]


def _masks(name: str) -> dict[int, np.ndarray]:
    masks = {}
    for class_id, regions in _DEFECTS.get(name, {}).items():
        mask = np.zeros((_HEIGHT, _WIDTH), dtype=bool)
        for rows, cols in regions:
            mask[rows, cols] = True
        masks[class_id] = mask
    return masks


def _write_images(folder: pathlib.Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in _IMAGE_NAMES:
        grey = 100 + 40 * np.linspace(0, 1, _WIDTH)[None, :] + rng.normal(0, 3, (_HEIGHT, _WIDTH))
        for mask in _masks(name).values():
            grey[mask] -= 50
        pixels = np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=-1)
        Image.fromarray(pixels, "RGB").save(folder / name, quality=90)


def main() -> None:
    current, older = _ROOT / "current", _ROOT / "older"
    for root in (current, older):
        _write_images(root / "train_images")
    with open(current / "train.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["ImageId", "ClassId", "EncodedPixels"])
        for name in _IMAGE_NAMES:
            for class_id, mask in sorted(_masks(name).items()):
                writer.writerow([name, class_id, rle_encode(mask)])
    with open(older / "train.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["ImageId_ClassId", "EncodedPixels"])
        for name in _IMAGE_NAMES:
            masks = _masks(name)
            for class_id in range(1, 5):
                encoded = rle_encode(masks[class_id]) if class_id in masks else ""
                writer.writerow([f"{name}_{class_id}", encoded])


if __name__ == "__main__":
    main()
