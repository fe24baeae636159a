import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.launch.conftest import (
    REPO,
    TINY_TRAINING,
    TRAINED_RUN,
    check_success,
    copy_of_run,
    files_in,
    run_launch,
)

METRIC_KEYS = {
    "classification": {"accuracy", "precision", "recall", "f1", "per_class"},
    "segmentation": {
        "dice", "iou", "dice_per_image", "iou_per_image", "label_map_miou", "per_class"
    },
    "detection": {"map", "map50", "ar", "per_class"},
    "image_ap": {"ap", "fp", "fn", "threshold"},
    "thresholds": {"source", "per_class"},
}


def history_epochs(model_dir):
    path = os.path.join(model_dir, "history.csv")
    if not os.path.exists(path):
        return []
    with open(path) as file:
        return [int(row["epoch"]) for row in csv.DictReader(file)]


def test_train_writes_config_checkpoint_export_logs_and_metrics(trained_run):
    model_dir, stdout = trained_run
    config = json.load(open(os.path.join(model_dir, "config.json")))
    assert config["model"]["input_shape"] == [64, 64, 3]
    assert config["model"]["num_classes"] == 4  # From the dataset, not the preset.
    assert config["dataset"] == "synthetic_defects/small"
    assert config["class_names"] == ["scratch", "crack", "pit", "blotch"]
    assert history_epochs(model_dir) == [0, 1]
    assert os.path.exists(os.path.join(model_dir, "best.keras"))
    assert os.path.exists(os.path.join(model_dir, "export", "1", "saved_model.pb"))
    thresholds = json.load(open(os.path.join(model_dir, "thresholds.json")))
    # Three heads and a validation split of both kinds: an image rule beside the classes.
    image_rule = thresholds.pop("image_score")
    assert set(image_rule["weights"]) == {"classification", "mask", "detection"}
    assert sum(image_rule["weights"].values()) == pytest.approx(1)
    assert set(thresholds) == set(config["class_names"])
    assert all(0 <= value <= 1 for value in thresholds.values())

    metrics = json.load(open(os.path.join(model_dir, "metrics_test.json")))
    for key, fields in METRIC_KEYS.items():
        assert fields <= set(metrics[key]), key
    assert os.path.exists(os.path.join(model_dir, "metrics_test.md"))
    assert os.path.exists(os.path.join(model_dir, "metrics_test_pr_curves.png"))
    assert os.path.exists(os.path.join(model_dir, "metrics_test_confusion_matrix.png"))
    # The training curves beside history.csv, which logs the learning rate.
    assert os.path.exists(os.path.join(model_dir, "results.png"))
    with open(os.path.join(model_dir, "history.csv")) as file:
        assert all(float(row["learning_rate"]) > 0 for row in csv.DictReader(file))
    assert "dice" in stdout  # The printed metrics table.
    assert os.path.join(model_dir, "export", "1") in stdout
    # The test metrics name the thresholds they used.
    assert metrics["thresholds"]["source"] == os.path.join(model_dir, "thresholds.json")
    assert {
        name: value["threshold"] for name, value in metrics["thresholds"]["per_class"].items()
    } == pytest.approx(thresholds)
    # ... and the image rule, whose fused score decides is_defective.
    assert metrics["thresholds"]["image_rule"] == pytest.approx(
        image_rule["weights"] | {"threshold": image_rule["threshold"]}
    )
    assert metrics["image_ap"]["score"] == "fused"
    assert set(metrics["image_ap"]["per_source"]) == {
        "classification", "mask", "detection", "fused"
    }
    # Complete: the marker lists the outputs; the backup is gone.
    complete = json.load(open(os.path.join(model_dir, "complete.json")))
    assert complete["outputs"]["export"] == os.path.join(model_dir, "export", "1")
    assert complete["outputs"]["metrics"] == os.path.join(model_dir, "metrics_test.json")
    assert not os.path.exists(os.path.join(model_dir, "backup"))

    image_tags = set()
    for event_file in tf.io.gfile.glob(os.path.join(model_dir, "logs", "**", "events.*")):
        for event in tf.compat.v1.train.summary_iterator(event_file):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "images":
                    image_tags.add(value.tag)
    assert image_tags, "no prediction images in TensorBoard logs"


