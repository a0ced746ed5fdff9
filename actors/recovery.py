"""Crash recovery: reconcile executions that are not final with the terminal.

Run at start (one pass, then in the background: see `Supervisor.start`), on `resume`, and
for the executions of OrderActors that died. Nothing is ever resent: an execution's real
outcome is looked up.

Rules, for each execution that is not final:

- PENDING that never reached SUBMITTING (no attempt): nothing can have been sent, so it
  is REJECTED with NOT_SENT at once.
- Otherwise the order is looked for at the terminal: by its ticket when known; else by
  `magic` + client id in the comment; else by magic + symbol + side + volume in a time
  window, because brokers may rewrite comments (`BrokerActor.find_order`). A ticket
  already claimed by another execution is never taken twice.
- Found and done: its real outcome from the deals: FILLED or PARTIALLY_FILLED with the
  volume-weighted fill price and the slippage against the intended price; closed with
  nothing filled: EXPIRED (order state EXPIRED) or REJECTED (BROKER_REJECTED).
- Found and still open: it is REMOVED (TRADE_ACTION_REMOVE), not watched: after a crash
  nobody owns it, and a halted engine must not leave orders working. Then it settles on
  what filled before the removal (PARTIALLY_FILLED / FILLED), or REJECTED with CANCELLED.
- Not found: REJECTED with NOT_SENT only on evidence (`core.rules.reconcile`): the
  BrokerActor's trace of the send (taken before the lookup) says it never started, or the
  window has passed since order_send started and the terminal answered it or a later send
  came back definite. A send of a previous run (the engine restarted) is measured from
  this run's first lookup, not from the journal's time: the dead process may have sent it
  long after its SUBMITTING was written. Until then the execution waits, UNKNOWN to the
  RPM, its margin held (`MarginBook`), and is looked up again with back-off. A SUBMITTED
  execution (the broker acknowledged its ticket) that the terminal does not know is a
  reconciliation failure: the engine stays HALTED.

Every change goes through the transition table (a missing intermediate state, e.g.
SUBMITTING -> SUBMITTED before EXPIRED, is journaled as its own step) and is committed
through the PersistenceActor before the next one.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pykka
from sqlalchemy import Engine

from actors._recover_legs import settle_legs
from actors._send_ledger import AbsenceClock
from actors._shared import MarginBook
from actors.messages import OrderFinding, Preflight, SendOutcome, SendTrace, SymbolSpec
from actors.persistence import write_and_wait
from core.clock import Clock, utc_micros
from core.enums import TRANSITIONS, ExecutionStatus, RejectionReason
from core.errors import ReconciliationError
from core.models import ExecutionLeg, ExecutionLog
from core.rules import SendFate, absence_proven, reconcile_backoff, retcode_name
from core.rules.settlement import (
    VOLUME_EPS,
    closed_unfilled,
    finding_payload,
    is_complete,
    summarize_fills,
)
from storage.repository import Repository
from storage.tickets import claimed_tickets
from storage.writer import WriteOp

log = logging.getLogger(__name__)

_S = ExecutionStatus
_R = RejectionReason


@dataclass(frozen=True, slots=True)
class RecoveryConfig:
    """What reconciliation needs from the settings.

    reconcile_window: seconds after an execution's last change before an order the
        terminal does not have is provably absent (NOT_SENT).
    ask_timeout: timeout of every ask to the BrokerActor and every commit.
    recheck_interval: pause between passes over executions that must wait for the window.
    max_wait: longest a waiting `run` keeps checking beyond the window (engine clock
        frozen in tests, a broker that keeps failing).
    """

    reconcile_window: float = 30.0
    ask_timeout: float = 30.0
    pip_overrides: Mapping[str, float] = field(default_factory=dict)
    recheck_interval: float = 0.05
    account: str | None = None
    """Whose executions these are: only that account's tickets are claimed (None: all)."""
    max_wait: float = 10.0
    look_interval: float = 0.25
    look_backoff_cap: float = 2.0
    """First and longest pause between two lookups of one execution that waits."""


