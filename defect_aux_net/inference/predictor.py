"""`Predictor`: a trained model's predictions on images, in Python.

Example:
```python
from defect_aux_net import Predictor

predictor = Predictor.load("runs/quickstart")  # its latest export
for prediction in predictor(["part_1.png", pixels, pil_image]):
    print(prediction.is_defective, prediction.probabilities, prediction.labels)
predictor.draw("part_1.png", prediction).save("overlay.png")
```
"""

import dataclasses
import os
from typing import Iterator

import numpy as np
import tensorflow as tf
from PIL import Image

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.data.preprocessing import convert_channels
from defect_aux_net.inference import image_inputs
from defect_aux_net.inference.image_inputs import ImageInputError
from defect_aux_net.inference.model_loading import ServingFunctions, load_serving_functions
from defect_aux_net.inference.postprocessing import MASK_THRESHOLD, valid_detections
from defect_aux_net.visualization.overlays import binary_masks, draw_overlay

DEFAULT_SCORE_THRESHOLD = 0.3


@dataclasses.dataclass(frozen=True, eq=False)
class Prediction:
    """One image's prediction, at the image's own size.

    Attributes:
      is_defective: the model's decision: its image rule on `image_score` when the run
        chose one, else its per-class thresholds (see `postprocessing`; masks count at
        `MASK_THRESHOLD` there, whatever the predictor's `mask_threshold`).
      probabilities: class name -> defect probability; None without classification.
      masks: uint8 `[H, W, K]`, 1 where the class's mask probability is >= the
        predictor's `mask_threshold`; None without segmentation.
      boxes: float32 `[N, 4]` `ymin, xmin, ymax, xmax` in the image's pixels (edges,
        not pixel centres), the detections scoring >= the predictor's
        `score_threshold`, best first; None without detection.
      scores: float32 `[N]` their scores; None without detection.
      labels: their N class names; None without detection.
      image_score: how defective the image looks, to rank images (`postprocessing`'s
        `image_score`); None from exports made before it.
    """

    is_defective: bool
    probabilities: dict | None
    masks: np.ndarray | None
    boxes: np.ndarray | None
    scores: np.ndarray | None
    labels: tuple | None
    image_score: float | None = None


@dataclasses.dataclass(frozen=True, eq=False)
class FileResult:
    """What became of one input: its `prediction` and decoded `image` (`[H, W, C]`), or
    the `error` that kept it from being predicted.

    `name` is the file's path, or `image <i>` for the i-th array or PIL image.
    """

    name: str
    prediction: Prediction | None = None
    image: np.ndarray | None = None
    error: str | None = None


