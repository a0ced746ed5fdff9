"""The engine's one trading state: ACTIVE, REDUCING or HALTED, the gate of `order_send`.

`TradingSwitch` is the gate in memory: OrderActors read it between stages, and the
BrokerActor sends only inside `sending()`. `KillSwitch` is that same object as the
Supervisor holds it: the gate plus who, when and why, persisted and journaled, and the
rules of a change (`halt`, `reduce_only`, `resume`).

Halting must work even when the store does not: the gate is closed first, then the change
is persisted and journaled through the PersistenceActor; a change the store cannot take
now stays pending (the newest wins) and is written as soon as it can be. Switching to
REDUCING narrows what may be sent, so it is a restriction like the halt: the gate first,
then the record. Resuming is the other way round: nothing trades before ACTIVE is
committed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import pykka

from actors.persistence import write_and_wait
from core.accounts import DEFAULT_ACCOUNT
from core.clock import Clock, utc_micros
from core.enums import TradingState
from core.errors import PersistenceError, TradingHaltedError
from core.models import TradingStateRecord
from storage.ops import WriteOp

log = logging.getLogger(__name__)

T = TypeVar("T")


class TradingSwitch:
    """The engine-wide kill switch: read often, changed rarely, and the gate of `order_send`.

    The Supervisor is the only writer. OrderActors read `halted` between stages; the
    BrokerActor sends only inside `sending()`, which checks the flag under the gate lock.
    `set(True)` writes the flag first, then takes the same lock, so when it returns every
    `order_send` has either finished or will see the halt: a send already queued in the
    broker's inbox cannot overtake a halt.
    """

    def __init__(self, halted: bool = False, reason: str = "") -> None:
        self._lock = threading.Lock()
        self._gate = threading.Lock()
        self._halted = halted
        self._reducing = False
        self._reason = reason
        self._fenced: str | None = None
        self.before_send: Callable[[], None] | None = None
        """Re-reads the persisted trading state before a send when pushes may be missed."""
        self.lease_check: Callable[[], None] | None = None
        """Hot standby: raises unless this instance's lease is fresh enough to send."""
        self.refusal: str | None = None
        """Why the last send the gate refused was refused by a check (read under the gate)."""
        """Called before the gate is taken for a send (hot standby: re-read a trading state
        a missed notification may have changed); whatever it raises refuses the send."""

    @property
    def halted(self) -> bool:
        return self._halted

    @property
    def reducing(self) -> bool:
        """REDUCING: only sends that reduce positions may go out (`sending(reduces=True)`)."""
        return self._reducing and not self._halted

    @property
    def state(self) -> TradingState:
        if self._halted:
            return TradingState.HALTED
        return TradingState.REDUCING if self._reducing else TradingState.ACTIVE

    @property
    def reason(self) -> str:
        return self._fenced if self._fenced is not None else self._reason

    @property
    def fenced(self) -> str | None:
        """Why this instance may not send now although trading is not halted (hot standby:
        another instance owns the account), or None."""
        return self._fenced

    def fence(self, reason: str | None, wait: float = 30.0) -> bool:
        """Close (`reason`) or open (None) the gate for a reason outside the trading state,
        which stays as it is and is not persisted. Closing waits up to `wait` seconds for an
        `order_send` in progress, as a halt does; False when one was still running."""
        self._fenced = reason
        if reason is None:
            return True
        if self._gate.acquire(timeout=wait):
            self._gate.release()
            return True
        return False

    def set(
        self, halted: bool, reason: str = "", wait: float = 30.0, *, reducing: bool = False
    ) -> bool:
        """Change the state (`reducing` only counts when not halted). A halt, or a switch to
        REDUCING, then waits up to `wait` seconds for an `order_send` in progress to return;
        False when one was still running (it started before the change)."""
        with self._lock:
            self._halted = halted
            self._reducing = reducing and not halted
            self._reason = reason
        if not (halted or reducing):
            return True
        if self._gate.acquire(timeout=wait):
            self._gate.release()
            return True
        return False

    @contextmanager
    def sending(self, *, reduces: bool = False) -> Iterator[bool]:
        """Hold the gate around one `order_send`; yields False (send nothing) when halted,
        or when REDUCING and this send does not only reduce a position (`reduces`)."""
        refusal: str | None = None
        lease_check = self.lease_check
        if lease_check is not None:
            try:
                lease_check()
            except Exception as exc:
                log.warning("not sent: %s", exc)
                refusal = f"not sent: {exc}"
        check = self.before_send
        if check is not None and refusal is None:
            try:
                check()
            except Exception as exc:
                log.warning("the trading state could not be checked before a send", exc_info=True)
                refusal = f"not sent: the trading state could not be checked ({exc})"
        with self._gate:
            self.refusal = refusal
            yield (
                refusal is None
                and self._fenced is None
                and not self._halted
                and (reduces or not self._reducing)
            )


