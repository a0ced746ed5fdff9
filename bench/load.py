"""Throughput, added latency and cost of the engine under load.

    python -m bench.load --executions 1000 --concurrency 1000 --order-send-ms 20 \\
        --ipc-ms 0.2 --database postgres --symbols EURUSD

One MT5 terminal runs one `order_send` at a time, so no engine can beat one execution per
`order_send` round trip; `broker_bound_efficiency` (throughput x order_send latency) says
how close this one gets (1.0 is the ceiling). The run uses the real facade, actors and
database (PostgreSQL `ee_bench_<random>` or a temporary SQLite file, dropped afterwards) on
a `SimulatedTerminal` with the given latencies. A load driver keeps at most `--concurrency`
executions submitted and not yet final, and prints one JSON object (see `bench._common`
for how each figure is measured).

`--scaling` instead runs the workload at concurrency 1, 10, 100 and 1000 and prints the CPU
time per execution of each, against the concurrency-10 figure.

Settings are the production defaults (`load_settings()`, so `EE_*` variables apply); the
workload only needs a large simulated balance and a netting account (see `Workload`).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import pykka

from actors.engine import create_execution_engine
from actors.metrics import EngineMetrics
from bench._accounts import (
    ACCOUNT_SCALING,
    CallsView,
    account_names,
    accounts_file,
    make_terminals,
    scaling_rows,
    spread,
)
from bench._accounts import scaling_table as account_table
from bench._common import (
    FINAL_WAIT_SECONDS,
    RssSampler,
    RunClock,
    ThreadSampler,
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
from core.accounts import DEFAULT_ACCOUNT
from core.models import ExecutionConfirmation, ExecutionLog
from core.rules import make_client_id
from core.settings import load_settings
from storage.db import create_db_engine
from storage.journal import verify_chain

SCALING_CONCURRENCY = (1, 10, 100, 1000)


class _FinalHook(EngineMetrics):
    """The engine's metrics, also telling the load driver when an execution is final.

    `execution_final` runs once the final state is committed, just before the caller's
    future is set, so it marks the end of an execution without a thread per future.
    """

    def __init__(self) -> None:
        super().__init__()
        self.listener: Callable[[ExecutionLog], None] | None = None

    def execution_final(self, record: ExecutionLog) -> None:
        super().execution_final(record)
        if self.listener is not None:
            self.listener(record)


class _Driver:
    """Keeps at most `concurrency` executions submitted and not yet final."""

    def __init__(self, concurrency: int) -> None:
        self._concurrency = concurrency
        self._cond = threading.Condition()
        self._outstanding = 0
        self.max_outstanding = 0
        self.submitted_at: dict[str, float] = {}
        self.finished_at: dict[str, float] = {}
        self.futures: dict[str, pykka.Future[ExecutionConfirmation]] = {}
        self.failed: dict[str, str] = {}

    def on_final(self, record: ExecutionLog) -> None:
        now = time.monotonic()
        decision_id = record.rpm_decision_id
        with self._cond:
            if decision_id in self.submitted_at and decision_id not in self.finished_at:
                self.finished_at[decision_id] = now
                self._outstanding -= 1
                self._cond.notify_all()

    def run(self, submit: Callable[[Any], Any], messages: Sequence[dict[str, Any]]) -> None:
        for message in messages:
            decision_id = message["decision"]["decision_id"]
            with self._cond:
                while self._outstanding >= self._concurrency:
                    if not self._cond.wait(timeout=1.0):
                        self._sweep()
                self._outstanding += 1
                self.max_outstanding = max(self.max_outstanding, self._outstanding)
                self.submitted_at[decision_id] = time.monotonic()
            try:
                self.futures[decision_id] = submit(message)
            except Exception as exc:  # a refused submit is a failed execution, not a crash
                with self._cond:
                    self.failed[decision_id] = f"{type(exc).__name__}: {exc}"
                    self._outstanding -= 1

    def wait(self, timeout: float) -> float:
        """Until every execution is final (or failed); returns when the last one was."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._outstanding > 0 and time.monotonic() < deadline:
                if not self._cond.wait(timeout=1.0):
                    self._sweep()
            return max(self.finished_at.values(), default=time.monotonic())

    def _sweep(self) -> None:
        """Futures that failed with an exception never reach `on_final`: count them here."""
        for decision_id, future in list(self.futures.items()):
            if decision_id in self.finished_at or decision_id in self.failed:
                continue
            try:
                future.get(timeout=0)
            except pykka.Timeout:
                continue
            except Exception as exc:
                self.failed[decision_id] = f"{type(exc).__name__}: {exc}"
                self._outstanding -= 1