@dataclass(slots=True)
class RecoveryReport:
    """The outcome of one `Reconciler.run`."""

    examined: int = 0
    resolved: dict[str, str] = field(default_factory=dict)
    """execution_id -> the final status it was given."""
    waiting: list[str] = field(default_factory=list)
    """Executions still inside the reconcile window when the run ended."""
    failures: dict[str, str] = field(default_factory=dict)
    """execution_id -> why it could not be reconciled."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures and not self.waiting

    def error(self) -> str:
        """One line naming the first problem (empty when ok)."""
        if self.failures:
            first, why = next(iter(self.failures.items()))
            more = len(self.failures) - 1
            return f"{first}: {why}" + (f" (+{more} more)" if more else "")
        if self.waiting:
            return f"{len(self.waiting)} execution(s) still inside the reconcile window"
        return ""

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for status in self.resolved.values():
            counts[status] = counts.get(status, 0) + 1
        return {
            "examined": self.examined,
            "resolved": counts,
            "waiting": len(self.waiting),
            "failures": dict(self.failures),
            "seconds": round(self.seconds, 3),
        }


class Reconciler:
    """Reconciles executions through the current BrokerActor and PersistenceActor.

    Not thread-safe: the Supervisor runs one reconciliation at a time.
    """

    def __init__(
        self,
        broker: Callable[[], Any],
        persistence: Callable[[], pykka.ActorRef[Any]],
        repository: Repository,
        db: Engine,
        clock: Clock,
        config: RecoveryConfig,
        on_final: Callable[[ExecutionLog], None] | None = None,
        margin: MarginBook | None = None,
        on_unknown: Callable[[str, bool], None] | None = None,
    ) -> None:
        self._broker = broker
        self._persistence = persistence
        self._repository = repository
        self._db = db
        self._clock = clock
        self._config = config
        self._on_final = on_final
        self._margin = margin
        self._on_unknown = on_unknown
        self._started = clock.now()
        """This run's start: a send journaled before it belongs to a process that is gone."""
        self._clocks: dict[str, AbsenceClock] = {}
        """execution_id -> how long its order has had to appear (`AbsenceClock`)."""
        self._due: dict[str, tuple[int, float]] = {}
        """execution_id -> (lookups so far, monotonic time of the next one)."""
        self._held: set[str] = set()
        """Executions whose margin this reconciler reserved."""

    # --- the run -----------------------------------------------------------------------

    def run(
        self,
        execution_ids: Iterable[str],
        *,
        wait: bool,
        stop: threading.Event | None = None,
        present: Mapping[str, int] | None = None,
    ) -> RecoveryReport:
        """Reconcile every listed execution that is still not final.

        With `wait`, executions inside the reconcile window are checked again until the
        window has passed (at most `max_wait` beyond it); without, they are reported as
        waiting. A failure is reported per execution; the others are still reconciled.
        `present` (from `present`): the client ids the terminal has orders for; an execution
        without a ticket whose client id is not among them skips its own lookup this time.
        """
        started = self._clock.monotonic()
        report = RecoveryReport()
        claimed = self._claimed_tickets()
        pending: deque[str] = deque(dict.fromkeys(execution_ids))
        deadline = started + self._config.reconcile_window + self._config.max_wait
        seen: set[str] = set()
        while True:
            waiting: list[str] = []
            while pending:
                execution_id = pending.popleft()
                record = self._repository.get_execution(execution_id)
                if record is None or record.is_final:
                    continue
                if execution_id not in seen:
                    seen.add(execution_id)
                    report.examined += 1
                due = self._due.get(execution_id)
                if due is not None and due[1] > self._clock.monotonic():
                    waiting.append(execution_id)  # looked up a moment ago: back-off
                    continue
                try:
                    final = self.reconcile(record, claimed, present)
                except Exception as exc:
                    log.warning("reconciling %s failed: %s", execution_id, exc)
                    report.failures[execution_id] = f"{type(exc).__name__}: {exc}"
                    continue
                if final is None:
                    waiting.append(execution_id)
                    self._wait(record)
                else:
                    report.resolved[execution_id] = final.status.value
            if not waiting or not wait or self._clock.monotonic() >= deadline:
                report.waiting = waiting
                break
            if stop is not None and stop.wait(self._config.recheck_interval):
                report.waiting = waiting
                break
            if stop is None:
                threading.Event().wait(self._config.recheck_interval)
            pending.extend(waiting)
        report.seconds = self._clock.monotonic() - started
        return report

    def _wait(self, record: ExecutionLog) -> None:
        """`record` is not settled yet: look again later, its exposure held meanwhile."""
        execution_id = record.execution_id
        looks = self._due.get(execution_id, (0, 0.0))[0] + 1
        delay = reconcile_backoff(looks, self._config.look_interval, self._config.look_backoff_cap)
        self._due[execution_id] = (looks, self._clock.monotonic() + delay)
        if self._on_unknown is not None:
            self._on_unknown(execution_id, True)
        if self._margin is None or execution_id in self._held or not record.intended_lots:
            return
        amount = self._margin_required(record)
        if amount is None:
            return
        # Held unconditionally: the order may exist, so its margin is spent either way.
        self._margin.reserve(execution_id, amount, lambda _held: None)
        self._held.add(execution_id)

    def _margin_required(self, record: ExecutionLog) -> float | None:
        """The margin validation computed for it (journaled with VALIDATED), else asked."""
        for event in reversed(self._repository.events_for(record.execution_id)):
            required = event.payload.get("margin_required")
            if isinstance(required, int | float):
                return float(required)
        try:
            pre: Preflight = self.ask("preflight", record.symbol)
        except ReconciliationError as exc:
            log.warning("cannot reserve the margin of %s yet: %s", record.execution_id, exc)
            return None
        if pre.margin_per_lot is None:
            log.warning(
                "cannot reserve the margin of %s yet: no margin per lot", record.execution_id
            )
            return None
        return pre.margin_per_lot * (record.intended_lots or 0.0)

    def _settled(self, execution_id: str) -> None:
        self._due.pop(execution_id, None)
        self._clocks.pop(execution_id, None)
        if execution_id in self._held:
            self._held.discard(execution_id)
            if self._margin is not None:
                self._margin.release(execution_id)
        if self._on_unknown is not None:
            self._on_unknown(execution_id, False)

    def _claimed_tickets(self) -> set[int]:
        return claimed_tickets(self._db, self._config.account)

    # --- one execution -----------------------------------------------------------------

    def present(self, records: Iterable[ExecutionLog]) -> dict[str, int]:
        """Client id -> ticket of our orders at the terminal since the oldest of `records`
        was sent: one read instead of one history query per execution (start-up)."""
        times = [r.submitted_at or r.created_at for r in records]
        if not times:
            return {}
        found: dict[str, int] = self.ask("our_client_ids", min(times))
        return found

    def reconcile(
        self,
        record: ExecutionLog,
        claimed: set[int],
        present: Mapping[str, int] | None = None,
    ) -> ExecutionLog | None:
        """Settle one execution; None when it must wait for the reconcile window."""
        if record.status is _S.PENDING and record.attempts == 0:
            return self._finish(
                record,
                _S.REJECTED,
                {},
                reason=_R.NOT_SENT,
                details="never reached SUBMITTING before the engine stopped (crash recovery)",
            )
        if len(record.legs) > 1:
            return settle_legs(self, record, claimed)
        lots = record.intended_lots
        if lots is None:
            raise ReconciliationError(f"{record.status} execution has no intended lots")
        # The trace first: whatever it proves about the terminal holds for the lookup after.
        trace: SendTrace = self.ask("send_trace", record.client_id)
        if (
            present is not None
            and not record.order_id
            and record.status is not _S.SUBMITTED
            and record.client_id not in present
        ):
            # Not at the terminal by its client id. A broker-rewritten comment is looked
            # for at the next lookup, in the background; this one could not prove absence.
            return self._absent(record, trace)
        finding = self._find(record, lots, claimed)
        if finding is None:
            return self._absent(record, trace)
        claimed.add(finding.ticket)
        self._journal(record, "RECOVERED_FOUND", finding_payload(finding))
        removed = False
        if finding.open:
            finding = self._remove(record, finding, lots)
            removed = True
        return self._settle(record, finding, lots, removed)

    def _find(self, record: ExecutionLog, lots: float, claimed: set[int]) -> OrderFinding | None:
        if record.order_id:
            by_ticket: OrderFinding = self.ask("query_order", record.order_id, lots)
            if by_ticket.found:
                return by_ticket
        found: OrderFinding | None = self.ask(
            "find_order",
            client_id=record.client_id,
            symbol=record.symbol,
            direction=1 if record.direction > 0 else -1,
            lots=lots,
            since=record.submitted_at or record.created_at,
            exclude=sorted(claimed - {record.order_id or 0}),
        )
        return found

    def absence_proof(self, record: ExecutionLog, trace: SendTrace) -> dict[str, Any] | None:
        """What proves `record`'s (or its in-flight leg's) order absent; None until then."""
        clock = self._clocks.setdefault(record.execution_id, AbsenceClock())
        # A previous run's send: the process that sent it is gone, so nothing of it is
        # still on its way from this engine; the window covers the terminal's own work.
        waited, fenced = clock.measure(
            trace, self._clock.monotonic(), sender_gone=record.updated_at < self._started
        )
        if not absence_proven(
            trace.fate, waited=waited, window=self._config.reconcile_window, fenced=fenced
        ):
            return None
        return {"waited_seconds": round(waited, 3), "send": trace.fate.value, "fenced": fenced}

    def _absent(self, record: ExecutionLog, trace: SendTrace) -> ExecutionLog | None:
        if record.status is _S.SUBMITTED:
            raise ReconciliationError(
                f"order {record.order_id} was accepted by the broker but the terminal "
                "does not know it"
            )
        proof = self.absence_proof(record, trace)
        if proof is None:
            return None
        waited = proof["waited_seconds"]
        return self._finish(
            record,
            _S.REJECTED,
            proof,
            reason=_R.NOT_SENT,
            details=f"no order with client id {record.client_id} at the terminal "
            f"{waited:.1f} s after it was first looked up (crash recovery)"
            if trace.fate is SendFate.UNKNOWN
            else f"no order with client id {record.client_id} at the terminal "
            f"{waited:.1f} s after order_send started (crash recovery)",
        )

    def _remove(self, record: ExecutionLog, finding: OrderFinding, lots: float) -> OrderFinding:
        outcome: SendOutcome = self.ask("remove_order", finding.ticket)
        self._journal(
            record,
            "ORDER_REMOVE_REQUESTED",
            {
                "ticket": finding.ticket,
                "retcode": outcome.retcode,
                "retcode_name": retcode_name(outcome.retcode),
                "comment": outcome.comment,
                "by": "recovery",
            },
        )
        after: OrderFinding = self.ask("query_order", finding.ticket, lots)
        if after.open:
            raise ReconciliationError(
                f"order {finding.ticket} is still open after TRADE_ACTION_REMOVE "
                f"({retcode_name(outcome.retcode)})"
            )
        return after

    def _settle(
        self, record: ExecutionLog, finding: OrderFinding, lots: float, removed: bool
    ) -> ExecutionLog:
        filled = round(finding.filled_volume, 8)
        payload = finding_payload(finding)
        if filled > VOLUME_EPS:
            return self._filled(record, finding, lots, removed)
        if removed:
            return self._finish(
                record,
                _S.REJECTED,
                payload,
                reason=_R.CANCELLED,
                details=f"order {finding.ticket} was still open after the restart; removed "
                "with nothing filled (crash recovery)",
                order_id=finding.ticket,
            )
        status, reason = closed_unfilled(finding.state)
        return self._finish(
            record,
            status,
            payload,
            reason=reason,
            details=f"order {finding.ticket} expired with nothing filled"
            if status is _S.EXPIRED
            else f"order {finding.ticket} closed with nothing filled (state {finding.state})",
            order_id=finding.ticket,
        )

    def _filled(
        self, record: ExecutionLog, finding: OrderFinding, lots: float, removed: bool
    ) -> ExecutionLog:
        spec: SymbolSpec | None = self.ask("symbol_spec", record.symbol)
        if spec is None:
            raise ReconciliationError(f"symbol {record.symbol} is unknown to the terminal")
        summary = summarize_fills(
            finding.filled_volume,
            finding.vwap if finding.vwap is not None else 0.0,
            spec=spec,
            direction=record.direction,
            intended_price=record.intended_price,
            pip_override=self._config.pip_overrides.get(record.symbol),
        )
        filled = summary.lots
        complete = is_complete(filled, lots)
        reason: RejectionReason | None = None
        details: str | None = None
        if not complete:
            details = f"filled {filled} of {lots} lots"
            if removed:
                reason = _R.CANCELLED
                details += "; the rest was removed by crash recovery"
        return self._finish(
            record,
            _S.FILLED if complete else _S.PARTIALLY_FILLED,
            {**finding_payload(finding), "pip_size": summary.pip},
            reason=reason,
            details=details,
            broker_time_msc=finding.time_msc,
            order_id=finding.ticket,
            **summary.record_changes(),
            filled_at=self._clock.now(),
        )

    # --- for `actors._recover_legs` -----------------------------------------------------

    def journal(self, record: ExecutionLog, event: str, payload: dict[str, Any]) -> None:
        self._journal(record, event, payload)

    def remove(self, record: ExecutionLog, finding: OrderFinding, lots: float) -> OrderFinding:
        return self._remove(record, finding, lots)

    def finish(
        self,
        record: ExecutionLog,
        status: ExecutionStatus,
        payload: dict[str, Any],
        *,
        reason: RejectionReason | None,
        details: str | None,
        **changes: Any,
    ) -> ExecutionLog:
        return self._finish(record, status, payload, reason=reason, details=details, **changes)

    def pip_override(self, symbol: str) -> float | None:
        return self._config.pip_overrides.get(symbol)

    def now(self) -> Any:
        return self._clock.now()

    # --- writing -----------------------------------------------------------------------

    def _finish(
        self,
        record: ExecutionLog,
        status: ExecutionStatus,
        payload: dict[str, Any],
        *,
        reason: RejectionReason | None,
        details: str | None,
        broker_time_msc: int | None = None,
        **changes: Any,
    ) -> ExecutionLog:
        """Walk the transition table to `status`, one committed step at a time."""
        if len(record.legs) == 1 and "legs" not in changes:
            changes["legs"] = _one_leg(record.legs[0], status, reason, changes)
        path = _path(record.status, status)
        if path is None:
            raise ReconciliationError(f"no transition from {record.status} to {status}")
        current = record
        for step in path[:-1]:
            current = self._commit(
                current, step, "RECOVERY_STEP", {}, order_id=changes.get("order_id")
            )
        final = self._commit(
            current,
            status,
            f"RECOVERED_{status.value}",
            {**payload, "reason": reason.value if reason else None, "details": details},
            broker_time_msc=broker_time_msc,
            rejection_reason=reason,
            rejection_details=details,
            **changes,
        )
        self._settled(record.execution_id)
        if self._on_final is not None:
            self._on_final(final)
        return final

    def _commit(
        self,
        record: ExecutionLog,
        status: ExecutionStatus,
        event: str,
        payload: dict[str, Any],
        broker_time_msc: int | None = None,
        **changes: Any,
    ) -> ExecutionLog:
        if broker_time_msc is not None:
            changes["broker_time_msc"] = broker_time_msc
        if changes.get("order_id") is None:
            changes.pop("order_id", None)
        updated = record.evolve(updated_at=self._clock.now(), status=status, **changes)
        op = WriteOp(
            execution_id=record.execution_id,
            event_type=event,
            payload={"status": status.value, "recovery": True, **payload},
            engine_time_us=utc_micros(updated.updated_at),
            broker_time_msc=broker_time_msc,
            projection=updated,
        )
        write_and_wait(self._persistence(), [op], self._config.ask_timeout)
        return updated

    def _journal(self, record: ExecutionLog, event: str, payload: dict[str, Any]) -> None:
        op = WriteOp(
            execution_id=record.execution_id,
            event_type=event,
            payload={"recovery": True, **payload},
            engine_time_us=utc_micros(self._clock.now()),
        )
        write_and_wait(self._persistence(), [op], self._config.ask_timeout)

    def ask(self, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self._broker(), method)(*args, **kwargs).get(
                timeout=self._config.ask_timeout
            )
        except pykka.ActorDeadError as exc:
            raise ReconciliationError(f"the broker actor is not running ({method})") from exc
        except pykka.Timeout as exc:
            raise ReconciliationError(f"the broker did not answer {method} in time") from exc


