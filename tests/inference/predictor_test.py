import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from defect_aux_net import Predictor
from defect_aux_net.config_errors import ConfigError
from defect_aux_net.export.edge_formats import export_edge_model
from defect_aux_net.export.saved_model import export_saved_model
from defect_aux_net.inference.model_loading import ServingFunctions
from defect_aux_net.inference.postprocessing import ImageRule
from defect_aux_net.training import run_files, thresholds_file
from defect_aux_net.visualization.overlays import draw_overlay
from tests import tolerances
from tests.conftest import shared_across_workers
from tests.export.serving_test import CLASS_NAMES, build_test_model

# Not the default 0.5, so that thresholds.json and the export's own are seen to be used.
THRESHOLDS = [0.3, 0.7]
# The run's image rule: a fused score no test image reaches, where THRESHOLDS flag every
# image, so that predictions are seen to follow the rule (export and thresholds.json).
IMAGE_RULE = ImageRule.from_weights({"classification": 0.5, "mask": 0.5}, 0.95)
SCORE_THRESHOLD = 0.3
# Images of several sizes and kinds, none the model's 64 x 64.
SHAPES = {"rgb": (40, 56, 3), "grey": (30, 30), "rgba": (33, 47, 4), "tall": (72, 48, 3)}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run folder as launch.train leaves it: config.json, thresholds.json, best.keras and
    the SavedModel export/1 of one small seeded model (made once per test run)."""

    def make(folder):
        model = build_test_model()
        run = folder / "run"
        run.mkdir()
        (run / "config.json").write_text(json.dumps({"class_names": CLASS_NAMES}))
        thresholds_file.write_thresholds(
            CLASS_NAMES, THRESHOLDS, str(run / "thresholds.json"), IMAGE_RULE
        )
        model.save(str(run / "best.keras"))
        export_saved_model(
            model, str(run / "export" / "1"), CLASS_NAMES, THRESHOLDS, image_rule=IMAGE_RULE
        )

    return shared_across_workers(tmp_path_factory, "predictor_run", make) / "run"


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(5)
    return {name: rng.integers(0, 256, shape, dtype=np.uint8) for name, shape in SHAPES.items()}


@pytest.fixture(scope="module")
def signatures(run_dir):
    return tf.saved_model.load(str(run_dir / "export" / "1")).signatures


def served_float(signatures, pixels):
    """The SavedModel's serving_float outputs for one uint8 image, made 3-channel by hand."""
    pixels = np.atleast_3d(pixels).astype(np.float32)
    pixels = np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels[..., :3]
    return {k: v.numpy()[0] for k, v in signatures["serving_float"](images=pixels[None]).items()}


def served_bytes(signatures, encoded):
    """The SavedModel's serving_default outputs, per image, of encoded images in one batch
    (as the predictor batches them: sums may round differently in another batch size)."""
    outputs = signatures["serving_default"](images=tf.constant(encoded))
    outputs = {key: value.numpy() for key, value in outputs.items()}
    return [{key: value[index] for key, value in outputs.items()} for index in range(len(encoded))]


def assert_prediction_is(prediction, outputs, size):
    """`prediction` against the signature's `outputs`, resized and scaled by hand."""
    height, width = size
    np.testing.assert_array_equal(
        [prediction.probabilities[name] for name in CLASS_NAMES], outputs["probabilities"]
    )
    assert prediction.is_defective == bool(outputs["is_defective"])
    # The image rule, not THRESHOLDS, decides: fused 0.5 * 0.5 + 0.5 * 0.8 or so < 0.95.
    fused = 0.5 * outputs["probabilities"].max() + 0.5 * outputs["masks"].max()
    tolerance = tolerances.float32_output_tolerance()
    assert prediction.image_score == pytest.approx(fused, abs=tolerance)
    assert np.any(outputs["probabilities"] >= THRESHOLDS) and fused < IMAGE_RULE.threshold
    assert not prediction.is_defective
    masks = tf.image.resize(outputs["masks"], (height, width), "nearest").numpy() >= 0.5
    assert prediction.masks.dtype == np.uint8 and prediction.masks.shape == (height, width, 2)
    np.testing.assert_array_equal(prediction.masks, masks.astype(np.uint8))
    kept = (np.arange(100) < outputs["num_detections"]) & (outputs["scores"] >= SCORE_THRESHOLD)
    assert kept.any()
    np.testing.assert_allclose(
        prediction.boxes, outputs["boxes"][kept] * [height, width, height, width], atol=1e-4
    )
    np.testing.assert_array_equal(prediction.scores, outputs["scores"][kept])
    assert prediction.labels == tuple(CLASS_NAMES[index] for index in outputs["classes"][kept])


def encode(pixels, image_format):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format)
    return buffer.getvalue()


