"""The library's errors as the scripts print them: config fields become their flags.

The library names what to change as the Python API spells it (`ExperimentConfig.
batch_size=8`, `DefectAuxNetConfig.tasks`, `model_dir=runs/a`, `overwrite=True`;
`defect_aux_net.config_errors`); a script user changes a flag, so the message is
printed with flags (`--batch_size=8`, `--tasks`, `--model_dir=runs/a`, `--overwrite`).
"""

import re

from defect_aux_net.config_errors import ConfigError

# Every field's flag is its own name, but for these.
RENAMED = {"DefectAuxNetConfig.input_shape": "input_size", "ExperimentConfig.model_name": "model"}

# Arguments of the library's functions that the scripts set from flags of that name.
ARGUMENTS = ("model_dir", "overwrite", "rows", "strategy", "tpu")

# Every config class of the library is named `...Config`.
_CONFIG_FIELD = r"[A-Z]\w*Config\.\w+"
# A config field, anywhere; an argument, where its value is given (`model_dir=...`):
# a bare word such as "overwrite" is prose. `=True` of a boolean is the bare flag.
_MENTION = re.compile(
    rf"(?<![\w.-])({_CONFIG_FIELD}|(?:{'|'.join(ARGUMENTS)})(?==))(=True\b)?"
)


def flag_name(field: str) -> str:
    """The flag (without `--`) that sets `field`, a config field or an argument."""
    return RENAMED.get(field, field.rsplit(".", 1)[-1])


def flag_message(error: Exception) -> str:
    """The one line a script prints for `error`.

    A `ConfigError` is told in flags and starts with the flag of its field
    (`--flag=value ...` or `--flag: ...`); other errors as they are.
    """
    if not isinstance(error, ConfigError):
        return str(error)
    message = _MENTION.sub(lambda match: f"--{flag_name(match.group(1))}", str(error))
    flag = f"--{flag_name(error.field)}"
    if not re.match(rf"{re.escape(flag)}\b(?!_)", message):
        message = f"{flag}: {message}"
    return message
