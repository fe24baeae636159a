"""Task losses of Defect-Aux-Net and their weighted sum."""
