"""The Supervisor's watchdog: what halts trading on its own, besides a restart storm.

It watches the terminal's connection (a halt after `disconnect_halt_after` seconds
disconnected), the journal (a failed write halts until `resume`), the terminal's identity
(a terminal the journal does not know halts), and the sends queued behind a terminal that
stopped answering (answered NOT_SENT once `terminal_wait` has passed). Each pass runs on
the Supervisor's own thread; the callbacks from the Persistence and Broker actors only
note what they saw and wake it, never block.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, cast

import pykka

from actors._children import Child, Children, RestartWindow
from actors._supervisor_config import SupervisorConfig
from actors._terminal_identity import TERMINAL_IDENTIFIED, Identity, IdentityGuard
from actors._terminal_watch import TerminalWatch, describe_terminal
from actors.alerts import Alerts
from actors.broker import BrokerProxy
from actors.kill_switch import TradingSwitch
from actors.metrics import EngineMetrics
from core.clock import Clock
from core.enums import JournalEventType
from core.errors import ReconciliationError, TicketConflictError
from terminals.base import Terminal

log = logging.getLogger(__name__)


class Watchdog:
    """Connection, journal-failure and terminal-identity halts; see the module docstring."""

    def __init__(
        self,
        *,
        config: SupervisorConfig,
        clock: Clock,
        terminal: Terminal,
        terminal_wait: float,
        alerts: Alerts,
        metrics: EngineMetrics | None,
        switch: TradingSwitch,
        halt: Callable[[str], None],
        wake: Callable[[], None],
        journal: Callable[[str, dict[str, Any]], None],
    ) -> None:
        """`halt(reason)` halts automatically; `wake()` asks for a pass soon; `journal(
        event_type, payload)` queues an engine event for the recovery thread to write."""
        self._config = config
        self._clock = clock
        self._terminal = terminal
        self._terminal_wait = terminal_wait
        self._alerts = alerts
        self._metrics = metrics
        self._switch = switch
        self._halt = halt
        self._wake = wake
        self._journal = journal
        self.journal_error: str | None = None
        """The last journal write that failed, until `resume` (trading halted meanwhile)."""
        self.identity_error: str | None = None
        """Why the terminal is refused (a terminal the journal does not know, or a ticket it
        reused), until an admin's `resume` accepts it."""
        self._connected: bool | None = None
        self._disconnected_since: float | None = None
        self._disconnect_alerted = False
        self._health_future: pykka.Future[dict[str, Any]] | None = None
        self._health_sent = 0.0
        self._next_health = 0.0
        self.identity = IdentityGuard(self._identity_first, self._identity_refused)
        """The account and terminal the journal knows (see `actors._terminal_identity`)."""
        self.terminal_watch = self.new_terminal_watch()
        """The current broker incarnation's view of the terminal."""
        if metrics is not None:
            metrics.bind_terminal(self.disconnected_for)

    def new_terminal_watch(self) -> TerminalWatch:
        """The view of the terminal for a new BrokerActor incarnation (and this watchdog)."""
        watch = TerminalWatch(describe_terminal(self._terminal), self._clock.monotonic)
        self.terminal_watch = watch
        return watch

    # --- one pass -------------------------------------------------------------------------

    def check(self, broker: Child, children: Children, window: RestartWindow) -> None:
        """One pass, after the children were checked: bound the sends waiting on a stuck
        terminal, look at the connection, and halt on the first reason found."""
        self._bound_terminal_wait()
        self._check_connection(broker)
        if self._switch.halted:
            return
        if children.escalated:
            self._alerts.alert("restart_intensity", children.escalated)
            self._halt(children.escalated)
        elif window.exceeded():
            why = (
                f"restart intensity exceeded: more than {window.intensity} restarts "
                f"and actor crashes within {window.period:g} s"
            )
            self._alerts.alert("restart_intensity", why, restarts=window.count())
            self._halt(why)
        elif self.journal_error is not None:
            self._halt(f"journal writes failing: {self.journal_error}")
        elif self.identity_error is not None:
            self._halt(self.identity_error)

    def _bound_terminal_wait(self) -> None:
        """The sends queued behind a terminal that has not answered for
        `EE_TERMINAL_WAIT_SECONDS` are answered NOT_SENT now, even while the BrokerActor is
        stuck in a call (a frozen terminal): none of them reached order_send."""
        watch = self.terminal_watch
        stall = watch.stall()
        if stall is not None and stall[0] >= self._terminal_wait:
            watch.drain(
                f"not sent: {watch.stall_text()}; a send waits at most "
                f"{self._terminal_wait:g} s (EE_TERMINAL_WAIT_SECONDS)"
            )

    def _check_connection(self, broker: Child) -> None:
        now = self._clock.monotonic()
        if not broker.alive():
            self._health_future = None
            return
        future = self._health_future
        if future is None:
            if now >= self._next_health:
                self._health_future = _broker(broker).health()
                self._health_sent = now
            return
        try:
            health = future.get(timeout=0)
        except pykka.Timeout:
            if now - self._health_sent > self._config.heartbeat_timeout:
                self._health_future = None  # the heartbeat deals with a hung broker
            return
        except Exception:
            health = {"connected": False}
        self._health_future = None
        self._next_health = now + self._config.connection_interval
        self._note_connection(bool(health.get("connected")), now)

    def _note_connection(self, connected: bool, now: float) -> None:
        self._connected = connected
        if connected:
            self._disconnected_since = None
            self._disconnect_alerted = False
            return
        if self._disconnected_since is None:
            self._disconnected_since = now
            return
        down = now - self._disconnected_since
        limit = self._config.disconnect_halt_after
        if down >= limit and not self._disconnect_alerted:
            self._disconnect_alerted = True  # once per outage, halted already or not
            self._alerts.alert(
                "terminal_disconnected",
                f"terminal disconnected for {down:.1f} s (limit {limit:g} s)",
                seconds=round(down, 1),
            )
        if down >= limit and not self._switch.halted:
            self._halt(f"terminal disconnected for {down:.1f} s (limit {limit:g} s)")

    # --- resume ---------------------------------------------------------------------------

    def accept_terminal(self, by: str) -> None:
        """At an admin's resume: a refused terminal now connected becomes the known one."""
        if self.identity_error is not None:
            self.identity.accept_next(by)
            self.identity_error = None

    def require_connected(self, broker: Child) -> None:
        """Raises `ReconciliationError` unless the broker answers that it is connected."""
        try:
            health = _broker(broker).health().get(timeout=self._config.ask_timeout)
        except (pykka.ActorDeadError, pykka.Timeout) as exc:
            raise ReconciliationError(f"not resumed: the broker does not answer ({exc})") from exc
        if not health.get("connected"):
            raise ReconciliationError("not resumed: the terminal is not connected")
        self._note_connection(True, self._clock.monotonic())

    def resumed(self) -> None:
        """The checks of a resume passed: past failures no longer halt."""
        self.journal_error = None
        self._disconnected_since = None

    # --- from other actors' threads (never block) -----------------------------------------

    def _identity_first(self, identity: Identity, how: str) -> None:
        """From a BrokerActor's thread: journal the identity now known."""
        log.info("terminal identity %s: %s", how, identity)
        self._journal(TERMINAL_IDENTIFIED, {"identity": identity, "how": how})

    def _identity_refused(self, reason: str, seen: Identity) -> None:
        """From a BrokerActor's thread: a terminal the journal does not know. Loud, journaled
        once, and trading halts (on the Supervisor's thread: this one must not block)."""
        if self.identity_error == reason:
            return
        log.error("%s (seen: %s)", reason, seen or "-")
        self.identity_error = reason
        self._journal(JournalEventType.TERMINAL_REFUSED, {"reason": reason, "seen": seen})
        self._wake()

    def journal_result(self, exc: BaseException | None) -> None:
        """From the PersistenceActor's thread: never blocks, never writes. A failure stays
        noted (and trading halted) until `resume()`."""
        if exc is not None:
            if self._metrics is not None:
                self._metrics.journal_failed()
            self._alerts.alert("journal_write_failure", f"journal write failed: {exc}")
        if isinstance(exc, TicketConflictError):
            log.critical("%s", exc.message)  # loud: the terminal reused a ticket
            self.identity_error = exc.message  # halts; an admin's resume decides
            self._wake()
        elif exc is not None:
            self.journal_error = str(exc)
            self._wake()

    # --- health ---------------------------------------------------------------------------

    def disconnected_for(self) -> float:
        since = self._disconnected_since
        return 0.0 if since is None else max(self._clock.monotonic() - since, 0.0)

    def broker_health(self) -> dict[str, Any]:
        """The `broker` part of `/health`; never waits on an actor."""
        since = self._disconnected_since
        down = None if since is None else round(self._clock.monotonic() - since, 3)
        watch = self.terminal_watch
        stall = watch.stall()
        # Not answering for a moment is a slow call; for half the send wait, a fault.
        answering = stall is None or stall[0] < self._terminal_wait / 2
        connected = self._connected
        if watch.unreachable():
            connected = False  # known down, whatever the last health answer said
        return {
            "connected": connected,
            "disconnected_seconds": down,
            "terminal_answering": answering,
            "terminal": watch.stall_text(),
        }


def _broker(child: Child) -> BrokerProxy:
    """The broker child's current proxy, typed (it is a `BrokerActor`'s)."""
    return cast(BrokerProxy, child.current_proxy())


__all__ = ["Watchdog"]
