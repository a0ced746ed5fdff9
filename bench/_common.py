"""What `bench.load`, `bench.baseline` and `bench.compare` share: the workload and its
command line, a database of the run's own, the simulated terminal, the RPM messages, and
the measurements (latency percentiles, terminal calls, CPU time, resident memory).

Every figure comes from outside the engine, so the engine and the baseline are measured
the same way:

- submit latency: from just before `submit()` is called to the start of that execution's
  first `order_send`, as the simulated terminal recorded it (`CallRecord.start`; both are
  `time.monotonic()`, and the request's `comment` names the execution);
- end to end: from just before `submit()` to the moment the final state is committed and
  the confirmation is handed back;
- CPU: `time.process_time()` of the whole process (every thread, the simulated terminal
  and the load driver included) over the measured run, divided by the executions;
- memory: resident set size, sampled every 20 ms during the run, against the idle engine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from storage.scratch import scratch_database_at
from terminals import constants as mt5
from terminals.simulated import SimulatedTerminal

DEFAULT_POSTGRES_ADMIN_URL = os.environ.get(
    "EE_BENCH_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
DATABASES = ("sqlite", "postgres")
DEFAULT_SYMBOLS = "EURUSD"
BALANCE = 1_000_000_000.0
"""The simulated account's balance: room for every position a run opens."""
FINAL_WAIT_SECONDS = 300.0
"""How long a run waits for its last executions before it calls them lost."""


@dataclass(frozen=True, slots=True)
class Workload:
    """One run: how many executions, how many outstanding, and the terminal's latencies.

    concurrency: at most this many executions submitted and not yet final at once.
    order_send_ms / ipc_ms: the simulated terminal's round trip for `order_send` (and
        `order_check`) and for every local info call.
    symbols: traded in turn, each at its minimum volume, buys and sells alternating.
    account: `netting` (default) keeps one position per symbol, so the simulated
        terminal's own cost does not grow with the run; `hedging` opens one per fill.
    """

    executions: int = 1000
    concurrency: int = 1000
    order_send_ms: float = 20.0
    ipc_ms: float = 0.2
    database: str = "postgres"
    symbols: tuple[str, ...] = (DEFAULT_SYMBOLS,)
    account: str = "netting"
    seed: int = 1

    def describe(self) -> dict[str, Any]:
        values = asdict(self)
        values["symbols"] = list(self.symbols)
        return values


def add_workload_arguments(
    parser: argparse.ArgumentParser, *, executions: int = 1000, concurrency: int = 1000
) -> None:
    parser.add_argument("--executions", type=_positive_int, default=executions, metavar="N")
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        default=concurrency,
        metavar="C",
        help="most executions submitted and not yet final at once",
    )
    parser.add_argument(
        "--order-send-ms", type=_non_negative_float, default=20.0, metavar="L",
        help="simulated order_send round trip in milliseconds",
    )  # fmt: skip
    parser.add_argument(
        "--ipc-ms", type=_non_negative_float, default=0.2, metavar="l",
        help="simulated latency of every other terminal call in milliseconds",
    )  # fmt: skip
    parser.add_argument("--database", choices=DATABASES, default="postgres")
    parser.add_argument(
        "--symbols", default=DEFAULT_SYMBOLS, metavar="A,B,...",
        help=f"symbols traded in turn (default {DEFAULT_SYMBOLS})",
    )  # fmt: skip
    parser.add_argument("--account", choices=("netting", "hedging"), default="netting")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--postgres-admin-url", default=DEFAULT_POSTGRES_ADMIN_URL, metavar="URL",
        help="maintenance database of the PostgreSQL server (CREATE/DROP DATABASE)",
    )  # fmt: skip


def workload_from(args: argparse.Namespace) -> Workload:
    symbols = tuple(s.strip() for s in str(args.symbols).split(",") if s.strip())
    if not symbols:
        raise SystemExit("--symbols needs at least one symbol")
    return Workload(
        executions=args.executions,
        concurrency=args.concurrency,
        order_send_ms=args.order_send_ms,
        ipc_ms=args.ipc_ms,
        database=args.database,
        symbols=symbols,
        account=args.account,
        seed=args.seed,
    )


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def _non_negative_float(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise argparse.ArgumentTypeError("must be a number >= 0")
    return number


# --- the database of one run ---------------------------------------------------------------


@contextmanager
def bench_database(kind: str, admin_url: str = DEFAULT_POSTGRES_ADMIN_URL) -> Iterator[str]:
    """A new, empty database for one run, removed afterwards; yields its URL.

    PostgreSQL: `ee_bench_<random>` on the server of `admin_url`. SQLite: a file in a
    temporary directory.
    """
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="ee_bench_") as directory:
            yield f"sqlite:///{Path(directory) / 'bench.db'}"
        return
    if kind != "postgres":
        raise ValueError(f"unknown database kind {kind!r}")
    with scratch_database_at(admin_url, "ee_bench") as url:
        yield url


