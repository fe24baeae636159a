"""Tests of Severstal run-length encoding on hand-computed masks."""

import numpy as np
import pytest

from defect_aux_net.datasets.rle import rle_decode, rle_encode

# A 4-high, 3-wide image numbers its pixels down the columns, from 1:
#    1  5  9
#    2  6 10
#    3  7 11
#    4  8 12
_ENCODED = "1 2 4 2 10 3"  # pixels 1-2, 4-5 (wraps into column 1), 10-12
_MASK = np.array(
    [
        [1, 1, 0],
        [1, 0, 1],
        [0, 0, 1],
        [1, 0, 1],
    ],
    dtype=bool,
)


def test_decode_is_column_major_and_one_indexed():
    np.testing.assert_array_equal(rle_decode(_ENCODED, height=4, width=3), _MASK)


def test_single_pixel_runs_address_the_corners():
    top_left = rle_decode("1 1", height=4, width=3)
    bottom_left = rle_decode("4 1", height=4, width=3)
    top_right = rle_decode("9 1", height=4, width=3)
    last = rle_decode("12 1", height=4, width=3)

    assert top_left[0, 0] and top_left.sum() == 1
    assert bottom_left[3, 0] and bottom_left.sum() == 1
    assert top_right[0, 2] and top_right.sum() == 1
    assert last[3, 2] and last.sum() == 1


def test_encode_is_the_inverse_of_decode():
    assert rle_encode(_MASK) == _ENCODED
    assert rle_encode(_MASK.astype(np.uint8) * 255) == _ENCODED
    assert rle_encode(np.zeros((4, 3), dtype=bool)) == ""
    assert rle_encode(np.ones((4, 3), dtype=bool)) == "1 12"


def test_random_masks_round_trip_at_severstal_size():
    rng = np.random.default_rng(0)
    mask = rng.random((256, 1600)) < 0.3
    np.testing.assert_array_equal(rle_decode(rle_encode(mask), 256, 1600), mask)


def test_empty_or_blank_encoding_is_an_empty_mask():
    assert not rle_decode("", 4, 3).any()
    assert not rle_decode("  ", 4, 3).any()


@pytest.mark.parametrize(
    "encoded, message",
    [
        ("1 2 5", "odd number of tokens \\(3\\)"),
        ("1 two", "not an integer: 'two'"),
        ("1.5 2", "not an integer: '1.5'"),
        ("0 2", "start 0 is below 1"),
        ("3 0", "Run length 0 is below 1"),
        ("11 3", "Run `11 3` ends at pixel 13, past the 12 pixels of a 4x3 image"),
    ],
)
def test_bad_encodings_are_rejected_with_the_bad_value(encoded, message):
    with pytest.raises(ValueError, match=message):
        rle_decode(encoded, height=4, width=3)
