"""Smith's one-cycle policy: a learning-rate schedule and Adam with cycled beta_1.

The paper (section IV-D) trains with Adam and "one cycle policy" (Smith, 2018).
The shape follows PyTorch's `OneCycleLR(anneal_strategy="cos")` and fastai's
`fit_one_cycle`: a cosine warm-up from `peak / initial_div_factor` to the peak,
then a cosine annealing to `peak / (initial_div_factor * final_div_factor)`,
while Adam's beta_1 (the momentum) moves the opposite way.
"""

import math

import keras
from keras import ops

# A cycle needs a warm-up step and an annealing step at least.
MIN_TOTAL_STEPS = 4


def _check_phases(total_steps, warmup_fraction):
    if not isinstance(total_steps, int) or total_steps < 2:
        raise ValueError(f"total_steps must be an integer >= 2, got {total_steps!r}.")
    if not 0.0 < warmup_fraction < 1.0:
        raise ValueError(f"warmup_fraction must be in (0, 1), got {warmup_fraction!r}.")
    warmup_end = warmup_fraction * total_steps - 1.0
    if not 0.0 < warmup_end < total_steps - 1.0:
        raise ValueError(
            f"total_steps={total_steps} with warmup_fraction={warmup_fraction} leaves no "
            "warm-up or no annealing step: use more steps or another warmup_fraction."
        )


def one_cycle_value(step, total_steps, warmup_fraction, start, peak, end):
    """Value of a two-phase cosine cycle at `step` (a tensor), in float32.

    As in PyTorch's `OneCycleLR`, the value is `start` at step 0, `peak` at step
    `warmup_fraction * total_steps - 1` and `end` at step `total_steps - 1`; it
    stays at `end` afterwards. Each phase is a half cosine between its two values.

    Args:
      step: scalar step (any numeric dtype).
      total_steps: steps in the whole cycle (a number or a variable).
      warmup_fraction: fraction of the steps spent going from `start` to `peak`.
      start: value at step 0.
      peak: value at the end of the warm-up.
      end: value at the last step.

    Returns:
      float32 scalar tensor.
    """
    step = ops.cast(step, "float32")
    total_steps = ops.cast(total_steps, "float32")
    warmup_end = warmup_fraction * total_steps - 1.0
    last_step = total_steps - 1.0
    in_warmup = ops.less_equal(step, warmup_end)
    fraction = ops.where(
        in_warmup,
        step / warmup_end,
        (step - warmup_end) / (last_step - warmup_end),
    )
    fraction = ops.clip(fraction, 0.0, 1.0)
    begin = ops.where(in_warmup, start, peak)
    finish = ops.where(in_warmup, peak, end)
    cosine = 0.5 * (1.0 + ops.cos(math.pi * fraction))
    return finish + (begin - finish) * cosine


@keras.saving.register_keras_serializable(package="defect_aux_net")
class OneCycleSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """One-cycle learning rate: cosine warm-up to the peak, then cosine annealing.

    Example:
    ```python
    schedule = OneCycleSchedule(1e-3, total_steps=50 * steps_per_epoch)
    model.compile(optimizer=OneCycleAdam(schedule))
    ```

    Args:
      peak_learning_rate: the highest learning rate, reached at the end of the warm-up.
      total_steps: optimizer steps in the whole cycle; the rate stays at its
        minimum afterwards.
      warmup_fraction: fraction of `total_steps` spent warming up.
      initial_div_factor: the first rate is `peak_learning_rate / initial_div_factor`.
      final_div_factor: the last rate is the first one divided by `final_div_factor`.
    """

    def __init__(
        self,
        peak_learning_rate: float,
        total_steps: int,
        warmup_fraction: float = 0.3,
        initial_div_factor: float = 25.0,
        final_div_factor: float = 1e4,
    ):
        if not peak_learning_rate > 0:
            raise ValueError(f"peak_learning_rate must be > 0, got {peak_learning_rate!r}.")
        if not initial_div_factor > 0 or not final_div_factor > 0:
            raise ValueError(
                "initial_div_factor and final_div_factor must be > 0, got "
                f"{initial_div_factor!r} and {final_div_factor!r}."
            )
        _check_phases(total_steps, warmup_fraction)
        self.peak_learning_rate = peak_learning_rate
        self._total_steps = total_steps
        self._total_steps_variable = None
        self.warmup_fraction = warmup_fraction
        self.initial_div_factor = initial_div_factor
        self.final_div_factor = final_div_factor

    @property
    def total_steps(self) -> int:
        return self._total_steps

    @total_steps.setter
    def total_steps(self, value: int):
        # A step traced earlier sees the change only through `hold_total_steps_in_variable`.
        _check_phases(value, self.warmup_fraction)
        self._total_steps = value
        if self._total_steps_variable is not None:
            self._total_steps_variable.assign(float(value))

    def hold_total_steps_in_variable(self):
        """Makes the traced step read `total_steps` from a variable, so that a change
        (`training.budget_keeper`) takes effect without tracing and compiling the step
        again. Call it before the step is traced, under the strategy's scope (the
        variable is then placed like the model's). float32 holds steps exactly up to 2^24.
        """
        if self._total_steps_variable is None:
            self._total_steps_variable = keras.Variable(
                float(self._total_steps), dtype="float32", trainable=False,
                name="one_cycle_total_steps",
            )

    def traced_total_steps(self):
        """What the step computes with: the variable, if any, else the number."""
        if self._total_steps_variable is None:
            return self._total_steps
        return self._total_steps_variable

    def __call__(self, step):
        initial = self.peak_learning_rate / self.initial_div_factor
        return one_cycle_value(
            step,
            self.traced_total_steps(),
            self.warmup_fraction,
            start=initial,
            peak=self.peak_learning_rate,
            end=initial / self.final_div_factor,
        )

    def get_config(self):
        return {
            "peak_learning_rate": self.peak_learning_rate,
            "total_steps": self.total_steps,
            "warmup_fraction": self.warmup_fraction,
            "initial_div_factor": self.initial_div_factor,
            "final_div_factor": self.final_div_factor,
        }


