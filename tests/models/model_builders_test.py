import dataclasses

import pytest

from defect_aux_net.config import DefectAuxNetConfig
from defect_aux_net.models import model_builders
from defect_aux_net.models.defect_aux_net import DefectAuxNet
from defect_aux_net.models.model_builders import (
    MODELS,
    ModelEntry,
    build_model,
    config_class,
    model_config,
    model_name,
    validation_loss_compares,
)
from defect_aux_net.models.segdec_config import SegDecConfig
from defect_aux_net.models.segdec_net import SegDecNet


def test_each_model_is_built_from_its_config():
    segdec = build_model(SegDecConfig.from_preset("small"))
    assert type(segdec) is SegDecNet and segdec.config == SegDecConfig.from_preset("small")
    small = DefectAuxNetConfig.from_preset("small", tasks=("classification",))
    assert type(build_model(small)) is DefectAuxNet
    assert [model_name(model_config(name)) for name in MODELS] == list(MODELS)
    assert config_class("segdec") is SegDecConfig


def test_unknown_models_and_configs_are_named():
    with pytest.raises(ValueError, match="Unknown model 'unet3d'; choose one of defect_aux_net, .*segdec"):
        config_class("unet3d")
    with pytest.raises(ValueError, match="dict is the config of no model"):
        build_model({"num_classes": 1})


def test_entries_sharing_a_config_class_are_told_apart_by_their_config_values(monkeypatch):
    monkeypatch.setattr(model_builders, "MODELS", {
        "narrow": ModelEntry(SegDecNet, SegDecConfig, {"trunk_channels": (8, 16, 64)}),
        "wide": ModelEntry(SegDecNet, SegDecConfig, {"trunk_channels": (32, 64, 1024)}),
    })
    narrow = model_config("narrow", "kolektorsdd", num_classes=2)
    assert (narrow.trunk_channels, narrow.num_classes, narrow.dilation) == ((8, 16, 64), 2, 7)
    wide = model_config("wide", input_shape=(128, 128, 1))
    assert (wide.trunk_channels, wide.input_shape) == ((32, 64, 1024), (128, 128, 1))
    assert (model_name(narrow), model_name(wide)) == ("narrow", "wide")
    with pytest.raises(ValueError, match="SegDecConfig is the config of no model"):
        model_name(dataclasses.replace(wide, trunk_channels=(1, 2, 3)))


def test_validation_losses_compare_unless_their_terms_change_from_epoch_to_epoch():
    # Two-stage detectors score their second stage on the proposals of a learning RPN;
    # segdec's dynamic balance weighs its two losses differently every epoch.
    expected = {
        "defect_aux_net": True, "retinanet": True, "ssd": True, "deeplabv3plus": True,
        "resnet50": True, "faster_rcnn": False, "cascade_rcnn": False, "segdec": False,
    }
    assert {name: validation_loss_compares(model_config(name)) for name in expected} == expected
    fixed = model_config("segdec", "kolektorsdd", dynamic_balance=False)
    assert validation_loss_compares(fixed) is True
