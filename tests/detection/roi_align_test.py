import numpy as np
import tensorflow as tf

from defect_aux_net.detection.roi_align import assign_levels, multilevel_roi_align
from tests.tolerances import assert_close, float32_output_tolerance


def ramp(height, width, offset, slope_y, slope_x):
    # Bilinear interpolation, and averaging, of a linear function are exact.
    y, x = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return (offset + slope_y * y + slope_x * x).astype(np.float32)[None, :, :, None]


def test_levels_of_fpn_equation_one():
    boxes = np.array(
        [[0, 0, 112, 112], [0, 0, 224, 224], [0, 0, 448, 448], [0, 0, 224, 56],
         [0, 0, 10, 10], [0, 0, 2000, 2000], [0, 0, 0, 0]],
        np.float32,
    )
    # 224 x 56 has sqrt(wh) = 112 -> P3; tiny and empty boxes go to P2, huge to P5.
    np.testing.assert_array_equal(assign_levels(boxes), [3, 4, 5, 3, 2, 5, 2])
    np.testing.assert_array_equal(assign_levels(boxes, 3, 4), [3, 4, 4, 3, 3, 4, 3])


def test_roi_align_of_a_ramp_by_hand():
    # P2 (stride 4) of a 64 x 64 image, f(y, x) = y + 10 x. The box (8, 8, 40, 40) is
    # (1.5, 1.5) to (9.5, 9.5) in feature cells; 2 x 2 bins centred at 3.5 and 7.5.
    crops = multilevel_roi_align(
        [ramp(16, 16, 0, 1, 10)], np.array([[[8, 8, 40, 40]]], np.float32),
        min_level=2, output_size=2, sampling_ratio=2,
    )
    assert crops.shape == (1, 1, 2, 2, 1)
    np.testing.assert_allclose(crops[0, 0, :, :, 0], [[38.5, 78.5], [42.5, 82.5]], rtol=1e-6)


def test_each_box_is_cropped_from_its_level():
    # A 128 x 128 image: P2 is 32 x 32, P3 16 x 16, with different ramps.
    features = [ramp(32, 32, 0, 1, 2), ramp(16, 16, 100, 1, 2)]
    boxes = np.array([[[40, 40, 72, 72], [8, 8, 120, 120]]], np.float32)
    crops = multilevel_roi_align(features, boxes, min_level=2, output_size=2)
    # Box 0 (32 px, P2): cells 9.5 to 17.5, bin centres 11.5 and 15.5.
    np.testing.assert_allclose(
        crops[0, 0, :, :, 0], [[11.5 + 23, 11.5 + 31], [15.5 + 23, 15.5 + 31]], rtol=1e-6
    )
    # Box 1 (112 px, P3, stride 8): cells 0.5 to 14.5, bin centres 4 and 11.
    np.testing.assert_allclose(
        crops[0, 1, :, :, 0], [[100 + 4 + 8, 100 + 4 + 22], [100 + 11 + 8, 100 + 11 + 22]],
        rtol=1e-6,
    )


def test_matches_crop_and_resize_sampling_the_same_points():
    features = np.random.default_rng(0).normal(size=(1, 16, 16, 3)).astype(np.float32)
    boxes = np.array([[[20, 24, 60, 50], [8, 8, 40, 40], [3, 5, 17, 30]]], np.float32)
    size, ratio, stride, side = 3, 2, 4, 16
    crops = multilevel_roi_align([features], boxes, min_level=2, output_size=size,
                                 sampling_ratio=ratio)
    steps = size * ratio
    normalized = []
    for ymin, xmin, ymax, xmax in boxes[0]:
        # The first and last of `steps` sample points in feature cells, which
        # crop_and_resize spans with `steps` evenly spaced points.
        y0, x0 = ymin / stride - 0.5, xmin / stride - 0.5
        height, width = (ymax - ymin) / stride, (xmax - xmin) / stride
        first = np.array([y0 + 0.5 * height / steps, x0 + 0.5 * width / steps])
        last = np.array([y0 + (steps - 0.5) * height / steps, x0 + (steps - 0.5) * width / steps])
        normalized.append(np.concatenate([first, last]) / (side - 1))
    samples = tf.image.crop_and_resize(
        features, np.array(normalized, np.float32), [0, 0, 0], [steps, steps]
    )
    reference = tf.nn.avg_pool2d(samples, ratio, ratio, "VALID")
    assert_close(crops[0].numpy(), reference.numpy(), float32_output_tolerance())


def test_gradient_reaches_the_features():
    features = tf.Variable(ramp(16, 16, 0, 1, 1))
    with tf.GradientTape() as tape:
        crops = multilevel_roi_align(
            [features], np.array([[[8, 8, 40, 40]]], np.float32), output_size=2
        )
        total = tf.reduce_sum(crops)
    gradient = tape.gradient(total, features)
    # Four bins, each the mean of 4 samples: the weights sum to the 4 bins.
    np.testing.assert_allclose(tf.reduce_sum(tf.convert_to_tensor(gradient)), 4.0, rtol=1e-6)
