"""The `flatten-under-faults` drill: open positions across three symbols on a hedging
account, then flatten while the closes' sends time out ambiguously (executed and not) and
the BrokerActor is killed mid-flatten; recover, flatten again as an operator would, and
check that no position was closed twice, none was opened by a close, and none is left.

The report is the other drills' (`verdict`) over the opening executions and the closes
together, plus `positions_left` (the engine's positions still open at the end) and the
two flattens' figures under `details`.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace
from typing import Any

from actors.engine import create_execution_engine
from actors.facade import ExecutionFacade
from core.errors import ExecutionEngineError
from drills._harness import (
    SYMBOLS,
    Progress,
    StoreView,
    audit_ok,
    burst,
    decision_prefix,
    drill_settings,
    read_store,
    run_id,
    scratch_store,
    trade,
    verdict,
    wait_until,
)
from terminals.simulated import SimulatedTerminal

NAME = "flatten-under-faults"
_DRILLER = "drill"
_TIMEOUT = 60.0
_CLOSES = "flatten_"
"""Decision ids of a flatten's closes start with its operation id (`flatten_<hex>`)."""


def run_flatten_under_faults(
    executions: int, seed: int, database_url: str | None, progress: Progress
) -> dict[str, Any]:
    rid = run_id()
    magic = 700_000 + (seed * 7_919 + int(rid, 16)) % 99_991
    with scratch_store(database_url) as url:
        sim = SimulatedTerminal(seed=seed, order_send_latency=0.001, ipc_latency=0.0)
        engine = create_execution_engine(
            terminal=sim, database_url=url, settings=drill_settings(magic)
        )
        try:
            return _drive(engine, sim, executions, seed, rid, progress)
        finally:
            engine.stop()


_DIRECTION = {"EURUSD": 1, "GBPUSD": -1, "USDJPY": 1}


def _opening(rid: str, index: int, seed: int) -> dict[str, Any]:
    """Trade `index` of the run, of one direction per symbol: on a hedging account each
    opens a position of its own (nothing opposite to reduce)."""
    message = trade(rid, index, seed)
    symbol = SYMBOLS[index % len(SYMBOLS)]
    message["decision"]["approved_trade"].update(symbol=symbol, direction=_DIRECTION.get(symbol, 1))
    return message


def _owned(sim: SimulatedTerminal, magic: int) -> list[Any]:
    return [p for p in sim.positions_get() or () if p.magic == magic]


def _drive(
    engine: ExecutionFacade,
    sim: SimulatedTerminal,
    executions: int,
    seed: int,
    rid: str,
    progress: Progress,
) -> dict[str, Any]:
    probe = engine.probe
    magic = engine.settings.magic
    progress(f"{NAME}: opening {executions} positions on {', '.join(SYMBOLS)}")
    messages = [_opening(rid, i, seed) for i in range(executions)]
    burst(engine.execute, messages, concurrency=8, at=None, fault=None, progress=progress)
    opened = _owned(sim, magic)
    symbols = sorted({p.symbol for p in opened})

    # The faults: about a third of the closes time out with the order executed, a third
    # without, one loses its answer after executing; the broker dies after its 2nd send.
    third = max(1, len(opened) // 3)
    sim.inject("timeout_executed", times=third)
    sim.inject("timeout_not_executed", times=third)
    sim.inject("none_executed", times=1)
    restarts = probe.restarts
    engine.faults.crash_after_sends(2)
    fault_at = time.monotonic()
    progress(f"flattening {len(opened)} positions under faults")
    first = _flatten(engine, "drill: flatten under faults")

    progress("recovering")
    wait_until(
        lambda: (
            probe.children_alive() and not probe.orphans() and not engine.repository.non_final()
        ),
        _TIMEOUT,
        "every close settled and the broker back",
        pause=0.05,
    )
    _resume(engine)
    recovered_at = time.monotonic()
    progress("flattening again, as an operator would")
    second = _flatten(engine, "drill: flatten again after recovery")
    wait_until(lambda: not engine.repository.non_final(), _TIMEOUT, "every close final")
    third_report = _flatten(engine, "drill: a flat book sends nothing")

    left = _owned(sim, magic)
    opens = read_store(probe.db, decision_prefix(rid))
    closes = read_store(probe.db, _CLOSES)
    orders = sim.orders_for_magic(magic)
    closed_twice = _closed_twice(sim, {p.ticket for p in opened})
    store = replace(
        opens,
        client_ids={**opens.client_ids, **closes.client_ids},
        intents=opens.intents | closes.intents,
    )
    checks = {
        "positions_on_three_symbols": len(symbols) == len(SYMBOLS),
        "no_position_left": not left,
        "no_position_closed_twice": not closed_twice,
        "closes_all_final": _all_final(closes),
        "broker_killed_and_restarted": probe.restarts > restarts,
        "no_fault_left_unused": not sim.pending_faults(),
        "flat_book_sent_nothing": third_report.get("executions") == [],
    }
    report = verdict(
        drill=NAME,
        executions=executions,
        store=store,
        orders=orders,
        audit=audit_ok(probe.db, ""),
        recovery_seconds=max(recovered_at - fault_at, 0.0),
        extra={
            "positions_opened": len(opened),
            "symbols": symbols,
            "close_statuses": dict(sorted(Counter(closes.statuses.values()).items())),
            "closed_twice": sorted(closed_twice),
            "restarts": probe.restarts - restarts,
            "first_flatten": _summary(first),
            "second_flatten": _summary(second),
            "third_flatten": _summary(third_report),
            "magic": magic,
        },
        checks=checks,
    )
    report["positions_left"] = len(left)
    report["passed"] = bool(report["passed"]) and not left
    return report


def _flatten(engine: ExecutionFacade, reason: str) -> dict[str, Any]:
    try:
        return engine.flatten(reason=reason, by=_DRILLER)
    except ExecutionEngineError as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def _resume(engine: ExecutionFacade) -> None:
    def attempt() -> bool:
        if not engine.probe.halted:
            return True
        try:
            engine.resume(by=_DRILLER, reason=f"drill {NAME}: recovered")
        except ExecutionEngineError:
            return False
        return True

    wait_until(attempt, _TIMEOUT, "trading resumed", pause=0.1)


def _closed_twice(sim: SimulatedTerminal, tickets: set[int]) -> set[int]:
    """Positions with more than one closing deal (a flatten closes each one whole, once)."""
    twice = set()
    for ticket in tickets:
        deals = sim.history_deals_get(position=ticket) or ()
        if sum(1 for deal in deals if int(deal.entry) in (1, 3)) > 1:
            twice.add(ticket)
    return twice


def _all_final(store: StoreView) -> bool:
    return all(
        s in ("FILLED", "PARTIALLY_FILLED", "REJECTED", "EXPIRED") for s in store.statuses.values()
    )


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    if "error" in report:
        return {"error": report["error"]}
    return {
        key: report[key]
        for key in ("positions_found", "positions_closed", "volume_closed", "skipped_in_flight")
    } | {"statuses": dict(Counter(e["status"] for e in report["executions"]))}


__all__ = ["NAME", "run_flatten_under_faults"]
