"""ReusedThreads: one thread per running job, reused once the job is done."""

from __future__ import annotations

import threading

import pytest

from actors._threads import ReusedThreads
from actors.order import _THREADS as ORDER_THREADS
from tests.actors.conftest import EngineFactory, rpm
from tests.helpers import eventually


def _run_and_wait(threads: ReusedThreads) -> str:
    done = threading.Event()
    names: list[str] = []

    def job() -> None:
        names.append(threading.current_thread().name)
        done.set()

    threads.run(job)
    assert done.wait(10)
    return names[0]


def test_a_thread_is_reused_once_its_job_is_done() -> None:
    threads = ReusedThreads("reuse-test")
    first = _run_and_wait(threads)
    eventually(lambda: threads.idle == 1)

    second = _run_and_wait(threads)

    assert second == first
    eventually(lambda: threads.idle == 1)


def test_jobs_that_block_each_get_a_thread_of_their_own() -> None:
    threads = ReusedThreads("blocking-test")
    release = threading.Event()
    started = threading.Semaphore(0)
    names: set[str] = set()
    lock = threading.Lock()

    def job() -> None:
        with lock:
            names.add(threading.current_thread().name)
        started.release()
        release.wait(10)

    for _ in range(20):
        threads.run(job)
    for _ in range(20):
        assert started.acquire(timeout=10)  # all twenty run at once: none waits for another
    release.set()

    assert len(names) == 20
    eventually(lambda: threads.idle == 20)


def test_no_more_than_keep_idle_threads_wait() -> None:
    threads = ReusedThreads("idle-test", keep_idle=2)
    release = threading.Event()
    finished = threading.Semaphore(0)

    def job() -> None:
        release.wait(10)
        finished.release()

    for _ in range(5):
        threads.run(job)
    release.set()
    for _ in range(5):
        assert finished.acquire(timeout=10)

    eventually(lambda: threads.idle == 2)


def test_a_failing_job_does_not_take_its_thread_down(caplog: pytest.LogCaptureFixture) -> None:
    threads = ReusedThreads("failure-test")

    def job() -> None:
        raise RuntimeError("boom")

    threads.run(job)
    eventually(lambda: threads.idle == 1)

    assert _run_and_wait(threads).startswith("failure-test-")
    assert "boom" in caplog.text


def test_keep_idle_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="keep_idle"):
        ReusedThreads("bad", keep_idle=-1)


def test_order_actors_run_on_reused_threads(make_engine: EngineFactory) -> None:
    engine = make_engine(order_threads=0)  # a thread each, not the pool
    before = {t.name for t in threading.enumerate() if t.name.startswith("OrderActor-")}

    for i in range(5):
        assert engine.execute(rpm(decision_id=f"reuse-{i}")).status.is_final
        eventually(lambda: ORDER_THREADS.idle >= 1, what="the OrderActor's thread back")

    # Five executions one after another: one thread ran them all (at most one new one).
    after = {t.name for t in threading.enumerate() if t.name.startswith("OrderActor-")}
    assert len(after - before) <= 1