# --- the terminal and the messages ---------------------------------------------------------


def make_terminal(workload: Workload) -> tuple[SimulatedTerminal, dict[str, float]]:
    """The simulated terminal of a run, and each symbol's smallest order in units.

    The units (volume_min x contract size) are read before the latencies are set and the
    calls are forgotten, so they cost the run nothing.
    """
    margin_mode = (
        mt5.ACCOUNT_MARGIN_MODE_RETAIL_NETTING
        if workload.account == "netting"
        else mt5.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
    )
    terminal = SimulatedTerminal(seed=workload.seed, margin_mode=margin_mode, balance=BALANCE)
    units: dict[str, float] = {}
    terminal.initialize()
    for symbol in workload.symbols:
        info = terminal.symbol_info(symbol)
        if info is None:
            raise SystemExit(f"the simulated terminal has no symbol {symbol!r}")
        units[symbol] = round(float(info.volume_min) * float(info.trade_contract_size), 8)
    terminal.shutdown()
    terminal.reset_calls()
    send = workload.order_send_ms / 1000.0
    terminal.set_latency(order_send=send, order_check=send, ipc=workload.ipc_ms / 1000.0)
    return terminal, units


def rpm_messages(workload: Workload, units: dict[str, float], run: str) -> list[dict[str, Any]]:
    """One approved RPM decision per execution, unique per run; buys and sells alternate."""
    stamp = datetime.now(UTC).isoformat()
    messages = []
    for index in range(workload.executions):
        symbol = workload.symbols[index % len(workload.symbols)]
        messages.append(
            {
                "decision": {
                    "status": "APPROVED",
                    "decision_id": f"bench-{run}-{index:07d}",
                    "approved_trade": {
                        "symbol": symbol,
                        "direction": 1 if (index // len(workload.symbols)) % 2 == 0 else -1,
                        "position_units": units[symbol],
                        "confidence_score": 0.78,
                        "atr": 0.0015,
                    },
                },
                "portfolio_state": {"trading_halted": False},
                "rpm_version": "1.0.0",
                "model_version": "bench",
                "timestamp": stamp,
            }
        )
    return messages


def new_run_id() -> str:
    return uuid.uuid4().hex[:10]


# --- measurements --------------------------------------------------------------------------


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """p50, p95, p99 and max (nearest rank), in the unit of `values`, rounded to 3 places."""
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(values)

    def rank(q: float) -> float:
        return round(ordered[min(int(q * len(ordered)), len(ordered) - 1)], 3)

    return {"p50": rank(0.50), "p95": rank(0.95), "p99": rank(0.99), "max": round(ordered[-1], 3)}


def terminal_calls(terminal: SimulatedTerminal, executions: int) -> dict[str, Any]:
    """Every terminal call since the last `reset_calls()`, per execution, and by function."""
    counts = Counter(record.name for record in terminal.calls)
    total = sum(counts.values())
    per = max(executions, 1)
    return {
        "total": round(total / per, 3),
        "by_function": {name: round(n / per, 3) for name, n in sorted(counts.items())},
        "calls": total,
    }


def send_starts(terminal: SimulatedTerminal) -> dict[str, list[float]]:
    """The start times of every `order_send`, by the request's comment (the client id)."""
    starts: dict[str, list[float]] = {}
    for record in terminal.calls:
        if record.name != "order_send" or not record.args:
            continue
        request = record.args[0]
        if isinstance(request, dict) and "comment" in request:
            starts.setdefault(str(request["comment"]), []).append(record.start)
    return starts


def send_check(starts: dict[str, list[float]], client_ids: Sequence[str]) -> dict[str, int]:
    """How the sends line up with the executions: none missing, none twice."""
    wanted = set(client_ids)
    return {
        "order_sends": sum(len(v) for v in starts.values()),
        "executions_sent_more_than_once": sum(1 for c in wanted if len(starts.get(c, ())) > 1),
        "executions_never_sent": sum(1 for c in wanted if c not in starts),
        "sends_of_unknown_executions": sum(1 for c in starts if c not in wanted),
    }


def machine_reference_ms() -> float:
    """Milliseconds this machine takes for a fixed pure-Python job (best of three).

    Shared 2-core machines run the same bench at speeds that differ by 2x from one minute
    to the next; printed beside each result, it tells a slow machine from a slow engine.
    The job is the engine's kind of work: encode a small record as canonical JSON and hash
    it, 10 000 times.
    """
    record = {"execution_id": "exec_0", "status": "FILLED", "price": 1.09452, "lots": 0.95}
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for n in range(10_000):
            record["sequence"] = n
            text = json.dumps(record, sort_keys=True, separators=(",", ":"))
            hashlib.sha256(text.encode()).hexdigest()
        best = min(best, time.perf_counter() - started)
    return round(best * 1000.0, 1)


def rss_mb() -> float:
    """Resident set size of this process now, in MB (Linux /proc; else the peak so far)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            pages = int(statm.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Highest resident set size of this process so far, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


class RssSampler:
    """Samples the resident set size every `interval` seconds until stopped."""

    def __init__(self, interval: float = 0.02) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self.peak = rss_mb()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_mb())

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, rss_mb())


class ThreadSampler:
    """Samples `threading.active_count()` every `interval` seconds until stopped.

    `peak` counts every thread of the process (the main thread and the RSS sampler
    included), less this sampler's own.
    """

    def __init__(self, interval: float = 0.005) -> None:
        self._interval = interval
        self._stop = threading.Event()
        self.peak = threading.active_count()
        self._thread = threading.Thread(target=self._run, name="bench-threads", daemon=True)

    def __enter__(self) -> ThreadSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, threading.active_count() - 1)


@dataclass(slots=True)
class RunClock:
    """Wall and CPU time of the measured part of a run."""

    wall_start: float = 0.0
    wall_end: float = 0.0
    cpu_start: float = 0.0
    cpu_end: float = 0.0

    def start(self) -> None:
        self.cpu_start = time.process_time()
        self.wall_start = time.monotonic()

    def stop(self, wall_end: float | None = None) -> None:
        self.wall_end = wall_end if wall_end is not None else time.monotonic()
        self.cpu_end = time.process_time()

    @property
    def wall(self) -> float:
        return self.wall_end - self.wall_start

    @property
    def cpu(self) -> float:
        return self.cpu_end - self.cpu_start


def summarize(
    *,
    engine: str,
    workload: Workload,
    clock: RunClock,
    finished: int,
    submit_ms: Sequence[float],
    end_to_end_ms: Sequence[float],
    calls: dict[str, Any],
    sends: dict[str, int],
    statuses: dict[str, int],
    idle_rss: float,
    run_peak_rss: float,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON both benches print (the same keys for the engine and the baseline)."""
    executions = workload.executions
    throughput = finished / clock.wall if clock.wall > 0 else 0.0
    send_seconds = workload.order_send_ms / 1000.0
    result: dict[str, Any] = {
        "engine": engine,
        "workload": workload.describe(),
        "executions": executions,
        "finished": finished,
        "wall_seconds": round(clock.wall, 3),
        "throughput_per_s": round(throughput, 2),
        "broker_bound_efficiency": round(throughput * send_seconds, 4) if send_seconds else None,
        "terminal_calls_per_execution": calls,
        "order_sends": sends,
        "submit_latency_ms": percentiles(submit_ms),
        "end_to_end_ms": percentiles(end_to_end_ms),
        "cpu_seconds_per_execution": round(clock.cpu / max(finished, 1), 6),
        "cpu_seconds": round(clock.cpu, 3),
        "peak_rss_mb": round(max(run_peak_rss, idle_rss), 1),
        "idle_rss_mb": round(idle_rss, 1),
        "rss_growth_mb": round(max(run_peak_rss - idle_rss, 0.0), 1),
        "final_statuses": dict(sorted(statuses.items())),
        "lost": executions - finished,
    }
    if extra:
        result.update(extra)
    return result


def emit(result: dict[str, Any]) -> None:
    print(json.dumps(result, sort_keys=False))
