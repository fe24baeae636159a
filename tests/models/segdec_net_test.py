import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from defect_aux_net.losses.segdec import decision_loss, segmentation_loss
from defect_aux_net.models.segdec_config import SegDecConfig
from defect_aux_net.models.segdec_net import LossBalanceSchedule, SegDecNet
from defect_aux_net.training.budget_keeper import KeepToTimeBudget
from defect_aux_net.training.one_cycle import OneCycleSchedule
from tests.tolerances import assert_close, float32_output_tolerance, float64_output_tolerance

CONFIG = SegDecConfig.from_preset(
    "small", num_classes=2, input_shape=(128, 128, 1), delta=0.5, dilation=3
)
TRUNK_LAYERS = ("trunk_1", "trunk_5", "trunk_9", "segmentation_conv", "segmentation_norm")
# Every decision block trains: at 128x128 the last one sees 2x2 pixels.
DECISION_LAYERS = ("decision_1", "decision_3", "decision_logit")


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return SegDecNet(CONFIG)


def batch(size=2, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.random((size, 128, 128, 1)).astype(np.float32)
    masks = np.zeros((size, 128, 128, 2), np.float32)
    masks[0, 32:80, 40:56, 1] = 1
    targets = {
        "classification": masks.max(axis=(1, 2)),
        "segmentation": masks,
        "segmentation_weights": np.ones_like(masks),
    }
    weights = {"classification": np.ones(size, np.float32), "segmentation": np.ones(size, np.float32)}
    return images, targets, weights


def test_outputs_the_shared_keys_at_the_input_size(model):
    outputs = model(batch()[0])
    shapes = {name: tuple(value.shape) for name, value in outputs.items()}
    assert shapes == {
        "classification": (2, 2),
        "segmentation": (2, 128, 128, 2),
        "decision_logits": (2, 2),
        "segmentation_logits": (2, 16, 16, 2),
    }
    tolerance = float32_output_tolerance()
    np.testing.assert_allclose(
        outputs["classification"], tf.sigmoid(outputs["decision_logits"]), atol=tolerance
    )
    # The mask is the sigmoid of the 1/8 logits resized bilinearly to the input size.
    upsampled = tf.image.resize(outputs["segmentation_logits"], (128, 128), method="bilinear")
    np.testing.assert_allclose(outputs["segmentation"], tf.sigmoid(upsampled), atol=tolerance)
    assert model.anchors is None and not model.supports_gated_inference


def test_the_decision_logit_starts_as_torch_linear(model):
    # nn.Linear's default initialisation: weights and bias uniform in +-1/sqrt(fan_in),
    # fan_in = 32 max- and 32 average-pooled features + 2 x 2 segmentation poolings.
    layer = model.get_layer("decision_logit")
    bound = 1 / np.sqrt(68)
    kernel, bias = np.array(layer.kernel), np.array(layer.bias)
    assert kernel.shape == (68, 2)
    assert bound * 0.9 < np.abs(kernel).max() <= bound
    assert 0 < np.abs(bias).max() <= bound


def decision_gradients(model, images, labels):
    with tf.GradientTape() as tape:
        loss = decision_loss(labels, model(images, training=True)["decision_logits"])
    layers = {name: model.get_layer(name) for name in TRUNK_LAYERS + DECISION_LAYERS}
    variables = {name: layer.trainable_weights for name, layer in layers.items()}
    gradients = tape.gradient(loss, variables)
    return {
        name: max(0.0 if g is None else float(tf.reduce_max(tf.abs(g))) for g in grads)
        for name, grads in gradients.items()
    }


def test_the_decision_loss_does_not_train_the_segmentation_trunk(model):
    images, targets, _ = batch()
    gradients = decision_gradients(model, images, targets["classification"])
    assert all(gradients[name] == 0 for name in TRUNK_LAYERS), gradients
    assert all(gradients[name] > 0 for name in DECISION_LAYERS), gradients


def test_without_gradient_adjustment_the_decision_loss_reaches_the_trunk():
    keras.utils.set_random_seed(0)
    model = SegDecNet(dataclasses.replace(CONFIG, gradient_adjustment=False))
    images, targets, _ = batch()
    gradients = decision_gradients(model, images, targets["classification"])
    assert all(gradients[name] > 0 for name in TRUNK_LAYERS), gradients


def test_training_steps_follow_the_loss_balance():
    # The XLA step is model_contract_test's; this one runs the graph Keras traces.
    keras.utils.set_random_seed(1)
    model = SegDecNet(CONFIG)
    model.compile(optimizer=keras.optimizers.SGD(0.1), jit_compile=False)
    images, targets, weights = batch()
    dataset = tf.data.Dataset.from_tensors((images, targets, weights)).repeat()
    before = [np.array(w) for w in model.trainable_weights]
    seen = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(np.array(model.loss_balance))
    )
    history = model.fit(dataset, epochs=2, steps_per_epoch=1, callbacks=[record], verbose=0)
    after = [np.array(w) for w in model.trainable_weights]
    assert any(not np.array_equal(b, a) for b, a in zip(before, after))
    # Epoch 0 of 2: segmentation only; epoch 1: half each, the decision part times delta.
    np.testing.assert_allclose(seen, [[1.0, 0.0], [0.5, 0.25]])
    for name in ("loss", "classification_loss", "segmentation_loss"):
        assert np.all(np.isfinite(history.history[name])), history.history
    # At epoch 1 the loss is the balanced sum of the two heads' losses.
    logs = {name: values[1] for name, values in history.history.items()}
    np.testing.assert_allclose(
        logs["loss"], 0.5 * logs["segmentation_loss"] + 0.25 * logs["classification_loss"],
        rtol=1e-5,
    )