def test_arrays_of_several_sizes_match_the_saved_model(run_dir, images, signatures):
    predictor = Predictor.load(run_dir)  # A run folder: its latest export.
    assert predictor.functions.source == str(run_dir / "export" / "1")
    assert predictor.class_names == tuple(CLASS_NAMES)
    predictions = predictor(list(images.values()))
    assert len(predictions) == len(images)
    for prediction, pixels in zip(predictions, images.values()):
        assert_prediction_is(prediction, served_float(signatures, pixels), pixels.shape[:2])


def test_files_and_pil_images_match_the_saved_model(run_dir, images, signatures, tmp_path):
    predictor = Predictor.load(run_dir / "export" / "1")
    files = {}
    for name, image_format in [("rgb", "PNG"), ("grey", "PNG"), ("tall", "JPEG")]:
        files[name] = tmp_path / f"{name}.{image_format.lower()}"
        files[name].write_bytes(encode(images[name], image_format))
    pil_images = [Image.fromarray(images[name]) for name in ("rgba", "grey")]
    predictions = predictor([*map(str, files.values()), *pil_images])

    served = served_bytes(signatures, [path.read_bytes() for path in files.values()])
    for prediction, expected, name in zip(predictions, served, files):
        assert_prediction_is(prediction, expected, images[name].shape[:2])
    for prediction, name in zip(predictions[len(files):], ("rgba", "grey")):
        assert_prediction_is(prediction, served_float(signatures, images[name]), SHAPES[name][:2])


def test_keras_checkpoint_gives_the_exports_predictions(run_dir, images, signatures, tmp_path):
    # A run folder without an export: its best.keras, class names and thresholds.
    bare_run = tmp_path / "run"
    bare_run.mkdir()
    for name in ("config.json", "thresholds.json", "best.keras"):
        os.symlink(run_dir / name, bare_run / name)
    predictor = Predictor.load(bare_run)
    assert predictor.functions.source == str(bare_run / "best.keras")
    assert predictor.class_names == tuple(CLASS_NAMES)
    prediction = predictor(images["rgb"])[0]
    expected = served_float(signatures, images["rgb"])
    tolerance = tolerances.float32_output_tolerance()
    tolerances.assert_close(
        [prediction.probabilities[name] for name in CLASS_NAMES],
        expected["probabilities"], tolerance, "probabilities",
    )
    # The run's image rule from thresholds.json, as the export's own.
    assert not expected["is_defective"] and not prediction.is_defective
    assert prediction.image_score == pytest.approx(
        expected["image_score"], abs=tolerances.float32_output_tolerance()
    )
    # Given class names win over the run's.
    renamed = Predictor.load(bare_run / "best.keras", class_names=["crack", "dent"])
    assert set(renamed(images["rgb"])[0].probabilities) == {"crack", "dent"}


def test_draw_is_the_overlay_of_the_outputs(run_dir, images, signatures):
    predictor = Predictor.load(run_dir)
    pixels = images["tall"]
    prediction = predictor(Image.fromarray(pixels))[0]
    outputs = served_float(signatures, pixels)
    kept = (np.arange(100) < outputs["num_detections"]) & (outputs["scores"] >= SCORE_THRESHOLD)
    expected = draw_overlay(
        pixels,
        masks=outputs["masks"],
        boxes=outputs["boxes"][kept],
        scores=outputs["scores"][kept],
        classes=outputs["classes"][kept],
        class_names=CLASS_NAMES,
    )
    np.testing.assert_array_equal(np.asarray(predictor.draw(pixels, prediction)), expected)


def test_files_that_cannot_be_predicted_are_named(run_dir, images, tmp_path):
    predictor = Predictor.load(run_dir, batch_size=2)
    good = tmp_path / "good.png"
    good.write_bytes(encode(images["rgb"], "PNG"))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    missing = tmp_path / "missing.png"
    paths = [str(bad), str(good), str(missing), str(good)]
    results = list(predictor.predict_files(paths))
    assert [result.name for result in results] == paths
    assert results[0].error.startswith("cannot decode it (")
    assert results[2].error.startswith("cannot read it (")
    for result in (results[1], results[3]):
        assert result.error is None and result.image.shape == SHAPES["rgb"]
    # The bad file shared its batch with a good one, which it did not spoil.
    np.testing.assert_array_equal(results[1].prediction.masks, results[3].prediction.masks)
    with pytest.raises(ValueError, match=f"Cannot predict {bad}: cannot decode it"):
        predictor([str(good), str(bad)])
    with pytest.raises(ValueError, match="Cannot predict image 0: an image array must be"):
        predictor(np.zeros((4, 4, 2), np.uint8))


