"""Classification-gated inference: the heads run only on images the gate passes.

The gasket paper (`../shared/papers/001_2b685108478177eb.txt`) puts a classification
gate on the backbone so that defect-free images skip the detection part. A model that
supports it (`supports_gated_inference`) is split where its classifier branches off:
the gate computes the classification and the features the other heads read
(Defect-Aux-Net: its bottom-up pathway, C2-C5; Faster R-CNN: its pyramid, P2-P6, the
classifier reading P6 as the paper's); the heads (Defect-Aux-Net's top-down pathway,
segmentation and detection heads; Faster R-CNN's RPN, RoIAlign and box head) run on the
images whose highest class probability is at least the gate threshold, gathered into
one smaller batch, and their results are scattered back. Images that do not pass get
empty masks, zero detection scores and detection logits that no score threshold
keeps. When no image passes, the heads do not run at all (`call_unless_empty`).

Example:
```python
gated = GatedModel(model)
outputs = gated(images, gate_threshold=0.3)  # the model's outputs + "gate_passed"
```
"""

import keras
from keras import ops

from defect_aux_net.models.empty_batches import call_unless_empty

# The box-classification logit of images the gate stops: sigmoid gives 0 in float32,
# so no detection survives decoding; finite, unlike -inf, so nothing turns into NaN.
GATED_OUT_LOGIT = -1e4


class GatedModel:
    """A model split at its classification gate.

    Attributes:
      gate: `keras.Model`, images -> `{"classification", <feature names>}`: the
        per-class probabilities and the features the heads read (the model's
        `symbolic_features`: Defect-Aux-Net's C2-C5, Faster R-CNN's P2-P6).
      heads: `keras.Model`, the features as a list in that order -> the model's other
        outputs.
      Both share the model's layers (and so its weights).

    Args:
      model: a model whose `supports_gated_inference` is True: a classification
        output and another head to skip, with `symbolic_features` (name -> the
        graph's tensors the heads read, computed before the classifier's output) and
        `symbolic_outputs` (its output tensors).
    """

    def __init__(self, model):
        if not getattr(model, "supports_gated_inference", False):
            raise ValueError(
                "Gated inference needs a model with the classification task (the gate) "
                f"and another head to skip; this {type(model).__name__} has tasks "
                f"{model.config.tasks}."
            )
        features, outputs = model.symbolic_features, model.symbolic_outputs
        self.feature_names = list(features)
        self.gate = keras.Model(
            model.input, {"classification": outputs["classification"], **features}, name="gate"
        )
        self.heads = keras.Model(
            [features[name] for name in self.feature_names],
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
          images every output is the model's; for the others every output is 0
          (masks, box deltas, Faster R-CNN's boxes and scores) but
          `box_classification`, which is `GATED_OUT_LOGIT`.
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
            [ops.take(gate_outputs[name], passing[:, 0], axis=0) for name in self.feature_names],
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
