"""Split strings with a seeded, stratified holdout: which examples, and how it is written.

TFDS sub-splits (`train[:10%]`) are contiguous runs of a split, so their share of
defective images is whatever the file order gives. A dataset without a validation
split (DAGM, the builders' seeded 80/20 splits, most folders) validates on a holdout
of its training split instead, written into the split strings of `config.json`:

- `holdout(train,10%,seed=0)`: the held-out examples of `train`;
- `train-holdout(train,10%,seed=0)`: the examples of `train` (TFDS slicing allowed
  on the left) that are not held out.

Examples are chosen by their `image_id` and labels alone, so the same string reads
the same examples in every process, on every machine and after a rebuild.
"""

import dataclasses
import fractions
import hashlib
import math
import re
from typing import Optional, Sequence

# Of the training split, when a dataset has no validation split: 72/8/20 of an 80/20
# builder split, near the 70/10/20 of the paper's Severstal split.
DEFAULT_PERCENT = 10
# Fixed, like the builders' seeded splits: runs that differ only in --seed choose their
# thresholds on the same images.
DEFAULT_SEED = 0

_HOLDOUT = re.compile(
    r"holdout\((?P<split>[^,()]+),(?P<percent>\d+(?:\.\d+)?)%,seed=(?P<seed>\d+)\)"
)


@dataclasses.dataclass(frozen=True)
class Holdout:
    """A stratified `percent` of `split`'s examples, chosen with `seed`."""

    split: str
    percent: float = DEFAULT_PERCENT
    seed: int = DEFAULT_SEED

    def __post_init__(self):
        if not 0 < self.percent < 100:
            raise ValueError(f"A holdout's percent must be in (0, 100), got {self.percent}.")

    def __str__(self) -> str:
        return f"holdout({self.split},{self.percent:g}%,seed={self.seed})"


@dataclasses.dataclass(frozen=True)
class SplitSpec:
    """A parsed split string.

    Attributes:
      tfds_split: what TFDS reads (slicing allowed).
      holdout: the holdout filtered by, or None for a plain TFDS split.
      held_out: keep only the holdout's examples (True) or all but them (False).
    """

    tfds_split: str
    holdout: Optional[Holdout] = None
    held_out: bool = False


def parse_split(split: str) -> SplitSpec:
    """Parses a TFDS split string or one of the holdout forms of this module.

    Raises:
      ValueError: for a string mentioning `holdout(` in neither form.
    """
    compact = split.replace(" ", "")
    if "holdout(" not in compact:
        return SplitSpec(split)
    match = _HOLDOUT.fullmatch(compact)
    if match:
        holdout = _holdout(match)
        return SplitSpec(holdout.split, holdout, held_out=True)
    left, _, right = compact.partition("-holdout(")
    match = _HOLDOUT.fullmatch("holdout(" + right)
    if left and match:
        return SplitSpec(left, _holdout(match), held_out=False)
    raise ValueError(
        f"Cannot read split {split!r}: write a holdout as `holdout(SPLIT,PERCENT%,seed=N)` "
        "and the rest of a split as `SPLIT-holdout(SPLIT,PERCENT%,seed=N)`."
    )


def _holdout(match: re.Match) -> Holdout:
    return Holdout(match["split"], float(match["percent"]), int(match["seed"]))


def split_names(tfds_split: str) -> set:
    """The split names a TFDS split string reads: `train[:10%]+test` -> {train, test}."""
    return set(re.findall(r"(?:^|\+)\s*([^\[+\s]+)", tfds_split))


def without_holdout(split: str, holdout: Holdout) -> str:
    """The split string of `split`'s examples that `holdout` does not hold out."""
    return f"{split}-{holdout}"


def stratified_holdout(
    image_ids: Sequence[str], strata: Sequence, percent: float, seed: int
) -> set:
    """The ids held out: `percent` of each stratum, the same on every machine.

    Ids are ordered by stratum, then by the SHA-256 of `"<seed>:<id>"` (as the
    builders' seeded splits, so no library version changes the order), and every
    `100 / percent`-th id of that order is held out. Each stratum then gives within
    one id of `percent` of its ids, and `round(percent% of all ids)` are held out.

    Args:
      image_ids: distinct ids.
      strata: one hashable, orderable stratum per id (e.g. its defect classes).
      percent: in (0, 100).
      seed: changes which ids of each stratum are held out.
    """
    if len(set(image_ids)) != len(image_ids):
        raise ValueError("stratified_holdout needs distinct ids.")
    order = sorted(
        zip(strata, image_ids),
        key=lambda pair: (pair[0], hashlib.sha256(f"{seed}:{pair[1]}".encode()).hexdigest()),
    )
    rate = fractions.Fraction(percent) / 100
    half = fractions.Fraction(1, 2)
    # Rank r is held out when the rounded running count r * rate steps up past it:
    # exact arithmetic, so no float rounding moves an id across the line.
    return {
        image_id
        for rank, (_, image_id) in enumerate(order)
        if math.floor((rank + 1) * rate + half) > math.floor(rank * rate + half)
    }
