"""Test set-up shared by every test: the TensorFlow backend and quiet logs."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_collection_modifyitems(items):
    # The tests that run for minutes start first, longest first, one per pytest-xdist
    # worker (its `load` scheduling deals the first tests round-robin), then the other
    # launch tests: no worker is left running a long test alone at the end.
    def order(item):
        slow = item.get_closest_marker("slow")
        seconds = slow.kwargs["seconds"] if slow else 0
        return -seconds, not item.nodeid.startswith("tests/launch/")

    items.sort(key=order)
