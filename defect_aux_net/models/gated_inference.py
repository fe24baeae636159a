"""Classification-gated inference: the heads run only on images the gate passes.

The gasket paper (`../shared/papers/001_2b685108478177eb.txt`) puts a classification
gate on the backbone so that defect-free images skip the detection part. Here the
gate is Defect-Aux-Net's own bottom-up pathway and classification head; the
top-down pathway and the segmentation and detection heads run on the images whose
highest class probability is at least the gate threshold, gathered into one
smaller batch, and their results are scattered back. Images that do not pass get
empty masks and detection logits that no score threshold keeps. When no image
passes, the heads do not run at all (`call_unless_empty`).

Example:
```python
gated = GatedDefectAuxNet(model)
outputs = gated(images, gate_threshold=0.3)  # the model's outputs + "gate_passed"
```
"""

import keras
from keras import ops

from defect_aux_net.layers.feature_pyramid import BACKBONE_LEVELS
from defect_aux_net.models.empty_batches import call_unless_empty

# The box-classification logit of images the gate stops: sigmoid gives 0 in float32,
# so no detection survives decoding; finite, unlike -inf, so nothing turns into NaN.
GATED_OUT_LOGIT = -1e4


class GatedDefectAuxNet:
    """A multi-task `DefectAuxNet` split at its classification gate.

    Attributes:
      gate: `keras.Model`, images -> `{"classification", "C2".."C5"}`: the bottom-up
        pathway's levels and the per-class probabilities.
      heads: `keras.Model`, `[C2, C3, C4, C5]` -> the model's other outputs.
      Both share the model's layers (and so its weights).

    Args:
      model: a `DefectAuxNet` with the classification task and at least one of
        segmentation and detection.
    """

    def __init__(self, model):
        tasks = model.config.tasks
        if "classification" not in tasks or tasks == ("classification",):
            raise ValueError(
                "Gated inference needs a model with the classification task (the gate) "
                f"and a segmentation or detection head to skip; this one has {tasks}."
            )
        features, outputs = model.symbolic_features, model.symbolic_outputs
        self.gate = keras.Model(
            model.input, {"classification": outputs["classification"], **features}, name="gate"
        )
        self.heads = keras.Model(
            [features[f"C{level}"] for level in BACKBONE_LEVELS],
            {name: value for name, value in outputs.items() if name != "classification"},
            name="heads",
        )

    def __call__(self, images, gate_threshold):
        """Returns the model's outputs on `images`, heads run on passing images only.

        Args:
          images: float `[B, H, W, C]` as the model takes them.
          gate_threshold: scalar; an image passes when its highest class
            probability is at least this.

        Returns:
          dict of the model's outputs and `gate_passed` (bool `[B]`). For passing
          images every output is the model's; for the others `segmentation` and
          `box_regression` are 0 and `box_classification` is `GATED_OUT_LOGIT`.
        """
        batch_size = ops.shape(images)[0]
        gate_outputs = call_unless_empty(self.gate, images, batch_size)
        probabilities = gate_outputs["classification"]
        # initial=0 (probabilities are >= 0): eager Keras refuses the max of an empty batch.
        highest = ops.max(probabilities, axis=-1, initial=0.0)
        passed = highest >= ops.cast(gate_threshold, probabilities.dtype)
        # Dynamic shapes: serving only (CPU/GPU), not the XLA-compiled training step.
        passing = ops.reshape(ops.where(passed)[0], (-1, 1))
        head_outputs = call_unless_empty(
            self.heads,
            [
                ops.take(gate_outputs[f"C{level}"], passing[:, 0], axis=0)
                for level in BACKBONE_LEVELS
            ],
            ops.shape(passing)[0],
        )
        results = {"classification": probabilities, "gate_passed": passed}
        for name, values in head_outputs.items():
            scattered = ops.scatter(passing, values, (batch_size, *ops.shape(values)[1:]))
            if name == "box_classification":
                stopped = ~passed[:, None, None]
                scattered = ops.where(stopped, GATED_OUT_LOGIT, scattered)
            results[name] = scattered
        return results
