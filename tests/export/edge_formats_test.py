"""ONNX, LiteRT and OpenVINO exports, run by their own runtimes in a fresh process."""

import json
import math
import subprocess
import sys

import keras
import numpy as np
import pytest

from defect_aux_net.detection.decoding import decode_detections
from defect_aux_net.export import edge_formats, edge_runtimes
from defect_aux_net.export.edge_formats import export_edge_model, float32_model
from tests import tolerances
from tests.export.serving_test import assert_outputs_match, build_test_model

RUNTIMES = {"onnx": "onnxruntime", "litert": "ai_edge_litert", "openvino": "openvino"}
PROBABILITIES = ("classification", "segmentation")
LOGITS = ("box_regression", "box_classification")

# INT8 bounds, from the arithmetic as in tests/tolerances.py. An activation of unit
# scale quantised to 255 steps over a calibrated range of about +-4 has a rounding
# error of std step / sqrt(12) = (8 / 255) / sqrt(12) ~ 0.009; over the network's
# layers these add as a random walk: sqrt(26) * 0.009 ~ 0.046 on the logits.
INT8_LOGIT_STD = math.sqrt(tolerances.LAYERS) * (8 / 255) / math.sqrt(12)
# Probabilities: the logits' change times 4 (MARGIN), times a sigmoid's slope of at
# most 1/4, plus half a step of LiteRT's int8 sigmoid output (steps of 1/256): ~0.048.
INT8_PROBABILITY_TOLERANCE = tolerances.MARGIN * INT8_LOGIT_STD / 4 + 1 / 512
# Logits: the mean change is bounded (about 0.8 std, times MARGIN: ~0.15), not the
# largest, which lies in the tails: LiteRT computes the group norms' statistics in
# int8, and single anchors' logits move by up to 0.7.
INT8_MEAN_LOGIT_TOLERANCE = tolerances.MARGIN * 0.8 * INT8_LOGIT_STD
# INT8 outputs follow the model's across images and pixels, not a constant.
INT8_MIN_CORRELATION = 0.9

# A fresh interpreter that loads `edge_runtimes` by file, not through the package
# (whose __init__ imports Keras): a line-side PC has the runtime and numpy only.
RUN_EXPORT = """
import importlib.util, sys
import numpy as np

module_path, export_dir, work_dir = sys.argv[1:]
spec = importlib.util.spec_from_file_location("edge_runtimes", module_path)
edge_runtimes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(edge_runtimes)
model = edge_runtimes.load_edge_model(export_dir, threads=1)
images = np.load(f"{work_dir}/images.npy")
results = model(images)
try:
    model(images[:, :32])
    results["wrong_shape_error"] = np.array("none")
except ValueError as error:
    results["wrong_shape_error"] = np.array(str(error))
results["anchors"] = model.anchors
results["inference_precision"] = np.array(model.metadata.get("inference_precision", ""))
assert "tensorflow" not in sys.modules and "keras" not in sys.modules, "imports TF"
np.savez(f"{work_dir}/results.npz", **results)
"""


@pytest.fixture(scope="module")
def model():
    return build_test_model()


@pytest.fixture(scope="module")
def images():
    # Prepared images: float32 in [0, 1]; calibration uses other ones.
    return np.random.default_rng(1).uniform(0, 1, (3, 64, 64, 3)).astype(np.float32)


def calibration_batches():
    rng = np.random.default_rng(2)
    return [rng.uniform(0, 1, (4, 64, 64, 3)).astype(np.float32) for _ in range(4)]


