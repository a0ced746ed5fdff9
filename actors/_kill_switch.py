"""The persisted kill switch: the in-memory `TradingSwitch` and its record in the store.

Halting must work even when the store does not: the switch (the broker's gate) is set
first, then the change is persisted and journaled through the PersistenceActor; a change
the store cannot take now stays pending (the newest wins) and is written as soon as it
can be. Switching to REDUCING narrows what may be sent, so it is a restriction like the
halt: the gate first, then the record. Resuming is the other way round: nothing trades
before ACTIVE is committed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pykka

from actors._shared import TradingSwitch
from actors.persistence import write_and_wait
from core.clock import Clock, utc_micros
from core.enums import TradingState
from core.errors import PersistenceError
from core.models import TradingStateRecord
from storage.writer import WriteOp

log = logging.getLogger(__name__)


class KillSwitch:
    """ACTIVE / REDUCING / HALTED, with who, when and why; starts HALTED until recovery
    says otherwise."""

    def __init__(
        self,
        persistence: Callable[[], pykka.ActorRef[Any]],
        clock: Clock,
        ask_timeout: float,
        retry_soon: Callable[[], None],
    ) -> None:
        self.switch = TradingSwitch(halted=True, reason="starting: crash recovery first")
        self._persistence = persistence
        self._clock = clock
        self._ask_timeout = ask_timeout
        self._retry_soon = retry_soon
        self._lock = threading.Lock()
        self._pending: TradingStateRecord | None = None
        self.on_change: Callable[[TradingStateRecord], None] | None = None
        """Told each change as it takes effect (the alerts); must not block."""

    @property
    def halted(self) -> bool:
        return self.switch.halted

    @property
    def persisted(self) -> bool:
        """False while a change waits for the store."""
        return self._pending is None

    @property
    def state(self) -> TradingState:
        return self.switch.state

    def engage(self, reason: str, by: str) -> None:
        """Halt: close the gate (waiting for a send in progress), then persist."""
        self._restrict(TradingState.HALTED, reason, by)

    def reduce(self, reason: str, by: str) -> None:
        """REDUCING: let only reducing sends through (waiting for a send in progress), then
        persist."""
        self._restrict(TradingState.REDUCING, reason, by)

    def _restrict(self, state: TradingState, reason: str, by: str) -> None:
        halted = state is TradingState.HALTED
        reducing = state is TradingState.REDUCING
        if not self.switch.set(halted, reason, wait=self._ask_timeout, reducing=reducing):
            log.error(
                "an order_send was still running %s s after the switch to %s",
                self._ask_timeout,
                state.value,
            )
        record = self._record(state, reason, by)
        with self._lock:
            self._pending = record
            try:
                self._write(record, self._ask_timeout)
            except (PersistenceError, pykka.ActorDeadError) as exc:
                log.error("%s not yet persisted (%s); it is retried", state.value, exc)
                self._retry_soon()
            else:
                self._pending = None

    def release(self, reason: str, by: str) -> None:
        """Resume: commit ACTIVE first (raises when the store cannot), then open the gate."""
        record = self._record(TradingState.ACTIVE, reason, by)
        with self._lock:
            self._write(record, self._ask_timeout)  # an older pending change is superseded
            self._pending = None
        self.switch.set(False)
        self._announce(record)

    def restore(self, state: TradingState, reason: str) -> None:
        """The state found at start (nothing to persist: it is the persisted one)."""
        self.switch.set(
            state is TradingState.HALTED, reason, reducing=state is TradingState.REDUCING
        )

    def flush(self, timeout: float) -> None:
        """Write a pending change; raises `PersistenceError` while the store cannot."""
        with self._lock:
            if self._pending is not None:
                self._write(self._pending, timeout)
                self._pending = None

    def _write(self, record: TradingStateRecord, timeout: float) -> None:
        """Commit `record` (caller holds `_lock`); raises when the store cannot."""
        op = WriteOp.trading_state_change(
            record,
            utc_micros(record.changed_at),
            {"state": record.state, "by": record.changed_by, "reason": record.reason},
        )
        write_and_wait(self._persistence(), [op], timeout)

    def _record(self, state: TradingState, reason: str, by: str) -> TradingStateRecord:
        record = TradingStateRecord(
            state=state.value, changed_by=by, reason=reason, changed_at=self._clock.now()
        )
        if state is not TradingState.ACTIVE:
            # Every restriction (HALTED, REDUCING) closes the gate before it builds its
            # record: the change is in effect now, persisted or not. ACTIVE is announced by
            # `release` once committed.
            self._announce(record)
        return record

    def _announce(self, record: TradingStateRecord) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(record)
        except Exception:
            log.exception("trading state observer failed")


__all__ = ["KillSwitch"]
