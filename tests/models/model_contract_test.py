"""What every model of `MODELS` must do, checked on its "small" preset.

A new model gets these checks by its `MODELS` entry alone: a `.keras` round trip in
safe mode, a training step that lowers to XLA and changes its weights, and a SavedModel
that a fresh process serves as the exporting process did.
"""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from defect_aux_net.data.pipeline import detection_targets
from defect_aux_net.detection.box_matching import encode_detection_targets
from defect_aux_net.export.saved_model import save_serving_module
from defect_aux_net.export.serving import ServingModule
from defect_aux_net.models.model_builders import MODELS, build_model, model_config, model_name
from tests.tolerances import float32_output_tolerance

NAMES = sorted(MODELS)
# The SavedModel's serving graph depends on the model's outputs, which its class
# declares: one export per model class.
# Lowering costs 10-40 s of CPU a model: once per network implementation. A name that
# only sets config values of another name's layers (no attention; the detection head
# alone) shares that name's check; Defect-Aux-Net's step is also compiled in full below.
XLA_SHARED = {"resnet50": "se_resnet50", "retinanet": "defect_aux_net"}
# Lowered in the extended tier: another decoder, backbone or box head of a family
# whose other member the default run lowers.
EXTENDED_LOWERINGS = {"cascade_rcnn", "efficientnet_b0", "linknet", "pspnet"}
LOWERED_NAMES = [
    pytest.param(name, marks=[pytest.mark.extended] if name in EXTENDED_LOWERINGS else [])
    for name in NAMES
    if name not in XLA_SHARED
]
EXPORT_NAMES = list({entry.model_class: name for name, entry in reversed(MODELS.items())}.values())
# The served outputs of each task (`postprocessing.decode_outputs`).
SERVED_KEYS = {
    "classification": {"probabilities"},
    "segmentation": {"masks"},
    "detection": {"boxes", "scores", "classes", "num_detections"},
}


def small_model(name, seed=0):
    keras.utils.set_random_seed(seed)
    # model_config: entries sharing a config class differ by their config values.
    return build_model(model_config(name, "small"))


def training_batch(model, batch_size=2, seed=0):
    """`(images, targets, annotation_flags)` as the input pipeline gives them."""
    config = model.config
    height, width, channels = config.input_shape
    classes = config.num_classes
    rng = np.random.default_rng(seed)
    images = rng.random((batch_size, height, width, channels)).astype(np.float32)
    masks = np.zeros((batch_size, height, width, classes), np.float32)
    box = np.array([height // 8, width // 4, height // 2, 3 * width // 4])
    masks[0, box[0] : box[2], box[1] : box[3], classes - 1] = 1
    targets = {"classification": masks.max(axis=(1, 2)), "segmentation": masks}
    two_stage = "detection" in config.tasks and detection_targets(config) == "boxes"
    if two_stage:  # The padded ground truth as it is.
        padded_boxes = np.stack([box, np.zeros(4)]).astype(np.float32)
        targets["boxes"] = np.stack([padded_boxes, np.zeros((2, 4), np.float32)])
        targets["box_classes"] = np.array([[classes - 1, -1], [-1, -1]], np.int32)
    elif "detection" in config.tasks:
        padded_boxes = np.stack([box, np.zeros(4)]).astype(np.float32)
        box_targets, class_targets = encode_detection_targets(
            padded_boxes, np.array([classes - 1, -1]), model.anchors
        )
        empty_box_targets, empty_class_targets = encode_detection_targets(
            np.zeros((2, 4), np.float32), np.array([-1, -1]), model.anchors
        )
        targets["box_regression"] = np.stack([box_targets, empty_box_targets])
        targets["box_classification"] = np.stack([class_targets, empty_class_targets])
    keys = {
        "classification": ["classification"],
        "segmentation": ["segmentation"],
        "detection": ["boxes", "box_classes"] if two_stage
        else ["box_regression", "box_classification"],
    }
    targets = {key: targets[key] for task in config.tasks for key in keys[task]}
    flags = {key: np.ones(batch_size, np.float32) for key in targets}
    return images, targets, flags


def test_every_model_has_a_small_preset_of_its_own_config_class():
    for name, entry in MODELS.items():
        config = model_config(name, "small")
        assert type(config) is entry.config_class and model_name(config) == name, name
        assert set(config.tasks) <= set(SERVED_KEYS), name


@pytest.mark.parametrize("name", NAMES)
def test_keras_round_trip_in_safe_mode(name, tmp_path):
    model = small_model(name)
    images = training_batch(model)[0]
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    assert type(reloaded) is type(model) and reloaded.config == model.config
    expected, actual = model(images), reloaded(images)
    assert set(actual) == set(expected)
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], atol=float32_output_tolerance())


