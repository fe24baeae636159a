import io

import numpy as np
import pytest
from PIL import Image

from defect_aux_net.datasets.image_files import (
    list_images,
    pair_with_annotations,
    read_image,
    read_mask,
)


def _save(path, pixels, format_name="PNG", mode=None):
    Image.fromarray(pixels, mode=mode).save(path, format=format_name)
    return path


def test_grey_png_read_as_rgb_and_as_grey(tmp_path):
    pixels = np.arange(12, dtype=np.uint8).reshape(3, 4)
    path = _save(tmp_path / "a.png", pixels)
    rgb = read_image(path, channels=3)
    assert rgb.pixels.shape == (3, 4, 3) and (rgb.height, rgb.width) == (3, 4)
    np.testing.assert_array_equal(rgb.pixels[..., 2], pixels)
    grey = read_image(path, channels=1)
    np.testing.assert_array_equal(grey.pixels[..., 0], pixels)
    # PNG bytes with the feature's channel count are kept; otherwise pixels.
    assert grey.feature_value("png") == path.read_bytes()
    assert isinstance(rgb.feature_value("png"), np.ndarray)
    assert isinstance(grey.feature_value("jpeg"), np.ndarray)


def test_truncated_and_corrupt_images_name_the_file(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.full((64, 64), 7, np.uint8)).save(buffer, format="JPEG")
    truncated = tmp_path / "cut.jpg"
    truncated.write_bytes(buffer.getvalue()[:200])
    with pytest.raises(ValueError, match="cut.jpg: corrupt or truncated image"):
        read_image(truncated, channels=1)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="garbage.png: corrupt or truncated image"):
        read_image(garbage, channels=3)



def _encoded(pixels, format_name, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=format_name, **options)
    return buffer.getvalue()


def _png_without_its_end() -> bytes:
    # The IEND chunk (12 bytes) and the last 8 bytes of IDAT (zlib checksum, CRC).
    noise = np.random.default_rng(0).integers(0, 256, (32, 40), dtype=np.uint8)
    return _encoded(noise, "PNG")[:-20]


def _png_with_bad_crc() -> bytes:
    noise = np.random.default_rng(0).integers(0, 256, (32, 40), dtype=np.uint8)
    png = bytearray(_encoded(noise, "PNG"))
    idat = png.index(b"IDAT")
    crc = idat + 4 + int.from_bytes(png[idat - 4 : idat], "big")
    png[crc] ^= 0xFF
    return bytes(png)


def _jpeg_without_end_marker() -> bytes:
    # For this content Pillow decodes every pixel without the EOI marker (for
    # many others it reports truncation itself).
    jpeg = _encoded(np.full((64, 64), 7, np.uint8), "JPEG", quality=75)
    assert jpeg.endswith(b"\xff\xd9")
    return jpeg[:-2]


@pytest.mark.parametrize(
    "name, make, size, reason",
    [
        ("cut.png", _png_without_its_end, (40, 32), "Invalid PNG data"),
        ("bad_crc.png", _png_with_bad_crc, (40, 32), "Invalid PNG data"),
        ("no_eoi.jpg", _jpeg_without_end_marker, (64, 64), "jpeg::Uncompress failed"),
    ],
)
def test_image_pillow_opens_but_tensorflow_cannot_decode_names_the_file(
    tmp_path, name, make, size, reason
):
    path = tmp_path / name
    path.write_bytes(make())
    with Image.open(path) as image:
        image.load()  # The gap: Pillow reads it in full, without an error.
        assert image.size == size
    with pytest.raises(
        ValueError,
        match=rf"{name}: corrupt or truncated image: TensorFlow, .* rejects it \({reason}",
    ):
        read_image(path, channels=1)


def test_valid_cmyk_jpeg_is_not_taken_for_corrupt(tmp_path):
    # TensorFlow refuses to decode CMYK to one channel; the check must not.
    rgb = np.random.default_rng(1).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(rgb).convert("CMYK").save(path, format="JPEG")
    grey = read_image(path, channels=1)
    assert grey.mode == "CMYK" and grey.pixels.shape == (8, 12, 1)
    assert isinstance(grey.feature_value("jpeg"), np.ndarray)  # Re-encoded.

def test_sixteen_bit_image_is_refused(tmp_path):
    path = _save(tmp_path / "deep.png", np.full((2, 2), 4000, np.uint16))
    with pytest.raises(ValueError, match="deep.png: image mode 'I;16' is not 8-bit"):
        read_image(path, channels=1)


def test_mask_values_and_size_check(tmp_path):
    values = np.array([[0, 1, 2], [2, 0, 0]], np.uint8)
    palette = Image.fromarray(values, mode="P")
    palette.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0])
    palette.save(tmp_path / "m.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png", 2, 3), values)
    with pytest.raises(ValueError, match=r"m.png: mask is 2 x 3 .* image is 3 x 3"):
        read_mask(tmp_path / "m.png", 3, 3)
    colour = np.zeros((2, 3, 3), np.uint8)
    colour[0, 0] = (255, 0, 0)
    _save(tmp_path / "colour.png", colour)
    with pytest.raises(ValueError, match="colour.png: colour mask"):
        read_mask(tmp_path / "colour.png", 2, 3)


def test_pairing_by_stem_reports_missing_and_orphans(tmp_path):
    for name in ("b.jpg", "a.PNG", "notes.md", "a.txt", "b.txt"):
        (tmp_path / name).write_bytes(b"")
    images = list_images(tmp_path)
    assert [path.name for path in images] == ["a.PNG", "b.jpg"]
    labels = [tmp_path / "a.txt", tmp_path / "b.txt"]
    pairs = pair_with_annotations(images, labels, ".txt")
    assert [(i.name, a.name) for i, a in pairs] == [("a.PNG", "a.txt"), ("b.jpg", "b.txt")]
    with pytest.raises(FileNotFoundError, match=r"1 image\(s\) have no annotation .*b.jpg"):
        pair_with_annotations(images, labels[:1], ".txt")
    with pytest.raises(FileNotFoundError, match=r"annotation file\(s\) have no image.*b.txt"):
        pair_with_annotations(images[:1], labels, ".txt")
    with pytest.raises(ValueError, match=r"share the stem\(s\) \['a'\]"):
        pair_with_annotations([tmp_path / "a.jpg", tmp_path / "a.png"], labels, ".txt")
