import pytest

from defect_aux_net import paper_tables
from defect_aux_net.config import ATTENTIONS, SEGMENTATION_LOSSES, DefectAuxNetConfig
from defect_aux_net.config_errors import ConfigError
from defect_aux_net.models import model_builders
from defect_aux_net.models.segdec_config import SegDecConfig
from defect_aux_net.paper_tables import PARAMETERS, TABLES, Row, RowRun, apply_fields, row_run
from defect_aux_net.training import table_runner


def rows_by_name(key):
    return {row.name: row for row in TABLES[key].rows}


def test_table_one_has_the_papers_iou_and_dice_for_every_segmentation_loss():
    rows = rows_by_name("T1")
    # Typed from the paper's Table I (TekErreka).
    assert rows["Dice"].paper == {"segmentation.iou": 0.903, "segmentation.dice": 0.926}
    assert rows["BCE"].paper == {"segmentation.iou": 0.892, "segmentation.dice": 0.911}
    assert rows["Jaccard + BCE"].paper == {"segmentation.iou": 0.899, "segmentation.dice": 0.912}
    losses = [row.fields["model.segmentation_loss"] for row in TABLES["T1"].rows]
    assert sorted(losses) == sorted(SEGMENTATION_LOSSES)
    # The paper's choice, Dice, is the reference row.
    assert TABLES["T1"].rows[0].name == "Dice"
    assert TABLES["T1"].task == "segmentation"


def test_table_four_has_the_papers_accuracy_and_parameters_for_every_attention():
    rows = rows_by_name("T4")
    assert rows["Without attention"].paper == {
        "classification.accuracy": 0.962, PARAMETERS: 33.2
    }
    assert rows["SE + spatial attention"].paper == {
        "classification.accuracy": 0.971, PARAMETERS: 36.2
    }
    assert rows["Spatial attention"].paper[PARAMETERS] == 33.5
    attentions = [row.fields["model.attention"] for row in TABLES["T4"].rows]
    assert sorted(attentions) == sorted(ATTENTIONS)


def test_table_two_has_the_papers_segmenter_numbers_and_their_networks():
    rows = rows_by_name("T2")
    # Typed from the paper's Table II (TekErreka); Defect-Aux-Net's parameters: Table IV.
    assert rows["Defect-Aux-Net"].paper == {
        "segmentation.iou": 0.903, "segmentation.dice": 0.926, PARAMETERS: 36.2
    }
    assert rows["FPN"].paper == {"segmentation.iou": 0.881, "segmentation.dice": 0.902}
    assert rows["LinkNet"].paper == {"segmentation.iou": 0.876, "segmentation.dice": 0.895}
    assert rows["UNet"].paper == {"segmentation.iou": 0.832, "segmentation.dice": 0.856}
    assert rows["PSPNet"].paper == {"segmentation.iou": 0.885, "segmentation.dice": 0.917}
    assert TABLES["T2"].rows[0].name == "Defect-Aux-Net"
    assert TABLES["T2"].task == "segmentation"
    # At the paper budget every row is on TekErreka's ResNet-50 with SE + SA at 600x600;
    # Defect-Aux-Net keeps the dataset's heads, the others segment only.
    tasks = ("classification", "segmentation")
    networks = {}
    for row in TABLES["T2"].rows:
        experiment = row_run(TABLES["T2"], row, "paper", "kolektor_sdd", tasks=tasks).experiment()
        model = experiment.model
        assert (model.backbone, model.attention, model.input_shape) == (
            "resnet50", "se+sa", (600, 600, 3)
        ), row.name
        networks[row.name] = (experiment.model_name, getattr(model, "decoder", None), model.tasks)
    assert networks == {
        "Defect-Aux-Net": ("defect_aux_net", None, tasks),
        "FPN": ("defect_aux_net", None, ("segmentation",)),
        "LinkNet": ("linknet", "linknet", ("segmentation",)),
        "UNet": ("unet", "unet", ("segmentation",)),
        "PSPNet": ("pspnet", "pspnet", ("segmentation",)),
    }


def test_table_three_has_the_papers_classifier_numbers_and_their_networks():
    rows = rows_by_name("T3")
    # Typed from the paper's Table III (TekErreka, Class1); parameters from Table VI.
    assert rows["ResNet-50"].paper == {
        "classification.recall": 0.759, "classification.precision": 0.979,
        "classification.f1": 0.855, "classification.accuracy": 0.949, PARAMETERS: 23.5,
    }
    assert rows["EfficientNet-B0"].paper["classification.f1"] == 0.892
    assert rows["Defect-Aux-Net"].paper[PARAMETERS] == 36.2
    assert TABLES["T3"].rows[0].name == "Defect-Aux-Net"
    models = {name: row.fields.get("model_name") for name, row in rows.items()}
    assert models == {"Defect-Aux-Net": None, "ResNet-50": "resnet50",
                      "SE-ResNet-50": "se_resnet50", "EfficientNet-B0": "efficientnet_b0"}
    # At the paper budget each network is the paper's at TekErreka's size, and the
    # classifiers keep their one head whatever heads the dataset gives the others.
    run = row_run(TABLES["T3"], rows["SE-ResNet-50"], "paper", "kolektor_sdd",
                  tasks=("classification", "segmentation"))
    model = run.experiment().model
    assert (model.backbone, model.attention, model.input_shape) == (
        "resnet50", "se", (600, 600, 3)
    )
    assert model.tasks == ("classification",)


