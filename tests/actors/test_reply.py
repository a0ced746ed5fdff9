"""Reply and FastInbox: the C-level hand-offs, with Pykka's semantics where they are used."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from actors._reply import FastInbox, Reply
from actors.broker import BrokerActor
from actors.order import OrderActor
from actors.persistence import PersistenceActor

TIMEOUT = 10.0


def test_a_value_set_on_another_thread_wakes_the_waiter() -> None:
    reply: Reply[int] = Reply()
    waiting = threading.Event()

    def setter() -> None:
        assert waiting.wait(TIMEOUT)
        reply.set(42)

    thread = threading.Thread(target=setter)
    thread.start()
    waiting.set()
    assert reply.get(timeout=TIMEOUT) == 42
    assert reply.get(timeout=0) == 42  # answered once, readable again
    thread.join(TIMEOUT)


def test_an_exception_is_raised_to_the_waiter_with_its_traceback() -> None:
    reply: Reply[int] = Reply()
    try:
        raise pykka.ActorDeadError("gone")
    except pykka.ActorDeadError:
        reply.set_exception()

    with pytest.raises(pykka.ActorDeadError, match="gone") as raised:
        reply.get(timeout=TIMEOUT)
    assert raised.value.__traceback__ is not None


def test_an_exception_given_as_a_class_is_instantiated() -> None:
    reply: Reply[int] = Reply()
    reply.set_exception(exc_info=(RuntimeError, None, None))

    with pytest.raises(RuntimeError):
        reply.get(timeout=TIMEOUT)


def test_no_answer_in_time_is_a_pykka_timeout() -> None:
    reply: Reply[int] = Reply()

    with pytest.raises(pykka.Timeout):
        reply.get(timeout=0.01)
    with pytest.raises(pykka.Timeout):
        reply.get(timeout=-1)  # a deadline already past does not block


def test_a_reply_is_answered_only_once() -> None:
    reply: Reply[int] = Reply()
    reply.set(1)

    with pytest.raises(queue.Full):
        reply.set(2)
    with pytest.raises(queue.Full):
        reply.set_exception(exc_info=(RuntimeError, RuntimeError("late"), None))
    assert reply.get(timeout=0) == 1


class _Echo(FastInbox):
    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Reply):
            message.set("told")
            return None
        return message


@pytest.fixture
def echo() -> Iterator[pykka.ActorRef[_Echo]]:
    ref = _Echo.start()
    yield ref
    ref.stop(timeout=TIMEOUT)


def test_a_fast_inbox_actor_answers_asks_and_tells_in_order(
    echo: pykka.ActorRef[_Echo],
) -> None:
    assert isinstance(echo.actor_inbox, queue.SimpleQueue)
    assert [echo.ask(n, timeout=TIMEOUT) for n in range(50)] == list(range(50))
    reply: Reply[str] = Reply()
    echo.tell(reply)
    assert reply.get(timeout=TIMEOUT) == "told"


def test_a_stopped_fast_inbox_actor_refuses_what_was_left_in_its_inbox() -> None:
    gate = threading.Event()

    class Slow(FastInbox):
        def on_receive(self, message: Any) -> Any:
            gate.wait(TIMEOUT)
            return message

    ref = Slow.start()
    first = ref.ask("first", block=False)
    stop = ref.stop(block=False)
    late = ref.ask("late", block=False)  # queued behind the stop
    gate.set()

    assert first.get(timeout=TIMEOUT) == "first"
    stop.get(timeout=TIMEOUT)
    with pytest.raises(pykka.ActorDeadError):
        late.get(timeout=TIMEOUT)


@pytest.mark.parametrize("actor", [OrderActor, BrokerActor, PersistenceActor])
def test_the_engines_actors_have_fast_inboxes(actor: type[pykka.Actor]) -> None:
    assert issubclass(actor, FastInbox)
