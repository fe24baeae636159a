"""The models a run can choose: one mapping from a model name to its class and config class.

`launch.train --model=NAME` and `ExperimentConfig.model_name` name an entry; every
other part of the library asks the model (or its config) what it has: `tasks`,
`num_classes`, `input_shape`, `resolved_input_normalization`, `anchors`,
`supports_gated_inference`.
"""

import dataclasses

from defect_aux_net.config import DefectAuxNetConfig
from defect_aux_net.models.cascade_rcnn import CascadeRCNN
from defect_aux_net.models.cascade_rcnn_config import CascadeRCNNConfig
from defect_aux_net.models.deeplab_config import DeepLabV3PlusConfig
from defect_aux_net.models.deeplab_v3_plus import DeepLabV3Plus
from defect_aux_net.models.defect_aux_net import DefectAuxNet
from defect_aux_net.models.faster_rcnn import FasterRCNN
from defect_aux_net.models.faster_rcnn_config import FasterRCNNConfig
from defect_aux_net.models.image_classifier import ImageClassifier
from defect_aux_net.models.image_classifier_config import ImageClassifierConfig
from defect_aux_net.models.segdec_config import SegDecConfig
from defect_aux_net.models.segdec_net import SegDecNet
from defect_aux_net.models.segmentation_network import SegmentationNetwork
from defect_aux_net.models.segmentation_network_config import (
    DECODERS,
    SegmentationNetworkConfig,
)
from defect_aux_net.models.ssd import Ssd
from defect_aux_net.models.ssd_config import SsdConfig


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """A choosable model: `model_class(config)` builds it from a `config_class` instance.

    Attributes:
      model_class: the `keras.Model` subclass.
      config_class: its config dataclass.
      config_values: config fields that name this network where several entries share
        a config class (`{"decoder": "unet"}`): `model_config` sets them and
        `model_name` reads them. Empty for a config class of its own.
    """

    model_class: type
    config_class: type
    config_values: dict = dataclasses.field(default_factory=dict)


MODELS = {
    "defect_aux_net": ModelEntry(DefectAuxNet, DefectAuxNetConfig),
    # Fig. 11's plain RetinaNet: Defect-Aux-Net's detection path alone, without
    # attention, with the original subnets (no group norm) and focal loss gamma.
    "retinanet": ModelEntry(DefectAuxNet, DefectAuxNetConfig, {
        "attention": "none", "tasks": ("detection",), "detection_head_group_norm": False,
        "focal_gamma": 2.0,
    }),
    "segdec": ModelEntry(SegDecNet, SegDecConfig),
    "deeplabv3plus": ModelEntry(DeepLabV3Plus, DeepLabV3PlusConfig),
    "ssd": ModelEntry(Ssd, SsdConfig),
    "faster_rcnn": ModelEntry(FasterRCNN, FasterRCNNConfig),
    "cascade_rcnn": ModelEntry(CascadeRCNN, CascadeRCNNConfig),
    # The classification baselines of Tables III and VI: a ResNet is plain or SE by
    # `attention`; EfficientNet-B0 takes none (None).
    "resnet50": ModelEntry(ImageClassifier, ImageClassifierConfig, {"attention": "none"}),
    "se_resnet50": ModelEntry(ImageClassifier, ImageClassifierConfig, {"attention": "se"}),
    "efficientnet_b0": ModelEntry(
        ImageClassifier, ImageClassifierConfig, {"backbone": "efficientnet_b0", "attention": None}
    ),
    **{
        decoder: ModelEntry(SegmentationNetwork, SegmentationNetworkConfig, {"decoder": decoder})
        for decoder in DECODERS
    },
}
DEFAULT_MODEL = "defect_aux_net"


def model_name(config) -> str:
    """The `MODELS` name of the model `config` describes: of the entries it matches,
    the one that sets the most config values (a plain RetinaNet config also matches
    `defect_aux_net`, which sets none)."""
    matches = [
        (len(entry.config_values), name)
        for name, entry in MODELS.items()
        if type(config) is entry.config_class and all(
            getattr(config, field) == value for field, value in entry.config_values.items()
        )
    ]
    if not matches:
        raise ValueError(
            f"{type(config).__name__} is the config of no model; models: {', '.join(MODELS)}."
        )
    # max() keeps the first of equally specific entries, as the loop before it did.
    return max(matches, key=lambda match: match[0])[1]


def config_class(name: str) -> type:
    """The config class of the model `name`; ValueError naming the choices."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}; choose one of {', '.join(MODELS)}.")
    return MODELS[name].config_class


def model_config(name: str, preset: str | None = None, **fields):
    """The config of the model `name`: its `preset` (None: the class's defaults) with
    the entry's `config_values` and `fields` set; ValueError naming the choices."""
    config_type = config_class(name)
    fields = {**MODELS[name].config_values, **fields}
    if preset is None:
        return config_type(**fields)
    return config_type.from_preset(preset, **fields)


def validation_loss_compares(config) -> bool:
    """Whether the validation losses of two epochs of the model `config` describes compare,
    so that a run may keep the epoch of the lowest one: its class's
    `validation_loss_compares(config)` where it has one, else True."""
    compares = getattr(MODELS[model_name(config)].model_class, "validation_loss_compares", None)
    return True if compares is None else compares(config)


def build_model(config):
    """Builds the model `config` describes (a config class of `MODELS`)."""
    return MODELS[model_name(config)].model_class(config)
