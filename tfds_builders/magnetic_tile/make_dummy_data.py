"""Writes the tiny `dummy_data/` fixture of the magnetic tile builder tests.

Run from this folder: `python make_dummy_data.py`. Each folder gets a few grey
JPEGs of varying size with grey PNG masks whose defect edge is anti-aliased:
values 255 inside, 128 on one ring (defect) and 127 on the next (not defect).
"""

import pathlib

import numpy as np
from PIL import Image

_ROOT = pathlib.Path(__file__).parent / "dummy_data"
# Folder -> number of images; 80/20 per folder gives 15 train and 3 test images.
_FOLDER_SIZES = {
    "MT_Blowhole": 5,
    "MT_Break": 2,
    "MT_Crack": 3,
    "MT_Fray": 1,
    "MT_Uneven": 2,
    "MT_Free": 5,
}


def _mask(height: int, width: int, top: int, left: int) -> np.ndarray:
    """A 4 x 6 core of 255, a one-pixel ring of 128 and an outer ring of 127."""
    mask = np.zeros((height, width), dtype=np.uint8)
    mask[top - 2 : top + 6, left - 2 : left + 8] = 127
    mask[top - 1 : top + 5, left - 1 : left + 7] = 128
    mask[top : top + 4, left : left + 6] = 255
    return mask


def main() -> None:
    rng = np.random.default_rng(0)
    for folder, count in _FOLDER_SIZES.items():
        images = _ROOT / folder / "Imgs"
        images.mkdir(parents=True, exist_ok=True)
        for index in range(count):
            stem = f"exp{index}_num_{1000 + index}"
            height, width = 24 + 4 * index, 32 + 2 * index  # sizes vary image to image
            pixels = np.clip(rng.normal(120, 10, (height, width)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, "L").save(images / f"{stem}.jpg", quality=90)
            if folder == "MT_Free":
                mask = np.zeros((height, width), dtype=np.uint8)
            else:
                mask = _mask(height, width, top=3 + index, left=5 + index)
            Image.fromarray(mask, "L").save(images / f"{stem}.png")


if __name__ == "__main__":
    main()
