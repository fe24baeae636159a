"""INT8 post-training quantisation for the LiteRT and OpenVINO exports.

Weights and activations become int8; the ranges of the activations come from
running calibration images (prepared as the model takes them, from the training
split) through the float model. The exported files keep float32 inputs and
outputs: the runtime quantises the image and dequantises the outputs.

LiteRT: the TFLite converter's full-integer quantisation (`Optimize.DEFAULT` and a
representative dataset), int8 builtin ops only, so the file needs no Flex delegate.
OpenVINO: NNCF's `quantize` (min-max ranges, then fast bias correction).
"""

import numpy as np

from defect_aux_net.data.pipeline import InputOptions, make_dataset

# Enough for stable activation ranges (both quantisers' guides ask for 100-300).
CALIBRATION_IMAGES = 200


def training_images(builder, split: str, config, count: int = CALIBRATION_IMAGES, seed=0):
    """About `count` prepared images of `split` in batches, for `calibration_images`.

    Shuffled with `seed` (a prefix of the split may hold one class only) and not
    augmented: the ranges are those of the images the model will see.
    """
    batch_size = min(count, 8)
    options = InputOptions(batch_size, training=True, seed=seed, augment=False)
    dataset = make_dataset(builder, split, config, options).take(-(-count // batch_size))
    return [images.numpy() for images, *_ in dataset]


def calibration_batches(calibration_images, input_shape) -> list:
    """The calibration batches as float32 arrays, checked against the model input.

    Both quantisers may read the set more than once, so it is kept in memory:
    100-300 images of the model's input size are enough.

    Raises:
      ValueError: no batch, a batch not shaped `[b, *input_shape]`, or values that
        are not finite.
    """
    batches = []
    for index, batch in enumerate(calibration_images):
        batch = np.asarray(batch, np.float32)
        if batch.ndim != 4 or tuple(batch.shape[1:]) != tuple(input_shape):
            raise ValueError(
                f"calibration_images batch {index} has shape {batch.shape}; expected "
                f"[b, {', '.join(map(str, input_shape))}] (prepared images)."
            )
        if not np.all(np.isfinite(batch)):
            raise ValueError(f"calibration_images batch {index} has non-finite values.")
        if batch.shape[0]:
            batches.append(batch)
    if not batches:
        raise ValueError("calibration_images holds no image: INT8 ranges need some.")
    return batches


def litert_converter_options(batches) -> dict:
    """TFLite converter settings (for `keras.Model.export`) of full-integer quantisation.

    Args:
      batches: the checked `calibration_batches`.
    """
    import tensorflow as tf


    def representative_dataset():
        for batch in batches:
            for image in batch:
                yield [image[None]]

    return {
        "optimizations": [tf.lite.Optimize.DEFAULT],
        "representative_dataset": representative_dataset,
        "target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]},
    }


def quantize_openvino(ov_model, batches):
    """`ov_model` quantised to INT8 by NNCF on the checked `calibration_batches`."""
    import nncf

    images = [image[None] for batch in batches for image in batch]
    return nncf.quantize(ov_model, nncf.Dataset(images), subset_size=len(images))
