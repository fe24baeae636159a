"""`synthetic_defects/small` (512/128/128 grey 128x128 images), built once per session.

Test modules call `synthetic_small_builder` from a fixture of their own: a fixture
imported into several modules would be one fixture per module, and build per module.
"""

from defect_aux_net.data import datasets

NAME = "synthetic_defects/small"
_BUILT = {}


def synthetic_small_builder(tmp_path_factory):
    """Returns the prepared builder; the first call builds it (15-30 s) in a temp dir."""
    if NAME not in _BUILT:
        _BUILT[NAME] = datasets.load_builder(NAME, str(tmp_path_factory.mktemp("tfds")))
    return _BUILT[NAME]
