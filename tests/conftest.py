"""Test set-up shared by every test: the TensorFlow backend and quiet logs."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def pytest_collection_modifyitems(items):
    # pytest.ini runs pytest-xdist with --maxschedchunk=1: each worker is dealt the next
    # two tests, then one more each time it finishes one. The tests that run for minutes
    # (marked slow) come first, longest first, each paired with a quick test so that no
    # two of them land on one worker; then the other launch tests. No worker is left
    # running a long test alone at the end.
    def seconds(item):
        return item.get_closest_marker("slow").kwargs["seconds"]

    slow = sorted((item for item in items if item.get_closest_marker("slow")), key=seconds)
    rest = sorted(
        (item for item in items if not item.get_closest_marker("slow")),
        key=lambda item: not item.nodeid.startswith("tests/launch/"),
    )
    ordered = []
    while slow:
        ordered.append(slow.pop())  # The longest left,
        if rest:
            ordered.append(rest.pop())  # and a quick unit test.
    items[:] = ordered + rest
