"""From TFDS examples to the batches Defect-Aux-Net trains, evaluates and serves on."""
