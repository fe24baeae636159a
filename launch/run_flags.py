"""Flags of where and how a script trains, shared by launch.train and launch.reproduce."""

from absl import flags

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
# Keras' values for `compile(jit_compile=...)`.
JIT_COMPILE_VALUES = {"auto": "auto", "true": True, "false": False}

STRATEGY = flags.DEFINE_enum("strategy", "default", STRATEGIES, "tf.distribute strategy.")
TPU = flags.DEFINE_string("tpu", None, 'TPU name, or "local" on a TPU VM (with --strategy=tpu).')
JIT_COMPILE = flags.DEFINE_enum(
    "jit_compile", "true", tuple(JIT_COMPILE_VALUES),
    "Compile the training step with XLA. Keras' `auto` turns XLA off on CPU-only machines "
    "and under tf.distribute; on a CPU it makes the quickstart's step 1.4x faster.",
)

flags.register_validator(
    "tpu",
    lambda value: value is None or flags.FLAGS.strategy == "tpu",
    message="--tpu is only used with --strategy=tpu.",
)


def jit_compile():
    """`--jit_compile` as Keras' `compile` takes it."""
    return JIT_COMPILE_VALUES[JIT_COMPILE.value]
