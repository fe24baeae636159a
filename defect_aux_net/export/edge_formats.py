"""Exports a Defect-Aux-Net model to ONNX, LiteRT or OpenVINO for line-side runtimes.

Each export is a folder (written whole or not at all) holding the model file, an
`edge_export.json` that says what the graph holds, and `anchors.npy` for models
that detect on anchors. Every format holds the same graph: the Keras model from the
prepared image to its raw outputs.

  input `images`: float32 `[B, H, W, C]` in [0, 1], as `prepare_image` gives it
    (resize to the model's input size, then the config's `input_normalization`).
  outputs (the model's, by name): `classification` `[B, K]` and `segmentation`
    `[B, H, W, K]` probabilities; for one-stage detectors `box_regression`
    `[B, A, 4]` deltas and `box_classification` `[B, A, K]` logits
    (`detection_outputs` "anchor_deltas"); for Faster and Cascade R-CNN, whose graph
    holds the proposals, their NMS, RoIAlign and the box head's decoding,
    `detection_boxes` `[B, R, K or 1, 4]` pixels and `detection_scores` `[B, R, K]`
    (`detection_outputs` "decoded_boxes": `select_detections` keeps the best, no
    anchors involved).

Left to the caller (`edge_runtimes` runs the file; `decode_outputs` decodes):
preprocessing, anchor decoding, the final per-class NMS, thresholds. ONNX and
OpenVINO have an NMS operator, LiteRT none that does per-class NMS (the proposals'
single-class NMS is a loop of builtin ops); `prepare_image` resizes with an
antialiased bilinear filter, which ONNX's Resize has from opset 18 only and
LiteRT's not at all. The same graph everywhere keeps one decoder (and one set of
tolerances) for all three.

| format   | file         | precisions      | runtime                                 |
| -------- | ------------ | --------------- | --------------------------------------- |
| onnx     | model.onnx   | float32         | onnxruntime                             |
| litert   | model.tflite | float32, int8   | ai_edge_litert.interpreter.Interpreter  |
| openvino | model.xml+bin| float32, bfloat16, int8 | openvino.Core (precision hint: below) |

Faster and Cascade R-CNN (`detection_outputs` "decoded_boxes"): onnx and litert,
float32 only; LiteRT runs them without its XNNPACK delegate (`edge_runtimes`), and
OpenVINO is refused (`export_edge_model` says why).

OpenVINO's CPU plugin runs a float32 IR in bfloat16 on CPUs with AVX512_BF16 or
AMX unless told `INFERENCE_PRECISION_HINT=f32`. A "bfloat16" OpenVINO export is the
same float32 IR, marked so in `edge_export.json`: `edge_runtimes` runs it with the bf16
hint where the CPU has bfloat16 instructions (float32 elsewhere) and every other export
with f32. OpenVINO converts the weights once at load time, as a bfloat16 SavedModel
stores them (`export.precision`).

INT8 is post-training quantisation of weights and activations, calibrated on
prepared images (`calibration_images`, e.g. 100-300 from the training split); see
`int8_quantization`.

Example:
```python
export_edge_model(model, "runs/q/export_openvino", "openvino", precision="int8",
                  calibration_images=batches)  # batches: float32 [b, H, W, C] arrays
```
"""

import json
import os
import tempfile

import numpy as np
import tensorflow as tf

from defect_aux_net.atomic_writes import writing_folder
from defect_aux_net.export import int8_quantization
from defect_aux_net.export.edge_runtimes import ANCHOR_DELTAS, DECODED_BOXES, METADATA_FILE
from defect_aux_net.export.precision import with_precision
from defect_aux_net.models.model_builders import model_name

