"""Defect-Aux-Net: multi-task surface defect classification, segmentation and detection."""