def test_the_loss_balance_follows_a_run_the_time_budget_cuts_short():
    model = SegDecNet(CONFIG)
    # The clock of budget_keeper_test's re-fits: 20 planned epochs of 10 steps become 14
    # after the second epoch and 9 after the fifth; the later ones (15 s each) keep 9.
    schedule = OneCycleSchedule(1e-3, 200)
    schedule.hold_total_steps_in_variable()
    ends = [20, 30, 40, 60, 80] + [80 + 15 * i for i in range(1, 6)]
    now = [0.0]
    keeper = KeepToTimeBudget(schedule, 20, 10, deadline=150.0, clock=lambda: now[0])
    callbacks = keras.callbacks.CallbackList(
        [LossBalanceSchedule(), keeper], model=model, epochs=20
    )
    callbacks.on_train_begin()
    seen = []
    for epoch, end in enumerate(ends):
        callbacks.on_epoch_begin(epoch)
        seen.append(np.array(model.loss_balance))
        now[0] = end
        callbacks.on_epoch_end(epoch)
    assert keeper.refits == 2 and model.stop_training
    # (1 - e / N, delta e / N) at 0-based epoch e, delta 0.5: N = 20, 20, 14, 14, 14, then 9.
    planned = [20] * 2 + [14] * 3 + [9] * 5
    expected = [[1 - e / n, 0.5 * e / n] for e, n in zip(range(10), planned)]
    np.testing.assert_allclose(seen, expected, rtol=1e-6)


def loss_gradients(model, images, targets, weights):
    with tf.GradientTape() as tape:
        outputs = model(images, training=True)
        loss = model.compute_loss(images, targets, outputs, weights)
    return tape.gradient(loss, model.trainable_weights)


