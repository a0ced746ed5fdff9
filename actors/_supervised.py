"""Supervised variants of the actors, so that the Supervisor sees every way one can die.

Each incarnation of a supervised actor gets its own `ChildHooks`: it reports a failed
`on_start` (which Pykka logs without calling `on_failure`) and a failed `tell` (which
Pykka reports through `on_failure`), answers the Supervisor's `Heartbeat` from its inbox
(so a hung actor is one whose heartbeat times out), and takes the faults a drill injects.
A hung BrokerActor that the Supervisor replaced is *fenced*: should it wake up, it makes
no further terminal call (two threads must never use the one MT5 connection at once).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

import pykka
from sqlalchemy import Connection, Engine

from actors._failures import FencedError, InjectedCrash, is_own_failure
from actors._terminal_identity import IdentityGuard
from actors._terminal_link import TerminalLink
from actors._terminal_watch import TerminalWatch
from actors.broker import BrokerActor, BrokerConfig
from actors.messages import Heartbeat, InjectFault, Write
from actors.metrics import EngineMetrics
from actors.order import OrderActor
from actors.persistence import PersistenceActor
from core.errors import PersistenceUnavailableError, TicketConflictError
from core.models import JournalEvent
from storage.journal import AuditKey
from storage.ops import WriteOp
from storage.tickets import TicketClaims
from storage.writer import Fence, JournalWriter
from terminals.base import Terminal

DeathReport = Callable[[str, BaseException | None], None]
"""Called from the dying actor's thread with how it died and the exception."""


class FaultPlan:
    """Faults armed for the next incarnations of the supervised actors (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._start_failures: dict[str, int] = {}
        self._crash_after_send = 0

    def fail_starts(self, child: str, times: int) -> None:
        """The next `times` starts of `child` ("broker", "persistence") raise in `on_start`."""
        with self._lock:
            self._start_failures[child] = self._start_failures.get(child, 0) + times

    def take_start_failure(self, child: str) -> bool:
        with self._lock:
            left = self._start_failures.get(child, 0)
            if left <= 0:
                return False
            self._start_failures[child] = left - 1
            return True

    def crash_after_sends(self, times: int = 1) -> None:
        """The BrokerActor dies right after its next `times` order_send calls returned."""
        with self._lock:
            self._crash_after_send += times

    def take_crash_after_send(self) -> bool:
        with self._lock:
            if self._crash_after_send <= 0:
                return False
            self._crash_after_send -= 1
            return True

    def clear(self) -> None:
        with self._lock:
            self._start_failures.clear()
            self._crash_after_send = 0


class ChildHooks:
    """What one incarnation of a supervised actor shares with its Supervisor."""

    def __init__(self, name: str, report: DeathReport, faults: FaultPlan) -> None:
        self.name = name
        self.faults = faults
        self.fenced = threading.Event()
        self._report = report
        self._reported = False
        self._on_fence: list[Callable[[str], None]] = []

    def on_fence(self, callback: Callable[[str], None]) -> None:
        """`callback(why)` runs on the Supervisor's thread when this incarnation is fenced."""
        self._on_fence.append(callback)

    def fence(self, why: str) -> None:
        """Replaced while hung: it may wake up later, but never acts again."""
        self.fenced.set()
        for callback in self._on_fence:
            callback(why)

    def died(self, how: str, exc: BaseException | None) -> None:
        if not self._reported:
            self._reported = True
            self._report(how, exc)


class _Watched(pykka.ThreadingActor):
    """Mixin (first base) for the supervised actors."""

    _hooks: ChildHooks

    def on_start(self) -> None:
        try:
            if self._hooks.faults.take_start_failure(self._hooks.name):
                raise InjectedCrash(f"{self._hooks.name} failed to start (injected)")
            super().on_start()
        except Exception as exc:
            self._hooks.died("on_start", exc)
            raise

    def on_failure(self, *exc_info: Any) -> None:
        try:
            super().on_failure(*exc_info)
        finally:
            self._hooks.died("on_failure", exc_info[1] if len(exc_info) > 1 else None)

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Heartbeat):
            return True
        if isinstance(message, InjectFault):
            self._take_fault(message)
            return None
        return super().on_receive(message)

    def _take_fault(self, fault: InjectFault) -> None:
        if fault.kind == "crash":
            raise InjectedCrash(f"crash injected into {self._hooks.name}")
        if fault.kind == "hang":
            release = fault.release if fault.release is not None else threading.Event()
            release.wait(fault.hang_seconds)
            return
        raise ValueError(f"unknown fault kind {fault.kind!r}")


