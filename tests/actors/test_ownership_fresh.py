"""An owner sends only while its last successful lease check is recent (`FRESH_TICKS`).

The standby trades three ticks after it took the lease, and the lease can only have been lost
after the start of the owner's last successful check: an owner whose ownership thread falls
behind must refuse sends by its own clock, not wait for that thread to notice the loss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import create_engine

from actors._ownership import FRESH_TICKS, TICKS_PER_TAKEOVER, Ownership
from actors.kill_switch import TradingSwitch
from core.errors import LeaseLostError
from core.testing import ManualClock


@dataclass
class _Lease:
    epoch: int = 7


class _Keeper:
    """A held lease whose last check started at `verified_at` (set by the test)."""

    def __init__(self, *_: Any, **__: Any) -> None:
        self.lease: _Lease | None = _Lease()
        self.verified_at: float | None = 0.0


def _ownership(clock: ManualClock) -> tuple[Ownership, _Keeper]:
    made: list[_Keeper] = []

    def keeper(*args: Any, **kwargs: Any) -> _Keeper:
        made.append(_Keeper(*args, **kwargs))
        return made[-1]

    ownership = Ownership(
        database_url="postgresql+psycopg2://unused/unused",
        accounts=["default"],
        owner="a",
        advertise_url=None,
        clock=clock,
        db=create_engine("sqlite://"),
        takeover_seconds=5.0,
        keeper=keeper,  # type: ignore[arg-type]
    )
    return ownership, made[0]


def test_a_lease_checked_within_the_bound_may_send() -> None:
    clock = ManualClock()
    ownership, _ = _ownership(clock)
    clock.advance(FRESH_TICKS * 5.0 / TICKS_PER_TAKEOVER - 0.01)

    ownership.check_fresh("default")  # no exception


def test_a_lease_not_checked_for_longer_than_the_bound_refuses_the_send() -> None:
    clock = ManualClock()
    ownership, _ = _ownership(clock)
    clock.advance(FRESH_TICKS * 5.0 / TICKS_PER_TAKEOVER + 0.01)

    with pytest.raises(LeaseLostError, match="lease last verified"):
        ownership.check_fresh("default")


def test_the_bound_is_shorter_than_the_standby_grace() -> None:
    ownership, _ = _ownership(ManualClock())

    assert ownership.fresh_seconds < ownership.grace_seconds


def test_no_lease_refuses_the_send() -> None:
    clock = ManualClock()
    ownership, keeper = _ownership(clock)
    keeper.lease = None

    with pytest.raises(LeaseLostError):
        ownership.check_fresh("default")


def test_the_gate_refuses_a_send_with_the_lease_check_s_reason() -> None:
    switch = TradingSwitch(halted=False)

    def stale() -> None:
        raise LeaseLostError("lease last verified 9 s ago", account="default", epoch=7)

    switch.lease_check = stale
    with switch.sending() as allowed:
        assert not allowed
        assert switch.refusal is not None
        assert "lease last verified" in switch.refusal

    switch.lease_check = None
    with switch.sending() as allowed:
        assert allowed
        assert switch.refusal is None
