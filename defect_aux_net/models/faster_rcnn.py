"""Faster R-CNN with FPN: bottom-up pathway, P2-P6, RPN, RoIAlign and a box head."""

import keras
import numpy as np
import tensorflow as tf

from defect_aux_net.detection.roi_sampling import sample_rois, target_class_deltas
from defect_aux_net.detection.rpn_targets import assign_rpn_targets
from defect_aux_net.layers.classification_head import ClassificationHead
from defect_aux_net.layers.feature_pyramid import FeaturePyramid
from defect_aux_net.layers.two_stage_heads import BoxHead, RpnHead
from defect_aux_net.layers.two_stage_ops import (
    DecodedDetections,
    MultilevelRoIAlign,
    RegionProposals,
)
from defect_aux_net.losses.multi_task import classification_loss
from defect_aux_net.losses.two_stage import box_head_losses, rpn_losses
from defect_aux_net.models.backbone import apply_backbone
from defect_aux_net.models.backbone_weights import config_for_saving
from defect_aux_net.models.defect_aux_net import model_loss
from defect_aux_net.models.faster_rcnn_config import ROI_LEVELS, RPN_LEVELS, FasterRCNNConfig

# The four terms of the loss, as the training logs name them.
LOSS_PARTS = ("rpn_objectness_loss", "rpn_box_loss", "box_class_loss", "box_loss")
# The fifth, with the classification gate (the gasket paper's multi-task loss).
GATE_LOSS = "classification_loss"


