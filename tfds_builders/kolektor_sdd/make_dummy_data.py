"""Writes the tiny `dummy_data/` fixture of the KolektorSDD builder tests.

Run from this folder: `python make_dummy_data.py`. Images are 8 wide and 12 high
grey noise; `original/` mimics the `kosNN/PartK.jpg` release with 5 folders,
`yolo/` an Ultralytics segmentation copy.
"""

import pathlib

import numpy as np
from PIL import Image

_ROOT = pathlib.Path(__file__).parent / "dummy_data"
_HEIGHT, _WIDTH = 12, 8
# folder -> part -> defect rectangle (row slice, column slice) or None.
_ORIGINAL = {
    "kos01": {"Part0": (slice(2, 5), slice(1, 4)), "Part1": None},
    "kos02": {"Part0": None},
    "kos03": {"Part0": None, "Part1": (slice(0, 12), slice(7, 8))},
    "kos04": {"Part0": None},
    # A crack in every fold of the contiguous 3-fold rule (kos01-02, kos03-04, kos05).
    "kos05": {"Part0": None, "Part1": (slice(5, 7), slice(2, 6))},
}
# split folder -> image name -> label file text.
_YOLO = {
    "train": {
        # Square x 0.25..0.5 (pixels 2..4), y 0.25..0.5 (pixels 3..6).
        "000": "0 0.25 0.25 0.5 0.25 0.5 0.5 0.25 0.5\n",
        "001": "",
    },
    "val": {
        # Two triangles far apart, pixel vertices (0, 0), (2, 0), (0, 3) and
        # (7, 11), (5, 11), (7, 9): two components, two boxes.
        "002": "0 0 0 0.25 0 0 0.25\n0 0.875 0.9166667 0.625 0.9166667 0.875 0.75\n",
        "003": "",
        # Square x 0.5..0.75 (pixels 4..6), y 0.5..0.75 (pixels 6..9): a defective
        # image in each of the three folds (000-001, 002-003, 004).
        "004": "0 0.5 0.5 0.75 0.5 0.75 0.75 0.5 0.75\n",
    },
}


def _write_image(path: pathlib.Path, rng: np.random.Generator) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, size=(_HEIGHT, _WIDTH), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=50)


def main() -> None:
    rng = np.random.default_rng(0)
    for folder, parts in _ORIGINAL.items():
        for part, defect in parts.items():
            _write_image(_ROOT / "original" / folder / f"{part}.jpg", rng)
            label = np.zeros((_HEIGHT, _WIDTH), np.uint8)
            if defect is not None:
                label[defect] = 255
            Image.fromarray(label).save(_ROOT / "original" / folder / f"{part}_label.bmp")
    for split, labels in _YOLO.items():
        for name, text in labels.items():
            _write_image(_ROOT / "yolo" / "images" / split / f"{name}.jpg", rng)
            label = _ROOT / "yolo" / "labels" / split / f"{name}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(text)


if __name__ == "__main__":
    main()
