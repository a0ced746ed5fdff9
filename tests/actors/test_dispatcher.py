"""The dispatcher: many Pykka actors on a few threads, with Pykka's API and guarantees."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pykka
import pytest
from pykka._envelope import Envelope

from actors._dispatcher import Dispatcher, PooledActor
from core.enums import ExecutionStatus
from tests.actors.conftest import EngineFactory, rpm
from tests.helpers import eventually

POOL_SIZE = 4

A = TypeVar("A", bound=PooledActor)


@pytest.fixture
def pool() -> Iterator[Dispatcher]:
    dispatcher = Dispatcher("test", POOL_SIZE)
    yield dispatcher
    pykka.ActorRegistry.stop_all(timeout=10)
    dispatcher.close()


def _on(dispatcher: Dispatcher, actor_class: type[A]) -> type[A]:
    """`actor_class` bound to `dispatcher` (a subclass, so tests do not share one)."""
    return type(actor_class.__name__, (actor_class,), {"actor_dispatcher": dispatcher})


@dataclass
class Trace:
    """What a set of actors saw, shared across their threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: set[str] = field(default_factory=set)
    inside: dict[str, int] = field(default_factory=dict)
    overlaps: int = 0
    stopped: list[str] = field(default_factory=list)
    failures: list[BaseException | None] = field(default_factory=list)


class Recorder(PooledActor):
    """Records its messages in order and checks that no two of its handlers overlap."""

    def __init__(self, trace: Trace) -> None:
        super().__init__()
        self.trace = trace
        self.seen: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        trace = self.trace
        with trace.lock:
            trace.threads.add(threading.current_thread().name)
            busy = trace.inside.get(self.actor_urn, 0)
            if busy:
                trace.overlaps += 1
            trace.inside[self.actor_urn] = busy + 1
        time.sleep(0)  # hand the GIL over inside the handler: a second run would show
        self.seen.append(message)
        with trace.lock:
            trace.inside[self.actor_urn] -= 1
        return len(self.seen)

    def messages(self) -> list[Any]:
        return list(self.seen)

    def echo(self, value: Any) -> Any:
        return value

    def fail(self) -> None:
        raise ValueError("handler failed")

    def stop_myself(self) -> str:
        self.stop()
        return "stopping"

    def on_stop(self) -> None:
        with self.trace.lock:
            self.trace.stopped.append(threading.current_thread().name)

    def on_failure(self, exception_type: Any, exception_value: Any, traceback: Any) -> None:
        with self.trace.lock:
            self.trace.failures.append(exception_value)


class Gate(PooledActor):
    """Blocks its pool thread until released (to hold messages in its inbox)."""

    def __init__(self, release: threading.Event, entered: threading.Event) -> None:
        super().__init__()
        self.release = release
        self.entered = entered
        self.handled: list[Any] = []

    def on_receive(self, message: Any) -> Any:
        if message == "block":
            self.entered.set()
            assert self.release.wait(10)
        self.handled.append(message)
        return message

    def count(self) -> int:
        return len(self.handled)


def _pool_threads(dispatcher: Dispatcher) -> set[str]:
    return {f"{dispatcher.name}-pool-{i}" for i in range(dispatcher.size)}


# --- scale and the actor guarantees ---------------------------------------------------------


def test_thousands_of_actors_run_on_four_threads(pool: Dispatcher) -> None:
    trace = Trace()
    threads_before = threading.active_count()
    refs = [_on(pool, Recorder).start(trace) for _ in range(2000)]
    for ref in refs:
        for n in range(5):
            ref.tell(n)
    futures = [ref.ask("last", block=False) for ref in refs]
    threads_in_flight = threading.active_count()

    assert [f.get(timeout=30) for f in futures] == [6] * 2000
    assert trace.threads <= _pool_threads(pool)
    assert threads_in_flight <= threads_before  # no thread per actor
    assert trace.overlaps == 0


