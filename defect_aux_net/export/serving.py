"""The serving module: preprocessing, Defect-Aux-Net and decoding in one exported graph.

TF Serving REST requests (`export_saved_model` writes `<model_base_path>/<version>`):

```
POST http://HOST:8501/v1/models/NAME:predict
{"instances": [{"b64": "<base64 of PNG/JPEG/BMP/GIF bytes>"}, ...]}

POST http://HOST:8501/v1/models/NAME:predict
{"signature_name": "serving_float", "instances": [<[H, W, C] nested lists of pixels>, ...]}
```

TF Serving turns a `{"b64": ...}` object into the raw bytes of a string tensor whatever
the input is named (the `_bytes` name suffix only affects how string *outputs* are
encoded). A signature with a single input takes the value itself as each instance;
`{"images": {"b64": ...}}` works too. Encoded images may differ in size within a
request; float images must share one size per request (it is one tensor). Each
instance's answer holds the outputs listed in `ServingModule`.
"""

from typing import Optional, Sequence

import tensorflow as tf

from defect_aux_net.data.preprocessing import prepare_image
from defect_aux_net.inference.postprocessing import DEFAULT_THRESHOLD, ImageRule, decode_outputs
from defect_aux_net.models.empty_batches import call_unless_empty
from defect_aux_net.models.gated_inference import GatedModel
from defect_aux_net.models.model_builders import MODELS

SERVING_DEFAULT = "serving_default"
SERVING_FLOAT = "serving_float"
SERVING_GATED = "serving_gated"
SERVING_GATED_THRESHOLD = "serving_gated_threshold"