def run(
    workload: Workload,
    admin_url: str | None = None,
    accounts: int = 1,
    **setting_overrides: Any,
) -> dict[str, Any]:
    """One load run of the engine; returns the JSON-ready result. `accounts` > 1 spreads
    the executions over that many accounts, each on its own simulated terminal."""
    names = account_names(accounts) if accounts > 1 else ()
    if names:
        terminals, units = make_terminals(workload, accounts)
    else:
        terminal, units = make_terminal(workload)
        terminals = {DEFAULT_ACCOUNT: terminal}
    messages = rpm_messages(workload, units, new_run_id())
    if names:
        messages = spread(messages, names)
    database = bench_database(workload.database, *(() if admin_url is None else (admin_url,)))
    with contextlib.ExitStack() as stack:
        if names:
            magic = load_settings(**setting_overrides).magic
            setting_overrides["accounts_file"] = stack.enter_context(accounts_file(names, magic))
        settings = load_settings(**setting_overrides)
        url = stack.enter_context(database)
        hook = _FinalHook()
        engine = create_execution_engine(
            database_url=url, settings=settings, metrics=hook, terminals=terminals
        )
        try:
            driver = _Driver(workload.concurrency)
            hook.listener = driver.on_final
            gc.collect()
            idle_rss = rss_mb()
            load_before = os.getloadavg()[0]
            reference_ms = machine_reference_ms()
            for each in terminals.values():
                each.reset_calls()
            clock = RunClock()
            with RssSampler() as sampler, ThreadSampler() as threads:
                clock.start()
                driver.run(engine.submit, messages)
                last = driver.wait(FINAL_WAIT_SECONDS)
                clock.stop(last)
            view: Any = CallsView(list(terminals.values())) if names else terminal
            calls = terminal_calls(view, workload.executions)
            starts = send_starts(view)
            confirmations = _confirmations(driver)
            latency = engine.metrics.summary()["latency_ms"]
            commits = _persistence_stats(engine.persistence)
            stored = engine.repository.count_by_status()
            not_final = len(engine.repository.non_final())
        finally:
            engine.stop()
        chain = verify_chain(db := create_db_engine(url))
        db.dispose()
    client_ids = {
        decision_id: make_client_id(c.execution_id, settings.client_id_prefix)
        for decision_id, c in confirmations.items()
    }
    submit_ms = [
        (starts[client_ids[d]][0] - t) * 1000.0
        for d, t in driver.submitted_at.items()
        if d in client_ids and client_ids[d] in starts
    ]
    end_to_end_ms = [
        (driver.finished_at[d] - t) * 1000.0
        for d, t in driver.submitted_at.items()
        if d in driver.finished_at
    ]
    statuses = Counter(c.status.value for c in confirmations.values())
    reasons = Counter(
        f"{c.rejection_reason.value}: {c.rejection_details}"[:160]
        for c in confirmations.values()
        if c.rejection_reason is not None
    )
    finished = sum(1 for c in confirmations.values() if c.status.is_final)
    return summarize(
        engine="actors",
        workload=workload,
        clock=clock,
        finished=finished,
        submit_ms=submit_ms,
        end_to_end_ms=end_to_end_ms,
        calls=calls,
        sends=send_check(starts, list(client_ids.values())),
        statuses=dict(statuses),
        idle_rss=idle_rss,
        run_peak_rss=sampler.peak,
        extra={
            "accounts": accounts,
            "failed": len(driver.failed),
            "rejection_reasons": dict(reasons.most_common(5)),
            "max_in_flight": driver.max_outstanding,
            "peak_threads": threads.peak,
            "order_threads": settings.order_threads,
            "machine_load_1m": round(load_before, 2),
            "machine_reference_ms": reference_ms,
            "database_statuses": stored,
            "database_not_final": not_final,
            "journal_chain_ok": chain.ok,
            "engine_submit_to_send_ms": _p50_p95(latency["submit_to_send"]),
            "db_commit_ms": _p50_p95(latency["db_write"]),
            "db_commits_per_execution": round(commits["batches"] / workload.executions, 3),
            "db_writes_per_execution": round(commits["writes"] / workload.executions, 3),
        },
    )


