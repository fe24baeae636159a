import csv
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from defect_aux_net import DefectAuxNetConfig, build_defect_aux_net
from defect_aux_net.atomic_writes import PARTIAL
from defect_aux_net.detection.box_matching import encode_detection_targets
from defect_aux_net.detection.decoding import decode_detections
from defect_aux_net.training import callbacks as callbacks_module
from defect_aux_net.training.callbacks import (
    CLASS_COLORS,
    MASK_ALPHA,
    ModelCheckpointWrittenWhole,
    PredictionImages,
    StopOnNaN,
    TrainingCurves,
    overlay,
)
from defect_aux_net.visualization.training_curves import read_history, write_training_curves


class PoisonWeightsInSecondEpoch(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            kernel = self.model.layers[0].kernel
            kernel.assign(np.full(kernel.shape, np.nan, np.float32))


class RecordWeights(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.per_epoch = []

    def on_epoch_end(self, epoch, logs=None):
        self.per_epoch.append(self.model.get_weights())


def linear_model():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    return model


def linear_data():
    x = np.arange(16, dtype=np.float32).reshape(8, 2) / 16
    return x, x @ np.array([[1.0], [-2.0]], np.float32) + 0.5


def test_nan_loss_raises_and_keeps_the_backup_of_the_last_good_epoch(tmp_path):
    backup_dir = str(tmp_path / "backup")
    x, y = linear_data()
    model = linear_model()
    recorded = RecordWeights()
    callbacks = [
        keras.callbacks.BackupAndRestore(backup_dir),
        recorded,
        PoisonWeightsInSecondEpoch(),
        StopOnNaN(backup_dir),
    ]
    expected = rf"nan in epoch 2, batch 1 .*{backup_dir} is kept"
    with pytest.raises(FloatingPointError, match=expected):
        model.fit(x, y, batch_size=4, epochs=3, callbacks=callbacks, verbose=0)

    with open(tmp_path / "backup" / "training_metadata.json") as file:
        assert json.load(file) == {"epoch": 1, "batch": 0}
    backed_up = linear_model()
    backed_up.load_weights(tmp_path / "backup" / "latest.weights.h5")
    assert len(recorded.per_epoch) == 1
    for expected, actual in zip(recorded.per_epoch[0], backed_up.get_weights()):
        np.testing.assert_array_equal(actual, expected)

    # The next run resumes after epoch 1 and, ending normally, removes the backup.
    resumed = linear_model().fit(
        x, y, batch_size=4, epochs=3, callbacks=[keras.callbacks.BackupAndRestore(backup_dir)],
        verbose=0,
    )
    assert len(resumed.history["loss"]) == 2
    assert not (tmp_path / "backup").exists()


def test_stopping_gracefully_would_delete_the_backup(tmp_path):
    # Why StopOnNaN raises: Keras' stop_training ends normally and on_train_end
    # removes the BackupAndRestore directory.
    backup_dir = tmp_path / "backup"
    x, y = linear_data()
    callbacks = [
        keras.callbacks.BackupAndRestore(str(backup_dir)),
        PoisonWeightsInSecondEpoch(),
        keras.callbacks.TerminateOnNaN(),
    ]
    history = linear_model().fit(x, y, batch_size=4, epochs=3, callbacks=callbacks, verbose=0)
    assert np.isnan(history.history["loss"][-1])
    assert not backup_dir.exists()


def test_the_best_checkpoint_is_replaced_whole_and_a_killed_save_is_dropped(tmp_path):
    path = tmp_path / "best.keras"
    x, y = linear_data()
    keras.utils.set_random_seed(0)
    checkpoint = ModelCheckpointWrittenWhole(str(path), monitor="loss", save_best_only=True)
    model = linear_model()
    model.fit(x, y, batch_size=4, epochs=1, callbacks=[checkpoint], verbose=0)
    saved = path.read_bytes()
    for expected, actual in zip(model.get_weights(), keras.models.load_model(path).get_weights()):
        np.testing.assert_array_equal(actual, expected)
    # What a save killed half-way leaves; the next epochs do not improve on loss 0.
    (tmp_path / f"best{PARTIAL}checkpoint.keras").write_bytes(saved[:100])
    checkpoint = ModelCheckpointWrittenWhole(
        str(path), monitor="loss", save_best_only=True, initial_value_threshold=0.0
    )
    linear_model().fit(x, y, batch_size=4, epochs=2, callbacks=[checkpoint], verbose=0)
    assert path.read_bytes() == saved
    assert os.listdir(tmp_path) == ["best.keras"]


def test_finite_losses_pass():
    callback = StopOnNaN()
    callback.on_epoch_begin(0)
    callback.on_train_batch_end(0, {"loss": 0.3})
    expected = "inf in epoch 1, batch 4 .*No checkpoint"
    with pytest.raises(FloatingPointError, match=expected) as error:
        callback.on_train_batch_end(3, {"loss": np.float32("inf")})
    # Keras' TerminateOnNaN(raise_error=True) found it; StopOnNaN says where.
    assert isinstance(error.value.__cause__, RuntimeError)


def fit_with_curves(folder, initial_epoch=0, epochs=2):
    """Two steps an epoch with a rate halved each step; returns fit's History."""
    x, y = linear_data()
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    schedule = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=1, decay_rate=0.5)
    model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
    history_path, plot_path = str(folder / "history.csv"), str(folder / "results.png")
    callbacks = [
        TrainingCurves(history_path, plot_path),
        keras.callbacks.CSVLogger(history_path, append=True),
    ]
    return model.fit(
        x, y, batch_size=4, epochs=epochs, initial_epoch=initial_epoch,
        validation_data=(x, y), callbacks=callbacks, verbose=0,
    )


def test_training_curves_log_the_learning_rate_and_draw_every_epoch(tmp_path):
    history = fit_with_curves(tmp_path)
    # The rate after each epoch's last step: 0.1 * 0.5^2 after 2 steps, 0.5^4 after 4.
    expected = [0.1 * 0.5**2, 0.1 * 0.5**4]
    assert history.history["learning_rate"] == pytest.approx(expected, rel=1e-6)
    logged = read_history(str(tmp_path / "history.csv"))
    assert logged["learning_rate"] == pytest.approx(expected, rel=1e-6)

    # A resumed run's picture holds the earlier epochs too: the one history.csv draws.
    fit_with_curves(tmp_path, initial_epoch=2, epochs=3)
    logged = read_history(str(tmp_path / "history.csv"))
    assert logged["epoch"] == [0, 1, 2]
    write_training_curves(logged, str(tmp_path / "from_csv.png"))
    assert (tmp_path / "results.png").read_bytes() == (tmp_path / "from_csv.png").read_bytes()


def test_training_curves_are_drawn_first_then_at_most_every_redraw_seconds_and_at_the_end(
    tmp_path, monkeypatch
):
    drawn = []
    monkeypatch.setattr(
        callbacks_module, "write_training_curves",
        lambda history, path: drawn.append(list(history["epoch"])),
    )
    now = [0.0]
    curves = TrainingCurves(
        str(tmp_path / "history.csv"), str(tmp_path / "results.png"), redraw_seconds=25.0,
        clock=lambda: now[0],
    )
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    curves.set_model(model)
    curves.on_train_begin()
    # Epochs end at 10, 20, 30, 40 and 60 s: drawn at 10 s (the first), 40 s (30 s after),
    # not at 60 s (20 s after), then at the end.
    for epoch, end in enumerate([10.0, 20.0, 30.0, 40.0, 60.0]):
        now[0] = end
        curves.on_epoch_end(epoch, {"loss": 1.0})
    assert drawn == [[0], [0, 1, 2, 3]]
    curves.on_train_end()
    assert drawn == [[0], [0, 1, 2, 3], [0, 1, 2, 3, 4]]
    curves.on_train_end()  # Nothing new: not drawn again.
    assert len(drawn) == 3


def test_a_history_begun_without_the_learning_rate_keeps_its_columns(tmp_path):
    # A run started before the rate was logged: CSVLogger appends under this header.
    (tmp_path / "history.csv").write_text("epoch,loss,val_loss\n0,1.0,2.0\n")
    history = fit_with_curves(tmp_path, initial_epoch=1, epochs=2)
    assert "learning_rate" not in history.history
    with open(tmp_path / "history.csv") as file:
        rows = list(csv.DictReader(file))
    assert None not in rows[1]  # No cell beyond the header.
    assert float(rows[1]["val_loss"]) == pytest.approx(history.history["val_loss"][0])
    assert (tmp_path / "results.png").exists()


def test_overlay_blends_masks_and_draws_boxes_by_class():
    images = np.full((1, 8, 8, 1), 0.5, np.float32)
    masks = np.zeros((1, 8, 8, 2), np.float32)
    masks[0, 5:7, 1:3, 0] = 1
    # A box of class 1 and a padding row, which must not be drawn at (0, 0).
    boxes = np.array([[[0.0, 0.5, 1.0, 1.0], [0, 0, 0, 0]]], np.float32)
    result = overlay(images, masks, boxes, np.array([[1, -1]])).numpy()[0]

    color_0, color_1 = np.array(CLASS_COLORS[0]), np.array(CLASS_COLORS[1])
    expected = np.full((8, 8, 3), 0.5, np.float32)
    expected[5:7, 1:3] = (1 - MASK_ALPHA) * 0.5 + MASK_ALPHA * color_0
    # draw_bounding_boxes puts the edges at int(coordinate * (size - 1)): rows 0 and 7,
    # columns 3 and 7.
    expected[[0, 7], 3:8] = color_1
    expected[:, [3, 7]] = color_1
    np.testing.assert_allclose(result, expected, atol=1e-6)


def read_images(log_dir):
    """(step, [N, H, W, 3] uint8) of every `predictions` image summary under `log_dir`."""
    found = []
    for path in tf.io.gfile.glob(str(log_dir / "images" / "events.out.tfevents.*")):
        for record in tf.data.TFRecordDataset(path):
            event = tf.compat.v1.Event.FromString(record.numpy())
            for value in event.summary.value:
                if value.tag == "predictions":
                    assert value.metadata.plugin_data.plugin_name == "images"
                    # The image plugin stores [width, height, png, png, ...].
                    encoded = tf.make_ndarray(value.tensor)
                    pngs = [tf.io.decode_png(png).numpy() for png in encoded[2:]]
                    found.append((event.step, int(encoded[0]), int(encoded[1]), np.stack(pngs)))
    return found


def test_prediction_images_after_one_epoch(tmp_path):
    # tf.summary.image is implemented in tensorboard, which setup.py does not list yet.
    pytest.importorskip("tensorboard")
    config = DefectAuxNetConfig.from_preset("small", num_classes=2, input_shape=(64, 64, 3))
    model = build_defect_aux_net(config)
    # Eager: tracing this model's training step takes half a minute on 2 cores. A tiny
    # step keeps the class subnet at its prior, so no detection passes the 0.05 score.
    model.compile(optimizer=keras.optimizers.Adam(1e-7), run_eagerly=True)
    rng = np.random.default_rng(0)
    images = rng.random((2, 64, 64, 3)).astype(np.float32)
    masks = np.zeros((2, 64, 64, 2), np.float32)
    masks[0, 40:60, 2:12, 1] = 1
    pixel_box = np.array([[16, 16, 48, 48]], np.float32)
    box_targets, class_targets = encode_detection_targets(pixel_box, np.array([0]), model.anchors)
    targets = {
        "classification": np.array([[1, 1], [0, 0]], np.float32),
        "segmentation": masks,
        "box_regression": np.repeat(np.asarray(box_targets)[None], 2, axis=0),
        "box_classification": np.repeat(np.asarray(class_targets)[None], 2, axis=0),
    }
    boxes = np.array([[[0.25, 0.25, 0.75, 0.75]], [[0, 0, 0, 0]]], np.float32)
    callback = PredictionImages(tmp_path, images, masks, boxes, max_images=4)
    model.fit(images, targets, batch_size=2, epochs=1, callbacks=[callback], verbose=0)

    [(step, width, height, pngs)] = read_images(tmp_path)
    assert (step, width, height) == (0, 128, 64)
    assert pngs.shape == (2, 64, 128, 3)
    truth, predicted = pngs[..., :64, :] / 255.0, pngs[..., 64:, :] / 255.0
    # tf.summary.image converts to uint8 by truncating value * 255.5.
    tolerance = 1 / 255 + 1e-6

    # Left: ground-truth mask of class 1 blended, box of class 0 drawn, the rest untouched.
    blended = (1 - MASK_ALPHA) * images[0, 40:60, 2:12] + MASK_ALPHA * np.array(CLASS_COLORS[1])
    np.testing.assert_allclose(truth[0, 40:60, 2:12], blended, atol=tolerance)
    # Box edges at int(0.25 * 63) = 15 and int(0.75 * 63) = 47.
    box_color = np.array(CLASS_COLORS[0])
    np.testing.assert_allclose(truth[0, 15, 15:48], np.tile(box_color, (33, 1)), atol=tolerance)
    np.testing.assert_allclose(truth[0, 16:47, 47], np.tile(box_color, (31, 1)), atol=tolerance)
    np.testing.assert_allclose(truth[1], images[1], atol=tolerance)

    # Right: the model's own masks; its class prior (0.01) leaves no box above 0.05.
    outputs = model.predict_on_batch(images)
    detections = decode_detections(
        outputs["box_regression"], outputs["box_classification"], model.anchors, (64, 64)
    )
    assert detections["num_detections"].numpy().tolist() == [0, 0]
    expected = images.copy()
    for k in range(2):
        on = outputs["segmentation"][..., k] >= 0.5
        expected[on] = (1 - MASK_ALPHA) * expected[on] + MASK_ALPHA * np.array(CLASS_COLORS[k])
    np.testing.assert_allclose(predicted, expected, atol=tolerance)


def test_prediction_images_reject_mismatched_masks(tmp_path):
    pytest.importorskip("tensorboard")
    with pytest.raises(ValueError, match="masks must be"):
        PredictionImages(tmp_path, np.zeros((2, 8, 8, 3)), masks=np.zeros((2, 4, 4, 1)))
    with pytest.raises(ValueError, match="images must be"):
        PredictionImages(tmp_path, np.zeros((8, 8, 3)))
