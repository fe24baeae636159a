"""A process killed (SIGKILL) while it writes its training backup, then resumed."""

import os
import signal
import subprocess
import sys

# Trains a small model for `epochs`; with "kill", SIGKILLs itself while the backup of
# the second epoch is being written (after the first of its weights is in the file).
TRAIN = """
import os, signal, sys
import h5py, keras, numpy as np
from defect_aux_net.training.backup import BackupAndRestoreFromChief

backup_dir, epochs, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]

class KillDuringTheSecondBackup(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch != 1:
            return
        create_dataset = h5py.Group.create_dataset
        def create_and_die(group, *args, **kwargs):
            dataset = create_dataset(group, *args, **kwargs)
            os.kill(os.getpid(), signal.SIGKILL)
        h5py.Group.create_dataset = create_and_die

class PrintEpochs(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        print("epoch", epoch, flush=True)

keras.utils.set_random_seed(0)
x = np.linspace(-1, 1, 32, dtype="float32").reshape(-1, 1)
model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(16), keras.layers.Dense(1)])
model.compile("adam", "mse")
callbacks = [PrintEpochs()]
if mode == "kill":
    callbacks.append(KillDuringTheSecondBackup())  # Before the backup: its save is next.
callbacks.append(BackupAndRestoreFromChief(backup_dir, backup_dir))
model.fit(x, 3 * x, batch_size=8, epochs=epochs, callbacks=callbacks, verbose=0)
print("done", flush=True)
"""


def train(backup_dir, epochs, mode):
    return subprocess.run(
        [sys.executable, "-c", TRAIN, str(backup_dir), str(epochs), mode],
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2"},
    )


def test_a_run_killed_while_writing_its_backup_resumes_from_the_previous_one(tmp_path):
    backup_dir = tmp_path / "backup"
    killed = train(backup_dir, 3, "kill")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert killed.stdout.split() == ["epoch", "0", "epoch", "1"]

    resumed = train(backup_dir, 3, "resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # Epoch 1's backup was cut short: the run goes on from epoch 0's.
    assert resumed.stdout.split() == ["epoch", "1", "epoch", "2", "done"]
    assert "resumed from the previous one" in resumed.stderr
