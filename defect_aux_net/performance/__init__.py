"""Measurements of `launch.benchmark`: Table VI latency, gated streams, throughput, memory."""
