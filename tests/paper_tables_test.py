import pytest

from defect_aux_net import paper_tables
from defect_aux_net.config import ATTENTIONS, SEGMENTATION_LOSSES
from defect_aux_net.models import model_builders
from defect_aux_net.paper_tables import LATENCY, PARAMETERS, TABLES, Row
from defect_aux_net.row_runs import row_run


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


def test_table_six_has_the_papers_four_networks_their_figures_and_the_lean_two():
    table = TABLES["T6"]
    # Typed from the paper's Table VI: parameters (M), latency (s/image).
    assert {row.name: (row.folder, row.paper) for row in table.rows} == {
        "ResNet-50": ("classification", {PARAMETERS: 23.5, LATENCY: 0.0654}),
        "ResNet-50 FPN": ("segmentation", {PARAMETERS: 26.9, LATENCY: 0.1106}),
        "ResNet-50 RetinaNet": ("detection", {PARAMETERS: 34.0, LATENCY: 0.1780}),
        "Defect-Aux-Net": ("multi_task", {PARAMETERS: 36.2, LATENCY: 0.1927}),
        # The cheaper top-down pathway, which the paper does not measure.
        "ResNet-50 FPN, lean top-down": ("segmentation_lean", {}),
        "Defect-Aux-Net, lean top-down": ("multi_task_lean", {}),
    }
    lean = {"model.p2_output_conv": False, "model.segmentation_channels": 64}
    assert [row.fields for row in table.rows] == [
        {"model_name": "resnet50"},
        {"model_name": "defect_aux_net", "model.tasks": ("segmentation",),
         "model.attention": "none"},
        {"model_name": "retinanet"},
        {"model_name": "defect_aux_net"},
        {"model_name": "defect_aux_net", "model.tasks": ("segmentation",),
         "model.attention": "none", **lean},
        {"model_name": "defect_aux_net", **lean},
    ]
    # It trains nothing: no head's outputs are measured, no annotation is needed.
    assert table.task is None
