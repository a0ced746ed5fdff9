"""The seeds' design as written, on the same simulated terminal, with the same JSON keys.

    python -m bench.baseline --executions 200 --concurrency 50 --order-send-ms 20 \\
        --ipc-ms 0.2 --database postgres

The seeds describe a synchronous `ExecutionEngine.execute(rpm_output)` over a connection
pool whose one MT5 session is guarded by a lock. Per execution it:

1. validates: `symbol_info_tick`, `account_info`, `symbol_info` (one locked call each);
2. stores the request and the PENDING log (a committed INSERT each);
3. sends: under the lock, `symbol_info_tick` for the price, then `order_send`; retried up to
   3 times, 1 s apart, when the send fails;
4. monitors: every 0.5 s, `orders_get(ticket=)` then `history_deals_get(ticket=)` under the
   lock, until the deals cover the volume or 60 s pass (the first look comes one interval
   after the send, as the seeds' "poll every 0.5 s" loop reads; `--first-poll immediate`
   looks once at once instead);
5. stores the final state (a committed UPDATE) and returns.

Where the seeds are wrong in a way that would stop orders from filling, this follows
DESIGN.md instead, so that the comparison is about the design and not about its bugs: the
volume is units / contract size (the seeds send units as lots). Everything else (no journal,
no write-ahead, no hash chain, the fixed 0.5 s poll) is as the seeds have it.

Concurrency C is C caller threads, each running `execute()` to the end before taking the
next message: a synchronous engine gets no concurrency any other way. Submit latency is from
the call to `execute()` to the start of its `order_send` (the simulated terminal's record,
found by the request comment), as for the engine (see `bench._common`).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    insert,
    update,
)
from sqlalchemy.pool import QueuePool

from bench._common import (
    FINAL_WAIT_SECONDS,
    RssSampler,
    RunClock,
    Workload,
    add_workload_arguments,
    bench_database,
    emit,
    machine_reference_ms,
    make_terminal,
    new_run_id,
    rpm_messages,
    rss_mb,
    send_check,
    send_starts,
    summarize,
    terminal_calls,
    workload_from,
)
from terminals.simulated import SimulatedTerminal

POLL_SECONDS = 0.5
TIMEOUT_SECONDS = 60.0
RETRIES = 3
RETRY_BACKOFF_SECONDS = 1.0
DEVIATION_POINTS = 20
_RETCODE_DONE = 10009
_RETCODE_PLACED = 10008
_RETCODE_DONE_PARTIAL = 10010

_metadata = MetaData()
seed_requests = Table(
    "seed_execution_requests",
    _metadata,
    Column("request_id", String(64), primary_key=True),
    Column("rpm_decision_id", String(128), unique=True, nullable=False),
    Column("symbol", String(32), nullable=False),
    Column("direction", Integer, nullable=False),
    Column("units", Float, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
seed_logs = Table(
    "seed_execution_logs",
    _metadata,
    Column("execution_id", String(64), primary_key=True),
    Column("request_id", String(64), nullable=False),
    Column("rpm_decision_id", String(128), unique=True, nullable=False),
    Column("symbol", String(32), nullable=False, index=True),
    Column("direction", Integer, nullable=False),
    Column("units", Float, nullable=False),
    Column("status", String(20), nullable=False, index=True),
    Column("order_id", String(32), index=True),
    Column("fill_price", Float),
    Column("slippage_pips", Float),
    Column("rejection_reason", String(200)),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)


class SeedsEngine:
    """The seeds' synchronous engine; `execute()` may be called from many threads."""

    def __init__(
        self,
        terminal: SimulatedTerminal,
        database: Engine,
        *,
        first_poll_immediate: bool = False,
    ) -> None:
        self._mt5 = terminal
        self._db = database
        self._session_lock = threading.Lock()  # the pool's `session.lock`
        self._first_poll_immediate = first_poll_immediate
        with self._session_lock:
            if not terminal.initialize():
                raise RuntimeError(f"initialize failed: {terminal.last_error()}")

    def execute(self, rpm_output: dict[str, Any], comment: str) -> str:
        """One execution, start to end; returns the final status."""
        trade = rpm_output["decision"]["approved_trade"]
        symbol, direction = str(trade["symbol"]), int(trade["direction"])
        units = float(trade["position_units"])
        decision_id = str(rpm_output["decision"]["decision_id"])
        # Stage 1: pre-execution validation.
        with self._session_lock:
            tick = self._mt5.symbol_info_tick(symbol)
        with self._session_lock:
            account = self._mt5.account_info()
        with self._session_lock:
            info = self._mt5.symbol_info(symbol)
        if tick is None or account is None or info is None or info.trade_mode == 0:
            return self._reject_unlogged(decision_id)
        lots = round(units / float(info.trade_contract_size), 8)
        # Stages 2 and 3: the request and the PENDING log, stored.
        now = datetime.now(UTC)
        request_id, execution_id = f"req_{comment}", f"exec_{comment}"
        with self._db.begin() as connection:
            connection.execute(
                insert(seed_requests).values(
                    request_id=request_id,
                    rpm_decision_id=decision_id,
                    symbol=symbol,
                    direction=direction,
                    units=units,
                    created_at=now,
                )
            )
        with self._db.begin() as connection:
            connection.execute(
                insert(seed_logs).values(
                    execution_id=execution_id,
                    request_id=request_id,
                    rpm_decision_id=decision_id,
                    symbol=symbol,
                    direction=direction,
                    units=units,
                    status="PENDING",
                    created_at=now,
                    updated_at=now,
                )
            )
        intended = float(tick.ask if direction > 0 else tick.bid)
        # Stage 4: submit, with retries.
        order_id = self._place_order(symbol, direction, lots, comment)
        if order_id is None:
            return self._finish(execution_id, "REJECTED", None, None, None, "broker rejected")
        # Stage 5: monitor until filled or timed out.
        fill = self._monitor(order_id, lots)
        if fill is None:
            return self._finish(execution_id, "EXPIRED", order_id, None, None, "timeout")
        # Stage 6: slippage (in pips of 10 points, as DESIGN.md has it), then store.
        point = float(info.point)
        pip = point * 10 if int(info.digits) in (3, 5) else point
        slippage = (fill - intended) / pip * direction
        return self._finish(execution_id, "FILLED", order_id, fill, slippage, None)

    def _place_order(self, symbol: str, direction: int, lots: float, comment: str) -> int | None:
        for attempt in range(RETRIES):
            with self._session_lock:
                tick = self._mt5.symbol_info_tick(symbol)
                if tick is None:
                    result = None
                else:
                    buy = direction > 0
                    result = self._mt5.order_send(
                        {
                            "action": self._mt5.TRADE_ACTION_DEAL,
                            "symbol": symbol,
                            "volume": lots,
                            "type": self._mt5.ORDER_TYPE_BUY if buy else self._mt5.ORDER_TYPE_SELL,
                            "price": float(tick.ask if buy else tick.bid),
                            "deviation": DEVIATION_POINTS,
                            "comment": comment,
                        }
                    )
            if result is not None and int(result.retcode) in (
                _RETCODE_DONE,
                _RETCODE_PLACED,
                _RETCODE_DONE_PARTIAL,
            ):
                return int(result.order)
            if result is not None:
                return None  # a broker rejection is not retried
            if attempt + 1 < RETRIES:
                time.sleep(RETRY_BACKOFF_SECONDS)
        return None

    def _monitor(self, order_id: int, lots: float) -> float | None:
        deadline = time.monotonic() + TIMEOUT_SECONDS
        first = True
        while time.monotonic() < deadline:
            if not (first and self._first_poll_immediate):
                time.sleep(POLL_SECONDS)
            first = False
            with self._session_lock:
                self._mt5.orders_get(ticket=order_id)
                deals = self._mt5.history_deals_get(ticket=order_id)
            filled = sum(float(d.volume) for d in deals or ())
            if deals and filled >= lots - 1e-9:
                return sum(float(d.volume) * float(d.price) for d in deals) / filled
        return None

    def _finish(
        self,
        execution_id: str,
        status: str,
        order_id: int | None,
        fill_price: float | None,
        slippage: float | None,
        reason: str | None,
    ) -> str:
        with self._db.begin() as connection:
            connection.execute(
                update(seed_logs)
                .where(seed_logs.c.execution_id == execution_id)
                .values(
                    status=status,
                    order_id=str(order_id) if order_id is not None else None,
                    fill_price=fill_price,
                    slippage_pips=slippage,
                    rejection_reason=reason,
                    updated_at=datetime.now(UTC),
                )
            )
        return status

    def _reject_unlogged(self, decision_id: str) -> str:
        logging.getLogger(__name__).warning("validation failed for %s", decision_id)
        return "REJECTED"


