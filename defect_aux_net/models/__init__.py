"""Model builders: the bottom-up pathway and the full Defect-Aux-Net."""