def _p50_p95(summary: dict[str, Any]) -> dict[str, Any]:
    return {"p50": summary.get("p50"), "p95": summary.get("p95")}


def _persistence_stats(persistence: pykka.ActorRef[Any]) -> dict[str, int]:
    """Transactions and journal rows the PersistenceActor committed (0 when it cannot say)."""
    try:
        stats = persistence.proxy().stats().get(timeout=10)
    except Exception:
        return {"batches": 0, "writes": 0}
    return {"batches": int(stats.get("batches", 0)), "writes": int(stats.get("writes", 0))}


def _confirmations(driver: _Driver) -> dict[str, ExecutionConfirmation]:
    confirmations: dict[str, ExecutionConfirmation] = {}
    for decision_id, future in driver.futures.items():
        if decision_id in driver.failed:
            continue
        try:
            confirmations[decision_id] = future.get(timeout=1.0)
        except Exception as exc:
            driver.failed[decision_id] = f"{type(exc).__name__}: {exc}"
    return confirmations


def scaling(
    workload: Workload, admin_url: str | None = None, **setting_overrides: Any
) -> dict[str, Any]:
    """CPU time per execution at concurrency 1, 10, 100 and 1000, against concurrency 10."""
    rows = []
    for concurrency in SCALING_CONCURRENCY:
        result = run(replace(workload, concurrency=concurrency), admin_url, **setting_overrides)
        rows.append(
            {
                "concurrency": concurrency,
                "cpu_seconds_per_execution": result["cpu_seconds_per_execution"],
                "throughput_per_s": result["throughput_per_s"],
                "broker_bound_efficiency": result["broker_bound_efficiency"],
                "end_to_end_ms_p50": result["end_to_end_ms"]["p50"],
                "peak_threads": result["peak_threads"],
                "final_statuses": result["final_statuses"],
            }
        )
    reference = next(r["cpu_seconds_per_execution"] for r in rows if r["concurrency"] == 10)
    for row in rows:
        row["vs_concurrency_10"] = round(row["cpu_seconds_per_execution"] / reference, 3)
    return {
        "benchmark": "scaling",
        "workload": {**workload.describe(), "concurrency": list(SCALING_CONCURRENCY)},
        "rows": rows,
        "max_vs_concurrency_10": max(row["vs_concurrency_10"] for row in rows),
    }


def scaling_table(result: dict[str, Any]) -> str:
    lines = [
        "| concurrency | CPU s / execution | vs C=10 | throughput / s | p50 end to end ms |",
        "|---:|---:|---:|---:|---:|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['concurrency']} | {row['cpu_seconds_per_execution'] * 1000:.3f} ms "
            f"| {row['vs_concurrency_10']:.2f}x | {row['throughput_per_s']:.1f} "
            f"| {row['end_to_end_ms_p50']} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.load",
        description="Throughput and added latency of the engine on a simulated terminal.",
    )
    add_workload_arguments(parser)
    parser.add_argument(
        "--scaling",
        action="store_true",
        help="run at concurrency 1, 10, 100, 1000 and print the CPU-per-execution table",
    )
    parser.add_argument(
        "--accounts",
        type=int,
        default=1,
        metavar="N",
        help="spread the load over N accounts, each on its own simulated terminal",
    )
    parser.add_argument(
        "--account-scaling",
        action="store_true",
        help=f"run at {', '.join(map(str, ACCOUNT_SCALING))} accounts and print the "
        "throughput against one account",
    )
    parser.add_argument(
        "--order-threads",
        type=int,
        default=None,
        metavar="T",
        help="threads the OrderActors share (EE_ORDER_THREADS; 0 = a thread each)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.WARNING)
    args = parse_args(argv)
    workload = workload_from(args)
    overrides = {} if args.order_threads is None else {"order_threads": args.order_threads}
    if args.account_scaling:
        results = {
            n: run(workload, args.postgres_admin_url, n, **overrides) for n in ACCOUNT_SCALING
        }
        rows = scaling_rows(results)
        scaled = {"benchmark": "account-scaling", "workload": workload.describe(), "rows": rows}
        emit(scaled)
        print(account_table(rows))
        return scaled
    if args.scaling:
        result = scaling(workload, args.postgres_admin_url, **overrides)
        emit(result)
        print(scaling_table(result))
        return result
    result = run(workload, args.postgres_admin_url, args.accounts, **overrides)
    emit(result)
    return result


if __name__ == "__main__":
    main()