def run_in_fresh_process(export_dir, work_dir, images):
    np.save(work_dir / "images.npy", images)
    completed = subprocess.run(
        [sys.executable, "-c", RUN_EXPORT, edge_runtimes.__file__, export_dir, str(work_dir)],
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stderr
    with np.load(work_dir / "results.npz") as results:
        return dict(results)


def cpu_has_bfloat16() -> bool:
    """Whether this x86 CPU has bfloat16 instructions (its flags in /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as file:
            flags = file.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def decoded(outputs, model):
    """Probabilities, masks and decoded detections, as `assert_outputs_match` compares them."""
    height, width = model.config.input_shape[:2]
    detections = decode_detections(
        outputs["box_regression"], outputs["box_classification"], model.anchors, (height, width)
    )
    results = {key: np.asarray(value) for key, value in detections.items()}
    results["boxes"] = results["boxes"] / np.array([height, width, height, width])
    results["probabilities"] = outputs["classification"]
    results["masks"] = outputs["segmentation"]
    return results


def slow_case(format, precision, seconds, *marks):
    return pytest.param(format, precision, marks=[pytest.mark.slow(seconds=seconds), *marks])


# Seconds measured on the 2-core machine while others ran: conversion dominates. The
# default run converts each format once; OpenVINO's INT8 path runs there end to end
# (tests/launch/evaluate_test.py), LiteRT's in the extended tier.
@pytest.mark.parametrize(
    "format, precision",
    [
        slow_case("onnx", "float32", 40),
        slow_case("litert", "float32", 40),
        slow_case("litert", "int8", 45, pytest.mark.extended),
        slow_case("openvino", "float32", 25),
        slow_case("openvino", "bfloat16", 25),
        slow_case("openvino", "int8", 40, pytest.mark.extended),
    ],
)
def test_export_runs_in_its_runtime_like_the_keras_model(
    format, precision, model, images, tmp_path
):
    pytest.importorskip(RUNTIMES[format])
    calibration = calibration_batches() if precision == "int8" else None
    export_dir = export_edge_model(
        model, tmp_path / "export", format, precision, calibration_images=calibration
    )

    results = run_in_fresh_process(export_dir, tmp_path, images)
    expected = {key: np.asarray(value) for key, value in model(images, training=False).items()}
    assert "takes prepared images [B, 64, 64, 3]; got shape (3, 32, 64, 3)" in str(
        results["wrong_shape_error"]
    )
    np.testing.assert_array_equal(results["anchors"], model.anchors)
    metadata = json.loads((tmp_path / "export" / "edge_export.json").read_text())
    assert (metadata["format"], metadata["precision"]) == (format, precision)
    assert metadata["detection_outputs"] == "anchor_deltas"
    assert set(metadata["outputs"]) == set(expected)
    if precision == "float32":
        for name, value in expected.items():
            tolerances.assert_close(
                results[name], value, tolerances.float32_output_tolerance(), name
            )
        # Decoded the same way, the boxes agree within box_tolerance; NMS keeps the
        # same boxes in the same order.
        assert_outputs_match(decoded(results, model), decoded(expected, model))
    elif precision == "bfloat16":
        # The float32 IR, run with the bf16 hint where the CPU has bfloat16 instructions.
        ran_bf16 = cpu_has_bfloat16()
        assert str(results["inference_precision"]) == ("bf16" if ran_bf16 else "f32")
        tolerance = tolerances.bfloat16_output_tolerance()
        for name in PROBABILITIES:
            tolerances.assert_close(results[name], expected[name], tolerance, name)
        for name in LOGITS:
            mean_change = np.abs(results[name] - expected[name]).mean()
            assert mean_change <= tolerance, (name, mean_change)
        largest = max(np.abs(results[name] - expected[name]).max() for name in expected)
        # Beyond float32 rounding where bfloat16 ran, within it elsewhere.
        assert (largest > tolerances.float32_output_tolerance()) == ran_bf16, largest
    else:
        for name in PROBABILITIES:
            tolerances.assert_close(results[name], expected[name], INT8_PROBABILITY_TOLERANCE, name)
        for name in LOGITS:
            mean_change = np.abs(results[name] - expected[name]).mean()
            assert mean_change <= INT8_MEAN_LOGIT_TOLERANCE, (name, mean_change)
        # Not reproduced by a float32 run: INT8 really changed the outputs.
        assert np.abs(results["box_regression"] - expected["box_regression"]).max() > 1e-3
        for name in ("segmentation", *LOGITS):
            correlation = np.corrcoef(results[name].ravel(), expected[name].ravel())[0, 1]
            assert correlation >= INT8_MIN_CORRELATION, (name, correlation)


def test_mixed_bfloat16_model_is_exported_from_a_float32_copy(model, images):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = build_test_model()
    finally:
        keras.config.set_dtype_policy(previous)

    copy = float32_model(mixed)

    assert {layer.compute_dtype for layer in mixed.layers} == {"bfloat16", "float32"}
    assert {layer.compute_dtype for layer in copy.layers} == {"float32"}
    assert {layer.compute_dtype for layer in copy.get_layer("resnet18_se_sa").layers} == {"float32"}
    assert float32_model(model) is model
    # Same weights: the copy computes what the float32 model computes.
    outputs = copy(images, training=False)
    for name, value in model(images, training=False).items():
        tolerances.assert_close(outputs[name], value, tolerances.float32_output_tolerance(), name)


@pytest.mark.parametrize(
    "format, precision, calibration, message",
    [
        ("tflite", "float32", None, "format must be one of ['litert', 'onnx', 'openvino'], got"),
        ("onnx", "int8", [], "precision 'int8' is not offered for format 'onnx'"),
        ("onnx", "bfloat16", None, "precision 'bfloat16' is not offered for format 'onnx'"),
        ("litert", "int8", None, "precision 'int8' needs calibration_images"),
        ("litert", "float32", [np.zeros((1, 64, 64, 3))], "calibration_images are for"),
        ("litert", "int8", [], "calibration_images holds no image"),
        ("openvino", "int8", [np.zeros((2, 32, 32, 3))], "batch 0 has shape (2, 32, 32, 3); "
         "expected [b, 64, 64, 3]"),
        ("openvino", "int8", [np.full((1, 64, 64, 3), np.nan)], "batch 0 has non-finite"),
    ],
)
def test_bad_arguments_are_refused_before_converting(
    format, precision, calibration, message, model, tmp_path
):
    with pytest.raises(ValueError) as error:
        export_edge_model(model, tmp_path / "export", format, precision, calibration)
    assert message in str(error.value)
    assert not (tmp_path / "export").exists()


def test_existing_folder_is_not_replaced(model, tmp_path):
    pytest.importorskip("tf2onnx")
    (tmp_path / "export").mkdir()
    with pytest.raises(FileExistsError, match="exists already"):
        export_edge_model(model, tmp_path / "export", "onnx")


def test_loading_a_folder_without_metadata_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="edge_export.json not found"):
        edge_runtimes.load_edge_model(str(tmp_path))


def test_missing_runtime_package_names_the_extra(model, tmp_path, monkeypatch):
    monkeypatch.setitem(edge_formats._PACKAGES, "onnx", ("no_such_runtime_package",))
    message = r"needs the package 'no_such_runtime_package'.*\[export\]"
    with pytest.raises(ImportError, match=message):
        export_edge_model(model, tmp_path / "export", "onnx")


@pytest.mark.slow(seconds=30)
def test_segdec_openvino_export_serves_its_probabilities_and_masks(tmp_path):
    # Its outputs carry several tensor names in OpenVINO; each is found by its Keras name.
    pytest.importorskip("openvino")
    import tensorflow as tf

    from defect_aux_net.data.preprocessing import prepare_image
    from defect_aux_net.inference.model_loading import load_serving_functions
    from defect_aux_net.models.segdec_config import SegDecConfig
    from defect_aux_net.models.segdec_net import SegDecNet

    keras.utils.set_random_seed(0)
    model = SegDecNet(SegDecConfig.from_preset("small", num_classes=2))
    export_dir = export_edge_model(model, tmp_path / "export", "openvino", "float32")
    metadata = json.loads((tmp_path / "export" / "edge_export.json").read_text())
    assert metadata["model_name"] == "segdec" and metadata["anchors"] is None
    pixels = np.random.default_rng(0).random((2, 128, 128, 1)).astype(np.float32) * 255
    results = load_serving_functions(export_dir, class_names=["a", "b"]).serve_float(pixels)
    expected = model(tf.stack([prepare_image(image, (128, 128), 1) for image in pixels]))
    tolerance = tolerances.float32_output_tolerance()
    tolerances.assert_close(results["probabilities"], expected["classification"], tolerance, "p")
    tolerances.assert_close(results["masks"], expected["segmentation"], tolerance, "masks")
