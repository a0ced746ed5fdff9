"""The drills that run in this process: an engine on a simulated terminal, a burst of
synthetic approved trades, one fault injected mid-burst, recovery, and the verdict."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from actors.engine import create_execution_engine
from actors.facade import ExecutionFacade
from actors.probe import EngineFaults, EngineProbe
from core.enums import JournalEventType
from core.errors import ExecutionEngineError
from drills._harness import (
    DatabaseOutage,
    Progress,
    audit_ok,
    burst,
    decision_prefix,
    drill_settings,
    executions_with_event,
    read_store,
    run_id,
    scratch_store,
    trade,
    verdict,
    wait_until,
)
from terminals.simulated import SimulatedTerminal

_RECOVERY_TIMEOUT = 60.0
_DRILLER = "drill"


@dataclass(slots=True)
class _Run:
    name: str
    executions: int
    seed: int
    progress: Progress
    sim: SimulatedTerminal
    engine: ExecutionFacade
    outage: DatabaseOutage
    rid: str
    fault_at: float | None = None
    recovered_at: float | None = None
    finished: threading.Event = field(default_factory=threading.Event)
    extra: dict[str, Any] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def probe(self) -> EngineProbe:
        return self.engine.probe

    @property
    def faults(self) -> EngineFaults:
        return self.engine.faults


@dataclass(frozen=True, slots=True)
class _Drill:
    fault: Callable[[_Run], None]
    """Injected once, mid-burst, from one of the burst's threads."""
    recover: Callable[[_Run], None] = lambda run: _resume(run)
    """After the burst: clear the fault and bring trading back (as an operator would)."""
    prepare: Callable[[_Run], None] = lambda run: None
    recovered: Callable[[_Run], bool] = lambda run: run.probe.recovered()
    """True once the engine is whole again after the fault (polled from the fault on)."""
    settings: dict[str, Any] = field(default_factory=dict)


# --- the faults ----------------------------------------------------------------------------


def _restarts_after(run: _Run, before: int, what: str) -> None:
    probe = run.probe
    wait_until(lambda: probe.restarts > before and probe.children_alive(), 10.0, what)


def _broker_crash(run: _Run) -> None:
    before = run.probe.restarts
    run.faults.crash_after_sends(1)  # dies while an order_send is in flight
    _restarts_after(run, before, "the broker was restarted after dying mid-send")
    run.faults.inject("broker", "crash")  # a told message that fails: on_failure
    _restarts_after(run, before + 1, "the broker was restarted after a failed tell")
    run.extra["broker_restarts"] = run.probe.restarts - before


def _persistence_crash(run: _Run) -> None:
    before = run.probe.restarts
    run.faults.inject("persistence", "crash")
    _restarts_after(run, before, "the persistence actor was restarted")
    run.extra["persistence_restarts"] = run.probe.restarts - before


def _order_actor_crash(run: _Run) -> None:
    # Three orders stay PLACED (working, never filling); their OrderActors die while they
    # watch them, so recovery must find the orders open and remove them.
    probe = run.probe
    run.sim.inject("placed", times=3, fill_after_polls=-1)

    def watching() -> list[str]:
        statuses = read_store(probe.db, decision_prefix(run.rid)).by_execution
        return [e for e, s in statuses.items() if s == "SUBMITTED" and probe.is_live(e)]

    wait_until(lambda: len(watching()) >= 3, 10.0, "three orders working at the terminal")
    before = probe.order_crashes
    victims = watching()[:3]
    run.fault_at = time.monotonic()  # the fault proper starts now
    for execution_id in victims:
        run.faults.inject(execution_id, "crash")
    wait_until(lambda: probe.order_crashes >= before + len(victims), 10.0, "the OrderActors died")
    run.extra["crashed_order_actors"] = len(victims)


def _terminal_disconnect(run: _Run) -> None:
    run.sim.set_connected(False)
    wait_until(lambda: run.probe.halted, 10.0, "the supervisor halted trading")
    run.extra["halted_reason"] = run.probe.reason
    run.checks["halted_by_supervisor"] = "disconnected" in run.probe.reason
    run.sim.set_connected(True)


