"""The cheap hand-offs between actors: a one-shot reply slot and a C-level inbox.

Every execution waits on about five replies (the preflight, two commits, the send) and
each of its actors' messages goes through an inbox. Pykka's `ThreadingFuture` and the
`queue.Queue` inbox of `ThreadingActor` are built on `threading.Condition`, in Python;
the lock and queue below are C. Measured here: a tell-and-wait round trip took 80-95 us
of CPU with Pykka's, 20-45 us with these.
"""

from __future__ import annotations

import _thread
import contextlib
import queue
import sys
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Generic, Protocol, TypeVar

import pykka

T = TypeVar("T")
T_contra = TypeVar("T_contra", contravariant=True)
M = TypeVar("M")

_ExcInfo = tuple[type[BaseException] | None, BaseException | None, TracebackType | None]


class Reply(Generic[T]):
    """A one-shot reply: `set` (or `set_exception`) once from one thread, `get` from another.

    The subset of `pykka.Future` the actors use for their told requests (`Write`,
    `SendRequest`), so an actor answers a `Reply` and a Pykka future alike. A second `set`
    raises `queue.Full`, as Pykka's does.
    """

    __slots__ = ("_done", "_exc_info", "_set", "_value")

    def __init__(self) -> None:
        self._done = _thread.allocate_lock()
        self._done.acquire()  # released once, by `set`: a waiter's acquire is the wake-up
        self._set = False
        self._value: Any = None
        self._exc_info: _ExcInfo | None = None

    def set(self, value: T | None = None) -> None:
        self._settle(value, None)

    def set_exception(self, exc_info: _ExcInfo | None = None) -> None:
        self._settle(None, exc_info if exc_info is not None else sys.exc_info())

    def get(self, *, timeout: float | None = None) -> T:
        """The value, or the exception raised here; `pykka.Timeout` after `timeout` s."""
        if not self._done.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
            raise pykka.Timeout(f"{timeout} seconds")
        self._done.release()  # the next `get` returns at once
        if self._exc_info is not None:
            kind, exc, traceback = self._exc_info
            if exc is None:
                assert kind is not None
                exc = kind()
            raise exc.with_traceback(traceback)
        value: T = self._value
        return value

    def _settle(self, value: Any, exc_info: _ExcInfo | None) -> None:
        if self._set:
            raise queue.Full
        self._set = True
        self._value = value
        self._exc_info = exc_info
        self._done.release()


class Settable(Protocol[T_contra]):
    """What a told request needs from its reply: `Reply`, `ToActor` and Pykka's futures."""

    def set(self, value: T_contra | None = None) -> None: ...

    def set_exception(self, exc_info: _ExcInfo | None = None) -> None: ...


@dataclass(frozen=True, slots=True)
class Answered:
    """The answer to request `token`, told back to the actor that made it (`ToActor`)."""

    token: int
    value: Any = None
    error: BaseException | None = None


class ToActor(Generic[T]):
    """A reply that arrives as a message instead of waking a waiter.

    `set(v)` tells `Answered(token, v)` to `ref`, `set_exception` tells the error, so an
    actor makes a request and goes on with its inbox: it never blocks on the answer. A
    requester that died meanwhile is ignored. Settled once, like `Reply`.
    """

    __slots__ = ("_ref", "_set", "_token")

    def __init__(self, ref: pykka.ActorRef[Any], token: int) -> None:
        self._ref = ref
        self._token = token
        self._set = False

    def set(self, value: T | None = None) -> None:
        self._tell(Answered(self._token, value))

    def set_exception(self, exc_info: _ExcInfo | None = None) -> None:
        kind, exc, _ = exc_info if exc_info is not None else sys.exc_info()
        if exc is None:
            exc = kind() if kind is not None else RuntimeError("failed without an exception")
        self._tell(Answered(self._token, error=exc))

    def _tell(self, message: Answered) -> None:
        if self._set:
            raise queue.Full
        self._set = True
        with contextlib.suppress(pykka.ActorDeadError):
            self._ref.tell(message)


@dataclass(frozen=True, slots=True)
class Call:
    """A told method call with a reply-to: the receiver runs `method(*args, **kwargs)` on
    itself and settles `reply` with the result or the exception, as a Pykka ask would,
    but nobody waits on a future for it (`FastInbox` handles it)."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    reply: Settable[Any]


class FastInbox(pykka.ThreadingActor):
    """Mixin (first base) giving a `ThreadingActor` a C `SimpleQueue` as its inbox.

    Pykka asks an actor class for its inbox (`_create_actor_inbox`, its hook for actor
    runtimes) and needs `put`, `get` and `empty`, which `SimpleQueue` has, in C.
    """

    @staticmethod
    def _create_actor_inbox() -> Any:
        return queue.SimpleQueue()

    def _handle_receive(self, message: Any) -> Any:
        # A `Call` is a proxy call told with a reply-to: answered like a Pykka ask (an
        # exception goes to the asker, the actor carries on), but nobody blocks on it.
        if isinstance(message, Call):
            try:
                result = getattr(self, message.method)(*message.args, **message.kwargs)
            except Exception:
                message.reply.set_exception()
            else:
                message.reply.set(result)
            return None
        return super()._handle_receive(message)

    def _actor_loop_teardown(self) -> None:
        # Pykka answers the asks left in a stopped actor's inbox with ActorDeadError and
        # drops the tells: a `Call` is answered the same way (it never started).
        for call in self._take_from_inbox(Call):
            error = pykka.ActorDeadError(f"{self.actor_ref} stopped before handling {call.method}")
            call.reply.set_exception(exc_info=(type(error), error, None))
        super()._actor_loop_teardown()

    def _take_from_inbox(self, kind: type[M]) -> list[M]:
        """Remove the told messages of type `kind` from the inbox, in order; keep the rest.

        For a stopping actor: Pykka drops the tells left in a stopped actor's inbox without
        a word, so the requests among them that someone waits on must be answered first.
        Call it once the actor is marked stopped, so that nothing new lands meanwhile.
        """
        taken: list[M] = []
        kept = []
        inbox: queue.SimpleQueue[Any] = self.actor_inbox  # type: ignore[assignment]
        while True:
            try:
                # Never a blocking get: another thread (the actor's own, waking up) may
                # take the last message between a check and the get.
                envelope = inbox.get_nowait()
            except queue.Empty:
                break
            if isinstance(envelope.message, kind):
                taken.append(envelope.message)
            else:
                kept.append(envelope)
        for envelope in kept:
            self.actor_inbox.put(envelope)
        return taken


__all__ = ["Answered", "Call", "FastInbox", "Reply", "Settable", "ToActor"]
