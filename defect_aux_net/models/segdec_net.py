"""The segmentation + decision network (Bozic et al. 2021), trained end to end."""

import keras

from defect_aux_net.layers.feature_norm import FeatureNorm
from defect_aux_net.layers.gradient_stop import GradientStop
from defect_aux_net.losses.segdec import (
    OUTPUT_STRIDE,
    balance_weights,
    decision_loss,
    segmentation_loss,
)
from defect_aux_net.models.defect_aux_net import model_loss
from defect_aux_net.models.segdec_config import SegDecConfig

# The segmentation trunk: (width, kernel) convolution blocks, the width an index into
# `SegDecConfig.trunk_channels` (the paper: 32, 64, 1024); "pool" a 2x2 max-pool.
TRUNK = (
    (0, 5), "pool",
    (1, 5), (1, 5), (1, 5), "pool",
    (1, 5), (1, 5), (1, 5), (1, 5), "pool",
    (2, 15),
)
# The decision head's blocks, each after a 2x2 max-pool.
DECISION_FILTERS = (8, 16, 32)


@keras.saving.register_keras_serializable(package="defect_aux_net")
class SegDecNet(keras.Model):
    """Segmentation trunk at 1/8 resolution and a decision head on top of it.

    Outputs (a dict):
      classification: float32 `[B, K]`, sigmoid of the decision logits.
      segmentation: float32 `[B, H, W, K]`, sigmoid of the segmentation logits
        upsampled bilinearly to the input size.
      decision_logits: float32 `[B, K]`, what the decision loss reads.
      segmentation_logits: float32 `[B, H/8, W/8, K]`, what the segmentation loss reads.

    Post-processing, evaluation and serving read the first two, as from any model.
    Training is the model's own (`compute_loss`): binary cross-entropy of both heads,
    balanced per epoch (`balance_weights`, set by the callback `fit` adds), targets as
    `DefectAuxNet` takes them from the input pipeline. Compile with an optimizer only
    (the paper: plain SGD).

    Example:
    ```python
    model = SegDecNet(SegDecConfig.from_preset("kolektorsdd"))
    model.compile(optimizer=keras.optimizers.SGD(1.0))
    model.fit(dataset, epochs=50, steps_per_epoch=steps)
    ```

    Args:
      config: a `SegDecConfig` (or its dict, as stored in `.keras` files).
    """

    def __init__(self, config, **kwargs):
        if isinstance(config, dict):
            config = SegDecConfig(**config)
        num_classes = config.num_classes
        inputs = keras.Input(config.input_shape, name="images")
        features = inputs
        block = 0
        for layer in TRUNK:
            if layer == "pool":
                features = keras.layers.MaxPooling2D(2)(features)
            else:
                block += 1
                width, kernel_size = layer
                features = _conv_block(
                    config.trunk_channels[width], kernel_size, name=f"trunk_{block}"
                )(features)
        segmentation_logits = keras.layers.Conv2D(
            num_classes, 1, use_bias=False, kernel_initializer="glorot_normal",
            name="segmentation_conv",
        )(features)
        # With a trained bias, as the reference's: its `include_bias=False` still wraps
        # the zero bias in `nn.Parameter`, whose `requires_grad` defaults to True, so
        # SGD trains it. Without one the logits' spatial mean is 0, every defect-free
        # image costs at least ln 2 per pixel, and SGD shrinks `scale` to 0 before the
        # trunk can tell defects apart: the segmentation never learns.
        segmentation_logits = FeatureNorm(name="segmentation_norm")(segmentation_logits)

        active = config.gradient_adjustment
        decision = GradientStop(active, name="decision_input_stop")(
            keras.layers.Concatenate(name="decision_input")([features, segmentation_logits])
        )
        for index, filters in enumerate(DECISION_FILTERS, start=1):
            decision = keras.layers.MaxPooling2D(2)(decision)
            decision = _conv_block(filters, 5, name=f"decision_{index}")(decision)
        pooled = [
            keras.layers.GlobalMaxPooling2D(name="decision_max")(decision),
            keras.layers.GlobalAveragePooling2D(name="decision_average")(decision),
            GradientStop(active, name="segmentation_max_stop")(
                keras.layers.GlobalMaxPooling2D(name="segmentation_max")(segmentation_logits)
            ),
            GradientStop(active, name="segmentation_average_stop")(
                keras.layers.GlobalAveragePooling2D(name="segmentation_average")(
                    segmentation_logits
                )
            ),
        ]
        # Initialised as the reference's nn.Linear (PyTorch's default): weights and
        # bias uniform in +-1/sqrt(fan_in).
        bound = (2 * DECISION_FILTERS[-1] + 2 * num_classes) ** -0.5
        decision_logits = keras.layers.Dense(
            num_classes,
            kernel_initializer=keras.initializers.VarianceScaling(
                1 / 3, mode="fan_in", distribution="uniform"
            ),
            bias_initializer=keras.initializers.RandomUniform(-bound, bound),
            name="decision_logit",
        )(keras.layers.Concatenate(name="decision_pooled")(pooled))
        upsampled = keras.layers.UpSampling2D(
            OUTPUT_STRIDE, interpolation="bilinear", name="segmentation_upsample"
        )(segmentation_logits)
        outputs = {
            "classification": _float32("sigmoid", "classification")(decision_logits),
            "segmentation": _float32("sigmoid", "segmentation")(upsampled),
            "decision_logits": _float32("linear", "decision_logits")(decision_logits),
            "segmentation_logits": _float32("linear", "segmentation_logits")(
                segmentation_logits
            ),
        }
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.config = config
        # (segmentation weight, decision weight) of the current epoch; `fit` sets it.
        self.loss_balance = keras.Variable(
            self.balance_at(0, 1), trainable=False, name="loss_balance"
        )
        self.task_loss_trackers = {
            task: keras.metrics.Mean(name=f"{task}_loss") for task in config.tasks
        }

    # A model without detection: no anchors for the shared decoding to read.
    anchors = None
    # The decision head reads the segmentation logits: nothing to skip behind a gate.
    supports_gated_inference = False

    @staticmethod
    def validation_loss_compares(config) -> bool:
        """Whether two epochs' validation losses compare: not with `dynamic_balance`,
        which weighs the two losses differently every epoch; such a run keeps its last
        epoch, as the reference evaluates KolektorSDD and DAGM (`USE_BEST_MODEL` off)."""
        return not config.dynamic_balance

    def balance_at(self, epoch: int, epochs: int) -> list:
        """The `[segmentation, decision]` loss weights at `epoch` of `epochs`."""
        if not self.config.dynamic_balance:
            return [1.0, self.config.delta]
        return list(balance_weights(epoch, epochs, self.config.delta))

    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            **kwargs):
        """`keras.Model.fit` with the per-epoch loss balance over `epochs` set first."""
        callbacks = [LossBalanceSchedule(), *(callbacks or [])]
        return super().fit(
            x, y, batch_size=batch_size, epochs=epochs, verbose=verbose, callbacks=callbacks,
            **kwargs,
        )

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        reduction = self.config.batch_reduction
        losses = {
            "segmentation": segmentation_loss(
                y["segmentation"],
                y_pred["segmentation_logits"],
                sample_weight["segmentation"],
                self.config.dilation,
                y.get("segmentation_weights"),
                reduction,
            ),
            "classification": decision_loss(
                y["classification"], y_pred["decision_logits"], reduction
            ),
        }
        for task, tracker in self.task_loss_trackers.items():
            tracker.update_state(losses[task])
        balance = keras.ops.cast(self.loss_balance, "float32")
        total = balance[0] * losses["segmentation"] + balance[1] * losses["classification"]
        return model_loss(self, total, summed=reduction == "sum")

    @property
    def metrics(self):
        return super().metrics + list(self.task_loss_trackers.values())

    def get_config(self):
        return {"config": self.config.to_dict(), "name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class LossBalanceSchedule(keras.callbacks.Callback):
    """Sets a `SegDecNet`'s loss balance at the start of each epoch of `fit`'s run.

    Epoch numbers are the run's (a resumed run starts at its `initial_epoch`). The run's
    length is read from `fit`'s params at each epoch, which the time budget's keeper
    re-fits when the epochs are slower or faster than planned: the last epoch trained is
    then still weighed as the last.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self.model.loss_balance.assign(self.model.balance_at(epoch, self.params["epochs"]))


def build_segdec_net(config: SegDecConfig) -> SegDecNet:
    """Builds the segmentation + decision network described by `config`."""
    return SegDecNet(config)


def _conv_block(filters, kernel_size, name):
    """Convolution without bias, `FeatureNorm`, ReLU (the reference's block)."""
    return keras.Sequential(
        [
            keras.layers.Conv2D(
                filters, kernel_size, padding="same", use_bias=False,
                kernel_initializer="glorot_normal", name=f"{name}_conv",
            ),
            FeatureNorm(name=f"{name}_norm"),
            keras.layers.ReLU(name=f"{name}_relu"),
        ],
        name=name,
    )


def _float32(activation, name):
    # Mixed precision computes in bfloat16; outputs and losses stay float32.
    return keras.layers.Activation(activation, dtype="float32", name=name)
