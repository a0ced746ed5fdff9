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
from datetime import datetime
from typing import Any

import pykka
from sqlalchemy import Engine

from actors._broker_calls import BrokerCalls
from actors._recover_legs import settle_legs
from actors._recover_order import settle_order
from actors._recovery_report import RecoveryConfig, RecoveryReport
from actors._recovery_writes import RecoveryWriter
from actors._send_ledger import AbsenceClock
from actors._shared import MarginBook
from actors.broker import BrokerProxy
from core.clock import Clock
from core.enums import ExecutionStatus, RejectionReason
from core.errors import ReconciliationError
from core.models import ExecutionLog
from core.records import SendTrace
from core.rules import absence_proven, reconcile_backoff
from storage.repository import Repository
from storage.tickets import claimed_tickets

log = logging.getLogger(__name__)

_S = ExecutionStatus
_R = RejectionReason


class Reconciler:
    """Reconciles executions through the current BrokerActor and PersistenceActor.

    Not thread-safe: the Supervisor runs one reconciliation at a time.
    """

    def __init__(
        self,
        broker: Callable[[], BrokerProxy],
        persistence: Callable[[], pykka.ActorRef[Any]],
        repository: Repository,
        db: Engine,
        clock: Clock,
        config: RecoveryConfig,
        on_final: Callable[[ExecutionLog], None] | None = None,
        margin: MarginBook | None = None,
        on_unknown: Callable[[str, bool], None] | None = None,
    ) -> None:
        self.broker = BrokerCalls(broker, config.ask_timeout)
        self.writer = RecoveryWriter(persistence, clock, config.ask_timeout)
        self._repository = repository
        self._db = db
        self._clock = clock
        self._config = config
        self._on_final = on_final
        self._margin = margin
        self._on_unknown = on_unknown
        self._started = clock.now()
        """This run's start: a send journaled before it belongs to a process that is gone."""
        self._taken_over: dict[str, datetime] = {}
        """Hot standby: account -> when this instance took it over; the same holds for a
        send journaled before then (the previous owner stopped sending before it)."""
        self._clocks: dict[str, AbsenceClock] = {}
        """execution_id -> how long its order has had to appear (`AbsenceClock`)."""
        self._due: dict[str, tuple[int, float]] = {}
        """execution_id -> (lookups so far, monotonic time of the next one)."""
        self._held: set[str] = set()
        """Executions whose margin this reconciler reserved."""

    # --- the run -----------------------------------------------------------------------

    def taken_over(self, account: str) -> None:
        """Hot standby: `account` is this instance's from now; what its executions journaled
        before was sent (or not) by the previous owner, which no longer sends."""
        self._taken_over[account] = self._clock.now()

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
        claimed = claimed_tickets(self._db, self._config.account)
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
            pre = self.broker.preflight(record.symbol)
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

    # --- one execution -----------------------------------------------------------------

    def present(self, records: Iterable[ExecutionLog]) -> dict[str, int]:
        """Client id -> ticket of our orders at the terminal since the oldest of `records`
        was sent: one read instead of one history query per execution (start-up)."""
        times = [r.submitted_at or r.created_at for r in records]
        if not times:
            return {}
        return self.broker.our_client_ids(min(times))

    def reconcile(
        self,
        record: ExecutionLog,
        claimed: set[int],
        present: Mapping[str, int] | None = None,
    ) -> ExecutionLog | None:
        """Settle one execution; None when it must wait for the reconcile window."""
        if record.status is _S.PENDING and record.attempts == 0:
            return self.finish(
                record,
                _S.REJECTED,
                {},
                reason=_R.NOT_SENT,
                details="never reached SUBMITTING before the engine stopped (crash recovery)",
            )
        if len(record.legs) > 1:
            return settle_legs(self, record, claimed)
        return settle_order(self, record, claimed, present)

    def absence_proof(self, record: ExecutionLog, trace: SendTrace) -> dict[str, Any] | None:
        """What proves `record`'s (or its in-flight leg's) order absent; None until then."""
        clock = self._clocks.setdefault(record.execution_id, AbsenceClock())
        # A previous run's send: the process that sent it is gone, so nothing of it is
        # still on its way from this engine; the window covers the terminal's own work.
        waited, fenced = clock.measure(
            trace,
            self._clock.monotonic(),
            sender_gone=record.updated_at < self._taken_over.get(record.account, self._started),
        )
        if not absence_proven(
            trace.fate, waited=waited, window=self._config.reconcile_window, fenced=fenced
        ):
            return None
        return {"waited_seconds": round(waited, 3), "send": trace.fate.value, "fenced": fenced}

    # --- for `actors._recover_order` and `actors._recover_legs` -------------------------

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
        """Settle `record` on final `status` (committed), then let go of what it held."""
        final = self.writer.settle(
            record, status, payload, reason=reason, details=details, **changes
        )
        self._settled(record.execution_id)
        if self._on_final is not None:
            self._on_final(final)
        return final

    def pip_override(self, symbol: str) -> float | None:
        return self._config.pip_overrides.get(symbol)

    def now(self) -> datetime:
        return self._clock.now()


__all__ = ["Reconciler"]