class KillSwitch(TradingSwitch):
    """The engine's one trading state: the gate (`TradingSwitch`) plus who, when and why,
    persisted and journaled, and the rules for changing it. Starts HALTED until recovery
    says otherwise.

    A halt or a switch to REDUCING closes the gate first and persists afterwards; a change
    the store cannot take now stays pending (the newest wins) and `flush` writes it later.
    Resuming is the other way round: ACTIVE is committed before the gate opens.
    """

    def __init__(
        self,
        persistence: Callable[[], pykka.ActorRef[Any]],
        clock: Clock,
        ask_timeout: float,
        retry_soon: Callable[[], None],
        account: str = DEFAULT_ACCOUNT,
    ) -> None:
        super().__init__(halted=True, reason="starting: crash recovery first")
        self.account = account
        """Whose state this is: each account has its own switch (and row)."""
        self._state_lock = threading.RLock()
        """One change of state at a time (a resume's checks included)."""
        self._persistence = persistence
        self._clock = clock
        self._ask_timeout = ask_timeout
        self._retry_soon = retry_soon
        self._pending_lock = threading.Lock()
        self._pending: TradingStateRecord | None = None
        self.on_change: Callable[[TradingStateRecord], None] | None = None
        """Told each change as it takes effect (the alerts); must not block."""

    @property
    def persisted(self) -> bool:
        """False while a change waits for the store."""
        return self._pending is None

    # --- the rules of a change ---------------------------------------------------------

    def halt(self, reason: str, by: str, *, automatic: bool = False) -> bool:
        """HALTED: when this returns no `order_send` starts (the gate is closed, a send in
        progress waited for). An automatic halt (`automatic`) does nothing when trading is
        HALTED already; returns whether the state changed."""
        with self._state_lock:
            if automatic and self.halted:
                return False
            log.warning("halting trading (by %s): %s", by, reason)
            self._restrict(TradingState.HALTED, reason, by)
            return True

    def halt_flatten_begins(self, reason: str, by: str) -> None:
        """The first step of a halt that flattens: REDUCING (no opening send starts after
        this returns; the closes of the flatten pass the gate); `halt` follows."""
        with self._state_lock:
            log.warning("halting trading (by %s), flattening first: %s", by, reason)
            self._restrict(TradingState.REDUCING, f"halting, flattening first: {reason}", by)

    def reduce_only(self, reason: str, by: str) -> None:
        """REDUCING: when this returns no opening `order_send` is in progress. Refused from
        HALTED (`TradingHaltedError`): leaving a halt, even for REDUCING, is the admin's
        resume."""
        with self._state_lock:
            if self.halted:
                raise TradingHaltedError(
                    "trading is HALTED: only an admin's resume leaves a halt", reason=self.reason
                )
            log.warning("trading reduce-only (by %s): %s", by, reason)
            self._restrict(TradingState.REDUCING, reason, by)

    def resume(self, reason: str, by: str, ready: Callable[[], T]) -> T:
        """ACTIVE, from HALTED or REDUCING, once `ready()` (the checks a resume needs) has
        returned; whatever it raises refuses the resume and the state stays as it was. No
        other change of state runs meanwhile."""
        with self._state_lock:
            result = ready()
            self._release(reason, by)
            log.warning("trading resumed (by %s): %s", by, reason)
            return result

    # --- the steps ------------------------------------------------------------------------

    def _restrict(self, state: TradingState, reason: str, by: str) -> None:
        """HALTED or REDUCING: narrow the gate (waiting for a send in progress), then
        persist."""
        halted = state is TradingState.HALTED
        reducing = state is TradingState.REDUCING
        if not self.set(halted, reason, wait=self._ask_timeout, reducing=reducing):
            log.error(
                "an order_send was still running %s s after the switch to %s",
                self._ask_timeout,
                state.value,
            )
        record = self._record(state, reason, by)
        with self._pending_lock:
            self._pending = record
            try:
                self._write(record, self._ask_timeout)
            except (PersistenceError, pykka.ActorDeadError) as exc:
                log.error("%s not yet persisted (%s); it is retried", state.value, exc)
                self._retry_soon()
            else:
                self._pending = None

    def _release(self, reason: str, by: str) -> None:
        """Resume: commit ACTIVE first (raises when the store cannot), then open the gate."""
        record = self._record(TradingState.ACTIVE, reason, by)
        with self._pending_lock:
            self._write(record, self._ask_timeout)  # an older pending change is superseded
            self._pending = None
        self.set(False)
        self._announce(record)

    def boot(self, persisted: TradingStateRecord | None) -> None:
        """At start, once recovery allows trading: the persisted state (an engine that was
        HALTED or REDUCING boots so, with its reason), ACTIVE when none was persisted."""
        restricted = (TradingState.HALTED.value, TradingState.REDUCING.value)
        if persisted is not None and persisted.state in restricted:
            self.restore(TradingState(persisted.state), persisted.reason)
        else:
            self.restore(TradingState.ACTIVE, "")

    def restore(self, state: TradingState, reason: str) -> None:
        """The state found at start (nothing to persist: it is the persisted one)."""
        self.set(state is TradingState.HALTED, reason, reducing=state is TradingState.REDUCING)

    def flush(self, timeout: float) -> None:
        """Write a pending change; raises `PersistenceError` while the store cannot."""
        with self._pending_lock:
            if self._pending is not None:
                self._write(self._pending, timeout)
                self._pending = None

    def _write(self, record: TradingStateRecord, timeout: float) -> None:
        """Commit `record` (caller holds `_pending_lock`); raises when the store cannot."""
        payload = {"state": record.state, "by": record.changed_by, "reason": record.reason}
        if record.account != DEFAULT_ACCOUNT:
            payload["account"] = record.account  # the default's journal is as it always was
        op = WriteOp.trading_state_change(record, utc_micros(record.changed_at), payload)
        write_and_wait(self._persistence(), [op], timeout)

    def _record(self, state: TradingState, reason: str, by: str) -> TradingStateRecord:
        record = TradingStateRecord(
            state=state.value,
            changed_by=by,
            reason=reason,
            changed_at=self._clock.now(),
            account=self.account,
        )
        if state is not TradingState.ACTIVE:
            # Every restriction (HALTED, REDUCING) closes the gate before it builds its
            # record: the change is in effect now, persisted or not. ACTIVE is announced by
            # `_release` once committed.
            self._announce(record)
        return record

    def _announce(self, record: TradingStateRecord) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change(record)
        except Exception:
            log.exception("trading state observer failed")


__all__ = ["KillSwitch", "TradingSwitch"]