@pytest.mark.extended
@pytest.mark.slow(seconds=100)
def test_killed_run_resumes_without_losing_epochs(synthetic_data_dir, tmp_path):
    model_dir = str(tmp_path / "run")
    args = [
        # Classification alone: resuming does not depend on the heads, and the full
        # model, run twice, took four minutes of CI. 32 steps per epoch.
        *TINY_TRAINING, "--epochs=2", "--train_fraction=0.5", "--test_split=",
        "--export=false", "--attention=none", "--tasks=classification",
        "--backup_steps=1",  # A backup after each epoch (the default waits 50 steps).
        f"--data_dir={synthetic_data_dir}", f"--model_dir={model_dir}",
    ]
    env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2"}
    process = subprocess.Popen(
        [sys.executable, "-m", "launch.train", *args], cwd=REPO, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    while history_epochs(model_dir) != [0] and time.time() < deadline:
        assert process.poll() is None, "training ended before it could be killed"
        time.sleep(0.5)
    time.sleep(2)  # Into the second epoch, which takes longer than this.
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert history_epochs(model_dir) == [0], "kill the run mid-epoch 2"

    result = run_launch("train", *args)  # The resume needs no process of its own.
    check_success(result)
    # Epoch 0 is not run again; the interrupted epoch 1 runs once.
    assert history_epochs(model_dir) == [0, 1]
    assert os.path.exists(os.path.join(model_dir, "best.keras"))


@pytest.mark.slow(seconds=40)
def test_rerunning_a_complete_run_trains_nothing_and_another_config_is_refused(
    trained_run, synthetic_data_dir
):
    model_dir, _ = trained_run
    before = files_in(model_dir)
    same = run_launch(
        "train", *TRAINED_RUN, f"--data_dir={synthetic_data_dir}", f"--model_dir={model_dir}"
    )
    check_success(same)
    assert "holds this run, complete: nothing to train" in same.stdout
    assert f"SavedModel: {os.path.join(model_dir, 'export', '1')}" in same.stdout
    assert f"Test metrics: {os.path.join(model_dir, 'metrics_test.json')}" in same.stdout

    other = run_launch(
        "train", *TRAINED_RUN, "--input_size=32,32", "--learning_rate=0.003",
        f"--data_dir={synthetic_data_dir}", f"--model_dir={model_dir}",
    )
    assert other.returncode == 1
    message = other.stderr.strip().splitlines()[-1]
    assert f"--model_dir={model_dir} holds a run of another configuration" in message
    assert "learning_rate: 0.002 -> 0.003" in message
    assert "model.input_shape: [64, 64, 3] -> [32, 32, 3]" in message
    assert "--overwrite" in message
    assert files_in(model_dir) == before  # Neither run changed a file.


@pytest.mark.slow(seconds=60)
def test_overwrite_starts_the_model_dir_afresh(trained_run, synthetic_data_dir, tmp_path):
    model_dir = copy_of_run(trained_run[0], tmp_path)
    result = run_launch(
        # Classification alone: what is deleted does not depend on the heads.
        "train", *TINY_TRAINING, "--epochs=1", "--tasks=classification", "--attention=none",
        "--test_split=", "--export=false", "--overwrite", f"--data_dir={synthetic_data_dir}",
        f"--model_dir={model_dir}",
    )
    check_success(result)
    assert f"deleting the run in {model_dir}" in result.stderr
    config = json.load(open(os.path.join(model_dir, "config.json")))
    assert config["model"]["tasks"] == ["classification"]
    assert history_epochs(model_dir) == [0]  # One epoch 0, not the old run's two epochs too.
    # Nothing of the old run is left: its export and test metrics went with it.
    assert sorted(os.listdir(model_dir)) == [
        "best.keras", "complete.json", "config.json", "history.csv", "logs", "results.png",
        "thresholds.json",
    ]
    import keras

    import defect_aux_net.models.defect_aux_net  # noqa: F401  (registers the classes)
    import defect_aux_net.training.one_cycle  # noqa: F401

    best = keras.models.load_model(os.path.join(model_dir, "best.keras"))
    assert best.config.tasks == ("classification",)  # The new run's model.


@pytest.mark.extended
@pytest.mark.slow(seconds=130)
def test_mirrored_on_two_cpu_devices_trains_like_default(synthetic_data_dir, tmp_path):
    model_dir = str(tmp_path / "run")
    result = run_launch(
        # Two replicas with two images each: what mirroring does (the batch split over
        # replicas, gradients all-reduced, losses divided by the replica count) is the
        # same for a TPU v2-8's eight, and the step is traced and optimised once per
        # replica (eight took 5.5 min of the suite, four 3). Tracing dominates even so:
        # the result's shape does not depend on the attention layers. XLA, the
        # default, cannot run across logical CPUs: the script must train without it.
        "train", *TINY_TRAINING, "--epochs=1", "--batch_size=4", "--strategy=mirrored",
        "--attention=none", "--cpu_devices=2", "--export=false", "--jit_compile=true",
        "--validation_split=validation[:16]",
        "--test_split=test[:16]", f"--data_dir={synthetic_data_dir}",
        f"--model_dir={model_dir}",
        timeout=900,  # Generous: the other workers' tests load both cores meanwhile.
        fresh_process=True,  # Logical CPU devices are set before TensorFlow starts.
    )
    check_success(result)
    assert "2 replica(s)" in result.stderr
    assert "jit_compile=True is ignored" in result.stderr  # The library's warning.
    # The keys that test_train_writes_config_checkpoint_export_logs_and_metrics finds.
    mirrored = json.load(open(os.path.join(model_dir, "metrics_test[:16].json")))
    assert set(mirrored) == set(METRIC_KEYS)
    for key, fields in METRIC_KEYS.items():
        assert fields <= set(mirrored[key]), key


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def trainable_weights(path):
    import keras

    import defect_aux_net.models.defect_aux_net  # noqa: F401  (registers the classes)
    import defect_aux_net.training.one_cycle  # noqa: F401

    model = keras.models.load_model(path)
    return [variable.numpy() for variable in model.trainable_weights]


@pytest.mark.extended
@pytest.mark.slow(seconds=80)
def test_two_workers_on_localhost_train_together(synthetic_data_dir, tmp_path):
    model_dir = str(tmp_path / "run")
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    args = [
        # Classification alone: what distribution does (sharded input, all-reduced
        # gradients, the chief writing) does not depend on the heads, and the full model
        # takes twice as long. The mirrored test runs the full model replicated.
        sys.executable, "-m", "launch.train", *TINY_TRAINING, "--epochs=1",
        "--strategy=multi_worker", "--tasks=classification", "--attention=none",
        "--test_split=", "--jit_compile=true",
        f"--data_dir={synthetic_data_dir}", f"--model_dir={model_dir}",
    ]
    workers = []
    for index in range(2):
        tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
        env = os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_CONFIG": json.dumps(tf_config)}
        workers.append(subprocess.Popen(
            args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ))
    results = []
    try:
        for worker in workers:
            stdout, stderr = worker.communicate(timeout=600)
            results.append(subprocess.CompletedProcess(args, worker.returncode, stdout, stderr))
    finally:
        # A worker that failed leaves the other waiting on a collective op for good.
        for worker in workers:
            worker.kill()
    for result in results:
        check_success(result)
        assert "2 replica(s)" in result.stderr
        # XLA has no collectives on CPU: both must train without it.
        assert "is ignored: XLA cannot run" in result.stderr

    # The chief (worker 0) writes the run; worker 1 only its own checkpoint, aside.
    assert history_epochs(model_dir) == [0]
    assert os.path.exists(os.path.join(model_dir, "export", "1", "saved_model.pb"))
    assert "SavedModel:" in results[0].stdout and "SavedModel:" not in results[1].stdout
    assert sorted(os.listdir(os.path.join(model_dir, "workers"))) == ["1"]
    assert os.listdir(os.path.join(model_dir, "workers", "1")) == ["best.keras"]
    # Each worker read its own half of every batch; the gradients were all-reduced across
    # workers, so both end with the same weights (without the all-reduce they differ).
    chief = trainable_weights(os.path.join(model_dir, "best.keras"))
    other = trainable_weights(os.path.join(model_dir, "workers", "1", "best.keras"))
    assert len(chief) == len(other) > 0
    for chief_value, other_value in zip(chief, other):
        np.testing.assert_array_equal(chief_value, other_value)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tasks=classification,boxes"], "--tasks"),
        (["--loss_weights=1,2"], "--loss_weights"),
        (["--input_size=64"], "--input_size"),
        (["--train_fraction=2"], "--train_fraction"),
        (["--strategy=tpu", "--tpu=grpc://127.0.0.1:1"], "--tpu"),
        (["--tpu=local"], "--tpu"),
        (["--strategy=gpu"], "--strategy"),
        (["--dataset=no_such_dataset"], "--dataset"),
        (["--strategy=multi_worker", "--time_budget=5m"], "--time_budget (--preset"),
    ],
)
def test_bad_flags_stop_with_a_message_naming_the_flag(args, message, tmp_path):
    result = run_launch("train", f"--model_dir={tmp_path}", *args, timeout=120)
    assert result.returncode != 0
    assert message in result.stderr + result.stdout


