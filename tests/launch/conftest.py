"""A tiny synthetic dataset and one finished training run shared by the launch tests.

The launch scripts run in the test's process (`run_launch`): the parsing of their flags,
their `main`, their exit status and what they print, as `python -m launch.<name>` runs
them, without the 5-9 s of CPU a new process spends importing TensorFlow. Tests of
what only a new process shows (a kill and a resume, several workers, logical CPU
devices, a SavedModel served by a process that never built the model, absl's own
`app.run`) start one with `fresh_process=True`.
"""

import contextlib
import gc
import importlib
import io
import logging
import os
import shutil
import subprocess
import sys
import traceback

import keras
import pytest
from absl import app, flags
from absl import logging as absl_logging

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


# The scripts `run_launch` runs in the test's process by default. launch.benchmark sets
# TensorFlow's thread pools, which a process sets once, and times a process start;
# launch.reproduce's tests kill it. absl defines --help in `app.run` alone.
IN_PROCESS_SCRIPTS = frozenset({"train", "evaluate", "export", "lr_find", "predict"})
HELP_FLAGS = ("--help", "--helpshort", "--helpfull", "--helpxml")


def run_launch(
    script: str,
    *args: str,
    env: dict | None = None,
    timeout: float = 600,
    fresh_process: bool | None = None,
) -> subprocess.CompletedProcess:
    """Runs `python -m launch.<script> args` from the repo root; returns the CompletedProcess.

    In this process (`run_in_process`) unless `fresh_process`, or by default for a script
    outside IN_PROCESS_SCRIPTS, --help, or an `env` (which only a new process reads).
    `timeout` bounds a new process only.
    """
    if fresh_process is None:
        fresh_process = (
            script not in IN_PROCESS_SCRIPTS
            or env is not None
            or any(arg.split("=")[0] in HELP_FLAGS for arg in args)
        )
    if not fresh_process:
        return run_in_process(script, *args)
    return subprocess.run(
        [sys.executable, "-m", f"launch.{script}", *args],
        cwd=REPO,
        env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2"} | (env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _is_launch(module_name: str) -> bool:
    return module_name == "launch" or module_name.startswith("launch.")


def _take_launch_flags() -> list:
    """Removes the flags that launch modules defined from FLAGS; returns them to put back.

    Scripts define flags of the same name (train's and evaluate's --model_dir), so each
    run imports its script afresh with only its own launch flags defined.
    """
    taken = []
    for module, module_flags in flags.FLAGS.flags_by_module_dict().items():
        if _is_launch(module):
            key_flags = flags.FLAGS.key_flags_by_module_dict().get(module, [])
            taken += [(module, flag, flag in key_flags) for flag in module_flags]
    for _, flag, _ in taken:
        if flag.name in flags.FLAGS:
            delattr(flags.FLAGS, flag.name)
    return taken


def _put_back_launch_flags(taken: list):
    for module, flag, is_key in taken:
        flags.FLAGS[flag.name] = flag
        flags.FLAGS.register_flag_by_module(module, flag)
        if is_key:
            flags.FLAGS.register_key_flag_for_module(module, flag)


@contextlib.contextmanager
def _fresh_launch_modules():
    """Launch modules imported within are new ones; those imported before come back after."""
    before = {name: module for name, module in sys.modules.items() if _is_launch(name)}
    for name in before:
        del sys.modules[name]
    taken = _take_launch_flags()
    policy = keras.mixed_precision.global_policy()  # launch.train sets the global one.
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(policy)
        _take_launch_flags()
        _put_back_launch_flags(taken)
        for name in [name for name in sys.modules if _is_launch(name)]:
            del sys.modules[name]
        sys.modules.update(before)


@contextlib.contextmanager
def _absl_logs_to(stream):
    """absl's log lines (INFO and up) to `stream`, as a script's `app.run` prints them."""
    logger = absl_logging.get_absl_logger()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(absl_logging.PythonFormatter())
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _exit_status(code) -> int:
    """The status `sys.exit(code)` ends a process with (a message goes to stderr)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def run_in_process(script: str, *args: str) -> subprocess.CompletedProcess:
    """`python -m launch.<script> args` in this process, as absl's `app.run(main)` runs it.

    The flags are parsed from `args` into a newly imported script module; a flag error
    and a `UsageError` end in status 1 (the error's) with the message as stderr's last
    line, an exception with its traceback and status 1, `sys.exit` with its status.
    stdout, stderr and absl's log lines are captured as the process's would be.
    """
    stdout, stderr = io.StringIO(), io.StringIO()
    was_parsed = flags.FLAGS.is_parsed()
    with (
        _fresh_launch_modules(),
        contextlib.chdir(REPO),
        contextlib.redirect_stdout(stdout),
        contextlib.redirect_stderr(stderr),
        _absl_logs_to(stderr),
    ):
        try:
            module = importlib.import_module(f"launch.{script}")
            try:
                argv = flags.FLAGS([f"launch.{script}", *args])
            except flags.Error as error:
                print(f"FATAL Flags parsing error: {error}", file=sys.stderr)
                returncode = 1
            else:
                returncode = _exit_status(module.main(argv))
        except app.UsageError as error:
            print(f"\n{error}", file=sys.stderr)
            returncode = error.exitcode
        except SystemExit as exit_:
            returncode = _exit_status(exit_.code)
        except Exception:
            traceback.print_exc()
            returncode = 1
        finally:
            if not was_parsed:
                flags.FLAGS.unparse_flags()
    gc.collect()  # The script's model and datasets, before the next test builds its own.
    return subprocess.CompletedProcess(
        ["launch." + script, *args], returncode, stdout.getvalue(), stderr.getvalue()
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
