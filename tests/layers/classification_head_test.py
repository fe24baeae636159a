import numpy as np

from defect_aux_net.layers.classification_head import ClassificationHead
from tests.layer_harness import check_layer


def test_classification_head_is_dense_on_global_average(tmp_path):
    x = np.random.default_rng(0).normal(size=(3, 4, 5, 6)).astype("float32")
    layer = ClassificationHead(num_classes=2)
    logits = np.array(layer(x))
    kernel, bias = (np.array(w) for w in layer.weights)
    np.testing.assert_allclose(logits, x.mean(axis=(1, 2)) @ kernel + bias, rtol=1e-5)
    check_layer(lambda: ClassificationHead(2), x, tmp_path, expected_output_shape=(3, 2))