def _ambiguous_submits(run: _Run) -> None:
    times = max(1, run.executions // 20)
    kinds = ("timeout_executed", "none_executed", "none_not_executed", "timeout_not_executed")
    for kind in (*kinds, "connection"):
        run.sim.inject(kind, times=times)
    run.extra["ambiguous_faults_injected"] = times * (len(kinds) + 1)


def _ambiguity_resolved(run: _Run) -> bool:
    """Every injected fault was met and no execution of the run is left SUBMITTING/UNKNOWN."""
    if not run.probe.recovered() or run.sim.pending_faults():
        return False
    statuses = read_store(run.probe.db, decision_prefix(run.rid)).statuses.values()
    return not any(s in ("SUBMITTING", "UNKNOWN") for s in statuses)


def _database_outage(run: _Run) -> None:
    run.outage.start()
    try:
        wait_until(lambda: run.probe.halted, 10.0, "trading halted on journal failures")
        run.extra["halted_reason"] = run.probe.reason
        run.checks["halted_by_supervisor"] = "journal" in run.probe.reason
        threading.Event().wait(0.2)  # the store stays away a little longer
    finally:
        run.outage.stop()


def _arm_placed_orders(run: _Run) -> None:
    # A few orders stay PLACED (never filling) so that the halt has open orders to remove.
    run.sim.inject("placed", times=max(1, run.executions // 50), fill_after_polls=-1)


def _halt_under_load(run: _Run) -> None:
    run.engine.halt("drill: halt under load", by=_DRILLER)
    run.extra["halt_returned"] = time.monotonic()


def _halt_recover(run: _Run) -> None:
    wait_until(lambda: run.engine.in_flight() == 0, _RECOVERY_TIMEOUT, "every execution settled")
    halted_at = float(run.extra.pop("halt_returned"))
    magic = run.engine.settings.magic
    open_orders = [o for o in run.sim.open_orders_snapshot() if o.magic == magic]
    late = [
        record
        for record in run.sim.calls
        if record.name == "order_send"
        and record.start > halted_at
        and isinstance(record.args[0], dict)
        and record.args[0].get("action") == run.sim.TRADE_ACTION_DEAL
    ]
    run.extra["order_sends_after_halt"] = len(late)
    run.extra["open_orders_after_halt"] = len(open_orders)
    run.checks["no_order_send_after_halt"] = not late
    run.checks["open_orders_removed"] = not open_orders
    _resume(run)


def _resume(run: _Run) -> None:
    """Resume as an operator would, once reconciliation can succeed."""
    engine = run.engine

    def attempt() -> bool:
        if not engine.probe.halted:
            return True
        try:
            engine.resume(by=_DRILLER, reason=f"drill {run.name}: recovered")
        except ExecutionEngineError as exc:
            run.extra["resume_refusals"] = run.extra.get("resume_refusals", 0) + 1
            run.extra["last_resume_refusal"] = str(exc)
            return False
        return True

    wait_until(attempt, _RECOVERY_TIMEOUT, "trading resumed", pause=0.1)


DRILLS: dict[str, _Drill] = {
    "broker-crash": _Drill(_broker_crash),
    "persistence-crash": _Drill(_persistence_crash),
    "order-actor-crash": _Drill(_order_actor_crash),
    "terminal-disconnect": _Drill(_terminal_disconnect),
    "ambiguous-submits": _Drill(_ambiguous_submits, recovered=_ambiguity_resolved),
    "database-outage": _Drill(_database_outage),
    "halt-under-load": _Drill(_halt_under_load, _halt_recover, _arm_placed_orders),
}


# --- the run -------------------------------------------------------------------------------


def run_in_process(
    name: str, executions: int, seed: int, database_url: str | None, progress: Progress
) -> dict[str, Any]:
    spec = DRILLS[name]
    rid = run_id()
    magic = 700_000 + (seed * 7_919 + int(rid, 16)) % 99_991
    with scratch_store(database_url) as url:
        sim = SimulatedTerminal(seed=seed, order_send_latency=0.001, ipc_latency=0.0)
        engine = create_execution_engine(
            terminal=sim, database_url=url, settings=drill_settings(magic, **spec.settings)
        )
        outage = DatabaseOutage(url, engine.probe.db)
        run = _Run(name, executions, seed, progress, sim, engine, outage, rid)
        try:
            return _drive(run, spec, rid)
        finally:
            engine.stop()


def _drive(run: _Run, spec: _Drill, rid: str) -> dict[str, Any]:
    progress = run.progress
    messages = [trade(rid, i, run.seed) for i in range(run.executions)]
    spec.prepare(run)
    monitor = threading.Thread(target=_watch_recovery, args=(run, spec), daemon=True)

    def fault() -> None:
        run.fault_at = time.monotonic()
        spec.fault(run)
        monitor.start()

    progress(f"{run.name}: bursting {run.executions} executions")
    result = burst(
        run.engine.execute,
        messages,
        concurrency=32,
        at=run.executions // 2,
        fault=fault,
        progress=progress,
    )
    if result.errors:
        progress(f"{len(result.errors)} callers got an error (their executions are recovered)")
    progress("recovering")
    spec.recover(run)
    _resubmit_unstored(run, messages, rid)
    _wait_all_final(run, rid)
    if monitor.ident is not None:
        monitor.join(5.0)
    run.finished.set()
    store = read_store(run.probe.db, decision_prefix(rid))
    magic = run.engine.settings.magic
    orders = run.sim.orders_for_magic(magic)
    started = run.fault_at or time.monotonic()
    recovered = run.recovered_at or time.monotonic()
    run.extra.update(
        {
            "ambiguous_sends": executions_with_event(
                run.probe.db, decision_prefix(rid), JournalEventType.SEND_AMBIGUOUS
            ),
            "caller_errors": len(result.errors),
            "restarts": run.probe.restarts,
            "order_actor_crashes": run.probe.order_crashes,
            "terminal_orders": len(orders),
            "magic": magic,
        }
    )
    return verdict(
        drill=run.name,
        executions=run.executions,
        store=store,
        orders=orders,
        audit=audit_ok(run.probe.db, decision_prefix(rid)),
        recovery_seconds=max(recovered - started, 0.0),
        extra=run.extra,
        checks=run.checks,
    )


def _watch_recovery(run: _Run, spec: _Drill) -> None:
    """Notes when the engine is whole again after the fault: by default trading ACTIVE,
    every child alive, no orphan execution left to reconcile."""
    deadline = time.monotonic() + 2 * _RECOVERY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            whole = spec.recovered(run)
        except Exception:
            whole = False  # e.g. the store is still away
        if whole:
            run.recovered_at = time.monotonic()
            return
        if run.finished.wait(0.01):
            return


def _resubmit_unstored(run: _Run, messages: list[dict[str, Any]], rid: str) -> None:
    """Decisions the engine refused outright (the store was away) are sent again, as the
    RPM would: the same decision ids, so nothing already stored is executed twice."""
    stored = read_store(run.probe.db, decision_prefix(rid)).statuses
    missing = [m for m in messages if m["decision"]["decision_id"] not in stored]
    if missing:
        run.progress(f"resubmitting {len(missing)} decisions the engine never stored")
        run.extra["resubmitted"] = len(missing)
        for message in missing:
            run.engine.execute(message)


def _wait_all_final(run: _Run, rid: str) -> None:
    prefix = decision_prefix(rid)

    def settled() -> bool:
        if run.engine.in_flight() or run.probe.orphans():
            return False
        statuses = read_store(run.probe.db, prefix).statuses.values()
        return all(s in ("FILLED", "PARTIALLY_FILLED", "REJECTED", "EXPIRED") for s in statuses)

    try:
        wait_until(settled, _RECOVERY_TIMEOUT, "every execution final", pause=0.05)
    except TimeoutError as exc:
        run.progress(str(exc))