@keras.saving.register_keras_serializable(package="defect_aux_net")
class OneCycleAdam(keras.optimizers.Adam):
    """Adam whose learning rate and beta_1 follow one cycle, in opposite directions.

    beta_1 goes from `max_momentum` down to `base_momentum` during the warm-up of
    `learning_rate` and back up during its annealing (Smith's cyclical momentum,
    PyTorch's `cycle_momentum`). It is computed in the graph from the step count,
    so the training step compiles with XLA. Keras' Adam reads `self.beta_1` as a
    number in `update_step` (a callable beta_1 is never called), hence the
    property. As in PyTorch, Adam's bias correction uses the current beta_1.

    Example:
    ```python
    optimizer = OneCycleAdam(OneCycleSchedule(1e-3, total_steps=5000))
    model.compile(optimizer=optimizer, jit_compile=True)
    ```

    Args:
      learning_rate: a `OneCycleSchedule`; beta_1 uses its steps and warm-up.
      max_momentum: beta_1 at the first and last steps.
      base_momentum: beta_1 at the end of the warm-up.
      beta_2, epsilon, amsgrad: as in `keras.optimizers.Adam`.
      **kwargs: other `keras.optimizers.Adam` arguments (except `beta_1`).
    """

    def __init__(
        self,
        learning_rate: OneCycleSchedule,
        max_momentum: float = 0.95,
        base_momentum: float = 0.85,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        amsgrad: bool = False,
        **kwargs,
    ):
        if not isinstance(learning_rate, OneCycleSchedule):
            raise ValueError(
                f"learning_rate must be a OneCycleSchedule, got {type(learning_rate).__name__}."
            )
        if not 0.0 <= base_momentum <= max_momentum < 1.0:
            raise ValueError(
                "Expected 0 <= base_momentum <= max_momentum < 1, got "
                f"base_momentum={base_momentum!r}, max_momentum={max_momentum!r}."
            )
        # beta_1=None: the property below replaces Adam's constant beta_1.
        super().__init__(
            learning_rate=learning_rate,
            beta_1=None,
            beta_2=beta_2,
            epsilon=epsilon,
            amsgrad=amsgrad,
            **kwargs,
        )
        self.max_momentum = max_momentum
        self.base_momentum = base_momentum
        self._step_beta_1 = None  # Set by `apply` for the length of one step.

    def apply(self, grads, trainable_variables=None):
        # Adam reads beta_1 several times per variable: building its ops once per step
        # instead of at every read cut the tracing of the quickstart step from 31 s to 19 s.
        self._step_beta_1 = self._scheduled_beta_1()
        try:
            return super().apply(grads, trainable_variables)
        finally:
            self._step_beta_1 = None

    @property
    def beta_1(self):
        """float32 beta_1 at the current step."""
        if self._step_beta_1 is not None:
            return self._step_beta_1
        return self._scheduled_beta_1()

    def _scheduled_beta_1(self):
        schedule = self._learning_rate
        # The raw step counter, the one the base optimizer gives the learning-rate schedule.
        return one_cycle_value(
            self._iterations,
            schedule.traced_total_steps(),
            schedule.warmup_fraction,
            start=self.max_momentum,
            peak=self.base_momentum,
            end=self.max_momentum,
        )

    @beta_1.setter
    def beta_1(self, value):
        # Adam's constructor assigns beta_1 (None here); any other value would be ignored.
        if value is not None:
            raise AttributeError(
                "OneCycleAdam's beta_1 follows the one-cycle schedule; "
                "set max_momentum and base_momentum instead."
            )

    def get_config(self):
        config = super().get_config()
        del config["beta_1"]
        config.update({"max_momentum": self.max_momentum, "base_momentum": self.base_momentum})
        return config
