"""Images as `Predictor` takes them: files read safely, numpy arrays and PIL images.

A file is refused with a reason (`ImageInputError`) when it cannot be read, is not a
regular file (a FIFO or device would block the read forever) or is too large for PIL
to decode safely (a decompression bomb); PIL reads only the header for that check,
before any decoder (TensorFlow's too) allocates the image.
"""

import io
import os
import stat

import numpy as np
import tensorflow as tf
from PIL import Image


class ImageInputError(ValueError):
    """An input image that cannot be used; the message says why (without the file name)."""


def read_image_file(path: str) -> bytes:
    """The bytes of the image file `path` (local or `gs://`).

    Raises:
      ImageInputError: not a regular file, unreadable, or a decompression bomb.
    """
    try:
        # Object stores hold regular objects only; a local FIFO or device never ends.
        if "://" not in path and not stat.S_ISREG(os.stat(path).st_mode):
            raise ImageInputError("not a regular file (a FIFO, device or socket)")
        with tf.io.gfile.GFile(path, "rb") as file:
            data = file.read()
    except (tf.errors.OpError, OSError) as error:
        raise ImageInputError(f"cannot read it ({error})") from error
    too_large = _decompression_bomb(data)
    if too_large:
        raise ImageInputError(f"too large to decode ({too_large})")
    return data


def _decompression_bomb(data: bytes) -> str | None:
    """PIL's decompression-bomb error for `data`, else None (files PIL cannot identify
    are left to TensorFlow's decoders)."""
    try:
        Image.open(io.BytesIO(data)).close()
    except Image.DecompressionBombError as error:
        return str(error)
    except Exception:  # Any other error: TensorFlow's decoders decide.
        return None
    return None


def decode_with_pil(data: bytes) -> np.ndarray:
    """The image of encoded `data` at its own size: uint8 grey or RGB, else float [0, 1]."""
    with Image.open(io.BytesIO(data)) as image:
        return pil_pixels(image)


def decode_image_bytes(data: bytes) -> np.ndarray:
    """The pixels of encoded `data` (PIL, else TensorFlow's decoders), for sizes and overlays.

    Raises:
      ImageInputError: neither can decode it.
    """
    try:
        return decode_with_pil(data)
    except Exception:  # PIL's decoders raise many types on odd files.
        pass
    try:
        pixels = tf.io.decode_image(data, expand_animations=False).numpy()
    except tf.errors.OpError as error:
        raise ImageInputError(f"cannot decode it ({error.message.strip()})") from error
    return pixels[..., :3] if pixels.shape[-1] >= 3 else pixels[..., :1]


def pil_pixels(image: Image.Image) -> np.ndarray:
    """uint8 `[H, W]` grey or `[H, W, 3]` RGB pixels of a PIL image; 16-bit and float
    images min-max scaled to float [0, 255], the range of the 8-bit images the model
    trained on (`input_normalization="caffe"` reads pixels on that scale)."""
    if image.mode.startswith(("I", "F")):
        pixels = np.asarray(image, np.float64)
        span = pixels.max() - pixels.min()
        return 255 * (pixels - pixels.min()) / span if span else np.zeros_like(pixels)
    return np.asarray(image.convert("L" if image.mode in ("1", "L") else "RGB"))


def array_pixels(image) -> np.ndarray:
    """`[H, W]` or `[H, W, C]` pixels (C 1, 3 or 4: alpha is dropped) as `[H, W, C]`.

    Raises:
      ImageInputError: another shape, a dtype that is not a real number, or no pixel.
    """
    pixels = np.asarray(image)
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    if pixels.ndim != 3 or pixels.shape[-1] not in (1, 3, 4):
        raise ImageInputError(
            f"an image array must be [H, W] or [H, W, C] with C 1, 3 or 4, got shape "
            f"{pixels.shape}"
        )
    if pixels.dtype == bool or not (
        np.issubdtype(pixels.dtype, np.integer) or np.issubdtype(pixels.dtype, np.floating)
    ):
        raise ImageInputError(f"an image array must hold numbers, got dtype {pixels.dtype}")
    if pixels.size == 0:
        raise ImageInputError(f"an image array must hold pixels, got shape {pixels.shape}")
    return pixels[..., :3] if pixels.shape[-1] == 4 else pixels


def drawable(pixels: np.ndarray) -> np.ndarray:
    """`pixels` as `draw_overlay` takes them: uint8 as they are, others min-max to [0, 1]."""
    if pixels.dtype == np.uint8:
        return pixels
    pixels = pixels.astype(np.float64)
    span = pixels.max() - pixels.min()
    return (pixels - pixels.min()) / span if span else np.zeros_like(pixels)
