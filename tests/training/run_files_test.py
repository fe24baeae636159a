import dataclasses
import json
import os

import keras
import pytest

from defect_aux_net.config_errors import ConfigError
from defect_aux_net.experiments import ExperimentConfig
from defect_aux_net.training import run_files

CLASS_NAMES = ("scratch", "pit")


def experiment(**overrides):
    return ExperimentConfig.from_preset("quickstart", **overrides).for_classes(CLASS_NAMES)


def run_dir(tmp_path, complete=False, **overrides):
    """A model_dir as launch.train leaves it (without the model files)."""
    model_dir = str(tmp_path / "run")
    paths = run_files.model_dir_paths(model_dir)
    run_files.write_config(experiment(**overrides), CLASS_NAMES, paths["config"])
    if complete:
        run_files.write_completion(model_dir, {"best": paths["best"]})
    return model_dir


def test_state_of_a_new_a_killed_and_a_complete_run(tmp_path):
    assert run_files.model_dir_state(str(tmp_path / "none"), experiment(), CLASS_NAMES) == "new"
    assert run_files.model_dir_state(run_dir(tmp_path), experiment(), CLASS_NAMES) == "resume"
    complete = run_dir(tmp_path, complete=True)
    assert run_files.model_dir_state(complete, experiment(), CLASS_NAMES) == "complete"
    assert run_files.read_completion(complete) == {"best": os.path.join(complete, "best.keras")}
    assert (
        run_files.model_dir_state(complete, experiment(), CLASS_NAMES, overwrite=True) == "new"
    )


def test_another_configuration_names_the_argument_and_every_differing_field(tmp_path):
    model_dir = run_dir(tmp_path, complete=True, epochs=2)
    model = dataclasses.replace(experiment().model, input_shape=(32, 32, 3))
    other = experiment(epochs=3, model=model)
    with pytest.raises(ConfigError) as raised:
        run_files.model_dir_state(model_dir, other, CLASS_NAMES)
    message = str(raised.value)
    assert raised.value.field == "model_dir" and "--" not in message
    assert message.startswith(f"model_dir={model_dir} holds a run of another configuration")
    assert "overwrite=True" in message
    assert "epochs: 2 -> 3" in message
    assert "model.input_shape: [128, 128, 3] -> [32, 32, 3]" in message
    assert message.count(" -> ") == 2  # Only the fields that differ.
    with pytest.raises(ValueError, match=r"class_names: \[\"scratch\", \"pit\"\] -> \[\"a\""):
        run_files.model_dir_state(model_dir, experiment(epochs=2), ("a", "b"))


