import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from defect_aux_net.data.preprocessing import prepare_image
from defect_aux_net.training import run_files
from tests import tolerances
from tests.launch.conftest import check_success, copy_of_run, run_launch


def test_evaluate_matches_accuracy_computed_from_the_checkpoint(
    trained_run, synthetic_data_dir, tmp_path
):
    model_dir, _ = trained_run
    output = str(tmp_path / "metrics.json")
    result = run_launch(
        "evaluate", f"--model_dir={model_dir}", f"--data_dir={synthetic_data_dir}",
        "--split=test[:32]", f"--output={output}",
    )
    check_success(result)
    metrics = json.load(open(output))
    assert set(metrics) == {
        "classification", "segmentation", "detection", "image_ap", "thresholds"
    }
    assert metrics["thresholds"]["source"] == os.path.join(model_dir, "thresholds.json")
    # The run's image rule decides: the metrics give its fused score and its counts.
    rule = json.load(open(os.path.join(model_dir, "thresholds.json")))["image_score"]
    assert metrics["thresholds"]["image_rule"]["threshold"] == pytest.approx(rule["threshold"])
    assert metrics["image_ap"]["score"] == "fused"
    assert sum(metrics["image_ap"]["is_defective"][key] for key in ("tp", "fp", "fn", "tn")) == 32
    assert os.path.exists(str(tmp_path / "metrics.md"))
    assert os.path.exists(str(tmp_path / "metrics_pr_curves.png"))

    # Image-level accuracy by hand: the checkpoint, the stored thresholds, raw TFDS images.
    model = keras.models.load_model(os.path.join(model_dir, "best.keras"))
    thresholds = json.load(open(os.path.join(model_dir, "thresholds.json")))
    thresholds = np.array([thresholds[name] for name in ("scratch", "crack", "pit", "blotch")])
    examples = tfds.load("synthetic_defects/small", split="test[:32]", data_dir=synthetic_data_dir)
    examples = list(tfds.as_numpy(examples))
    # One eager call for the 32 images: each eager call runs the model's layers in Python.
    images = np.stack([prepare_image(example["image"], (64, 64), 3) for example in examples])
    probabilities = model(images)["classification"].numpy()
    defective = np.array([example["is_defective"] for example in examples], bool)
    correct = np.sum((probabilities >= thresholds).any(axis=1) == defective)
    assert metrics["classification"]["accuracy"] == correct / 32


def test_evaluate_needs_a_model():
    result = run_launch("evaluate", "--split=test", timeout=120)
    assert result.returncode != 0
    assert "--model_dir" in result.stderr


def test_evaluate_reports_a_missing_checkpoint(tmp_path):
    result = run_launch("evaluate", f"--checkpoint={tmp_path}/none.keras", timeout=120)
    assert result.returncode != 0
    assert "none.keras" in result.stderr


def test_export_writes_the_next_version_servable_with_the_run_thresholds(trained_run, tmp_path):
    model_dir = copy_of_run(trained_run[0], tmp_path)
    result = run_launch("export", f"--model_dir={model_dir}")
    check_success(result)
    # Version 1 is train's; TF Serving and `latest_export` take the highest.
    export_dir = os.path.join(model_dir, "export", "2")
    assert f"to {export_dir}" in result.stdout
    assert run_files.latest_export(model_dir) == export_dir
    loaded = tf.saved_model.load(export_dir)
    config = json.load(open(os.path.join(model_dir, "config.json")))
    thresholds = json.load(open(os.path.join(model_dir, "thresholds.json")))
    assert [name.decode() for name in loaded.class_names.numpy()] == config["class_names"]
    np.testing.assert_allclose(
        loaded.thresholds.numpy(), [thresholds[name] for name in config["class_names"]]
    )
    rule = thresholds["image_score"]
    np.testing.assert_allclose(
        loaded.image_weights.numpy(),
        [rule["weights"][source] for source in ("classification", "mask", "detection")],
    )
    np.testing.assert_allclose(loaded.image_threshold.numpy(), rule["threshold"])
    image = np.random.default_rng(0).integers(0, 255, (1, 80, 70, 3)).astype(np.float32)
    served = loaded.signatures["serving_float"](images=tf.constant(image))
    model = keras.models.load_model(os.path.join(model_dir, "best.keras"))
    expected = model(prepare_image(image[0], (64, 64), 3)[None])["classification"]
    np.testing.assert_allclose(served["probabilities"].numpy(), expected.numpy(), atol=1e-5)


