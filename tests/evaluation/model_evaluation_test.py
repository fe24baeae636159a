import json

import keras
import numpy as np
import pytest
from PIL import Image

from defect_aux_net.data.pipeline import InputOptions, make_dataset
from defect_aux_net.evaluation.evaluator import Evaluator
from defect_aux_net.evaluation.model_evaluation import predict_batches, write_evaluation
from defect_aux_net.inference.postprocessing import ImageRule, decode_outputs
from defect_aux_net.models.model_builders import build_model, model_config
from tests.data.synthetic_fixture import synthetic_small_builder
from tests.tolerances import assert_close, box_tolerance, float32_output_tolerance


def filled_evaluator(tasks, image_rule=None):
    evaluator = Evaluator(
        ["scratch", "pit"], tasks, thresholds=[0.5, 0.3], image_rule=image_rule
    )
    masks = np.zeros((3, 4, 4, 2))
    masks[0, :2, :2, 0] = 1
    evaluator.update(
        {"labels": np.array([[1, 0], [0, 1], [0, 0]]), "masks": masks,
         "has_mask": np.ones(3, bool)},
        # scratch found, pit missed, the defect-free image rejected as pit.
        {"probabilities": np.array([[0.8, 0.1], [0.2, 0.1], [0.1, 0.4]]), "masks": masks},
    )
    return evaluator


def test_counts_and_the_confusion_matrix_are_written_beside_the_metrics(tmp_path):
    output = tmp_path / "metrics_test.json"
    write_evaluation(filled_evaluator(("classification",)), str(output))

    metrics = json.loads(output.read_text())
    classification = metrics["classification"]
    # Image level: TP (image 0), FN (image 1: a missed defect), FP (image 2: a false reject).
    assert [classification[name] for name in ("tp", "fp", "fn", "tn")] == [1, 1, 1, 0]
    assert [metrics["classification"]["per_class"]["pit"][name] for name in
            ("tp", "fp", "fn", "tn", "threshold")] == [0, 1, 1, 1, 0.3]
    assert classification["confusion_matrix"]["counts"] == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]
    assert "missed defective images" in (tmp_path / "metrics_test.md").read_text()
    with Image.open(tmp_path / "metrics_test_confusion_matrix.png") as image:
        assert image.format == "PNG"


def test_without_classification_no_confusion_matrix_is_drawn(tmp_path):
    output = tmp_path / "metrics_test.json"
    write_evaluation(filled_evaluator(("segmentation",)), str(output))
    assert (tmp_path / "metrics_test_pr_curves.png").exists()
    assert not (tmp_path / "metrics_test_confusion_matrix.png").exists()
    assert {"tp", "fp", "fn", "tn"} <= set(json.loads(output.read_text())["image_ap"])


def test_the_image_rule_is_written_with_the_thresholds(tmp_path):
    output = tmp_path / "metrics_test.json"
    rule = ImageRule.from_weights({"classification": 0.4, "mask": 0.6}, 0.7)
    write_evaluation(filled_evaluator(("classification", "segmentation"), rule), str(output))
    metrics = json.loads(output.read_text())
    assert metrics["thresholds"]["image_rule"] == {
        "classification": 0.4, "mask": 0.6, "detection": 0.0, "threshold": 0.7
    }
    # Fused: 0.4 * 0.8 + 0.6 * 1 = 0.92, 0.4 * 0.2 = 0.08, 0.4 * 0.4 = 0.16; at 0.7
    # image 0 is flagged, the missed pit (image 1) and the defect-free image are not.
    assert metrics["image_ap"]["score"] == "fused"
    assert [metrics["image_ap"]["is_defective"][name] for name in ("tp", "fp", "fn", "tn")] == [
        1, 0, 1, 1
    ]
    table = (tmp_path / "metrics_test.md").read_text()
    assert "| image_rule |" in table and "| is_defective |" in table


@pytest.mark.parametrize("name", ["defect_aux_net", "faster_rcnn"])
def test_traced_predictions_are_the_eager_decoding_of_each_batch(tmp_path_factory, name):
    # Five images in batches of 4: the last batch of 1 traces the graph again.
    builder = synthetic_small_builder(tmp_path_factory)
    keras.utils.set_random_seed(0)
    model = build_model(model_config(name, "small", input_shape=(128, 128, 1)))
    split = "validation[:5]"
    dataset = make_dataset(
        builder, split, model.config, InputOptions(4, training=False, ground_truth=True)
    )
    batches = list(predict_batches(model, builder, split, 4))
    assert [len(truth["labels"]) for truth, _ in batches] == [4, 1]
    for (images, truth), (traced_truth, traced) in zip(dataset, batches):
        np.testing.assert_array_equal(truth["labels"].numpy(), traced_truth["labels"])
        eager = decode_outputs(
            model(images, training=False), model.config, model.anchors,
            normalize_boxes=False, check_finite=False,
        )
        assert set(traced) == set(eager)
        # The same float32 sums, ordered differently in the graph (`tests/tolerances.py`);
        # boxes are in pixels of the 128-pixel input.
        tolerance = float32_output_tolerance()
        for key, value in eager.items():
            value = np.asarray(value)
            if not np.issubdtype(value.dtype, np.floating):
                np.testing.assert_array_equal(traced[key], value, err_msg=key)
            elif "boxes" in key:
                assert_close(traced[key], value, 128 * box_tolerance(tolerance), key)
            else:
                assert_close(traced[key], value, tolerance, key)


def test_a_model_run_outside_tensorflow_is_predicted_eagerly(tmp_path_factory):
    # An export run by its own runtime (`precision_comparison.ExportedModel`) takes numpy
    # arrays, which a traced graph cannot give it.
    builder = synthetic_small_builder(tmp_path_factory)
    keras.utils.set_random_seed(0)
    model = build_model(model_config("defect_aux_net", "small", input_shape=(128, 128, 1)))

    class NumpyModel:
        config, anchors = model.config, model.anchors

        def __call__(self, images, training=False):
            return {k: np.asarray(v) for k, v in model(np.asarray(images), training=training).items()}

    split = "validation[:5]"
    for (_, eager), (_, traced) in zip(
        predict_batches(NumpyModel(), builder, split, 4), predict_batches(model, builder, split, 4)
    ):
        assert set(eager) == set(traced)
        assert_close(eager["probabilities"], traced["probabilities"], float32_output_tolerance())
