"""launch.evaluate and launch.export on broken run folders, and an export killed half-way."""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from defect_aux_net.training import run_files
from tests.launch.conftest import REPO, check_success, copy_of_run, files_in, run_launch


def truncate(path):
    with open(path, "rb") as file:
        data = file.read()
    with open(path, "wb") as file:
        file.write(data[: len(data) // 2])


def drop_a_class(path):
    with open(path) as file:
        thresholds = json.load(file)
    del thresholds["pit"]
    with open(path, "w") as file:
        json.dump(thresholds, file)


@pytest.mark.parametrize(
    "script, name, damage, expected",
    [
        # One case per script: each costs a TensorFlow start; run_files_test has the rest.
        (
            "evaluate",
            "thresholds.json",
            drop_a_class,
            r"thresholds.json has no threshold for class\(es\) \['pit'\]",
        ),
        ("export", "best.keras", truncate, r"best.keras cannot be loaded as a Keras model"),
    ],
    ids=["thresholds_missing_a_class", "truncated_checkpoint"],
)
def test_a_broken_run_file_is_named(trained_run, tmp_path, script, name, damage, expected):
    model_dir = copy_of_run(trained_run[0], tmp_path)
    path = os.path.join(model_dir, name)
    damage(path)
    result = run_launch(script, f"--model_dir={model_dir}", timeout=120)
    assert result.returncode == 1
    message = result.stderr.strip().splitlines()[-1]  # absl's usage error, printed last.
    assert path in message
    assert re.search(expected, message), message
    assert sorted(os.listdir(os.path.join(model_dir, "export"))) == ["1"]


def test_without_thresholds_evaluate_uses_one_half_and_says_so(
    trained_run, synthetic_data_dir, tmp_path
):
    model_dir = copy_of_run(trained_run[0], tmp_path)
    os.remove(os.path.join(model_dir, "thresholds.json"))
    output = str(tmp_path / "metrics.json")
    result = run_launch(
        "evaluate", f"--model_dir={model_dir}", f"--data_dir={synthetic_data_dir}",
        "--split=test[:8]", f"--output={output}",
    )
    check_success(result)
    assert f"{model_dir}/thresholds.json does not exist: every class uses the threshold 0.5" in (
        result.stderr
    )
    metrics = json.load(open(output))
    assert metrics["thresholds"]["source"] == "default 0.5 (no thresholds file)"
    assert metrics["thresholds"]["per_class"] == {
        name: {"threshold": 0.5} for name in ("scratch", "crack", "pit", "blotch")
    }
    assert "default 0.5 (no thresholds file)" in open(str(tmp_path / "metrics.md")).read()


def digest(folder):
    digests = {}
    for path in sorted(files_in(folder)):
        with open(os.path.join(folder, path), "rb") as file:
            digests[path] = hashlib.sha256(file.read()).hexdigest()
    return digests


@pytest.mark.extended
@pytest.mark.slow(seconds=70)
def test_an_export_killed_half_way_is_never_picked_up(trained_run, tmp_path):
    model_dir = copy_of_run(trained_run[0], tmp_path)
    export_base = os.path.join(model_dir, "export")
    first = digest(os.path.join(export_base, "1"))
    before = files_in(export_base)
    process = subprocess.Popen(
        [sys.executable, "-m", "launch.export", f"--model_dir={model_dir}"],
        cwd=REPO,
        env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 300
    # Killed as soon as the export has written its first file.
    while files_in(export_base) == before and time.time() < deadline:
        assert process.poll() is None, "the export ended before it could be killed"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert files_in(export_base) != before, "kill the export while it writes"

    # Version 1 is as it was; a version the kill left behind is complete, or absent.
    assert digest(os.path.join(export_base, "1")) == first
    latest = run_files.latest_export(model_dir)
    versions = [name for name in os.listdir(export_base) if name.isdigit()]
    assert versions == ["1"] or (sorted(versions) == ["1", "2"] and latest.endswith("2"))
    assert "serving_float" in tf.saved_model.load(latest).signatures
    # The next export takes the next version and removes what the kill left.
    assert run_files.next_export_dir(export_base) == os.path.join(
        export_base, str(len(versions) + 1)
    )
    assert sorted(os.listdir(export_base)) == sorted(versions)
