"""Deterministic, seeded train/validation/test splits for sources without their own."""

import hashlib
from typing import Mapping, Sequence


def seeded_split(
    keys: Sequence[str], fractions: Mapping[str, float], seed: int
) -> dict[str, list[str]]:
    """Assigns each key to a split, the same way on every machine and version.

    Keys are ordered by the SHA-256 of `"<seed>:<key>"` (unlike a NumPy shuffle,
    this order cannot change with a library version), then cut into consecutive
    runs of `round(cumulative fraction * len(keys))`.

    Args:
      keys: distinct names to split (file names, or groups such as folders that
        must stay together).
      fractions: split name to fraction, in output order; fractions are >= 0 and
        sum to 1.
      seed: changes the assignment.

    Returns:
      Split name to its keys, sorted by name.

    Raises:
      ValueError: for negative fractions, fractions not summing to 1 or repeated keys.
    """
    if any(fraction < 0 for fraction in fractions.values()) or not (
        abs(sum(fractions.values()) - 1.0) < 1e-6
    ):
        raise ValueError(f"Split fractions must be >= 0 and sum to 1, got {dict(fractions)}.")
    if len(set(keys)) != len(keys):
        raise ValueError(f"Split keys must be distinct, got {len(keys) - len(set(keys))} repeats.")
    shuffled = sorted(
        keys, key=lambda key: hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()
    )
    splits, start, cumulative = {}, 0, 0.0
    for name, fraction in fractions.items():
        cumulative += fraction
        stop = round(cumulative * len(keys))
        splits[name] = sorted(shuffled[start:stop])
        start = stop
    return splits
