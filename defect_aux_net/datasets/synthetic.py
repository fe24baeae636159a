"""Procedurally generated surface-defect images: the project's download-free dataset.

A textured surface (noise, brushed metal or fabric) gets zero to three defects of
four classes and zero to four distractors that look like defects but are not.
Defects have low contrast and vary in size and direction; masks are exact and
may overlap between classes; boxes are the connected components of the masks.

Every example is a pure function of `(seed, split, index)`: generating it twice,
in any order or process, gives the same arrays.

Example:

```python
from defect_aux_net.datasets import synthetic

example = synthetic.generate_example(7, split="train")
example["image"].shape  # (128, 128, 1), uint8
example["segmentation_mask"].shape  # (128, 128, 4), uint8 0/1
```
"""

import dataclasses
import math
import zlib
from typing import Any

import numpy as np

from defect_aux_net.datasets.annotations import boxes_from_mask
from defect_aux_net.datasets.synthetic_distractors import DISTRACTOR_DRAWERS
from defect_aux_net.datasets.synthetic_shapes import DEFECT_DRAWERS
from defect_aux_net.datasets.synthetic_textures import make_background

CLASS_NAMES = ("scratch", "crack", "pit", "blotch")


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
    """What the generated images look like.

    Attributes:
      height: image height in pixels (at least 32).
      width: image width in pixels (at least 32).
      channels: 1 for grey images, 3 for RGB ones (a random colour cast per image).
      defect_free_fraction: fraction of images without any defect, in [0, 1];
        exactly `floor(n * defect_free_fraction)` of the first `n` indices.
      defect_contrast: gain on how much defects change the surface (distractors
        keep theirs); above 1 makes defects easier to see than the look-alikes.
      defect_thickness: gain on the defects' width across their length (stroke
        width of scratches and cracks, pit radius, short radius of blotches).
      seed: base seed; different seeds give unrelated datasets.
    """

    height: int = 128
    width: int = 128
    channels: int = 1
    defect_free_fraction: float = 0.5
    defect_contrast: float = 1.0
    defect_thickness: float = 1.0
    seed: int = 0

    def __post_init__(self):
        if min(self.height, self.width) < 32:
            raise ValueError(
                f"Synthetic images must be at least 32x32, got {self.height}x{self.width}."
            )
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}.")
        if not 0.0 <= self.defect_free_fraction <= 1.0:
            raise ValueError(
                "defect_free_fraction must be in [0, 1], got "
                f"{self.defect_free_fraction}."
            )
        for name in ("defect_contrast", "defect_thickness"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}.")


def example_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """Returns the random generator of one example, independent of every other example."""
    if index < 0:
        raise ValueError(f"Example index must be non-negative, got {index}.")
    return np.random.default_rng([seed, zlib.crc32(split.encode("utf-8")), index])


def is_defect_free(index: int, defect_free_fraction: float) -> bool:
    """Returns whether example `index` is defect-free.

    Defect-free indices are spread evenly, so that any prefix of `n` examples
    holds exactly `floor(n * defect_free_fraction)` of them (the sum telescopes).
    """
    return math.floor((index + 1) * defect_free_fraction) > math.floor(
        index * defect_free_fraction
    )


def generate_example(
    index: int, split: str = "train", spec: SyntheticSpec = SyntheticSpec()
) -> dict[str, Any]:
    """Returns one example as numpy arrays, in the layout of `defect_features`.

    Args:
      index: position of the example in its split (non-negative).
      split: split name; part of the seed, so splits never share an example.
      spec: image size, channels, defect-free fraction and base seed.

    Returns:
      A dict with `image` (uint8 `[H, W, channels]`), `segmentation_mask` (uint8
      `[H, W, 4]`, 0/1), `objects` (`bbox` float32 `[N, 4]` normalised ymin,
      xmin, ymax, xmax and `label` int64 `[N]`, from `boxes_from_mask`),
      `labels` (uint8 `[4]` multi-hot), `is_defective`, `has_mask`,
      `has_boxes` and `image_id` (`"<split>_<index>"`).
    """
    rng = example_rng(spec.seed, split, index)
    surface, _ = make_background(rng, spec.height, spec.width)
    mask = np.zeros((spec.height, spec.width, len(CLASS_NAMES)), dtype=bool)
    if not is_defect_free(index, spec.defect_free_fraction):
        for _ in range(1 + rng.binomial(2, 0.3)):
            class_index = rng.integers(len(CLASS_NAMES))
            # Contrast 1 skips the rescaling, so the default images stay bit-identical.
            unmarked = surface.copy() if spec.defect_contrast != 1 else None
            mask[..., class_index] |= DEFECT_DRAWERS[class_index](
                rng, surface, spec.defect_thickness
            )
            if unmarked is not None:
                surface[:] = unmarked + spec.defect_contrast * (surface - unmarked)
    # Dirt lies on top of the material, so distractors are drawn after defects;
    # defect-free and defective images get them equally often.
    for _ in range(min(rng.poisson(1.5), 4)):
        DISTRACTOR_DRAWERS[rng.integers(len(DISTRACTOR_DRAWERS))](rng, surface)
    surface += rng.normal(0.0, rng.uniform(0.005, 0.02), surface.shape)  # sensor noise
    if spec.channels == 3:
        pixels = surface[..., None] * (1.0 + rng.uniform(-0.1, 0.1, 3))
    else:
        pixels = surface[..., None]
    image = np.clip(np.round(pixels * 255.0), 0, 255).astype(np.uint8)

    bboxes, box_labels = boxes_from_mask(mask)
    labels = mask.any(axis=(0, 1))
    return {
        "image": image,
        "segmentation_mask": mask.astype(np.uint8),
        "objects": {"bbox": bboxes, "label": box_labels},
        "labels": labels.astype(np.uint8),
        "is_defective": bool(labels.any()),
        "has_mask": True,
        "has_boxes": True,
        "image_id": f"{split}_{index:06d}",
    }
