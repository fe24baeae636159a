"""The serving graph prepares images as the model's config says (ImageNet weights)."""

import io

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from defect_aux_net import DefectAuxNetConfig, build_defect_aux_net
from defect_aux_net.data.preprocessing import prepare_image
from defect_aux_net.export.serving import ServingModule
from tests import tolerances


def test_served_images_get_the_normalisation_the_model_trained_with():
    keras.utils.set_random_seed(0)
    config = DefectAuxNetConfig.from_preset(
        "small", input_shape=(64, 64, 3), num_classes=2, tasks=("classification",),
        input_normalization="caffe",
    )
    model = build_defect_aux_net(config)
    module = ServingModule(model, ["scratch", "pit"])
    # A dim, low-contrast grey image: min-max would stretch it to [0, 1].
    image = np.random.default_rng(0).integers(40, 90, (64, 64, 1)).astype(np.uint8)
    png = io.BytesIO()
    Image.fromarray(image[..., 0]).save(png, format="PNG")

    prepared = prepare_image(image, (64, 64), 3, "caffe")[None]
    expected = np.asarray(model(prepared, training=False)["classification"])
    served_bytes = module.serve_bytes(tf.constant([png.getvalue()]))["probabilities"]
    pixels = tf.constant(np.repeat(image, 3, axis=-1)[None], tf.float32)  # Takes C channels.
    served_float = module.serve_float(pixels)["probabilities"]

    tolerance = tolerances.float32_output_tolerance()
    tolerances.assert_close(np.asarray(served_bytes), expected, tolerance, "serving_default")
    tolerances.assert_close(np.asarray(served_float), expected, tolerance, "serving_float")
    stretched = model(prepare_image(image, (64, 64), 3, "min_max")[None], training=False)
    assert np.abs(np.asarray(stretched["classification"]) - expected).max() > 100 * tolerance
