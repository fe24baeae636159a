"""The library's error for a config field or function argument that cannot work.

Messages name what to change as the Python API spells it: a config field
(`ExperimentConfig.batch_size=8`, `DefectAuxNetConfig.tasks`) or an argument of the
function called (`model_dir=runs/a`, `overwrite=True`). The launch scripts print the
same message with their flags (`launch.flag_errors`).
"""


class ConfigError(ValueError):
    """A config field or argument whose value cannot work; the message says why.

    A ValueError, so callers that catch those catch it too.

    Example:

    ```python
    try:
        data = prepare_training_data(experiment, data_dir)
    except ConfigError as error:
        print(error.field)  # "ExperimentConfig.batch_size"
    ```

    Attributes:
      field: what to change: a config field, `<ConfigClass>.<name>`, or an argument name.
    """

    def __init__(self, field: str, message: str):
        # Every message names its field, so the field is never lost in a log line.
        if field not in message:
            message = f"{field}: {message}"
        super().__init__(message)
        self.field = field

    def __reduce__(self):
        # Rebuilt from (field, message), not ValueError's args, when pickled across
        # processes (the benchmarks measure in spawned ones).
        return type(self), (self.field, str(self))
