import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from defect_aux_net.export.precision import with_precision
from defect_aux_net.export.saved_model import export_saved_model
from defect_aux_net.inference.postprocessing import ImageRule
from tests import tolerances
from tests.conftest import shared_across_workers
from tests.export.serving_test import (
    CLASS_NAMES,
    assert_outputs_match,
    build_test_model,
    encode,
    expected_outputs,
)

# Not the default 0.5: with them every image is defective, with 0.5 none is.
THRESHOLDS = [0.3, 0.7]
# The image rule exported: every head weighs, and its threshold (`exported`) flags one
# test image of two, so `is_defective` follows it and not the per-class thresholds.
IMAGE_WEIGHTS = {"classification": 0.2, "mask": 0.3, "detection": 0.5}
SIGNATURE_OUTPUTS = {
    "probabilities",
    "masks",
    "boxes",
    "scores",
    "classes",
    "num_detections",
    "image_score",
    "is_defective",
    "class_names",
}


def fused_by_hand(outputs):
    """The exported rule's fused image score of numpy outputs, computed directly."""
    real = np.arange(outputs["scores"].shape[1]) < outputs["num_detections"][:, None]
    detection = np.where(real, outputs["scores"], 0.0).max(axis=1, initial=0.0)
    return (
        IMAGE_WEIGHTS["classification"] * outputs["probabilities"].max(axis=1)
        + IMAGE_WEIGHTS["mask"] * outputs["masks"].max(axis=(1, 2, 3))
        + IMAGE_WEIGHTS["detection"] * detection
    )

# Runs in a fresh interpreter that imports TensorFlow only, as TF Serving sees the model.
LOAD_AND_SERVE = """
import sys

import numpy as np
import tensorflow as tf

export_dir, work_dir = sys.argv[1:]
loaded = tf.saved_model.load(export_dir)
serve_bytes = loaded.signatures["serving_default"]
serve_float = loaded.signatures["serving_float"]
encoded = tf.constant([open(f"{work_dir}/image_{i}.png", "rb").read() for i in range(2)])
floats = tf.constant(np.load(f"{work_dir}/floats.npy"))

serve_gated = loaded.signatures["serving_gated"]
serve_gated_threshold = loaded.signatures["serving_gated_threshold"]

results = {}
for prefix, outputs in [
    ("bytes", serve_bytes(images=encoded)),
    ("float", serve_float(images=floats)),
    ("gated", serve_gated(images=encoded)),
    # Image 0 passes any gate, image 1 none.
    ("per_image_gate", serve_gated_threshold(images=encoded, gate_threshold=[0.0, 1.01])),
]:
    # Strings (class_names) as fixed-size bytes: np.savez refuses object arrays.
    results.update({
        f"{prefix}_{key}": value.numpy().astype("S") if value.dtype == tf.string else value.numpy()
        for key, value in outputs.items()
    })
try:
    serve_bytes(images=tf.constant([b"not an image"]))
    results["bad_bytes_error"] = "none"
except tf.errors.InvalidArgumentError:
    results["bad_bytes_error"] = "InvalidArgumentError"
outputs = serve_bytes(images=encoded[:1])
results.update({
    f"after_error_{key}": value.numpy().astype("S") if value.dtype == tf.string else value.numpy()
    for key, value in outputs.items()
})
results["class_names"] = np.array([name.decode() for name in loaded.class_names.numpy()])
results["thresholds"] = loaded.thresholds.numpy()
results["gate_threshold"] = loaded.gate_threshold.numpy()
results["image_weights"] = loaded.image_weights.numpy()
results["image_threshold"] = loaded.image_threshold.numpy()
results["image_size"] = loaded.image_size.numpy()
results["channels"] = loaded.channels.numpy()
np.savez(f"{work_dir}/results.npz", **results)
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """`(export_dir, work_dir, expected)`: made once per test run (a minute of CI each)."""

    def export(work_dir):
        model = build_test_model()
        images = np.random.default_rng(3).integers(0, 256, (2, 80, 96, 3)).astype(np.uint8)
        floats = images.astype(np.float32) / 127.5 - 1.0
        for index, image in enumerate(images):
            (work_dir / f"image_{index}.png").write_bytes(encode(image))
        np.save(work_dir / "floats.npy", floats)
        expected = {
            "bytes": expected_outputs(model, images), "float": expected_outputs(model, floats)
        }
        # Halfway between the two images' fused scores: one is defective, one not.
        threshold = float(np.mean(fused_by_hand(expected["bytes"])))
        export_dir = export_saved_model(
            model,
            work_dir / "model" / "1",
            CLASS_NAMES,
            thresholds=THRESHOLDS,
            image_rule=ImageRule.from_weights(IMAGE_WEIGHTS, threshold),
        )
        (work_dir / "export_dir.txt").write_text(export_dir)
        (work_dir / "image_threshold.txt").write_text(repr(threshold))
        for name, outputs in expected.items():
            np.savez(work_dir / f"expected_{name}.npz", **outputs)
        completed = subprocess.run(
            [sys.executable, "-c", LOAD_AND_SERVE, export_dir, str(work_dir)],
            capture_output=True,
            text=True,
            env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2"},
        )
        assert completed.returncode == 0, completed.stderr

    work_dir = shared_across_workers(tmp_path_factory, "saved_model", export)
    expected = {}
    for name in ("bytes", "float"):
        with np.load(work_dir / f"expected_{name}.npz") as outputs:
            expected[name] = dict(outputs)
    return (work_dir / "export_dir.txt").read_text(), work_dir, expected


@pytest.fixture(scope="module")
def image_threshold(exported):
    return float((exported[1] / "image_threshold.txt").read_text())


def assert_fused_rule_decides(outputs, expected, threshold):
    """`image_score` is the hand-computed fused score; `is_defective` is it >= threshold."""
    fused = fused_by_hand(expected)
    tolerance = tolerances.float32_output_tolerance()
    tolerances.assert_close(outputs["image_score"], fused, tolerance, "image_score")
    # Clear of the threshold by more than the outputs' tolerance, so the decision is sure.
    assert (np.abs(fused - threshold) > 10 * tolerance).all(), (fused, threshold)
    np.testing.assert_array_equal(outputs["is_defective"], fused >= threshold)


@pytest.fixture(scope="module")
def served_in_fresh_process(exported):
    """The signatures' outputs in a fresh interpreter (`LOAD_AND_SERVE`, run by `exported`)."""
    with np.load(exported[1] / "results.npz") as results:
        return dict(results)