@keras.saving.register_keras_serializable(package="defect_aux_net")
class FasterRCNN(keras.Model):
    """Faster R-CNN with FPN; the detector of the gasket paper.

    Outputs (a dict), for `postprocessing.decode_outputs`:
      detection_boxes: float32 `[B, R, K, 4]` one box per proposal and class,
        `ymin, xmin, ymax, xmax` pixels of the input, clipped to it.
      detection_scores: float32 `[B, R, K]` class probabilities of each proposal (the
        box head's softmax without its background column; 0 on padding proposals).
      classification: float32 `[B, K]` per-class defect probabilities, with the gasket
        paper's gate (`"classification"` in `config.tasks`): a `ClassificationHead` on
        the deepest pyramid level, P6; `GatedModel` runs the RPN and box head only on
        the images it passes.
    with `R = config.inference_proposals`.

    Training is the model's own (`train_step`, `compute_loss`): it takes the input
    pipeline's `(images, {"boxes", "box_classes"}, {"boxes": has_boxes, ...})` (the
    config's `detection_targets` is "boxes"), matches anchors and samples 256 of them
    for the RPN loss, takes the proposals of its current RPN, samples 512 RoIs among
    them and the ground truth for the box head, and adds the four losses (`LOSS_PARTS`,
    `losses.two_stage`) and, with the gate, its binary cross-entropy on the image labels
    (`GATE_LOSS`, `losses.multi_task.classification_loss`). The samples are seeded by
    the optimizer's step, so an eager and an XLA-compiled step draw the same ones.
    Compile with an optimizer only.

    Example:
    ```python
    model = FasterRCNN(FasterRCNNConfig.from_preset("small"))
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), jit_compile=True)
    results = decode_outputs(model(images), model.config)
    ```

    Args:
      config: a `FasterRCNNConfig` (or its dict, as stored in `.keras` files).
    """

    @staticmethod
    def validation_loss_compares(config) -> bool:
        """False: a run keeps its last epoch (`model_builders.validation_loss_compares`)."""
        # The box head's losses are over RoIs sampled from the current RPN's proposals:
        # as the RPN learns, more of them are foreground and the box loss grows (Cascade
        # R-CNN on NEU-DET: lowest after its first epoch, mAP@0.5 0.048).
        return False

    def __init__(self, config, **kwargs):
        if isinstance(config, dict):
            config = self.config_type(**config)
        inputs = keras.Input(config.input_shape, name="images")
        height, width = config.input_shape[:2]
        backbone, features = apply_backbone(config, inputs, config.padded_size)
        pyramid = FeaturePyramid(
            config.pyramid_channels, RPN_LEVELS[1], RPN_LEVELS[0], name="feature_pyramid"
        )(features)
        rpn_head = RpnHead(
            len(config.anchor_aspect_ratios), config.pyramid_channels, name="rpn_head"
        )
        rpn_outputs = [rpn_head(pyramid[f"P{level}"]) for level in _levels(RPN_LEVELS)]
        proposals, num_proposals = RegionProposals(
            (height, width), config.padded_size, *RPN_LEVELS, config.anchor_size,
            config.anchor_aspect_ratios, config.inference_pre_nms_top_k,
            config.inference_proposals, config.train_pre_nms_top_k, config.train_proposals,
            config.rpn_nms_iou, name="proposals",
        )([logits for logits, _ in rpn_outputs], [deltas for _, deltas in rpn_outputs])
        roi_align = MultilevelRoIAlign(
            ROI_LEVELS[0], config.roi_output_size, config.roi_sampling_ratio, name="roi_align"
        )
        roi_features = [pyramid[f"P{level}"] for level in _levels(ROI_LEVELS)]
        outputs = self.detection_outputs(
            config, lambda boxes: roi_align(roi_features, boxes), proposals, num_proposals
        )
        if "classification" in config.tasks:
            outputs["classification"] = _gate(config, pyramid)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.config = config
        # The graph's symbolic tensors, to build sub-models that share the layers
        # (`GatedModel` splits the model after the pyramid its gate reads).
        self.symbolic_features = {
            f"P{level}": pyramid[f"P{level}"] for level in _levels(RPN_LEVELS)
        }
        self.symbolic_outputs = outputs
        self.backbone_name = backbone.name
        # All levels' anchors in the order of the concatenated RPN outputs.
        self.rpn_anchors = np.concatenate(self.get_layer("proposals").anchors)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        parts = LOSS_PARTS + ((GATE_LOSS,) if "classification" in config.tasks else ())
        self.part_trackers = {part: keras.metrics.Mean(name=part) for part in parts}

    # `from_config` rebuilds this config class from its dict (a subclass has its own).
    config_type = FasterRCNNConfig
    # The outputs are decoded boxes: no anchors for the shared decoding to read.
    anchors = None
    @property
    def supports_gated_inference(self) -> bool:
        """Whether it has the gasket paper's classifier, which `GatedModel` gates with."""
        return "classification" in self.config.tasks

    @staticmethod
    def detection_outputs(config, crop, proposals, num_proposals) -> dict:
        """The inference outputs of the box head on `proposals` (graph building).

        `crop(boxes)` gives RoIAlign's crops of `[B, R, 4]` boxes. A subclass with other
        box heads (Cascade R-CNN) overrides this, `box_training_outputs` and `box_losses`.
        """
        class_logits, box_deltas = BoxHead(
            config.num_classes, config.box_head_units, config.box_head_layers, name="box_head"
        )(crop(proposals))
        boxes, scores = DecodedDetections(config.input_shape[:2], name="detections")(
            class_logits, box_deltas, proposals, num_proposals
        )
        return {"detection_boxes": boxes, "detection_scores": scores}

    def training_outputs(self, images, boxes, box_classes, seed, training=True):
        """The RPN's outputs and targets and the box head's on sampled RoIs.

        Args:
          images: float `[B, H, W, C]` model inputs.
          boxes, box_classes: the padded ground truth (`pipeline.training_inputs`).
          seed: int `[2]`; the RoI sample uses `seed + [0, 1]`.
          training: the layers' training mode (batch norm).

        Returns:
          dict: `rpn_logits` `[B, A]`, `rpn_deltas` `[B, A, 4]`, `rpn_targets`
          (`assign_rpn_targets`), the box head's (`box_training_outputs`) and,
          with the gate, `classification` `[B, K]` probabilities.
        """
        config = self.config
        padded = self.get_layer("pad")(images)
        features = self.get_layer(self.backbone_name)(padded, training=training)
        pyramid = self.get_layer("feature_pyramid")(features, training=training)
        rpn_head = self.get_layer("rpn_head")
        rpn_outputs = [rpn_head(pyramid[f"P{level}"]) for level in _levels(RPN_LEVELS)]
        logits = [level_logits for level_logits, _ in rpn_outputs]
        deltas = [level_deltas for _, level_deltas in rpn_outputs]
        proposals, num_proposals = self.get_layer("proposals")(logits, deltas, training=True)
        seed = tf.cast(seed, tf.int64)
        rpn_targets = assign_rpn_targets(
            boxes, box_classes, self.rpn_anchors, seed, config.rpn_positive_iou,
            config.rpn_negative_iou, config.rpn_samples, config.rpn_positive_fraction,
        )
        roi_features = [pyramid[f"P{level}"] for level in _levels(ROI_LEVELS)]
        roi_align = self.get_layer("roi_align")
        box_outputs = self.box_training_outputs(
            lambda rois: roi_align(roi_features, rois, training=True), proposals,
            num_proposals, boxes, box_classes, seed + tf.constant([0, 1], tf.int64), training,
        )
        gate = {}
        if "classification" in config.tasks:
            gate["classification"] = self.get_layer("classification")(
                self.get_layer("classification_head")(pyramid[f"P{RPN_LEVELS[1]}"])
            )
        return gate | {
            "rpn_logits": tf.concat(logits, axis=1),
            "rpn_deltas": tf.concat(deltas, axis=1),
            "rpn_targets": rpn_targets,
            **box_outputs,
        }

    def box_training_outputs(self, crop, proposals, num_proposals, boxes, box_classes, seed,
                             training):
        """The box head on RoIs sampled (seeded by `seed`) from proposals and ground truth.

        Returns:
          dict: `rois` (`sample_rois`), `class_logits` `[B, S, K + 1]` and
          `target_deltas` `[B, S, 4]`, what `box_losses` reads.
        """
        config = self.config
        rois = sample_rois(
            proposals, num_proposals, boxes, box_classes, seed, config.roi_samples,
            config.roi_foreground_fraction, config.roi_foreground_iou,
            background_iou_high=config.roi_foreground_iou,
        )
        class_logits, box_deltas = self.get_layer("box_head")(crop(rois["rois"]),
                                                              training=training)
        return {
            "rois": rois,
            "class_logits": class_logits,
            "target_deltas": target_class_deltas(box_deltas, rois["class_targets"]),
        }

    def box_losses(self, outputs, image_weights) -> tuple:
        """`(classification, box)` losses of `box_training_outputs`' dict."""
        return box_head_losses(
            outputs["class_logits"], outputs["target_deltas"], outputs["rois"],
            image_weights, self.config.box_huber_delta,
        )

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The loss of images `x` and their ground truth `y`; `y_pred` is not read.

        The box head's loss needs RoIs sampled against `y`, so the forward pass is
        `training_outputs`, not the model's inference outputs.
        """
        seed = tf.stack([tf.cast(self.optimizer.iterations, tf.int64), tf.constant(0, tf.int64)])
        outputs = self.training_outputs(x, y["boxes"], y["box_classes"], seed, training)
        image_weights = tf.ones(tf.shape(x)[:1], tf.float32)
        if sample_weight is not None:
            image_weights = tf.cast(sample_weight["boxes"], tf.float32)
        rpn_objectness, rpn_box = rpn_losses(
            outputs["rpn_logits"], outputs["rpn_deltas"], outputs["rpn_targets"],
            image_weights, self.config.rpn_huber_delta,
        )
        box_class, box = self.box_losses(outputs, image_weights)
        parts = dict(zip(LOSS_PARTS, (rpn_objectness, rpn_box, box_class, box)))
        if "classification" in outputs:
            # Every image has its labels (defect-free ones too): no weights unless given.
            weights = None if sample_weight is None else sample_weight.get("classification")
            parts[GATE_LOSS] = classification_loss(
                y["classification"], outputs["classification"], weights
            )
        for part, value in parts.items():
            self.part_trackers[part].update_state(value)
        total = tf.add_n(list(parts.values()))
        return model_loss(self, total)

    def train_step(self, data):
        images, targets, flags = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            loss = self.compute_loss(images, targets, None, flags, training=True)
            self.loss_tracker.update_state(loss * _replicas())
            scaled = self.optimizer.scale_loss(loss)
        gradients = tape.gradient(scaled, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        return {metric.name: metric.result() for metric in self.metrics}

    def test_step(self, data):
        images, targets, flags = keras.utils.unpack_x_y_sample_weight(data)
        loss = self.compute_loss(images, targets, None, flags, training=False)
        self.loss_tracker.update_state(loss * _replicas())
        return {metric.name: metric.result() for metric in self.metrics}

    @property
    def metrics(self):
        return [self.loss_tracker, *self.part_trackers.values()]

    def get_config(self):
        config = config_for_saving(self.config)
        return {"config": config, "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _gate(config, pyramid):
    """The gasket paper's classifier: `[B, K]` sigmoid probabilities of the deepest level."""
    logits = ClassificationHead(config.num_classes, name="classification_head")(
        pyramid[f"P{RPN_LEVELS[1]}"]
    )
    # Mixed precision computes in bfloat16; the output stays float32.
    return keras.layers.Activation("sigmoid", dtype="float32", name="classification")(logits)


def _levels(levels: tuple) -> range:
    return range(levels[0], levels[1] + 1)


def _replicas():
    # The logged loss is the global one: `scale_for_replicas` divided it.
    return tf.cast(tf.distribute.get_strategy().num_replicas_in_sync, tf.float32)
