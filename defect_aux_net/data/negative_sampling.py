"""Frequency-of-use sampling of defect-free examples (Bozic et al. 2021, section III-B).

Each epoch shows every defective example (positive) and as many defect-free ones
(negatives), alternating. Uniform sampling of the negatives over-uses some and
never shows others; frequency-of-use sampling draws each negative with a
probability that falls with the number of times it has been used, as the
authors' code does at the start of every epoch:
`p = 1 - freq / max(freq)`, `p = p - median(p) + 1`, `p = p ** (4 ln N)`,
normalised, and draws without replacement.
"""

import functools
import math

import numpy as np
import tensorflow as tf


def usage_probabilities(usage_counts) -> np.ndarray:
    """Probability of drawing each negative first, given how often each was used.

    Args:
      usage_counts: `[N]` number of times each negative has been used so far.

    Returns:
      float64 `[N]` probabilities summing to 1; uniform when every negative was
      used equally often (including never).
    """
    return _normalise(_log_weights(np.asarray(usage_counts, np.float64)))


def frequency_of_use_schedule(
    num_negatives: int, num_positives: int, num_epochs: int, seed: int
) -> np.ndarray:
    """The negatives each epoch shows, drawn by frequency of use.

    Epoch 0 draws uniformly (nothing has been used). Each epoch draws
    `num_positives` negatives without replacement. When there are fewer
    negatives than positives, an epoch is drawn in rounds of at most
    `num_negatives` distinct negatives, usage updated after each round: every
    negative is shown `num_positives // num_negatives` times and the remainder
    goes to the least used, so epochs keep their one-to-one balance.

    Drawing without replacement with probabilities `p` uses the Gumbel-top-k
    trick (sort `log p + Gumbel noise`; Kool et al. 2019), which draws the same
    distribution as sequential draws and works in log space, where `p ** (4 ln N)`
    cannot underflow. Negatives of probability 0 come only after all others.

    Args:
      num_negatives: number of negatives N (defect-free examples), at least 1.
      num_positives: negatives per epoch (the number of positives), at least 1.
      num_epochs: number of epochs, at least 1.
      seed: seed of the draws; the same arguments always give the same schedule.

    Returns:
      int64 `[num_epochs, num_positives]`: indices in `[0, num_negatives)` of the
      negatives of each epoch, in the order drawn.
    """
    for name, value in (
        ("num_negatives", num_negatives),
        ("num_positives", num_positives),
        ("num_epochs", num_epochs),
    ):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(
                f"{name} must be a positive integer, got {value!r}"
                + (
                    ": frequency-of-use sampling needs defect-free examples to draw."
                    if name == "num_negatives"
                    else "."
                )
            )
    rng = np.random.default_rng(seed)
    usage = np.zeros(num_negatives, np.float64)
    schedule = np.empty((num_epochs, num_positives), np.int64)
    for epoch in range(num_epochs):
        start = 0
        while start < num_positives:
            count = min(num_positives - start, num_negatives)
            keys = _log_weights(usage) + rng.gumbel(size=num_negatives)
            drawn = np.argsort(-keys, kind="stable")[:count]
            schedule[epoch, start : start + count] = drawn
            usage[drawn] += 1
            start += count
    return schedule


def frequency_of_use_dataset(
    dataset: tf.data.Dataset, num_epochs: int, seed: int, max_examples: int | None = None
):
    """All epochs of frequency-of-use sampling, back to back, as one dataset.

    Each epoch yields every positive once (shuffled) alternating with the
    negatives of `frequency_of_use_schedule` (shuffled): positive, negative,
    positive, ... Everything runs in the graph (no `py_function`), so the result
    runs on TPU hosts. Building it reads `dataset` once on the host to count
    positives and negatives; each epoch then reads it twice (once for the
    positives, once for the negatives), so cache a slow source first
    (`dataset.cache()`, in memory or to a file) if it fits: the caller decides.
    The shuffles hold up to 2 x positives examples; pass examples with images
    still encoded (e.g. TFDS `decoders`) and decode after, or resized ones, to
    keep that small.

    Args:
      dataset: finite dataset of example dicts, each with a scalar bool
        `is_defective`; the same order every time it is read.
      num_epochs: number of epochs to build.
      seed: seed of the schedule and of the shuffles.
      max_examples: when only this many examples will be read, only the epochs they
        reach are built: the same first examples as with all `num_epochs`.

    Returns:
      `(epochs, examples_per_epoch)`: the dataset of `num_epochs` epochs (fewer with
      `max_examples`) and the number of examples in each (2 x positives).
    """
    if "is_defective" not in dataset.element_spec:
        raise ValueError(
            "frequency_of_use_dataset needs examples with an 'is_defective' key, got "
            f"{sorted(dataset.element_spec)}."
        )
    defective = np.fromiter(
        dataset.map(lambda example: example["is_defective"]).as_numpy_iterator(), bool
    )
    num_positives = int(defective.sum())
    if num_positives == 0:
        raise ValueError(
            "dataset has no defective example (is_defective true): frequency-of-use "
            "sampling alternates defective and defect-free examples."
        )
    if max_examples is not None:
        # Each epoch costs a traced function to build and nested datasets to start: for
        # the 150 epochs of a 30-minute KolektorSDD run, about 4 s more than the 5 epochs
        # a batch-norm pass over 272 images reads. The schedule and the seeds are drawn
        # epoch by epoch, so the first epochs are the same however many follow.
        num_epochs = min(num_epochs, max(1, math.ceil(max_examples / (2 * num_positives))))
    schedule = frequency_of_use_schedule(
        int((~defective).sum()), num_positives, num_epochs, seed
    )
    num_negatives = len(defective) - num_positives
    # Python ints, not tensors: with a tensor seed, `Dataset.shuffle` fails in
    # TF's `random_seed.get_seed` whenever the global seed is 0.
    shuffle_seeds = np.random.default_rng([seed, 1]).integers(2**31, size=(num_epochs, 2))
    positives = dataset.filter(lambda example: example["is_defective"])
    negatives = dataset.filter(lambda example: tf.logical_not(example["is_defective"]))
    alternate = tf.data.Dataset.range(2).repeat(num_positives)

    def epoch(index):
        epoch_positives = positives.shuffle(
            num_positives, seed=int(shuffle_seeds[index, 0]), reshuffle_each_iteration=False
        )
        # How often each negative appears in this epoch: [num_negatives].
        repeats = tf.constant(np.bincount(schedule[index], minlength=num_negatives))
        epoch_negatives = (
            negatives.enumerate()
            .flat_map(lambda i, example: tf.data.Dataset.from_tensors(example).repeat(repeats[i]))
            .shuffle(
                num_positives, seed=int(shuffle_seeds[index, 1]), reshuffle_each_iteration=False
            )
        )
        return tf.data.Dataset.choose_from_datasets([epoch_positives, epoch_negatives], alternate)

    epochs = functools.reduce(tf.data.Dataset.concatenate, map(epoch, range(num_epochs)))
    return epochs, 2 * num_positives


def _log_weights(usage):
    """`4 ln N * log(p - median(p) + 1)` with `p = 1 - usage / max(usage)`."""
    highest = usage.max()
    p = np.ones_like(usage) if highest == 0 else 1.0 - usage / highest
    p = p - np.median(p) + 1.0
    with np.errstate(divide="ignore"):  # p == 0 (most used): log 0 = -inf, never drawn first
        return 4.0 * np.log(len(usage)) * np.log(p)


def _normalise(log_weights):
    weights = np.exp(log_weights - log_weights.max())
    return weights / weights.sum()