@pytest.mark.parametrize(
    "corrupt, expected",
    [
        (lambda text: text[: len(text) // 2], r"config.json is not valid JSON .*truncated"),
        (
            lambda text: json.dumps({k: v for k, v in json.loads(text).items() if k != "seed"}),
            r"config.json is incomplete .*lacks \['seed'\]",
        ),
        (
            lambda text: json.dumps(json.loads(text) | {"epochs": 0}),
            r"config.json holds an invalid configuration: ExperimentConfig.epochs must be >= 1",
        ),
    ],
    ids=["truncated", "missing_field", "invalid_value"],
)
def test_a_broken_config_is_named(tmp_path, corrupt, expected):
    model_dir = run_dir(tmp_path)
    path = os.path.join(model_dir, "config.json")
    with open(path) as file:
        text = file.read()
    with open(path, "w") as file:
        file.write(corrupt(text))
    with pytest.raises(ValueError, match=expected):
        run_files.read_config(model_dir)


def test_a_config_from_before_the_augmentation_fields_reads_with_their_defaults(tmp_path):
    model_dir = run_dir(tmp_path)
    path = os.path.join(model_dir, "config.json")
    added = ("augmentation", "augmentation_weights", "segmentation_label_fraction")
    with open(path) as file:
        values = {k: v for k, v in json.load(file).items() if k not in added}
    with open(path, "w") as file:
        json.dump(values, file)
    read, _ = run_files.read_config(model_dir)
    assert (read.augmentation, read.augmentation_weights, read.segmentation_label_fraction) == (
        "defect_aux_net", (1.0, 1.0, 1.0), 1.0
    )
    assert run_files.model_dir_state(model_dir, experiment(), CLASS_NAMES) == "resume"


def test_a_truncated_checkpoint_is_named(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    path = str(tmp_path / "best.keras")
    model.save(path)
    data = open(path, "rb").read()
    with open(path, "wb") as file:
        file.write(data[: len(data) // 2])
    with pytest.raises(ValueError, match=rf"{path} cannot be loaded as a Keras model .*truncated"):
        run_files.load_model(path)


def make_export(folder):
    os.makedirs(folder)
    open(os.path.join(folder, "saved_model.pb"), "wb").close()


def test_exports_are_numbered_and_partial_ones_ignored(tmp_path):
    base = str(tmp_path / "export")
    assert run_files.next_export_dir(base) == os.path.join(base, "1")
    make_export(os.path.join(base, "1"))
    make_export(os.path.join(base, "2"))
    os.makedirs(os.path.join(base, "3"))  # No saved_model.pb: not complete.
    make_export(os.path.join(base, "4.partial-0123abcd"))  # A killed export's folder.
    assert run_files.export_versions(base) == [1, 2]
    assert run_files.latest_export(base) == os.path.join(base, "2")
    # After the highest folder, complete or not; the partial one is removed.
    assert run_files.next_export_dir(base) == os.path.join(base, "4")
    assert sorted(os.listdir(base)) == ["1", "2", "3"]


def test_latest_export_of_a_model_dir(tmp_path):
    model_dir = run_dir(tmp_path)
    with pytest.raises(ValueError, match="holds no complete export"):
        run_files.latest_export(model_dir)
    make_export(os.path.join(model_dir, "export", "1"))
    assert run_files.latest_export(model_dir) == os.path.join(model_dir, "export", "1")


def test_overwrite_deletes_the_run_files_only(tmp_path):
    model_dir = run_dir(tmp_path, complete=True)
    paths = run_files.model_dir_paths(model_dir)
    for path in (paths["best"], paths["history"], os.path.join(model_dir, "metrics_test.md")):
        open(path, "w").close()
    make_export(os.path.join(paths["export"], "1"))
    os.makedirs(os.path.join(paths["backup"]))
    open(os.path.join(model_dir, "notes.txt"), "w").close()
    run_files.clear_model_dir(model_dir)
    assert os.listdir(model_dir) == ["notes.txt"]


def test_a_config_written_before_later_fields_existed_loads_and_resumes(tmp_path):
    model_dir = run_dir(tmp_path)
    path = os.path.join(model_dir, "config.json")
    values = json.load(open(path))
    for name in ("init_checkpoint", "time_budget", "early_stopping_patience", "recipe",
                 "model_name", "optimizer", "weight_decay", "ema_momentum"):
        del values[name]
    del values["model"]["input_normalization"]
    del values["model"]["p2_output_conv"]
    with open(path, "w") as file:
        json.dump(values, file)
    loaded, class_names = run_files.read_config(model_dir)
    assert (loaded, class_names) == (experiment(), CLASS_NAMES)
    assert (loaded.model_name, loaded.optimizer) == ("defect_aux_net", "one_cycle_adam")
    assert run_files.model_dir_state(model_dir, experiment(), CLASS_NAMES) == "resume"
    # What a rerun compares its measured choices with (auto_recipe.reuse_stored).
    stored = run_files.read_stored_config(model_dir)
    assert stored == run_files.config_dict(experiment(), CLASS_NAMES)


def test_a_segdec_config_written_before_batch_reduction_loads_as_the_mean_it_trained_with(
    tmp_path,
):
    segdec = ExperimentConfig.from_preset("segdec_small").for_classes(CLASS_NAMES)
    model_dir = str(tmp_path / "run")
    path = run_files.model_dir_paths(model_dir)["config"]
    run_files.write_config(segdec, CLASS_NAMES, path)
    values = json.load(open(path))
    del values["model"]["batch_reduction"]
    with open(path, "w") as file:
        json.dump(values, file)
    loaded, _ = run_files.read_config(model_dir)
    assert loaded.model.batch_reduction == "mean"
    assert loaded == segdec
