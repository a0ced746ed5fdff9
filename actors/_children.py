"""The Supervisor's permanent children (Persistence, Broker), restarted one-for-one.

Each child is started, asked for heartbeats and, once dead or hung, restarted, OTP-style;
every restart is counted in a sliding `RestartWindow`. Past the restart intensity a child
is left DEAD (`escalated` says why) and the Supervisor halts trading.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pykka

from actors._supervised import ChildHooks, FaultPlan
from actors.messages import Heartbeat
from core.clock import Clock
from core.errors import ActorUnavailableError

log = logging.getLogger(__name__)


class ChildState(StrEnum):
    ALIVE = "alive"
    RESTARTING = "restarting"
    DEAD = "dead"
    """Not restarted any more: the restart intensity was exceeded (trading is halted)."""
    STOPPED = "stopped"


class RestartWindow:
    """OTP restart intensity: more than `intensity` restarts within `period` seconds of
    the injected clock's monotonic time."""

    def __init__(self, intensity: int, period: float, clock: Clock) -> None:
        self.intensity = intensity
        self.period = period
        self._clock = clock
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def record(self) -> int:
        """Count one restart now; returns the restarts inside the window."""
        with self._lock:
            self._times.append(self._clock.monotonic())
            return self._prune()

    def count(self) -> int:
        with self._lock:
            return self._prune()

    def exceeded(self) -> bool:
        return self.count() > self.intensity

    def clear(self) -> None:
        with self._lock:
            self._times.clear()

    def _prune(self) -> int:
        now = self._clock.monotonic()
        while self._times and now - self._times[0] > self.period:
            self._times.popleft()
        return len(self._times)


@dataclass(slots=True)
class Child:
    """One permanent child and its current incarnation."""

    name: str
    spawn: Callable[[ChildHooks], pykka.ActorRef[Any]]
    ref: pykka.ActorRef[Any] | None = None
    hooks: ChildHooks | None = None
    proxy: Any = None
    state: ChildState = ChildState.STOPPED
    restarts: int = 0
    last_failure: str = ""
    death: str | None = None
    heartbeat: pykka.Future[Any] | None = None
    heartbeat_sent: float = 0.0
    next_heartbeat: float = 0.0

    def alive(self) -> bool:
        return self.state is ChildState.ALIVE and self.ref is not None and self.ref.is_alive()

    def current_proxy(self) -> Any:
        """The proxy of the current incarnation (a dead one raises `ActorDeadError`)."""
        ref = self.ref
        if ref is None:
            raise pykka.ActorDeadError(f"the {self.name} actor is not running")
        proxy = self.proxy
        if proxy is None or proxy.actor_ref is not ref:
            proxy = ref.proxy()
            self.proxy = proxy
        return proxy


