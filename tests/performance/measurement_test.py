import os
import time

import numpy as np
import pytest
import tensorflow as tf

from defect_aux_net.performance.measurement import (
    interleaved_median_seconds,
    median_seconds,
    run_isolated,
    to_numpy,
)


def test_median_seconds_is_the_median_after_warmup():
    # Warm-up sleeps 0.3 s; the timed calls sleep 0.05, 0.01, 0.03: median 0.03 s.
    durations = iter([0.3, 0.05, 0.01, 0.03])
    timing = median_seconds(lambda: time.sleep(next(durations)), warmup=1, repeats=3)
    assert timing["median_s"] == pytest.approx(0.03, abs=0.01)
    assert timing["cpu_per_wall"] < 0.1  # sleeping uses no CPU
    with pytest.raises(StopIteration):  # exactly four calls were made
        next(durations)


def test_median_seconds_counts_cpu_time():
    # The busy call records its own wall and CPU time, so the expected ratio holds
    # however loaded the machine is (other processes only stretch the wall time).
    wall, cpu = [], []

    def busy():
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        while time.process_time() - cpu_start < 0.05:
            pass
        wall.append(time.perf_counter() - wall_start)
        cpu.append(time.process_time() - cpu_start)

    timing = median_seconds(busy, warmup=0, repeats=3)
    assert timing["median_s"] == pytest.approx(sorted(wall)[1], rel=0.01)
    # The few microseconds between the call and its own clocks are all that differ.
    assert timing["cpu_per_wall"] == pytest.approx(sum(cpu) / sum(wall), rel=0.01)


def test_median_seconds_rejects_no_repeats():
    with pytest.raises(ValueError, match="repeats >= 1"):
        median_seconds(lambda: None, warmup=0, repeats=0)


def test_interleaved_timing_calls_each_function_once_a_round_and_takes_each_median():
    calls = []
    # a sleeps 0.3 s in the warm-up round, then 0.05, 0.01, 0.03 (median 0.03 s); b busy-
    # waits 0.02, 0.06, 0.04 s of CPU after its warm-up (the median is its middle call's).
    sleeps = iter([0.3, 0.05, 0.01, 0.03])
    busy = iter([0.0, 0.02, 0.06, 0.04])

    def a():
        calls.append("a")
        time.sleep(next(sleeps))

    wall, cpu = [], []  # b's own clocks, as in the test above

    def b():
        calls.append("b")
        seconds, wall_start, start = next(busy), time.perf_counter(), time.process_time()
        while time.process_time() - start < seconds:
            pass
        wall.append(time.perf_counter() - wall_start)
        cpu.append(time.process_time() - start)

    timing = interleaved_median_seconds({"a": a, "b": b}, warmup=1, repeats=3)
    assert calls == ["a", "b"] * 4  # one call each per round: side by side
    assert timing["a"]["median_s"] == pytest.approx(0.03, abs=0.01)
    assert timing["b"]["median_s"] == pytest.approx(sorted(wall[1:])[1], rel=0.01)
    assert timing["a"]["cpu_per_wall"] < 0.1  # sleeping uses no CPU
    assert timing["b"]["cpu_per_wall"] == pytest.approx(sum(cpu[1:]) / sum(wall[1:]), rel=0.01)
    with pytest.raises(ValueError, match="repeats >= 1"):
        interleaved_median_seconds({"a": a}, warmup=0, repeats=0)


def test_to_numpy_converts_dicts_of_tensors():
    outputs = to_numpy({"a": tf.constant([1.0, 2.0])})
    assert isinstance(outputs["a"], np.ndarray)
    np.testing.assert_array_equal(outputs["a"], [1.0, 2.0])


def pid_and_threads():
    """Run in the child: its process id and TensorFlow's thread counts."""
    return (
        os.getpid(),
        tf.config.threading.get_intra_op_parallelism_threads(),
        tf.config.threading.get_inter_op_parallelism_threads(),
    )


def test_run_isolated_runs_in_a_fresh_process_with_the_thread_count():
    pid, intra_op, inter_op = run_isolated(pid_and_threads, threads=3)
    assert pid != os.getpid()
    assert (intra_op, inter_op) == (3, 3)