class SupervisedBroker(_Watched, BrokerActor):
    def __init__(self, hooks: ChildHooks, *args: Any, **kwargs: Any) -> None:
        self._hooks = hooks
        super().__init__(*args, **kwargs)
        hooks.on_fence(self._fenced)

    def _fenced(self, why: str) -> None:
        # On the Supervisor's thread, while this actor's may still be stuck in a terminal
        # call: the sends behind that call are answered now, not when (if) it returns, and
        # NOT_SENT, since none of them reached order_send.
        self.close_line(
            f"not sent: the broker was replaced ({why}) before this order's turn; "
            f"{self._watch.stall_text()}"
        )

    def _open_link(
        self,
        terminal: Terminal,
        config: BrokerConfig,
        watch: TerminalWatch,
        metrics: EngineMetrics | None,
        identity: IdentityGuard | None,
    ) -> TerminalLink:
        return _SupervisedLink(
            self._hooks, self.actor_ref, terminal, config, watch, metrics, identity
        )


class _SupervisedLink(TerminalLink):
    """A supervised broker's link: fenced once the Supervisor replaced its broker, and a
    drill may make the broker die right after an `order_send` returned."""

    def __init__(
        self,
        hooks: ChildHooks,
        actor: pykka.ActorRef[Any],
        terminal: Terminal,
        config: BrokerConfig,
        watch: TerminalWatch,
        metrics: EngineMetrics | None,
        identity: IdentityGuard | None,
    ) -> None:
        super().__init__(terminal, config, watch, metrics, identity, fence=hooks.fenced)
        self._hooks = hooks
        self._actor = actor

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        result = super().call(name, *args, **kwargs)
        if name == "order_send" and self._hooks.faults.take_crash_after_send():
            # The send happened; the actor dies before its caller learns the result.
            self._actor.tell(InjectFault("crash"))
            raise InjectedCrash("the broker died while order_send was in flight (injected)")
        return result


class SupervisedPersistence(_Watched, PersistenceActor):
    def __init__(self, hooks: ChildHooks, *args: Any, **kwargs: Any) -> None:
        self._hooks = hooks
        super().__init__(*args, **kwargs)

    def on_failure(self, *exc_info: Any) -> None:
        try:
            super().on_failure(*exc_info)
        finally:
            self._fail_inbox()

    def _fail_inbox(self) -> None:
        """Pykka drops the tells left in a dead actor's inbox without a word: answer every
        waiting write at once (nothing was committed) instead of letting it time out."""
        for write in self._take_from_inbox(Write):
            error = PersistenceUnavailableError("the persistence actor died before this write")
            write.reply.set_exception(exc_info=(type(error), error, None))

    def _write(self, ops: Sequence[WriteOp]) -> list[Any]:
        if self._hooks.fenced.is_set():
            # A replaced writer must not race the new one for the journal's tail.
            raise PersistenceUnavailableError(f"{self._hooks.name} was replaced by a restart")
        return super()._write(ops)


class SupervisedOrder(_Watched, OrderActor):
    def __init__(self, hooks: ChildHooks, *args: Any, **kwargs: Any) -> None:
        self._hooks = hooks
        super().__init__(*args, **kwargs)

    def on_receive(self, message: Any) -> Any:
        try:
            return super().on_receive(message)
        except Exception as exc:
            # Its own data failed it: end the execution (REJECTED if nothing can have been
            # sent) rather than die, which the Supervisor would count as a restart.
            if is_own_failure(exc) and self.settle_own_failure(exc):
                return None
            raise


class ObservedWriter(JournalWriter):
    """A `JournalWriter` that tells the Supervisor whether the database takes writes, and
    never stores one order ticket on two executions (`storage.tickets`).

    `observe` runs on the PersistenceActor's thread and must not block (it must never
    write through that actor: it would wait on itself). `on_head` is told the journal's
    head (sequence, hash) it starts from and after every commit (the audit checkpoints).
    """

    def __init__(
        self,
        engine: Engine,
        observe: Callable[[BaseException | None], None],
        *,
        audit_key: AuditKey | None = None,
        on_head: Callable[[int, str], None] | None = None,
        fence: Fence | None = None,
        shared: bool = False,
    ) -> None:
        super().__init__(engine, audit_key=audit_key, fence=fence, shared=shared)
        self._observe = observe
        self._tickets = TicketClaims()
        self._claims: dict[tuple[str, int], str] = {}
        self._on_head = on_head
        if on_head is not None:
            on_head(self.last_sequence, self.last_hash)

    def _check(self, connection: Connection, ops: Sequence[WriteOp]) -> None:
        # In the write's transaction: its unread claims cost one query, not a connection.
        self._claims = self._tickets.check(ops, connection)

    def write_batch(self, ops: Sequence[WriteOp]) -> list[JournalEvent]:
        self._claims = {}
        try:
            events = super().write_batch(ops)
        except (PersistenceUnavailableError, TicketConflictError) as exc:
            self._observe(exc)
            raise
        self._tickets.written(self._claims)
        self._observe(None)
        if self._on_head is not None:
            self._on_head(self.last_sequence, self.last_hash)
        return events


__all__ = [
    "ChildHooks",
    "FaultPlan",
    "FencedError",
    "InjectedCrash",
    "ObservedWriter",
    "SupervisedBroker",
    "SupervisedOrder",
    "SupervisedPersistence",
]
