"""SavedModel export for TF Serving: preprocessing, model and decoding in one graph."""