class Predictor:
    """Predicts defects in images of any size with a trained model.

    Args:
      functions: the model's `ServingFunctions` (`Predictor.load` finds them).
      mask_threshold: mask probability from which a pixel is on in `masks`.
      score_threshold: detections scoring at least this are kept in `boxes`.
      batch_size: images per model call.

    Raises:
      ConfigError: naming the argument (`mask_threshold`, ...) whose value is out of range.
    """

    def __init__(
        self,
        functions: ServingFunctions,
        mask_threshold: float = MASK_THRESHOLD,
        score_threshold: float = DEFAULT_SCORE_THRESHOLD,
        batch_size: int = 8,
    ):
        thresholds = {"mask_threshold": mask_threshold, "score_threshold": score_threshold}
        for name, value in thresholds.items():
            if not 0 <= value <= 1:
                raise ConfigError(name, f"{name} must be in [0, 1], got {value!r}.")
        if batch_size < 1:
            raise ConfigError("batch_size", f"batch_size must be at least 1, got {batch_size!r}.")
        self.functions = functions
        self.mask_threshold = mask_threshold
        self.score_threshold = score_threshold
        self.batch_size = batch_size

    @classmethod
    def load(cls, path, class_names=None, precision=None, **kwargs) -> "Predictor":
        """The predictor of a run folder, an export or a `.keras` file (see
        `load_serving_functions`, also for `precision="bfloat16"`); `kwargs` are the
        constructor's."""
        return cls(load_serving_functions(path, class_names, precision), **kwargs)

    @property
    def class_names(self) -> tuple:
        return self.functions.class_names

    def __call__(self, images) -> list:
        """One `Prediction` per image of `images`: file paths, numpy arrays or PIL images.

        Raises:
          ValueError: naming the first image that cannot be predicted, and why.
        """
        if isinstance(images, np.ndarray) and images.ndim == 4:
            images = list(images)  # A batch of same-sized images.
        elif isinstance(images, (str, os.PathLike, np.ndarray, Image.Image)):
            images = [images]
        predictions = []
        for result in self.predict_each(images):
            if result.error is not None:
                raise ValueError(f"Cannot predict {result.name}: {result.error}.")
            predictions.append(result.prediction)
        return predictions

    def predict_files(self, paths) -> Iterator[FileResult]:
        """Yields a `FileResult` per path, in order: a file that cannot be read, decoded or
        judged (an output NaN or inf) is an `error`, never a prediction."""
        return self.predict_each(paths)

    def predict_each(self, images) -> Iterator[FileResult]:
        """As `predict_files`, for paths, numpy arrays and PIL images mixed."""
        images = list(images)
        for start in range(0, len(images), self.batch_size):
            yield from self._predict_batch(images[start : start + self.batch_size], start)

    def draw(self, image, prediction: Prediction) -> Image.Image:
        """The RGB overlay of `prediction` over `image` (a path, array or PIL image)."""
        pixels = _pixels(image)
        height, width = pixels.shape[:2]
        boxes = {}
        if prediction.boxes is not None:
            index = {name: i for i, name in enumerate(self.class_names)}
            boxes = dict(
                boxes=prediction.boxes / np.array([height, width, height, width], np.float32),
                scores=prediction.scores,
                classes=[index[label] for label in prediction.labels],
            )
        return draw_overlay(
            image_inputs.drawable(pixels),
            masks=prediction.masks,
            class_names=self.class_names,
            **boxes,
        )

    def _predict_batch(self, batch, start) -> list:
        items = [_Item.of(image, start + offset) for offset, image in enumerate(batch)]
        readable = [item for item in items if item.error is None]
        encoded = [item for item in readable if item.data is not None]
        self._serve(encoded, self.functions.serve_bytes, [item.data for item in encoded])
        by_size = {}
        for item in readable:
            if item.data is None:
                by_size.setdefault(item.pixels.shape, []).append(item)
        for group in by_size.values():
            self._serve(group, self.functions.serve_float, [self._float(item) for item in group])
        return [self._result(item) for item in items]

    def _float(self, item):
        pixels = item.pixels.astype(np.float32)
        return np.asarray(convert_channels(pixels, self.functions.channels))

    def _serve(self, items, serve, inputs):
        """Sets each item's `outputs` (or `error`); a failed batch is retried image by image."""
        if not items:
            return
        try:
            # Encoded images of any sizes are one string tensor; pixels share one size.
            batch = tf.constant(inputs if isinstance(inputs[0], bytes) else np.stack(inputs))
            outputs = serve(batch)
        except tf.errors.OpError as error:
            if len(items) > 1:
                for item, value in zip(items, inputs):
                    self._serve([item], serve, [value])
            elif serve is self.functions.serve_bytes and isinstance(
                error, tf.errors.InvalidArgumentError
            ):
                self._serve_with_pil(items[0], error)
            else:
                items[0].error = f"cannot predict it ({_reason(error)})"
            return
        kept = None
        if "scores" in outputs:
            kept = valid_detections(outputs, self.score_threshold).numpy()
        outputs = {key: np.asarray(value) for key, value in outputs.items()}
        for index, item in enumerate(items):
            item.outputs = {key: value[index] for key, value in outputs.items()}
            if kept is not None:
                item.outputs["kept"] = kept[index]

    def _serve_with_pil(self, item, error):
        """TensorFlow cannot decode `item` (TIFF, 16-bit TIFF): PIL and `serve_float` may."""
        try:
            item.pixels = image_inputs.array_pixels(image_inputs.decode_with_pil(item.data))
        except Exception:  # PIL's decoders raise many types on malformed files.
            item.error = f"cannot decode it ({_reason(error)})"
            return
        self._serve([item], self.functions.serve_float, [self._float(item)])

    def _result(self, item) -> FileResult:
        if item.error is None and item.outputs is not None:
            non_finite = _non_finite_outputs(item.outputs)
            if non_finite:
                # Exports older than serving's own check answer NaN, which fails every
                # threshold comparison: it would read as "not defective".
                names = ", ".join(non_finite)
                item.error = f"the model's {names} hold NaN or inf: it cannot judge it"
        if item.error is not None:
            return FileResult(item.name, error=item.error)
        try:
            pixels = item.pixels
            if pixels is None:
                pixels = image_inputs.array_pixels(image_inputs.decode_image_bytes(item.data))
        except ImageInputError as error:
            return FileResult(item.name, error=str(error))
        return FileResult(item.name, self._prediction(item.outputs, pixels.shape[:2]), pixels)

    def _prediction(self, outputs, size) -> Prediction:
        height, width = size
        probabilities = masks = boxes = scores = labels = None
        if "probabilities" in outputs:
            values = outputs["probabilities"]
            probabilities = {name: float(value) for name, value in zip(self.class_names, values)}
        if "masks" in outputs:
            masks = binary_masks(outputs["masks"], size, self.mask_threshold).astype(np.uint8)
        if "boxes" in outputs:
            kept = outputs["kept"]
            boxes = outputs["boxes"][kept] * np.array([height, width, height, width], np.float32)
            scores = outputs["scores"][kept].astype(np.float32)
            labels = tuple(self.class_names[index] for index in outputs["classes"][kept])
        defective = bool(outputs["is_defective"])
        image_score = float(outputs["image_score"]) if "image_score" in outputs else None
        return Prediction(defective, probabilities, masks, boxes, scores, labels, image_score)


