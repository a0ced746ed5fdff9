"""Hot standby wired into the Supervisor: the gate follows the leases.

`standby(supervisor, ownership)` closes the kill switch's gate until an account is taken
over (the trading state itself, persisted and shared, is not touched), binds the takeover
(reconcile the account's unfinished executions against this instance's terminal, then
open the gate) and the loss (close the gate at once), and keeps the background recovery to
owned accounts: a standby never reconciles executions another instance is running.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from actors._ownership import Ownership
from actors._recovery_report import RecoveryReport
from core.errors import ReconciliationError

if TYPE_CHECKING:
    from actors.supervisor import Supervisor

log = logging.getLogger(__name__)

NOT_OWNED = "standby: this instance does not own the account"


def standby(supervisor: Supervisor, ownership: Ownership) -> None:
    """Bind `ownership` to `supervisor` (before either starts)."""
    switch = supervisor.kill_switch
    switch.fence(NOT_OWNED)
    wait = supervisor.config.ask_timeout

    def take_over(account: str) -> RecoveryReport:
        report = reconcile_account(supervisor, account)
        switch.fence(None)
        return report

    def lose(account: str, reason: str) -> None:
        if not switch.fence(reason, wait=wait):
            log.error(
                "account %s: an order_send was still running %s s after the loss", account, wait
            )

    account = supervisor.account
    ownership.bind(account, take_over, lose)
    switch.lease_check = lambda: ownership.check_fresh(account)
    supervisor.recovery.owned = ownership.owned


def reconcile_account(supervisor: Supervisor, account: str) -> RecoveryReport:
    """Reconcile `account`'s executions that have no live OrderActor here, as at start:
    those still waiting for evidence go on in the background. Raises
    `ReconciliationError` (the takeover is retried at the next check) on a failure."""
    recovery = supervisor.recovery
    orders = supervisor.orders
    recovery.reconciler.taken_over(account)
    ids = [
        r.execution_id
        for r in supervisor.repository.non_final(account=account)
        if not orders.is_live(r.execution_id)
    ]
    report = recovery.reconcile(ids, f"at takeover of account {account!r}")
    if report.failures:
        raise ReconciliationError(f"takeover of {account!r}: {report.error()}")
    orders.settled(set(ids) - set(report.waiting))
    orders.adopt(report.waiting)
    if report.examined:
        log.warning("takeover of account %s: %s", account, report.summary())
    return report


__all__ = ["NOT_OWNED", "reconcile_account", "standby"]
