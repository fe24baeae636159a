"""Run-length encoding of binary masks as Kaggle's Severstal competition writes it.

An encoding is a space-separated list of `start length` pairs. Pixels are
numbered from 1 at the top-left corner, down the first column, then down the
next column (column-major, i.e. Fortran order), so on a 256 x 1600 image pixel
257 is row 0 of column 1.
"""

import numpy as np


def rle_decode(encoded: str, height: int, width: int) -> np.ndarray:
    """Returns the bool `[height, width]` mask of a run-length encoding.

    Args:
      encoded: `"start length start length ..."`; empty (or blank) for no pixels.
      height: image height in pixels.
      width: image width in pixels.

    Raises:
      ValueError: for a token that is not an integer, an odd number of tokens, a
        start below 1, a length below 1, or a run past the last pixel; the
        message repeats the offending value.
    """
    tokens = encoded.split()
    if len(tokens) % 2:
        raise ValueError(
            f"Run-length encoding has an odd number of tokens ({len(tokens)}): "
            "it must be `start length` pairs."
        )
    try:
        numbers = np.array([int(token) for token in tokens], dtype=np.int64)
    except ValueError:
        bad = next(token for token in tokens if not token.lstrip("+-").isdigit())
        raise ValueError(
            f"Run-length encoding has a token that is not an integer: {bad!r}."
        ) from None
    starts, lengths = numbers[0::2] - 1, numbers[1::2]
    num_pixels = height * width
    if (starts < 0).any():
        raise ValueError(
            f"Run-length start {starts[starts < 0][0] + 1} is below 1 (starts are 1-indexed)."
        )
    if (lengths < 1).any():
        raise ValueError(f"Run length {lengths[lengths < 1][0]} is below 1.")
    ends = starts + lengths
    if (ends > num_pixels).any():
        run = int(np.argmax(ends > num_pixels))
        raise ValueError(
            f"Run `{starts[run] + 1} {lengths[run]}` ends at pixel {ends[run]}, past the "
            f"{num_pixels} pixels of a {height}x{width} image."
        )
    # +1 where a run starts, -1 just after it ends: the running sum is > 0 inside runs.
    changes = np.zeros(num_pixels + 1, dtype=np.int64)
    np.add.at(changes, starts, 1)
    np.add.at(changes, ends, -1)
    flat = np.cumsum(changes[:-1]) > 0
    return flat.reshape((height, width), order="F")


def rle_encode(mask: np.ndarray) -> str:
    """Returns the run-length encoding of a `[height, width]` mask (nonzero = set).

    The inverse of `rle_decode`: runs are in increasing order and never touch,
    as Kaggle's submission format expects; an empty mask gives `""`.
    """
    if mask.ndim != 2:
        raise ValueError(f"mask must be [height, width], got shape {mask.shape}.")
    flat = np.concatenate([[False], mask.flatten(order="F") != 0, [False]])
    # Indices (0-based, into the unpadded mask) where a run starts or ends.
    boundaries = np.flatnonzero(flat[1:] != flat[:-1])
    starts, ends = boundaries[0::2], boundaries[1::2]
    pairs = np.stack([starts + 1, ends - starts], axis=1)
    return " ".join(str(number) for number in pairs.ravel())
