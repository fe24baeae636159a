"""Training callbacks: stop on a NaN loss keeping the backup (`training.backup`), a
best-model checkpoint written whole, the training curves with the learning rate, and
prediction images."""

import functools
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from defect_aux_net.atomic_writes import PARTIAL
from defect_aux_net.inference.postprocessing import (
    MASK_THRESHOLD,
    decode_outputs,
    valid_detections,
)
from defect_aux_net.visualization.overlays import MASK_ALPHA, OKABE_ITO
from defect_aux_net.visualization.training_curves import (
    LEARNING_RATE,
    read_history,
    write_training_curves,
)

# The prediction overlays' palette, as RGB in [0, 1] for TF image ops.
CLASS_COLORS = tuple(tuple(channel / 255 for channel in color) for color in OKABE_ITO)
IMAGE_TAG = "predictions"


class StopOnNaN(keras.callbacks.TerminateOnNaN):
    """`keras.callbacks.TerminateOnNaN(raise_error=True)` that says where, and what is kept.

    Raising, not Keras' default `stop_training`, skips `on_train_end`, where
    `keras.callbacks.BackupAndRestore` deletes its backup: the state of the last
    completed epoch stays on disk, and the next run with the same backup directory
    resumes from it. Keras' `RuntimeError` names the batch of the epoch only; this one
    is a `FloatingPointError` (chained to it) naming the epoch and batch as Keras
    prints them, the backup kept and what to try.

    Args:
      checkpoint_dir: the backup/checkpoint directory to name in the error.
    """

    def __init__(self, checkpoint_dir: str | None = None):
        super().__init__(raise_error=True)
        self.checkpoint_dir = checkpoint_dir
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_batch_end(self, batch, logs=None):
        try:
            super().on_batch_end(batch, logs)
        except RuntimeError as error:
            kept = (
                f"The last good checkpoint in {self.checkpoint_dir} is kept; rerunning "
                "with it resumes from there."
                if self.checkpoint_dir
                else "No checkpoint directory was given to StopOnNaN."
            )
            raise FloatingPointError(
                f"Training loss is {float(logs['loss'])} in epoch {self._epoch + 1}, batch "
                f"{batch + 1} (counted from 1, as Keras prints them): training stopped. "
                f"{kept} Lower the learning rate or check the data of this epoch."
            ) from error


class ModelCheckpointWrittenWhole(keras.callbacks.ModelCheckpoint):
    """`ModelCheckpoint` that writes beside `filepath` and renames into place.

    A kill while saving then leaves the previous best model, not a truncated one.

    Args:
      filepath: the `.keras` file to keep the model in.
      **kwargs: passed to `keras.callbacks.ModelCheckpoint`.
    """

    def __init__(self, filepath: str, **kwargs):
        stem = filepath[: -len(".keras")]
        super().__init__(f"{stem}{PARTIAL}checkpoint.keras", **kwargs)
        self.target = filepath

    def on_train_begin(self, logs=None):
        if tf.io.gfile.exists(self.filepath):  # What a killed save left.
            tf.io.gfile.remove(self.filepath)
        super().on_train_begin(logs)

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if tf.io.gfile.exists(self.filepath):  # Saved: a better model this epoch.
            tf.io.gfile.rename(self.filepath, self.target, overwrite=True)


