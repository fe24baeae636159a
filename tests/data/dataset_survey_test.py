import io

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from defect_aux_net.data import datasets, splits
from defect_aux_net.data.dataset_survey import encoded_image_size, survey_split
from defect_aux_net.experiments import ExperimentConfig
from defect_aux_net.recipes import choose_recipe

from .folder_fixture import CLASS_NAMES, NAME, build_train_test_folder, image_classes


@pytest.fixture(scope="module")
def builder(tmp_path_factory):
    return datasets.load_builder(NAME, build_train_test_folder(tmp_path_factory.mktemp("survey")))


@pytest.mark.parametrize("encode", [tf.io.encode_png, tf.io.encode_jpeg])
def test_image_size_is_read_from_the_header(encode):
    encoded = encode(tf.zeros((17, 300, 1), tf.uint8))
    np.testing.assert_array_equal(encoded_image_size(encoded), [17, 300])


def test_image_size_of_another_format_is_decoded():
    file = io.BytesIO()
    Image.new("RGB", (9, 5)).save(file, "BMP")
    np.testing.assert_array_equal(encoded_image_size(tf.constant(file.getvalue())), [5, 9])


def test_survey_of_the_folder_fixture_counts_what_its_files_hold(builder):
    survey = survey_split(builder, "train")
    # The fixture's own record of each image's classes: part<index>.png.
    ids = [
        example["image_id"].decode()
        for example in tfds.as_numpy(splits.read_split(builder, "train", shuffle_files=False))
    ]
    classes = [image_classes(int(name.removeprefix("part").removesuffix(".png"))) for name in ids]
    assert survey.num_examples == len(ids) == 80
    assert survey.defective == sum(bool(found) for found in classes)
    assert survey.class_counts == tuple(
        sum(name in found for found in classes) for name in CLASS_NAMES
    )
    assert (survey.with_masks, survey.with_boxes, len(survey.boxes)) == (0, 0, 0)
    assert survey.image_sizes.tolist() == [[32, 32]] * 80
    assert survey.channels == 1

    # Labels only, 32x32 images: the classifier alone, at the images' own size.
    experiment, choices = choose_recipe(survey, ExperimentConfig.from_preset("auto"))
    assert experiment.model.tasks == ("classification",)
    assert experiment.model.input_shape == (32, 32, 3)
    assert experiment.model.max_level == 5
    assert experiment.negative_sampling is False  # Half the images are defective.
    # Eight steps per epoch at least: 80 // 8 = 10, rounded down to a power of two.
    assert experiment.batch_size == 8
    assert set(choices) >= {"model.tasks", "model.input_shape", "batch_size", "learning_rate"}
