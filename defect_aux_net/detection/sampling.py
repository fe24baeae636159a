"""Balanced positive/negative sampling with static shapes and seeded, stateless randomness.

The two-stage detector samples twice per image: 256 anchors for the RPN loss and 512
RoIs for the box head. Both draw at most a fixed fraction of positives and fill the
rest with negatives. Dynamic-size sampling (`tf.where` + `tf.random.shuffle`) gives
shapes that XLA cannot compile, so the draw is a sort: every candidate gets a random
key, candidates are taken in key order with running counts capping positives and
negatives, and the result is either a mask of the input's shape or a fixed number of
indices.

The keys are a counter-based hash of (seed, candidate index) in integer arithmetic, not
`tf.random.stateless_uniform`: on CPU that op draws different numbers under
`jit_compile` than eagerly (both with Philox), and the sample must not depend on whether
the training step is compiled. The hash is a bijection of 32-bit integers, so the keys
of one batch never tie.

Written with `tf.*` like `decoding.py`: the seed is a tensor (the training step passes
its step counter), which `keras.random` does not take, and the sampling runs in the
TensorFlow training step of the two-stage detectors or in `tf.data`.
"""

import tensorflow as tf

_LOW_32_BITS = 0xFFFFFFFF


def _mix32(values):
    """A bijective mixing of 32-bit integers held in int64 (the "lowbias32" hash)."""
    values = tf.bitwise.bitwise_xor(values, tf.bitwise.right_shift(values, 16))
    values = tf.bitwise.bitwise_and(values * 0x7FEB352D, _LOW_32_BITS)
    values = tf.bitwise.bitwise_xor(values, tf.bitwise.right_shift(values, 15))
    values = tf.bitwise.bitwise_and(values * 0x846CA68B, _LOW_32_BITS)
    return tf.bitwise.bitwise_xor(values, tf.bitwise.right_shift(values, 16))


def random_keys(shape, seed):
    """Distinct pseudo-random int64 keys in [0, 2**32), the same eagerly and under XLA.

    Args:
      shape: `[B, N]`, static or an int64 tensor.
      seed: int `[2]`.
    """
    seed = tf.cast(seed, tf.int64)
    seed_mix = _mix32(tf.bitwise.bitwise_and(seed[0] * 0x9E3779B9 + seed[1], _LOW_32_BITS))
    counters = tf.range(shape[0] * shape[1], dtype=tf.int64)
    return tf.reshape(_mix32(tf.bitwise.bitwise_xor(counters, seed_mix)), shape)


def _check_arguments(num_samples: int, positive_fraction: float):
    if num_samples < 1:
        raise ValueError(f"num_samples must be at least 1, got {num_samples}.")
    if not 0.0 <= positive_fraction <= 1.0:
        raise ValueError(f"positive_fraction must be in [0, 1], got {positive_fraction}.")


def balanced_sample_mask(positive, negative, num_samples: int, positive_fraction: float, seed):
    """Marks a random balanced sample of the candidates of each image.

    Takes `min(#positive, floor(num_samples * positive_fraction))` positives, then fills
    up to `num_samples` with negatives (fewer if there are not enough). Candidates that
    are neither (ignored anchors, padding) are never taken.

    Args:
      positive: bool `[B, N]` candidates that may be drawn as positives.
      negative: bool `[B, N]` candidates that may be drawn as negatives (disjoint from
        `positive`).
      num_samples: candidates drawn per image.
      positive_fraction: largest share of positives in a full sample.
      seed: int `[2]` seed of the draw.

    Returns:
      `(sampled_positive, sampled_negative)`: bool `[B, N]`.
    """
    _check_arguments(num_samples, positive_fraction)
    positive = tf.convert_to_tensor(positive, tf.bool)
    negative = tf.convert_to_tensor(negative, tf.bool)
    if positive.shape.rank != 2 or positive.shape[1] is None:
        raise ValueError(
            f"Sampling needs a static candidate count, got candidates {positive.shape}."
        )
    # A random order of each image's candidates. The batch may be dynamic (evaluation
    # keeps its last, partial batch); the keys are the same as with a static one.
    order = tf.argsort(random_keys(tf.shape(positive, out_type=tf.int64), seed), axis=1)
    positive_in_order = tf.cast(tf.gather(positive, order, batch_dims=1), tf.int32)
    negative_in_order = tf.cast(tf.gather(negative, order, batch_dims=1), tf.int32)
    max_positives = int(num_samples * positive_fraction)
    take_positive = (positive_in_order > 0) & (
        tf.cumsum(positive_in_order, axis=1) <= max_positives
    )
    num_positives = tf.reduce_sum(tf.cast(take_positive, tf.int32), axis=1, keepdims=True)
    take_negative = (negative_in_order > 0) & (
        tf.cumsum(negative_in_order, axis=1) <= num_samples - num_positives
    )
    # Back to the candidates' own order: the inverse of a permutation is its argsort.
    inverse = tf.argsort(order, axis=1)
    return (
        tf.gather(take_positive, inverse, batch_dims=1),
        tf.gather(take_negative, inverse, batch_dims=1),
    )


def balanced_sample_indices(positive, negative, num_samples: int, positive_fraction: float, seed):
    """Draws like `balanced_sample_mask` and returns a fixed number of indices per image.

    Returns:
      `(indices, is_positive, is_valid)`: int32 `[B, num_samples]` candidate indices,
      sampled positives first, then negatives, then padding slots (`is_valid` False,
      index 0) when an image has fewer than `num_samples` drawable candidates; bool
      `[B, num_samples]` flags.
    """
    sampled_positive, sampled_negative = balanced_sample_mask(
        positive, negative, num_samples, positive_fraction, seed
    )
    num_candidates = sampled_positive.shape[1]
    tier = 2 * tf.cast(sampled_positive, tf.int32) + tf.cast(sampled_negative, tf.int32)
    # Tier first (positives, negatives, rest), then the lower index: unique priorities.
    priority = tier * num_candidates + (num_candidates - 1 - tf.range(num_candidates))
    k = min(num_samples, num_candidates)
    _, indices = tf.math.top_k(priority, k=k)
    chosen_tier = tf.gather(tier, indices, batch_dims=1)
    if k < num_samples:
        indices = tf.pad(indices, [[0, 0], [0, num_samples - k]])
        chosen_tier = tf.pad(chosen_tier, [[0, 0], [0, num_samples - k]])
    is_valid = chosen_tier > 0
    return tf.where(is_valid, indices, 0), chosen_tier == 2, is_valid
