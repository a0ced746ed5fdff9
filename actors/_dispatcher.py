"""Many Pykka actors on a few threads: a shared dispatcher drains each actor's inbox.

`pykka.ThreadingActor` gives every actor a thread of its own that sleeps in `inbox.get()`
between messages, so a thousand live actors cost a thousand threads even when all of them
are waiting for a reply. A `Dispatcher` runs them instead on a small, bounded pool, the
way Akka's dispatchers and Erlang's schedulers do: putting a message in an idle actor's
inbox schedules the actor; a pool thread then handles up to `throughput` of its messages
(so one busy actor cannot starve the others) and schedules it again if more are left. An
actor is scheduled at most once at a time, so it never runs on two threads at once and
handles its messages one by one, in the order they were put: the actor guarantee.

A `PooledActor` keeps Pykka's whole API: `start()` registers it in the `ActorRegistry` and
returns its `ActorRef`; `tell`, `ask`, proxies, `stop()` and the `on_start` / `on_stop` /
`on_failure` hooks behave as for a `ThreadingActor`. `_PooledCell.run` replays Pykka
4.5's `Actor._actor_loop` (`_actor_loop_setup`, `_actor_loop_running`,
`_actor_loop_teardown`) message by message, with three differences, each where Pykka's
thread would be lost or stuck:

- a `BaseException` from a handler stops this actor and then every actor without waiting
  (`ActorRegistry.stop_all(block=False)`): a pool thread that waited could wait for an
  actor queued behind it on the same pool;
- anything that escapes the loop (a `BaseException` from `on_start`, a reply set twice)
  stops the actor (logged, unregistered, its waiting asks answered `ActorDeadError`)
  where Pykka's thread would die and leave it registered and deaf;
- an ask that lands after the actor stopped (it passed `is_alive()` just before) is
  answered `ActorDeadError`, where Pykka would leave it unanswered.

The pool's threads must never block for long: a handler that waits on a future holds a
pool thread for the whole wait, and on a pool of N threads, N such handlers waiting on
actors queued behind them deadlock. Actors on a pool talk by messages only.
"""

from __future__ import annotations

import itertools
import logging
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any, ClassVar

import pykka
from pykka import messages as pykka_messages

log = logging.getLogger(__name__)

DEFAULT_THROUGHPUT = 10
"""Messages one actor handles before its pool thread moves on to the next actor (Akka's
default is 5; a few more cost less rescheduling and are still fair)."""


class PooledInbox:
    """An actor's inbox that schedules the actor on its dispatcher when a message arrives.

    Until the actor is attached to a dispatcher it is a plain C `SimpleQueue` (`get`
    blocks), so a `PooledActor` may also run Pykka's own loop on a thread of its own.
    """

    __slots__ = ("_cell", "_queue", "empty", "get", "get_nowait")

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._cell: _PooledCell | None = None
        # The C methods themselves: no Python frame per message on the hot path.
        self.get: Callable[..., Any] = self._queue.get
        self.get_nowait: Callable[[], Any] = self._queue.get_nowait
        self.empty: Callable[[], bool] = self._queue.empty

    def put(self, envelope: Any, block: bool = True, timeout: float | None = None) -> None:
        self._queue.put(envelope)
        cell = self._cell
        if cell is not None:
            cell.wake()


