"""Finding, pairing and decoding the image and mask files of a defect dataset.

Every read goes through `etils.epath`, so folders may be local or on GCS, and
the TFDS test harness (which forbids `os` and `open`) accepts it.
"""

import dataclasses
import io
import re
from typing import Iterable

import numpy as np
import tensorflow as tf
from etils import epath
from PIL import Image

IMAGE_SUFFIXES = (".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff")
# PIL modes holding 8-bit samples; 16-bit or float images would need a scale.
_EIGHT_BIT_MODES = ("1", "L", "LA", "P", "RGB", "RGBA", "CMYK", "YCbCr")
_CHANNEL_MODES = {1: "L", 3: "RGB"}
# Formats whose bytes `SourceImage.feature_value` may store as they are. BMP and
# TIFF are always stored re-encoded (TensorFlow refuses TIFF and 1-bit BMP).
_TENSORFLOW_FORMATS = ("JPEG", "PNG")


@dataclasses.dataclass(frozen=True)
class SourceImage:
    """A decoded image together with the bytes it came from.

    Attributes:
      encoded: the file's bytes.
      format: PIL's name of the file format, e.g. "JPEG", "PNG", "BMP".
      mode: PIL's mode of the stored pixels, e.g. "L", "RGB".
      pixels: uint8 `[H, W, C]`, converted to the requested channel count.
    """

    encoded: bytes
    format: str
    mode: str
    pixels: np.ndarray

    @property
    def height(self) -> int:
        return self.pixels.shape[0]

    @property
    def width(self) -> int:
        return self.pixels.shape[1]

    def feature_value(self, encoding: str) -> bytes | np.ndarray:
        """Returns what to yield for a TFDS `Image` feature with `encoding`.

        The source bytes when they already are in that encoding with the
        feature's channel count (no lossy JPEG re-encoding), else the pixels.
        """
        same_format = self.format.lower() == encoding
        same_channels = _CHANNEL_MODES[self.pixels.shape[-1]] == self.mode
        return self.encoded if same_format and same_channels else self.pixels


def _open_checked(path: epath.Path) -> tuple[bytes, Image.Image]:
    """Reads and fully decodes `path`, so truncated files fail here."""
    encoded = path.read_bytes()
    try:
        image = Image.open(io.BytesIO(encoded))
        image.load()
    except (OSError, SyntaxError, ValueError) as error:
        raise ValueError(f"{path}: corrupt or truncated image ({error}).") from error
    if image.mode not in _EIGHT_BIT_MODES:
        raise ValueError(
            f"{path}: image mode {image.mode!r} is not 8-bit; convert it to 8-bit "
            "grey or RGB."
        )
    return encoded, image


def _check_tensorflow_decodes(path: epath.Path, encoded: bytes) -> None:
    """Decodes `encoded` with TensorFlow, the decoder of training and serving.

    Pillow opens a PNG missing its last bytes or with a bad CRC, and some JPEGs
    missing their end marker; TensorFlow rejects them, so a build that stored
    them would fail mid-epoch naming no file. We check rather than re-encode:
    re-encoding changes a JPEG's pixels and hides a damaged copy the user should
    know about. Sources stored re-encoded are checked too, so whether a damaged
    file stops the build does not depend on the builder's encoding.
    `channels=0` (the file's own) decodes every valid JPEG/PNG, CMYK ones too.
    """
    try:
        tf.io.decode_image(encoded, channels=0, expand_animations=False)
    except tf.errors.InvalidArgumentError as error:
        reason = re.sub(r"\{\{.*?\}\}\s*|\s*\[Op:\w+\]", "", error.message).strip()
        raise ValueError(
            f"{path}: corrupt or truncated image: TensorFlow, which decodes it in "
            f"training, rejects it ({reason}) although Pillow opens it; re-save or "
            "replace the file."
        ) from error


