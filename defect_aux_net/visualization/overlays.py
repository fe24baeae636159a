"""Prediction overlays: per-class masks blended and boxes drawn over an image."""

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

# Okabe and Ito's colour-blind-safe palette (https://jfly.uni-koeln.de/color/) without
# its black, which would vanish on dark surfaces; classes beyond seven reuse colours.
OKABE_ITO = (
    (230, 159, 0),  # orange
    (86, 180, 233),  # sky blue
    (0, 158, 115),  # bluish green
    (240, 228, 66),  # yellow
    (0, 114, 178),  # blue
    (213, 94, 0),  # vermillion
    (204, 121, 167),  # reddish purple
)
# Weight of the class colour where a mask is on: the surface stays visible beneath.
MASK_ALPHA = 0.4


def draw_overlay(
    image,
    masks=None,
    boxes=None,
    scores=None,
    classes=None,
    class_names=(),
    mask_threshold=0.5,
    colors=None,
) -> Image.Image:
    """Draws predicted masks and boxes over an image, one colour per class.

    Example:
    ```python
    overlay = draw_overlay(image, masks=outputs["masks"][0], boxes=boxes,
                           scores=scores, classes=classes, class_names=("scratch",))
    overlay.save("overlay.png")
    ```

    Args:
      image: uint8 `[H, W]` or `[H, W, C]` image, or float in [0, 1], C 1 or 3, any size.
      masks: optional float `[h, w, K]` per-class probabilities at any size; resized
        to the image (nearest). Where a class's probability is >= `mask_threshold`
        its colour is blended in at `MASK_ALPHA`, and the region's outline is drawn
        in the full colour.
      boxes: optional float `[N, 4]` boxes `ymin, xmin, ymax, xmax` normalised to
        [0, 1], drawn as rectangles labelled "name score".
      scores: optional float `[N]` box scores, shown with two decimals.
      classes: optional int `[N]` class index of each box (default: class 0).
      class_names: names of the classes; missing ones are shown as `class_<i>`.
      mask_threshold: probability from which a mask pixel is on.
      colors: optional RGB tuples, one per class, replacing `OKABE_ITO`.

    Returns:
      An RGB `PIL.Image.Image` of the image's size.
    """
    pixels = to_rgb_uint8(image)
    palette = _palette(colors)
    if masks is not None:
        on = binary_masks(masks, pixels.shape[:2], mask_threshold)
        pixels = _blend_masks(pixels, on, palette)
    overlay = Image.fromarray(pixels)
    if boxes is not None:
        _draw_boxes(overlay, boxes, scores, classes, tuple(class_names), palette)
    return overlay


def to_rgb_uint8(image) -> np.ndarray:
    """Returns `image` (see `draw_overlay`) as a uint8 `[H, W, 3]` array."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(
            f"image must be [H, W] or [H, W, C] with C 1 or 3, got shape {image.shape}."
        )
    if np.issubdtype(image.dtype, np.floating):
        image = np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 or float in [0, 1], got dtype {image.dtype}.")
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image


def binary_masks(masks, size: tuple, threshold: float = 0.5) -> np.ndarray:
    """Thresholds `[h, w, K]` probabilities and resizes them to `size` (nearest).

    Args:
      masks: float `[h, w, K]` per-class probabilities.
      size: `(height, width)` to resize to.
      threshold: probability from which a pixel is on.

    Returns:
      bool `[height, width, K]`.
    """
    masks = np.asarray(masks)
    if masks.ndim != 3:
        raise ValueError(f"masks must be [h, w, K] probabilities, got shape {masks.shape}.")
    height, width = size
    # Source pixel of each output pixel with half-pixel centres, as tf.image.resize's
    # "nearest", in exact integers: PIL's float version picks the neighbouring pixel at
    # exact halves (64 -> 40 pixels: 7.5 * 1.6 gives 11, not 12).
    rows = (2 * np.arange(height) + 1) * masks.shape[0] // (2 * height)
    columns = (2 * np.arange(width) + 1) * masks.shape[1] // (2 * width)
    return masks[rows][:, columns] >= threshold


def _palette(colors) -> tuple:
    if colors is None:
        return OKABE_ITO
    palette = tuple(tuple(int(channel) for channel in color) for color in colors)
    if not palette or any(
        len(color) != 3 or not all(0 <= c <= 255 for c in color) for color in palette
    ):
        raise ValueError(f"colors must be RGB triples of 0..255, got {colors!r}.")
    return palette


def _blend_masks(pixels, on, palette):
    blended = pixels.astype(np.float32)
    outlines = []
    for k in range(on.shape[-1]):
        color = np.array(palette[k % len(palette)], np.float32)
        blended[on[..., k]] = (1 - MASK_ALPHA) * blended[on[..., k]] + MASK_ALPHA * color
        # The outline is the region minus its erosion; the image border does not count
        # as an edge, so a defect touching the border is not framed along it.
        outlines.append(on[..., k] & ~ndimage.binary_erosion(on[..., k], border_value=1))
    for k, outline in enumerate(outlines):
        blended[outline] = palette[k % len(palette)]
    return np.rint(blended).astype(np.uint8)


def _draw_boxes(overlay, boxes, scores, classes, class_names, palette):
    boxes = np.asarray(boxes, np.float32)
    if boxes.ndim != 2 or boxes.shape[-1] != 4:
        raise ValueError(f"boxes must be [N, 4] normalised yxyx boxes, got shape {boxes.shape}.")
    num_boxes = len(boxes)
    classes = np.zeros(num_boxes, int) if classes is None else np.asarray(classes, int)
    _check_length("classes", classes, num_boxes)
    if scores is not None:
        scores = np.asarray(scores, np.float32)
        _check_length("scores", scores, num_boxes)
    if np.any(classes < 0):
        raise ValueError(f"classes must be class indices >= 0, got {classes.tolist()}.")

    width, height = overlay.size
    line_width = max(1, round(max(width, height) / 250))
    draw = ImageDraw.Draw(overlay)
    font = ImageFont.load_default()
    for i, (ymin, xmin, ymax, xmax) in enumerate(boxes):
        color = palette[classes[i] % len(palette)]
        # Normalised edges to the first and last pixel the box covers.
        left, top = round(xmin * width), round(ymin * height)
        right = max(left, round(xmax * width) - 1)
        bottom = max(top, round(ymax * height) - 1)
        draw.rectangle((left, top, right, bottom), outline=color, width=line_width)
        name = class_names[classes[i]] if classes[i] < len(class_names) else f"class_{classes[i]}"
        label = name if scores is None else f"{name} {scores[i]:.2f}"
        _draw_label(draw, font, label, left, top, color)


def _draw_label(draw, font, label, left, top, color):
    """Writes `label` on a box of the class colour above the box (inside at the top)."""
    text_left, text_top, text_right, text_bottom = draw.textbbox((0, 0), label, font=font)
    label_height = text_bottom - text_top + 2
    label_top = top - label_height if top >= label_height else top
    draw.rectangle(
        (left, label_top, left + text_right - text_left + 2, label_top + label_height - 1),
        fill=color,
    )
    # Black text on light colours, white on dark ones (ITU-R BT.601 luma).
    luma = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    text_color = (0, 0, 0) if luma > 128 else (255, 255, 255)
    draw.text((left + 1 - text_left, label_top + 1 - text_top), label, fill=text_color, font=font)


def _check_length(name, values, num_boxes):
    if values.shape != (num_boxes,):
        raise ValueError(
            f"{name} must have one value per box ({num_boxes}), got shape {values.shape}."
        )
