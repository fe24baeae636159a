"""Writes a Defect-Aux-Net model as a SavedModel that TF Serving loads as it is."""

import os
from typing import Optional, Sequence

import tensorflow as tf

from defect_aux_net.atomic_writes import writing_folder
from defect_aux_net.export.serving import ServingModule


def export_saved_model(
    model,
    export_dir,
    class_names: Sequence[str],
    thresholds: Optional[Sequence[float]] = None,
    **serving_kwargs,
) -> str:
    """Exports `model` with its serving signatures, preprocessing and decoding.

    Signatures (see `ServingModule` for the outputs and the REST requests):
    `serving_default` takes `images`, a string `[B]` tensor of encoded images;
    `serving_float` takes `images`, float32 `[B, h, w, C]` raw pixel values.
    Models with classification and another task also get `serving_gated`
    (encoded images; the other heads run only on images that pass the stored
    gate threshold) and `serving_gated_threshold` (also `gate_threshold`, float32
    `[B]`). The class names, thresholds and input size are saved as variables,
    readable after `tf.saved_model.load` (`loaded.class_names`, `loaded.thresholds`,
    `loaded.gate_threshold`, `loaded.image_size`, `loaded.channels`; with an image
    rule `loaded.image_weights` and `loaded.image_threshold`).

    Example:
    ```python
    export_saved_model(model, "gs://BUCKET/models/defects/1", ["scratch", "pit"],
                       thresholds=[0.42, 0.61])
    # tensorflow_model_server --rest_api_port=8501 --model_name=defects \
    #   --model_base_path=gs://BUCKET/models/defects
    ```

    Args:
      model: a `DefectAuxNet` (any task subset, float32 or `mixed_bfloat16`).
      export_dir: folder to write, which must not exist yet; for TF Serving,
        `<model_base_path>/<version>` with an integer version
        (`run_files.next_export_dir` gives the next). Local path or `gs://` URL.
      class_names: the K class names, in the model's class order.
      thresholds: K per-class decision thresholds (chosen on the validation split);
        None for 0.5 each.
      **serving_kwargs: `max_detections`, `score_threshold`, `iou_threshold` and
        `image_rule` (the fused image score's, chosen on the validation split) of
        `ServingModule`.

    Returns:
      `export_dir` as a string.

    Raises:
      FileExistsError: when `export_dir` exists (a version is never overwritten).
    """
    return save_serving_module(
        ServingModule(model, class_names, thresholds, **serving_kwargs), export_dir
    )


def save_serving_module(module: ServingModule, export_dir) -> str:
    """Writes `module` as `export_saved_model` does; returns `export_dir` as a string.

    For a caller that builds the `ServingModule` itself: saving traces its signatures,
    so calling them afterwards in this process costs no reload of the SavedModel.
    """
    export_dir = os.fspath(export_dir)
    # Written beside `export_dir` and renamed into place: a killed export leaves no
    # folder that TF Serving or `run_files.latest_export` would take for a version.
    with writing_folder(export_dir) as partial:
        tf.saved_model.save(module, partial, signatures=module.signatures())
    return export_dir
