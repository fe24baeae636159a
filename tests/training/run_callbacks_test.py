import dataclasses

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds

from defect_aux_net.data import datasets
from defect_aux_net.experiments import ExperimentConfig
from defect_aux_net.training.backup import BackupAndRestoreFromChief
from defect_aux_net.training.callbacks import ModelCheckpointWrittenWhole, PredictionImages
from defect_aux_net.training.run_callbacks import (
    best_model_checkpoint,
    early_stopping,
    run_callbacks,
    validation_examples,
)
from defect_aux_net.training.training_run import TrainingData
from defect_aux_net.training.weight_average import ValidateOnAveragedWeights
from tests.data.synthetic_fixture import synthetic_small_builder


def test_validation_examples_give_normalised_ground_truth_boxes(tmp_path_factory):
    builder = synthetic_small_builder(tmp_path_factory)
    experiment = ExperimentConfig.from_preset(
        "quickstart", dataset="synthetic_defects/small"
    ).for_classes(datasets.class_names(builder))
    images, masks, boxes, box_classes = validation_examples(builder, experiment, count=4)
    # The image panel draws normalised boxes: the same boxes as the raw TFDS examples.
    raw = tfds.as_numpy(builder.as_dataset(split="validation[:4]", shuffle_files=False))
    for example, image_boxes, classes in zip(raw, boxes.numpy(), box_classes.numpy()):
        # The pipeline orders boxes by area; compare them as sets of (box, class) rows.
        expected = np.column_stack([example["objects"]["bbox"], example["objects"]["label"]])
        padded = np.column_stack([image_boxes, classes])
        actual = padded[classes >= 0]
        np.testing.assert_allclose(
            actual[np.lexsort(actual.T)], expected[np.lexsort(expected.T)], atol=1e-6
        )


@pytest.mark.parametrize("compares, kept_epoch", [(True, 0), (False, 2)])
def test_the_best_model_is_the_lowest_validation_loss_where_losses_compare(
    tmp_path, compares, kept_epoch
):
    # w learns y = 1 (from 0, by 0.1 a step); the validation target is y = -1, so the
    # validation loss rises every epoch: its lowest is the first epoch's.
    model = keras.Sequential(
        [keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mae")
    weights = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: weights.append(float(model.get_weights()[0][0, 0]))
    )
    path = str(tmp_path / "best.keras")
    checkpoint = best_model_checkpoint(path, str(tmp_path / "history.csv"), compares)
    x = np.ones((1, 1), np.float32)
    model.fit(
        x, x, validation_data=(x, -x), epochs=3, callbacks=[record, checkpoint], verbose=0
    )
    np.testing.assert_allclose(weights, [0.1, 0.2, 0.3], rtol=1e-6)
    kept = keras.models.load_model(path).get_weights()[0][0, 0]
    assert kept == pytest.approx(weights[kept_epoch], rel=1e-6)


def test_early_stopping_stops_after_patience_epochs_without_a_lower_validation_loss():
    experiment = ExperimentConfig.from_preset("quickstart", early_stopping_patience=2)
    (callback,) = early_stopping(experiment)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    callback.set_model(model)
    model.stop_training = False
    callback.on_train_begin()
    stopped = []
    for epoch, loss in enumerate([1.0, 0.8, 0.9, 0.85, 0.7]):
        callback.on_epoch_end(epoch, {"val_loss": loss})
        stopped.append(model.stop_training)
    # 0.8 at epoch 1 is the best; epochs 2 and 3 do not beat it: stop after epoch 3.
    assert stopped == [False, False, False, True, True]
    assert early_stopping(ExperimentConfig.from_preset("quickstart")) == []


def test_the_averaged_weights_come_after_the_backup_and_before_the_best_model(
    tmp_path, tmp_path_factory
):
    builder = synthetic_small_builder(tmp_path_factory)
    experiment = ExperimentConfig.from_preset(
        "quickstart", dataset="synthetic_defects/small"
    ).for_classes(datasets.class_names(builder))

    def kinds(experiment):
        data = TrainingData(experiment, builder, datasets.class_names(builder), pass_steps=4)
        callbacks = run_callbacks(data, str(tmp_path), schedule=None, backup_steps=1)
        return [type(callback) for callback in callbacks]

    assert ValidateOnAveragedWeights not in kinds(experiment)
    order = kinds(dataclasses.replace(experiment, ema_momentum=0.99))
    # The backup saves the weights training goes on from; the best model, the curves and
    # the image panel see the average.
    assert (
        order.index(BackupAndRestoreFromChief)
        < order.index(ValidateOnAveragedWeights)
        < order.index(ModelCheckpointWrittenWhole)
        < order.index(PredictionImages)
    )
