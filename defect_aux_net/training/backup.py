"""The training backup: the state a killed or preempted run resumes from."""

import json
import os
import tempfile

import keras
import tensorflow as tf
from absl import logging

from defect_aux_net.atomic_writes import write_json
from defect_aux_net.config_errors import ConfigError


class BackupAndRestoreFromChief(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that backs up every `min_steps` steps, survives a kill during its
    save, and resumes every worker of a multi-worker run from the chief's backup.

    A backup is written at the end of the first epoch at least `min_steps` training steps
    after the previous one, and when training ends. Keras writes one every epoch: on
    KolektorSDD (9 steps per epoch) that was 141 MB of weights and Adam moments every
    20 s, 18.6 GB in 60 epochs, and the process sat idle once the disk throttled.
    A kill loses at most the steps since the last backup.

    The previous backup is kept as `*.bkp`, renamed, not copied as Keras'
    `double_checkpoint` does (which reads and writes the whole file again). The order of
    the writes keeps each pair (weights, metadata) consistent: the metadata, written
    last, is removed before its weights are rewritten. On `on_train_begin` the latest
    pair is restored, the previous one if any file of the latest cannot be read, and the
    broken files are named when neither can be; without any metadata no backup was
    completed and training starts afresh.

    Every worker saves its backup at the same steps (saving reads variables that the
    workers reduce together, so all must take part), each to its own `backup_dir`.
    A kill can land between the chief's save and another worker's; if each worker then
    resumed from its own backup, they would start at different epochs and wait on each
    other's collectives for good. Restoring every worker from the chief's backup gives
    them all the same epoch and weights (identical on all workers after each step).
    On the chief, and in a run on one machine, `restore_dir` is `backup_dir`.

    Args:
      backup_dir: where this worker writes its backup.
      restore_dir: the chief's `backup_dir`, read once when training begins.
      min_steps: training steps at least between two backups (1: every epoch).
      **kwargs: passed to `keras.callbacks.BackupAndRestore` (leave `save_freq` at
        "epoch": `min_steps` spaces the backups).
    """

    def __init__(self, backup_dir: str, restore_dir: str, min_steps: int = 1, **kwargs):
        if min_steps < 1:
            raise ValueError(f"min_steps must be >= 1, got {min_steps}.")
        super().__init__(backup_dir, **kwargs)
        self.restore_dir = restore_dir
        self.min_steps = min_steps
        self._steps_unsaved = 0

    def on_train_begin(self, logs=None):
        self._steps_unsaved = 0
        weights = os.path.join(self.restore_dir, os.path.basename(self._weights_path))
        metadata = os.path.join(self.restore_dir, os.path.basename(self._training_metadata_path))
        if not any(tf.io.gfile.exists(metadata + suffix) for suffix in ("", ".bkp")):
            return  # Nothing to resume: a new run, or one killed in its first backup.
        errors = []
        for suffix in ("", ".bkp"):  # The latest backup, then the previous one.
            try:
                self._restore(weights + suffix, metadata + suffix)
                if suffix:
                    logging.warning(
                        "The latest backup in %s cannot be read (%s); resumed from the "
                        "previous one.", self.restore_dir, errors[0]
                    )
                return
            except Exception as error:  # h5py, JSON and missing-file errors alike.
                errors.append(f"{weights + suffix} or {metadata + suffix}: {error}")
        # What to change is run_training's `overwrite`, the one way past a broken backup.
        raise ConfigError(
            "overwrite",
            f"The training backup in {self.restore_dir} cannot be restored: "
            f"{'; '.join(errors)}. The run cannot resume; rerun it with overwrite=True "
            "to start it afresh.",
        )

    def on_epoch_end(self, epoch, logs=None):
        self._current_epoch = epoch + 1
        # Without a known epoch length, every epoch is long enough.
        self._steps_unsaved += self.params.get("steps") or self.min_steps
        if self._steps_unsaved >= self.min_steps:
            self._save_model()

    def on_train_end(self, logs=None):
        if self._steps_unsaved:  # Epochs since the last backup: a rerun must not redo them.
            self._save_model()
        super().on_train_end(logs)

    def _save_model(self):
        weights, metadata = self._weights_path, self._training_metadata_path
        tf.io.gfile.makedirs(self.backup_dir)
        if tf.io.gfile.exists(metadata):
            tf.io.gfile.copy(metadata, metadata + ".bkp", overwrite=True)
        if tf.io.gfile.exists(weights):
            tf.io.gfile.rename(weights, weights + ".bkp", overwrite=True)
        if tf.io.gfile.exists(metadata):
            tf.io.gfile.remove(metadata)  # Now the .bkp pair; the new one is written last.
        self.model.save_weights(weights, overwrite=True)
        write_json(metadata, {"epoch": self._current_epoch, "batch": 0})
        self._steps_unsaved = 0

    def _restore(self, weights: str, metadata: str):
        """Loads the weights and the epoch reached, as `BackupAndRestore` does."""
        with tf.io.gfile.GFile(metadata) as file:
            epoch = json.loads(file.read())["epoch"]
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        # Keras loads weights only from a `.weights.h5` name, and `restore_dir` may be
        # another worker's: the previous backup is read from a local copy.
        with tempfile.TemporaryDirectory() as folder:
            local = os.path.join(folder, "restored.weights.h5")
            tf.io.gfile.copy(weights, local)
            self.model.load_weights(local)
        self.model._initial_epoch = epoch  # How BackupAndRestore tells `fit` where to start.
