import numpy as np
import pytest
import tensorflow as tf

from defect_aux_net.detection.sampling import (
    balanced_sample_indices,
    balanced_sample_mask,
    random_keys,
)

SEED = tf.constant([7, 11])


def candidates(num_positive, num_negative, num_ignored=0):
    # One image: positives, then negatives, then ignored candidates.
    labels = np.array([1] * num_positive + [0] * num_negative + [-1] * num_ignored)
    return labels[None] == 1, labels[None] == 0


def test_at_most_the_positive_fraction_then_negatives():
    positive, negative = candidates(10, 100, 5)
    sampled_positive, sampled_negative = balanced_sample_mask(positive, negative, 16, 0.5, SEED)
    assert int(tf.reduce_sum(tf.cast(sampled_positive, tf.int32))) == 8
    assert int(tf.reduce_sum(tf.cast(sampled_negative, tf.int32))) == 8
    # Only drawable candidates are drawn, each as what it is.
    assert not np.any(sampled_positive.numpy() & ~positive)
    assert not np.any(sampled_negative.numpy() & ~negative)


def test_few_positives_are_all_taken_and_negatives_fill_up():
    positive, negative = candidates(3, 100)
    sampled_positive, sampled_negative = balanced_sample_mask(positive, negative, 16, 0.5, SEED)
    assert int(tf.reduce_sum(tf.cast(sampled_positive, tf.int32))) == 3
    assert int(tf.reduce_sum(tf.cast(sampled_negative, tf.int32))) == 13


def test_indices_put_positives_first_and_pad_short_samples():
    positive, negative = candidates(2, 3, 4)
    indices, is_positive, is_valid = balanced_sample_indices(positive, negative, 8, 0.25, SEED)
    # 2 positives allowed (8 * 0.25), all 3 negatives, 3 empty slots.
    np.testing.assert_array_equal(is_positive.numpy()[0], [1, 1, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(is_valid.numpy()[0], [1, 1, 1, 1, 1, 0, 0, 0])
    assert sorted(indices.numpy()[0, :2]) == [0, 1]
    assert sorted(indices.numpy()[0, 2:5]) == [2, 3, 4]


def test_more_slots_than_candidates_are_padded():
    positive, negative = candidates(1, 1)
    indices, _, is_valid = balanced_sample_indices(positive, negative, 5, 0.5, SEED)
    assert indices.shape == (1, 5)
    np.testing.assert_array_equal(is_valid.numpy()[0], [1, 1, 0, 0, 0])


def test_the_seed_decides_the_sample():
    positive, negative = candidates(50, 200)
    first = balanced_sample_mask(positive, negative, 32, 0.5, SEED)
    again = balanced_sample_mask(positive, negative, 32, 0.5, tf.constant([7, 11]))
    other = balanced_sample_mask(positive, negative, 32, 0.5, tf.constant([7, 12]))
    np.testing.assert_array_equal(first[0].numpy(), again[0].numpy())
    np.testing.assert_array_equal(first[1].numpy(), again[1].numpy())
    assert np.any(first[0].numpy() != other[0].numpy())
    compiled = tf.function(
        lambda p, n, s: balanced_sample_mask(p, n, 32, 0.5, s), jit_compile=True
    )(positive, negative, SEED)
    np.testing.assert_array_equal(first[0].numpy(), compiled[0].numpy())


def test_keys_are_distinct_and_spread():
    keys = random_keys([4, 5000], SEED).numpy()
    assert len(np.unique(keys)) == keys.size
    # Uniform on [0, 2**32): the mean is within a few standard errors of 2**31.
    assert abs(keys.mean() / 2**32 - 0.5) < 4 * (1 / np.sqrt(12 * keys.size))


def test_bad_arguments():
    positive, negative = candidates(1, 1)
    with pytest.raises(ValueError, match="positive_fraction"):
        balanced_sample_mask(positive, negative, 4, 1.5, SEED)
    with pytest.raises(ValueError, match="num_samples"):
        balanced_sample_mask(positive, negative, 0, 0.5, SEED)


def test_a_dynamic_batch_draws_as_a_static_one():
    # Evaluation keeps its last, partial batch: the batch size is unknown when traced.
    positive, negative = candidates(10, 100, 5)
    positive, negative = np.repeat(positive, 3, axis=0), np.repeat(negative, 3, axis=0)
    spec = tf.TensorSpec([None, positive.shape[1]], tf.bool)
    traced = tf.function(
        lambda p, n: balanced_sample_mask(p, n, 16, 0.5, SEED), input_signature=[spec, spec]
    )
    for dynamic, static in zip(traced(positive, negative), balanced_sample_mask(
        positive, negative, 16, 0.5, SEED
    )):
        np.testing.assert_array_equal(dynamic, static)
    # The images of one batch draw differently.
    assert not np.array_equal(static[0], static[1])
