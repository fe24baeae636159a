"""Faster and Cascade R-CNN exported to ONNX, LiteRT and OpenVINO, run by their runtimes.

Their graphs decode boxes themselves (proposals, NMS, RoIAlign, the box head's
decoding); the exports keep all of it and `decode_outputs` selects the final
detections from `detection_boxes` and `detection_scores`, without anchors.
"""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

from defect_aux_net.export import edge_runtimes
from defect_aux_net.export.edge_formats import export_edge_model
from defect_aux_net.inference.postprocessing import decode_outputs
from defect_aux_net.models.model_builders import build_model, model_config
from tests import tolerances
from tests.export.edge_formats_test import RUNTIMES

# A fresh interpreter with numpy and the runtime only, as in edge_formats_test.
RUN_EXPORT = """
import importlib.util, sys
import numpy as np

module_path, export_dir, work_dir = sys.argv[1:]
spec = importlib.util.spec_from_file_location("edge_runtimes", module_path)
edge_runtimes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(edge_runtimes)
model = edge_runtimes.load_edge_model(export_dir, threads=1)
results = model(np.load(f"{work_dir}/images.npy"))
results["detection_outputs"] = np.array(model.detection_outputs)
results["has_anchors"] = np.array(model.anchors is not None)
assert "tensorflow" not in sys.modules and "keras" not in sys.modules, "imports TF"
np.savez(f"{work_dir}/results.npz", **results)
"""
# Output scales (pixels) of the boxes: the model input's side.
IMAGE_SIDE = 64


def spread_detector_weights(model, seed=0):
    """Gives the RPN and box heads weights whose scores are spread out.

    At initialisation the RPN's objectness convs have a std of 0.01: every anchor
    scores about 0.5, and which proposals survive top-k and NMS is left to rounding,
    as is the order of the box head's near-equal class scores. He-normal hidden
    kernels and output kernels of std 4 / sqrt(fan in) give logits of std about 4
    times their unit-scale inputs: distinct scores, and distinct boxes.
    """
    rng = np.random.default_rng(seed)
    heads = [layer for layer in model.layers if layer.name == "rpn_head"
             or layer.name.startswith("box_head")]
    for head in heads:
        for weight in head.weights:
            if len(weight.shape) < 2:
                continue
            fan_in = np.prod(weight.shape[:-1])
            layer = weight.path.split("/")[-2]
            gain = {"objectness": 4.0, "class_logits": 4.0, "deltas": 0.5,
                    "box_deltas": 0.5}.get(layer, np.sqrt(2.0))
            weight.assign(rng.normal(0, gain / np.sqrt(fan_in), weight.shape))
    return model


def build_detector(name):
    keras.utils.set_random_seed(0)
    return spread_detector_weights(build_model(model_config(name, "small")))


@pytest.fixture(scope="module")
def faster_rcnn():
    return build_detector("faster_rcnn")


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(1).uniform(0, 1, (2, IMAGE_SIDE, IMAGE_SIDE, 3)).astype(
        np.float32
    )


def run_in_fresh_process(export_dir, work_dir, images):
    np.save(work_dir / "images.npy", images)
    completed = subprocess.run(
        [sys.executable, "-c", RUN_EXPORT, edge_runtimes.__file__, export_dir, str(work_dir)],
        capture_output=True,
        text=True,
        check=False,  # The assertion shows the child's stderr.
    )
    assert completed.returncode == 0, completed.stderr
    with np.load(work_dir / "results.npz") as results:
        return dict(results)


def assert_detects_like_the_keras_model(model, format, images, tmp_path, box_decodings):
    """Exports `model`, runs it in a fresh process, compares raw and selected detections.

    Tolerances: scores are softmax probabilities of unit-scale logits
    (`float32_output_tolerance`); a box is the proposal's anchor decoded by the RPN's
    deltas, then by each box head's (`box_decodings` decodings in all), and each
    decoding moves a corner by at most `box_tolerance` image sides (`tests/tolerances`).
    """
    pytest.importorskip(RUNTIMES[format])
    export_dir = export_edge_model(model, tmp_path / "export", format)
    results = run_in_fresh_process(export_dir, tmp_path, images)
    expected = {key: np.asarray(value) for key, value in model(images, training=False).items()}

    metadata = json.loads((tmp_path / "export" / "edge_export.json").read_text())
    assert metadata["detection_outputs"] == "decoded_boxes" and metadata["anchors"] is None
    assert str(results.pop("detection_outputs")) == "decoded_boxes"
    assert not results.pop("has_anchors")
    assert not (tmp_path / "export" / "anchors.npy").exists()
    assert set(results) == set(expected) == {"detection_boxes", "detection_scores"}
    output_tolerance = tolerances.float32_output_tolerance()
    box_tolerance = box_decodings * tolerances.box_tolerance(output_tolerance)
    tolerances.assert_close(
        results["detection_scores"], expected["detection_scores"], output_tolerance, "scores"
    )
    tolerances.assert_close(
        results["detection_boxes"], expected["detection_boxes"], box_tolerance * IMAGE_SIDE,
        "boxes",
    )
    # The final selection (top-k, per-class NMS) keeps the same boxes in the same order.
    selected = numpy_results(decode_outputs(results, model.config))
    reference = numpy_results(decode_outputs(expected, model.config))
    assert reference["num_detections"].min() > 0
    tolerances.assert_close(selected["scores"], reference["scores"], output_tolerance, "scores")
    # decode_outputs gives boxes in image sides.
    tolerances.assert_close(selected["boxes"], reference["boxes"], box_tolerance, "boxes")
    for key in ("classes", "num_detections", "is_defective"):
        np.testing.assert_array_equal(selected[key], reference[key], err_msg=key)


def numpy_results(results):
    return {key: np.asarray(value) for key, value in results.items()}


# Seconds: the CPU time measured on the 2-core machine under a heavy load (wall times
# there were 10 to 20 times longer); conversion dominates.
@pytest.mark.parametrize(
    "format",
    [
        pytest.param("onnx", marks=pytest.mark.slow(seconds=40)),
        pytest.param("litert", marks=[pytest.mark.slow(seconds=30), pytest.mark.extended]),
    ],
)
def test_faster_rcnn_export_detects_like_the_keras_model(format, faster_rcnn, images, tmp_path):
    # Two decodings: anchors to proposals, proposals to boxes.
    assert_detects_like_the_keras_model(faster_rcnn, format, images, tmp_path, box_decodings=2)


@pytest.mark.extended
@pytest.mark.slow(seconds=50)
def test_cascade_rcnn_export_detects_like_the_keras_model(images, tmp_path):
    # Four decodings: the proposals, then each of the three heads' refinement.
    model = build_detector("cascade_rcnn")
    assert_detects_like_the_keras_model(model, "onnx", images, tmp_path, box_decodings=4)


def test_openvino_refuses_them_and_names_the_formats_that_work(faster_rcnn, tmp_path):
    # Its IR keeps other proposals than TensorFlow (see `export_edge_model`).
    with pytest.raises(ValueError, match="FasterRCNN cannot be exported to OpenVINO.*onnx or"):
        export_edge_model(faster_rcnn, tmp_path / "export", "openvino")
    assert not (tmp_path / "export").exists()


def test_int8_is_refused_for_them(faster_rcnn, tmp_path):
    calibration = [np.zeros((1, IMAGE_SIDE, IMAGE_SIDE, 3), np.float32)]
    with pytest.raises(ValueError, match="precision 'int8' is not offered for FasterRCNN"):
        export_edge_model(faster_rcnn, tmp_path / "export", "litert", "int8", calibration)
    assert not (tmp_path / "export").exists()
