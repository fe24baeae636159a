import numpy as np
import pytest
import tensorflow as tf

from defect_aux_net.layers.gradient_stop import GradientStop
from tests.layer_harness import check_layer


@pytest.mark.parametrize("active, gradient", [(True, 0.0), (False, 2.0)])
def test_gradient_stop_passes_values_and_stops_gradients(active, gradient):
    x = tf.constant([[1.0, -2.0]])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = GradientStop(active)(x)
        loss = tf.reduce_sum(2.0 * y)
    np.testing.assert_array_equal(y.numpy(), x.numpy())
    grad = tape.gradient(loss, x)
    np.testing.assert_array_equal(0.0 if grad is None else grad.numpy(), gradient)


def test_gradient_stop_layer_harness(tmp_path):
    x = np.ones((2, 3), np.float32)
    check_layer(lambda: GradientStop(active=False), x, tmp_path, (2, 3))
