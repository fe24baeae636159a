"""Defect-Aux-Net: bottom-up pathway, top-down pathway and three task heads in one model."""

import keras
from keras import ops

from defect_aux_net.config import DefectAuxNetConfig
from defect_aux_net.detection.anchors import anchors_for_config
from defect_aux_net.layers.classification_head import ClassificationHead
from defect_aux_net.layers.feature_pyramid import FeaturePyramid
from defect_aux_net.layers.prediction_head import PredictionHead
from defect_aux_net.layers.segmentation_head import SegmentationHead
from defect_aux_net.losses.multi_task import MultiTaskLoss
from defect_aux_net.models.backbone import apply_backbone
from defect_aux_net.models.backbone_weights import config_for_saving

# RetinaNet's initial foreground probability of the class subnet.
PRIOR_PROBABILITY = 0.01


@keras.saving.register_keras_serializable(package="defect_aux_net")
class DefectAuxNet(keras.Model):
    """Multi-task defect network: image classes, per-class masks and boxes in one pass.

    Outputs (a dict; only the keys of the configured `tasks`):
      classification: float32 `[B, K]` per-class defect probabilities.
      segmentation: float32 `[B, H, W, K]` per-class mask probabilities.
      box_regression: float32 `[B, A, 4]` per-anchor box deltas.
      box_classification: float32 `[B, A, K]` per-anchor class logits.

    Training uses the multi-task loss of the config (`compute_loss`): compile
    with an optimizer only, and feed `(images, targets, annotation_flags)` where
    `targets` has the output keys (see `MultiTaskLoss`).

    Example:
    ```python
    model = DefectAuxNet(DefectAuxNetConfig(num_classes=4, input_shape=(128, 800, 3)))
    model.compile(optimizer="adam")
    outputs = model(images)
    ```

    Args:
      config: a `DefectAuxNetConfig` (or its dict, as stored in `.keras` files).
    """

    def __init__(self, config, **kwargs):
        if isinstance(config, dict):
            config = DefectAuxNetConfig(**config)
        inputs = keras.Input(config.input_shape, name="images")
        height, width = config.input_shape[:2]
        padded_height, padded_width = config.padded_size
        _, features = apply_backbone(config, inputs, config.padded_size)

        outputs = {}
        if "classification" in config.tasks:
            logits = ClassificationHead(config.num_classes, name="classification_head")(
                features["C5"]
            )
            outputs["classification"] = _float32_output("sigmoid", "classification")(logits)
        if "segmentation" in config.tasks or "detection" in config.tasks:
            max_level = config.max_level if "detection" in config.tasks else 5
            min_level = 2 if "segmentation" in config.tasks else config.min_level
            unsmoothed = () if config.p2_output_conv or min_level > 2 else (2,)
            pyramid = FeaturePyramid(
                config.pyramid_channels, max_level, min_level, unsmoothed,
                name="feature_pyramid",
            )(features)
        if "segmentation" in config.tasks:
            mask_logits = SegmentationHead(
                config.num_classes,
                config.segmentation_channels,
                config.segmentation_dropout,
                config.batch_norm_momentum,
                name="segmentation_head",
            )(pyramid)
            mask_logits = keras.layers.Cropping2D(
                ((0, padded_height - height), (0, padded_width - width)), name="crop"
            )(mask_logits)
            outputs["segmentation"] = _float32_output("sigmoid", "segmentation")(mask_logits)
        if "detection" in config.tasks:
            head_args = dict(
                anchors_per_location=config.anchors_per_location,
                depth=config.detection_head_depth,
                channels=config.pyramid_channels,
                group_norm=config.detection_head_group_norm,
            )
            box_head = PredictionHead(values_per_anchor=4, name="box_head", **head_args)
            class_head = PredictionHead(
                values_per_anchor=config.num_classes,
                prior_probability=PRIOR_PROBABILITY,
                name="class_head",
                **head_args,
            )
            levels = range(config.min_level, config.max_level + 1)
            box_outputs = [box_head(pyramid[f"P{level}"]) for level in levels]
            class_outputs = [class_head(pyramid[f"P{level}"]) for level in levels]
            outputs["box_regression"] = _float32_output("linear", "box_regression")(
                keras.layers.Concatenate(axis=1, name="box_levels")(box_outputs)
            )
            outputs["box_classification"] = _float32_output("linear", "box_classification")(
                keras.layers.Concatenate(axis=1, name="class_levels")(class_outputs)
            )

        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.config = config
        # The graph's symbolic tensors, to build sub-models that share the layers
        # (`GatedModel` splits the model at the classification gate).
        self.symbolic_features = features
        self.symbolic_outputs = outputs
        self.multi_task_loss = MultiTaskLoss(config)
        self.task_loss_trackers = {
            task: keras.metrics.Mean(name=f"{task}_loss") for task in config.tasks
        }

    @property
    def supports_gated_inference(self) -> bool:
        """Whether `GatedModel` can split it: a classifier and a head to skip."""
        return "classification" in self.config.tasks and len(self.config.tasks) > 1

    @property
    def anchors(self):
        """float32 `[A, 4]` anchors (`ymin, xmin, ymax, xmax` pixels) of the detection outputs."""
        return anchors_for_config(self.config)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        losses = self.multi_task_loss(y, y_pred, sample_weight)
        for task, tracker in self.task_loss_trackers.items():
            tracker.update_state(losses[task])
        return model_loss(self, losses["total"])

    @property
    def metrics(self):
        return super().metrics + list(self.task_loss_trackers.values())

    def get_config(self):
        config = config_for_saving(self.config)
        return {"config": config, "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def build_defect_aux_net(config: DefectAuxNetConfig) -> DefectAuxNet:
    """Builds the Defect-Aux-Net model described by `config`."""
    return DefectAuxNet(config)


def _float32_output(activation, name):
    # Mixed precision computes in bfloat16; outputs and losses stay float32.
    return keras.layers.Activation(activation, dtype="float32", name=name)


def model_loss(model: keras.Model, loss, summed: bool = False):
    """What a model's `compute_loss` returns for its loss `loss`.

    The regularisation losses its layers add are added (`fit` minimises only what
    `compute_loss` returns), and the sum is divided by the replica count
    (`scale_for_replicas`). A `summed` loss (a sum over the replica's images, not a
    mean) is not divided: the replicas' gradients add up to the sum over the global
    batch. Its regularisation still is, so it counts once.
    """
    if summed:
        return loss + scale_for_replicas(ops.sum(model.losses)) if model.losses else loss
    if model.losses:
        loss = loss + ops.sum(model.losses)
    return scale_for_replicas(loss)


def scale_for_replicas(loss):
    """Divides by the replica count, as Keras' own losses do under tf.distribute.

    Gradients are summed over replicas, so each replica contributes its share.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        loss = loss / ops.cast(tf.distribute.get_strategy().num_replicas_in_sync, loss.dtype)
    return loss
