"""Tests of storage.lease: advisory-lock leases with a fencing epoch, on real PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import psycopg2  # type: ignore[import-untyped]
import pytest
from sqlalchemy import Engine, text

from core.errors import ConfigurationError, LeaseLostError
from core.testing import ManualClock
from storage import lease as lease_module
from storage.db import create_db_engine
from storage.lease import (
    Lease,
    LeaseChange,
    LeaseEvent,
    LeaseKeeper,
    check_lease,
    lease_key,
    owner_of,
)
from storage.migrate import upgrade
from tests.helpers import eventually

pytestmark = pytest.mark.postgres

TAKEOVER_BOUND_S = 2.0
"""Budget of a takeover once the owner's session is gone (EE_TAKEOVER_SECONDS is 5)."""


@pytest.fixture
def url(postgres_url: str) -> str:
    upgrade(postgres_url)
    return postgres_url


@pytest.fixture
def db(url: str) -> Iterator[Engine]:
    engine = create_db_engine(url)
    yield engine
    engine.dispose()


class Keepers:
    """Keepers made by a test, released at its end; each records what it reported."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.made: list[LeaseKeeper] = []
        self.changes: dict[str, list[LeaseChange]] = {}

    def __call__(
        self, owner: str, account: str = "alpha", clock: ManualClock | None = None
    ) -> LeaseKeeper:
        changes = self.changes.setdefault(owner, [])
        keeper = LeaseKeeper(
            self.url,
            account,
            owner=owner,
            advertise_url=f"http://{owner}:8000",
            clock=clock or ManualClock(),
            on_change=changes.append,
            retry_seconds=1.0,
        )
        self.made.append(keeper)
        return keeper

    def events(self, owner: str) -> list[tuple[LeaseEvent, int]]:
        return [(change.event, change.epoch) for change in self.changes[owner]]


@pytest.fixture
def keepers(url: str) -> Iterator[Keepers]:
    made = Keepers(url)
    yield made
    for keeper in made.made:
        keeper.release()


def _terminate(db: Engine, pid: int) -> None:
    with db.begin() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def _fence(db: Engine, keeper: LeaseKeeper) -> None:
    with db.begin() as connection:
        keeper.fence(connection)


def test_one_of_two_competing_keepers_owns_the_account(keepers: Keepers, db: Engine) -> None:
    a, b = keepers("host-a"), keepers("host-b")

    lease = a.tick()
    assert b.tick() is None

    assert lease is not None
    assert (lease.account, lease.epoch, lease.owner) == ("alpha", 1, "host-a")
    assert keepers.events("host-a") == [(LeaseEvent.ACQUIRED, 1)]
    assert keepers.changes["host-b"] == []
    _fence(db, a)  # the owner may write
    with pytest.raises(LeaseLostError, match="no lease"):
        _fence(db, b)
    holder = owner_of(db, "alpha")
    assert holder is not None
    assert (holder.owner, holder.advertise_url, holder.epoch, holder.held) == (
        "host-a",
        "http://host-a:8000",
        1,
        True,
    )
    assert owner_of(db, "beta") is None


def test_a_terminated_owner_is_fenced_at_once_and_the_standby_takes_over(
    keepers: Keepers, db: Engine
) -> None:
    a_clock = ManualClock()
    a, b = keepers("host-a", clock=a_clock), keepers("host-b")
    stale = a.tick()
    b.tick()
    assert stale is not None
    assert a.backend_pid is not None

    _terminate(db, a.backend_pid)
    # Before anyone notices or takes over, the dead session's lease fences every write.
    eventually(lambda: not _write_allowed(db, a), what="the dead lease fences writes")
    holder = owner_of(db, "alpha")
    assert holder is not None
    assert not holder.held  # no 307 to an owner that is gone

    started = time.monotonic()
    eventually(b.tick, timeout=TAKEOVER_BOUND_S, what="the standby takes the lease")
    took = time.monotonic() - started

    assert took < TAKEOVER_BOUND_S
    assert b.lease is not None
    assert b.lease.epoch == 2
    _fence(db, b)
    assert a.tick() is None  # the old owner notices, reports, and stays out
    assert keepers.events("host-a") == [(LeaseEvent.ACQUIRED, 1), (LeaseEvent.LOST, 1)]
    with pytest.raises(LeaseLostError, match=r"no lease"):
        _fence(db, a)
    with pytest.raises(LeaseLostError, match=r"epoch 1, the lease is at epoch 2"):
        _check(db, "alpha", stale)  # what an in-flight write of the old owner still carries
    holder = owner_of(db, "alpha")
    assert holder is not None
    assert (holder.owner, holder.epoch, holder.held) == ("host-b", 2, True)
    # A retry later finds the account owned: the old owner is a standby now.
    a_clock.advance(1.0)
    assert a.tick() is None


def _write_allowed(db: Engine, keeper: LeaseKeeper) -> bool:
    try:
        _fence(db, keeper)
    except LeaseLostError:
        return False
    return True


def _check(db: Engine, account: str, lease: Lease | None) -> None:
    with db.begin() as connection:
        check_lease(connection, account, lease)


def test_the_owner_notices_its_lost_session_and_takes_the_lease_again(
    keepers: Keepers, db: Engine
) -> None:
    clock = ManualClock()
    a = keepers("host-a", clock=clock)
    a.tick()
    assert a.backend_pid is not None
    _terminate(db, a.backend_pid)

    eventually(lambda: a.tick() is None and a.lease is None, what="the loss is noticed")
    assert a.tick() is None  # waits retry_seconds on its clock before trying again
    clock.advance(1.0)
    lease = a.tick()

    assert lease is not None
    assert lease.epoch == 2
    assert keepers.events("host-a") == [
        (LeaseEvent.ACQUIRED, 1),
        (LeaseEvent.LOST, 1),
        (LeaseEvent.ACQUIRED, 2),
    ]
    _fence(db, a)


def test_a_released_lease_goes_to_the_standby_with_a_new_epoch(
    keepers: Keepers, db: Engine
) -> None:
    a, b = keepers("host-a"), keepers("host-b")
    a.tick()
    b.tick()

    a.release()
    lease = eventually(b.tick, what="the standby takes the released lease")

    assert lease is not None
    assert lease.epoch == 2
    assert keepers.events("host-a") == [(LeaseEvent.ACQUIRED, 1), (LeaseEvent.RELEASED, 1)]
    _fence(db, b)


def test_accounts_are_leased_independently(keepers: Keepers, db: Engine) -> None:
    a_alpha, b_beta = keepers("host-a", "alpha"), keepers("host-b", "beta")

    assert a_alpha.tick() is not None
    assert b_beta.tick() is not None

    _fence(db, a_alpha)
    _fence(db, b_beta)
    assert lease_key("alpha") != lease_key("beta")
    with pytest.raises(LeaseLostError), db.begin() as connection:
        check_lease(connection, "beta", a_alpha.lease)  # a lease is for its own account only


def test_a_takeover_waits_for_the_old_owners_write_in_flight(keepers: Keepers, db: Engine) -> None:
    # The old owner's intent either commits before the new epoch (so the new owner's
    # reconciliation sees it) or fails: it never lands after the takeover.
    a, b = keepers("host-a"), keepers("host-b")
    a.tick()
    b.tick()
    assert a.backend_pid is not None
    assert b.backend_pid is not None
    taken: list[Lease | None] = []
    standby = threading.Thread(target=lambda: taken.append(eventually(b.tick)))
    with db.begin() as connection:
        a.fence(connection)  # the write-ahead transaction of the old owner, in flight
        _terminate(db, a.backend_pid)
        standby.start()
        eventually(
            lambda: _waits_on_a_lock(db, b.backend_pid), what="the takeover waits for the write"
        )
        assert not taken
    standby.join(timeout=10)

    assert taken[0] is not None
    assert taken[0].epoch == 2
    holder = owner_of(db, "alpha")
    assert holder is not None
    assert holder.epoch == 2


def _waits_on_a_lock(db: Engine, pid: int | None) -> bool:
    with db.connect() as connection:
        wait = connection.execute(
            text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        ).scalar()
    return wait == "Lock"


def test_keeping_the_lease_never_waits_for_the_owners_own_writes(
    keepers: Keepers, db: Engine
) -> None:
    clock = ManualClock()
    a = keepers("host-a", clock=clock)
    a.tick()
    clock.advance(1.0)
    with db.begin() as connection:
        a.fence(connection)  # a long write-ahead transaction holds the row FOR SHARE
        started = time.monotonic()
        assert a.tick() is not None
        assert time.monotonic() - started < 1.0
    clock.advance(1.0)
    a.tick()

    holder = owner_of(db, "alpha")
    assert holder is not None
    assert holder.renewed_at == clock.now()  # renewed once no write held the row
    assert keepers.events("host-a") == [(LeaseEvent.ACQUIRED, 1)]


def test_a_keeper_needs_postgresql() -> None:
    with pytest.raises(ConfigurationError, match="not a PostgreSQL database"):
        LeaseKeeper("sqlite:///engine.db", "alpha", owner="host-a")


def test_an_unreachable_server_is_retried_with_back_off(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    attempts: list[float] = []
    clock = ManualClock()

    def refused(*_args: object) -> object:
        attempts.append(clock.monotonic())
        raise psycopg2.OperationalError("connection refused")

    monkeypatch.setattr(lease_module, "dedicated_session", refused)
    keeper = LeaseKeeper(url, "alpha", owner="host-a", clock=clock, retry_seconds=1.0)
    for _ in range(8):
        assert keeper.tick() is None
        clock.advance(0.5)

    assert attempts == [0.0, 1.0, 3.0]  # waits 1 s, then 2 s, then 4 s (cap 5)
    assert keeper.backend_pid is None
    keeper.release()