class ServingModule(tf.Module):
    """Serving signatures of a Defect-Aux-Net model, with preprocessing inside the graph.

    Images are prepared with `prepare_image`, the function the input pipeline trains
    on, so a served image sees exactly what training images saw. Outputs: the
    results of `postprocessing.decode_outputs` (only those of the model's tasks, plus
    `image_score` and `is_defective`: `probabilities`, `masks`, `boxes` in [0, 1] of
    the image, `scores`, `classes`, `num_detections`), and

      class_names: string `[B, K]`, the class names (the same row for every image), so
        that a client needs no side file. `[B, K]` rather than `[K]`: TF Serving's
        REST `instances` (row) format answers one object per image and refuses a
        signature whose outputs differ in their first dimension ("has inconsistent
        batch size"); a `[K]` output would fail whenever B != K.
      gate_passed: bool `[B]`, gated signatures only: whether the image went
        through the heads after the gate (see `GatedModel`: Defect-Aux-Net's
        segmentation and detection heads, Faster R-CNN's RPN and box head);
        the others have all-zero masks and no detections.

    The thresholds live in variables, so they are saved with the model and can be
    read (and assigned) after `tf.saved_model.load`. Models that support gated
    inference (a classification head and another head: Defect-Aux-Net with two tasks
    or more, Faster R-CNN with the gasket paper's gate) also get the gated
    signatures, which skip the other heads for images whose highest class
    probability is below the gate threshold: by default the lowest per-class
    threshold, so that every image `is_defective` would flag goes through. With an
    image rule, the fused score of a stopped image holds its classifier part only.

    Example:
    ```python
    module = ServingModule(model, ["scratch", "pit"], thresholds=[0.4, 0.6])
    outputs = module.serve_bytes(tf.constant([png_bytes]))
    tf.saved_model.save(module, export_dir, signatures=module.signatures())
    ```

    Args:
      model: a model of `model_builders.MODELS` (any task subset; any dtype policy).
      class_names: the K class names, in the model's class order.
      thresholds: K per-class decision thresholds in [0, 1] (chosen on the
        validation split); None for 0.5 each.
      max_detections: boxes kept per image.
      score_threshold: minimum detection score.
      iou_threshold: per-class NMS overlap threshold.
      image_rule: the `postprocessing.ImageRule` chosen on the validation split that
        decides `is_defective` on the fused image score; None for the per-class rule.

    Attributes:
      model: the model (not saved: its variables are, as `model_variables`).
      model_variables: the model's variables, the only part of it the SavedModel holds.
      class_names: string variable `[K]`.
      thresholds: float32 variable `[K]`.
      image_size: int32 variable `[2]`, the model input `(height, width)`.
      channels: int32 variable, the model input channels.
      gate_threshold: float32 variable, the gated signatures' default threshold.
      image_weights: float32 variable `[3]`, the image rule's weights in
        `postprocessing.IMAGE_SOURCES` order (with an image rule only).
      image_threshold: float32 variable, the image rule's threshold (with one only).
      serve_bytes: `tf.function` taking `images`, string `[B]` encoded PNG, JPEG, BMP
        or GIF (first frame) images of any size and 1 to 4 channels (alpha is dropped).
      serve_float: `tf.function` taking `images`, float32 `[B, h, w, C]` raw pixel
        values of any range and size.
      serve_gated: as `serve_bytes`, gated at `gate_threshold` (gated models only).
      serve_gated_threshold: as `serve_gated` with a second input,
        `gate_threshold`, float32 `[B]`: each image's own gate threshold.
    """

    def __init__(
        self,
        model,
        class_names: Sequence[str],
        thresholds: Optional[Sequence[float]] = None,
        max_detections: int = 100,
        score_threshold: float = 0.05,
        iou_threshold: float = 0.5,
        image_rule: Optional[ImageRule] = None,
    ):
        super().__init__(name="defect_aux_net_serving")
        config = getattr(model, "config", None)
        if type(model) not in {entry.model_class for entry in MODELS.values()}:
            raise ValueError(
                f"model must be one of the library's models ({', '.join(MODELS)}), got "
                f"{type(model).__name__}."
            )
        num_classes = config.num_classes
        if isinstance(class_names, str) or len(class_names) != num_classes or not all(
            isinstance(name, str) for name in class_names
        ):
            raise ValueError(
                f"class_names must be {num_classes} strings (the model's classes, in "
                f"order), got {class_names!r}."
            )
        if thresholds is None:
            thresholds = [DEFAULT_THRESHOLD] * num_classes
        thresholds = [float(value) for value in thresholds]
        if len(thresholds) != num_classes or not all(0 <= t <= 1 for t in thresholds):
            raise ValueError(
                f"thresholds must be {num_classes} values in [0, 1] (one per class), "
                f"got {thresholds!r}."
            )
        if max_detections < 1:
            raise ValueError(f"max_detections must be >= 1, got {max_detections!r}.")
        for name, value in (("score_threshold", score_threshold), ("iou_threshold", iou_threshold)):
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}.")

        # The model is held out of the SavedModel's object graph and its variables are
        # tracked instead (as Keras' `ExportArchive` does): tracking the model would also
        # save its optimizer (moments, averaged weights), which serving never reads.
        object.__setattr__(self, "model", model)
        self.model_variables = list(model.variables)
        self.class_names = tf.Variable(list(class_names), trainable=False, name="class_names")
        self.thresholds = tf.Variable(
            thresholds, dtype=tf.float32, trainable=False, name="thresholds"
        )
        self.image_size = tf.Variable(
            config.input_shape[:2], dtype=tf.int32, trainable=False, name="image_size"
        )
        self.channels = tf.Variable(
            config.input_shape[2], dtype=tf.int32, trainable=False, name="channels"
        )
        self.gate_threshold = tf.Variable(
            min(thresholds), dtype=tf.float32, trainable=False, name="gate_threshold"
        )
        self._image_rule = None
        if image_rule is not None:
            image_rule.check_tasks(config.tasks)
            # Variables, as the thresholds: saved with the model, readable after loading.
            self.image_weights = tf.Variable(
                image_rule.weights, dtype=tf.float32, trainable=False, name="image_weights"
            )
            self.image_threshold = tf.Variable(
                image_rule.threshold, dtype=tf.float32, trainable=False, name="image_threshold"
            )
            self._image_rule = ImageRule(self.image_weights, self.image_threshold)
        self._config = config
        self._decoding = dict(
            max_detections=max_detections,
            score_threshold=score_threshold,
            iou_threshold=iou_threshold,
        )
        self.serve_bytes = tf.function(
            self._serve_bytes,
            input_signature=[tf.TensorSpec([None], tf.string, name="images")],
        )
        self.serve_float = tf.function(
            self._serve_float,
            input_signature=[
                tf.TensorSpec([None, None, None, config.input_shape[2]], tf.float32, name="images")
            ],
        )

        self._gated = None
        if model.supports_gated_inference:
            self._gated = GatedModel(model)
            images_spec = tf.TensorSpec([None], tf.string, name="images")
            self.serve_gated = tf.function(
                self._serve_gated_at_stored_threshold, input_signature=[images_spec]
            )
            self.serve_gated_threshold = tf.function(
                self._serve_gated,
                input_signature=[
                    images_spec, tf.TensorSpec([None], tf.float32, name="gate_threshold")
                ],
            )

    def signatures(self) -> dict:
        """Returns the SavedModel signatures, keyed by signature name."""
        signatures = {SERVING_DEFAULT: self.serve_bytes, SERVING_FLOAT: self.serve_float}
        if self._gated is not None:
            signatures[SERVING_GATED] = self.serve_gated
            signatures[SERVING_GATED_THRESHOLD] = self.serve_gated_threshold
        return signatures

    def _serve_bytes(self, images):
        return self._predict(self._decode_images(images))

    def _serve_gated_at_stored_threshold(self, images):
        return self._serve_gated(images, self.gate_threshold)

    def _serve_gated(self, images, gate_threshold):
        outputs = self._gated(self._decode_images(images), gate_threshold)
        return self._results(outputs) | {"gate_passed": outputs["gate_passed"]}

    def _decode_images(self, images):
        return prepare_encoded_images(images, self._config)

    def _serve_float(self, images):
        return self._predict(prepare_pixel_images(images, self._config))

    def _predict(self, images):
        return self._results(call_unless_empty(self.model, images, tf.shape(images)[0]))

    def _results(self, outputs):
        """The model's outputs -> the serving outputs (`decode_outputs`, `class_names`).

        Raises InvalidArgumentError (an error response in TF Serving) when an output is
        not finite (e.g. NaN weights), rather than answering "not defective".
        """
        results = decode_outputs(
            outputs,
            self._config,
            self.model.anchors,
            self.thresholds,
            image_rule=self._image_rule,
            **self._decoding,
        )
        batch_size = tf.shape(results["is_defective"])[0]
        results["class_names"] = tf.tile(self.class_names[None], [batch_size, 1])
        return results


