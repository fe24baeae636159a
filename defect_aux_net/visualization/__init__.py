"""Pictures: predictions (masks and boxes over the original images) and training curves."""
