import io

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from defect_aux_net import DefectAuxNetConfig, build_defect_aux_net
from defect_aux_net.data.preprocessing import prepare_image
from defect_aux_net.detection.decoding import decode_detections
from defect_aux_net.export.serving import ServingModule
from defect_aux_net.inference.postprocessing import decode_outputs
from defect_aux_net.models.faster_rcnn import FasterRCNN
from defect_aux_net.models.faster_rcnn_config import GATED_TASKS, FasterRCNNConfig
from tests import tolerances

CLASS_NAMES = ["scratch", "pit"]
TASKS = ("classification", "segmentation", "detection")
FLOAT_OUTPUTS = ("probabilities", "masks", "boxes", "scores")
EXACT_OUTPUTS = ("classes", "num_detections", "is_defective")


def build_test_model(tasks=TASKS, input_shape=(64, 64, 3), seed=0):
    """A small seeded model whose detection scores are spread out.

    The detection subnets start with tiny kernels and the prior bias: every anchor
    scores about 0.01, which leaves NMS order to rounding and nothing above the score
    threshold. Larger random kernels and a zero class bias give distinct scores
    (about 0.5 +- 0.1) and boxes: behind the group norms the output conv's inputs have
    unit scale, so its kernel std of 0.5 / sqrt(fan in) gives logits of about +-0.35.
    """
    keras.utils.set_random_seed(seed)
    config = DefectAuxNetConfig.from_preset(
        "small", input_shape=input_shape, num_classes=len(CLASS_NAMES), tasks=tasks
    )
    model = build_defect_aux_net(config)
    if "detection" in tasks:
        rng = np.random.default_rng(seed)
        for name in ("box_head", "class_head"):
            for weight in model.get_layer(name).weights:
                if len(weight.shape) == 4:  # Kernels: He-normal hidden, small output.
                    fan_in = np.prod(weight.shape[:3])
                    std = 0.5 / np.sqrt(fan_in) if "output" in weight.path else np.sqrt(2 / fan_in)
                    weight.assign(rng.normal(0, std, weight.shape))
        bias = model.get_layer("class_head").output_conv.bias
        bias.assign(np.zeros(bias.shape))
    return model


def expected_outputs(model, images, score_threshold=0.05):
    """Model outputs computed directly: `prepare_image`, the Keras model, decoding."""
    height, width, channels = model.config.input_shape
    prepared = np.stack([prepare_image(image, (height, width), channels) for image in images])
    outputs = model(prepared, training=False)
    expected = {}
    if "classification" in outputs:
        expected["probabilities"] = np.asarray(outputs["classification"])
    if "segmentation" in outputs:
        expected["masks"] = np.asarray(outputs["segmentation"])
    if "box_regression" in outputs:
        detections = decode_detections(
            outputs["box_regression"],
            outputs["box_classification"],
            model.anchors,
            (height, width),
            score_threshold=score_threshold,
        )
        expected.update({key: np.asarray(value) for key, value in detections.items()})
        expected["boxes"] = expected["boxes"] / np.array([height, width, height, width])
    return expected


def encode(image, image_format="PNG"):
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format=image_format)
    return buffer.getvalue()


def assert_outputs_match(actual, expected, output_tolerance=None):
    """Float outputs within `output_tolerance` (float32's by default), the rest equal."""
    if output_tolerance is None:
        output_tolerance = tolerances.float32_output_tolerance()
    for key, value in expected.items():
        if key in FLOAT_OUTPUTS:
            # Boxes are exp-decoded deltas, in image sides.
            tolerance = (
                tolerances.box_tolerance(output_tolerance) if key == "boxes" else output_tolerance
            )
            tolerances.assert_close(actual[key], value, tolerance, key)
        else:
            np.testing.assert_array_equal(actual[key], value, err_msg=key)


def numpy_outputs(outputs):
    return {key: value.numpy() for key, value in outputs.items()}


@pytest.fixture(scope="module")
def served():
    model = build_test_model()
    return model, ServingModule(model, CLASS_NAMES)


@pytest.fixture(scope="module")
def images():
    # A size and range unlike the model input's: serving resizes and normalises.
    return np.random.default_rng(1).integers(0, 256, (2, 80, 96, 3)).astype(np.uint8)


