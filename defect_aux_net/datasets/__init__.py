"""Shared code of the TFDS builders in `tfds_builders/`: one feature schema, annotation conversions."""