def run(
    workload: Workload, admin_url: str | None = None, *, first_poll_immediate: bool = False
) -> dict[str, Any]:
    """One load run of the seeds' engine; returns the JSON-ready result."""
    terminal, units = make_terminal(workload)
    run_id = new_run_id()
    messages = rpm_messages(workload, units, run_id)
    comments = [f"seed-{run_id}-{index}" for index in range(len(messages))]
    database = bench_database(workload.database, *(() if admin_url is None else (admin_url,)))
    with database as url:
        sqlite = workload.database == "sqlite"
        db = create_engine(
            url,
            poolclass=QueuePool,
            pool_size=10,
            max_overflow=20,
            pool_timeout=FINAL_WAIT_SECONDS,
            connect_args={"timeout": 60} if sqlite else {},
        )
        _metadata.create_all(db)
        engine = SeedsEngine(terminal, db, first_poll_immediate=first_poll_immediate)
        jobs: queue.SimpleQueue[int | None] = queue.SimpleQueue()
        for index in range(len(messages)):
            jobs.put(index)
        started: dict[int, float] = {}
        finished: dict[int, float] = {}
        statuses: dict[int, str] = {}
        failures: Counter[str] = Counter()

        def worker() -> None:
            while (index := jobs.get()) is not None:
                started[index] = time.monotonic()
                try:
                    statuses[index] = engine.execute(messages[index], comments[index])
                except Exception as exc:
                    failures[type(exc).__name__] += 1
                    continue
                finished[index] = time.monotonic()

        workers = [
            threading.Thread(target=worker, name=f"seed-caller-{n}", daemon=True)
            for n in range(min(workload.concurrency, len(messages)))
        ]
        for _ in workers:
            jobs.put(None)
        gc.collect()
        idle_rss = rss_mb()
        load_before = os.getloadavg()[0]
        reference_ms = machine_reference_ms()
        terminal.reset_calls()
        clock = RunClock()
        with RssSampler() as sampler:
            clock.start()
            for thread in workers:
                thread.start()
            for thread in workers:
                thread.join(timeout=FINAL_WAIT_SECONDS)
            clock.stop(max(finished.values(), default=None))
        calls = terminal_calls(terminal, workload.executions)
        starts = send_starts(terminal)
        db.dispose()
    submit_ms = [
        (starts[comments[i]][0] - t) * 1000.0 for i, t in started.items() if comments[i] in starts
    ]
    end_to_end_ms = [(finished[i] - t) * 1000.0 for i, t in started.items() if i in finished]
    final = Counter(statuses.values())
    return summarize(
        engine="seeds-baseline",
        workload=workload,
        clock=clock,
        finished=len(finished),
        submit_ms=submit_ms,
        end_to_end_ms=end_to_end_ms,
        calls=calls,
        sends=send_check(starts, comments),
        statuses=dict(final),
        idle_rss=idle_rss,
        run_peak_rss=sampler.peak,
        extra={
            "failed": sum(failures.values()),
            "max_in_flight": min(workload.concurrency, workload.executions),
            "machine_load_1m": round(load_before, 2),
            "machine_reference_ms": reference_ms,
            "first_poll": "immediate" if first_poll_immediate else "after 0.5 s",
        },
    )


def add_first_poll_argument(parser: argparse.ArgumentParser) -> None:
    """`--first-poll`, the baseline's one option of its own (bench.compare takes it too)."""
    parser.add_argument(
        "--first-poll",
        choices=("after-interval", "immediate"),
        default="after-interval",
        help="when the baseline first looks for the fill (default: 0.5 s after the send)",
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.baseline",
        description="The seeds' synchronous design on the same simulated terminal.",
    )
    add_workload_arguments(parser, executions=200, concurrency=50)
    add_first_poll_argument(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING)
    args = parse_args(argv)
    result = run(
        workload_from(args),
        args.postgres_admin_url,
        first_poll_immediate=args.first_poll == "immediate",
    )
    emit(result)
    return result


if __name__ == "__main__":
    main()