MODEL_FILES = {
    "onnx": ("model.onnx",),
    "litert": ("model.tflite",),
    "openvino": ("model.xml", "model.bin"),
}
PRECISIONS = {
    "onnx": ("float32",),
    "litert": ("float32", "int8"),
    "openvino": ("float32", "bfloat16", "int8"),
}
ANCHORS_FILE = "anchors.npy"
# Supported by tf2onnx 1.17 and by onnxruntime >= 1.13.
ONNX_OPSET = 17
INPUT_NAME = "images"
# The installable extra that brings each format's converter and runtime.
_PACKAGES = {
    "onnx": ("tf2onnx", "onnxruntime"),
    "litert": ("ai_edge_litert",),
    "openvino": ("openvino", "nncf"),
}


def export_edge_model(
    model, export_dir, format: str, precision: str = "float32", calibration_images=None
) -> str:
    """Writes `model` as an ONNX, LiteRT or OpenVINO model folder.

    Args:
      model: a `DefectAuxNet` (any task subset; a `mixed_bfloat16` model is
        exported from a float32 copy with the same weights).
      export_dir: folder to write, which must not exist yet (local or `gs://`).
      format: "onnx", "litert" or "openvino".
      precision: "float32"; for litert and openvino "int8"; for openvino "bfloat16".
      calibration_images: for int8 only: an iterable of float32 `[b, H, W, C]`
        batches in [0, 1], prepared as the model takes them (`prepare_image`).

    Returns:
      `export_dir` as a string.

    Raises:
      ValueError: an unknown format, a precision the format does not offer, or
        calibration images missing, unwanted or of the wrong shape.
      ImportError: the format's packages are not installed (`pip install .[export]`).
      FileExistsError: `export_dir` exists.
    """
    _check_arguments(format, precision, calibration_images)
    if format == "openvino" and detection_outputs(model) == DECODED_BOXES:
        # Checked on the `small` presets (OpenVINO 2026.4): the IR's boxes and scores of
        # the weakest proposals differ from TensorFlow's (boxes by up to 38 pixels, and
        # the detections per-class NMS keeps with them), where ONNX Runtime and LiteRT
        # agree to 2e-5 pixels. The proposal step alone (top-k and
        # `non_max_suppression_padded`) converts exactly with a static batch size, and
        # with the exports' dynamic one its IR does not compile ("Can not create
        # StaticMemory object"): the dynamic batch in the NMS loop is the suspect.
        raise ValueError(
            f"{type(model).__name__} cannot be exported to OpenVINO: OpenVINO's conversion "
            "of its in-graph region proposals (top-k ranking and NMS) keeps other proposals "
            "than TensorFlow does, so its detections would differ. Export it to onnx or "
            "litert, or as a SavedModel."
        )
    if precision == "int8" and detection_outputs(model) == DECODED_BOXES:
        # Its proposal scores would be quantised before top-k and NMS rank them.
        raise ValueError(
            f"precision 'int8' is not offered for {type(model).__name__}: its proposals are "
            "ranked and suppressed inside the graph, on scores INT8 would quantise; export "
            "it in float32."
        )
    export_dir = os.fspath(export_dir)
    if tf.io.gfile.exists(export_dir):
        raise FileExistsError(f"{export_dir} exists already: export to a new folder.")
    if calibration_images is not None:
        calibration_images = int8_quantization.calibration_batches(
            calibration_images, model.config.input_shape
        )
    _require_packages(format)
    model = float32_model(model)
    # Converters write local files only: convert into a local folder, then copy
    # into place whole (gs:// included).
    with tempfile.TemporaryDirectory() as local:
        if format == "onnx":
            _export_onnx(model, os.path.join(local, "model.onnx"))
        elif format == "litert":
            _export_litert(model, os.path.join(local, "model.tflite"), calibration_images)
        else:
            _export_openvino(model, os.path.join(local, "model.xml"), calibration_images)
        with open(os.path.join(local, METADATA_FILE), "w") as file:
            json.dump(_metadata(model, format, precision), file, indent=2)
        if model.anchors is not None:
            np.save(os.path.join(local, ANCHORS_FILE), model.anchors)
        with writing_folder(export_dir) as partial:
            for name in sorted(os.listdir(local)):
                tf.io.gfile.copy(os.path.join(local, name), os.path.join(partial, name))
    return export_dir


