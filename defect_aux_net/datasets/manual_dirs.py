"""Locating a manually downloaded dataset inside TFDS's `manual_dir`."""

from typing import Callable

from etils import epath


def find_manual_root(
    manual_dir: epath.Path,
    builder_name: str,
    holds_data: Callable[[epath.Path], bool],
    expected: str,
    instructions: str,
) -> epath.Path:
    """Returns `manual_dir` or `manual_dir/<builder_name>`, the first that holds the data.

    Users put downloads in either place (TFDS's default manual dir is shared by all
    datasets; tensorflow/datasets#4038), so both are accepted.

    Args:
      manual_dir: the `manual_dir` TFDS hands the builder.
      builder_name: the builder's name, e.g. "severstal".
      holds_data: whether a folder holds the dataset.
      expected: what the folder should hold, for the error message.
      instructions: the builder's `MANUAL_DOWNLOAD_INSTRUCTIONS`.

    Raises:
      FileNotFoundError: neither folder holds the data; the message lists what
        `manual_dir` does hold and repeats the download instructions.
    """
    for root in (manual_dir, manual_dir / builder_name):
        if holds_data(root):
            return root
    found = sorted(path.name for path in manual_dir.iterdir())[:10] if manual_dir.exists() else []
    raise FileNotFoundError(f"{manual_dir} has no {expected} (found {found}).\n{instructions}")
