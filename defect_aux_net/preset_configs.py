"""The base of the library's config dataclasses: named presets and a plain dict.

A config module defines its frozen dataclass on `PresetConfig`, builds its presets
(instances of that class), and hands them over with `Config.presets = {...}`: the
presets are instances, so they can only exist once the class does.
"""

import dataclasses
from typing import ClassVar

from defect_aux_net.config_errors import ConfigError


class PresetConfig:
    """Named presets (`from_preset`) and `to_dict` for a dataclass config."""

    presets: ClassVar[dict] = {}

    @classmethod
    def from_preset(cls, name: str, **overrides):
        """Returns the named preset of `cls.presets` with `overrides` applied."""
        if name not in cls.presets:
            raise ConfigError(
                "preset",
                f"Unknown {cls.__name__} preset {name!r}; choose one of "
                f"{', '.join(sorted(cls.presets))}.",
            )
        return dataclasses.replace(cls.presets[name], **overrides)

    def to_dict(self) -> dict:
        """The fields as plain values (JSON-ready), nested configs included."""
        return dataclasses.asdict(self)
