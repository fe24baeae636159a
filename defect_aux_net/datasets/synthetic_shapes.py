"""Defects drawn onto a synthetic surface, each returning its exact mask.

Every renderer takes a float image in [0, 1] (`[H, W]`) and a `thickness` gain on
the defect's width across its length (stroke width of scratches and cracks, pit
radius, short radius of blotches), changes the image in place and returns the
boolean mask of the pixels it made defective. A mark is drawn with a
soft edge (`alpha` falls from 1 to 0 over about one pixel) and its mask is the
set of pixels where `alpha >= 0.5`, so the mask is exactly what a careful
annotator would outline. Sizes are given for a 128-pixel image and scale with
the image.
"""

import numpy as np
import scipy.ndimage

from defect_aux_net.datasets.synthetic_textures import smooth_noise


def image_scale(image: np.ndarray) -> float:
    """Returns the factor by which sizes tuned on a 128-pixel image are multiplied."""
    return min(image.shape) / 128.0


def random_centre(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Returns a `(row, col)` point at least 8% of the image away from the borders."""
    height, width = image.shape
    return np.array(
        [rng.uniform(0.08, 0.92) * height, rng.uniform(0.08, 0.92) * width]
    )


def bezier_points(
    rng: np.random.Generator, centre: np.ndarray, length: float, bend: float
) -> np.ndarray:
    """Returns points one half-pixel apart on a quadratic Bezier curve through `centre`.

    Args:
      rng: random generator for the direction and the bend.
      centre: `(row, col)` middle of the curve.
      length: distance between the two end points, in pixels.
      bend: largest sideways offset of the control point, as a fraction of `length`.
    """
    angle = rng.uniform(0, np.pi)
    direction = np.array([np.sin(angle), np.cos(angle)])
    normal = np.array([-direction[1], direction[0]])
    start = centre - direction * length / 2
    end = centre + direction * length / 2
    control = centre + normal * rng.uniform(-bend, bend) * length
    t = np.linspace(0.0, 1.0, max(int(2 * length * (1 + bend)), 2))[:, None]
    return (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end


def curve_distance(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Returns each pixel's distance to the nearest of `points` that lies in the image.

    Points are at most one pixel apart, so their rounded positions form an
    8-connected line and the distance is that to the curve up to rounding.
    """
    pixels = np.round(points).astype(np.int64)
    inside = np.all((pixels >= 0) & (pixels < np.array(shape)), axis=1)
    off_curve = np.ones(shape, dtype=bool)
    off_curve[pixels[inside, 0], pixels[inside, 1]] = False
    return scipy.ndimage.distance_transform_edt(off_curve)


def _draw_stroke(
    image: np.ndarray, distance: np.ndarray, half_width: float, contrast: float
) -> np.ndarray:
    """Darkens or brightens the pixels within `half_width` of a curve; returns them."""
    alpha = np.clip(half_width + 0.5 - distance, 0.0, 1.0)
    image += contrast * alpha
    return distance <= half_width


def draw_scratch(
    rng: np.random.Generator, image: np.ndarray, thickness: float = 1.0
) -> np.ndarray:
    """A thin, long, smooth line, brighter or darker than the surface (tool marks)."""
    scale = image_scale(image)
    points = bezier_points(
        rng, random_centre(rng, image), rng.uniform(18, 90) * scale, bend=0.15
    )
    contrast = rng.choice([-1.0, 1.0]) * rng.uniform(0.05, 0.15)
    return _draw_stroke(
        image,
        curve_distance(points, image.shape),
        rng.uniform(0.5, 1.3) * scale * thickness,
        contrast,
    )


def _random_walk(
    rng: np.random.Generator, start: np.ndarray, heading: float, steps: int
) -> np.ndarray:
    """Returns a jagged path of `steps` one-pixel steps that slowly bends."""
    jitter = rng.normal(0.0, 0.45, steps)
    drift = np.cumsum(rng.normal(0.0, 0.06, steps))
    angles = heading + jitter + drift
    moves = np.stack([np.sin(angles), np.cos(angles)], axis=1)
    return start + np.cumsum(moves, axis=0)


def draw_crack(
    rng: np.random.Generator, image: np.ndarray, thickness: float = 1.0
) -> np.ndarray:
    """A dark, jagged, thin path, sometimes with one branch."""
    scale = image_scale(image)
    steps = int(rng.uniform(25, 90) * scale)
    heading = rng.uniform(0, 2 * np.pi)
    trunk = _random_walk(rng, random_centre(rng, image), heading, steps)
    paths = [trunk]
    if rng.random() < 0.5:
        fork = trunk[rng.integers(steps // 4, steps)]
        branch_heading = heading + rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 1.0)
        paths.append(_random_walk(rng, fork, branch_heading, max(steps // 3, 2)))
    distance = curve_distance(np.concatenate(paths), image.shape)
    return _draw_stroke(
        image, distance, rng.uniform(0.5, 0.9) * scale * thickness, -rng.uniform(0.08, 0.22)
    )


def draw_pits(
    rng: np.random.Generator, image: np.ndarray, thickness: float = 1.0
) -> np.ndarray:
    """A cluster of one to four small dark holes, each with a faint bright rim."""
    scale = image_scale(image)
    rows, cols = np.indices(image.shape, dtype=np.float64)
    centre = random_centre(rng, image)
    contrast = rng.uniform(0.08, 0.25)
    mask = np.zeros(image.shape, dtype=bool)
    for _ in range(1 + rng.binomial(3, 0.3)):
        # Clipped so that every pit of the cluster shows at least partly.
        row, col = np.clip(
            centre + rng.normal(0.0, 4.0 * scale, 2), 0, np.array(image.shape) - 1
        )
        radius = rng.uniform(1.2, 3.5) * scale * thickness
        aspect = rng.uniform(0.6, 1.0)
        # Distance in pit radii (1 on the rim) of an ellipse of random orientation.
        angle = rng.uniform(0, np.pi)
        along = (cols - col) * np.cos(angle) + (rows - row) * np.sin(angle)
        across = -(cols - col) * np.sin(angle) + (rows - row) * np.cos(angle)
        radii = np.sqrt(along**2 + (across / aspect) ** 2) / radius
        alpha = np.clip((1.0 - radii) * radius + 0.5, 0.0, 1.0)
        rim = np.exp(-(((radii - 1.3) * radius) ** 2))
        image += contrast * (0.4 * rim - alpha)
        mask |= radii <= 1.0
    return mask


def draw_blotch(
    rng: np.random.Generator, image: np.ndarray, thickness: float = 1.0
) -> np.ndarray:
    """An irregular patch whose texture is smoothed and shifted (corrosion, discolouring).

    The sharp-ish edge and the flattened texture inside are what tell it from a
    stain distractor, which only shifts brightness with a soft edge.
    """
    scale = image_scale(image)
    height, width = image.shape
    rows, cols = np.indices(image.shape, dtype=np.float64)
    row, col = random_centre(rng, image)
    angle = rng.uniform(0, np.pi)
    radius_along = rng.uniform(5, 20) * scale
    radius_across = min(radius_along * rng.uniform(0.4, 1.0) * thickness, radius_along)
    along = (cols - col) * np.cos(angle) + (rows - row) * np.sin(angle)
    across = -(cols - col) * np.sin(angle) + (rows - row) * np.cos(angle)
    # Clipped so that the centre is always inside: a blotch is never empty.
    ragged_edge = 0.35 * np.clip(smooth_noise(rng, height, width, cutoff=0.05), -2, 2)
    inside = 1.0 - (along / radius_along) ** 2 - (across / radius_across) ** 2 + ragged_edge
    # `inside` crosses 0 at the edge with a slope of about 2 / radius per pixel.
    alpha = np.clip(inside * radius_across / 2.0 + 0.5, 0.0, 1.0)
    shift = rng.choice([-1.0, 1.0]) * rng.uniform(0.04, 0.12)
    flattened = scipy.ndimage.gaussian_filter(image, 1.5 * scale) + shift
    image += alpha * (flattened - image)
    return alpha >= 0.5


DEFECT_DRAWERS = (draw_scratch, draw_crack, draw_pits, draw_blotch)
