"""Training throughput of a network and of the input pipeline that feeds it.

Both read the same split through the training pipeline (`make_dataset`): the
network trains on one real batch of targets, repeated, so its figure is the rate
at which it consumes images; the pipeline's figure is the rate at which one CPU
core decodes, augments and encodes targets.
"""

import time

import keras
import tensorflow as tf

from defect_aux_net.config import DefectAuxNetConfig
from defect_aux_net.data import datasets
from defect_aux_net.data.pipeline import InputOptions, make_dataset
from defect_aux_net.models.model_builders import build_model
from defect_aux_net.performance.measurement import median_seconds, peak_memory_bytes


def training_throughput(
    config,
    dataset: str,
    data_dir,
    split: str,
    batch_size: int,
    steps: int,
    warmup_steps: int = 1,
) -> dict:
    """Images per second of the training step (Adam) of the network of `config` (any
    `MODELS` config), XLA-compiled if it can be.

    Returns:
      `{"images_per_s", "step_s", "cpu_per_wall", "xla_compiles", "xla_error",
      "peak_memory_bytes"}`; when XLA cannot compile the step, `xla_error` holds
      the reason and the step is timed without XLA.
    """
    builder = datasets.load_builder(dataset, data_dir)
    options = InputOptions(batch_size, training=True, augment=False)
    batch = next(make_dataset(builder, split, config, options).as_numpy_iterator())
    model = build_model(config)
    xla_error = None
    try:
        _compile_and_step(model, batch, jit_compile=True)
    except tf.errors.OpError as error:  # XLA rejects an op of the step.
        xla_error = error.message.splitlines()[0]
        _compile_and_step(model, batch, jit_compile=False)
    timing = median_seconds(lambda: model.train_on_batch(*batch), warmup_steps, steps)
    return {
        "images_per_s": batch_size / timing["median_s"],
        "step_s": timing["median_s"],
        "cpu_per_wall": timing["cpu_per_wall"],
        "xla_compiles": xla_error is None,
        "xla_error": xla_error,
        "peak_memory_bytes": peak_memory_bytes(),
    }


def _compile_and_step(model, batch, jit_compile):
    model.compile(optimizer=keras.optimizers.Adam(1e-4), jit_compile=jit_compile)
    # Built before the first step so that tf.function traces the step once.
    model.optimizer.build(model.trainable_variables)
    model.train_on_batch(*batch)


def pipeline_throughput(
    config: DefectAuxNetConfig,
    dataset: str,
    data_dir,
    split: str,
    batch_size: int,
    batches: int,
    augment: bool = True,
) -> dict:
    """Images per second of the training pipeline on one thread.

    Reads, decodes, resizes, augments (unless `augment=False`) and encodes the
    detection targets of the training split, with tf.data limited to one thread.

    Returns:
      `{"images_per_s", "cpu_per_wall"}`.
    """
    builder = datasets.load_builder(dataset, data_dir)
    batched = make_dataset(
        builder, split, config, InputOptions(batch_size, training=True, augment=augment)
    )
    one_thread = tf.data.Options()
    one_thread.threading.private_threadpool_size = 1
    one_thread.threading.max_intra_op_parallelism = 1
    iterator = iter(batched.with_options(one_thread))
    next(iterator)  # Opens the files and fills the shuffle buffer.
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(batches):
        next(iterator)
    elapsed = time.perf_counter() - start
    return {
        "images_per_s": batches * batch_size / elapsed,
        "cpu_per_wall": (time.process_time() - cpu_start) / elapsed,
    }
