"""One harness for every custom layer: config round trip, call, one fit step, save and reload."""

import numpy as np
import keras


def check_layer(layer_factory, inputs, tmp_path, expected_output_shape=None):
    """Runs the checks every custom layer must pass; returns the layer's output on `inputs`.

    Args:
      layer_factory: zero-argument callable returning a fresh, unbuilt layer.
      inputs: a numpy array or a dict of numpy arrays (one example batch).
      tmp_path: a directory for the `.keras` file.
      expected_output_shape: if given, the output's shape (or dict of shapes).
    """
    layer = layer_factory()
    restored = layer.__class__.from_config(layer.get_config())
    assert restored.get_config() == layer.get_config()

    if isinstance(inputs, dict):
        symbolic_inputs = {
            name: keras.Input(array.shape[1:], batch_size=array.shape[0], name=name)
            for name, array in inputs.items()
        }
    else:
        symbolic_inputs = keras.Input(inputs.shape[1:], batch_size=inputs.shape[0])
    outputs = layer(symbolic_inputs)
    flat_outputs = keras.tree.flatten(outputs)
    flat = [keras.layers.Flatten()(output) for output in flat_outputs]
    model = keras.Model(
        symbolic_inputs, keras.layers.Concatenate()(flat) if len(flat) > 1 else flat[0]
    )
    eager = layer(inputs)
    if expected_output_shape is not None:
        actual = keras.tree.map_structure(lambda tensor: tuple(tensor.shape), eager)
        assert actual == expected_output_shape
    for symbolic, concrete in zip(flat_outputs, keras.tree.flatten(eager)):
        assert tuple(symbolic.shape) == tuple(concrete.shape)

    # One fit step: the layer's weights change and the loss is finite.
    prediction = model.predict(inputs, verbose=0)
    before = [np.array(weight) for weight in model.trainable_weights]
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    history = model.fit(inputs, np.ones_like(prediction), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    if before:
        after = [np.array(weight) for weight in model.trainable_weights]
        assert any(not np.array_equal(b, a) for b, a in zip(before, after))

    path = str(tmp_path / "layer.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        reloaded.predict(inputs, verbose=0), model.predict(inputs, verbose=0), rtol=1e-5, atol=1e-6
    )
    return eager