class _Item:
    """One input on its way: bytes of a file or pixels, then outputs or an error."""

    def __init__(self, name, data=None, pixels=None, error=None):
        self.name = name
        self.data = data
        self.pixels = pixels
        self.error = error
        self.outputs = None

    @classmethod
    def of(cls, image, index):
        if isinstance(image, (str, os.PathLike)):
            path = os.fspath(image)
            try:
                return cls(path, data=image_inputs.read_image_file(path))
            except ImageInputError as error:
                return cls(path, error=str(error))
        name = f"image {index}"
        try:
            return cls(name, pixels=_pixels(image))
        except ImageInputError as error:
            return cls(name, error=str(error))


def _pixels(image) -> np.ndarray:
    """`[H, W, C]` pixels of a path, numpy array or PIL image."""
    if isinstance(image, (str, os.PathLike)):
        image = image_inputs.decode_image_bytes(image_inputs.read_image_file(os.fspath(image)))
    elif isinstance(image, Image.Image):
        image = image_inputs.pil_pixels(image)
    return image_inputs.array_pixels(image)


def _non_finite_outputs(outputs: dict) -> list:
    """The names of the floating outputs (numpy arrays) holding NaN or inf."""
    return [
        key
        for key, value in outputs.items()
        if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value))
    ]


def _reason(error) -> str:
    """The cause in a TensorFlow error message, without its graph and node context."""
    # "Graph execution error:", "Detected at node ...:", "<stack traces ...>", the
    # cause, then "\t [[{{node ...}}]]": keep the last line that is none of those.
    lines = [
        line
        for line in error.message.splitlines()
        if line.strip() and not line.startswith((" ", "\t", "<")) and not line.endswith(":")
    ]
    return lines[-1] if lines else error.message.strip()
