import itertools

import keras
import numpy as np
import pytest
import tensorflow as tf

from defect_aux_net import DefectAuxNetConfig, build_defect_aux_net
from defect_aux_net.detection.box_matching import encode_detection_targets
from defect_aux_net.models.defect_aux_net import model_loss

TASKS = ("classification", "segmentation", "detection")
OUTPUT_KEYS = {
    "classification": ["classification"],
    "segmentation": ["segmentation"],
    "detection": ["box_regression", "box_classification"],
}


def small_config(**overrides):
    # 72 x 100 is not a multiple of the coarsest stride (128): the model pads.
    return DefectAuxNetConfig.from_preset(
        "small", num_classes=2, input_shape=(72, 100, 3), **overrides
    )


def training_batch(model, batch_size=2, seed=0):
    rng = np.random.default_rng(seed)
    config = model.config
    height, width, channels = config.input_shape
    images = rng.random((batch_size, height, width, channels)).astype("float32")
    masks = np.zeros((batch_size, height, width, config.num_classes), np.float32)
    masks[0, 10:30, 20:60, 1] = 1
    boxes = np.array([[10, 20, 30, 60], [0, 0, 0, 0]], np.float32)
    box_targets, class_targets = encode_detection_targets(boxes, np.array([1, -1]), model.anchors)
    targets = {
        "classification": np.array([[0, 1], [0, 0]], np.float32)[:batch_size],
        "segmentation": masks,
        "box_regression": np.repeat(np.array(box_targets)[None], batch_size, axis=0),
        "box_classification": np.repeat(np.array(class_targets)[None], batch_size, axis=0),
    }
    # Annotation flags as Keras sample weights, one per output.
    flags = {key: np.ones(batch_size, np.float32) for key in targets}
    return images, targets, flags


@pytest.mark.parametrize(
    "tasks",
    [combo for size in (1, 2, 3) for combo in itertools.combinations(TASKS, size)],
    ids="+".join,
)
def test_outputs_of_every_task_subset(tasks):
    model = build_defect_aux_net(small_config(tasks=tasks))
    num_anchors = len(model.anchors)
    expected = {
        "classification": (2, 2),
        "segmentation": (2, 72, 100, 2),
        "box_regression": (2, num_anchors, 4),
        "box_classification": (2, num_anchors, 2),
    }
    outputs = model(np.zeros((2, 72, 100, 3), np.float32))
    keys = sorted(key for task in tasks for key in OUTPUT_KEYS[task])
    assert sorted(outputs) == keys
    for key in keys:
        assert tuple(outputs[key].shape) == expected[key]
        assert outputs[key].dtype == "float32"
    probabilities = [outputs[key] for key in ("classification", "segmentation") if key in outputs]
    for values in probabilities:
        assert 0.0 <= float(np.min(values)) and float(np.max(values)) <= 1.0


def test_anchors_cover_the_padded_input():
    model = build_defect_aux_net(small_config())
    # 72 x 100 padded to 128 x 128; levels 3..7, 9 anchors per location.
    assert len(model.anchors) == 9 * sum((128 // 2**level) ** 2 for level in range(3, 8))


def parts_reached(model, flags):
    """Names of the model's top-level parts whose weights get a non-zero gradient."""
    images, targets, _ = training_batch(model)
    with tf.GradientTape() as tape:
        loss = model.multi_task_loss(targets, model(images, training=True), flags)["total"]
    owner = {
        id(variable): layer.name for layer in model.layers for variable in layer.trainable_variables
    }
    variables = model.trainable_variables
    gradients = tape.gradient(loss, variables)
    return {
        owner[id(variable)]
        for variable, gradient in zip(variables, gradients)
        if gradient is not None and float(tf.reduce_max(tf.abs(gradient))) > 0
    }


def test_classification_loss_reaches_only_the_bottom_up_pathway():
    model = build_defect_aux_net(small_config())
    flags = {
        "classification": np.ones(2),
        "segmentation": np.zeros(2),
        "box_classification": np.zeros(2),
    }
    assert parts_reached(model, flags) == {"resnet18_se_sa", "classification_head"}


def test_segmentation_and_detection_losses_reach_the_top_down_pathway():
    model = build_defect_aux_net(small_config())
    flags = {
        "classification": np.zeros(2),
        "segmentation": np.ones(2),
        "box_classification": np.ones(2),
    }
    assert parts_reached(model, flags) == {
        "resnet18_se_sa", "feature_pyramid", "segmentation_head", "box_head", "class_head"
    }


def test_keras_file_round_trip_gives_identical_outputs(tmp_path):
    model = build_defect_aux_net(small_config())
    images, _, _ = training_batch(model)
    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert reloaded.config == model.config
    expected = model.predict(images, verbose=0)
    actual = reloaded.predict(images, verbose=0)
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key])


def test_without_the_p2_output_conv_only_that_conv_is_gone(tmp_path):
    full = build_defect_aux_net(small_config())
    cheap = build_defect_aux_net(small_config(p2_output_conv=False))
    channels = full.config.pyramid_channels
    assert full.count_params() - cheap.count_params() == 3 * 3 * channels * channels + channels
    assert [conv.name for conv in cheap.get_layer("feature_pyramid").output_convs] == [
        "output_P3", "output_P4", "output_P5"
    ]
    images, _, _ = training_batch(cheap)
    path = str(tmp_path / "cheap.keras")
    cheap.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert reloaded.config.p2_output_conv is False
    expected = cheap.predict(images, verbose=0)
    np.testing.assert_array_equal(
        reloaded.predict(images, verbose=0)["segmentation"], expected["segmentation"]
    )


def test_trains_under_mixed_bfloat16_with_float32_losses():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_defect_aux_net(small_config())
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("feature_pyramid").compute_dtype == "bfloat16"
    images, targets, flags = training_batch(model)
    outputs = model(images)
    assert all(output.dtype == "float32" for output in outputs.values())
    losses = model.multi_task_loss(targets, outputs, flags)
    assert all(loss.dtype == "float32" for loss in losses.values())
    # XLA is model_contract_test's. Eager: tracing the step took a minute of CI; the dtypes
    # that fit sees are the same.
    model.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
    before = model.get_layer("class_head").get_weights()[0].copy()
    history = model.fit(images, targets, sample_weight=flags, batch_size=2, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert not np.array_equal(model.get_layer("class_head").get_weights()[0], before)


def test_full_size_parameter_counts_follow_table_iv():
    counts = {
        attention: build_defect_aux_net(
            DefectAuxNetConfig(num_classes=1, input_shape=(600, 600, 3), attention=attention)
        ).count_params()
        for attention in ("none", "sa", "se", "se+sa")
    }
    # Paper Table IV: none 33.2 < sa 33.5 < se 35.7 < se+sa 36.2 M.
    assert counts["none"] < counts["sa"] < counts["se"] < counts["se+sa"]
    assert abs(counts["se+sa"] - 36.2e6) / 36.2e6 < 0.10


def test_model_loss_adds_the_layers_regularisation_losses():
    inputs = keras.Input((2,))
    dense = keras.layers.Dense(
        1, kernel_initializer=keras.initializers.Constant(2.0),
        kernel_regularizer=keras.regularizers.L2(0.5),
    )
    loss = keras.ops.convert_to_tensor(1.5)
    # One replica (the default strategy): 1.5 + 0.5 * (2^2 + 2^2).
    assert float(model_loss(keras.Model(inputs, dense(inputs)), loss)) == pytest.approx(5.5)
    plain = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    assert float(model_loss(plain, loss)) == pytest.approx(1.5)
