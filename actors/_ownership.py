"""Hot standby: which accounts this instance trades, on PostgreSQL leases.

One `LeaseKeeper` per account (`storage.lease`), ticked on a small thread of its own five
times per `EE_TAKEOVER_SECONDS`. Every API is keyed by account name, so a per-account
runtime calls it per account.

An acquired lease is not traded at once. The previous owner may have lost its lease a
moment ago without knowing yet (a partition: its lease session was ended, its process runs
on); it learns at its next check, at most one tick later, and then closes its gate. So the
new owner waits three ticks (`grace`), then reconciles the account's unfinished executions
against its terminal (`take_over`), and only then opens its gate. A lost lease closes the
gate at once (`lose`): a send queued behind it answers NOT_SENT; an intent not yet
committed cannot commit anyway, since the write-ahead transaction calls `fence`.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import Connection, Engine

from core.clock import Clock
from core.errors import AccountNotOwnedError, ConfigurationError, LeaseLostError
from storage.lease import LeaseChange, LeaseEvent, LeaseKeeper, owner_of

log = logging.getLogger(__name__)

TICKS_PER_TAKEOVER = 5
"""Lease checks per `EE_TAKEOVER_SECONDS`; a new owner waits `GRACE_TICKS` of them."""

GRACE_TICKS = 3
"""How long a new owner waits after taking a lease before it reconciles and trades: twice
the previous owner's `FRESH_TICKS`, so a stall of a whole tick between an owner's last
lease check and its send still ends before the new owner's first send."""

FRESH_TICKS = 1.5
"""An owner sends only within this many ticks of the start of its last successful lease
check. The lease can only have been lost after that start, and a new owner trades no sooner
than `GRACE_TICKS` after it took the lease, so an owner whose checks fall behind (a stalled
process, a loaded machine) stops sending before a standby starts, whether or not its
ownership thread has run since."""


def default_instance_name() -> str:
    """Host name and process id: unique enough to tell two instances apart in a 503."""
    return f"{socket.gethostname()}-{os.getpid()}"