def test_messages_from_one_sender_arrive_in_order(pool: Dispatcher) -> None:
    trace = Trace()
    ref = _on(pool, Recorder).start(trace)

    def send(sender: int) -> None:
        for n in range(500):
            ref.tell((sender, n))

    senders = [threading.Thread(target=send, args=(s,)) for s in range(4)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(10)

    seen = ref.proxy().messages().get(timeout=10)
    assert len(seen) == 2000
    for s in range(4):
        assert [n for who, n in seen if who == s] == list(range(500))


def test_one_actor_never_runs_on_two_threads_at_once(pool: Dispatcher) -> None:
    trace = Trace()
    refs = [_on(pool, Recorder).start(trace) for _ in range(8)]

    def flood() -> None:
        for n in range(300):
            for ref in refs:
                ref.tell(n)

    senders = [threading.Thread(target=flood) for _ in range(4)]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(30)
    counts = [ref.ask("done", timeout=30) for ref in refs]

    assert counts == [1201] * 8
    assert trace.overlaps == 0
    assert len(trace.threads) > 1  # the actors did move between the pool's threads


def test_a_busy_actor_hands_its_thread_over_after_a_slice() -> None:
    dispatcher = Dispatcher("fair", 1, throughput=10)
    seen_by_other: list[int] = []
    try:
        release, entered = threading.Event(), threading.Event()
        busy_class = _on(dispatcher, Gate)
        busy_actor = busy_class(release, entered)
        busy = busy_actor.actor_ref
        pykka.ActorRegistry.register(busy)
        dispatcher.attach(busy_actor)
        busy.tell("block")
        assert entered.wait(10)  # the pool's only thread is in `busy` now
        for n in range(5000):
            busy.tell(n)

        class Other(PooledActor):
            actor_dispatcher = dispatcher

            def on_receive(self, message: Any) -> Any:
                # Read directly: an ask to `busy` would wait for this very thread.
                seen_by_other.append(len(busy_actor.handled))

        Other.start().tell("how far is busy?")
        release.set()
        eventually(lambda: seen_by_other, what="the other actor's turn")

        assert seen_by_other[0] == 10  # one slice of `busy`, not its 5001 messages
        assert busy.proxy().count().get(timeout=10) == 5001
    finally:
        pykka.ActorRegistry.stop_all(timeout=10)
        dispatcher.close()


def test_a_thousand_actors_waiting_for_replies_hold_no_thread(pool: Dispatcher) -> None:
    """Each actor asks a server by message with reply-to and waits for the answer as a
    message: while all of them wait, only the pool's threads exist."""

    class Server(PooledActor):
        actor_dispatcher = pool

        def __init__(self) -> None:
            super().__init__()
            self.waiting: list[pykka.ActorRef[Any]] = []

        def on_receive(self, message: Any) -> Any:
            if message == "answer all":
                for client in self.waiting:
                    client.tell("answer")
                self.waiting.clear()
                return None
            self.waiting.append(message)
            return len(self.waiting)

    class Client(PooledActor):
        actor_dispatcher = pool

        def __init__(self, server: pykka.ActorRef[Any], done: threading.Semaphore) -> None:
            super().__init__()
            self.server = server
            self.done = done

        def on_receive(self, message: Any) -> Any:
            if message == "go":
                self.server.tell(self.actor_ref)
            elif message == "answer":
                self.done.release()

    threads_before = threading.active_count()
    done = threading.Semaphore(0)
    server = Server.start()
    clients = [Client.start(server, done) for _ in range(1000)]
    for client in clients:
        client.tell("go")
    eventually(lambda: len(server.proxy().waiting.get(timeout=10)) == 1000)

    in_flight_threads = threading.active_count()
    server.tell("answer all")
    for _ in clients:
        assert done.acquire(timeout=30)

    assert in_flight_threads <= threads_before


# --- Pykka's API ------------------------------------------------------------------------------


def test_tell_ask_and_proxies(pool: Dispatcher) -> None:
    trace = Trace()
    ref = _on(pool, Recorder).start(trace)
    proxy = ref.proxy()

    ref.tell("told")
    assert ref.ask("asked", timeout=10) == 2
    assert proxy.echo(42).get(timeout=10) == 42
    assert proxy.seen.get(timeout=10) == ["told", "asked"]
    proxy.seen = ["replaced"]
    assert proxy.messages().get(timeout=10) == ["replaced"]
    assert pykka.ActorRegistry.get_by_urn(ref.actor_urn) is ref
    assert trace.threads <= _pool_threads(pool)


def test_on_start_and_on_stop_run_on_the_pool(pool: Dispatcher) -> None:
    started: list[str] = []

    class Hooks(Recorder):
        def on_start(self) -> None:
            started.append(threading.current_thread().name)

    trace = Trace()
    ref = _on(pool, Hooks).start(trace)

    assert ref.stop(timeout=10) is True
    assert ref.stop(timeout=10) is False  # already dead, as Pykka answers
    assert started[0] in _pool_threads(pool)
    assert trace.stopped[0] in _pool_threads(pool)
    assert not ref.is_alive()
    assert pykka.ActorRegistry.get_by_urn(ref.actor_urn) is None


def test_a_failed_ask_answers_the_asker_and_the_actor_lives_on(pool: Dispatcher) -> None:
    trace = Trace()
    ref = _on(pool, Recorder).start(trace)

    with pytest.raises(ValueError, match="handler failed"):
        ref.proxy().fail().get(timeout=10)

    assert ref.is_alive()
    assert ref.proxy().echo("still here").get(timeout=10) == "still here"
    assert trace.failures == []


def test_a_failed_tell_calls_on_failure_and_stops_the_actor(pool: Dispatcher) -> None:
    trace = Trace()
    ref = _on(pool, Recorder).start(trace)

    ref.tell(pykka.messages.ProxyCall(attr_path=("fail",), args=(), kwargs={}))
    eventually(lambda: trace.failures, what="on_failure")

    assert isinstance(trace.failures[0], ValueError)
    assert not ref.is_alive()
    assert pykka.ActorRegistry.get_by_urn(ref.actor_urn) is None
    assert trace.stopped == []  # on_stop is not called after a failure, as in Pykka
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("anyone?", timeout=10)


def test_a_failing_on_start_stops_the_actor_and_answers_waiting_asks(pool: Dispatcher) -> None:
    go = threading.Event()

    class BadStart(Recorder):
        def on_start(self) -> None:
            assert go.wait(10)  # hold the start until an ask is queued
            raise RuntimeError("no start")

    trace = Trace()
    ref = _on(pool, BadStart).start(trace)
    answer = ref.ask("queued before the failure", block=False)
    go.set()

    with pytest.raises(pykka.ActorDeadError):
        answer.get(timeout=10)
    assert not ref.is_alive()
    assert pykka.ActorRegistry.get_by_urn(ref.actor_urn) is None
    assert trace.failures == []  # Pykka calls neither on_failure nor on_stop here
    assert trace.stopped == []


def test_stop_while_messages_are_queued(pool: Dispatcher) -> None:
    release, entered = threading.Event(), threading.Event()
    ref = _on(pool, Gate).start(release, entered)
    ref.tell("block")
    assert entered.wait(10)
    before = [ref.ask(n, block=False) for n in range(3)]
    stopping = ref.stop(block=False)
    after = ref.ask("after the stop", block=False)
    release.set()

    assert [f.get(timeout=10) for f in before] == [0, 1, 2]  # handled before the stop
    assert stopping.get(timeout=10) is True
    with pytest.raises(pykka.ActorDeadError):
        after.get(timeout=10)


def test_stop_from_inside_a_handler(pool: Dispatcher) -> None:
    stopped_on: list[str] = []

    class SelfStopper(Gate):
        def on_receive(self, message: Any) -> Any:
            if message == "stop yourself":
                self.stop()
                return "stopping"
            return super().on_receive(message)

        def on_stop(self) -> None:
            stopped_on.append(threading.current_thread().name)

    release, entered = threading.Event(), threading.Event()
    ref = _on(pool, SelfStopper).start(release, entered)
    ref.tell("block")
    assert entered.wait(10)  # queue what follows together
    stopping = ref.ask("stop yourself", block=False)
    queued = ref.ask("queued before the stop", block=False)
    release.set()

    assert stopping.get(timeout=10) == "stopping"
    assert queued.get(timeout=10) == "queued before the stop"  # its stop came after it
    eventually(lambda: not ref.is_alive(), what="the actor stopped")
    assert stopped_on
    assert stopped_on[0] in _pool_threads(pool)
    with pytest.raises(pykka.ActorDeadError):
        ref.ask("dead", timeout=10)


def test_an_ask_that_lands_after_the_stop_is_answered_dead(pool: Dispatcher) -> None:
    ref = _on(pool, Recorder).start(Trace())
    assert ref.stop(timeout=10)
    future: pykka.Future[Any] = pykka.ThreadingFuture()

    # What an `ask` that passed `is_alive()` just before the stop puts in the inbox.
    ref.actor_inbox.put(Envelope("late", reply_to=future))

    with pytest.raises(pykka.ActorDeadError):
        future.get(timeout=10)


def test_registry_stop_all_stops_every_pooled_actor(pool: Dispatcher) -> None:
    trace = Trace()
    refs = [_on(pool, Recorder).start(trace) for _ in range(200)]
    for ref in refs:
        ref.tell("work")

    pykka.ActorRegistry.stop_all(timeout=10)

    assert not any(ref.is_alive() for ref in refs)
    assert len(trace.stopped) == 200
    assert not [r for r in pykka.ActorRegistry.get_all() if r in refs]


def test_a_base_exception_in_a_handler_stops_every_actor_without_blocking_the_pool() -> None:
    dispatcher = Dispatcher("base", 1)
    try:
        trace = Trace()
        bystander = _on(dispatcher, Recorder).start(trace)

        class Exiting(PooledActor):
            actor_dispatcher = dispatcher

            def on_receive(self, message: Any) -> Any:
                raise SystemExit("bye")

        exiting = Exiting.start()
        exiting.tell("exit")

        eventually(lambda: not bystander.is_alive(), what="the bystander stopped")
        assert not exiting.is_alive()
        assert len(trace.stopped) == 1
    finally:
        dispatcher.close()


def test_a_pooled_actor_may_ask_a_threading_actor(pool: Dispatcher) -> None:
    class Below(pykka.ThreadingActor):
        def on_receive(self, message: Any) -> Any:
            return message * 2

    below = Below.start()

    class Above(PooledActor):
        actor_dispatcher = pool

        def on_receive(self, message: Any) -> Any:
            return below.ask(message, timeout=10)

    assert Above.start().ask(21, timeout=10) == 42


# --- the pool itself --------------------------------------------------------------------------


def test_the_pool_threads_are_named_daemons(pool: Dispatcher) -> None:
    mine = [t for t in threading.enumerate() if t.name in _pool_threads(pool)]

    assert len(mine) == POOL_SIZE
    assert all(t.daemon for t in mine)


def test_close_ends_the_threads_and_a_later_wake_still_runs() -> None:
    dispatcher = Dispatcher("closing", 2)
    trace = Trace()
    ref = _on(dispatcher, Recorder).start(trace)
    assert ref.ask("before", timeout=10) == 1

    dispatcher.close()

    assert not [t for t in threading.enumerate() if t.name.startswith("closing-pool-")]
    assert ref.ask("after", timeout=10) == 2  # on a short-lived thread, not stranded
    assert any(name.startswith("closing-late-") for name in trace.threads)
    assert ref.stop(timeout=10)


def test_without_a_dispatcher_a_pooled_actor_has_a_thread_of_its_own() -> None:
    trace = Trace()
    ref = Recorder.start(trace)

    assert ref.ask("hello", timeout=10) == 1
    assert ref.proxy().echo(1).get(timeout=10) == 1
    assert [name.split("-")[0] for name in trace.threads] == ["Recorder"]  # Pykka's own
    assert ref.stop(timeout=10)


def test_bad_arguments_are_refused(pool: Dispatcher) -> None:
    with pytest.raises(ValueError, match="at least one thread"):
        Dispatcher("none", 0)
    with pytest.raises(ValueError, match="throughput"):
        Dispatcher("none", 1, throughput=0)

    class Plain(pykka.ThreadingActor):
        """An actor with no pool of its own."""

    with pytest.raises(TypeError, match="PooledInbox"):
        pool.attach(Plain())
    actor = _on(pool, Recorder)(Trace())
    pool.attach(actor)
    with pytest.raises(RuntimeError, match="already attached"):
        pool.attach(actor)
    actor.stop()


# --- OrderActors on the engine's pool (EE_ORDER_THREADS) --------------------------------------


def _order_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("OrderActor-")}


def test_order_actors_run_on_the_engine_pool(make_engine: EngineFactory) -> None:
    before = _order_threads()
    engine = make_engine(order_threads=2)
    pool_threads = {"OrderActor-pool-0", "OrderActor-pool-1"}
    assert _order_threads() - before == pool_threads

    futures = [engine.submit(rpm(decision_id=f"pooled-{i}", units=1000)) for i in range(12)]
    confirmations = [f.get(timeout=30) for f in futures]

    assert {c.status for c in confirmations} == {ExecutionStatus.FILLED}
    assert _order_threads() - before == pool_threads  # no thread of their own
    engine.stop()
    assert not _order_threads() & pool_threads


def test_order_threads_zero_keeps_a_thread_per_order_actor(make_engine: EngineFactory) -> None:
    engine = make_engine(order_threads=0)

    assert engine.execute(rpm(decision_id="unpooled", units=1000)).status.is_final
    assert not [name for name in _order_threads() if "-pool-" in name]