def test_serve_float_equals_model_and_decoding(served, images):
    model, module = served
    outputs = numpy_outputs(module.serve_float(images.astype(np.float32) * 3.0 - 100.0))
    expected = expected_outputs(model, images.astype(np.float32) * 3.0 - 100.0)

    assert set(outputs) == set(expected) | {"image_score", "is_defective", "class_names"}
    assert_outputs_match(outputs, expected)
    assert outputs["num_detections"].min() > 0
    # Default thresholds 0.5.
    np.testing.assert_array_equal(
        outputs["is_defective"], (expected["probabilities"] >= 0.5).any(axis=1)
    )


def test_boxes_are_pixel_boxes_over_the_input_size(served, images):
    model, module = served
    outputs = numpy_outputs(module.serve_float(images.astype(np.float32)))
    prepared = np.stack([prepare_image(image, (64, 64), 3) for image in images])
    raw = model(prepared, training=False)
    pixel_boxes = decode_detections(
        raw["box_regression"], raw["box_classification"], model.anchors, (64, 64)
    )["boxes"]

    tolerance = tolerances.box_tolerance(tolerances.float32_output_tolerance())
    tolerances.assert_close(outputs["boxes"] * 64.0, pixel_boxes, 64.0 * tolerance)
    assert outputs["boxes"].min() >= 0 and outputs["boxes"].max() <= 1
    assert outputs["boxes"].max() > 0.5  # Not all near the origin: really scaled.


@pytest.mark.parametrize("image_format", ["PNG", "BMP"])
def test_serve_bytes_equals_serve_float_on_the_same_pixels(served, images, image_format):
    _, module = served
    encoded = tf.constant([encode(image, image_format) for image in images])

    from_bytes = numpy_outputs(module.serve_bytes(encoded))
    from_floats = numpy_outputs(module.serve_float(images.astype(np.float32)))

    assert set(from_bytes) == set(from_floats)
    assert_outputs_match(from_bytes, from_floats)


def test_serve_bytes_takes_images_of_different_sizes_and_drops_alpha(served, images):
    model, module = served
    small = images[1, :50, :70]
    alpha = np.full(images[0].shape[:2] + (1,), 128, np.uint8)
    rgba = np.concatenate([images[0], alpha], axis=-1)

    outputs = numpy_outputs(module.serve_bytes(tf.constant([encode(rgba), encode(small)])))

    for index, image in enumerate([images[0], small]):
        one_image = {key: value[index : index + 1] for key, value in outputs.items()}
        assert_outputs_match(one_image, expected_outputs(model, [image]))


def test_grey_png_into_a_three_channel_model(served, images):
    model, module = served
    grey = images[..., 0]

    outputs = numpy_outputs(module.serve_bytes(tf.constant([encode(image) for image in grey])))

    # A grey image is its value repeated in every channel.
    expected = expected_outputs(model, np.repeat(grey[..., None], 3, axis=-1))
    assert_outputs_match(outputs, expected)


def test_thresholds_decide_is_defective(served, images):
    _, module = served
    probabilities = module.serve_float(images.astype(np.float32))["probabilities"].numpy()
    low, high = sorted(probabilities[:, 0])
    middle = (low + high) / 2
    # Class 1's threshold of 1.0 switches it off while class 0's moves past each image.
    cases = [
        ((high + 1e-3, 1.0), [False, False]),
        ((middle, 1.0), probabilities[:, 0] >= middle),
        ((low - 1e-3, 1.0), [True, True]),
        ((1.0, probabilities[:, 1].min() - 1e-3), [True, True]),
    ]
    assert sorted(probabilities[:, 0] >= middle) == [False, True]
    try:
        for thresholds, expected in cases:
            module.thresholds.assign(thresholds)
            outputs = module.serve_float(images.astype(np.float32))
            np.testing.assert_array_equal(outputs["is_defective"], expected, err_msg=thresholds)
    finally:
        module.thresholds.assign([0.5, 0.5])


def test_metadata_variables(served):
    _, module = served
    assert [name.decode() for name in module.class_names.numpy()] == CLASS_NAMES
    np.testing.assert_array_equal(module.thresholds.numpy(), [0.5, 0.5])
    np.testing.assert_array_equal(module.image_size.numpy(), [64, 64])
    assert int(module.channels.numpy()) == 3


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(class_names=["scratch"]), "class_names"),
        (dict(class_names=[b"scratch", b"pit"]), "class_names"),
        (dict(class_names=CLASS_NAMES, thresholds=[0.5]), "thresholds"),
        (dict(class_names=CLASS_NAMES, thresholds=[0.5, 1.5]), "thresholds"),
        (dict(class_names=CLASS_NAMES, max_detections=0), "max_detections"),
        (dict(class_names=CLASS_NAMES, iou_threshold=-0.1), "iou_threshold"),
    ],
)
def test_bad_arguments_are_named(served, arguments, message):
    model, _ = served
    with pytest.raises(ValueError, match=message):
        ServingModule(model, **arguments)