def test_names_sharing_an_xla_check_are_the_same_network():
    for name, other in XLA_SHARED.items():
        assert MODELS[name].model_class is MODELS[other].model_class, name


@pytest.mark.parametrize("name", LOWERED_NAMES)
def test_the_training_step_lowers_to_xla_and_changes_the_weights(name):
    # Lowering to HLO is where XLA refuses an op without an XLA kernel or a shape it
    # cannot make static, as a TPU would; compiling it to CPU code as well costs a minute
    # of CPU per model: the extended tier compiles Defect-Aux-Net's (below), the default
    # run a one-head Defect-Aux-Net's (tests/performance/training_throughput_test.py).
    model = small_model(name)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    model.optimizer.build(model.trainable_variables)
    data = tf.nest.map_structure(tf.constant, training_batch(model))
    step = tf.function(model.train_step, jit_compile=True)
    assert "HloModule" in step.experimental_get_compiler_ir(data)(stage="hlo")
    before = [np.array(weight) for weight in model.trainable_weights]
    logs = model.train_step(data)  # The same step, eagerly.
    assert np.isfinite(float(logs["loss"])), logs
    after = [np.array(weight) for weight in model.trainable_weights]
    # Not every weight: SegDecNet's first epoch trains the segmentation alone.
    assert any(not np.array_equal(b, a) for b, a in zip(before, after))


@pytest.mark.extended
@pytest.mark.slow(seconds=90)  # XLA compiles the step to CPU code.
def test_defect_aux_nets_training_step_compiles_and_runs_with_xla():
    model = small_model("defect_aux_net")
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=True)
    dataset = tf.data.Dataset.from_tensors(training_batch(model)).repeat()
    before = [np.array(weight) for weight in model.trainable_weights]
    history = model.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0)
    assert model.jit_compile is True
    assert np.isfinite(history.history["loss"][0]), history.history
    after = [np.array(weight) for weight in model.trainable_weights]
    assert all(not np.array_equal(b, a) for b, a in zip(before, after))


_SERVE_IN_FRESH_PROCESS = """
import json, sys
import numpy as np
import tensorflow as tf
results = {}
for name, path in json.loads(sys.argv[1]).items():
    images = np.load(path + ".npy")
    outputs = tf.saved_model.load(path).signatures["serving_float"](images=tf.constant(images))
    results[name] = {key: np.asarray(value).tolist() for key, value in outputs.items()
                     if value.dtype != tf.string}
print(json.dumps(results))
"""


@pytest.mark.extended
@pytest.mark.slow(seconds=230)
def test_every_model_exports_a_saved_model_that_a_fresh_process_serves(tmp_path):
    # One process reloads every model: a TensorFlow start per model would cost more.
    # The exporting process serves from the module it saved (what `export_saved_model`
    # builds), whose signatures the save traced: reloading the SavedModel here as well
    # cost 0.3-1.8 s more CPU a model (SegDec, U-Net, Defect-Aux-Net).
    expected, exports = {}, {}
    for name in EXPORT_NAMES:
        model = small_model(name)
        images = training_batch(model)[0] * 255.0
        classes = [f"class_{index}" for index in range(model.config.num_classes)]
        module = ServingModule(model, classes)
        path = save_serving_module(module, tmp_path / name)
        np.save(path + ".npy", images)
        served = module.signatures()["serving_float"](images=tf.constant(images))
        expected[name] = {key: np.asarray(v) for key, v in served.items() if v.dtype != tf.string}
        wanted = set().union(*(SERVED_KEYS[task] for task in model.config.tasks))
        assert wanted <= set(served), (name, sorted(served))
        others = set().union(*SERVED_KEYS.values()) - wanted
        assert not others & set(served), (name, sorted(served))
        exports[name] = path
    result = subprocess.run(
        [sys.executable, "-c", _SERVE_IN_FRESH_PROCESS, json.dumps(exports)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    served = json.loads(result.stdout.strip().splitlines()[-1])
    for name in EXPORT_NAMES:
        assert set(served[name]) == set(expected[name]), name
        for key, value in expected[name].items():
            np.testing.assert_allclose(
                served[name][key], value, atol=float32_output_tolerance(), err_msg=f"{name}/{key}"
            )
