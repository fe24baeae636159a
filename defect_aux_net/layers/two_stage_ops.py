"""Faster R-CNN's fixed (weight-free) steps as layers: proposals, RoIAlign, decoded boxes.

They wrap the `tf.*` functions of `defect_aux_net.detection` (NMS and per-box gathers
have no Keras op, and box coding has one owner there) so that the model is one
functional graph that `.keras` files, exports and serving run as they are. All compute
in float32: box coordinates of a 2448-pixel image in bfloat16 would be off by 8 pixels.
"""

import keras
import tensorflow as tf
from keras import ops

from defect_aux_net.detection.anchors import generate_anchors
from defect_aux_net.detection.box_coding import BOX_HEAD_WEIGHTS, clip_boxes, decode_boxes
from defect_aux_net.detection.proposals import generate_proposals
from defect_aux_net.detection.roi_align import multilevel_roi_align


def level_anchors(padded_size, min_level, max_level, anchor_size, aspect_ratios) -> list:
    """float32 `[A_l, 4]` anchors of each level, one scale per level (FPN)."""
    return [
        generate_anchors(tuple(padded_size), level, level, anchor_size, 1, tuple(aspect_ratios))
        for level in range(min_level, max_level + 1)
    ]


@keras.saving.register_keras_serializable(package="defect_aux_net")
class RegionProposals(keras.layers.Layer):
    """Padded proposals of the RPN's per-level outputs (`proposals.generate_proposals`).

    Args:
      image_size: `(height, width)` of the model input; proposals are clipped to it.
      padded_size: `(height, width)` the anchors cover (multiples of the coarsest stride).
      min_level, max_level: the RPN's levels.
      anchor_size, aspect_ratios: the anchors (`level_anchors`).
      pre_nms_top_k, num_proposals: candidates per level entering NMS and proposals
        kept, at inference.
      train_pre_nms_top_k, train_proposals: the same in training (`training=True`).
      nms_iou: NMS overlap threshold.
    """

    def __init__(self, image_size, padded_size, min_level, max_level, anchor_size,
                 aspect_ratios, pre_nms_top_k, num_proposals, train_pre_nms_top_k,
                 train_proposals, nms_iou, **kwargs):
        super().__init__(**{"dtype": "float32", **kwargs})
        self.image_size = tuple(image_size)
        self.padded_size = tuple(padded_size)
        self.min_level = min_level
        self.max_level = max_level
        self.anchor_size = anchor_size
        self.aspect_ratios = tuple(aspect_ratios)
        self.pre_nms_top_k = pre_nms_top_k
        self.num_proposals = num_proposals
        self.train_pre_nms_top_k = train_pre_nms_top_k
        self.train_proposals = train_proposals
        self.nms_iou = nms_iou
        self.anchors = level_anchors(padded_size, min_level, max_level, anchor_size,
                                     aspect_ratios)

    def call(self, logits, deltas, training=None):
        top_k, count = self.pre_nms_top_k, self.num_proposals
        if training:
            top_k, count = self.train_pre_nms_top_k, self.train_proposals
        proposals = generate_proposals(
            list(logits), list(deltas), self.anchors, self.image_size,
            pre_nms_top_k=top_k, num_proposals=count, nms_iou=self.nms_iou,
        )
        return proposals["boxes"], proposals["num_proposals"]

    def compute_output_spec(self, logits, deltas, training=None):
        batch = logits[0].shape[0]
        count = self.train_proposals if training else self.num_proposals
        return (
            keras.KerasTensor((batch, count, 4), "float32"),
            keras.KerasTensor((batch,), "int32"),
        )

    def get_config(self):
        config = super().get_config()
        config.update({
            "image_size": self.image_size, "padded_size": self.padded_size,
            "min_level": self.min_level, "max_level": self.max_level,
            "anchor_size": self.anchor_size, "aspect_ratios": self.aspect_ratios,
            "pre_nms_top_k": self.pre_nms_top_k, "num_proposals": self.num_proposals,
            "train_pre_nms_top_k": self.train_pre_nms_top_k,
            "train_proposals": self.train_proposals, "nms_iou": self.nms_iou,
        })
        return config


