"""Cascade R-CNN: Faster R-CNN with three box heads trained at rising IoU."""

import keras
import tensorflow as tf

from defect_aux_net.detection.roi_sampling import (
    CASCADE_STAGES,
    cascade_stage_targets,
    sample_rois,
)
from defect_aux_net.layers.refined_boxes import RefinedBoxes
from defect_aux_net.layers.two_stage_heads import BoxHead
from defect_aux_net.layers.two_stage_ops import DecodedDetections
from defect_aux_net.models.cascade_rcnn_config import NUM_STAGES, CascadeRCNNConfig
from defect_aux_net.models.faster_rcnn import FasterRCNN


@keras.saving.register_keras_serializable(package="defect_aux_net")
class CascadeRCNN(FasterRCNN):
    """Cascade R-CNN (Cai and Vasconcelos, 2018) with FPN; a detector of Fig. 11.

    Faster R-CNN's bottom-up pathway, FPN, RPN, proposals and RoIAlign (`FasterRCNN`),
    then three box heads `box_head_1..3`, each with class-agnostic regression (as Model
    Garden's): head `s` scores and refines the boxes head `s - 1` refined
    (`RefinedBoxes`, with stage `s - 1`'s delta weights), the first the proposals.

    Outputs as `FasterRCNN`'s, but one box per proposal shared by every class,
    `detection_boxes` `[B, R, 1, 4]`: the last head's refinement of its input boxes;
    `detection_scores` `[B, R, K]`: the mean of the three heads' softmax probabilities
    (the paper's ensemble at inference).

    Training: stage 1 samples `roi_samples` RoIs per image from the proposals and the
    ground truth at `roi_foreground_iou` (as Faster R-CNN); stages 2 and 3 keep those
    RoIs, moved by the previous head, and re-assign them at IoU 0.6 and 0.7
    (`cascade_stage_targets`, no re-sampling: Model Garden's `skip_subsampling`). Each
    head's targets are encoded with its stage's weights (`CASCADE_STAGES`). The logged
    `box_class_loss` and `box_loss` are the stages' losses weighted by
    `stage_loss_weights`. The whole step has static shapes and lowers to XLA.

    Example:
    ```python
    model = CascadeRCNN(CascadeRCNNConfig.from_preset("small"))
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), jit_compile=True)
    results = decode_outputs(model(images), model.config)
    ```

    Args:
      config: a `CascadeRCNNConfig` (or its dict, as stored in `.keras` files).
    """

    config_type = CascadeRCNNConfig

    @staticmethod
    def detection_outputs(config, crop, proposals, num_proposals) -> dict:
        image_size = config.input_shape[:2]
        rois, stage_logits = proposals, []
        for stage, (_, box_weights) in enumerate(CASCADE_STAGES, start=1):
            class_logits, box_deltas = _box_head(config, stage)(crop(rois))
            stage_logits.append(class_logits)
            if stage < NUM_STAGES:
                rois = RefinedBoxes(image_size, box_weights, name=f"refined_boxes_{stage}")(
                    box_deltas, rois
                )
        boxes, scores = DecodedDetections(
            image_size, CASCADE_STAGES[-1][1], name="detections"
        )(stage_logits, box_deltas, rois, num_proposals)
        return {"detection_boxes": boxes, "detection_scores": scores}

    def box_training_outputs(self, crop, proposals, num_proposals, boxes, box_classes, seed,
                             training):
        """The three heads on the sampled RoIs and their refinements.

        Returns:
          dict: `stages`, one dict a stage as `FasterRCNN.box_training_outputs`': `rois`
          (that stage's RoIs and targets, as `sample_rois` gives them), `class_logits`
          `[B, S, K + 1]`, `target_deltas` `[B, S, 4]`.
        """
        config = self.config
        sample = sample_rois(
            proposals, num_proposals, boxes, box_classes, seed, config.roi_samples,
            config.roi_foreground_fraction, config.roi_foreground_iou,
            background_iou_high=config.roi_foreground_iou, box_weights=CASCADE_STAGES[0][1],
        )
        filled = sample["class_weights"]
        rois, stages = sample["rois"], []
        for stage in range(1, NUM_STAGES + 1):
            if stage > 1:
                sample = _stage_sample(rois, filled, boxes, box_classes, stage - 1)
            class_logits, box_deltas = self.get_layer(f"box_head_{stage}")(
                crop(rois), training=training
            )
            stages.append({
                "rois": sample, "class_logits": class_logits, "target_deltas": box_deltas[:, :, 0],
            })
            if stage < NUM_STAGES:
                # Empty slots stay empty boxes.
                rois = self.get_layer(f"refined_boxes_{stage}")(box_deltas, rois) * filled[..., None]
        return {"stages": stages}

    def box_losses(self, outputs, image_weights) -> tuple:
        """The stages' `(classification, box)` losses, weighted by `stage_loss_weights`."""
        losses = [
            FasterRCNN.box_losses(self, stage, image_weights) for stage in outputs["stages"]
        ]
        weights = self.config.stage_loss_weights
        return tuple(
            tf.add_n([weight * loss[part] for weight, loss in zip(weights, losses)])
            for part in (0, 1)
        )


def _box_head(config, stage: int) -> BoxHead:
    return BoxHead(
        config.num_classes, config.box_head_units, config.box_head_layers,
        class_agnostic=True, name=f"box_head_{stage}",
    )


def _stage_sample(rois, filled, gt_boxes, gt_classes, stage: int) -> dict:
    """Stage `stage`'s (0-based) targets of the refined RoIs, as `sample_rois`' dict."""
    targets = cascade_stage_targets(rois, filled > 0, gt_boxes, gt_classes, stage)
    return {
        "rois": rois,
        "class_targets": targets["class_targets"],
        "box_targets": targets["box_targets"],
        "box_weights": tf.cast(targets["foreground"], tf.float32),
        "class_weights": filled,
    }
