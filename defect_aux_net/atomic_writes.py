"""Files and folders that appear whole or not at all: written beside their target, then renamed.

A run killed while writing (a preempted TPU VM, Ctrl-C, the OOM killer) then leaves the
previous version, or nothing, never half a file that a later run reads as complete.
Locally the rename is atomic. On `gs://`, `tf.io.gfile.rename` copies and deletes: every
object appears whole (GCS has no partial objects), a folder object by object.
"""

import contextlib
import json
import os
import uuid

import tensorflow as tf

# Part of every temporary name: TF Serving ignores non-integer version folders, and
# `export_versions` and cleanups recognise what a killed write left.
PARTIAL = ".partial-"


def partial_path(path: str) -> str:
    """A fresh temporary name beside `path`, keeping its extension (Keras and matplotlib
    choose the format from it)."""
    folder, name = os.path.split(os.fspath(path))
    stem, extension = os.path.splitext(name)
    return os.path.join(folder, f"{stem}{PARTIAL}{uuid.uuid4().hex[:8]}{extension}")


@contextlib.contextmanager
def writing(path: str):
    """Yields a temporary path to write `path`'s content to; renames it into place on success.

    Example:
    ```python
    with writing("runs/q/metrics_test.png") as partial:
        figure.savefig(partial)
    ```
    """
    path = os.fspath(path)
    tf.io.gfile.makedirs(os.path.dirname(path) or ".")
    partial = partial_path(path)
    try:
        yield partial
        tf.io.gfile.rename(partial, path, overwrite=True)
    finally:
        if tf.io.gfile.exists(partial):
            tf.io.gfile.remove(partial)


@contextlib.contextmanager
def writing_folder(path: str):
    """Yields a temporary folder to fill; renames it to `path`, which must not exist yet.

    Raises:
      FileExistsError: when `path` exists (a folder is never replaced: readers may be
        using it, and a rename cannot replace a folder atomically).
    """
    path = os.fspath(path)
    if tf.io.gfile.exists(path):
        raise FileExistsError(f"{path} exists already: write a new folder instead.")
    partial = partial_path(path)
    tf.io.gfile.makedirs(partial)
    try:
        yield partial
        tf.io.gfile.rename(partial, path)
    finally:
        if tf.io.gfile.exists(partial):
            tf.io.gfile.rmtree(partial)


def write_text(path: str, text: str, mode: str = "w"):
    """Writes `text` (bytes with mode="wb") to `path` whole."""
    with writing(path) as partial, tf.io.gfile.GFile(partial, mode) as file:
        file.write(text)


def write_json(path: str, value):
    write_text(path, json.dumps(value, indent=2))