def test_export_into_an_existing_folder_is_refused(trained_run):
    model_dir, _ = trained_run
    export_dir = os.path.join(model_dir, "export", "1")
    result = run_launch("export", f"--model_dir={model_dir}", f"--export_dir={export_dir}")
    assert result.returncode == 1
    assert f"--export_dir: {export_dir} exists already" in result.stderr


@pytest.mark.slow(seconds=70)
def test_export_int8_openvino_calibrated_on_the_training_split(
    trained_run, synthetic_data_dir, tmp_path
):
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from defect_aux_net import Predictor
    from tests.export.edge_formats_test import INT8_PROBABILITY_TOLERANCE

    model_dir = copy_of_run(trained_run[0], tmp_path)
    result = run_launch(
        "export", f"--model_dir={model_dir}", f"--data_dir={synthetic_data_dir}",
        "--format=openvino", "--precision=int8", "--calibration_images=16",
    )
    check_success(result)
    export_dir = os.path.join(model_dir, "export_openvino_int8")
    assert f"as openvino to {export_dir}" in result.stdout
    metadata = json.load(open(os.path.join(export_dir, "edge_export.json")))
    assert metadata["precision"] == "int8"
    images = list(np.random.default_rng(1).integers(0, 255, (3, 70, 90, 3), np.uint8))
    int8 = Predictor.load(export_dir)(images)
    saved_model = Predictor.load(os.path.join(model_dir, "export", "1"))(images)
    for quantized, reference in zip(int8, saved_model):
        for name, probability in reference.probabilities.items():
            assert abs(quantized.probabilities[name] - probability) <= INT8_PROBABILITY_TOLERANCE


@pytest.mark.extended
@pytest.mark.slow(seconds=60)
def test_export_bfloat16_saved_model_computes_in_bfloat16(trained_run, tmp_path):
    model_dir, _ = trained_run
    export_dir = str(tmp_path / "bf16")
    result = run_launch(
        "export", f"--model_dir={model_dir}", f"--export_dir={export_dir}", "--precision=bfloat16"
    )
    check_success(result)
    image = tf.constant(np.random.default_rng(2).integers(0, 255, (2, 64, 64, 3)), tf.float32)
    bfloat16 = tf.saved_model.load(export_dir).signatures["serving_float"](images=image)
    float32 = tf.saved_model.load(
        os.path.join(model_dir, "export", "1")
    ).signatures["serving_float"](images=image)
    tolerance = tolerances.bfloat16_output_tolerance()
    for name in ("probabilities", "masks"):
        tolerances.assert_close(bfloat16[name], float32[name], tolerance, name)
    # Not the float32 graph again: bfloat16 rounding changed the masks.
    assert not np.array_equal(bfloat16["masks"].numpy(), float32["masks"].numpy())


@pytest.mark.slow(seconds=40)
def test_export_bfloat16_openvino_runs_in_the_predictor_as_the_saved_model(
    trained_run, tmp_path
):
    pytest.importorskip("openvino")
    from defect_aux_net import Predictor

    model_dir = copy_of_run(trained_run[0], tmp_path)
    check_success(run_launch("export", f"--model_dir={model_dir}", "--format=openvino",
                             "--precision=bfloat16"))
    export_dir = os.path.join(model_dir, "export_openvino_bfloat16")
    metadata = json.load(open(os.path.join(export_dir, "edge_export.json")))
    assert metadata["precision"] == "bfloat16"
    images = list(np.random.default_rng(1).integers(0, 255, (3, 70, 90, 3), np.uint8))
    bfloat16 = Predictor.load(export_dir)(images)
    saved_model = Predictor.load(os.path.join(model_dir, "export", "1"))(images)
    tolerance = tolerances.bfloat16_output_tolerance()
    for rounded, reference in zip(bfloat16, saved_model):
        for name, probability in reference.probabilities.items():
            assert abs(rounded.probabilities[name] - probability) <= tolerance


@pytest.mark.parametrize(
    "format, precision, message",
    [
        ("onnx", "int8", "--precision=int8 is for --format=litert or --format=openvino"),
        ("litert", "bfloat16", "--precision=bfloat16 is for --format=saved_model or "
         "--format=openvino"),
    ],
)
def test_export_precision_for_a_format_without_it_names_the_flags(
    trained_run, format, precision, message
):
    result = run_launch(
        "export", f"--model_dir={trained_run[0]}", f"--format={format}",
        f"--precision={precision}", timeout=120,
    )
    assert result.returncode == 1
    assert message in result.stderr
