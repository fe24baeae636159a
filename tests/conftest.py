"""Test set-up shared by every test: the TensorFlow backend, quiet logs, the two tiers."""

import fcntl
import os

import pytest

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# XLA's CPU backend without LLVM's optimisation passes: the same computation, compiled
# in about a fifth less time, and the tests compile every model's training step.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")


def shared_across_workers(tmp_path_factory, name, fill):
    """A folder that `fill(folder)` fills once per test run, however many xdist workers ask.

    Each pytest-xdist worker has its own session, so a session or module fixture runs on
    every worker that one of its tests lands on. Fixtures that take half a minute or more
    fill a folder in the directory the workers share instead: the first worker fills it
    under a file lock, the others wait for it and read it (xdist's documented pattern).
    """
    root = tmp_path_factory.getbasetemp()
    if "PYTEST_XDIST_WORKER" in os.environ:
        root = root.parent
    folder, done = root / name, root / f"{name}.done"
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            folder.mkdir(exist_ok=True)
            fill(folder)
            done.touch()
    return folder


def pytest_addoption(parser):
    parser.addoption(
        "--extended", action="store_true",
        help="Also run the tests marked `extended` (skipped by default; see README, Tests).",
    )


def pytest_collection_modifyitems(config, items):
    # The default run skips the extended tier: each of its tests repeats, on more models,
    # runtimes or a whole launch script, a path that a cheaper test of the default run
    # checks, and together they would double the run's time.
    extended = config.getoption("--extended")
    if not extended:
        skip = pytest.mark.skip(reason="extended tier: python -m pytest --extended")
        for item in items:
            if item.get_closest_marker("extended"):
                item.add_marker(skip)
    # pytest.ini runs pytest-xdist with --maxschedchunk=1: each worker is dealt the next
    # two tests, then one more each time it finishes one. The tests that run for minutes
    # (marked slow) come first, longest first, each paired with a quick test so that no
    # two of them land on one worker; then the other launch tests. No worker is left
    # running a long test alone at the end.
    def seconds(item):
        return item.get_closest_marker("slow").kwargs["seconds"]

    def runs_long(item):
        skipped = not extended and item.get_closest_marker("extended")
        return item.get_closest_marker("slow") and not skipped

    slow = sorted((item for item in items if runs_long(item)), key=seconds)
    rest = sorted(
        (item for item in items if not runs_long(item)),
        key=lambda item: not item.nodeid.startswith("tests/launch/"),
    )
    ordered = []
    while slow:
        ordered.append(slow.pop())  # The longest left,
        if rest:
            ordered.append(rest.pop())  # and a quick unit test.
    items[:] = ordered + rest
