import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from defect_aux_net.training.one_cycle import OneCycleAdam, OneCycleSchedule

PEAK = 1e-2
INITIAL = PEAK / 25.0
FINAL = INITIAL / 1e4


def half_cosine(begin, end, fraction):
    return end + (begin - end) * (1 + math.cos(math.pi * fraction)) / 2


# 100 steps, 30 % warm-up: the peak is at step 0.3 * 100 - 1 = 29 (as PyTorch's
# OneCycleLR), the minimum at step 99, and annealing is halfway at step 64.
EXPECTED_LR = {
    0: INITIAL,
    10: half_cosine(INITIAL, PEAK, 10 / 29),
    29: PEAK,
    64: (PEAK + FINAL) / 2,
    80: half_cosine(PEAK, FINAL, 51 / 70),
    99: FINAL,
    150: FINAL,
}
EXPECTED_BETA_1 = {
    0: 0.95,
    10: half_cosine(0.95, 0.85, 10 / 29),
    29: 0.85,
    64: 0.90,
    80: half_cosine(0.85, 0.95, 51 / 70),
    99: 0.95,
    150: 0.95,
}


def schedule():
    return OneCycleSchedule(PEAK, total_steps=100)


@pytest.mark.parametrize("step", sorted(EXPECTED_LR))
def test_learning_rate_follows_the_cosine_phases(step):
    np.testing.assert_allclose(float(schedule()(step)), EXPECTED_LR[step], rtol=1e-5)


def test_learning_rate_in_graph_and_xla():
    steps = tf.constant(sorted(EXPECTED_LR), tf.int64)
    compiled = tf.function(lambda s: tf.map_fn(schedule(), s, fn_output_signature=tf.float32))
    xla = tf.function(compiled.python_function, jit_compile=True)
    expected = [EXPECTED_LR[int(step)] for step in steps]
    np.testing.assert_allclose(compiled(steps).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(xla(steps).numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("step", sorted(EXPECTED_BETA_1))
def test_beta_1_moves_against_the_learning_rate(step):
    optimizer = OneCycleAdam(schedule())
    optimizer.iterations.assign(step)
    np.testing.assert_allclose(float(optimizer.beta_1), EXPECTED_BETA_1[step], rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(peak_learning_rate=0.0, total_steps=10), "peak_learning_rate"),
        (dict(peak_learning_rate=1e-3, total_steps=1), "total_steps"),
        (dict(peak_learning_rate=1e-3, total_steps=10, warmup_fraction=1.0), "warmup_fraction"),
        (dict(peak_learning_rate=1e-3, total_steps=3, warmup_fraction=0.3), "no warm-up"),
        (dict(peak_learning_rate=1e-3, total_steps=10, final_div_factor=0), "final_div_factor"),
    ],
)
def test_schedule_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        OneCycleSchedule(**kwargs)


def test_optimizer_rejects_bad_arguments():
    with pytest.raises(ValueError, match="OneCycleSchedule"):
        OneCycleAdam(1e-3)
    with pytest.raises(ValueError, match="base_momentum"):
        OneCycleAdam(schedule(), max_momentum=0.8, base_momentum=0.9)
    with pytest.raises(AttributeError, match="max_momentum"):
        OneCycleAdam(schedule()).beta_1 = 0.9


def one_weight_model():
    return keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")]
    )


def test_compiled_fit_uses_the_scheduled_learning_rate_and_beta_1():
    # 4 steps, 50 % warm-up: the peak is at step 1, so beta_1 is 0.95 then 0.85.
    optimizer = OneCycleAdam(OneCycleSchedule(0.1, total_steps=4, warmup_fraction=0.5))
    model = one_weight_model()
    model.compile(optimizer=optimizer, loss="mse", jit_compile=True)
    x, y = np.array([[2.0]], np.float32), np.array([[1.0]], np.float32)
    model.fit(x, y, epochs=2, batch_size=1, verbose=0)

    # Adam by hand with the scheduled values (bias correction with the current beta_1).
    w, m, v = 1.0, 0.0, 0.0
    for step, (lr, beta_1) in enumerate([(0.1 / 25, 0.95), (0.1, 0.85)]):
        gradient = 2 * (w * 2.0 - 1.0) * 2.0
        m = beta_1 * m + (1 - beta_1) * gradient
        v = 0.999 * v + 0.001 * gradient**2
        alpha = lr * math.sqrt(1 - 0.999 ** (step + 1)) / (1 - beta_1 ** (step + 1))
        w -= alpha * m / (math.sqrt(v) + 1e-7)
    assert model.jit_compile is True
    assert int(optimizer.iterations) == 2
    np.testing.assert_allclose(model.layers[0].kernel.numpy()[0, 0], w, rtol=1e-5)


def test_serialize_round_trip():
    optimizer = OneCycleAdam(
        OneCycleSchedule(3e-3, total_steps=500, warmup_fraction=0.25),
        max_momentum=0.9,
        base_momentum=0.8,
        beta_2=0.99,
    )
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(restored, OneCycleAdam)
    assert restored.get_config() == optimizer.get_config()
    schedule_config = restored._learning_rate.get_config()
    assert schedule_config == optimizer._learning_rate.get_config()
    restored.iterations.assign(200)
    optimizer.iterations.assign(200)
    assert float(restored.beta_1) == float(optimizer.beta_1)
    assert float(restored.learning_rate) == float(optimizer.learning_rate)


def test_keras_file_keeps_the_step_and_continues_the_schedule(tmp_path):
    x = np.linspace(-1, 1, 8, dtype=np.float32)[:, None]
    y = 3 * x - 1
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(
        optimizer=OneCycleAdam(OneCycleSchedule(0.05, total_steps=10)), loss="mse"
    )
    model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)

    assert isinstance(reloaded.optimizer, OneCycleAdam)
    assert int(reloaded.optimizer.iterations) == 4
    assert float(reloaded.optimizer.learning_rate) == float(OneCycleSchedule(0.05, 10)(4))
    # One more epoch from both gives the same weights: moments and step were restored.
    model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    reloaded.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    for expected, actual in zip(model.get_weights(), reloaded.get_weights()):
        np.testing.assert_allclose(actual, expected, rtol=1e-6)
    assert int(reloaded.optimizer.iterations) == 6
