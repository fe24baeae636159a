"""Smith's learning-rate range test, used to pick the peak of the one-cycle policy."""

import dataclasses
import io
import math

import keras
import numpy as np
import tensorflow as tf
from matplotlib.figure import Figure

from defect_aux_net import atomic_writes


@dataclasses.dataclass
class LRFinderResult:
    """The curve of a range test.

    Attributes:
      learning_rates: float `[S]` learning rate of each step run.
      losses: float `[S]` exponentially smoothed, bias-corrected training loss.
      suggested_lr: learning rate at the steepest descent of the smoothed loss
        against log(learning rate): fastai's "steep" suggestion.
    """

    learning_rates: np.ndarray
    losses: np.ndarray
    suggested_lr: float


def find_learning_rate(
    model: keras.Model,
    dataset: tf.data.Dataset,
    min_lr: float = 1e-7,
    max_lr: float = 1.0,
    num_steps: int = 100,
    smoothing: float = 0.98,
    divergence_factor: float = 4.0,
) -> LRFinderResult:
    """Trains with a learning rate growing exponentially per step and records the loss.

    The range test of Smith ("Cyclical learning rates", 2017) and fastai's
    `lr_find`: step i uses `min_lr * (max_lr / min_lr) ** (i / (num_steps - 1))`,
    the loss is smoothed as `avg = smoothing * avg + (1 - smoothing) * loss` and
    bias-corrected by `1 - smoothing ** (i + 1)`, and the test stops early once the
    smoothed loss exceeds `divergence_factor` times its minimum (or is not finite).
    Training goes through `train_on_batch`, so models with their own
    `compute_loss` (DefectAuxNet) work. Afterwards the model's weights and the
    optimizer's variables (step count, slots, learning rate) are restored exactly.

    The suggestion is the learning rate where the smoothed loss falls fastest
    against log(learning rate), over the curve without its first tenth and last
    five points, whose noise and divergence would mislead it (as fastai trims).

    Args:
      model: a compiled model whose optimizer has a float learning rate (not a
        schedule: the test sets the rate each step). Compile for the range test
        with the optimizer type you will train with, e.g. `keras.optimizers.Adam()`.
      dataset: batched training data as `fit` takes it; repeated as needed.
      min_lr: learning rate of the first step.
      max_lr: learning rate of the last step.
      num_steps: steps at most.
      smoothing: weight of the running average of the loss.
      divergence_factor: stop once the smoothed loss exceeds this times its minimum.

    Returns:
      The `LRFinderResult` of the steps run.

    Raises:
      ValueError: bad arguments, an uncompiled model or a scheduled learning rate,
        or too few steps before divergence to suggest a learning rate.
    """
    if not 0 < min_lr < max_lr:
        raise ValueError(f"Expected 0 < min_lr < max_lr, got min_lr={min_lr}, max_lr={max_lr}.")
    if not isinstance(num_steps, int) or num_steps < 10:
        raise ValueError(f"num_steps must be an integer >= 10, got {num_steps!r}.")
    if not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}.")
    if not divergence_factor > 1:
        raise ValueError(f"divergence_factor must be > 1, got {divergence_factor!r}.")
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        raise ValueError("model must be compiled with an optimizer before the range test.")
    if not isinstance(optimizer.learning_rate, keras.Variable):
        raise ValueError(
            "The range test sets the learning rate each step: compile the model with an "
            "optimizer whose learning_rate is a float, not a schedule or a callable."
        )
    # Build the slots now so that the snapshot holds their initial values too.
    with model.distribute_strategy.scope():
        optimizer.build(model.trainable_variables)
    model_state = [variable.numpy() for variable in model.weights]
    optimizer_state = [variable.numpy() for variable in optimizer.variables]

    learning_rates = min_lr * (max_lr / min_lr) ** (np.arange(num_steps) / (num_steps - 1))
    recorded_lrs, losses = [], []
    average, best = 0.0, math.inf
    try:
        for step, batch in enumerate(dataset.repeat().take(num_steps)):
            optimizer.learning_rate = learning_rates[step]
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(batch)
            logs = model.train_on_batch(x, y, sample_weight=sample_weight, return_dict=True)
            average = smoothing * average + (1 - smoothing) * float(logs["loss"])
            smoothed = average / (1 - smoothing ** (step + 1))
            recorded_lrs.append(learning_rates[step])
            losses.append(smoothed)
            if not math.isfinite(smoothed) or smoothed > divergence_factor * best:
                break
            best = min(best, smoothed)
    finally:
        for variable, value in zip(model.weights, model_state):
            variable.assign(value)
        for variable, value in zip(optimizer.variables, optimizer_state):
            variable.assign(value)

    recorded_lrs, losses = np.array(recorded_lrs), np.array(losses)
    return LRFinderResult(recorded_lrs, losses, _steepest_descent(recorded_lrs, losses))