def test_a_model_that_is_not_one_of_the_library_models_is_refused():
    with pytest.raises(ValueError, match="model must be one of the library's models"):
        ServingModule(keras.Sequential([keras.layers.Dense(2)]), CLASS_NAMES)


def serve_single_task(task, input_shape):
    model = build_test_model((task,), input_shape)
    return model, ServingModule(model, CLASS_NAMES, thresholds=[0.3, 0.7])


@pytest.fixture(scope="module")
def classification_only():
    return serve_single_task("classification", (64, 64, 3))


@pytest.fixture(scope="module")
def segmentation_only():
    return serve_single_task("segmentation", (64, 64, 1))  # A grey model.


@pytest.fixture(scope="module")
def detection_only():
    return serve_single_task("detection", (64, 96, 3))  # Boxes over height != width.


@pytest.fixture(scope="module")
def pixels():
    return np.random.default_rng(2).random((2, 50, 70, 3)).astype(np.float32)


def channels_of(model, pixels):
    return pixels[..., : model.config.input_shape[2]]


@pytest.mark.parametrize(
    "served_task, outputs_expected",
    [
        ("classification_only", {"probabilities"}),
        ("segmentation_only", {"masks"}),
        ("detection_only", {"boxes", "scores", "classes", "num_detections"}),
    ],
    ids=["classification", "segmentation", "detection"],
)
def test_task_subsets_give_only_their_outputs(request, pixels, served_task, outputs_expected):
    model, module = request.getfixturevalue(served_task)
    pixels = channels_of(model, pixels)

    outputs = numpy_outputs(module.serve_float(pixels))
    expected = expected_outputs(model, pixels)

    assert set(outputs) == outputs_expected | {"image_score", "is_defective", "class_names"}
    assert_outputs_match(outputs, expected)
    if "probabilities" in outputs:
        np.testing.assert_array_equal(
            outputs["is_defective"], (expected["probabilities"] >= [0.3, 0.7]).any(axis=1)
        )


def test_masks_decide_is_defective_without_classification(segmentation_only, pixels):
    model, module = segmentation_only
    pixels = channels_of(model, pixels)
    peaks = module.serve_float(pixels)["masks"].numpy().max(axis=(1, 2, 3))
    peak_logits = np.log(peaks / (1 - peaks))
    bias = model.get_layer("segmentation_head").class_conv.bias
    original = bias.numpy()
    # Shifting every mask logit by the mean peak logit puts one image's peak above
    # 0.5 and the other's below.
    bias.assign(original - peak_logits.mean())
    try:
        outputs = numpy_outputs(module.serve_float(pixels))
    finally:
        bias.assign(original)

    expected = peak_logits >= peak_logits.mean()
    assert sorted(expected) == [False, True]
    np.testing.assert_array_equal(outputs["is_defective"], expected)
    np.testing.assert_array_equal(
        outputs["is_defective"], (outputs["masks"] >= 0.5).any(axis=(1, 2, 3))
    )


def test_detections_decide_is_defective_without_classification(detection_only, pixels):
    model, module = detection_only
    outputs = numpy_outputs(module.serve_float(pixels))
    # Best real detection score of each image and class.
    best = np.zeros((2, 2))
    for image, count in enumerate(outputs["num_detections"]):
        for score, label in zip(outputs["scores"][image, :count], outputs["classes"][image]):
            best[image, label] = max(best[image, label], score)
    low, high = sorted(best[:, 0])
    middle = (low + high) / 2
    cases = [
        ((high + 1e-3, 1.0), [False, False]),
        ((middle, 1.0), best[:, 0] >= middle),
        ((1.0, best[:, 1].min() - 1e-3), [True, True]),
    ]
    assert low < high and sorted(best[:, 0] >= middle) == [False, True]
    try:
        for thresholds, expected in cases:
            module.thresholds.assign(thresholds)
            outputs = module.serve_float(pixels)
            np.testing.assert_array_equal(outputs["is_defective"], expected, err_msg=thresholds)
    finally:
        module.thresholds.assign([0.3, 0.7])

    # Padding rows (score 0) are not detections, even at threshold 0.
    nothing_kept = ServingModule(model, CLASS_NAMES, thresholds=[0.0, 0.0], score_threshold=1.0)
    outputs = numpy_outputs(nothing_kept.serve_float(pixels))
    np.testing.assert_array_equal(outputs["num_detections"], [0, 0])
    np.testing.assert_array_equal(outputs["is_defective"], [False, False])


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_a_non_finite_pixel_is_an_error_not_a_defect_free_part(served, images, value):
    _, module = served
    pixels = images.astype(np.float32)
    pixels[1, 10, 20, 0] = value
    with pytest.raises(tf.errors.InvalidArgumentError, match="serving_float input `images`"):
        module.serve_float(pixels)


