"""Blocking work off the event loop.

The facade's calls block (they read the database, or ask an actor and wait), and a Pykka
future's `get()` blocks its thread: none of it may run on the event loop. `run_blocking`
uses the default worker pool; `wait_for` waits on a future in a pool of its own (the
`waiters` limiter), so that requests waiting for a fill never starve reads of threads.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
import pykka

from actors.metrics import EngineMetrics

T = TypeVar("T")


async def run_blocking(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """`fn(*args, **kwargs)` in a worker thread of the default pool."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


async def read_storage(metrics: EngineMetrics, fn: Callable[..., T], *args: Any) -> T:
    """A storage read in a worker thread, its duration reported as a database query time."""

    def timed() -> T:
        started = time.perf_counter()
        try:
            return fn(*args)
        finally:
            metrics.db_queried(time.perf_counter() - started)

    return await anyio.to_thread.run_sync(timed)


def _get_or_none(future: pykka.Future[T], timeout: float) -> T | None:
    try:
        return future.get(timeout=timeout)
    except pykka.Timeout:
        return None


async def wait_for(
    future: pykka.Future[T], seconds: float, limiter: anyio.CapacityLimiter
) -> T | None:
    """The future's value if it is set within `seconds`, else None. Its exception, if it
    fails, is raised here."""
    if seconds <= 0:
        # A zero timeout never waits (it only looks), so it may run on the loop.
        return _get_or_none(future, 0.0)
    return await anyio.to_thread.run_sync(_get_or_none, future, seconds, limiter=limiter)


__all__ = ["read_storage", "run_blocking", "wait_for"]