def test_figure_ten_trains_on_fractions_of_the_data_and_has_no_paper_numbers():
    table = TABLES["F10"]
    assert [row.fields for row in table.rows] == [
        {"train_fraction": 0.9}, {"train_fraction": 0.75}, {"train_fraction": 0.5}
    ]
    assert all(row.paper == {} for row in table.rows)
    assert table.paper_preset == "severstal"


def test_the_cpu_budget_fits_the_first_rows_epochs_and_gives_them_to_the_others():
    table = TABLES["T4"]
    first = row_run(table, table.rows[0], "cpu", "neu_det", {"test_split": "validation"})
    assert first.preset == "auto"
    assert first.fields == {
        "dataset": "neu_det",
        "test_split": "validation",
        "time_budget": paper_tables.CPU_ROW_SECONDS,
        "model.attention": "se+sa",
    }
    experiment = first.experiment()
    assert experiment.time_budget == 600.0
    assert experiment.model.backbone == "resnet18"  # The small network of the recipe.
    with pytest.raises(ValueError, match=r"needs the schedule \(epochs, batch_size, "):
        row_run(table, table.rows[1], "cpu", "neu_det")
    schedule = {"epochs": 7, "batch_size": 8, "learning_rate": 0.00071}
    second = row_run(table, table.rows[1], "cpu", "neu_det", schedule=schedule)
    experiment = second.experiment()
    # Given epochs replace the auto preset's 30-minute budget, as launch.train's --epochs.
    assert (experiment.epochs, experiment.time_budget) == (7, None)
    assert (experiment.batch_size, experiment.learning_rate) == (8, 0.00071)
    assert experiment.model.attention == "none"
    # The recipe keeps the fields a run sets: the schedule is the first row's.
    assert {"epochs", "batch_size", "learning_rate"} <= set(second.fields)
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


def test_a_table_refuses_repeated_folders_and_numbers_outside_its_columns():
    metric = paper_tables.Metric("classification.accuracy", "Accuracy")
    with pytest.raises(ValueError, match="row folders repeat"):
        paper_tables.PaperTable("X", "", "", "severstal", "classification", (metric,),
                                (Row("a", "f", {}, {}), Row("b", "f", {}, {})))
    with pytest.raises(ValueError, match=r"paper numbers for \['segmentation.iou'\]"):
        paper_tables.PaperTable("X", "", "", "severstal", "classification", (metric,),
                                (Row("a", "f", {}, {"segmentation.iou": 0.5}),))


def test_figure_eleven_has_the_detectors_on_defect_aux_nets_dataset_and_size():
    table = TABLES["F11"]
    rows = rows_by_name("F11")
    assert [row.name for row in table.rows] == [
        "Defect-Aux-Net", "RetinaNet", "SSD", "Cascade R-CNN"
    ]
    assert table.task == "detection" and table.paper_preset == "tekerreka"
    # The figure is plotted only; parameters from Tables IV and VI.
    assert {name: row.paper for name, row in rows.items()} == {
        "Defect-Aux-Net": {PARAMETERS: 36.2}, "RetinaNet": {PARAMETERS: 34.0},
        "SSD": {}, "Cascade R-CNN": {},
    }
    assert "17.95 %, 43.77 % and 26.03 % higher" in table.source
    tasks = ("classification", "detection")
    for name, model in (("RetinaNet", "retinanet"), ("SSD", "ssd")):
        experiment = row_run(table, rows[name], "paper", "neu_det", tasks=tasks).experiment()
        assert experiment.model_name == model
        assert model_builders.model_name(experiment.model) == model
        assert experiment.model.tasks == ("detection",)
        assert experiment.model.input_shape == (600, 600, 3)
    defect_aux_net = row_run(table, rows["Defect-Aux-Net"], "paper", "neu_det", tasks=tasks)
    assert defect_aux_net.experiment().model.tasks == tasks


def test_a_table_with_a_network_the_library_lacks_says_so_before_training(monkeypatch):
    without_cascade = {
        name: entry for name, entry in model_builders.MODELS.items() if name != "cascade_rcnn"
    }
    monkeypatch.setattr(paper_tables, "MODELS", without_cascade)
    for key in ("T1", "T2", "T3", "T4", "F10"):
        paper_tables.check_models(TABLES[key])
    message = (r"Table F11 has rows of networks this library does not have yet: "
               r"'Cascade R-CNN' \(model 'cascade_rcnn'\)")
    with pytest.raises(ConfigError, match=message) as error:
        paper_tables.check_models(TABLES["F11"])
    assert error.value.field == "table"
    # The table runner asks first: before the dataset, which does not exist here.
    with pytest.raises(ConfigError, match=message):
        table_runner.run_table(TABLES["F11"], "smoke", "no_such_dataset", None, "unused",
                               None, False)
