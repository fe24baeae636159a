import keras
import numpy as np
import pytest

from defect_aux_net.losses.multi_task import classification_loss
from defect_aux_net.models.image_classifier import ImageClassifier
from defect_aux_net.models.model_builders import build_model, model_config
from tests import tolerances

STAGE_FILTERS = (64, 128, 256, 512)


def conv_bn(inputs, outputs, kernel):
    # Kernel and bias (keras.applications' ResNets keep conv biases), then batch norm's
    # gamma, beta, moving mean and moving variance.
    return kernel * kernel * inputs * outputs + outputs + 4 * outputs


def squeeze_excitation(channels, ratio):
    hidden = channels // ratio
    return channels * hidden + hidden + hidden * channels + channels


def resnet_classifier_parameters(blocks, bottleneck, num_classes, se_ratio=None):
    """Parameters of a ResNet classifier counted from its architecture: 7x7 stem, stages
    of basic (3x3, 3x3) or bottleneck (1x1, 3x3, 1x1 x4) blocks with a 1x1 projection
    where the shape changes, SE on each residual branch, a dense layer on C5."""
    total, channels = conv_bn(3, 64, 7), 64
    for stage, (filters, count) in enumerate(zip(STAGE_FILTERS, blocks)):
        for block in range(count):
            outputs = 4 * filters if bottleneck else filters
            if bottleneck:
                total += conv_bn(channels, filters, 1) + conv_bn(filters, filters, 3)
                total += conv_bn(filters, outputs, 1)
            else:
                total += conv_bn(channels, filters, 3) + conv_bn(filters, filters, 3)
            if (stage > 0 and block == 0) or channels != outputs:
                total += conv_bn(channels, outputs, 1)
            if se_ratio:
                total += squeeze_excitation(outputs, se_ratio)
            channels = outputs
    return total + channels * num_classes + num_classes


@pytest.mark.parametrize("name, se_ratio", [("resnet50", None), ("se_resnet50", 16)])
def test_small_resnet_classifiers_have_the_hand_counted_parameters(name, se_ratio):
    model = build_model(model_config(name, "small"))  # ResNet-18, 4 classes.
    assert model.count_params() == resnet_classifier_parameters(
        (2, 2, 2, 2), False, 4, se_ratio
    )


def test_the_papers_resnet50_classifier_has_table_six_parameters():
    expected = resnet_classifier_parameters((3, 4, 6, 3), True, 1)
    # keras.applications.ResNet50 without top has 23,587,712 (its documented 25,636,712
    # less the 1000-class layer); the paper rounds to 23.5 M.
    assert expected == 23_587_712 + 2048 + 1
    assert abs(expected / 1e6 - 23.5) < 0.1
    assert build_model(model_config("resnet50", "tekerreka")).count_params() == expected


def test_the_head_is_a_sigmoid_of_dense_on_pooled_c5_and_the_loss_its_cross_entropy():
    keras.utils.set_random_seed(0)
    model = build_model(model_config("resnet50", "small"))
    images = np.random.default_rng(0).random((2, 64, 64, 3)).astype(np.float32)
    c5 = np.asarray(model.get_layer("resnet18_none")(images)["C5"])
    kernel, bias = (np.asarray(w) for w in model.get_layer("classification_head").weights)
    logits = c5.mean(axis=(1, 2)) @ kernel + bias
    tolerances.assert_close(
        np.asarray(model(images)["classification"]), 1 / (1 + np.exp(-logits)),
        tolerances.float32_output_tolerance(),
    )
    # Binary cross-entropy, mean over 4 classes, over the labelled images only.
    labels = np.array([[1, 0, 0, 1], [0, 0, 0, 0]], np.float32)
    probabilities = np.array([[0.8, 0.1, 0.5, 0.6], [0.3, 0.3, 0.3, 0.3]], np.float32)
    first = -(np.log(0.8) + np.log(0.9) + np.log(0.5) + np.log(0.6)) / 4
    second = -np.log(0.7)
    loss = model.compute_loss(
        y={"classification": labels},
        y_pred={"classification": probabilities},
        sample_weight={"classification": np.array([1.0, 0.0], np.float32)},
    )
    np.testing.assert_allclose(float(loss), first, rtol=1e-5)
    unweighted = model.compute_loss(
        y={"classification": labels}, y_pred={"classification": probabilities}
    )
    np.testing.assert_allclose(float(unweighted), (first + second) / 2, rtol=1e-5)
    weights = np.array([[0.0], [1.0]], np.float32)  # [B, 1], as Keras may pass them.
    np.testing.assert_allclose(
        float(classification_loss(labels, probabilities, weights)), second, rtol=1e-5
    )
    assert model.anchors is None and not model.supports_gated_inference


def test_efficientnet_reads_0_1_images_as_keras_reads_0_255_pixels_with_weights_of_a_file(
    tmp_path,
):
    keras.utils.set_random_seed(1)
    reference = keras.applications.EfficientNetB0(
        include_top=False, weights=None, input_shape=(64, 64, 3)
    )
    # Input statistics other than 0 and 1, so that copying them shows.
    # By type: Keras numbers layer names per process ("normalization_1" after others).
    normalization = next(
        layer for layer in reference.layers if isinstance(layer, keras.layers.Normalization)
    )
    normalization.set_weights(
        [np.array([110.0, 120.0, 130.0]), np.array([900.0, 1600.0, 2500.0]), np.array(1)]
    )
    normalization.finalize_state()
    path = str(tmp_path / "efficientnetb0.weights.h5")
    reference.save_weights(path)

    config = model_config("efficientnet_b0", "small", num_classes=2, backbone_weights=path)
    assert config.resolved_input_normalization == "raw"
    model = ImageClassifier(config)
    pixels = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3)).astype(np.float32)
    kernel, bias = (np.asarray(w) for w in model.get_layer("classification_head").weights)
    logits = np.asarray(reference(pixels)).mean(axis=(1, 2)) @ kernel + bias
    # `prepare_image` gives the model pixels / 255 with these weights.
    tolerances.assert_close(
        np.asarray(model(pixels / 255.0)["classification"]), 1 / (1 + np.exp(-logits)),
        tolerances.float32_output_tolerance(),
    )
    batch_norms = [
        layer for layer in model.get_layer(reference.name).layers
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert len(batch_norms) == 49 and {layer.momentum for layer in batch_norms} == {0.9}
    # The count keras.applications documents, 5,330,571 with its 1000-class layer.
    assert model.count_params() == 5_330_571 - (1280 * 1000 + 1000) + 1280 * 2 + 2
