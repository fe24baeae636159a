"""Defect-Aux-Net: multi-task surface defect classification, segmentation and detection."""

from defect_aux_net.config import DefectAuxNetConfig
from defect_aux_net.models.defect_aux_net import DefectAuxNet, build_defect_aux_net

# Registers OneCycleAdam and its schedule, which training checkpoints (.keras) hold.
from defect_aux_net.training import one_cycle  # noqa: F401  isort: skip
from defect_aux_net.inference.predictor import Prediction, Predictor  # isort: skip

__all__ = ["DefectAuxNet", "DefectAuxNetConfig", "Prediction", "Predictor", "build_defect_aux_net"]
