"""Writes the tiny `dummy_data/` fixtures of the defect_folder builder tests.

Run from this folder: `python make_dummy_data.py`. One folder per annotation
kind, each with its `dataset.yaml`; images are 10 x 10 (masks, csv, yolo) or
12 high x 16 wide (voc) noise.
"""

import pathlib

import numpy as np
from PIL import Image

_ROOT = pathlib.Path(__file__).parent / "dummy_data"


def _image(path: pathlib.Path, rng, shape, format_name="PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8)).save(path, format=format_name)


def _text(path: pathlib.Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _masks(rng) -> None:
    root = _ROOT / "masks"
    _text(root / "dataset.yaml", "names: [crack, pit]\nannotation: masks\nchannels: 1\n")
    masks = {name: np.zeros((10, 10), np.uint8) for name in "abcde"}
    masks["a"][1:4, 2:6] = 1  # crack: rows 1-3, columns 2-5
    masks["a"][8, 8] = 2  # pit: one pixel
    masks["c"][5:7, 0:2] = 2
    masks["e"][:, 9] = 1
    for name, values in masks.items():
        _image(root / "images" / f"{name}.png", rng, (10, 10))
        (root / "masks").mkdir(parents=True, exist_ok=True)
        palette = Image.fromarray(values, mode="P")
        palette.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * 759)
        palette.save(root / "masks" / f"{name}.png")


def _voc(rng) -> None:
    root = _ROOT / "voc"
    _text(root / "dataset.yaml", "names: [scratch, dent]\nannotation: voc\n")
    boxes = {
        "train": {"p1": [("dent", 4, 3, 12, 9)], "p2": [("scratch", 0, 0, 16, 2)]},
        "validation": {"p3": [("scratch", 1, 1, 2, 12), ("dent", 8, 6, 16, 12)]},
    }
    for split, images in boxes.items():
        for name, objects in images.items():
            _image(root / split / "images" / f"{name}.jpg", rng, (12, 16, 3), "JPEG")
            xml = "".join(
                f"<object><name>{label}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
                f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
                for label, x0, y0, x1, y1 in objects
            )
            _text(
                root / split / "annotations" / f"{name}.xml",
                f"<annotation><size><width>16</width><height>12</height></size>{xml}</annotation>",
            )


def _yolo(rng) -> None:
    root = _ROOT / "yolo"
    _text(root / "dataset.yaml", "names: [hole]\nannotation: yolo_detection\nchannels: 1\n")
    labels = {"train": {"h1": "0 0.5 0.5 0.2 0.4\n", "h2": ""}, "test": {"h3": "0 0.1 0.1 0.2 0.2\n"}}
    for split, images in labels.items():
        for name, text in images.items():
            _image(root / split / "images" / f"{name}.png", rng, (10, 10))
            _text(root / split / "labels" / f"{name}.txt", text)


def _yolo_segmentation(rng) -> None:
    root = _ROOT / "yolo_segmentation"
    _text(root / "dataset.yaml", "names: [stain, crack]\nannotation: yolo_segmentation\n")
    # Class 1 square of pixels (2, 2)..(4, 4) in a 10 x 10 image.
    labels = {"train": {"s1": "1 0.2 0.2 0.4 0.2 0.4 0.4 0.2 0.4\n"}, "validation": {"s2": ""}}
    for split, images in labels.items():
        for name, text in images.items():
            _image(root / split / "images" / f"{name}.png", rng, (10, 10, 3))
            _text(root / split / "labels" / f"{name}.txt", text)


def _csv(rng) -> None:
    root = _ROOT / "csv"
    _text(
        root / "dataset.yaml",
        "names: [crack, pit, stain]\nannotation: csv\nchannels: 1\n"
        "split: {train: 0.6, validation: 0.2, test: 0.2}\nseed: 7\n",
    )
    for name in "vwxyz":
        _image(root / "images" / f"{name}.png", rng, (10, 10))
    _text(root / "labels.csv", "image,label\nv.png,crack;pit\nw.png,\nx.png,stain\nx.png,crack\ny.png,pit\nz.png,\n")


def main() -> None:
    rng = np.random.default_rng(0)
    for write in (_masks, _voc, _yolo, _yolo_segmentation, _csv):
        write(rng)


if __name__ == "__main__":
    main()
