import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from defect_aux_net.training.lr_finder import (
    LRFinderResult,
    find_learning_rate,
    peak_learning_rate,
    plot_lr_finder,
)
from defect_aux_net.training.one_cycle import OneCycleAdam, OneCycleSchedule

WEIGHTS = np.array([[1.0], [-2.0], [0.5], [3.0]], np.float32)


def regression_data(count=256, batch_size=32):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(count, 4)).astype(np.float32)
    return tf.data.Dataset.from_tensor_slices((x, x @ WEIGHTS + 1.0)).batch(batch_size)


def linear_model(optimizer=None):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=optimizer or keras.optimizers.SGD(0.01), loss="mse")
    return model


def test_suggestion_lies_in_the_stable_range_and_divergence_stops_early():
    # With unit-variance inputs the MSE Hessian is about 2 I: plain gradient
    # descent converges for learning rates below 1 and diverges above.
    result = find_learning_rate(
        linear_model(), regression_data(), min_lr=1e-5, max_lr=10.0, num_steps=100
    )
    assert 1e-3 < result.suggested_lr < 1.0
    assert len(result.losses) < 100
    assert result.learning_rates[-1] > 1.0
    assert result.losses[-1] > 4.0 * result.losses.min()
    # Exponentially spaced rates from min_lr with ratio (max_lr / min_lr) ** (1 / 99).
    expected = 1e-5 * (1e6 ** (1 / 99)) ** np.arange(len(result.learning_rates))
    np.testing.assert_allclose(result.learning_rates, expected, rtol=1e-9)


def test_bias_corrected_smoothing_of_a_constant_loss_is_that_loss():
    # Tiny rates leave the weights as they are: every batch has the same loss.
    x = np.ones((4, 4), np.float32)
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros((4, 1), np.float32))).batch(4)
    dense = keras.layers.Dense(1, kernel_initializer="ones", bias_initializer="ones")
    model = keras.Sequential([keras.Input((4,)), dense])
    model.compile(optimizer=keras.optimizers.SGD(), loss="mse")
    result = find_learning_rate(model, dataset, min_lr=1e-12, max_lr=1e-11, num_steps=20)
    # Prediction 4 * 1 + 1 = 5 for target 0: loss 25 at every step.
    np.testing.assert_allclose(result.losses, np.full(20, 25.0), rtol=1e-5)


def test_model_and_optimizer_state_are_restored_exactly():
    model = linear_model(keras.optimizers.Adam(1e-2))
    model.fit(regression_data(), epochs=1, shuffle=False, verbose=0)  # non-trivial Adam moments
    weights = [value.copy() for value in model.get_weights()]
    optimizer_state = [variable.numpy().copy() for variable in model.optimizer.variables]

    find_learning_rate(model, regression_data(), min_lr=1e-4, max_lr=10.0, num_steps=30)

    for expected, actual in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(actual, expected)
    for expected, variable in zip(optimizer_state, model.optimizer.variables):
        np.testing.assert_array_equal(variable.numpy(), expected)
    assert int(model.optimizer.iterations) == 8
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-2)


def test_unbuilt_optimizer_is_left_at_its_initial_state():
    model = linear_model()
    weights = [value.copy() for value in model.get_weights()]
    find_learning_rate(model, regression_data(), num_steps=10)
    for expected, actual in zip(weights, model.get_weights()):
        np.testing.assert_array_equal(actual, expected)
    assert int(model.optimizer.iterations) == 0


def test_plot_is_a_png(tmp_path):
    result = find_learning_rate(
        linear_model(), regression_data(), min_lr=1e-5, max_lr=10.0, num_steps=100
    )
    path = tmp_path / "lr_finder.png"
    plot_lr_finder(result, str(path))
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (600, 400)


def test_bad_models_and_arguments():
    with pytest.raises(ValueError, match="compiled"):
        find_learning_rate(keras.Sequential([keras.layers.Dense(1)]), regression_data())
    scheduled = linear_model(OneCycleAdam(OneCycleSchedule(1e-3, total_steps=100)))
    with pytest.raises(ValueError, match="learning_rate is a float"):
        find_learning_rate(scheduled, regression_data())
    with pytest.raises(ValueError, match="min_lr < max_lr"):
        find_learning_rate(linear_model(), regression_data(), min_lr=1.0, max_lr=0.1)
    with pytest.raises(ValueError, match="num_steps"):
        find_learning_rate(linear_model(), regression_data(), num_steps=5)


RATES = np.array([1e-4, 1e-3, 1e-2, 1e-1, 1.0])


@pytest.mark.parametrize(
    "losses, peak, problem",
    [
        # Lowest at 1e-2 (0.5 < 0.9 x 2): a tenth of it.
        ([2.0, 1.5, 0.5, 0.8, 4.0], 1e-3, ""),
        # The divergence's NaN ends the curve; the lowest before it, at 1e-1.
        ([2.0, 1.5, 1.0, 0.6, np.nan], 1e-2, ""),
        # Never 10 % below the first loss: no decrease.
        ([2.0, 1.9, 1.85, 2.5, 9.0], None, "no decrease"),
        # A first loss that is not finite.
        ([np.inf, 1.0, 0.5, 0.4, 0.3], None, "not finite"),
    ],
)
def test_the_peak_is_a_tenth_of_the_rate_at_the_lowest_loss(losses, peak, problem):
    result = LRFinderResult(RATES, np.array(losses), 0.0)
    found, why = peak_learning_rate(result)
    assert found == (None if peak is None else pytest.approx(peak))
    assert problem in why and (why == "") == (peak is not None)