def test_missing_model_dir_is_reported():
    # absl's own app.run: a required flag missing ends the process with an error.
    result = run_launch("train", timeout=60, fresh_process=True)
    assert result.returncode != 0
    assert "model_dir" in result.stderr


# The segmentation + decision network, narrow (segdec_small), on the tiny synthetic set.
SEGDEC_TRAINING = (
    "--model=segdec",
    "--preset=segdec_small",
    "--dataset=synthetic_defects/small",
    "--input_size=128,128",
    "--batch_size=8",
    "--epochs=2",
    "--train_fraction=0.125",
    "--validation_split=validation[:32]",
    "--jit_compile=false",
)


@pytest.mark.extended
@pytest.mark.slow(seconds=70)
def test_segdec_trains_exports_evaluates_and_predicts_in_a_fresh_process(
    synthetic_data_dir, tmp_path
):
    import keras
    from PIL import Image

    from defect_aux_net.data.preprocessing import prepare_image
    from tests.tolerances import float32_output_tolerance

    model_dir = tmp_path / "run"
    result = run_launch(
        "train", *SEGDEC_TRAINING, f"--data_dir={synthetic_data_dir}", f"--model_dir={model_dir}"
    )
    check_success(result)
    config = json.loads((model_dir / "config.json").read_text())
    assert (config["model_name"], config["optimizer"]) == ("segdec", "one_cycle_adam")
    assert config["model"]["input_shape"] == [128, 128, 1]
    assert config["negative_sampling"] and config["distance_weights"] == [1.0, 2.0]
    assert (model_dir / "complete.json").exists()
    with open(model_dir / "history.csv") as file:
        assert {"classification_loss", "segmentation_loss"} <= set(next(csv.DictReader(file)))
    metrics = json.loads((model_dir / "metrics_test.json").read_text())
    assert {"classification", "segmentation", "image_ap"} <= set(metrics)
    export = model_dir / "export" / "1"
    # No gated signatures: the decision head needs the segmentation first.
    assert set(tf.saved_model.load(str(export)).signatures) == {
        "serving_default", "serving_float"
    }

    image = np.random.default_rng(0).integers(0, 256, (100, 90, 3), dtype=np.uint8)
    Image.fromarray(image).save(str(tmp_path / "part.png"))
    output_dir = tmp_path / "predictions"
    result = run_launch(
        "predict", f"--model={model_dir}", f"--inputs={tmp_path / 'part.png'}",
        f"--output_dir={output_dir}", fresh_process=True,
    )
    check_success(result)
    predicted = json.loads((output_dir / "predictions.json").read_text())
    assert predicted["model"] == str(export)
    best = keras.saving.load_model(str(model_dir / "best.keras"))
    expected = best(prepare_image(image, (128, 128), 1)[None])["classification"][0]
    np.testing.assert_allclose(
        list(predicted["predictions"][0]["probabilities"].values()),
        np.asarray(expected),
        atol=float32_output_tolerance(),
    )
