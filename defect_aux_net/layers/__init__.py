"""Keras layers of Defect-Aux-Net: attention blocks, top-down pathway and task heads."""
