"""Timing and memory measurement: medians after warm-up, in a fresh process per figure.

Each figure is measured in its own spawned process: its peak resident memory is its
own, and TensorFlow's thread pools, fixed when TF starts, get the requested size.
"""

import concurrent.futures
import multiprocessing
import resource
import statistics
import time

import numpy as np


def median_seconds(function, warmup: int, repeats: int) -> dict:
    """Times `function()` `repeats` times after `warmup` untimed calls.

    `function` must return only when its work is done (return numpy values).

    Returns:
      `{"median_s", "cpu_per_wall"}`: the median wall time of one call, and the
      process CPU time over the wall time of the timed calls (about the number of
      cores used; it checks the thread limit).
    """
    return interleaved_median_seconds({"function": function}, warmup, repeats)["function"]


def interleaved_median_seconds(functions: dict, warmup: int, repeats: int) -> dict:
    """`median_seconds` of each of `functions` (a dict), timed in turn: each round calls
    every function once, in order, after `warmup` such rounds untimed. Each function's
    CPU time is counted over its own calls.

    A machine whose speed drifts (a cloud VM's neighbours, clock changes) then slows
    every function alike, so the ratios of their times hold; timed one after another,
    a drift between them enters the ratio.

    Returns:
      `{key: {"median_s", "cpu_per_wall"}}`, as `median_seconds` for each.
    """
    if warmup < 0 or repeats < 1:
        raise ValueError(f"Need warmup >= 0 and repeats >= 1, got {warmup} and {repeats}.")
    for _ in range(warmup):
        for function in functions.values():
            function()
    times = {key: [] for key in functions}
    cpu = dict.fromkeys(functions, 0.0)
    for _ in range(repeats):
        for key, function in functions.items():
            cpu_start, start = time.process_time(), time.perf_counter()
            function()
            times[key].append(time.perf_counter() - start)
            cpu[key] += time.process_time() - cpu_start
    return {
        key: {"median_s": statistics.median(times[key]), "cpu_per_wall": cpu[key] / sum(times[key])}
        for key in functions
    }


def peak_memory_bytes() -> int:
    """The peak resident memory of this process so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def to_numpy(outputs):
    """Outputs (a tensor or a dict of them) as numpy: waits for the computation."""
    if isinstance(outputs, dict):
        return {name: np.asarray(value) for name, value in outputs.items()}
    return np.asarray(outputs)


def run_isolated(function, *args, threads: int = 0):
    """`function(*args)` in a fresh Python process whose TensorFlow uses `threads` threads.

    Args:
      function: a module-level function (spawned processes import it by name).
      threads: intra- and inter-op threads; 0 leaves TensorFlow's default, all cores.
    """
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(
        1, mp_context=context, initializer=_limit_threads, initargs=(threads,)
    ) as pool:
        return pool.submit(function, *args).result()


def _limit_threads(threads: int):
    if threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