def prepare_encoded_images(images, config):
    """float32 `[B, H, W, C]` model inputs of string `[B]` encoded images of any sizes.

    PNG, JPEG, BMP or GIF (first frame), 1 to 4 channels (alpha is dropped), decoded to
    uint8 as the TFDS images the model trained on. An undecodable string raises
    InvalidArgumentError, which TF Serving returns as an error response.
    """
    height, width, channels = config.input_shape

    def decode_and_prepare(encoded):
        image = tf.io.decode_image(encoded, expand_animations=False)

        def prepare(source_channels):
            # Alpha carries no surface information: keep grey or colour only.
            source = tf.ensure_shape(image[..., :source_channels], [None, None, source_channels])
            return prepare_image(
                source, (height, width), channels, config.resolved_input_normalization
            )

        return tf.cond(tf.shape(image)[-1] >= 3, lambda: prepare(3), lambda: prepare(1))

    return tf.map_fn(
        decode_and_prepare,
        images,
        fn_output_signature=tf.TensorSpec(config.input_shape, tf.float32),
    )


def prepare_pixel_images(images, config):
    """float32 `[B, H, W, C]` model inputs of float32 `[B, h, w, C]` raw pixel values.

    Raises InvalidArgumentError when a pixel is NaN or infinite: it would make every
    probability NaN and every comparison with a threshold false, and "could not judge"
    must not read as "defect-free".
    """
    images = tf.debugging.assert_all_finite(
        images, "serving_float input `images` holds NaN or infinite pixel values"
    )
    height, width, channels = config.input_shape
    return tf.map_fn(
        lambda image: prepare_image(
            image, (height, width), channels, config.resolved_input_normalization
        ),
        images,
        fn_output_signature=tf.TensorSpec(config.input_shape, tf.float32),
    )
