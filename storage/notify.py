"""Trading-state changes pushed to every instance with PostgreSQL LISTEN/NOTIFY.

The journal writer calls `publish` in the transaction that persists a halt, reduce-only
or resume, and with hot standby on each instance runs one `Listener`
(`actors._firm_state`) whose callback updates that instance's send gate.

NOTIFY is transactional: the notification leaves only when the transaction that persisted
the state commits, and never for one rolled back. A notification sent while a listener is
disconnected is lost for it, so the listener re-reads the whole persisted state on every
(re)connect, after LISTEN (a change committed in between is then both read and notified;
only real differences reach the callback). `Listener.current_within` tells a halt gate
whether it may trust the pushed state or must re-read before a send.
"""

from __future__ import annotations

import json
import logging
import re
import select
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

from sqlalchemy import Connection, text

from core.clock import Clock, SystemClock
from storage.sessions import (
    DEFAULT_LIVENESS_SECONDS,
    SessionError,
    close_quietly,
    connect_args,
    dedicated_session,
)

log = logging.getLogger(__name__)

CHANNEL: Final = "ee_trading_state"
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")

States = Mapping[str, str]
"""Trading state by scope (e.g. "firm", or an account name)."""


def publish(connection: Connection, scope: str, state: str, channel: str = CHANNEL) -> None:
    """Tell every listening instance that `scope` is now `state`, when `connection`'s
    transaction commits. Call it in the transaction that persists the state. A no-op on
    SQLite, which is single-instance."""
    if connection.dialect.name != "postgresql":
        return
    payload = json.dumps({"scope": scope, "state": state}, separators=(",", ":"))
    connection.execute(
        text("SELECT pg_notify(:channel, :payload)"), {"channel": channel, "payload": payload}
    )


class Listener:
    """Hears trading-state changes on a dedicated session, in a background thread.

    `read_state` returns the whole persisted state; it is called on every (re)connect (and
    when a notification cannot be read). `on_change` gets the scopes whose state differs
    from what was last delivered; it runs on the listener's thread and must not block.
    Reconnects wait `backoff_seconds`, doubling up to `backoff_cap_seconds`.
    """

    def __init__(
        self,
        database_url: str,
        *,
        read_state: Callable[[], States],
        on_change: Callable[[States], None],
        clock: Clock | None = None,
        channel: str = CHANNEL,
        wait_seconds: float = 0.1,
        ping_seconds: float = 0.5,
        backoff_seconds: float = 0.1,
        backoff_cap_seconds: float = 2.0,
        liveness_seconds: float = DEFAULT_LIVENESS_SECONDS,
        connect: Callable[[], Any] | None = None,
    ) -> None:
        connect_args(database_url)  # refuses a URL that is not PostgreSQL, now
        if not _IDENTIFIER.fullmatch(channel):
            raise ValueError(f"channel {channel!r} is not a plain lower-case identifier")
        self._connect = connect or (
            lambda: dedicated_session(database_url, "listener", liveness_seconds)
        )
        self._read_state = read_state
        self._on_change = on_change
        self._clock = clock or SystemClock()
        self._channel = channel
        self._wait = wait_seconds
        self._ping = ping_seconds
        self._backoff_range = (backoff_seconds, backoff_cap_seconds)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._known: dict[str, str] = {}
        self._session: Any = None
        self._alive_at: float | None = None
        self._thread = threading.Thread(target=self._run, name="state-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop listening and join the thread (at most `timeout` seconds)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def connected(self) -> bool:
        return self._session is not None

    @property
    def backend_pid(self) -> int | None:
        session = self._session
        try:
            return None if session is None else int(session.get_backend_pid())
        except SessionError:
            return None  # closed meanwhile

    @property
    def states(self) -> dict[str, str]:
        """The state last delivered, by scope."""
        with self._lock:
            return dict(self._known)

    def current_within(self, seconds: float) -> bool:
        """True when the session was last proven alive at most `seconds` ago: a change
        persisted before then has been delivered. False means: re-read before trusting."""
        alive_at = self._alive_at
        return (
            self._session is not None
            and alive_at is not None
            and self._clock.monotonic() - alive_at <= seconds
        )

    def _run(self) -> None:
        backoff = self._backoff_range[0]
        while not self._stop.is_set():
            if self._session is None:
                if not self._open():
                    self._stop.wait(backoff)
                    backoff = min(self._backoff_range[1], backoff * 2)
                    continue
                backoff = self._backoff_range[0]
            try:
                self._listen_once()
            except (SessionError, OSError, ValueError) as exc:
                # ValueError: select() on a session whose socket is already closed (fd -1).
                log.warning("state listener lost its session: %s", type(exc).__name__)
                self._close()
        self._close()

    def _open(self) -> bool:
        try:
            session = self._connect()
        except (SessionError, OSError) as exc:
            log.warning("state listener cannot connect: %s", type(exc).__name__)
            return False
        try:
            with session.cursor() as cursor:
                cursor.execute(f"LISTEN {self._channel}")
            self._session = session
            self._reread()
        except Exception:  # the persisted state could not be read: not current, retry
            log.warning("state listener could not re-read the state", exc_info=True)
            self._close()
            return False
        return True

    def _listen_once(self) -> None:
        session = self._session
        readable, _, _ = select.select([session], [], [], self._wait)
        now = self._clock.monotonic()
        if readable:
            session.poll()  # raises when the server ended the session
            self._alive_at = now
        elif self._alive_at is None or now - self._alive_at >= self._ping:
            with session.cursor() as cursor:
                cursor.execute("SELECT 1")
            self._alive_at = now
        changes: dict[str, str] = {}
        while session.notifies:
            found = _parse(session.notifies.pop(0).payload)
            if found is None:
                self._reread()
                continue
            changes[found[0]] = found[1]
        if changes:
            self._deliver(changes)

    def _reread(self) -> None:
        self._deliver(dict(self._read_state()))
        self._alive_at = self._clock.monotonic()

    def _deliver(self, states: Mapping[str, str]) -> None:
        with self._lock:
            changed = {s: v for s, v in states.items() if self._known.get(s) != v}
            self._known.update(changed)
        if not changed:
            return
        try:
            self._on_change(changed)
        except Exception:  # a bug in the callback must not stop the pushes
            log.exception("state listener callback failed")

    def _close(self) -> None:
        session, self._session = self._session, None
        self._alive_at = None
        if session is not None:
            close_quietly(session)


def _parse(payload: str) -> tuple[str, str] | None:
    try:
        found = json.loads(payload)
        scope, state = found["scope"], found["state"]
    except (ValueError, TypeError, KeyError):
        return None
    return (scope, state) if isinstance(scope, str) and isinstance(state, str) else None


__all__ = ["CHANNEL", "Listener", "States", "publish"]
