import os
import subprocess
import sys



def test_scripts_find_the_builders_from_any_directory(tmp_path):
    # The installed commands run outside the repository, where tfds_builders is not
    # importable by itself: an unbuilt neu_det would then be an unknown dataset.
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import launch; from defect_aux_net.data import datasets; "
            f"datasets.load_builder('neu_det', {str(tmp_path / 'tfds')!r})",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ""},
    )
    assert result.returncode != 0
    assert "is not built in" in result.stderr, result.stderr[-2000:]
    assert "tfds build tfds_builders/neu_det" in result.stderr


def test_installed_command_runs_outside_the_repository(tmp_path):
    command = os.path.join(os.path.dirname(sys.executable), "defect-aux-net-train")
    result = subprocess.run(
        [command, "--help"], cwd=tmp_path, capture_output=True, text=True,
        env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ""},
    )
    assert "USAGE: " in result.stdout  # absl's --help exits with status 1.
    # The script's own flags and those it shares with the others (experiment_flags).
    for flag in ("--model_dir", "--preset", "--dataset", "--epochs", "--batch_size"):
        assert f"  {flag}" in result.stdout, flag
