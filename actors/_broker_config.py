"""What the BrokerActor and its controllers need from the settings (`BrokerConfig`).

A leaf module, so the controllers under `actors/broker.py` read it without importing the
actor; `actors.broker` re-exports it, the import path the rest of the engine uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta


@dataclass(frozen=True, slots=True)
class BrokerConfig:
    """What the BrokerActor needs from the settings.

    magic: stamped on every order so reconciliation can tell ours from others (default 770001).
    client_id_prefix: start of our order comments; a fallback match never takes an order
        that still carries another execution's client id.
    tick_window / account_window / margin_window: coalescing windows in seconds.
    send_quote_window: how old a cached quote may be to price a send on a Market or
        Exchange execution symbol, where the server fills at its own price and the request
        price is not checked (Instant and Request execution always use `tick_window`).
        Under load this spares most sends a tick read of their own.
    market_closed_backoff: how long a 10018 keeps a symbol marked closed before it is probed again.
    poll_interval: seconds between passes of the shared poll.
    login/password/server/path: passed to `initialize`; the password is never logged.
    history_pad: how far the history windows of reconciliation reach past their bounds
        (broker times are server times in an unknown zone).
    terminal_wait: how long a send may wait for a terminal that does not answer (its link
        known down, or one call unanswered that long) before it is answered NOT_SENT.
    """

    magic: int = 770001
    client_id_prefix: str = "ee"
    tick_window: float = 0.05
    account_window: float = 0.25
    margin_window: float = 1.0
    send_quote_window: float = 0.5
    market_closed_backoff: float = 60.0
    poll_interval: float = 0.1
    login: int | None = None
    password: str | None = field(default=None, repr=False)
    server: str | None = None
    path: str | None = None
    history_pad: timedelta = timedelta(days=2)
    terminal_wait: float = 10.0


__all__ = ["BrokerConfig"]
