"""Defect-Aux-Net: multi-task surface defect classification, segmentation and detection."""

from defect_aux_net.config import DefectAuxNetConfig
from defect_aux_net.models.defect_aux_net import DefectAuxNet, build_defect_aux_net

__all__ = ["DefectAuxNet", "DefectAuxNetConfig", "build_defect_aux_net"]