class Children:
    """Starts the children in order, watches them and restarts them one-for-one."""

    def __init__(
        self,
        specs: list[tuple[str, Callable[[ChildHooks], pykka.ActorRef[Any]]]],
        *,
        faults: FaultPlan,
        window: RestartWindow,
        clock: Clock,
        heartbeat_interval: float,
        heartbeat_timeout: float,
        on_death: Callable[[str], None],
        on_restarted: Callable[[Child, str], None],
    ) -> None:
        self._children = [Child(name, spawn) for name, spawn in specs]
        self._faults = faults
        self._window = window
        self._clock = clock
        self._interval = heartbeat_interval
        self._timeout = heartbeat_timeout
        self._on_death = on_death
        self._on_restarted = on_restarted
        self.lock = threading.RLock()
        """Held while a child is (re)started, so two threads never start the same one."""
        self.escalated = ""
        self.total_restarts = 0

    def __iter__(self) -> Iterator[Child]:
        return iter(self._children)

    def get(self, name: str) -> Child:
        return next(child for child in self._children if child.name == name)

    def alive(self) -> bool:
        return all(child.alive() for child in self._children)

    # --- starting ---------------------------------------------------------------------------

    def start_all(self) -> None:
        """Start every child in order; each must answer a heartbeat before the next starts."""
        with self.lock:
            for child in self._children:
                self._start(child)

    def revive(self) -> int:
        """Start again every child that is dead or not running; clears the restart window.
        Returns how many were started."""
        started = 0
        with self.lock:
            self._window.clear()
            self.escalated = ""
            for child in self._children:
                if not child.alive():
                    self._start(child)
                    child.restarts += 1
                    self.total_restarts += 1
                    started += 1
        return started

    def _start(self, child: Child) -> None:
        while True:
            self._spawn(child)
            ref = child.ref
            try:
                if ref is not None and ref.ask(Heartbeat(), timeout=self._timeout):
                    child.death = None
                    return
            except (pykka.ActorDeadError, pykka.Timeout) as exc:
                child.death = child.death or f"did not start: {type(exc).__name__}"
            if not self._count(child, child.death or "did not start"):
                raise ActorUnavailableError(
                    f"the {child.name} actor could not be started: {child.last_failure}",
                    actor=child.name,
                )

    def _spawn(self, child: Child) -> None:
        hooks = ChildHooks(child.name, lambda how, exc: self._died(hooks, how, exc), self._faults)
        child.hooks = hooks
        child.death = None
        child.heartbeat = None
        child.proxy = None
        child.next_heartbeat = self._clock.monotonic() + self._interval
        child.ref = child.spawn(hooks)
        child.state = ChildState.ALIVE

    def _died(self, hooks: ChildHooks, how: str, exc: BaseException | None) -> None:
        """From the dying actor's thread."""
        for child in self._children:
            if child.hooks is hooks:
                child.death = f"{how}: {type(exc).__name__}: {exc}"
        self._on_death(hooks.name)

    def _count(self, child: Child, why: str) -> bool:
        """Record one restart of `child`; False (and the child DEAD) past the intensity."""
        count = self._window.record()
        child.last_failure = why
        if count <= self._window.intensity:
            return True
        child.state = ChildState.DEAD
        self.escalated = (
            f"restart intensity exceeded: {count} restarts within {self._window.period:g} s "
            f"(last: {child.name}: {why})"
        )
        return False

    # --- watching ---------------------------------------------------------------------------

    def check_all(self) -> None:
        """One pass: restart the dead, send or check each heartbeat, replace the hung."""
        with self.lock:
            for child in self._children:
                if child.state in (ChildState.ALIVE, ChildState.RESTARTING):
                    self._check(child)

    def _check(self, child: Child) -> None:
        ref = child.ref
        if child.death is not None or ref is None or not ref.is_alive():
            self._restart(child, child.death or "found dead (its reference is no longer alive)")
            return
        now = self._clock.monotonic()
        if child.heartbeat is None:
            if now >= child.next_heartbeat:
                child.heartbeat = ref.ask(Heartbeat(), block=False)
                child.heartbeat_sent = now
            return
        try:
            child.heartbeat.get(timeout=0)
        except pykka.Timeout:
            if now - child.heartbeat_sent > self._timeout:
                self._restart(child, f"hung: no heartbeat answer within {self._timeout:g} s")
            return
        except pykka.ActorDeadError:
            self._restart(child, "found dead answering a heartbeat")
            return
        child.heartbeat = None
        child.next_heartbeat = now + self._interval

    def _restart(self, child: Child, why: str) -> None:
        log.warning("the %s actor died (%s)", child.name, why)
        old, hooks = child.ref, child.hooks
        if old is not None and old.is_alive() and hooks is not None:
            hooks.fence(why)  # hung: it may wake up later, but never acts again
            old.stop(block=False)
        if not self._count(child, why):
            log.error("%s; not restarting %s", self.escalated, child.name)
            return
        child.state = ChildState.RESTARTING
        try:
            self._spawn(child)
        except Exception as exc:
            child.death = f"restart failed: {type(exc).__name__}: {exc}"
            return
        child.restarts += 1
        self.total_restarts += 1
        self._on_restarted(child, why)

    # --- stopping ---------------------------------------------------------------------------

    def stop_all(self, timeout: float) -> None:
        """Stop the children in reverse order of start."""
        with self.lock:
            for child in reversed(self._children):
                child.state = ChildState.STOPPED
                if child.ref is None:
                    continue
                try:
                    child.ref.stop(block=True, timeout=timeout)
                except pykka.Timeout:
                    log.warning("the %s actor did not stop within %s s", child.name, timeout)

    def describe(self) -> dict[str, Any]:
        return {
            child.name: {
                "state": (
                    ChildState.RESTARTING.value
                    if child.state is ChildState.ALIVE and not child.alive()
                    else child.state.value
                ),
                "restarts": child.restarts,
                "last_failure": child.last_failure or None,
            }
            for child in self._children
        }


__all__ = ["Child", "ChildState", "Children", "RestartWindow"]
