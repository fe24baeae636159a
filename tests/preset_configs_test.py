import dataclasses
import json

import pytest

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.preset_configs import PresetConfig


@dataclasses.dataclass(frozen=True)
class _Inner(PresetConfig):
    width: int = 1


@dataclasses.dataclass(frozen=True)
class _Outer(PresetConfig):
    inner: _Inner = _Inner()
    depth: int = 2


_Outer.presets = {"deep": _Outer(depth=5)}


def test_a_preset_with_overrides_leaves_the_preset_itself_unchanged():
    config = _Outer.from_preset("deep", inner=_Inner(width=3))
    assert (config.depth, config.inner.width) == (5, 3)
    assert _Outer.presets["deep"] == _Outer(depth=5)


def test_an_unknown_preset_names_the_class_and_the_choices():
    with pytest.raises(ConfigError, match=r"Unknown _Outer preset 'shallow'; choose one of deep\."):
        _Outer.from_preset("shallow")
    with pytest.raises(ConfigError, match="choose one of \\."):
        _Inner.from_preset("deep")  # Presets belong to their own class.


def test_to_dict_is_json_ready_with_nested_configs():
    assert json.loads(json.dumps(_Outer().to_dict())) == {"inner": {"width": 1}, "depth": 2}