@keras.saving.register_keras_serializable(package="defect_aux_net")
class MultilevelRoIAlign(keras.layers.Layer):
    """Each RoI cropped from its FPN level (`roi_align.multilevel_roi_align`).

    Args:
      min_level: level of the first feature map.
      output_size: side of each crop.
      sampling_ratio: bilinear samples per bin side.
    """

    def __init__(self, min_level: int = 2, output_size: int = 7, sampling_ratio: int = 2,
                 **kwargs):
        super().__init__(**{"dtype": "float32", **kwargs})
        self.min_level = min_level
        self.output_size = output_size
        self.sampling_ratio = sampling_ratio

    def call(self, features, boxes, training=None):
        def crop(level_features, level_boxes):
            return multilevel_roi_align(
                list(level_features), level_boxes, self.min_level, self.output_size,
                self.sampling_ratio,
            )

        if training:
            return crop(features, boxes)
        # At inference every proposal is cropped (1,000 an image), and the bilinear
        # gathers hold 4 x [N, 14, 14, C] floats an image (800 MB at C = 256): one image
        # at a time keeps one image's in memory, not the batch's.
        size = self.output_size
        return tf.map_fn(
            lambda example: crop([level[None] for level in example[0]], example[1][None])[0],
            (list(features), boxes),
            fn_output_signature=tf.TensorSpec(
                (boxes.shape[1], size, size, features[0].shape[-1]), tf.float32
            ),
        )

    def compute_output_spec(self, features, boxes, training=None):
        size = self.output_size
        return keras.KerasTensor(
            (boxes.shape[0], boxes.shape[1], size, size, features[0].shape[-1]), "float32"
        )

    def get_config(self):
        config = super().get_config()
        config.update({
            "min_level": self.min_level, "output_size": self.output_size,
            "sampling_ratio": self.sampling_ratio,
        })
        return config


@keras.saving.register_keras_serializable(package="defect_aux_net")
class DecodedDetections(keras.layers.Layer):
    """The box head's outputs as boxes and class probabilities for `select_detections`.

    Each proposal gets one box per class (its class's deltas decoded with the box
    head's weights, (10, 10, 5, 5) unless `box_weights` says otherwise, clipped to the
    image), or one box shared by every class from class-agnostic deltas `[B, R, 1, 4]`,
    and the softmax probability of each class without the background column; padding
    proposals score 0. Given a list of several heads' logits (Cascade R-CNN's stages),
    a class's score is the mean of their probabilities.

    Args:
      image_size: `(height, width)` of the model input.
      box_weights: the deltas' weights (`box_coding`).

    Returns (call):
      `(boxes, scores)`: float32 `[B, R, K, 4]` (or `[B, R, 1, 4]`) pixels and `[B, R, K]`.
    """

    def __init__(self, image_size, box_weights=BOX_HEAD_WEIGHTS, **kwargs):
        super().__init__(**{"dtype": "float32", **kwargs})
        self.image_size = tuple(image_size)
        self.box_weights = tuple(box_weights)

    def call(self, class_logits, box_deltas, proposals, num_proposals):
        boxes = clip_boxes(
            decode_boxes(box_deltas, proposals[:, :, None, :], self.box_weights),
            self.image_size,
        )
        rows = ops.arange(ops.shape(proposals)[1])[None, :]
        valid = ops.cast(rows < ops.cast(num_proposals, "int32")[:, None], "float32")
        heads = class_logits if isinstance(class_logits, (list, tuple)) else [class_logits]
        probabilities = [ops.softmax(ops.cast(logits, "float32"), axis=-1) for logits in heads]
        scores = ops.mean(ops.stack(probabilities), axis=0)[..., 1:]
        return boxes, scores * valid[..., None]

    def compute_output_spec(self, class_logits, box_deltas, proposals, num_proposals):
        if isinstance(class_logits, (list, tuple)):
            class_logits = class_logits[0]
        return (
            keras.KerasTensor(box_deltas.shape, "float32"),
            keras.KerasTensor(
                tuple(class_logits.shape[:2]) + (class_logits.shape[2] - 1,), "float32"
            ),
        )

    def get_config(self):
        config = super().get_config()
        config.update({"image_size": self.image_size, "box_weights": self.box_weights})
        return config

