import pytest

from defect_aux_net.datasets.seeded_splits import seeded_split


def test_split_sizes_follow_rounded_cumulative_fractions():
    keys = [f"img_{index:03d}" for index in range(10)]
    splits = seeded_split(keys, {"train": 0.7, "validation": 0.1, "test": 0.2}, seed=0)
    assert [len(splits[name]) for name in ("train", "validation", "test")] == [7, 1, 2]
    assert sorted(sum(splits.values(), [])) == keys
    assert all(names == sorted(names) for names in splits.values())


def test_split_is_fixed_by_the_seed_and_independent_of_input_order():
    keys = [f"kos{index:02d}" for index in range(1, 51)]
    first = seeded_split(keys, {"train": 0.8, "validation": 0.2}, seed=0)
    assert first == seeded_split(list(reversed(keys)), {"train": 0.8, "validation": 0.2}, 0)
    assert first != seeded_split(keys, {"train": 0.8, "validation": 0.2}, seed=1)
    assert len(first["validation"]) == 10


@pytest.mark.parametrize(
    "fractions, keys, message",
    [
        ({"train": 0.8, "validation": 0.1}, ["a"], "sum to 1"),
        ({"train": 1.2, "validation": -0.2}, ["a"], ">= 0"),
        ({"train": 1.0}, ["a", "a"], "distinct"),
    ],
)
def test_bad_arguments(fractions, keys, message):
    with pytest.raises(ValueError, match=message):
        seeded_split(keys, fractions, seed=0)