def test_a_summed_batch_steps_as_the_reference_accumulating_one_image_at_a_time():
    # The reference (MEMORY_FIT 1) calls backward once per image and steps once per
    # batch: its gradient is the sum of the single images' gradients. Image 1 is label
    # only (mixed supervision): it adds its decision gradient only.
    # In float64: ReLU's gradient is a step, so where the batch and the single images
    # round a pre-activation near 0 to opposite signs (one of trunk_6's 49,152 on an
    # AVX-512 CPU with oneDNN, in float32), the gradients behind it differ by that
    # pixel's whole gradient, not by a rounding. float64 makes such a tie 2^29 times
    # less likely; the convention checked does not depend on the precision.
    # The dtype policy, not floatx: a policy set by another test overrides floatx.
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        keras.utils.set_random_seed(2)
        model = SegDecNet(dataclasses.replace(CONFIG, batch_reduction="sum"))
        mean_model = SegDecNet(CONFIG)
    finally:
        keras.config.set_dtype_policy(policy)
    assert model.trainable_weights[0].dtype == "float64"
    model.loss_balance.assign([0.5, 0.25])
    images, targets, weights = batch(size=3, seed=3)
    weights["segmentation"] = np.array([1.0, 0.0, 1.0], np.float32)
    images, targets, weights = tf.nest.map_structure(
        lambda value: value.astype(np.float64), (images, targets, weights)
    )
    one = lambda values, i: {k: v[i : i + 1] for k, v in values.items()}  # noqa: E731
    expected = [
        sum(parts)
        for parts in zip(
            *(
                loss_gradients(model, images[i : i + 1], one(targets, i), one(weights, i))
                for i in range(3)
            )
        )
    ]
    actual = loss_gradients(model, images, targets, weights)
    for variable, a, e in zip(model.trainable_weights, actual, expected):
        scale = float(np.abs(e).max())
        assert_close(a, e, float64_output_tolerance() * scale, variable.path)
    assert max(float(np.abs(e).max()) for e in expected) > 0
    # A mean over the batch is not that sum divided by the batch (the masked images count
    # twice in the segmentation mean): the two conventions differ beyond rounding.
    mean_model.set_weights(model.get_weights())
    mean_model.loss_balance.assign([0.5, 0.25])
    means = loss_gradients(mean_model, images, targets, weights)
    differences = [np.abs(m * 3 - e).max() / np.abs(e).max() for m, e in zip(means, expected)]
    assert max(differences) > 0.1


def test_the_logits_bias_trains_and_takes_a_defect_free_image_below_ln_2():
    # Without a bias the logits' spatial mean is 0 (FeatureNorm), and softplus is
    # convex: mean softplus(z) >= softplus(0) = ln 2 on any defect-free image, whatever
    # the weights. The bias's gradient there is d mean(softplus(z)) / db = mean sigmoid(z).
    keras.utils.set_random_seed(2)
    model = SegDecNet(SegDecConfig.from_preset("small"))
    images = np.random.default_rng(3).random((1, 128, 128, 1)).astype(np.float32)
    masks, has_mask = np.zeros((1, 128, 128, 1), np.float32), np.ones(1, np.float32)
    # The segmentation loss trains everything but the decision head.
    variables = [w for w in model.trainable_weights if not w.path.startswith("decision")]

    def loss_and_gradients():
        with tf.GradientTape() as tape:
            logits = model(images, training=True)["segmentation_logits"]
            loss = segmentation_loss(masks, logits, has_mask, dilation=1)
        return logits, loss, tape.gradient(loss, variables)

    logits, loss, gradients = loss_and_gradients()
    assert float(loss) >= np.log(2) - float32_output_tolerance()  # The bias starts at 0.
    bias = model.get_layer("segmentation_norm").bias
    bias_gradient = gradients[[w.path for w in variables].index(bias.path)]
    assert_close(bias_gradient, [np.mean(tf.sigmoid(logits))], float32_output_tolerance())
    # A few steps of the reference's plain SGD at learning rate 1 (the first one moves
    # the trunk most and widens the logits' spread; the bias then takes over).
    optimizer = keras.optimizers.SGD(1.0)
    for _ in range(3):
        optimizer.apply(gradients, variables)
        _, loss, gradients = loss_and_gradients()
    assert float(loss) < 0.5 < np.log(2)


def test_mixed_bfloat16_trains_with_float32_outputs_and_losses():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = SegDecNet(CONFIG)
    finally:
        keras.config.set_dtype_policy(previous)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    images, targets, weights = batch()
    dataset = tf.data.Dataset.from_tensors((images, targets, weights)).repeat()
    history = model.fit(dataset, epochs=2, steps_per_epoch=1, verbose=0)
    assert all(np.all(np.isfinite(values)) for values in history.history.values())
    assert model.get_layer("trunk_1").compute_dtype == "bfloat16"
    assert {value.dtype for value in model(images).values()} == {tf.float32}


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(input_shape=(132, 128, 1)), "multiples of 8"),
        (dict(input_shape=(120, 128, 1)), "at least 128"),
        (dict(tasks=("segmentation",)), "always"),
        (dict(dilation=0), "dilation"),
        (dict(input_normalization="z"), "input_normalization"),
        (dict(batch_reduction="max"), "batch_reduction"),
    ],
)
def test_bad_configs_are_named(changes, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(CONFIG, **changes)
