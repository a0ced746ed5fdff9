"""Is the terminal behind the link the one the journal knows?

A terminal restarted or replaced behind the same address is a new link like any other:
`initialize` succeeds, and an engine that asked no more would reconcile against the wrong
account or an empty history (a restarted simulator hands out order tickets from 50000001
again, and the same ticket was stored on two executions). So on every (re)connect the
BrokerActor reads the account (login, server, company) and the terminal (name, company,
path, data path: mt5-api.md, `account_info` and `terminal_info`) and asks this guard.

The first identity ever seen is journaled (`TERMINAL_IDENTIFIED`) and is the known one from
then on, across restarts. Another one is refused: the BrokerActor does not use the link,
and the Supervisor halts trading with the difference as its reason. An admin's `resume`
accepts the terminal then connected as the new known one (journaled again, with who).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from core.enums import JournalEventType

TERMINAL_IDENTIFIED = JournalEventType.TERMINAL_IDENTIFIED
"""Journal event (engine-wide) holding the known identity under "identity"."""

_ACCOUNT_FIELDS = ("login", "server", "company")
_TERMINAL_FIELDS = ("name", "company", "path", "data_path")

Identity = dict[str, Any]


def identity_of(account: Any, terminal: Any) -> Identity:
    """The fields that tell one account and terminal installation from another."""
    found: Identity = {}
    for prefix, source, fields in (
        ("account", account, _ACCOUNT_FIELDS),
        ("terminal", terminal, _TERMINAL_FIELDS),
    ):
        for name in fields:
            value = getattr(source, name, None)
            found[f"{prefix}_{name}"] = value if isinstance(value, int | str) else None
    return found


def difference(known: Identity, seen: Identity) -> str:
    """ "" when `seen` is `known`; else what differs, e.g. "account_login 5000001 -> 7"."""
    changed = [
        f"{key} {known.get(key)!r} -> {seen.get(key)!r}"
        for key in sorted(set(known) | set(seen))
        if known.get(key) != seen.get(key)
    ]
    return ", ".join(changed)


class IdentityGuard:
    """Shared by the Supervisor and every BrokerActor incarnation (thread-safe)."""

    def __init__(
        self,
        on_first: Callable[[Identity, str], None] | None = None,
        on_mismatch: Callable[[str, Identity], None] | None = None,
    ) -> None:
        self._lock = threading.Lock()
        self._known: Identity | None = None
        self._accept_by = ""
        self._mismatch = ""
        self._on_first = on_first
        self._on_mismatch = on_mismatch

    def set_known(self, known: Identity | None) -> None:
        with self._lock:
            self._known = dict(known) if known is not None else None

    @property
    def known(self) -> Identity | None:
        return self._known

    @property
    def mismatch(self) -> str:
        """Why the last terminal seen was refused ("" when it was not)."""
        return self._mismatch

    def accept_next(self, by: str) -> None:
        """The next identity seen becomes the known one (an admin's resume)."""
        with self._lock:
            self._accept_by = by or "admin"

    def check(self, seen: Identity, where: str) -> str:
        """ "" when `seen` may be used; else the reason it may not (the Supervisor halts)."""
        with self._lock:
            known = self._known
            accepted_by = self._accept_by
            if known is None or accepted_by:
                self._known = dict(seen)
                self._accept_by = ""
                self._mismatch = ""
                first = "first seen" if known is None else f"accepted by {accepted_by}"
            else:
                changed = difference(known, seen)
                # Journaled again at each link, so that the newest is near the journal's tail.
                first = "" if changed else "confirmed"
                self._mismatch = (
                    f"{where} is not the terminal the journal knows ({changed}): another "
                    "account or terminal is behind the link; trading halts until an admin "
                    "resumes, which accepts it"
                    if changed
                    else ""
                )
            mismatch = self._mismatch
        if first and self._on_first is not None:
            self._on_first(dict(seen), first)
        if mismatch and self._on_mismatch is not None:
            self._on_mismatch(mismatch, dict(seen))
        return mismatch

    def refuse(self, reason: str) -> str:
        """Record a refusal found by the BrokerActor itself (a history the terminal lost)."""
        with self._lock:
            self._mismatch = reason
        if self._on_mismatch is not None:
            self._on_mismatch(reason, {})
        return reason

    def accepting(self) -> bool:
        return bool(self._accept_by)


__all__ = [
    "TERMINAL_IDENTIFIED",
    "IdentityGuard",
    "difference",
    "identity_of",
]