def _steepest_descent(learning_rates, losses):
    start, stop = len(losses) // 10, len(losses) - 5
    if stop - start < 2:
        raise ValueError(
            f"The loss diverged after {len(losses)} steps, too few to suggest a learning "
            "rate: lower min_lr, or raise num_steps or divergence_factor."
        )
    kept_lrs, kept_losses = learning_rates[start:stop], losses[start:stop]
    slopes = np.gradient(kept_losses, np.log(kept_lrs))
    return float(kept_lrs[np.argmin(slopes)])


# A curve whose smoothed loss never falls this share below its first value shows no
# learning rate that trains: the test's rates were all too low or all too high.
MIN_LOSS_DROP = 0.1


def peak_learning_rate(result: LRFinderResult) -> tuple:
    """`(learning_rate, "")` for the one-cycle peak read off a curve, or `(None, why)`.

    The peak is a tenth of the learning rate at the smoothed loss's minimum: Smith's
    advice (the one-cycle peak a little below where the loss stops falling) as fastai
    reads it, and steadier than the steepest descent on a short, noisy test. The
    curve counts up to its first non-finite loss (the divergence that ends a test).
    It is unusable when its first loss is not finite, or when the loss never falls
    `MIN_LOSS_DROP` below its first value (no decrease: no rate of the test trains).
    """
    losses = np.asarray(result.losses, np.float64)
    if not len(losses) or not np.isfinite(losses[0]):
        return None, "the first loss of the test is not finite"
    end = len(losses) if np.isfinite(losses).all() else int(np.argmin(np.isfinite(losses)))
    lowest = int(np.argmin(losses[:end]))
    if losses[lowest] > (1 - MIN_LOSS_DROP) * losses[0]:
        return None, (
            f"no decrease: the smoothed loss went from {losses[0]:.4g} to at best "
            f"{losses[lowest]:.4g}, less than {MIN_LOSS_DROP:.0%} lower"
        )
    return float(result.learning_rates[lowest]) / 10, ""


def plot_lr_finder(result: LRFinderResult, path: str) -> None:
    """Writes a PNG of the smoothed loss against the learning rate (log axis).

    Args:
      result: the outcome of `find_learning_rate`; its `suggested_lr` is marked.
      path: the PNG file to write (may be `gs://`).
    """
    # A Figure without pyplot draws with Agg and leaves no global state behind.
    figure = Figure(figsize=(6, 4), dpi=100)
    axes = figure.add_subplot()
    axes.plot(result.learning_rates, result.losses)
    index = int(np.argmin(np.abs(result.learning_rates - result.suggested_lr)))
    axes.plot(
        result.suggested_lr,
        result.losses[index],
        "o",
        color="tab:red",
        label=f"suggested {result.suggested_lr:.2e}",
    )
    axes.set_xscale("log")
    # The divergence at the end would flatten the interesting part of the curve.
    low, start = float(np.min(result.losses)), float(result.losses[0])
    top = min(float(np.max(result.losses)), start + 2 * (start - low) + 0.1 * abs(start))
    axes.set_ylim(low - 0.05 * (top - low) - 1e-12, top)
    axes.set_xlabel("learning rate")
    axes.set_ylabel("smoothed training loss")
    axes.legend()
    figure.tight_layout()
    png = io.BytesIO()
    figure.savefig(png, format="png")
    # Whole or not at all, and through gfile: run folders may be on GCS.
    with atomic_writes.writing(path) as partial, tf.io.gfile.GFile(partial, "wb") as file:
        file.write(png.getvalue())
