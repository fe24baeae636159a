"""Training utilities for launch scripts: one-cycle Adam, strategies, callbacks, LR finder."""
