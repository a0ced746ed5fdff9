"""The engine and the seeds' baseline on the same workload, and their ratio.

    python -m bench.compare --executions 200 --concurrency 50 --order-send-ms 20 \\
        --ipc-ms 0.2 --database postgres

Runs `bench.load` then `bench.baseline` (each on a database of its own, on a fresh
simulated terminal with the same seed and latencies) and prints one JSON object:
`engine`, `baseline` (each the full result of its bench) and `ratio`, where every figure
is engine / baseline for throughput and efficiency, and baseline / engine for what is
better smaller (latencies, CPU, terminal calls), so above 1.0 means the engine is better.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import Any

from bench import baseline, load
from bench._common import add_workload_arguments, emit, workload_from


def ratios(engine: dict[str, Any], seeds: dict[str, Any]) -> dict[str, float | None]:
    """How many times better the engine did on each figure (above 1.0: the engine)."""

    def higher(key: str) -> float | None:
        return _ratio(engine.get(key), seeds.get(key))

    def lower(a: float | None, b: float | None) -> float | None:
        return _ratio(b, a)

    return {
        "throughput_per_s": higher("throughput_per_s"),
        "broker_bound_efficiency": higher("broker_bound_efficiency"),
        "submit_latency_ms_p50": lower(
            engine["submit_latency_ms"]["p50"], seeds["submit_latency_ms"]["p50"]
        ),
        "end_to_end_ms_p50": lower(engine["end_to_end_ms"]["p50"], seeds["end_to_end_ms"]["p50"]),
        "end_to_end_ms_p99": lower(engine["end_to_end_ms"]["p99"], seeds["end_to_end_ms"]["p99"]),
        "cpu_seconds_per_execution": lower(
            engine["cpu_seconds_per_execution"], seeds["cpu_seconds_per_execution"]
        ),
        "terminal_calls_per_execution": lower(
            engine["terminal_calls_per_execution"]["total"],
            seeds["terminal_calls_per_execution"]["total"],
        ),
    }


def _ratio(numerator: Any, denominator: Any) -> float | None:
    if not isinstance(numerator, int | float) or not isinstance(denominator, int | float):
        return None
    if denominator == 0:
        return None
    return round(float(numerator) / float(denominator), 3)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.compare",
        description="The engine and the seeds' baseline on one workload, and their ratio.",
    )
    add_workload_arguments(parser, executions=200, concurrency=50)
    baseline.add_first_poll_argument(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING)
    args = parse_args(argv)
    workload = workload_from(args)
    engine = load.run(workload, args.postgres_admin_url)
    seeds = baseline.run(
        workload,
        args.postgres_admin_url,
        first_poll_immediate=args.first_poll == "immediate",
    )
    result = {
        "benchmark": "compare",
        "workload": workload.describe(),
        "ratio": ratios(engine, seeds),
        "engine": engine,
        "baseline": seeds,
    }
    emit(result)
    return result


if __name__ == "__main__":
    main()
