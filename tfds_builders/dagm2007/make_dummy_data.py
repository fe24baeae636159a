"""Writes the tiny `dummy_data/` fixture of the DAGM 2007 builder tests.

Run from this folder: `python make_dummy_data.py`. Folders Class1 and Class10
(two-digit names must not be confused with Class1), each with four Train images
(two defective) and three Test images (one defective), 32 x 32 grey PNGs; masks
are filled ellipses of 255 as in DAGM, and each Label folder has a Labels.txt.
"""

import pathlib

import numpy as np
from PIL import Image

_ROOT = pathlib.Path(__file__).parent / "dummy_data"
_SIZE = 32
# split folder -> image name -> ellipse (centre row, centre col, radius rows, radius cols)
# for defective images, None for defect-free ones.
_IMAGES = {
    "Train": {"0001": None, "0002": (10, 12, 3, 5), "0003": None, "0004": (25, 25, 4, 2)},
    "Test": {"0001": None, "0002": None, "0003": (16, 8, 2, 6)},
}


def ellipse_mask(centre_row: int, centre_col: int, radius_rows: int, radius_cols: int):
    """Returns the 0 / 255 uint8 mask of a filled axis-aligned ellipse."""
    rows, cols = np.indices((_SIZE, _SIZE))
    inside = ((rows - centre_row) / radius_rows) ** 2 + ((cols - centre_col) / radius_cols) ** 2
    return np.where(inside <= 1.0, 255, 0).astype(np.uint8)


def main() -> None:
    rng = np.random.default_rng(0)
    for class_folder in ("Class1", "Class10"):
        for split, images in _IMAGES.items():
            label_dir = _ROOT / class_folder / split / "Label"
            label_dir.mkdir(parents=True, exist_ok=True)
            lines = []
            for index, (name, ellipse) in enumerate(images.items(), start=1):
                texture = rng.normal(128, 12, (_SIZE, _SIZE))
                if ellipse is not None:
                    texture[ellipse_mask(*ellipse) > 0] -= 30
                pixels = np.clip(texture, 0, 255).astype(np.uint8)
                Image.fromarray(pixels, "L").save(label_dir.parent / f"{name}.PNG")
                if ellipse is not None:
                    Image.fromarray(ellipse_mask(*ellipse), "L").save(
                        label_dir / f"{name}_label.PNG"
                    )
                    lines.append(f"{index}\t1\t{name}.PNG\t0\t{name}_label.PNG")
                else:
                    lines.append(f"{index}\t0\t{name}.PNG\t0\t0")
            (label_dir / "Labels.txt").write_text("1\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
