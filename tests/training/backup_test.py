import json

import keras
import numpy as np
import pytest

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.training.backup import BackupAndRestoreFromChief
from tests.training.callbacks_test import RecordWeights, linear_data, linear_model


class RecordStartWeights(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights = self.model.get_weights()


def backup_of(model, backup_dir, epochs):
    """Trains `model` for `epochs` and leaves its backup in `backup_dir`, as a kill would."""
    x, y = linear_data()
    backup = keras.callbacks.BackupAndRestore(str(backup_dir), delete_checkpoint=False)
    model.fit(x, y, batch_size=4, epochs=epochs, callbacks=[backup], verbose=0)
    return model.get_weights()


def test_other_workers_resume_from_the_chief_backup_not_their_own(tmp_path):
    chief_dir, own_dir = tmp_path / "backup", tmp_path / "workers" / "1" / "backup"
    keras.utils.set_random_seed(0)
    chief_weights = backup_of(linear_model(), chief_dir, epochs=2)
    # The worker's own backup is an epoch behind: killed before its second save.
    backup_of(linear_model(), own_dir, epochs=1)
    chief_files = {path.name: path.read_bytes() for path in chief_dir.iterdir()}

    x, y = linear_data()
    started = RecordStartWeights()
    history = linear_model().fit(
        x, y, batch_size=4, epochs=3, verbose=0,
        callbacks=[BackupAndRestoreFromChief(str(own_dir), restore_dir=str(chief_dir)), started],
    )
    assert len(history.history["loss"]) == 1  # Epoch 3 only, as the chief resumes.
    for expected, actual in zip(chief_weights, started.weights):
        np.testing.assert_array_equal(actual, expected)
    # The chief's backup is read, never written; the worker's own is removed at the end.
    assert {path.name: path.read_bytes() for path in chief_dir.iterdir()} == chief_files
    assert not own_dir.exists()


def assert_resumes(backup_dir, epochs, trained, weights):
    """A new model fitted for `epochs` with the backup in `backup_dir` starts from
    `weights` and trains `trained` epochs."""
    x, y = linear_data()
    started = RecordStartWeights()
    backup = BackupAndRestoreFromChief(str(backup_dir), str(backup_dir))
    history = linear_model().fit(
        x, y, batch_size=4, epochs=epochs, callbacks=[backup, started], verbose=0
    )
    assert len(history.history["loss"]) == trained
    for expected, actual in zip(weights, started.weights, strict=True):
        np.testing.assert_array_equal(actual, expected)


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_backup_truncated_by_a_kill_resumes_from_the_previous_one(tmp_path):
    backup_dir = tmp_path / "backup"
    x, y = linear_data()
    keras.utils.set_random_seed(0)
    recorded = RecordWeights()
    backup = BackupAndRestoreFromChief(str(backup_dir), str(backup_dir), delete_checkpoint=False)
    linear_model().fit(x, y, batch_size=4, epochs=2, callbacks=[backup, recorded], verbose=0)
    # A kill while epoch 2's backup was written: half of its weights file.
    truncate(backup_dir / "latest.weights.h5")

    # Epochs 2 and 3, from epoch 1's backup.
    assert_resumes(backup_dir, epochs=3, trained=2, weights=recorded.per_epoch[0])


def test_a_run_killed_after_its_last_epoch_resumes_with_nothing_to_train(tmp_path):
    # run_training keeps the chief's backup until the run is complete: a rerun after a
    # kill during export or test metrics trains no epoch again.
    backup_dir = tmp_path / "backup"
    x, y = linear_data()
    model = linear_model()
    backup = BackupAndRestoreFromChief(str(backup_dir), str(backup_dir), delete_checkpoint=False)
    model.fit(x, y, batch_size=4, epochs=2, callbacks=[backup], verbose=0)

    started = RecordStartWeights()
    backup = BackupAndRestoreFromChief(str(backup_dir), str(backup_dir), delete_checkpoint=False)
    history = linear_model().fit(
        x, y, batch_size=4, epochs=2, callbacks=[backup, started], verbose=0
    )
    assert history.history == {}
    for expected, actual in zip(model.get_weights(), started.weights):
        np.testing.assert_array_equal(actual, expected)


def test_a_backup_broken_beyond_repair_is_named(tmp_path):
    backup_dir = tmp_path / "backup"
    x, y = linear_data()
    backup = BackupAndRestoreFromChief(str(backup_dir), str(backup_dir), delete_checkpoint=False)
    linear_model().fit(x, y, batch_size=4, epochs=2, callbacks=[backup], verbose=0)
    truncate(backup_dir / "latest.weights.h5")
    (backup_dir / "training_metadata.json.bkp").write_text('{"epo')

    backup = BackupAndRestoreFromChief(str(backup_dir), str(backup_dir))
    expected = (
        rf"backup in {backup_dir} cannot be restored: {backup_dir}/latest.weights.h5 .*"
        rf"{backup_dir}/training_metadata.json.bkp: .*rerun it with overwrite=True"
    )
    with pytest.raises(ConfigError, match=expected) as error:
        linear_model().fit(x, y, batch_size=4, epochs=3, callbacks=[backup], verbose=0)
    assert error.value.field == "overwrite" and "--" not in str(error.value)


class RecordBackupEpochs(keras.callbacks.Callback):
    """The epoch in the backup's metadata after each epoch (None: no backup yet)."""

    def __init__(self, backup_dir):
        super().__init__()
        self.metadata = backup_dir / "training_metadata.json"
        self.per_epoch = []

    def on_epoch_end(self, epoch, logs=None):
        exists = self.metadata.exists()
        self.per_epoch.append(json.loads(self.metadata.read_text())["epoch"] if exists else None)


def test_backups_are_written_every_min_steps_and_when_training_ends(tmp_path):
    backup_dir = tmp_path / "backup"
    x, y = linear_data()  # 8 examples: 2 steps of 4 per epoch.
    backup = BackupAndRestoreFromChief(
        str(backup_dir), str(backup_dir), min_steps=5, delete_checkpoint=False
    )
    recorded, weights = RecordBackupEpochs(backup_dir), RecordWeights()
    model = linear_model()
    # Callbacks run in order: the record sees each epoch's backup, if one was written.
    model.fit(x, y, batch_size=4, epochs=5, callbacks=[backup, recorded, weights], verbose=0)
    # 6 steps after epoch 3 (>= 5); epochs 4 and 5 (4 steps) are saved when training ends.
    assert recorded.per_epoch == [None, None, 3, 3, 3]
    assert json.loads((backup_dir / "training_metadata.json").read_text())["epoch"] == 5
    assert json.loads((backup_dir / "training_metadata.json.bkp").read_text())["epoch"] == 3
    restored = linear_model()
    restored.load_weights(backup_dir / "latest.weights.h5")
    for expected, actual in zip(weights.per_epoch[-1], restored.get_weights()):
        np.testing.assert_array_equal(actual, expected)


class FailingSave(Exception):
    pass


def test_a_kill_between_keeping_the_previous_backup_and_writing_the_next_resumes_it(tmp_path):
    # The state a kill leaves after the previous backup was renamed to *.bkp and the
    # latest metadata removed, before the new weights are in place.
    backup_dir = tmp_path / "backup"
    x, y = linear_data()
    keras.utils.set_random_seed(0)
    recorded = RecordWeights()
    backup = BackupAndRestoreFromChief(str(backup_dir), str(backup_dir), delete_checkpoint=False)
    model = linear_model()
    model.fit(x, y, batch_size=4, epochs=2, callbacks=[backup, recorded], verbose=0)

    def fail(*args, **kwargs):
        raise FailingSave()

    model.save_weights = fail
    backup = BackupAndRestoreFromChief(str(backup_dir), str(backup_dir), delete_checkpoint=False)
    with pytest.raises(FailingSave):
        model.fit(x, y, batch_size=4, epochs=4, callbacks=[backup], verbose=0)
    assert sorted(path.name for path in backup_dir.iterdir()) == [
        "latest.weights.h5.bkp", "training_metadata.json.bkp"
    ]

    # Epochs 3 and 4, from epoch 2's backup.
    assert_resumes(backup_dir, epochs=4, trained=2, weights=recorded.per_epoch[1])


def test_weights_without_metadata_are_a_backup_never_completed(tmp_path):
    # A kill during the first backup's weights: nothing to resume, training starts afresh.
    backup_dir = tmp_path / "backup"
    backup_dir.mkdir()
    (backup_dir / "latest.weights.h5").write_bytes(b"\x89HDF\r\n")
    x, y = linear_data()
    backup = BackupAndRestoreFromChief(str(backup_dir), str(backup_dir))
    history = linear_model().fit(x, y, batch_size=4, epochs=2, callbacks=[backup], verbose=0)
    assert len(history.history["loss"]) == 2