def test_nan_outputs_of_an_old_export_are_an_error_not_a_defect_free_part(images):
    # Exports made before serving refused non-finite outputs answer NaN.
    def serve(images):
        batch = images.shape[0]
        return {
            "probabilities": tf.fill([batch, 2], np.nan),
            "is_defective": tf.zeros([batch], tf.bool),
        }

    predictor = Predictor(ServingFunctions(serve, serve, 3, ("scratch", "pit"), "old"))
    (result,) = predictor.predict_each([images["rgb"]])
    assert result.prediction is None
    assert result.error == "the model's probabilities hold NaN or inf: it cannot judge it"


def test_a_run_in_bfloat16_predicts_from_its_checkpoint_within_bfloat16_rounding(
    run_dir, images, signatures
):
    predictor = Predictor.load(run_dir, precision="bfloat16")
    # The export was made in float32: the precision is chosen on the checkpoint.
    assert predictor.functions.source == str(run_dir / "best.keras")
    probabilities = [predictor(images["rgb"])[0].probabilities[name] for name in CLASS_NAMES]
    expected = served_float(signatures, images["rgb"])["probabilities"]
    tolerances.assert_close(
        probabilities, expected, tolerances.bfloat16_output_tolerance(), "probabilities"
    )
    # The same checkpoint and code in float32 computes exactly the same each time; in
    # bfloat16 its activations are rounded on the way, so its outputs differ.
    in_float32 = Predictor.load(run_dir / "best.keras")(images["rgb"])[0].probabilities
    assert probabilities != [in_float32[name] for name in CLASS_NAMES]
    with pytest.raises(ConfigError, match="computes in the precision it was exported with"):
        Predictor.load(run_dir / "export" / "1", precision="bfloat16")
    with pytest.raises(ConfigError, match="precision must be one of") as error:
        Predictor.load(run_dir, precision="float16")
    assert error.value.field == "precision"


def test_paths_that_are_no_model_and_misplaced_class_names_are_refused(run_dir, tmp_path):
    with pytest.raises(ValueError, match="is not a model: expected a launch.train run folder"):
        Predictor.load(tmp_path)
    with pytest.raises(ValueError, match="the SavedModel .* holds its own"):
        Predictor.load(run_dir, class_names=["crack", "dent"])
    with pytest.raises(ValueError, match="Got 3 class names"):
        Predictor.load(run_dir / "best.keras", class_names=["a", "b", "c"])
    with pytest.raises(ValueError, match=r"^score_threshold must be in \[0, 1\], got 2") as error:
        Predictor.load(run_dir, score_threshold=2)
    assert isinstance(error.value, ConfigError) and error.value.field == "score_threshold"


@pytest.mark.extended
@pytest.mark.slow(seconds=40)
def test_an_openvino_export_beside_the_run_predicts_like_the_saved_model(
    run_dir, images, signatures, tmp_path
):
    pytest.importorskip("openvino")
    # The export sits in a run folder, whose config.json and thresholds.json it uses.
    run = tmp_path / "run"
    run.mkdir()
    for name in ("config.json", "thresholds.json"):
        os.symlink(run_dir / name, run / name)
    model = run_files.load_model(str(run_dir / "best.keras"))
    export_edge_model(model, run / "export_openvino", "openvino")
    predictor = Predictor.load(run / "export_openvino")
    assert predictor.class_names == tuple(CLASS_NAMES)
    path = tmp_path / "rgb.png"
    path.write_bytes(encode(images["rgb"], "PNG"))
    tolerance = tolerances.float32_output_tolerance()
    for prediction, expected in zip(
        predictor([str(path), images["grey"]]),
        [*served_bytes(signatures, [path.read_bytes()]), served_float(signatures, images["grey"])],
    ):
        tolerances.assert_close(
            [prediction.probabilities[name] for name in CLASS_NAMES],
            expected["probabilities"], tolerance, "probabilities",
        )
        assert prediction.is_defective == bool(expected["is_defective"])
        assert prediction.image_score == pytest.approx(expected["image_score"], abs=tolerance)
        # Mask pixels within the tolerance of 0.5 may go either way.
        masks = prediction.masks.astype(bool)
        size = masks.shape[:2]
        high = tf.image.resize(expected["masks"], size, "nearest").numpy() >= 0.5 + tolerance
        low = tf.image.resize(expected["masks"], size, "nearest").numpy() >= 0.5 - tolerance
        assert np.all(masks >= high) and np.all(masks <= low)
        kept = (np.arange(100) < expected["num_detections"]) & (
            expected["scores"] >= SCORE_THRESHOLD
        )
        # Near-tied scores may swap places in NMS: compare the strongest box.
        height, width = size
        tolerances.assert_close(
            prediction.boxes[0] / [height, width, height, width],
            expected["boxes"][kept][0],
            tolerances.box_tolerance(tolerance),
            "boxes",
        )
        assert prediction.labels[0] == CLASS_NAMES[expected["classes"][kept][0]]
