"""KolektorSDD's 3-fold cross-validation: which items each fold tests on.

The two-stage papers (Tabernik et al. 2019, Bozic et al. 2020) train on two folds and
test on the third, three times. Their folds are lists of `kosNN` folders (one
commutator each) published as a pickle, `split.pyb` in KolektorSDD-training-splits.zip
(http://box.vicos.si/skokec/gostop/KolektorSDD-training-splits.zip); this project does
not ship it (CC BY-NC-SA, like the data). With that file beside the folders, its folds
are used (`read_reference_folds`); without it, and for the Ultralytics copy, which has
no folders, the rule is `contiguous_folds`.
"""

import io
import pickle
from typing import Sequence

from etils import epath

NUM_FOLDS = 3
# The reference's split file, looked for in the original layout's --manual_dir.
SPLIT_FILE = "split.pyb"


def contiguous_folds(keys: Sequence[str], num_folds: int = NUM_FOLDS) -> list[list[str]]:
    """Cuts the keys, in name order, into `num_folds` consecutive runs.

    Run sizes differ by at most one, the longer runs first (50 folders: 17, 17, 16;
    399 images: 133 each). Consecutive names rather than a shuffle: the Ultralytics copy
    numbers its images in the original's folder order, so a consecutive run keeps the
    parts of one commutator together (at most the two cuts fall inside one), where a
    shuffle would put parts of almost every commutator on both sides.

    Args:
      keys: distinct names (folders or image file names).
      num_folds: how many runs.

    Returns:
      The keys of each fold, fold 1 first, each sorted.

    Raises:
      ValueError: for repeated keys or fewer keys than folds.
    """
    ordered = sorted(keys)
    repeated = sorted({key for key in ordered if ordered.count(key) > 1})
    if repeated:
        raise ValueError(f"Fold keys must be distinct; repeated: {repeated[:5]}.")
    if len(ordered) < num_folds:
        raise ValueError(f"{len(ordered)} items cannot make {num_folds} folds: {ordered}.")
    size, longer = divmod(len(ordered), num_folds)
    folds, start = [], 0
    for fold in range(num_folds):
        stop = start + size + (fold < longer)
        folds.append(ordered[start:stop])
        start = stop
    return folds


class _PlainDataUnpickler(pickle.Unpickler):
    """Reads lists, tuples, strings and booleans only: a pickle naming any class or
    function (which loading would import and call) is refused."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(
            f"refers to {module}.{name}; a split file holds lists of folder names only"
        )


def _folder_name(entry, path: epath.Path) -> str:
    # Tabernik et al. list folder names; Bozic et al. (folder name, is segmented) pairs.
    if isinstance(entry, (tuple, list)) and entry and isinstance(entry[0], str):
        entry = entry[0]
    if not isinstance(entry, str):
        raise ValueError(f"{path}: a fold entry must be a folder name, got {entry!r}.")
    return entry


def read_reference_folds(
    path: epath.Path, folders: Sequence[str], num_folds: int = NUM_FOLDS
) -> list[list[str]]:
    """The test folders of each fold, from the reference's split file.

    The file is a pickle of `(train folds, test folds, ...)`, each a list with one list
    of folder names (or `(name, flag)` pairs) per fold. Only the test folds are read:
    a fold trains on every other folder, as the papers' other two folds.

    Args:
      path: the split file.
      folders: the `kosNN` folders present; the test folds must partition them.
      num_folds: folds expected in the file.

    Returns:
      The folder names each fold tests on, fold 1 first, each sorted.

    Raises:
      ValueError: naming `path`, for a pickle that is not plain data, a layout other
        than the above, or test folds that do not partition `folders` exactly.
    """
    try:
        content = _PlainDataUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise ValueError(f"{path} is not a KolektorSDD split file: {error}") from None
    if not isinstance(content, (tuple, list)) or len(content) < 2:
        raise ValueError(
            f"{path}: expected a pickle of (train folds, test folds, ...), got a "
            f"{type(content).__name__}."
        )
    test_folds = content[1]
    if not isinstance(test_folds, (tuple, list)) or len(test_folds) != num_folds:
        raise ValueError(f"{path}: expected {num_folds} test folds.")
    folds = [sorted(_folder_name(entry, path) for entry in fold) for fold in test_folds]
    named = [name for fold in folds for name in fold]
    problems = []
    repeated = sorted({name for name in named if named.count(name) > 1})
    if repeated:
        problems.append(f"{repeated} in several test folds")
    unknown = sorted(set(named) - set(folders))
    if unknown:
        problems.append(f"{unknown} not found in {path.parent}")
    missing = sorted(set(folders) - set(named))
    if missing:
        problems.append(f"{missing} in no test fold")
    if problems:
        raise ValueError(
            f"{path}: its test folds must partition the folders: {'; '.join(problems)}."
        )
    return folds
