"""The one door to the terminal: connect, call, `last_error`, IPC retry, the fence.

The MetaTrader5 module is one process-global IPC connection and is not thread-safe; the
BrokerActor's thread is the only one that uses a `TerminalLink`. The link counts and times
every call, reads `last_error()` in the same turn as the call it explains, reconnects after
an IPC failure (an info call is retried once; an `order_send` never is: it may have
executed), and refuses every call once it is closed or fenced (its broker was replaced, and
two threads must never share the connection).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from actors._broker_config import BrokerConfig
from actors._failures import FencedError, TerminalClosedError
from actors._terminal_identity import IdentityGuard, identity_of
from actors._terminal_watch import TerminalWatch
from actors.metrics import EngineMetrics
from core.rules.retcodes import (
    RES_E_INTERNAL_FAIL_CONNECT,
    RES_E_INTERNAL_FAIL_INIT,
    RES_E_INTERNAL_FAIL_RECEIVE,
    RES_E_INTERNAL_FAIL_SEND,
    RES_E_INTERNAL_FAIL_TIMEOUT,
)
from terminals.base import Terminal

log = logging.getLogger(__name__)

IPC_ERRORS = frozenset(
    {
        RES_E_INTERNAL_FAIL_SEND,
        RES_E_INTERNAL_FAIL_RECEIVE,
        RES_E_INTERNAL_FAIL_INIT,
        RES_E_INTERNAL_FAIL_CONNECT,
        RES_E_INTERNAL_FAIL_TIMEOUT,
    }
)
"""The `last_error` codes that mean the IPC link itself failed."""

LastError = tuple[int, str]


class TerminalLink:
    """One broker incarnation's connection to the terminal (used from its thread only,
    except `closed`, which another thread may set to stop it for good).

    connected: the last call or connect found the link up; False makes the next call
        reconnect first. closed: why this link may no longer call the terminal ("" while
        it may). last_ticket: the last order ticket the terminal gave us; a remade link
        must still know it (see `actors._terminal_identity`).
    """

    def __init__(
        self,
        terminal: Terminal,
        config: BrokerConfig,
        watch: TerminalWatch,
        metrics: EngineMetrics | None = None,
        identity: IdentityGuard | None = None,
        fence: threading.Event | None = None,
    ) -> None:
        self.terminal = terminal
        self.watch = watch
        self.connected = False
        self.closed = ""
        self.last_ticket: int | None = None
        self.calls: dict[str, int] = {}
        self.reconnects = 0
        self._config = config
        self._metrics = metrics
        self._identity = identity
        self._fence = fence
        """Set by the Supervisor when it replaced this link's broker: no call goes out."""
        self._pending_error: LastError | None = None
        self._on_connect: list[Callable[[], None]] = []

    def on_connect(self, forget: Callable[[], None]) -> None:
        """`forget()` runs after every successful connect: a new connection may be a new
        terminal, and what was learned from the old one must go."""
        self._on_connect.append(forget)

    # --- connecting -----------------------------------------------------------------------

    def connect(self) -> bool:
        identity = self._identity
        accepting = identity is not None and identity.accepting()
        if self.closed or not (self.watch.may_try() or accepting):
            return False  # replaced, or the last attempt failed too recently (paced)
        kwargs: dict[str, Any] = {}
        if self._config.login is not None:
            kwargs["login"] = self._config.login
        if self._config.password is not None:
            kwargs["password"] = self._config.password
        if self._config.server is not None:
            kwargs["server"] = self._config.server
        args = (self._config.path,) if self._config.path else ()
        started = self.watch.now()
        cause = ""
        try:
            ok = bool(self.call("initialize", *args, **kwargs))
            if ok and identity is not None:
                cause = self._verify_identity(identity)
                ok = not cause
        except Exception as exc:
            log.warning("terminal initialize raised", exc_info=True)
            ok = False
            cause = f"initialize raised {type(exc).__name__}: {exc}"
        if ok:
            self.connected = True
            for forget in self._on_connect:
                forget()
            self.watch.link_up()
        else:
            if not cause:
                error = self.last_error()
                self._pending_error = error  # still the caller's to read
                cause = f"initialize failed: {error}"
            log.warning("%s: %s", self.watch.where, cause)
            took = self.watch.now() - started
            if identity is not None and cause == identity.mismatch:
                took = max(took, 1.0)  # a refused terminal is checked again once a second
            self.watch.link_failed(cause, took)
        return ok

    def _verify_identity(self, identity: IdentityGuard) -> str:
        """ "" when the terminal just connected is the one the journal knows (and still
        knows our last order); else why it may not be used. See `actors._terminal_identity`."""
        account = self.call("account_info")
        terminal = self.call("terminal_info")
        if account is None or terminal is None:
            return f"account_info / terminal_info failed after initialize: {self.last_error()}"
        accepting = identity.accepting()
        refusal = identity.check(identity_of(account, terminal), self.watch.where)
        if refusal or accepting:
            if accepting:
                self.last_ticket = None
            return refusal
        ticket = self.last_ticket
        if ticket is None:
            return ""
        found = self.call("orders_get", ticket=ticket) or self.call(
            "history_orders_get", ticket=ticket
        )
        if found:
            return ""
        error = self.last_error()
        if error[0] in IPC_ERRORS:
            return f"history_orders_get failed after initialize: {error}"
        return identity.refuse(
            f"{self.watch.where} does not know order {ticket}, which it accepted before the "
            "link was remade: its history is gone (a restarted or another terminal); trading "
            "halts until an admin resumes, which accepts it"
        )

    def shutdown(self) -> None:
        """Detach from the terminal, unless it now belongs to a newer incarnation."""
        if self.closed:
            return
        try:
            self.terminal.shutdown()
        except Exception:
            log.debug("terminal shutdown failed", exc_info=True)

    # --- calling ----------------------------------------------------------------------------

    def call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call `name` on the terminal once; None results keep their `last_error` for
        `last_error()`. Raises `TerminalClosedError` (nothing called) once closed."""
        if self._fence is not None and self._fence.is_set():
            raise FencedError(f"broker was replaced; {name} not called")
        if self.closed:
            raise TerminalClosedError(f"{self.closed}; {name} not called")
        self.calls[name] = self.calls.get(name, 0) + 1
        self._pending_error = None
        started = time.perf_counter()
        self.watch.call_started(name)
        try:
            result = getattr(self.terminal, name)(*args, **kwargs)
        except Exception as exc:
            self._report(name, "exception", started)
            self.watch.link_failed(f"{name} raised {type(exc).__name__}: {exc}")
            raise
        finally:
            self.watch.call_ended()
        if result is None:
            # last_error() explains this call only if read before the next call.
            self._pending_error = self._read_last_error()
            ipc = self._pending_error[0] in IPC_ERRORS
            outcome = "ipc_error" if ipc else "none"
            if ipc:
                self.watch.link_failed(f"{name} failed: {self._pending_error}")
        else:
            outcome = "ok"
            if name != "initialize":  # initialize answers False, not None: see connect
                self.watch.link_up()
        self._report(name, outcome, started)
        return result

    def _report(self, name: str, outcome: str, started: float) -> None:
        if self._metrics is not None:
            self._metrics.terminal_call(name, outcome, time.perf_counter() - started)

    def last_error(self) -> LastError:
        """What the last call that returned None failed with (read in its turn)."""
        if self._pending_error is not None:
            error, self._pending_error = self._pending_error, None
            return error
        return self._read_last_error()

    def _read_last_error(self) -> LastError:
        if self.closed:
            return (RES_E_INTERNAL_FAIL_CONNECT, f"No IPC connection: {self.closed}")
        try:
            code, text = self.terminal.last_error()
            return int(code), str(text)
        except Exception:
            return (RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection")

    def info(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, LastError | None]:
        """An info call: safe to repeat, so one reconnect-and-retry on an IPC failure."""
        for attempt in range(2):
            if not self.connected and not self.connect():
                return None, self.last_error()
            try:
                result = self.call(name, *args, **kwargs)
            except Exception as exc:
                log.warning("terminal %s raised %r", name, exc)
                self.connected = False
                self.reconnects += 1
                continue
            if result is not None:
                return result, None
            error = self.last_error()  # read in the same turn as the call it explains
            if error[0] in IPC_ERRORS and attempt == 0:
                self.connected = False
                self.reconnects += 1
                continue
            return None, error
        return None, self.last_error()


__all__ = ["IPC_ERRORS", "LastError", "TerminalLink"]
