"""notebooks/defect_aux_net.ipynb: committed without outputs, and executed headless.

The notebook runs in a kernel of this interpreter (the venv that CI installs with
the `test` extra) in its tiny configuration (DEFECT_AUX_NET_NOTEBOOK_SMOKE=1: the small
network at 64x64, one epoch on 64 images); any cell error fails the test.
"""

import ast
import base64
import os
import shutil

import nbformat
import pytest
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient

from tests import tolerances
from tests.launch.conftest import REPO, synthetic_data_dir  # noqa: F401  the shared dataset

NOTEBOOK = os.path.join(REPO, "notebooks", "defect_aux_net.ipynb")
KERNEL = "defect-aux-net-notebook-test"


def test_committed_notebook_has_no_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code
    for cell in code:
        assert cell.outputs == [], f"cell {cell.id} has outputs: strip them"
        assert cell.execution_count is None, f"cell {cell.id} has an execution count"
    tagged = [cell for cell in code if "parameters" in cell.metadata.get("tags", ())]
    assert len(tagged) == 1, "one cell tagged `parameters` (papermill)"


def execute(notebook, folder, data_dir):
    """Runs `notebook` in `folder` with a kernel of this interpreter; returns it executed."""
    # Papermill's way: the values that differ from the parameters cell's, in a cell after it.
    index = next(
        i for i, cell in enumerate(notebook.cells) if "parameters" in cell.metadata.get("tags", ())
    )
    injected = nbformat.v4.new_code_cell(f"DATA_DIR = {data_dir!r}")
    injected.metadata["tags"] = ["injected-parameters"]
    notebook.cells.insert(index + 1, injected)
    kernels = folder / "kernels"
    write_kernel_spec(str(kernels / KERNEL))  # argv: sys.executable -m ipykernel_launcher
    manager = KernelManager(
        kernel_name=KERNEL, kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)])
    )
    work = folder / "work"
    work.mkdir()
    NotebookClient(
        notebook, km=manager, timeout=600, resources={"metadata": {"path": str(work)}}
    ).execute()
    return notebook


def text_of(cell) -> str:
    return "".join(output.get("text", "") for output in cell.outputs if output.output_type == "stream")


def png_outputs(cell) -> list:
    return [
        base64.b64decode(output["data"]["image/png"])
        for output in cell.outputs
        if output.output_type == "display_data" and "image/png" in output.get("data", {})
    ]


# 135 s for the notebook alone with the machine's load at 3 (118 s of the kernel's CPU),
# 304 s for the test at load 6; about 25 s of it is the range test, 65 s training,
# export and evaluation (launch.train's own steps), 20 s loading the export twice.
@pytest.mark.extended
@pytest.mark.slow(seconds=220)
def test_notebook_runs_headless_in_its_smoke_configuration(
    tmp_path, monkeypatch, synthetic_data_dir  # noqa: F811
):
    from defect_aux_net import Predictor

    # A copy: the notebook's last section builds its example folder into the data_dir.
    data_dir = shutil.copytree(synthetic_data_dir, tmp_path / "tfds")
    monkeypatch.setenv("DEFECT_AUX_NET_NOTEBOOK_SMOKE", "1")
    notebook = execute(nbformat.read(NOTEBOOK, as_version=4), tmp_path, str(data_dir))

    model_dir = tmp_path / "work" / "runs" / "smoke"
    assert (model_dir / "complete.json").exists()
    cells = {cell.id: cell for cell in notebook.cells if cell.cell_type == "code"}
    # The pictures the run folder holds are what the notebook shows.
    shown = [png for cell in cells.values() for png in png_outputs(cell)]
    for picture in ("results.png", "metrics_test[:32]_confusion_matrix.png"):
        assert (model_dir / picture).read_bytes() in shown, picture
    assert (tmp_path / "work" / "lr_find.png").read_bytes() in shown

    # serving_default of the reloaded SavedModel against the Keras model in this process.
    serving = next(cell for cell in cells.values() if "serving" in cell.metadata.get("tags", ()))
    lines = dict(line.split(": ", 1) for line in text_of(serving).splitlines() if ": " in line)
    served = ast.literal_eval(lines["probabilities"])
    sample = lines["image"]
    assert sample == str(tmp_path / "work" / "sample.png")
    keras_prediction = Predictor.load(str(model_dir / "best.keras"))(sample)[0]
    assert list(served) == list(keras_prediction.probabilities)
    tolerances.assert_close(
        list(served.values()),
        list(keras_prediction.probabilities.values()),
        tolerances.float32_output_tolerance(),
        "serving_default probabilities against the Keras model's",
    )
    assert lines["is_defective"] == str(keras_prediction.is_defective)
