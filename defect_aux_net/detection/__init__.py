"""Anchors, target encoding and detection decoding, usable in tf.data and in exported graphs."""