def read_image(path: epath.PathLike, channels: int) -> SourceImage:
    """Reads and decodes an image file, converting it to `channels` channels.

    Args:
      path: image file.
      channels: 1 (grey) or 3 (RGB).

    Raises:
      ValueError: naming `path`, for an unreadable, corrupt or truncated file
        (for JPEG and PNG: one that Pillow or TensorFlow cannot decode) or one
        whose samples are not 8-bit.
    """
    path = epath.Path(path)
    encoded, image = _open_checked(path)
    if image.format in _TENSORFLOW_FORMATS:
        _check_tensorflow_decodes(path, encoded)
    pixels = np.asarray(image.convert(_CHANNEL_MODES[channels]), dtype=np.uint8)
    return SourceImage(
        encoded=encoded,
        format=image.format or "",
        mode=image.mode,
        pixels=pixels.reshape(pixels.shape[0], pixels.shape[1], channels),
    )


def read_mask(path: epath.PathLike, height: int, width: int) -> np.ndarray:
    """Reads a single-channel mask (grey or palette indices) of a known size.

    Args:
      path: mask file.
      height: height of the image the mask belongs to.
      width: width of the image the mask belongs to.

    Returns:
      uint8 `[height, width]` stored values (palette indices for palette images).

    Raises:
      ValueError: naming `path`, for a corrupt file, a colour mask or a size
        other than `height` x `width`.
    """
    path = epath.Path(path)
    _, image = _open_checked(path)
    if image.mode in ("RGB", "RGBA"):
        colour = np.asarray(image.convert("RGB"))
        if (colour != colour[..., :1]).any():
            raise ValueError(
                f"{path}: colour mask; save masks as grey or palette images."
            )
        values = colour[..., 0]
    else:
        values = np.asarray(image.convert("L") if image.mode in ("1", "LA") else image)
    if values.shape != (height, width):
        raise ValueError(
            f"{path}: mask is {values.shape[0]} x {values.shape[1]} (height x width) "
            f"but its image is {height} x {width}."
        )
    return values.astype(np.uint8)


def list_images(folder: epath.PathLike) -> list[epath.Path]:
    """Returns the image files directly inside `folder`, sorted by name."""
    return sorted(
        path
        for path in epath.Path(folder).iterdir()
        if path.suffix.lower() in IMAGE_SUFFIXES and not path.is_dir()
    )


def pair_with_annotations(
    images: Iterable[epath.Path], annotations: Iterable[epath.Path], suffix: str
) -> list[tuple[epath.Path, epath.Path]]:
    """Pairs each image with the annotation file named `<image stem><suffix>`.

    Args:
      images: image files.
      annotations: candidate annotation files (other names are ignored).
      suffix: what follows the image's stem in its annotation's name, e.g.
        ".txt", ".xml", "_label.bmp".

    Returns:
      `(image, annotation)` pairs in the order of `images`.

    Raises:
      FileNotFoundError: naming the files, where an image has no annotation or an
        annotation has no image (a sign of a broken copy or a wrong layout).
    """
    images = list(images)
    stems = [image.stem for image in images]
    duplicates = sorted({stem for stem in stems if stems.count(stem) > 1})
    if duplicates:
        raise ValueError(
            f"Several images share the stem(s) {duplicates[:3]} (e.g. `a.jpg` and "
            "`a.png`), so their annotations cannot be told apart."
        )
    by_name = {path.name: path for path in annotations if path.name.endswith(suffix)}
    wanted = {image.stem + suffix: image for image in images}
    missing = sorted(str(image) for name, image in wanted.items() if name not in by_name)
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} image(s) have no annotation file `<stem>{suffix}`, e.g. "
            f"{missing[:3]}; every image needs one (an empty label file or an "
            "all-zero mask for a defect-free image)."
        )
    orphans = sorted(str(path) for name, path in by_name.items() if name not in wanted)
    if orphans:
        raise FileNotFoundError(
            f"{len(orphans)} annotation file(s) have no image, e.g. {orphans[:3]}."
        )
    return [(image, by_name[image.stem + suffix]) for image in images]
