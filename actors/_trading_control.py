"""Trading control: halt, reduce-only and resume, with what each does to the engine.

The state and its rules are the kill switch's (`actors.kill_switch`); this module adds the
effects: a halt tells every live OrderActor to halt and hands every execution without one
to the recovery thread (PENDING rejected, open orders removed), and a resume first
revives the children, checks the terminal and reconciles, refusing on a failure.
"""

from __future__ import annotations

import logging
from typing import Any

import pykka

from actors._children import Child, Children
from actors._order_registry import OrderRegistry
from actors._orphans import BackgroundRecovery
from actors._recovery_report import RecoveryReport
from actors._watchdog import Watchdog
from actors.kill_switch import KillSwitch
from actors.messages import Halt
from core.errors import PersistenceError, ReconciliationError
from storage.repository import Repository

log = logging.getLogger(__name__)


class TradingControl:
    """`halt`, `halt_flatten_begins`, `reduce_only` and `resume` for the Supervisor."""

    def __init__(
        self,
        *,
        kill_switch: KillSwitch,
        orders: OrderRegistry,
        recovery: BackgroundRecovery,
        watchdog: Watchdog,
        children: Children,
        broker: Child,
        repository: Repository,
        account: str | None = None,
    ) -> None:
        self._kill_switch = kill_switch
        self._account = account
        self._orders = orders
        self._recovery = recovery
        self._watchdog = watchdog
        self._children = children
        self._broker = broker
        self._repository = repository

    def halt(self, reason: str, by: str, *, automatic: bool = False) -> None:
        """Stop trading. When this returns no `order_send` starts (the switch is the
        broker's gate), every execution not yet sent is rejected with TRADING_HALTED at its
        next stage, and orders still open are being removed. The change is persisted and
        journaled; if the store cannot take it now, it is written as soon as it can."""
        if not self._kill_switch.halt(reason, by, automatic=automatic):
            return
        for ref in self._orders.live().values():
            _tell(ref, Halt(reason))
        try:
            self._recovery.reconcile_all()  # orphans: PENDING rejected, open orders removed
        except PersistenceError:
            log.warning("cannot list open executions now; the recovery thread retries")

    def halt_flatten_begins(self, reason: str, by: str) -> None:
        """The first step of a halt that flattens: REDUCING (no opening send starts after
        this returns; the closes of the flatten pass the gate) and every live execution
        told to halt, as a halt does; `halt()` follows once the closes are settled."""
        self._kill_switch.halt_flatten_begins(reason, by)
        for ref in self._orders.live().values():
            _tell(ref, Halt(reason))

    def reduce_only(self, reason: str, by: str) -> None:
        """REDUCING: from here on only trades that reduce positions are sent; an opening
        part is refused (REDUCE_ONLY). When this returns no opening `order_send` is in
        progress. Persisted and journaled as a halt is. From HALTED it is refused
        (`TradingHaltedError`): leaving a halt, even for REDUCING, is the admin's resume."""
        self._kill_switch.reduce_only(reason, by)

    def resume(self, by: str, reason: str = "resumed") -> RecoveryReport:
        """Trade again (ACTIVE, from HALTED or REDUCING), only once the children are up,
        the terminal is connected, and a reconciliation pass over every execution without a
        live OrderActor met no failure (those still waiting for evidence go on in the
        background, as at start): raises `ReconciliationError` otherwise (or
        `PersistenceError`), and trading stays as it was."""
        return self._kill_switch.resume(reason, by, lambda: self._ready_to_resume(by))

    def _ready_to_resume(self, by: str) -> RecoveryReport:
        """The checks of a resume, under the kill switch's lock: raises to refuse it."""
        self._watchdog.accept_terminal(by)
        revived = self._children.revive()
        if revived:
            log.warning("resume revived %d actor(s)", revived)
        self._watchdog.require_connected(self._broker)
        self._recovery.flush_pending()
        ids = [
            r.execution_id
            for r in self._repository.non_final(account=self._account)
            if not self._orders.is_live(r.execution_id)
        ]
        report = self._recovery.reconcile(ids, "at resume")
        if report.failures:
            raise ReconciliationError(f"not resumed: reconciliation failed: {report.error()}")
        # As at start: executions still waiting for evidence are reconciled in the
        # background (their margin held); trading does not wait for their windows.
        self._orders.settled(set(ids) - set(report.waiting))
        self._orders.adopt(report.waiting)
        self._watchdog.resumed()
        return report


def _tell(ref: pykka.ActorRef[Any], message: Any) -> None:
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        return


__all__ = ["TradingControl"]
