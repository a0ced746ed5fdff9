"""The Supervisor's own actor: deaths and the watchdog's ticks arrive as told messages.

A dying actor's hook notes its death where callers look (the child's `death`, the
OrderActors' registry) and tells this actor; a caller that meets a dead reference tells it
`Check`; the engine's `Scheduler` tells it `Tick` every `tick` seconds of the engine's
clock (so a `ManualClock` drives it). Each message runs one supervision pass on this
actor's thread: restarts, heartbeats, the watchdog's halts. A pass that fails is logged and
the next message runs another: the Supervisor's actor does not die of a bad pass.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pykka

from actors._scheduler import Scheduler

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ChildDied:
    """An incarnation of a permanent child (Persistence, Broker) died."""

    name: str


@dataclass(frozen=True, slots=True)
class OrderDied:
    """An OrderActor died; `counts`: toward the restart intensity (a crash that is not a
    failure on the execution's own data, nor a write the store refused)."""

    execution_id: str
    counts: bool


@dataclass(frozen=True, slots=True)
class Check:
    """Look now: a caller met a dead reference, or an automatic halt is due."""


@dataclass(frozen=True, slots=True)
class Tick:
    """The periodic pass; handling it schedules the next."""


class SupervisorActor(pykka.ThreadingActor):
    """Runs `watch_once` for every message, after `order_died` for an `OrderDied`."""

    use_daemon_thread = True  # as the watcher thread it replaces: never holds up an exit

    def __init__(
        self,
        *,
        watch_once: Callable[[], None],
        order_died: Callable[[OrderDied], None],
        scheduler: Scheduler,
        tick: float,
        check_queued: threading.Event,
    ) -> None:
        """`check_queued` is set by whoever tells `Check` and cleared here as it is
        handled, so a crowd of callers meeting the same dead reference queues one pass."""
        super().__init__()
        self._watch_once = watch_once
        self._order_died = order_died
        self._scheduler = scheduler
        self._tick = tick
        self._check_queued = check_queued

    def on_start(self) -> None:
        self._scheduler.tell_later(self._tick, self.actor_ref, Tick())

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Tick):
            self._scheduler.tell_later(self._tick, self.actor_ref, Tick())
        elif isinstance(message, Check):
            self._check_queued.clear()
        try:
            if isinstance(message, OrderDied):
                self._order_died(message)
            self._watch_once()
        except Exception:
            log.exception("supervisor pass failed")
        return None


class SupervisorInbox:
    """How the rest of the engine reaches the Supervisor's actor, from any thread."""

    def __init__(self) -> None:
        self._ref: pykka.ActorRef[Any] | None = None
        self._check_queued = threading.Event()

    def start(
        self,
        *,
        watch_once: Callable[[], None],
        order_died: Callable[[OrderDied], None],
        scheduler: Scheduler,
        tick: float,
    ) -> None:
        self._ref = SupervisorActor.start(
            watch_once=watch_once,
            order_died=order_died,
            scheduler=scheduler,
            tick=tick,
            check_queued=self._check_queued,
        )
        self.check_soon()  # for the deaths met while starting

    def tell(self, message: Any) -> bool:
        """False when the actor is not running (yet, or any more)."""
        ref = self._ref
        if ref is None:
            return False
        try:
            ref.tell(message)
        except pykka.ActorDeadError:
            return False
        return True

    def check_soon(self) -> None:
        """A pass soon: one `Check` queued, however many callers ask."""
        if self._check_queued.is_set():
            return
        self._check_queued.set()
        if not self.tell(Check()):
            self._check_queued.clear()

    def stop(self, timeout: float) -> None:
        if self._ref is None:
            return
        try:
            self._ref.stop(block=True, timeout=timeout)
        except pykka.Timeout:
            log.warning("the supervisor's actor did not stop within %s s", timeout)


__all__ = ["Check", "ChildDied", "OrderDied", "SupervisorActor", "SupervisorInbox", "Tick"]