def outputs_with_prefix(results, prefix):
    return {key[len(prefix) :]: value for key, value in results.items() if key.startswith(prefix)}


def test_export_dir_is_returned(exported):
    export_dir, work_dir, _ = exported
    assert export_dir == str(work_dir / "model" / "1")
    assert tf.saved_model.contains_saved_model(export_dir)


@pytest.mark.parametrize("signature", ["bytes", "float"])
def test_loaded_signatures_equal_the_keras_model(
    exported, served_in_fresh_process, image_threshold, signature
):
    expected = exported[2][signature]
    outputs = outputs_with_prefix(served_in_fresh_process, f"{signature}_")

    assert set(outputs) == SIGNATURE_OUTPUTS
    assert outputs["num_detections"].min() > 0
    assert_outputs_match(outputs, expected)
    # Each image's row names the classes: a TF Serving client needs no side file.
    assert outputs["class_names"].tolist() == [[name.encode() for name in CLASS_NAMES]] * 2
    # The exported image rule decides, not the per-class thresholds (which flag both).
    assert (expected["probabilities"] >= THRESHOLDS).any(axis=1).all()
    assert_fused_rule_decides(outputs, expected, image_threshold)
    if signature == "bytes":  # The threshold lies halfway between the two.
        assert outputs["is_defective"].sum() == 1


def test_gated_signature_at_the_stored_threshold_lets_defective_images_through(
    exported, served_in_fresh_process
):
    expected = exported[2]["bytes"]
    outputs = outputs_with_prefix(served_in_fresh_process, "gated_")
    # The lowest class threshold: both test images pass it.
    assert float(served_in_fresh_process["gate_threshold"]) == pytest.approx(min(THRESHOLDS))
    assert (expected["probabilities"].max(axis=1) >= min(THRESHOLDS)).all()
    assert set(outputs) == SIGNATURE_OUTPUTS | {"gate_passed"}
    np.testing.assert_array_equal(outputs.pop("gate_passed"), [True, True])
    assert_outputs_match(outputs, expected)


