"""Per-account ownership leases for hot standby, on PostgreSQL.

With hot standby on, `actors._ownership` runs one `LeaseKeeper` per account, the engine
trades an account only while its keeper holds the lease, and the journal writer calls
`LeaseKeeper.fence` inside every write-ahead transaction of that account.

A lease is two things. A PostgreSQL advisory lock on `lease_key(account)`, held by a
dedicated session (`storage.sessions`): the server frees it the moment that session ends
(process killed, backend terminated, TCP timeout), so no clock of ours decides who owns an
account. And a fencing row in `account_leases`: every acquisition bumps `epoch` and records
the holding backend's pid. `check_lease` reads that row FOR SHARE inside the caller's
transaction and requires both the same epoch and the lock still held by that pid, so an
instance whose session died cannot commit an intent even before another takes over; and a
takeover (which updates the row) waits for such a transaction to finish, so the new owner's
reconciliation sees every intent the old owner committed.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sqlalchemy import Connection, Engine, text

from core.clock import Clock, SystemClock
from core.errors import LeaseLostError
from storage.sessions import (
    DEFAULT_LIVENESS_SECONDS,
    SessionError,
    close_quietly,
    connect_args,
    dedicated_session,
)

log = logging.getLogger(__name__)

_KEY_NAMESPACE: Final = b"mt5-execution-engine/account-lease/"

_HELD = """EXISTS (
    SELECT 1 FROM pg_locks k
    WHERE k.locktype = 'advisory' AND k.granted AND k.objsubid = 1 AND k.pid = l.backend_pid
      AND k.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND CAST(k.classid AS bigint) = :hi AND CAST(k.objid AS bigint) = :lo)"""

# S608: _HELD is a constant of this module; the only values are bound parameters.
_CHECK = text(
    f"SELECT l.epoch, {_HELD} AS held FROM account_leases l "  # noqa: S608
    "WHERE l.account = :account FOR SHARE OF l"
)
_OWNER = text(
    f"SELECT l.owner, l.advertise_url, l.epoch, l.renewed_at, {_HELD} AS held "  # noqa: S608
    "FROM account_leases l WHERE l.account = :account"
)
_ACQUIRE = """
INSERT INTO account_leases
    (account, epoch, owner, advertise_url, backend_pid, acquired_at, renewed_at)
VALUES (%(account)s, 1, %(owner)s, %(url)s, pg_backend_pid(), %(now)s, %(now)s)
ON CONFLICT (account) DO UPDATE SET
    epoch = account_leases.epoch + 1, owner = EXCLUDED.owner,
    advertise_url = EXCLUDED.advertise_url, backend_pid = EXCLUDED.backend_pid,
    acquired_at = EXCLUDED.acquired_at, renewed_at = EXCLUDED.renewed_at
RETURNING epoch, backend_pid
"""
_VERIFY = """
SELECT epoch = %(epoch)s AND backend_pid = pg_backend_pid()
FROM account_leases WHERE account = %(account)s
"""
# renewed_at is for people (owner_of); SKIP LOCKED: a renewal never waits behind the
# share locks of this account's own write transactions, and never delays them.
_RENEW = """
UPDATE account_leases SET renewed_at = %(now)s WHERE account IN (
    SELECT account FROM account_leases WHERE account = %(account)s
    FOR NO KEY UPDATE SKIP LOCKED)
"""


def lease_key(account: str) -> int:
    """The advisory-lock key of `account`: a signed 64-bit hash, namespaced to this engine."""
    digest = hashlib.sha256(_KEY_NAMESPACE + account.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _key_parts(account: str) -> dict[str, int]:
    # pg_locks shows a bigint key as its high and low 32 bits (classid, objid).
    key = lease_key(account)
    return {"hi": (key >> 32) & 0xFFFFFFFF, "lo": key & 0xFFFFFFFF}


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease this instance holds: `epoch` fences its writes."""

    account: str
    epoch: int
    owner: str
    backend_pid: int
    acquired_at: datetime


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    """Who holds (or last held) an account's lease; `held` is False once the lock is free."""

    account: str
    owner: str
    advertise_url: str | None
    epoch: int
    renewed_at: datetime
    held: bool


class LeaseEvent(StrEnum):
    ACQUIRED = "acquired"
    """This instance now owns the account: reconcile it, then trade."""
    LOST = "lost"
    """This instance no longer owns it: stop sending (its writes already fail)."""
    RELEASED = "released"
    """Given up on purpose (shutdown)."""


@dataclass(frozen=True, slots=True)
class LeaseChange:
    event: LeaseEvent
    account: str
    epoch: int
    reason: str


def check_lease(connection: Connection, account: str, lease: Lease | None) -> None:
    """Raise LeaseLostError unless `lease` is still the account's live lease.

    Call it inside the write-ahead transaction, before the intent is written: the row stays
    share-locked until that transaction ends, so no takeover commits in between.
    """
    if lease is None or lease.account != account:
        raise LeaseLostError(account=account, epoch=None)
    row = connection.execute(_CHECK, {"account": account, **_key_parts(account)}).first()
    if row is None or row.epoch != lease.epoch or not row.held:
        raise LeaseLostError(
            account=account, epoch=lease.epoch, current_epoch=None if row is None else row.epoch
        )


def owner_of(engine: Engine | Connection, account: str) -> LeaseHolder | None:
    """The account's holder (for a 307 to its advertised URL); None if never leased."""
    params = {"account": account, **_key_parts(account)}
    if isinstance(engine, Connection):
        row = engine.execute(_OWNER, params).first()
    else:
        with engine.connect() as connection:
            row = connection.execute(_OWNER, params).first()
    if row is None:
        return None
    return LeaseHolder(
        account=account,
        owner=row.owner,
        advertise_url=row.advertise_url,
        epoch=row.epoch,
        renewed_at=row.renewed_at,
        held=bool(row.held),
    )


