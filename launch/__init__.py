"""absl-flag launch scripts: python -m launch.<name>."""