def _one_leg(
    leg: ExecutionLeg,
    status: ExecutionStatus,
    reason: RejectionReason | None,
    changes: dict[str, Any],
) -> tuple[ExecutionLeg]:
    """The one leg of an execution settled as the execution itself was."""
    filled = float(changes.get("executed_lots") or 0.0)
    if status in (_S.FILLED, _S.PARTIALLY_FILLED):
        outcome = "FILLED" if status is _S.FILLED else "PARTIALLY_FILLED"
    elif reason is _R.NOT_SENT or changes.get("order_id") is None:
        outcome = "NOT_SENT"
    else:
        outcome = "NOT_FILLED"
    return (
        leg.model_copy(
            update={
                "status": outcome,
                "filled_volume": filled,
                "fill_price": changes.get("fill_price"),
                "order_id": changes.get("order_id"),
            }
        ),
    )


def _path(start: ExecutionStatus, goal: ExecutionStatus) -> list[ExecutionStatus] | None:
    """The shortest way from `start` to `goal` through the transition table."""
    frontier: deque[list[ExecutionStatus]] = deque([[start]])
    seen = {start}
    while frontier:
        route = frontier.popleft()
        for nxt in sorted(TRANSITIONS[route[-1]]):
            if nxt in seen:
                continue
            if nxt is goal:
                return [*route[1:], nxt]
            seen.add(nxt)
            frontier.append([*route, nxt])
    return None


__all__ = ["Reconciler", "RecoveryConfig", "RecoveryReport"]
