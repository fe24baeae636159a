"""Runs an ONNX, LiteRT or OpenVINO export (`edge_formats`) with its own runtime.

Imports numpy and the format's runtime only, never TensorFlow or Keras: a line-side
PC needs `onnxruntime`, `ai-edge-litert` or `openvino` and nothing else. The
exported graph starts at the prepared image and ends at the model's raw outputs
(see `edge_formats`); preprocessing, decoding and thresholds are the caller's.

Example:
```python
model = load_edge_model("runs/q/export_onnx")
outputs = model(prepared)  # {"classification": [B, K], "segmentation": ..., ...}
```
"""

import json
import os

import numpy as np

METADATA_FILE = "edge_export.json"
# What an export's detection outputs are (`edge_export.json`'s `detection_outputs`):
# per-anchor deltas and logits that `decode_detections` decodes with `anchors.npy`
# (one-stage detectors), or boxes the graph decoded itself, `detection_boxes` and
# `detection_scores`, that `select_detections` takes as they are (Faster and Cascade
# R-CNN: proposals, their NMS and RoIAlign run inside the graph).
ANCHOR_DELTAS = "anchor_deltas"
DECODED_BOXES = "decoded_boxes"


class EdgeModel:
    """An exported model and its runtime: `model(images)` -> dict of raw outputs.

    Attributes:
      metadata: the export's `edge_export.json` (format, precision, input, outputs,
        what the graph holds, the model config).
      anchors: float32 `[A, 4]` anchors of the detection outputs, or None.
      detection_outputs: `ANCHOR_DELTAS`, `DECODED_BOXES`, or None without detection.
    """

    def __init__(self, export_dir, run, metadata, anchors):
        self.export_dir = export_dir
        self._run = run
        self.metadata = metadata
        self.anchors = anchors
        # Exports written before two-stage detectors were exported had anchors only.
        self.detection_outputs = metadata.get(
            "detection_outputs", ANCHOR_DELTAS if anchors is not None else None
        )

    def __call__(self, images) -> dict:
        """Raw outputs (float32 numpy, keyed by the model's output names) of `images`,
        float32 `[B, H, W, C]` in [0, 1] as `prepare_image` gives them."""
        images = np.ascontiguousarray(images, np.float32)
        expected = tuple(self.metadata["input"]["shape"][1:])
        if images.ndim != 4 or images.shape[1:] != expected:
            raise ValueError(
                f"{self.export_dir} takes prepared images [B, {', '.join(map(str, expected))}]; "
                f"got shape {images.shape}."
            )
        outputs = self._run(images)
        return {name: np.asarray(outputs[name], np.float32) for name in self.metadata["outputs"]}


def load_edge_model(
    export_dir, threads: int = 0, openvino_precision: str | None = None
) -> EdgeModel:
    """Loads an `edge_formats` export folder with its format's runtime.

    Args:
      export_dir: a local folder written by `export_edge_model`.
      threads: CPU threads the runtime may use; 0 for its default.
      openvino_precision: OpenVINO's `INFERENCE_PRECISION_HINT` for the layers
        that are not int8: "f32" or "bf16" (faster where the CPU has AVX512_BF16 or
        AMX). None: the export's own, "bf16" for a "bfloat16" export on a CPU that
        has bfloat16 instructions, "f32" otherwise (`EdgeModel.metadata`'s
        `inference_precision` says which ran).

    Raises:
      FileNotFoundError: no `edge_export.json` in `export_dir`.
      ImportError: the format's runtime is not installed.
    """
    metadata_path = os.path.join(export_dir, METADATA_FILE)
    if not os.path.exists(metadata_path):
        raise FileNotFoundError(
            f"{metadata_path} not found: {export_dir} is not an ONNX/LiteRT/OpenVINO export."
        )
    with open(metadata_path) as file:
        metadata = json.load(file)
    model_path = os.path.join(export_dir, metadata["model_files"][0])
    runners = {"onnx": _onnx_runner, "litert": _litert_runner, "openvino": _openvino_runner}
    if metadata["format"] == "openvino":
        metadata["inference_precision"] = openvino_precision or _openvino_default(metadata)
    run = runners[metadata["format"]](model_path, threads, metadata)
    anchors = None
    if metadata.get("anchors"):
        anchors = np.load(os.path.join(export_dir, metadata["anchors"]))
    return EdgeModel(export_dir, run, metadata, anchors)


def _openvino_default(metadata) -> str:
    if metadata["precision"] != "bfloat16":
        return "f32"
    import openvino

    # Without bfloat16 instructions the plugin would emulate them, slower than float32.
    capabilities = openvino.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return "bf16" if "BF16" in capabilities else "f32"


def _onnx_runner(path, threads, _):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    if threads:
        options.inter_op_num_threads = threads
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]

    def run(images):
        return dict(zip(names, session.run(names, {session.get_inputs()[0].name: images})))

    return run


def _litert_runner(path, threads, metadata):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO
    if metadata.get("detection_outputs") == DECODED_BOXES:
        # XNNPACK (the default delegate) fails to prepare the RoIAlign loop's MEAN over a
        # rank-7 tensor ("failed to delegate MEAN node"): the builtin kernels run it all.
        resolver = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interpreter = Interpreter(
        model_path=path, num_threads=threads or None, experimental_op_resolver_type=resolver
    )
    runner = interpreter.get_signature_runner()
    input_name = interpreter.get_signature_list()["serving_default"]["inputs"][0]
    return lambda images: runner(**{input_name: images})


def _openvino_runner(path, threads, metadata):
    import openvino

    config = {"INFERENCE_PRECISION_HINT": metadata["inference_precision"]}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = openvino.Core().compile_model(path, "CPU", config)
    request = compiled.create_infer_request()

    def run(images):
        results = request.infer({0: images})
        # An output may carry several tensor names (the Keras output's and an op's):
        # any one of them may be the "any" name, so every name maps to its value.
        return {
            name: value for output, value in results.items() for name in output.get_names()
        }

    return run
