import pytest

from defect_aux_net import row_runs
from defect_aux_net.config import DefectAuxNetConfig
from defect_aux_net.config_errors import ConfigError
from defect_aux_net.models import model_builders
from defect_aux_net.models.segdec_config import SegDecConfig
from defect_aux_net.paper_tables import TABLES, Row
from defect_aux_net.row_runs import RowRun, apply_fields, row_run
from defect_aux_net.training import table_runner


def test_the_cpu_budget_fits_the_first_rows_epochs_and_gives_them_to_the_others():
    table = TABLES["T4"]
    first = row_run(table, table.rows[0], "cpu", "neu_det", {"test_split": "validation"})
    assert first.preset == "auto"
    assert first.fields == {
        "dataset": "neu_det",
        "test_split": "validation",
        "time_budget": row_runs.CPU_ROW_SECONDS,
        "model.attention": "se+sa",
    }
    experiment = first.experiment()
    assert experiment.time_budget == 600.0
    assert experiment.model.backbone == "resnet18"  # The small network of the recipe.
    needs = r"needs the schedule \(epochs, passes_per_epoch, batch_size, "
    with pytest.raises(ValueError, match=needs):
        row_run(table, table.rows[1], "cpu", "neu_det")
    schedule = {"epochs": 7, "passes_per_epoch": 1.25, "batch_size": 8, "learning_rate": 0.00071}
    second = row_run(table, table.rows[1], "cpu", "neu_det", schedule=schedule)
    experiment = second.experiment()
    # Given epochs replace the auto preset's 30-minute budget, as launch.train's --epochs.
    assert (experiment.epochs, experiment.passes_per_epoch, experiment.time_budget) == (
        7, 1.25, None
    )
    assert (experiment.batch_size, experiment.learning_rate) == (8, 0.00071)
    assert experiment.model.attention == "none"
    # The recipe keeps the fields a run sets: the schedule is the first row's.
    assert {"epochs", "passes_per_epoch", "batch_size", "learning_rate"} <= set(second.fields)
    given = row_run(table, table.rows[0], "cpu", "neu_det", epochs=3).experiment()
    assert (given.epochs, given.time_budget) == (3, None)


def test_the_paper_budget_is_the_tables_paper_preset_with_the_rows_fields():
    table = TABLES["T1"]
    run = row_run(
        table, table.rows[1], "paper", "kolektor_sdd", tasks=("classification", "segmentation")
    )
    experiment = run.experiment()
    assert run.preset == "tekerreka"
    assert experiment.model.input_shape == (600, 600, 3)
    assert experiment.model.backbone == "resnet50"
    assert (experiment.epochs, experiment.batch_size) == (50, 128)
    assert experiment.model.tasks == ("classification", "segmentation")
    assert experiment.model.segmentation_loss == "bce"
    assert experiment.dataset == "kolektor_sdd"


def test_the_smoke_budget_is_one_epoch_at_64_pixels():
    table = TABLES["F10"]
    experiment = row_run(table, table.rows[0], "smoke", "neu_det").experiment()
    assert experiment.model.input_shape == (64, 64, 3)
    assert (experiment.epochs, experiment.time_budget) == (1, None)
    assert experiment.train_fraction == 0.9
    with pytest.raises(ValueError, match="Unknown budget 'gpu'"):
        row_run(table, table.rows[0], "gpu", "neu_det")


def test_a_row_of_another_network_sets_model_name():
    # Rows of the comparison networks (Tables II, III) are rows like these.
    run = RowRun(Row("SegDec", "segdec", {"model_name": "segdec"}, {}), "quickstart",
                 {"dataset": "kolektor_sdd", "model_name": "segdec"})
    experiment = run.experiment()
    assert experiment.model_name == "segdec"
    assert isinstance(experiment.model, SegDecConfig)
    assert experiment.model.input_shape == (128, 128, 3)  # The preset's.


@pytest.mark.parametrize("budget", ["cpu", "smoke"])
def test_other_networks_rows_at_a_cpu_budget_are_their_small_config(budget):
    table = TABLES["T3"]
    row = next(row for row in table.rows if row.fields.get("model_name") == "se_resnet50")
    schedule = {"batch_size": 8, "learning_rate": 1e-3, "epochs": 2}
    run = row_run(table, row, budget, "neu_det", schedule=schedule)
    assert run.model_preset == "small"
    experiment = run.experiment()
    small = model_builders.model_config("se_resnet50", "small")
    assert experiment.model_name == "se_resnet50"
    assert (experiment.model.backbone, experiment.model.attention) == ("resnet18", "se")
    size = (64, 64, 3) if budget == "smoke" else small.input_shape
    assert experiment.model.input_shape == size
    # The Defect-Aux-Net row is the recipe's own (small) network: no model preset.
    assert row_run(table, table.rows[0], budget, "neu_det").model_preset is None
    # At the paper budget every network is the paper's size.
    assert row_run(table, row, "paper", "neu_det").model_preset is None


def test_an_unknown_field_is_named():
    experiment = RowRun(Row("a", "a", {}, {}), "quickstart", {}).experiment()
    assert isinstance(experiment.model, DefectAuxNetConfig)
    with pytest.raises(ValueError, match="'model.atention' is not a field of DefectAuxNetConfig"):
        apply_fields(experiment, {"model.atention": "se"})
    with pytest.raises(ValueError, match="'epoch' is not a field of ExperimentConfig"):
        apply_fields(experiment, {"epoch": 3})


def test_a_table_with_a_network_the_library_lacks_says_so_before_training(monkeypatch):
    without_cascade = {
        name: entry for name, entry in model_builders.MODELS.items() if name != "cascade_rcnn"
    }
    monkeypatch.setattr(row_runs, "MODELS", without_cascade)
    for key in ("T1", "T2", "T3", "T4", "F10"):
        row_runs.check_models(TABLES[key])
    message = (r"Table F11 has rows of networks this library does not have yet: "
               r"'Cascade R-CNN' \(model 'cascade_rcnn'\)")
    with pytest.raises(ConfigError, match=message) as error:
        row_runs.check_models(TABLES["F11"])
    assert error.value.field == "table"
    # The table runner asks first: before the dataset, which does not exist here.
    with pytest.raises(ConfigError, match=message):
        table_runner.run_table(TABLES["F11"], "smoke", "no_such_dataset", None, "unused",
                               None, False)


def test_fig_11s_networks_are_all_in_the_library():
    table = TABLES["F11"]
    row_runs.check_models(table)  # Raises while a row's network is missing.
    row = next(row for row in table.rows if row.fields.get("model_name") == "cascade_rcnn")
    schedule = {"batch_size": 8, "learning_rate": 1e-3, "epochs": 2}
    run = row_run(table, row, "smoke", "neu_det", schedule=schedule)
    experiment = run.experiment()
    assert run.model_preset == "small" and experiment.model_name == "cascade_rcnn"
    assert model_builders.model_name(experiment.model) == "cascade_rcnn"
    assert experiment.model.tasks == ("detection",)
