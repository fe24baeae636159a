"""A tiny synthetic dataset and one finished training run shared by the launch tests.

The launch scripts run as real subprocesses (`python -m launch.<name>`), as users
run them.
"""

import os
import shutil
import subprocess
import sys

import pytest

from defect_aux_net.data import datasets
from tests.conftest import shared_across_workers
from tests.data import folder_fixture

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# 64 training and 32 validation images at 64x64: seconds per epoch on 2 cores.
TINY_TRAINING = (
    "--preset=quickstart",
    "--dataset=synthetic_defects/small",
    "--input_size=64,64",
    "--batch_size=8",
    "--train_fraction=0.125",
    "--validation_split=validation[:32]",
    "--jit_compile=false",
)


# The flags of `trained_run` (besides --data_dir and --model_dir).
TRAINED_RUN = (*TINY_TRAINING, "--epochs=2")


def copy_of_run(model_dir, folder) -> str:
    """A copy of the run in `model_dir` at `folder/run`, for tests that change it."""
    return shutil.copytree(model_dir, os.path.join(folder, "run"))


def run_launch(script: str, *args: str, env: dict | None = None, timeout: float = 600):
    """Runs `python -m launch.<script> args` from the repo root; returns the CompletedProcess."""
    return subprocess.run(
        [sys.executable, "-m", f"launch.{script}", *args],
        cwd=REPO,
        env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2"} | (env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def files_in(folder):
    """`{relative path: (size, mtime)}` of every file under `folder`."""
    found = {}
    for root, _, names in os.walk(folder):
        for name in names:
            status = os.stat(os.path.join(root, name))
            found[os.path.relpath(os.path.join(root, name), folder)] = (
                status.st_size, status.st_mtime_ns
            )
    return found


def check_success(result: subprocess.CompletedProcess):
    assert result.returncode == 0, f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-5000:]}"


@pytest.fixture(scope="session")
def synthetic_data_dir(tmp_path_factory):
    """A TFDS data_dir holding synthetic_defects/small."""

    def build(data_dir):
        datasets.load_builder("synthetic_defects/small", str(data_dir))

    return str(shared_across_workers(tmp_path_factory, "tfds", build))


@pytest.fixture(scope="session")
def train_test_data_dir(tmp_path_factory):
    """A TFDS data_dir holding defect_folder/train_test (80 train, 20 test, no validation)."""
    folder = shared_across_workers(
        tmp_path_factory, "train_test_folder", folder_fixture.build_train_test_folder
    )
    return str(folder / "tfds")


@pytest.fixture(scope="session")
def trained_run(synthetic_data_dir, tmp_path_factory):
    """`(model_dir, stdout)` of a finished two-epoch run, evaluated on the test split."""

    def train(folder):
        result = run_launch(
            "train",
            *TRAINED_RUN,
            f"--data_dir={synthetic_data_dir}",
            f"--model_dir={folder / 'run'}",
        )
        check_success(result)
        (folder / "stdout.txt").write_text(result.stdout)

    folder = shared_across_workers(tmp_path_factory, "trained_run", train)
    return str(folder / "run"), (folder / "stdout.txt").read_text()
