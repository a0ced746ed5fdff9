"""Threads that outlive the actors they run, so a short-lived actor does not start its own.

Pykka's `ThreadingActor` starts a new thread for every actor. An OrderActor lives for one
execution, so under load most of its thread's cost was starting and ending it (about a
tenth of all CPU at a thousand executions a second). `ReusedThreads.run` hands an actor's
loop to an idle thread when there is one and starts a new thread only when there is not:
the actor has that thread to itself until it stops, then the thread is reused.

This is the thread-per-actor mode (`EE_ORDER_THREADS=0`). OrderActors never block either
way: they ask by told requests and replies (`actors._order_requests`), so the pooled
mode (`actors._dispatcher`) runs many of them on a few threads.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class ReusedThreads:
    """Daemon threads that run one job at a time and then wait for the next one.

    At most `keep_idle` threads wait; one that finds that many already waiting ends, so a
    burst leaves no more than that behind. Thread-safe.
    """

    def __init__(self, name: str, keep_idle: int = 256) -> None:
        if keep_idle < 0:
            raise ValueError("keep_idle must be >= 0")
        self._name = name
        self._keep_idle = keep_idle
        self._lock = threading.Lock()
        self._idle = 0
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._numbers = itertools.count()

    def run(self, job: Callable[[], None]) -> None:
        """Run `job` on a thread of its own until it returns (on a waiting one if any)."""
        with self._lock:
            if self._idle > 0:
                # Exactly one waiting thread takes it: `_idle` counts the threads that
                # will call `get()`, and each job put here is matched by one decrement.
                self._idle -= 1
                self._jobs.put(job)
                return
        thread = threading.Thread(
            target=self._work,
            args=(job,),
            name=f"{self._name}-{next(self._numbers)}",
            daemon=True,
        )
        thread.start()

    @property
    def idle(self) -> int:
        """Threads waiting for a job."""
        with self._lock:
            return self._idle

    def _work(self, job: Callable[[], None]) -> None:
        while True:
            try:
                job()
            except BaseException:
                # An actor's loop handles its own failures; anything that escapes it must
                # not take the thread (and the jobs it would run next) down with it.
                log.exception("a job on a reused %s thread failed", self._name)
            with self._lock:
                if self._idle >= self._keep_idle:
                    return
                self._idle += 1
            job = self._jobs.get()


__all__ = ["ReusedThreads"]
