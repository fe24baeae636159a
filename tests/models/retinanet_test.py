import dataclasses

from defect_aux_net.config import DefectAuxNetConfig
from defect_aux_net.layers.prediction_head import PredictionHead
from defect_aux_net.layers.spatial_attention import SpatialAttention
from defect_aux_net.layers.squeeze_excitation import SqueezeExcitation
from defect_aux_net.models import model_builders
from defect_aux_net.models.defect_aux_net import DefectAuxNet
from defect_aux_net.models.model_builders import MODELS, build_model, model_config, model_name


def test_retinanet_is_defect_aux_nets_detection_path_without_attention():
    config = model_config("retinanet", "small")
    assert (config.attention, config.tasks, config.detection_head_group_norm,
            config.focal_gamma) == ("none", ("detection",), False, 2.0)
    # The rest is the small preset's: a small RetinaNet.
    small = DefectAuxNetConfig.from_preset("small")
    assert (config.backbone, config.input_shape, config.pyramid_channels) == (
        small.backbone, small.input_shape, small.pyramid_channels
    )
    model = build_model(config)
    assert type(model) is DefectAuxNet
    assert set(model.output) == {"box_regression", "box_classification"}
    layers = list(model._flatten_layers(include_self=False, recursive=True))
    assert not any(isinstance(layer, (SqueezeExcitation, SpatialAttention)) for layer in layers)
    heads = [layer for layer in layers if isinstance(layer, PredictionHead)]
    assert len(heads) == 2 and not any(head.group_norm for head in heads)


def test_a_config_maps_to_the_most_specific_entry_whatever_the_order(monkeypatch):
    retinanet = model_config("retinanet")
    others = [
        DefectAuxNetConfig(),
        dataclasses.replace(retinanet, attention="se"),
        dataclasses.replace(retinanet, focal_gamma=4.0),
        dataclasses.replace(retinanet, tasks=("classification", "detection")),
    ]
    for models in (MODELS, dict(reversed(list(MODELS.items())))):
        monkeypatch.setattr(model_builders, "MODELS", models)
        assert model_name(retinanet) == "retinanet"
        assert model_name(DefectAuxNetConfig.from_preset("small", **MODELS[
            "retinanet"].config_values)) == "retinanet"
        assert [model_name(config) for config in others] == ["defect_aux_net"] * 4
