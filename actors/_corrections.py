"""Late appearances: an order that turns up after its execution was settled without one.

NOT_SENT is concluded on evidence (`core.rules.reconcile`), but evidence rests on how the
terminal and the bridge behave. So the recovery thread keeps checking: every `interval`
seconds it reads once which client ids the terminal has orders for (our magic, over the
last `lookback` seconds) and compares them with the executions created in that time and
REJECTED without an order (NOT_SENT above all, but also a send refused, retried out or
halted). A match is a wrong settlement: it is corrected, never hidden. The order's real
outcome is journaled as a RECONCILE_CORRECTION event (the previous status and reason in its
payload), the projection takes the fill (or the order's rejection), the order is removed
first if it is still working (nobody owns it), `ee_reconcile_corrections_total` counts it,
and it is logged at CRITICAL.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pykka
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from actors._broker_calls import BrokerCalls
from actors.persistence import write_and_wait
from core.clock import Clock, utc_micros
from core.enums import ExecutionStatus, JournalEventType, RejectionReason
from core.errors import PersistenceUnavailableError
from core.models import ExecutionLog
from core.records import OrderFinding
from core.rules.settlement import VOLUME_EPS, is_complete, summarize_fills
from storage.ops import WriteOp
from storage.repository import Repository
from storage.schema import execution_logs
from storage.tickets import claimed_tickets

log = logging.getLogger(__name__)

_S = ExecutionStatus
_R = RejectionReason


class LateAppearances:
    """Finds and corrects executions settled without an order whose order appeared later."""

    def __init__(
        self,
        broker: BrokerCalls,
        persistence: Callable[[], pykka.ActorRef[Any]],
        repository: Repository,
        db: Engine,
        clock: Clock,
        *,
        lookback: float,
        ask_timeout: float,
        pip_overrides: dict[str, float],
        on_correction: Callable[[], None] | None = None,
        account: str | None = None,
    ) -> None:
        """`account`: only that account's executions are looked for (on its terminal)."""
        self._account = account
        self._broker = broker
        self._persistence = persistence
        self._repository = repository
        self._db = db
        self._clock = clock
        self._lookback = lookback
        self._ask_timeout = ask_timeout
        self._pips = pip_overrides
        self._on_correction = on_correction

    def check(self) -> list[ExecutionLog]:
        """One pass; returns the corrected executions."""
        since = self._clock.now() - timedelta(seconds=self._lookback)
        settled = self._settled_without_order(since)
        if not settled:
            return []
        present = self._broker.our_client_ids(since)
        late = [(i, present[c]) for i, c in settled if c in present]
        if not late:
            return []
        claimed = self._claimed()
        corrected = []
        for execution_id, ticket in late:
            record = self._repository.get_execution(execution_id)
            if record is None or record.order_id is not None:
                continue
            if ticket in claimed:
                log.critical(
                    "order %s with client id %s of %s (settled without an order) is claimed "
                    "by another execution: left for an operator",
                    ticket,
                    record.client_id,
                    record.execution_id,
                )
                continue
            corrected.append(self._correct(record, ticket))
            claimed.add(ticket)
        return corrected

    def _settled_without_order(self, since: Any) -> list[tuple[str, str]]:
        """(execution id, client id) of the executions created since and REJECTED without
        an order."""
        query = select(execution_logs.c.execution_id, execution_logs.c.client_id).where(
            execution_logs.c.status == _S.REJECTED.value,
            execution_logs.c.order_id.is_(None),
            execution_logs.c.created_at >= since,  # indexed; the lookback is generous
        )
        if self._account is not None:
            query = query.where(execution_logs.c.account == self._account)
        try:
            with self._db.connect() as connection:
                return [(str(i), str(c)) for i, c in connection.execute(query)]
        except SQLAlchemyError as exc:
            raise PersistenceUnavailableError(
                f"cannot list the executions settled without an order: {type(exc).__name__}"
            ) from exc

    def _claimed(self) -> set[int]:
        return claimed_tickets(self._db, self._account)

    def _correct(self, record: ExecutionLog, ticket: int) -> ExecutionLog:
        lots = record.intended_lots or 0.0
        finding = self._broker.query_order(ticket, lots)
        removed = False
        if finding.open:
            self._broker.remove_order(ticket)  # nobody owns it: it must not keep working
            finding = self._broker.query_order(ticket, lots)
            removed = True
        changes: dict[str, Any] = {"order_id": ticket}
        filled = round(finding.filled_volume, 8)
        if filled > VOLUME_EPS:
            changes.update(self._fill(record, finding, lots, filled))
        else:
            changes.update(
                status=_S.REJECTED,
                rejection_reason=_R.CANCELLED if removed else _R.BROKER_REJECTED,
                rejection_details=f"order {ticket} appeared after the execution was settled "
                f"without one; it closed with nothing filled (state {finding.state})",
            )
        corrected = record.evolve(updated_at=self._clock.now(), **changes)
        payload = {
            "status": corrected.status.value,
            "previous_status": record.status.value,
            "previous_reason": record.rejection_reason.value if record.rejection_reason else None,
            "ticket": ticket,
            "filled_volume": finding.filled_volume,
            "vwap": finding.vwap,
            "removed": removed,
            "deals": [[d.ticket, d.volume, d.price] for d in finding.deals],
        }
        op = WriteOp(
            execution_id=record.execution_id,
            event_type=JournalEventType.RECONCILE_CORRECTION,
            payload=payload,
            engine_time_us=utc_micros(corrected.updated_at),
            broker_time_msc=finding.time_msc,
            projection=corrected,
        )
        write_and_wait(self._persistence(), [op], self._ask_timeout)
        log.critical(
            "RECONCILE CORRECTION: %s was settled %s/%s but its order %s is at the terminal "
            "(filled %s lots); corrected to %s",
            record.execution_id,
            record.status.value,
            payload["previous_reason"],
            ticket,
            filled,
            corrected.status.value,
        )
        if self._on_correction is not None:  # after the log line: the metric implies it
            self._on_correction()
        return corrected

    def _fill(
        self, record: ExecutionLog, finding: OrderFinding, lots: float, filled: float
    ) -> dict[str, Any]:
        summary = summarize_fills(
            filled,
            finding.vwap if finding.vwap is not None else 0.0,
            spec=self._broker.symbol_spec(record.symbol),
            direction=record.direction,
            intended_price=record.intended_price,
            pip_override=self._pips.get(record.symbol),
        )
        complete = is_complete(filled, lots)
        return {
            "status": _S.FILLED if complete else _S.PARTIALLY_FILLED,
            "rejection_reason": None,
            "rejection_details": None if complete else f"filled {filled} of {lots} lots",
            **summary.record_changes(),
            "filled_at": self._clock.now(),
        }


__all__ = ["LateAppearances"]
