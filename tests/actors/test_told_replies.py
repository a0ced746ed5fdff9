"""Told requests with reply-to (`ToActor`, `Call`): answers that arrive as messages."""

from __future__ import annotations

import queue
import threading
from typing import Any

import pykka
import pytest

from actors._reply import Answered, Call, FastInbox, ToActor

TIMEOUT = 10.0


class Inbox(pykka.ThreadingActor):
    """Records what it is told."""

    def __init__(self) -> None:
        super().__init__()
        self.got: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def on_receive(self, message: Any) -> Any:
        self.got.put(message)
        return None


class Callee(FastInbox):
    def __init__(self, gate: threading.Event | None = None) -> None:
        super().__init__()
        self._gate = gate

    def double(self, n: int, *, plus: int = 0) -> int:
        return 2 * n + plus

    def broken(self) -> None:
        raise ValueError("no")

    def hold(self) -> None:
        assert self._gate is not None
        assert self._gate.wait(TIMEOUT)


@pytest.fixture
def inbox() -> Any:
    ref = Inbox.start()
    yield ref
    ref.stop()


def _received(inbox: Any) -> Any:
    got: queue.SimpleQueue[Any] = inbox.proxy().got.get(timeout=TIMEOUT)
    return got.get(timeout=TIMEOUT)


def test_a_value_is_told_to_the_requester_with_its_token(inbox: Any) -> None:
    reply: ToActor[int] = ToActor(inbox, 7)

    reply.set(42)

    assert _received(inbox) == Answered(7, 42)
    with pytest.raises(queue.Full):
        reply.set(43)


def test_an_exception_is_told_as_the_error(inbox: Any) -> None:
    reply: ToActor[int] = ToActor(inbox, 3)
    error = pykka.ActorDeadError("gone")

    reply.set_exception(exc_info=(type(error), error, None))

    answered = _received(inbox)
    assert answered.token == 3
    assert answered.error is error


def test_a_dead_requester_is_ignored() -> None:
    ref = Inbox.start()
    ref.stop()

    ToActor(ref, 1).set(1)  # no ActorDeadError


def test_a_call_runs_the_method_and_answers_its_result(inbox: Any) -> None:
    callee = Callee.start()
    try:
        callee.tell(Call("double", (20,), {"plus": 2}, ToActor(inbox, 1)))
        callee.tell(Call("broken", (), {}, ToActor(inbox, 2)))
        callee.tell(Call("double", (1,), {}, ToActor(inbox, 3)))

        first, second, third = (_received(inbox) for _ in range(3))
        assert first == Answered(1, 42)
        assert isinstance(second.error, ValueError)  # to the caller; the callee carries on
        assert third == Answered(3, 2)
    finally:
        callee.stop()


def test_a_call_left_in_the_inbox_at_stop_is_answered_actor_dead(inbox: Any) -> None:
    gate = threading.Event()
    callee = Callee.start(gate)
    callee.tell(Call("hold", (), {}, ToActor(inbox, 1)))
    stopped = callee.stop(block=False)
    callee.tell(Call("double", (1,), {}, ToActor(inbox, 2)))  # queued behind the stop
    gate.set()

    assert _received(inbox) == Answered(1, None)
    late = _received(inbox)
    assert late.token == 2
    assert isinstance(late.error, pykka.ActorDeadError)
    stopped.get(timeout=TIMEOUT)
