"""Test set-up shared by every test: the TensorFlow backend and quiet logs."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_collection_modifyitems(items):
    # The launch tests run the scripts for minutes each: first, so that the pytest-xdist
    # workers share them instead of one worker running the last of them alone.
    items.sort(key=lambda item: not item.nodeid.startswith("tests/launch/"))