def test_per_image_gate_thresholds_skip_the_heads_of_stopped_images(
    exported, served_in_fresh_process, image_threshold
):
    expected = exported[2]["bytes"]
    outputs = outputs_with_prefix(served_in_fresh_process, "per_image_gate_")
    np.testing.assert_array_equal(outputs.pop("gate_passed"), [True, False])
    assert_outputs_match({key: value[:1] for key, value in outputs.items()},
                         {key: value[:1] for key, value in expected.items()})
    tolerances.assert_close(
        outputs["probabilities"], expected["probabilities"], tolerances.float32_output_tolerance()
    )
    assert not outputs["masks"][1].any()
    assert outputs["num_detections"][1] == 0
    # The stopped image's fused score holds its classifier part only.
    stopped = expected | {
        key: np.stack([expected[key][0], np.zeros_like(expected[key][1])])
        for key in ("masks", "num_detections")
    }
    assert_fused_rule_decides(outputs, stopped, image_threshold)


def test_bad_bytes_raise_and_serving_goes_on(exported, served_in_fresh_process):
    assert served_in_fresh_process["bad_bytes_error"] == "InvalidArgumentError"
    outputs = outputs_with_prefix(served_in_fresh_process, "after_error_")
    expected = {key: value[:1] for key, value in exported[2]["bytes"].items()}
    assert_outputs_match(outputs, expected)


def test_metadata_is_readable_after_load(served_in_fresh_process):
    assert list(served_in_fresh_process["class_names"]) == CLASS_NAMES
    np.testing.assert_allclose(served_in_fresh_process["thresholds"], THRESHOLDS)
    np.testing.assert_allclose(served_in_fresh_process["image_weights"], [0.2, 0.3, 0.5])
    np.testing.assert_array_equal(served_in_fresh_process["image_size"], [64, 64])
    assert int(served_in_fresh_process["channels"]) == 3


def test_saved_model_cli_lists_the_signatures(exported):
    export_dir = exported[0]
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "tensorflow.python.tools.saved_model_cli",
            "show",
            "--dir",
            export_dir,
            "--all",
        ],
        capture_output=True,
        text=True,
        env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert completed.returncode == 0, completed.stderr
    # One section per signature: "signature_def['NAME']:" up to the next one.
    sections = {
        section.split("'", 1)[0]: section
        for section in completed.stdout.split("signature_def['")[1:]
    }
    assert {
        "serving_default", "serving_float", "serving_gated", "serving_gated_threshold"
    } <= set(sections)
    assert "inputs['gate_threshold']" in sections["serving_gated_threshold"]
    for name, input_dtype in [("serving_default", "DT_STRING"), ("serving_float", "DT_FLOAT")]:
        section = sections[name]
        inputs, outputs = section.split("outputs", 1)
        assert "inputs['images']" in inputs and f"dtype: {input_dtype}" in inputs
        for output in SIGNATURE_OUTPUTS:
            assert f"outputs['{output}']" in section, (name, output)
        # Batched like every other output, as TF Serving's REST row format requires.
        class_names = section.split("outputs['class_names']", 1)[1].split("outputs[", 1)[0]
        assert "dtype: DT_STRING" in class_names and "shape: (-1, 2)" in class_names


def iou(boxes, box):
    """IoU of `[N, 4]` `ymin, xmin, ymax, xmax` boxes with one box."""
    low, high = np.maximum(boxes[:, :2], box[:2]), np.minimum(boxes[:, 2:], box[2:])
    intersection = np.prod(np.clip(high - low, 0, None), axis=-1)
    areas = np.prod(boxes[:, 2:] - boxes[:, :2], axis=-1)
    union = areas + np.prod(box[2:] - box[:2]) - intersection
    return intersection / np.maximum(union, 1e-12)  # Boxes clipped to a line have no area.


