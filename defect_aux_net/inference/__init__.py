"""Inference: decoding raw outputs into results, and the Python `Predictor`."""
