import math
import random

import pytest

from defect_aux_net.data.holdout import Holdout, SplitSpec, parse_split, stratified_holdout


def test_split_strings_parse_into_the_tfds_split_and_the_holdout():
    holdout = Holdout("train", 10, 0)
    assert str(holdout) == "holdout(train,10%,seed=0)"
    assert parse_split("holdout(train,10%,seed=0)") == SplitSpec("train", holdout, held_out=True)
    assert parse_split("train[:25%] - holdout(train, 10%, seed=0)") == SplitSpec(
        "train[:25%]", holdout, held_out=False
    )
    assert parse_split("holdout(train[:50%],12.5%,seed=3)").holdout == Holdout("train[:50%]", 12.5, 3)
    assert parse_split("train[:10%]+test") == SplitSpec("train[:10%]+test")


@pytest.mark.parametrize(
    "split", ["holdout(train)", "holdout(train,10%)", "train+holdout(train,10%,seed=0)"]
)
def test_malformed_holdouts_say_how_to_write_one(split):
    with pytest.raises(ValueError, match=r"holdout\(SPLIT,PERCENT%,seed=N\)"):
        parse_split(split)


def test_holdout_percent_must_leave_something_on_both_sides():
    with pytest.raises(ValueError, match=r"\(0, 100\), got 100"):
        parse_split("holdout(train,100%,seed=0)")


def test_every_stratum_gives_its_share_and_the_total_is_rounded():
    sizes = {"defect-free": 613, "scratch": 251, "pit": 97, "scratch+pit": 14, "rare": 3}
    ids = [f"{stratum}/{index}" for stratum, size in sizes.items() for index in range(size)]
    strata = [image_id.split("/")[0] for image_id in ids]

    held = stratified_holdout(ids, strata, percent=10, seed=0)

    assert len(held) == round(0.1 * len(ids))  # 97.8 -> 98
    for stratum, size in sizes.items():
        count = sum(image_id.startswith(f"{stratum}/") for image_id in held)
        assert math.floor(0.1 * size) <= count <= math.ceil(0.1 * size), stratum


def test_the_holdout_depends_on_the_seed_not_on_the_input_order():
    ids = [f"image_{index}" for index in range(200)]
    strata = [index % 4 == 0 for index in range(200)]
    held = stratified_holdout(ids, strata, percent=20, seed=0)
    pairs = list(zip(ids, strata))
    random.Random(1).shuffle(pairs)
    shuffled = stratified_holdout([pair[0] for pair in pairs], [pair[1] for pair in pairs], 20, 0)
    assert shuffled == held
    other_seed = stratified_holdout(ids, strata, percent=20, seed=1)
    assert other_seed != held and len(other_seed) == len(held) == 40
    # A fixed hash, not Python's: this set is the same on every machine and version.
    assert sorted(held)[:3] == ["image_100", "image_101", "image_105"]
