"""Tests of core.clock, core.ids and the deterministic doubles in core.testing."""

from __future__ import annotations

import re
import threading
from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.clock import Clock, SystemClock, from_utc_micros, utc_micros
from core.ids import IdSource, UuidIds
from core.testing import DEFAULT_START, ManualClock, SequentialIds

ID_SHAPE = re.compile(r"(?:[a-z]+_)?[0-9a-f]{32}")


@pytest.mark.parametrize("clock", [SystemClock(), ManualClock()], ids=["system", "manual"])
def test_clocks_satisfy_the_protocol(clock: Clock) -> None:
    assert isinstance(clock, Clock)
    now = clock.now()
    assert now.tzinfo is not None
    assert now.utcoffset() == timedelta(0)
    assert isinstance(clock.monotonic(), float)


def test_system_clock_is_current_and_monotonic() -> None:
    clock = SystemClock()
    before = datetime.now(UTC)
    assert abs(clock.now() - before) < timedelta(seconds=5)
    first = clock.monotonic()
    assert clock.monotonic() >= first


@pytest.mark.parametrize(
    ("dt", "micros"),
    [
        (datetime(1970, 1, 1, tzinfo=UTC), 0),
        (datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC), 1_000_000),
        (datetime(2024, 1, 2, 3, 4, 5, 678_901, tzinfo=UTC), 1_704_164_645_678_901),
        (
            datetime(2024, 1, 2, 5, 4, 5, 678_901, tzinfo=timezone(timedelta(hours=2))),
            1_704_164_645_678_901,
        ),  # the same instant, broker-server style offset
        (datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), -1),
        (datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), 253_402_300_799_999_999),
    ],
)
def test_utc_micros_is_exact(dt: datetime, micros: int) -> None:
    assert utc_micros(dt) == micros
    assert from_utc_micros(micros) == dt
    assert from_utc_micros(micros).tzinfo is UTC


def test_utc_micros_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="naive"):
        utc_micros(datetime(2024, 1, 1))  # noqa: DTZ001  # naive on purpose


def test_uuid_ids() -> None:
    ids = UuidIds()
    assert isinstance(ids, IdSource)
    made = {ids.new_id("exec") for _ in range(1_000)}
    assert len(made) == 1_000
    assert all(ID_SHAPE.fullmatch(i) and i.startswith("exec_") for i in made)
    assert re.fullmatch(r"[0-9a-f]{32}", ids.new_id())


def test_sequential_ids_have_the_uuid_shape() -> None:
    ids = SequentialIds()
    assert isinstance(ids, IdSource)
    assert ids.new_id("exec") == "exec_" + "0" * 31 + "1"
    assert ids.new_id() == "0" * 31 + "2"
    assert ids.new_id("evt") == "evt_" + "0" * 31 + "3"
    assert len(UuidIds().new_id("exec")) == len(SequentialIds().new_id("exec"))


def test_sequential_ids_start_and_threads() -> None:
    ids = SequentialIds(start=10)
    assert ids.new_id().endswith("a")
    made: list[str] = []
    lock = threading.Lock()

    def take() -> None:
        for _ in range(500):
            new = ids.new_id()
            with lock:
                made.append(new)

    threads = [threading.Thread(target=take) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 2_000


def test_sequential_ids_refuse_negative_start() -> None:
    with pytest.raises(ValueError, match="start"):
        SequentialIds(start=-1)


def test_manual_clock_starts_where_told() -> None:
    assert ManualClock().now() == DEFAULT_START
    start = datetime(2025, 6, 1, 12, tzinfo=timezone(timedelta(hours=3)))
    clock = ManualClock(start, monotonic_start=100.0)
    assert clock.now() == start
    assert clock.now().tzinfo is UTC
    assert clock.monotonic() == 100.0


@pytest.mark.parametrize("step", [1.5, timedelta(milliseconds=1500)])
def test_manual_clock_advance_moves_both(step: float | timedelta) -> None:
    clock = ManualClock()
    assert clock.advance(step) == DEFAULT_START + timedelta(seconds=1.5)
    assert clock.now() == DEFAULT_START + timedelta(seconds=1.5)
    assert clock.monotonic() == 1.5
    clock.advance(0)
    assert clock.monotonic() == 1.5


def test_manual_clock_set_moves_only_the_wall_clock() -> None:
    clock = ManualClock()
    clock.advance(10)
    earlier = DEFAULT_START - timedelta(hours=1)
    clock.set(earlier)
    assert clock.now() == earlier
    assert clock.monotonic() == 10.0


def test_manual_clock_refuses_going_back_and_naive_times() -> None:
    clock = ManualClock()
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="timezone"):
        clock.set(datetime(2024, 1, 1))  # noqa: DTZ001  # naive on purpose
    with pytest.raises(ValueError, match="timezone"):
        ManualClock(datetime(2024, 1, 1))  # noqa: DTZ001  # naive on purpose
