"""End-to-end latency of `execute()`: one filled execution after another, through the facade.

    python -m bench.latency --database sqlite|postgres --executions 100

Each execution is a whole pipeline run (journal writes, validation, the send, the fill)
against a zero-latency `SimulatedTerminal`, so the numbers are the engine's own cost plus
the database's commits. After `--warmup` executions that are not counted, it prints JSON:
the median, p90, p99, mean, min and max milliseconds, the database kind and N.

PostgreSQL: a database `ee_bench_<random>` is created on the server of
`--postgres-admin-url` (a URL of its maintenance database) and dropped afterwards.
SQLite: a file in a temporary directory, removed afterwards.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from actors.engine import create_execution_engine
from actors.facade import ExecutionFacade
from bench._common import bench_database
from core.enums import ExecutionStatus
from core.settings import load_settings
from terminals.simulated import SimulatedTerminal

DEFAULT_POSTGRES_ADMIN_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
DATABASES = ("sqlite", "postgres")
SYMBOLS = (("EURUSD", 10_000), ("GBPUSD", 10_000), ("USDJPY", 10_000))
"""What the bench trades in turn: symbol and units (0.1 lots each)."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.latency",
        description="End-to-end latency of execute() on a zero-latency simulated terminal.",
    )
    parser.add_argument("--database", choices=DATABASES, default="sqlite")
    parser.add_argument("--executions", type=_positive, default=100, metavar="N")
    parser.add_argument(
        "--warmup", type=_non_negative, default=10, metavar="N", help="uncounted runs first"
    )
    parser.add_argument(
        "--postgres-admin-url",
        default=DEFAULT_POSTGRES_ADMIN_URL,
        metavar="URL",
        help="maintenance database of the PostgreSQL server (CREATE/DROP DATABASE)",
    )
    return parser.parse_args(argv)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError("must be at least 0")
    return number


def rpm_message(index: int, run: str) -> dict[str, Any]:
    """An approved RPM decision, unique per `index` (and per run)."""
    symbol, units = SYMBOLS[index % len(SYMBOLS)]
    return {
        "decision": {
            "status": "APPROVED",
            "decision_id": f"bench-{run}-{index:06d}",
            "approved_trade": {
                "symbol": symbol,
                "direction": 1 if index % 2 == 0 else -1,
                "position_units": units,
                "confidence_score": 0.78,
                "atr": 0.0015,
                "stop_loss_pips": 25,
            },
        },
        "portfolio_state": {"trading_halted": False, "open_positions": 0},
        "rpm_version": "1.0.0",
        "model_version": "bench",
        "timestamp": datetime.now(UTC).isoformat(),
    }


def percentile(ordered: Sequence[float], fraction: float) -> float:
    """Linear interpolation between closest ranks; `ordered` must be sorted and non-empty."""
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def measure(engine: ExecutionFacade, executions: int, warmup: int) -> list[float]:
    """Milliseconds of each counted `execute()`; every execution must fill."""
    run = uuid.uuid4().hex[:8]
    samples: list[float] = []
    for index in range(warmup + executions):
        message = rpm_message(index, run)
        started = time.perf_counter()
        confirmation = engine.execute(message)
        elapsed = (time.perf_counter() - started) * 1000.0
        if confirmation.status is not ExecutionStatus.FILLED:
            raise RuntimeError(
                f"execution {index} ended {confirmation.status}: "
                f"{confirmation.rejection_reason} {confirmation.rejection_details}"
            )
        if index >= warmup:
            samples.append(elapsed)
    return samples


def run(database: str, executions: int, warmup: int, admin_url: str) -> dict[str, Any]:
    terminal = SimulatedTerminal(seed=1)
    terminal.set_account(balance=1_000_000_000.0)  # room for every position the run opens
    settings = load_settings()
    database_cm = bench_database(database, admin_url)
    with database_cm as url:
        engine = create_execution_engine(terminal=terminal, database_url=url, settings=settings)
        try:
            samples = measure(engine, executions, warmup)
        finally:
            engine.stop()
    ordered = sorted(samples)
    return {
        "benchmark": "execute_latency",
        "database": database,
        "executions": executions,
        "warmup": warmup,
        "median_ms": round(statistics.median(ordered), 3),
        "p90_ms": round(percentile(ordered, 0.90), 3),
        "p99_ms": round(percentile(ordered, 0.99), 3),
        "mean_ms": round(statistics.fmean(ordered), 3),
        "min_ms": round(ordered[0], 3),
        "max_ms": round(ordered[-1], 3),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the bench, print its JSON on stdout and return it."""
    args = parse_args(argv)
    result = run(args.database, args.executions, args.warmup, args.postgres_admin_url)
    print(json.dumps(result, sort_keys=True))
    return result


if __name__ == "__main__":
    main()
    sys.exit(0)
