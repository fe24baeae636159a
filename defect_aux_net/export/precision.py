"""A trained model rebuilt to compute in another precision, with the same weights."""

import keras


# The precisions an export may compute in, by the Keras dtype policy that gives each.
POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


def with_precision(model, precision: str):
    """`model`, or a copy with its weights that computes in `precision`.

    Keras fixes each layer's dtype policy when the model is built, so changing the
    precision of a trained model means building it again under the other policy.
    `mixed_bfloat16` keeps float32 weights (and float32 outputs where the model
    asks for them), so the copy saves exactly the weights of `model`.

    Args:
      model: a model of `model_builders.MODELS`.
      precision: "float32" or "bfloat16".
    """
    if precision not in POLICIES:
        raise ValueError(f"precision must be one of {sorted(POLICIES)}, got {precision!r}.")
    policy = POLICIES[precision]
    # Top-level layers suffice: a dtype policy is global when a model is built.
    if all(layer.dtype_policy.name == policy for layer in model.layers):
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