def test_mixed_bfloat16_model_exports_float32(tmp_path):
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_test_model()
    finally:
        keras.mixed_precision.set_global_policy(policy)
    pixels = np.random.default_rng(4).random((2, 64, 64, 3)).astype(np.float32)

    export_dir = export_saved_model(model, tmp_path / "1", CLASS_NAMES)
    loaded = tf.saved_model.load(export_dir)
    outputs = loaded.signatures["serving_float"](images=tf.constant(pixels))

    for key in ("probabilities", "masks", "boxes", "scores"):
        assert outputs[key].dtype == tf.float32, key
    expected = expected_outputs(model, pixels)
    actual = {key: value.numpy() for key, value in outputs.items()}
    tolerance = tolerances.bfloat16_output_tolerance()
    for key in ("probabilities", "masks"):
        tolerances.assert_close(actual[key], expected[key], tolerance, key)
    # Scores within a bfloat16 rounding of each other may swap places in NMS, and so
    # which of two overlapping boxes it keeps: each confident detection must be in
    # the list, anywhere, or be suppressed there by a box of its class that overlaps
    # it by the NMS threshold (0.5) and scores as high, up to rounding. Moving each
    # corner by box_tolerance moves an IoU by up to 4 box_tolerance / s, s the box's
    # shorter side in image sides: the untrained network's boxes clipped to slivers at
    # the border (s about 0.01) may be suppressed by any box that overlaps them.
    box_tolerance = tolerances.box_tolerance(tolerance)
    checked = found = 0
    for image in range(len(pixels)):
        count = actual["num_detections"][image]
        actual_boxes = actual["boxes"][image, :count]
        for row in range(expected["num_detections"][image]):
            score, box = expected["scores"][image, row], expected["boxes"][image, row]
            if score < 0.05 + tolerance:
                continue
            same_class = actual["classes"][image, :count] == expected["classes"][image, row]
            close_score = np.abs(actual["scores"][image, :count] - score) <= tolerance
            same_box = np.abs(actual_boxes - box).max(axis=-1) <= box_tolerance
            side = max(min(box[2] - box[0], box[3] - box[1]), 1e-6)
            suppressing = (
                (iou(actual_boxes, box) >= 0.5 - 4 * box_tolerance / side)
                & (actual["scores"][image, :count] >= score - tolerance)
            )
            assert (same_class & ((close_score & same_box) | suppressing)).any(), (image, row)
            checked += 1
            found += (same_class & close_score & same_box).any()
    assert checked >= 10
    # Most are in the list as they are (178 of 200 on an AVX-512 CPU with oneDNN).
    assert found >= checked // 2
    # Mixed precision keeps float32 weights: nothing is saved in bfloat16.
    dtypes = tf.train.load_checkpoint(
        os.path.join(export_dir, "variables", "variables")
    ).get_variable_to_dtype_map()
    assert tf.bfloat16 not in dtypes.values()
    assert list(dtypes.values()).count(tf.float32) >= len(model.weights)


def test_a_bfloat16_copy_exports_bfloat16_weights_and_float32_outputs(tmp_path):
    model = build_test_model()
    pixels = np.random.default_rng(5).random((2, 64, 64, 3)).astype(np.float32)

    export_dir = export_saved_model(with_precision(model, "bfloat16"), tmp_path / "1", CLASS_NAMES)

    dtypes = tf.train.load_checkpoint(
        os.path.join(export_dir, "variables", "variables")
    ).get_variable_to_dtype_map()
    # Every weight in bfloat16; float32 only the thresholds the export stores beside them.
    assert list(dtypes.values()).count(tf.bfloat16) == len(model.weights)
    float32 = {name.split("/")[0] for name, dtype in dtypes.items() if dtype == tf.float32}
    assert float32 <= {"thresholds", "gate_threshold"}
    outputs = tf.saved_model.load(export_dir).signatures["serving_float"](images=pixels)
    expected = expected_outputs(model, pixels)
    for key in ("probabilities", "masks"):
        assert outputs[key].dtype == tf.float32, key
        tolerances.assert_close(
            outputs[key].numpy(), expected[key], tolerances.bfloat16_output_tolerance(), key
        )


def test_only_the_weights_and_the_serving_variables_are_saved(tmp_path):
    """A trained model's optimizer state (Adam's moments, averaged weights: two to three
    times the weights) is not written: serving reads the weights only."""
    model = build_test_model()
    model.compile(optimizer=keras.optimizers.Adam(use_ema=True))
    model.optimizer.build(model.trainable_variables)
    optimizer_values = sum(int(np.prod(v.shape)) for v in model.optimizer.variables)
    assert optimizer_values > 2 * sum(int(np.prod(v.shape)) for v in model.trainable_variables)

    export_dir = export_saved_model(model, tmp_path / "1", CLASS_NAMES, thresholds=THRESHOLDS)

    stored = tf.train.list_variables(os.path.join(export_dir, "variables", "variables"))
    stored_values = sum(
        int(np.prod(shape)) for name, shape in stored if name != "_CHECKPOINTABLE_OBJECT_GRAPH"
    )
    # class_names and thresholds [K], image_size [2], channels and gate_threshold scalars.
    serving_values = 2 * len(CLASS_NAMES) + 2 + 1 + 1
    model_values = sum(int(np.prod(v.shape)) for v in model.variables)
    assert stored_values == model_values + serving_values
    assert not [name for name, _ in stored if "optimizer" in name]