def float32_model(model):
    """`model`, or a float32 copy with its weights when any layer computes in another dtype.

    The converters trace the graph as it computes: a `mixed_bfloat16` model would
    trace to bfloat16 arithmetic, while every format here (and INT8 calibration)
    starts from the float32 graph.
    """
    return with_precision(model, "float32")


def _check_arguments(format, precision, calibration_images):
    if format not in PRECISIONS:
        raise ValueError(f"format must be one of {sorted(PRECISIONS)}, got {format!r}.")
    if precision not in PRECISIONS[format]:
        raise ValueError(
            f"precision {precision!r} is not offered for format {format!r}: it takes "
            f"{list(PRECISIONS[format])} (INT8: litert or openvino; bfloat16: openvino or a "
            "SavedModel)."
        )
    if precision == "int8" and calibration_images is None:
        raise ValueError(
            "precision 'int8' needs calibration_images: prepared image batches from the "
            "training split."
        )
    if precision != "int8" and calibration_images is not None:
        raise ValueError(f"calibration_images are for precision 'int8' only, not {precision!r}.")


def _require_packages(format):
    for package in _PACKAGES[format]:
        try:
            __import__(package)
        except ImportError as error:
            raise ImportError(
                f"format {format!r} needs the package {package!r}: "
                'pip install -e ".[export]"'
            ) from error


def _input_signature(model):
    return [tf.TensorSpec((None, *model.config.input_shape), tf.float32, name=INPUT_NAME)]


def _export_onnx(model, path):
    model.export(
        path, format="onnx", input_signature=_input_signature(model),
        opset_version=ONNX_OPSET, verbose=False,
    )


def _export_litert(model, path, calibration_images):
    kwargs = {}
    if calibration_images is not None:
        kwargs = int8_quantization.litert_converter_options(calibration_images)
    model.export(
        path, format="litert", input_signature=_input_signature(model), verbose=False, **kwargs
    )


def _export_openvino(model, path, calibration_images):
    import openvino as ov

    with tempfile.TemporaryDirectory() as local:
        # Keras traces the model into an IR; re-read it to quantise and to save it
        # uncompressed (`ov.save_model` would halve float32 weights to float16).
        traced = os.path.join(local, "traced.xml")
        model.export(
            traced, format="openvino", input_signature=_input_signature(model), verbose=False
        )
        ov_model = ov.Core().read_model(traced)
        if calibration_images is not None:
            ov_model = int8_quantization.quantize_openvino(ov_model, calibration_images)
        ov.save_model(ov_model, path, compress_to_fp16=False)


def detection_outputs(model):
    """`ANCHOR_DELTAS` or `DECODED_BOXES` (`edge_runtimes`): what the detection outputs are."""
    if "detection" not in model.config.tasks:
        return None
    return ANCHOR_DELTAS if model.anchors is not None else DECODED_BOXES


def _metadata(model, format, precision):
    detection = detection_outputs(model)
    in_graph, outside_graph = ["model"], ["preprocessing (prepare_image)"]
    if detection == DECODED_BOXES:
        in_graph += ["region proposals and their NMS", "RoIAlign", "box decoding"]
        outside_graph += ["per-class NMS of the decoded boxes (select_detections)"]
    elif detection == ANCHOR_DELTAS:
        outside_graph += ["detection decoding and NMS"]
    return {
        "format": format,
        "precision": precision,
        "model_files": list(MODEL_FILES[format]),
        "input": {"name": INPUT_NAME, "shape": [None, *model.config.input_shape],
                  "dtype": "float32", "range": [0.0, 1.0]},
        "outputs": {name: [None, *output.shape[1:]] for name, output in model.output.items()},
        "in_graph": in_graph,
        "outside_graph": outside_graph + ["thresholds"],
        "detection_outputs": detection,
        "anchors": ANCHORS_FILE if detection == ANCHOR_DELTAS else None,
        "model_name": model_name(model.config),
        "config": model.config.to_dict(),
    }
