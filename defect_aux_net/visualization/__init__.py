"""Pictures of predictions: masks and boxes drawn over the original images."""
