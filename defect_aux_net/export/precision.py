"""A trained model rebuilt to compute in another precision, with the same weights."""

import keras


# The precisions an export may compute in, by the Keras dtype policy that gives each.
# bfloat16 stores its weights in bfloat16, as a half-precision export does elsewhere
# (Ultralytics' `half=True`, OpenVINO's bf16): `mixed_bfloat16` keeps them in float32
# and casts each at every call, which gave 1.24x against 1.66x on an AMX CPU, with
# test metrics within 0.004 of float32 either way (`benchmarks/README.md`).
POLICIES = {"float32": "float32", "bfloat16": "bfloat16"}


def with_precision(model, precision: str):
    """`model`, or a copy with its weights that computes in `precision`.

    Keras fixes each layer's dtype policy when the model is built, so changing the
    precision of a trained model means building it again under the other policy. A
    bfloat16 copy holds the weights rounded to bfloat16 (float32 where a layer asks
    for float32, as the output activations do, which keeps the outputs float32); a
    float32 copy of a bfloat16 model holds those rounded weights exactly.

    Args:
      model: a model of `model_builders.MODELS`.
      precision: "float32" or "bfloat16".
    """
    if precision not in POLICIES:
        raise ValueError(f"precision must be one of {sorted(POLICIES)}, got {precision!r}.")
    policy = POLICIES[precision]
    # The model's own policy is the one it was built under (its output layers ask for
    # float32 under any).
    if model.dtype_policy.name == policy:
        return model
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        # Its own config, as saved: weights come from `model` (no backbone download).
        copy = type(model).from_config(model.get_config())
    finally:
        keras.config.set_dtype_policy(previous)
    copy.set_weights(model.get_weights())
    return copy