class Dispatcher:
    """A bounded pool of daemon threads, `{name}-pool-{i}`, running `PooledActor`s.

    `threads` is the most threads it ever runs, however many actors it has. `close()`
    ends them once the work queued before it is done; an actor woken after that runs on a
    short-lived thread of its own, so that none is stranded. Thread-safe.
    """

    def __init__(self, name: str, threads: int, *, throughput: int = DEFAULT_THROUGHPUT) -> None:
        if threads < 1:
            raise ValueError("a dispatcher needs at least one thread")
        if throughput < 1:
            raise ValueError("throughput must be >= 1")
        self.name = name
        self.size = threads
        self.throughput = throughput
        self._ready: queue.SimpleQueue[_PooledCell | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._late = itertools.count()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-pool-{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def attach(self, actor: pykka.Actor) -> None:
        """Run `actor` on this pool from now on (call it from `_start_actor_loop`)."""
        inbox = actor.actor_inbox
        if not isinstance(inbox, PooledInbox):
            raise TypeError(f"{type(actor).__name__} has no PooledInbox: make it a PooledActor")
        if inbox._cell is not None:
            raise RuntimeError(f"{actor} is already attached to a dispatcher")
        cell = _PooledCell(actor, inbox, self)
        inbox._cell = cell
        cell.start()

    def close(self, timeout: float = 5.0) -> None:
        """End the pool's threads once the actors scheduled before this call have run."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for _ in self._threads:
                self._ready.put(None)
        current = threading.current_thread()
        # An equal share of `timeout` each bounds the whole wait without reading a clock
        # (actors read the time only through the injected one).
        share = timeout / max(len(self._threads), 1)
        for thread in self._threads:
            if thread is not current:
                thread.join(share)

    @property
    def closed(self) -> bool:
        return self._closed

    def _schedule(self, cell: _PooledCell) -> None:
        # Under the lock so that no cell lands behind the threads' last `None`.
        with self._lock:
            if not self._closed:
                self._ready.put(cell)
                return
        threading.Thread(
            target=cell.run_to_idle,
            name=f"{self.name}-late-{next(self._late)}",
            daemon=True,
        ).start()

    def _work(self) -> None:
        ready = self._ready
        throughput = self.throughput
        while True:
            cell = ready.get()
            if cell is None:
                return
            if cell.run(throughput):
                self._schedule(cell)  # behind the actors already waiting: fairness


class _PooledCell:
    """One actor's place on a dispatcher: whether it is scheduled, and its loop, in slices."""

    __slots__ = ("_actor", "_dispatcher", "_inbox", "_lock", "_scheduled", "_started")

    def __init__(self, actor: pykka.Actor, inbox: PooledInbox, dispatcher: Dispatcher) -> None:
        self._actor = actor
        self._inbox = inbox
        self._dispatcher = dispatcher
        self._lock = threading.Lock()
        self._scheduled = False
        self._started = False

    def start(self) -> None:
        """Schedule the first slice: `on_start`, then what was put before the attach."""
        with self._lock:
            self._scheduled = True
        self._dispatcher._schedule(self)

    def wake(self) -> None:
        """A message was put: schedule the actor unless it is scheduled (or running)."""
        with self._lock:
            if self._scheduled:
                return
            self._scheduled = True
        self._dispatcher._schedule(self)

    def run_to_idle(self) -> None:
        """Run slice after slice until the actor is idle: a message put after the pool
        closed is run this way, on a short-lived thread of its own."""
        throughput = self._dispatcher.throughput
        busy = True
        while busy:
            busy = self.run(throughput)

    def run(self, throughput: int) -> bool:
        """Handle up to `throughput` messages; True if the actor must run again (it stays
        scheduled), False once it is idle (the next `put` schedules it)."""
        actor = self._actor
        try:
            if not self._started:
                self._started = True
                _setup(actor)
            get = self._inbox.get_nowait
            stopped = actor.actor_stopped
            for _ in range(throughput):
                if stopped.is_set():
                    break
                try:
                    envelope = get()
                except queue.Empty:
                    break
                _handle(actor, envelope)
            if stopped.is_set():
                _teardown(actor, self._inbox)
        except BaseException:
            log.exception("%s failed outside its handlers; stopping it", actor)
            _fail(actor, self._inbox)
        with self._lock:
            # Checked under the lock: a `put` that the check misses is still in `wake`,
            # waiting for this lock, and will find the actor unscheduled and schedule it.
            if self._inbox.empty():
                self._scheduled = False
                return False
            return True


def _setup(actor: pykka.Actor) -> None:
    # Pykka 4.5 `Actor._actor_loop_setup`.
    try:
        actor.on_start()
    except Exception:
        actor._handle_failure(*sys.exc_info())


def _handle(actor: pykka.Actor, envelope: Any) -> None:
    # Pykka 4.5 `Actor._actor_loop_running`, one iteration.
    try:
        response = actor._handle_receive(envelope.message)
        if envelope.reply_to is not None:
            envelope.reply_to.set(response)
    except Exception:
        if envelope.reply_to is not None:
            log.info("Exception returned from %s to caller:", actor, exc_info=sys.exc_info())
            envelope.reply_to.set_exception()
        else:
            actor._handle_failure(*sys.exc_info())
            try:
                actor.on_failure(*sys.exc_info())
            except Exception:
                actor._handle_failure(*sys.exc_info())
    except BaseException:
        log.debug("%r in %s. Stopping all actors.", sys.exc_info()[1], actor)
        actor._stop()
        # Not waiting (Pykka waits): this thread may be the one the others need.
        pykka.ActorRegistry.stop_all(block=False)


def _teardown(actor: pykka.Actor, inbox: PooledInbox) -> None:
    # Pykka 4.5 `Actor._actor_loop_teardown`: asks left are answered, tells dropped.
    while True:
        try:
            envelope = inbox.get_nowait()
        except queue.Empty:
            return
        if envelope.reply_to is None:
            continue
        if isinstance(envelope.message, pykka_messages._ActorStop):
            envelope.reply_to.set(None)
        else:
            error = pykka.ActorDeadError(f"{actor.actor_ref} stopped before handling the message")
            envelope.reply_to.set_exception(exc_info=(pykka.ActorDeadError, error, None))


def _fail(actor: pykka.Actor, inbox: PooledInbox) -> None:
    pykka.ActorRegistry.unregister(actor.actor_ref)
    actor.actor_stopped.set()
    try:
        _teardown(actor, inbox)
    except BaseException:
        log.exception("answering the asks left to %s failed", actor)


class PooledActor(pykka.ThreadingActor):
    """A `ThreadingActor` that runs on `actor_dispatcher` when one is set.

    With `actor_dispatcher = None` (the default) it runs as a plain `ThreadingActor`, on a
    thread of its own. A subclass that picks its dispatcher per instance overrides
    `_start_actor_loop` and calls `dispatcher.attach(self)`.
    """

    actor_dispatcher: ClassVar[Dispatcher | None] = None

    @staticmethod
    def _create_actor_inbox() -> Any:
        return PooledInbox()

    def _start_actor_loop(self) -> None:
        dispatcher = type(self).actor_dispatcher
        if dispatcher is None:
            super()._start_actor_loop()
        else:
            dispatcher.attach(self)


__all__ = ["DEFAULT_THROUGHPUT", "Dispatcher", "PooledActor", "PooledInbox"]