def test_non_finite_model_outputs_are_an_error_not_a_defect_free_part(served, images):
    model, _ = served
    # Its own module: NaN weights, as a diverged run might export.
    module = ServingModule(model, CLASS_NAMES)
    bias = model.get_layer("classification_head").dense.bias
    original = bias.numpy()
    bias.assign(np.full(original.shape, np.nan, original.dtype))
    try:
        for serve in (module.serve_float, module.serve_gated):
            inputs = images.astype(np.float32) if serve is module.serve_float else tf.constant(
                [encode(image) for image in images]
            )
            with pytest.raises(tf.errors.InvalidArgumentError, match="`classification` output"):
                serve(inputs)
    finally:
        bias.assign(original)


def test_every_signature_answers_an_empty_request_with_empty_outputs(served):
    model, module = served
    requests = {
        "serve_bytes": (tf.constant([], tf.string),),
        "serve_float": (tf.zeros((0, 64, 64, 3), tf.float32),),
        "serve_gated": (tf.constant([], tf.string),),
        "serve_gated_threshold": (tf.constant([], tf.string), tf.constant([], tf.float32)),
    }
    full = numpy_outputs(module.serve_float(np.zeros((1, 64, 64, 3), np.float32)))
    for name, inputs in requests.items():
        outputs = numpy_outputs(getattr(module, name)(*inputs))
        expected = set(full) | ({"gate_passed"} if "gated" in name else set())
        assert set(outputs) == expected, name
        for key, value in outputs.items():
            shape = (0, *full[key].shape[1:]) if key in full else (0,)
            assert value.shape == shape, (name, key)


def test_every_output_of_every_signature_is_batched_like_the_images(served, images):
    # TF Serving's REST `instances` (row) format answers one object per image: it refuses
    # outputs whose first dimensions differ ("has inconsistent batch size") and scalars.
    # Three images, two classes: a [K] `class_names` output would fail here.
    _, module = served
    three = np.concatenate([images, images[:1]])
    encoded = tf.constant([encode(image) for image in three])
    requests = {
        "serve_bytes": (encoded,),
        "serve_float": (three.astype(np.float32),),
        "serve_gated": (encoded,),
        "serve_gated_threshold": (encoded, tf.constant([0.0, 0.0, 1.01])),
    }
    for name, inputs in requests.items():
        outputs = numpy_outputs(getattr(module, name)(*inputs))
        assert {value.shape[0] for value in outputs.values()} == {3}, name
        assert outputs["class_names"].tolist() == [[b"scratch", b"pit"]] * 3, name


def test_gated_faster_rcnn_serves_the_detector_only_to_the_images_its_gate_passes(images):
    # The gasket paper's gate: Faster R-CNN's classifier on P6 skips the RPN and box head.
    keras.utils.set_random_seed(0)
    config = FasterRCNNConfig.from_preset("small", num_classes=len(CLASS_NAMES), tasks=GATED_TASKS)
    model = FasterRCNN(config)
    module = ServingModule(model, CLASS_NAMES)
    assert {"serving_gated", "serving_gated_threshold"} <= set(module.signatures())
    encoded = tf.constant([encode(image) for image in images])
    # The first image passes (every probability >= 0), the second is stopped.
    gated = numpy_outputs(module.serve_gated_threshold(encoded, tf.constant([0.0, 1.01])))
    prepared = np.stack([prepare_image(image, (64, 64), 3) for image in images])
    ungated = {
        key: np.asarray(value)
        for key, value in decode_outputs(model(prepared, training=False), config).items()
    }
    np.testing.assert_array_equal(gated["gate_passed"], [True, False])
    count = ungated["num_detections"][0]
    assert count > 0 and gated["num_detections"].tolist() == [count, 0]
    for key in ("boxes", "scores"):
        tolerances.assert_close(
            gated[key][0, :count], ungated[key][0, :count], tolerances.float32_output_tolerance(),
            key,
        )
    np.testing.assert_array_equal(gated["classes"][0, :count], ungated["classes"][0, :count])
    tolerances.assert_close(
        gated["probabilities"], ungated["probabilities"], tolerances.float32_output_tolerance()
    )
