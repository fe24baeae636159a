import dataclasses
import time

import keras
import numpy as np
import pytest

from defect_aux_net.data import pipeline
from defect_aux_net.data.negative_sampling import frequency_of_use_dataset
from defect_aux_net.data.pipeline import make_dataset
from defect_aux_net.experiments import ExperimentConfig
from defect_aux_net.training.batch_norm_statistics import (
    batch_norm_layers,
    recompute_batch_norm_statistics,
    training_image_batches,
)
from defect_aux_net.training.training_run import training_input_options
from tests.data.synthetic_fixture import synthetic_small_builder
from tests.tolerances import FLOAT32_UNIT_ROUNDOFF

# Each batch's statistics of 4 values and each running-mean update round a few times,
# numpy's float32 statistics as often: a few dozen unit roundoffs of unit-scale values.
RTOL = 64 * FLOAT32_UNIT_ROUNDOFF


def _model(trainable=True):
    inputs = keras.Input((3,))
    # Named: Keras numbers default names per process ("sequential_3" after other tests).
    inner = keras.Sequential(
        [keras.Input((3,)), keras.layers.BatchNormalization(name="inner")], name="nested"
    )
    frozen = keras.layers.BatchNormalization(name="frozen", trainable=trainable)
    return keras.Model(inputs, frozen(inner(inputs)))


def test_moving_statistics_become_the_means_of_the_batch_statistics():
    model = _model()
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, (4, 3)).astype("float32") for _ in range(3)]
    momenta = [layer.momentum for layer in batch_norm_layers(model)]

    assert recompute_batch_norm_statistics(model, batches).batches == 3

    inner = model.get_layer("nested").get_layer("inner")
    # By hand: each batch normalised by its own (biased) statistics, averaged over batches.
    expected_mean = np.mean([batch.mean(0) for batch in batches], axis=0)
    expected_variance = np.mean([batch.var(0) for batch in batches], axis=0)
    np.testing.assert_allclose(inner.moving_mean.numpy(), expected_mean, rtol=RTOL)
    np.testing.assert_allclose(
        inner.moving_variance.numpy(), expected_variance, rtol=RTOL
    )
    # The second sees the first's output: zero mean, variance v / (v + epsilon) per batch.
    frozen = model.get_layer("frozen")
    epsilon = inner.epsilon
    np.testing.assert_allclose(frozen.moving_mean.numpy(), 0.0, atol=RTOL)
    np.testing.assert_allclose(
        frozen.moving_variance.numpy(),
        np.mean([batch.var(0) / (batch.var(0) + epsilon) for batch in batches], axis=0),
        rtol=RTOL,
    )
    assert [layer.momentum for layer in batch_norm_layers(model)] == momenta


def test_frozen_batch_norms_keep_their_statistics():
    model = _model(trainable=False)
    recompute_batch_norm_statistics(model, [np.full((2, 3), 5.0, "float32")])
    frozen = model.get_layer("frozen")
    np.testing.assert_array_equal(frozen.moving_mean.numpy(), 0.0)
    np.testing.assert_array_equal(frozen.moving_variance.numpy(), 1.0)


def test_no_batches_is_an_error_not_unchanged_statistics():
    with pytest.raises(ValueError, match="No image batches"):
        recompute_batch_norm_statistics(_model(), [])


def test_waits_for_input_are_timed_apart_from_the_forward_passes():
    model = _model()
    delay = 0.2

    def slow_batches():
        for index in range(3):
            if index:
                time.sleep(delay)
            yield np.ones((2, 3), "float32")

    done = recompute_batch_norm_statistics(model, slow_batches())
    assert done.batches == 3
    # The second and third batch each wait `delay`; two forward passes of a 3-wide
    # model take milliseconds, far below it.
    assert 2 * delay <= done.input_seconds < 3 * delay
    assert done.compute_seconds < delay


def test_the_end_of_the_input_is_timed_apart():
    model = _model()
    delay = 0.2

    def batches_with_a_slow_end():
        yield np.ones((2, 3), "float32")
        yield np.ones((2, 3), "float32")
        time.sleep(delay)  # As an input pipeline slow to end or to tear down.

    done = recompute_batch_norm_statistics(model, batches_with_a_slow_end())
    assert done.batches == 2
    assert delay <= done.end_seconds < 2 * delay
    assert done.input_seconds < delay


def test_a_model_without_batch_norm_reads_no_batches():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    read = []

    def batches():
        read.append(1)
        yield np.zeros((2, 3), "float32")

    assert recompute_batch_norm_statistics(model, batches()).batches == 0
    assert read == []


def test_the_pass_reads_the_images_training_draws_without_augmentation(
    tmp_path_factory, monkeypatch
):
    # Frequency-of-use sampling draws the batches; the pass reads no training targets.
    builder = synthetic_small_builder(tmp_path_factory)
    experiment = ExperimentConfig.from_preset(
        "quickstart", batch_size=4, negative_sampling=True, epochs=30
    )
    options = training_input_options(experiment)
    expected = make_dataset(
        builder, "train", experiment.model, dataclasses.replace(options, augment=False)
    )
    sampled = []

    def counted(*args, **kwargs):
        epochs, per_epoch = frequency_of_use_dataset(*args, **kwargs)
        sampled.append((int(epochs.reduce(0, lambda count, _: count + 1)), per_epoch))
        return epochs, per_epoch

    monkeypatch.setattr(pipeline, "frequency_of_use_dataset", counted)
    batches = list(training_image_batches(builder, "train", experiment.model, options, 10))
    assert len(batches) == 2  # Whole batches of 4 of the 10 images.
    for images, (training_images, *_) in zip(batches, expected):
        np.testing.assert_array_equal(images.numpy(), training_images.numpy())
    # Of the training's 30 sampled epochs only those the 8 images reach are built.
    [(examples, per_epoch)] = sampled
    assert examples == per_epoch * -(-8 // per_epoch) < 30 * per_epoch
