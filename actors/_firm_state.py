"""Firm-wide trading state across instances: every instance's gate follows a halt, a
reduce-only or a resume made on any of them.

A change is persisted (and, in the same transaction, NOTIFYed: `storage.writer`) by the
instance where it was made. Here a `storage.notify.Listener` hears it and applies the
persisted record to this instance's kill switch (its gate only: the record is already
stored). When the listener cannot vouch that it heard everything persisted up to a second
ago (`current_within`), the gate re-reads the persisted state before a send, so no
instance sends more than a second after a halt returned on another. A read that fails
then refuses the send.
"""

from __future__ import annotations

import logging
import threading

from actors.kill_switch import KillSwitch
from core.accounts import DEFAULT_ACCOUNT
from core.clock import Clock
from core.enums import TradingState
from core.models import TradingStateRecord
from storage.notify import Listener, States
from storage.repository import Repository
from storage.writer import FIRM_SCOPE

log = logging.getLogger(__name__)

CURRENT_SECONDS = 1.0
"""How stale the pushed state may be before a send re-reads it."""


class FirmState:
    """Keeps `switch` on the persisted firm-wide trading state; `start()` after the
    engine booted (startup recovery decides the first state), `stop()` at shutdown."""

    def __init__(
        self,
        database_url: str,
        repository: Repository,
        switch: KillSwitch,
        clock: Clock,
        account: str = DEFAULT_ACCOUNT,
    ) -> None:
        self._account = account
        self._repository = repository
        self._switch = switch
        self._lock = threading.Lock()
        self.listener = Listener(
            database_url, read_state=self._read, on_change=self._changed, clock=clock
        )

    def start(self) -> None:
        self.listener.start()
        self._switch.before_send = self.check

    def stop(self, timeout: float = 10.0) -> None:
        self._switch.before_send = None
        self.listener.stop(timeout)

    def check(self) -> None:
        """Before a send: re-read the persisted state unless the listener is current."""
        if self.listener.current_within(CURRENT_SECONDS):
            return
        self._apply(self._repository.trading_state(self._account))

    def _read(self) -> States:
        record = self._repository.trading_state(self._account)
        return {} if record is None else {FIRM_SCOPE: record.state}

    def _changed(self, states: States) -> None:
        if FIRM_SCOPE not in states:
            return
        try:
            self._apply(self._repository.trading_state(self._account))
        except Exception:
            # The pushed state stands for nothing now: the next send re-reads it.
            log.warning("could not read the firm's trading state", exc_info=True)

    def _apply(self, record: TradingStateRecord | None) -> None:
        if record is None:
            return
        switch = self._switch
        with self._lock:
            if not switch.persisted:
                return  # a change of this instance waits for the store: it is the newer
            state = TradingState(record.state)
            if state is switch.state:
                return
            log.warning("trading state from the database: %s (%s)", state.value, record.reason)
            switch.restore(state, record.reason)


__all__ = ["CURRENT_SECONDS", "FirmState"]