class LeaseKeeper:
    """Takes, keeps and re-takes one account's lease; call `tick()` periodically.

    Not thread-safe for `tick`/`release` (one caller, e.g. a timer); `lease` and `fence` may
    be used from any thread. `on_change` is called from `tick`/`release` on every
    acquisition, loss and release. Between failed attempts it waits `retry_seconds`,
    doubling up to `retry_cap_seconds`, on the injected clock.
    """

    def __init__(
        self,
        database_url: str,
        account: str,
        *,
        owner: str,
        advertise_url: str | None = None,
        clock: Clock | None = None,
        on_change: Callable[[LeaseChange], None] | None = None,
        liveness_seconds: float = DEFAULT_LIVENESS_SECONDS,
        retry_seconds: float = 0.5,
        retry_cap_seconds: float = 5.0,
    ) -> None:
        connect_args(database_url)  # refuses a URL that is not PostgreSQL, now
        self._url = database_url
        self.account = account
        self.owner = owner
        self.advertise_url = advertise_url
        self._clock = clock or SystemClock()
        self._on_change = on_change
        self._liveness = liveness_seconds
        self._retry = (retry_seconds, retry_cap_seconds)
        self._backoff = retry_seconds
        self._next_attempt = float("-inf")
        self._session: Any = None
        self._lease: Lease | None = None
        self._verified_at: float | None = None

    @property
    def verified_at(self) -> float | None:
        """The engine clock's monotonic time at which the last successful check of the held
        lease *started* (the lock was still ours then), or None without a lease."""
        return self._verified_at if self._lease is not None else None

    @property
    def lease(self) -> Lease | None:
        """The lease held now, as far as this instance knows (the database has the last word)."""
        return self._lease

    @property
    def backend_pid(self) -> int | None:
        """The pid of the dedicated session's backend, while there is one."""
        try:
            return None if self._session is None else int(self._session.get_backend_pid())
        except SessionError:
            return None  # closed meanwhile

    def fence(self, connection: Connection) -> None:
        """`check_lease` with this keeper's lease, inside the caller's transaction."""
        check_lease(connection, self.account, self._lease)

    def tick(self) -> Lease | None:
        """Verify the held lease (renewing it), or try to take it; returns the lease held."""
        if self._lease is not None:
            self._renew(self._lease)
        if self._lease is None and self._clock.monotonic() >= self._next_attempt:
            self._try_acquire()
        return self._lease

    def release(self) -> None:
        """Give the lease up (at shutdown) and close the session; a standby may take it."""
        lease, self._lease = self._lease, None
        if self._session is not None:
            close_quietly(self._session)  # ending the session frees the lock
            self._session = None
        if lease is not None:
            self._report(LeaseEvent.RELEASED, lease.epoch, "released")

    close = release

    def _renew(self, lease: Lease) -> None:
        started = self._clock.monotonic()
        try:
            with self._session.cursor() as cursor:
                cursor.execute(_VERIFY, {"account": self.account, "epoch": lease.epoch})
                found = cursor.fetchone()
                if found is not None and found[0]:
                    cursor.execute(_RENEW, self._params())
        except SessionError as exc:
            self._lose(lease, f"lease session lost: {type(exc).__name__}")
            return
        if found is None or not found[0]:
            self._lose(lease, "lease row taken by another session")
            return
        self._verified_at = started

    def _lose(self, lease: Lease, reason: str) -> None:
        self._lease = None
        close_quietly(self._session)
        self._session = None
        self._backoff = self._retry[0]
        self._next_attempt = self._clock.monotonic() + self._backoff
        log.warning("account %s: %s (epoch %d)", self.account, reason, lease.epoch)
        self._report(LeaseEvent.LOST, lease.epoch, reason)

    def _try_acquire(self) -> None:
        started = self._clock.monotonic()
        try:
            if self._session is None:
                self._session = dedicated_session(self._url, "lease", self._liveness)
            with self._session.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", (lease_key(self.account),))
                if not cursor.fetchone()[0]:
                    return  # another instance owns it: stay standby, keep the session
                cursor.execute(_ACQUIRE, {**self._params(), "url": self.advertise_url})
                epoch, pid = cursor.fetchone()
        except SessionError as exc:
            if self._session is not None:
                close_quietly(self._session)  # a half-taken lock goes with it
                self._session = None
            self._next_attempt = self._clock.monotonic() + self._backoff
            self._backoff = min(self._retry[1], self._backoff * 2)
            log.warning("account %s: lease not taken: %s", self.account, type(exc).__name__)
            return
        self._backoff = self._retry[0]
        self._verified_at = started
        self._lease = Lease(self.account, int(epoch), self.owner, int(pid), self._clock.now())
        log.info("account %s: lease taken by %s (epoch %d)", self.account, self.owner, epoch)
        self._report(LeaseEvent.ACQUIRED, int(epoch), "acquired")

    def _params(self) -> dict[str, Any]:
        return {"account": self.account, "owner": self.owner, "now": self._clock.now()}

    def _report(self, event: LeaseEvent, epoch: int, reason: str) -> None:
        if self._on_change is not None:
            self._on_change(LeaseChange(event, self.account, epoch, reason))


__all__ = [
    "Lease",
    "LeaseChange",
    "LeaseEvent",
    "LeaseHolder",
    "LeaseKeeper",
    "check_lease",
    "lease_key",
    "owner_of",
]