class TrainingCurves(keras.callbacks.Callback):
    """Logs the learning rate, and draws the run's curves as epochs end.

    Adds `learning_rate` to each epoch's logs: the optimizer's rate after the epoch's
    last step, the value Keras' TensorBoard callback shows as `epoch_learning_rate`.
    Callbacks after this one (`CSVLogger`, `fit`'s `History`) record it, so put it
    before `CSVLogger`. Then writes the curves of every epoch so far (earlier runs'
    read from `history_path` when training begins, and drawn then, then this run's) to
    `plot_path`, whole: a kill leaves the previous picture. It draws after the first
    epoch, then after an epoch at most every `redraw_seconds`, and when training ends:
    a drawing takes about 0.3 s, 3 % of a KolektorSDD epoch on 2 cores, time a time
    budget would rather train with.

    A `history_path` begun without a `learning_rate` column (a run started before the
    rate was logged, now resumed) does not get one: `CSVLogger`, appending rows with a
    column more than its header, would shift the columns after it.

    Example:
    ```python
    callbacks = [
        TrainingCurves("runs/q/history.csv", "runs/q/results.png"),
        keras.callbacks.CSVLogger("runs/q/history.csv", append=True),
    ]
    ```

    Args:
      history_path: the run's `history.csv` (it may not exist yet).
      plot_path: the PNG to write (`training_curves.training_curves_figure`).
      redraw_seconds: the least time between two drawings while training.
      clock: seconds, monotonic.
    """

    def __init__(
        self, history_path: str, plot_path: str, redraw_seconds: float = 30.0,
        clock=time.monotonic,
    ):
        super().__init__()
        self.history_path = history_path
        self.plot_path = plot_path
        self.redraw_seconds = redraw_seconds
        self.clock = clock
        self._history = {}
        self._log_rate = True
        self._drawn = None  # The clock at the last drawing of this run's epochs.
        self._undrawn = False

    def on_train_begin(self, logs=None):
        self._history = read_history(self.history_path)
        self._log_rate = not self._history or LEARNING_RATE in self._history
        if not self._log_rate:
            logging.warning(
                "%s was begun without a learning_rate column; this run leaves the learning "
                "rate out of it and of %s.", self.history_path, self.plot_path
            )
        if self._history.get("epoch"):  # Resumed: the picture is there from the start.
            write_training_curves(self._history, self.plot_path)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        if self._log_rate:
            rate = self.model.optimizer.learning_rate
            logs[LEARNING_RATE] = float(keras.ops.convert_to_numpy(rate))
        row = {"epoch": epoch, **logs}
        epochs_before = len(self._history.get("epoch", []))
        for name in set(self._history) | set(row):
            column = self._history.setdefault(name, [math.nan] * epochs_before)
            column.append(float(row.get(name, math.nan)))
        self._undrawn = True
        if self._drawn is None or self.clock() - self._drawn >= self.redraw_seconds:
            self._draw()

    def on_train_end(self, logs=None):
        if self._undrawn:
            self._draw()

    def _draw(self):
        write_training_curves(self._history, self.plot_path)
        self._drawn = self.clock()
        self._undrawn = False


