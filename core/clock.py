"""Time sources. Code that needs the time takes a `Clock`, so tests can control it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MICROSECOND = timedelta(microseconds=1)


@runtime_checkable
class Clock(Protocol):
    """Wall time for records, monotonic time for measuring intervals."""

    def now(self) -> datetime:
        """The current time, timezone-aware, in UTC."""
        ...

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back; only differences are meaningful."""
        ...


class SystemClock:
    """The real clocks of this machine."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()


def utc_micros(dt: datetime) -> int:
    """Microseconds since the Unix epoch; exact, with no float rounding.

    Naive datetimes are refused: guessing their zone is how broker-server times end up
    stored as engine UTC times.
    """
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError(f"naive datetime {dt.isoformat()} has no time zone")
    return (dt - _EPOCH) // _ONE_MICROSECOND


def from_utc_micros(micros: int) -> datetime:
    """The aware UTC datetime for microseconds since the Unix epoch (inverse of utc_micros)."""
    return _EPOCH + timedelta(microseconds=micros)


__all__ = ["Clock", "SystemClock", "from_utc_micros", "utc_micros"]
