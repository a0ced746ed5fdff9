"""One timer thread that delivers delayed messages to actors.

Actors never sleep: a back-off, a poll interval or a timeout is a message told to an actor
later. One thread with a heap serves every actor, so a thousand waiting executions cost a
thousand heap entries, not a thousand timers.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pykka


@dataclass(order=True, slots=True)
class _Entry:
    due: float
    seq: int
    target: pykka.ActorRef[Any] | None = field(compare=False)
    message: Any = field(compare=False)
    cancelled: bool = field(compare=False, default=False)


class Handle:
    """Returned by `Scheduler.tell_later`; `cancel()` drops the message if not yet sent."""

    __slots__ = ("_entry",)

    def __init__(self, entry: _Entry) -> None:
        self._entry = entry

    def cancel(self) -> None:
        entry = self._entry
        entry.cancelled = True
        # The entry stays in the heap until it is due (an order's timeout: minutes); what
        # it would have told must not keep the actor, its execution and its records alive
        # that long (they are garbage the collector would walk again and again).
        entry.target = entry.message = None


class Scheduler:
    """Delivers `tell`s after a delay. Dead targets are skipped silently: the actor is gone."""

    def __init__(self, monotonic: Callable[[], float]) -> None:
        self._monotonic = monotonic
        self._heap: list[_Entry] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="ee-scheduler", daemon=True)
        self._thread.start()

    def tell_later(self, delay: float, target: pykka.ActorRef[Any], message: Any) -> Handle:
        entry = _Entry(self._monotonic() + max(delay, 0.0), next(self._seq), target, message)
        with self._cond:
            heapq.heappush(self._heap, entry)
            if self._heap[0] is entry:
                self._cond.notify()
        return Handle(entry)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._heap.clear()
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def pending(self) -> int:
        with self._cond:
            return sum(1 for entry in self._heap if not entry.cancelled)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped:
                    if not self._heap:
                        self._cond.wait()
                        continue
                    wait = self._heap[0].due - self._monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(timeout=wait)
                if self._stopped:
                    return
                entry = heapq.heappop(self._heap)
            # Read once: `cancel` may clear them meanwhile (then nothing is delivered).
            target, message = entry.target, entry.message
            if entry.cancelled:
                continue
            if target is not None:
                with contextlib.suppress(pykka.ActorDeadError):
                    target.tell(message)