class PredictionImages(keras.callbacks.Callback):
    """Writes TensorBoard images of ground truth and predictions after each epoch.

    Each image is two panels side by side: the input with its ground-truth masks
    and boxes (left) and with the predicted masks (probability >= `MASK_THRESHOLD`)
    and decoded boxes (right), one colour per class (`CLASS_COLORS`). Images go to
    `<log_dir>/images` under the tag `predictions`, one step per epoch. The model
    is a DefectAuxNet (dict outputs, and `anchors` when it detects).

    Example:
    ```python
    images = next(iter(validation.unbatch().batch(4)))[0]
    model.fit(train, callbacks=[PredictionImages("logs/run1", images)])
    ```

    Args:
      log_dir: TensorBoard log directory (the TensorBoard callback's `log_dir`).
      images: float `[N, H, W, C]` model inputs in [0, 1], C 1 or 3.
      masks: optional binary ground-truth masks `[N, H, W, K]`.
      boxes: optional ground-truth boxes `[N, M, 4]`, `ymin, xmin, ymax, xmax`
        normalised to [0, 1]; rows without area (padding) are skipped.
      box_classes: optional int `[N, M]` class of each box (default class 0).
      max_images: at most this many images are shown.
    """

    def __init__(self, log_dir, images, masks=None, boxes=None, box_classes=None, max_images=4):
        super().__init__()
        try:
            import tensorboard  # noqa: F401  (tf.summary.image is implemented there)
        except ImportError as error:
            raise ImportError(
                "PredictionImages needs the tensorboard package: pip install tensorboard"
            ) from error
        images = np.asarray(images, np.float32)[:max_images]
        if images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise ValueError(f"images must be [N, H, W, C] with C 1 or 3, got {images.shape}.")
        count, height, width = images.shape[:3]
        if masks is not None:
            masks = np.asarray(masks, np.float32)[:max_images]
            if masks.ndim != 4 or masks.shape[:3] != (count, height, width):
                raise ValueError(
                    f"masks must be [N, H, W, K] like images {images.shape}, got {masks.shape}."
                )
        if boxes is not None:
            boxes = np.asarray(boxes, np.float32)[:max_images]
            if boxes.ndim != 3 or boxes.shape[0] != count or boxes.shape[-1] != 4:
                raise ValueError(f"boxes must be [N, M, 4] with N={count}, got {boxes.shape}.")
            if box_classes is not None:
                box_classes = np.asarray(box_classes, np.int32)[:max_images]
            if box_classes is not None and box_classes.shape != boxes.shape[:2]:
                raise ValueError(
                    f"box_classes must be [N, M] = {boxes.shape[:2]}, got {box_classes.shape}."
                )
        self.log_dir = log_dir
        self.images = images
        self.masks = masks
        self.boxes = boxes
        self.box_classes = box_classes
        self.max_images = max_images
        self._writer = None
        self._predict = None

    def on_epoch_end(self, epoch, logs=None):
        if self._writer is None:
            self._writer = tf.summary.create_file_writer(os.path.join(self.log_dir, "images"))
        if self._predict is None:
            # The model traced in a function of our own, not `predict_on_batch`: under a
            # multi-worker strategy that is a collective op, and only the chief runs this
            # callback. Eager calls would take 7x as long per epoch.
            self._predict = tf.function(
                functools.partial(self.model, training=False), autograph=False
            )
        config = self.model.config
        # Drawn as they are: a diverged model's NaN outputs are StopOnNaN's to report.
        results = decode_outputs(
            self._predict(self.images),
            config,
            self.model.anchors if "detection" in config.tasks else None,
            check_finite=False,
        )
        boxes = classes = None
        if "boxes" in results:
            # Padding rows zeroed: `overlay` draws no box without area.
            valid = valid_detections(results)
            boxes = tf.where(valid[..., None], results["boxes"], 0.0).numpy()
            classes = results["classes"].numpy()
        truth = overlay(self.images, self.masks, self.boxes, self.box_classes)
        predicted = overlay(self.images, results.get("masks"), boxes, classes)
        with self._writer.as_default():
            tf.summary.image(
                IMAGE_TAG,
                tf.concat([truth, predicted], axis=2),
                step=epoch,
                max_outputs=self.max_images,
            )
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def overlay(images, masks=None, boxes=None, box_classes=None):
    """Blends class-coloured masks and draws class-coloured boxes over images.

    Args:
      images: float `[N, H, W, C]` in [0, 1], C 1 or 3.
      masks: optional float `[N, H, W, K]`; a pixel is on where the value is >=
        `MASK_THRESHOLD`.
        Class k's colour is blended in at `MASK_ALPHA`.
      boxes: optional float `[N, M, 4]` normalised `ymin, xmin, ymax, xmax`; rows
        without area (padding) are not drawn.
      box_classes: optional int `[N, M]` class of each box (default class 0).

    Returns:
      float32 `[N, H, W, 3]` tensor in [0, 1].
    """
    images = tf.convert_to_tensor(images, tf.float32)
    if images.shape[-1] == 1:
        images = tf.image.grayscale_to_rgb(images)
    if masks is not None:
        masks = np.asarray(masks)
        for k in range(masks.shape[-1]):
            color = tf.constant(CLASS_COLORS[k % len(CLASS_COLORS)], tf.float32)
            blended = (1.0 - MASK_ALPHA) * images + MASK_ALPHA * color
            images = tf.where(masks[..., k : k + 1] >= MASK_THRESHOLD, blended, images)
    if boxes is None:
        return images
    boxes = np.asarray(boxes, np.float32)
    box_classes = np.zeros(boxes.shape[:2], int) if box_classes is None else np.asarray(box_classes)
    has_area = (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])
    drawn = []
    for i in range(boxes.shape[0]):
        image = images[i : i + 1]
        # draw_bounding_boxes colours boxes by their index, so draw one class at a time.
        for k in np.unique(box_classes[i][has_area[i]]):
            selected = boxes[i][has_area[i] & (box_classes[i] == k)]
            color = np.array([CLASS_COLORS[k % len(CLASS_COLORS)]], np.float32)
            image = tf.image.draw_bounding_boxes(image, selected[None], color)
        drawn.append(image)
    return tf.concat(drawn, axis=0)
