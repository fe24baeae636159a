"""Writes the tiny `dummy_data/` fixture of the NEU-DET builder tests.

Run from this folder: `python make_dummy_data.py`. Images are 16 x 16 noise; the
VOC images are grey and the YOLO ones RGB, to cover both channel counts.
"""

import pathlib

import numpy as np
from PIL import Image

_ROOT = pathlib.Path(__file__).parent / "dummy_data"
# name -> [(class name, xmin, ymin, xmax, ymax)] in pixels of a 16 x 16 image.
_VOC_BOXES = {
    "crazing_1": [("crazing", 2, 4, 10, 12)],
    "inclusion_1": [("inclusion", 0, 0, 16, 8), ("patches", 8, 8, 16, 16)],
    "patches_1": [("patches", 1, 1, 5, 5)],
    "scratches_1": [("scratches", 3, 0, 4, 16)],
    "scratches_2": [("scratches", 10, 2, 14, 6)],
}
# split folder -> name -> YOLO detection lines.
_YOLO_LABELS = {
    "train": {
        "crazing_10": "0 0.5 0.5 0.5 0.25\n",
        "patches_3": "2 0.25 0.25 0.5 0.5\n2 0.75 0.75 0.5 0.5\n",
        "pitted_surface_7": "3 0.5 0.5 1.0 1.0\n",
    },
    "val": {
        "rolled-in_scale_2": "4 0.125 0.875 0.25 0.25\n",
        "scratches_9": "5 0.5 0.5 0.0625 1.0",
    },
}
_VOC_XML = """<annotation>
  <filename>{name}.jpg</filename>
  <size><width>16</width><height>16</height><depth>1</depth></size>
{objects}</annotation>
"""
_VOC_OBJECT = """  <object>
    <name>{0}</name>
    <bndbox><xmin>{1}</xmin><ymin>{2}</ymin><xmax>{3}</xmax><ymax>{4}</ymax></bndbox>
  </object>
"""


def _write_image(path: pathlib.Path, rng: np.random.Generator, channels: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = rng.integers(0, 256, size=(16, 16, channels), dtype=np.uint8)
    Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels).save(path, quality=50)


def main() -> None:
    rng = np.random.default_rng(0)
    for name, boxes in _VOC_BOXES.items():
        _write_image(_ROOT / "voc" / "IMAGES" / f"{name}.jpg", rng, channels=1)
        xml = _ROOT / "voc" / "ANNOTATIONS" / f"{name}.xml"
        xml.parent.mkdir(parents=True, exist_ok=True)
        objects = "".join(_VOC_OBJECT.format(*box) for box in boxes)
        xml.write_text(_VOC_XML.format(name=name, objects=objects))
    for folder, labels in _YOLO_LABELS.items():
        for name, text in labels.items():
            _write_image(_ROOT / "yolo" / "images" / folder / f"{name}.jpg", rng, channels=3)
            label = _ROOT / "yolo" / "labels" / folder / f"{name}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(text)


if __name__ == "__main__":
    main()
