"""Marks that look like defects but are not: they change the image, never the mask.

Real inspection images are full of them (the paper's Fig. 1: magnetic particle
deposits next to real cracks), and they are why a model cannot just flag every
contrast change. Each has a defect look-alike and a cue that tells them apart:

- stain (like a blotch): brightness shift only, with a wide soft edge and the
  texture left intact;
- specks (like pits): a loose cloud of one-pixel dots without a rim;
- fibre (like a scratch): a faint line several pixels wide with a blurred profile.
"""

import numpy as np
import scipy.ndimage

from defect_aux_net.datasets.synthetic_shapes import (
    bezier_points,
    curve_distance,
    image_scale,
    random_centre,
)


def draw_stain(rng: np.random.Generator, image: np.ndarray) -> None:
    """Adds a soft elongated Gaussian blob of brightness."""
    scale = image_scale(image)
    rows, cols = np.indices(image.shape, dtype=np.float64)
    row, col = random_centre(rng, image)
    angle = rng.uniform(0, np.pi)
    sigma_along = rng.uniform(4, 16) * scale
    sigma_across = sigma_along * rng.uniform(0.4, 1.0)
    along = (cols - col) * np.cos(angle) + (rows - row) * np.sin(angle)
    across = -(cols - col) * np.sin(angle) + (rows - row) * np.cos(angle)
    blob = np.exp(-0.5 * ((along / sigma_along) ** 2 + (across / sigma_across) ** 2))
    image += rng.choice([-1.0, 1.0]) * rng.uniform(0.03, 0.10) * blob


def draw_specks(rng: np.random.Generator, image: np.ndarray) -> None:
    """Adds 3 to 12 tiny dots scattered around one point (dust, particle deposits)."""
    scale = image_scale(image)
    count = rng.integers(3, 13)
    positions = random_centre(rng, image) + rng.normal(0.0, 6.0 * scale, (count, 2))
    pixels = np.round(positions).astype(np.int64)
    inside = np.all((pixels >= 0) & (pixels < np.array(image.shape)), axis=1)
    impulses = np.zeros(image.shape)
    amplitudes = rng.choice([-1.0, 1.0]) * rng.uniform(0.08, 0.2, count)
    np.add.at(impulses, (pixels[inside, 0], pixels[inside, 1]), amplitudes[inside])
    # Blurring unit impulses with a Gaussian of sigma s lowers their peak by 2 pi s^2.
    sigma = 0.7
    image += 2 * np.pi * sigma**2 * scipy.ndimage.gaussian_filter(impulses, sigma)


def draw_fibre(rng: np.random.Generator, image: np.ndarray) -> None:
    """Adds a faint, wide, blurred curve (a hair or lint on the part)."""
    scale = image_scale(image)
    points = bezier_points(
        rng, random_centre(rng, image), rng.uniform(20, 80) * scale, bend=0.3
    )
    distance = curve_distance(points, image.shape)
    sigma = rng.uniform(1.5, 3.0) * scale
    amplitude = rng.choice([-1.0, 1.0]) * rng.uniform(0.03, 0.07)
    image += amplitude * np.exp(-(distance**2) / (2 * sigma**2))


DISTRACTOR_DRAWERS = (draw_stain, draw_specks, draw_fibre)
