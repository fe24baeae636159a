import dataclasses
import json
import os

import numpy as np

from defect_aux_net.evaluation.model_evaluation import choose_decision_rules, evaluate_model
from defect_aux_net.training import run_files
from defect_aux_net.training.batch_norm_statistics import batch_norm_layers
from defect_aux_net.training.run_completion import complete_run
from defect_aux_net.training.thresholds_file import read_thresholds
from defect_aux_net.training.training_run import prepare_training_data, training_input_options

# The trained run of the launch tests (a two-epoch quickstart run on the synthetic set).
from tests.launch.conftest import copy_of_run, synthetic_data_dir, trained_run  # noqa: F401


def moving_means(model) -> list:
    return [layer.moving_mean.numpy().copy() for layer in batch_norm_layers(model)]


def test_completion_recomputes_batch_norm_then_decides_and_evaluates_with_it(
    trained_run, synthetic_data_dir, tmp_path  # noqa: F811
):
    # A run killed after its last epoch: no thresholds, metrics or completion yet.
    model_dir = copy_of_run(trained_run[0], tmp_path)
    paths = run_files.model_dir_paths(model_dir)
    for name in ("complete", "thresholds"):
        os.remove(paths[name])
    os.makedirs(paths["backup"])
    experiment, _ = run_files.read_config(model_dir)
    experiment = dataclasses.replace(experiment, batch_norm_images=16)
    data = prepare_training_data(experiment, synthetic_data_dir)
    best = run_files.load_model(paths["best"])
    before = moving_means(best)

    thresholds = complete_run(
        best, data, model_dir, training_input_options(data.experiment), export=False,
        test_split="test",
    )

    # The statistics changed, and best.keras holds them.
    reloaded = run_files.load_model(paths["best"])
    after = moving_means(reloaded)
    assert any(not np.allclose(old, new) for old, new in zip(before, after))
    for saved, in_memory in zip(after, moving_means(best)):
        np.testing.assert_array_equal(saved, in_memory)
    # Thresholds and metrics come from the model with the new statistics.
    rules = choose_decision_rules(
        reloaded, data.builder, data.experiment.validation_split,
        min(data.experiment.batch_size, 32),
    )
    np.testing.assert_array_equal(thresholds, rules.thresholds)
    # thresholds.json is read back as float32.
    np.testing.assert_array_equal(
        read_thresholds(model_dir, data.class_names), np.float32(thresholds)
    )
    expected = evaluate_model(
        reloaded, data.builder, "test", data.class_names, thresholds,
        image_rule=rules.image.rule,
    ).result()
    written = json.load(open(os.path.join(model_dir, "metrics_test.json")))
    assert written["classification"] == json.loads(json.dumps(expected["classification"]))
    assert written["thresholds"]["source"] == paths["thresholds"]
    # Complete, without the export it was not asked for; nothing left to resume from.
    outputs = run_files.read_completion(model_dir)
    assert "export" not in outputs and outputs["metrics"].endswith("metrics_test.json")
    assert not os.path.exists(paths["backup"])