class Ownership:
    """The accounts this instance owns, and the takeover of those it acquires.

    Each account's runtime binds how it is taken over and lost (`bind`) before `start()`;
    both run on the ownership thread.
    """

    def __init__(
        self,
        *,
        database_url: str,
        accounts: Sequence[str],
        owner: str,
        advertise_url: str | None,
        clock: Clock,
        db: Engine,
        takeover_seconds: float,
        keeper: Callable[..., LeaseKeeper] = LeaseKeeper,
    ) -> None:
        self.owner = owner
        self.advertise_url = advertise_url
        self.tick_seconds = takeover_seconds / TICKS_PER_TAKEOVER
        self.grace_seconds = GRACE_TICKS * self.tick_seconds
        self.fresh_seconds = FRESH_TICKS * self.tick_seconds
        self._clock = clock
        self._db = db
        self._lock = threading.Lock()
        self._owned: set[str] = set()
        self._due: dict[str, float] = {}
        """Acquired accounts waiting for their grace, by the monotonic time it ends."""
        self._keepers = {
            account: keeper(
                database_url,
                account,
                owner=owner,
                advertise_url=advertise_url,
                clock=clock,
                on_change=self._changed,
                liveness_seconds=max(1.0, takeover_seconds / 2),
                retry_seconds=self.tick_seconds,
                retry_cap_seconds=takeover_seconds / 2,
            )
            for account in accounts
        }
        self._bound: dict[str, tuple[Callable[[str], Any], Callable[[str, str], None]]] = {}
        """account -> (take_over, lose) of the runtime that trades it here (`bind`)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ee-ownership", daemon=True)

    def bind(
        self,
        account: str,
        take_over: Callable[[str], Any],
        lose: Callable[[str, str], None],
    ) -> None:
        """How `account` is taken over (reconcile, may raise to retry at the next tick) and
        lost (close its gate, must not raise); bound by its runtime before `start()`."""
        self._bound[account] = (take_over, lose)

    def take_over(self, account: str) -> Any:
        bound = self._bound.get(account)
        return None if bound is None else bound[0](account)

    def lose(self, account: str, reason: str) -> None:
        bound = self._bound.get(account)
        if bound is not None:
            bound[1](account, reason)

    # --- what the engine asks -------------------------------------------------------------

    def owns(self, account: str) -> bool:
        """True once the account was taken over (lease held, grace waited, reconciled)."""
        return account in self._owned

    def leased(self, account: str) -> bool:
        """True while this instance holds `account`'s lease (taken over or not yet)."""
        keeper = self._keepers.get(account)
        return keeper is not None and keeper.lease is not None

    def owned(self) -> list[str]:
        with self._lock:
            return sorted(self._owned)

    def require(self, account: str) -> None:
        """Nothing when this instance trades `account`; `AccountNotOwnedError` naming the
        owner (and its advertised URL) otherwise."""
        if account in self._owned:
            return
        holder = owner_of(self._db, account) if account in self._keepers else None
        if holder is None or not holder.held or holder.owner == self.owner:
            # Nobody holds it, or this instance does and has not finished taking it over.
            raise AccountNotOwnedError(account=account)
        raise AccountNotOwnedError(
            account=account, owner=holder.owner, advertise_url=holder.advertise_url
        )

    def check_fresh(self, account: str) -> None:
        """Right before an `order_send` on `account`: raises `LeaseLostError` unless this
        instance checked its lease successfully within `fresh_seconds` (see FRESH_TICKS)."""
        keeper = self._keepers.get(account)
        lease = None if keeper is None else keeper.lease
        verified = None if keeper is None else keeper.verified_at
        if lease is None or verified is None:
            raise LeaseLostError(account=account, epoch=None)
        age = self._clock.monotonic() - verified
        if age > self.fresh_seconds:
            raise LeaseLostError(
                f"account {account!r}: lease last verified {age:.2f} s ago, more than "
                f"{self.fresh_seconds:.2f} s: not sent, a standby may be taking over",
                account=account,
                epoch=lease.epoch,
            )

    def fence(self, connection: Connection, account: str) -> None:
        """In the write-ahead transaction: raises `LeaseLostError` unless this instance
        still holds `account`'s lease."""
        keeper = self._keepers.get(account)
        if keeper is None:
            raise LeaseLostError(account=account, epoch=None)
        keeper.fence(connection)

    # --- the thread -----------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop ticking and release every lease (a standby may take the accounts)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        for keeper in self._keepers.values():
            keeper.release()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # a bug must not stop the lease checks
                log.exception("ownership tick failed")
            self._stop.wait(self.tick_seconds)

    def tick(self) -> None:
        """Check (or try to take) every lease; take over the accounts whose grace ended."""
        for keeper in self._keepers.values():
            keeper.tick()
        now = self._clock.monotonic()
        with self._lock:
            ready = [a for a, due in self._due.items() if due <= now]
        for account in ready:
            self._take_over(account)

    def _take_over(self, account: str) -> None:
        keeper = self._keepers[account]
        if keeper.lease is None:
            return
        try:
            self.take_over(account)
        except Exception as exc:
            log.warning("account %s: takeover deferred to the next check: %s", account, exc)
            return
        with self._lock:
            if self._due.pop(account, None) is None or keeper.lease is None:
                return  # lost meanwhile: `_changed` closed the gate again
            self._owned.add(account)
        log.warning("account %s: taken over by %s", account, self.owner)

    def _changed(self, change: LeaseChange) -> None:
        account = change.account
        if change.event is LeaseEvent.ACQUIRED:
            with self._lock:
                self._due[account] = self._clock.monotonic() + self.grace_seconds
            return
        with self._lock:
            self._due.pop(account, None)
            self._owned.discard(account)
        self.lose(account, f"account {account!r}: lease {change.event.value}: {change.reason}")


def ownership_from_settings(
    settings: Any, database_url: str, db: Engine, clock: Clock, accounts: Sequence[str]
) -> Ownership | None:
    """The hot standby's `Ownership` when EE_STANDBY is on (or implied), else None.

    Raises `ConfigurationError` when it is on and the store is not PostgreSQL."""
    if not settings.standby_enabled:
        return None
    if db.dialect.name != "postgresql":
        raise ConfigurationError(
            "EE_STANDBY needs PostgreSQL (DATABASE_URL): SQLite is single-instance"
        )
    return Ownership(
        database_url=database_url,
        accounts=accounts,
        owner=settings.instance_name or default_instance_name(),
        advertise_url=settings.advertise_url,
        clock=clock,
        db=db,
        takeover_seconds=settings.takeover_seconds,
    )


__all__ = [
    "FRESH_TICKS",
    "GRACE_TICKS",
    "TICKS_PER_TAKEOVER",
    "Ownership",
    "default_instance_name",
    "ownership_from_settings",
]
