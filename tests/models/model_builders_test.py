import pytest

from defect_aux_net.config import DefectAuxNetConfig
from defect_aux_net.models.defect_aux_net import DefectAuxNet
from defect_aux_net.models.model_builders import MODELS, build_model, config_class, model_name
from defect_aux_net.models.segdec_config import SegDecConfig
from defect_aux_net.models.segdec_net import SegDecNet


def test_each_model_is_built_from_its_config():
    segdec = build_model(SegDecConfig.from_preset("small"))
    assert type(segdec) is SegDecNet and segdec.config == SegDecConfig.from_preset("small")
    small = DefectAuxNetConfig.from_preset("small", tasks=("classification",))
    assert type(build_model(small)) is DefectAuxNet
    assert [model_name(entry.config_class()) for entry in MODELS.values()] == list(MODELS)
    assert config_class("segdec") is SegDecConfig


def test_unknown_models_and_configs_are_named():
    with pytest.raises(ValueError, match="Unknown model 'unet'; choose one of defect_aux_net, segdec"):
        config_class("unet")
    with pytest.raises(ValueError, match="dict is the config of no model"):
        build_model({"num_classes": 1})
