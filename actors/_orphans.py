"""Background recovery: orphan executions, late appearances and writes the store refused.

An OrderActor that died (a crash, or a write the store refused) leaves an orphan
execution; a halt adopts every execution without a live OrderActor. A thread of its own
reconciles them with the terminal exactly as startup recovery does, checks now and then
that no execution settled NOT_SENT has an order at the terminal after all, and writes the
engine events and the trading state the store could not take when they happened. It
never runs two reconciliations at once: `reconcile` is the one way in for the Supervisor's
own passes (start, resume) too.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import pykka
from sqlalchemy import Engine

from actors._corrections import LateAppearances
from actors._order_registry import OrderRegistry
from actors._recovery_report import RecoveryConfig, RecoveryReport
from actors._shared import MarginBook
from actors._supervisor_config import SupervisorConfig
from actors.alerts import Alerts
from actors.broker import BrokerProxy
from actors.kill_switch import KillSwitch
from actors.metrics import EngineMetrics
from actors.persistence import write_and_wait
from actors.recovery import Reconciler
from core.clock import Clock, utc_micros
from core.errors import PersistenceError, ReconciliationError
from core.settings import Settings
from storage.ops import WriteOp
from storage.repository import Repository

log = logging.getLogger(__name__)


class BackgroundRecovery:
    """The recovery thread and the engine events waiting for the store."""

    def __init__(
        self,
        *,
        config: SupervisorConfig,
        settings: Settings,
        clock: Clock,
        broker: Callable[[], BrokerProxy],
        persistence: Callable[[], pykka.ActorRef[Any]],
        repository: Repository,
        db: Engine,
        orders: OrderRegistry,
        kill_switch: KillSwitch,
        children_alive: Callable[[], bool],
        alerts: Alerts,
        metrics: EngineMetrics | None,
        margin: MarginBook | None,
        account: str | None = None,
    ) -> None:
        """`account`: reconcile only that account's executions (its terminal's); None: all."""
        self._config = config
        self._clock = clock
        self.reconciler = Reconciler(
            broker,
            persistence,
            repository,
            db,
            clock,
            RecoveryConfig(
                reconcile_window=settings.reconcile_window_seconds,
                ask_timeout=settings.ask_timeout_seconds,
                pip_overrides=dict(settings.pip_size_overrides),
                account=account,
            ),
            on_final=metrics.execution_final if metrics is not None else None,
            margin=margin,
            on_unknown=metrics.unknown if metrics is not None else None,
        )
        self._late = LateAppearances(
            self.reconciler.broker,
            persistence,
            repository,
            db,
            clock,
            lookback=config.late_lookback,
            ask_timeout=settings.ask_timeout_seconds,
            pip_overrides=dict(settings.pip_size_overrides),
            on_correction=metrics.corrected if metrics is not None else None,
            account=account,
        )
        self._orders = orders
        self._kill_switch = kill_switch
        self._persistence = persistence
        self._repository = repository
        self._account = account
        self._children_alive = children_alive
        self._alerts = alerts
        self._metrics = metrics
        self._lock = threading.Lock()
        self._reconcile_lock = threading.Lock()
        self._pending: list[WriteOp] = []
        self._late_due = 0.0
        self.stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.owned: Callable[[], list[str]] | None = None
        """Hot standby: the accounts this instance owns (None: all); the others' executions
        are never reconciled here."""

    # --- the thread -----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="ee-recovery", daemon=True)
        self._thread.start()

    def stop(self, timeout: float) -> None:
        self.stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def wake(self) -> None:
        """Run a pass soon (an orphan to reconcile, or something to write)."""
        self._wake.set()

    def _loop(self) -> None:
        while not self.stopping.is_set():
            self._wake.wait(self._config.recovery_interval)
            self._wake.clear()
            if self.stopping.is_set():
                return
            try:
                self.flush_pending()
                self._recover_orphans()
                self._check_late()
            except (PersistenceError, ReconciliationError, pykka.ActorDeadError) as exc:
                log.warning("recovery pass deferred: %s", exc)
            except Exception:
                log.exception("recovery pass failed")

    # --- engine events waiting for the store ----------------------------------------------

    def journal(self, event_type: str, payload: dict[str, Any]) -> None:
        """Queue an engine event (from any thread, never blocks); the next pass writes it."""
        op = WriteOp(
            execution_id=None,
            event_type=event_type,
            payload=payload,
            engine_time_us=utc_micros(self._clock.now()),
        )
        with self._lock:
            self._pending.append(op)
        self._wake.set()

    def flush_pending(self) -> None:
        """Write what the store could not take before; raises while it still cannot."""
        timeout = min(self._config.ask_timeout, 2.0)
        self._kill_switch.flush(timeout)
        with self._lock:
            events, self._pending = self._pending, []
        if events:
            try:
                write_and_wait(self._persistence(), events, timeout)
            except (PersistenceError, pykka.ActorDeadError):
                with self._lock:
                    self._pending = events + self._pending
                raise

    # --- reconciliation -------------------------------------------------------------------

    def reconcile(
        self,
        execution_ids: list[str],
        when: str,
        present: Callable[[], Mapping[str, int]] | None = None,
    ) -> RecoveryReport:
        """One reconciliation pass (`wait=False`), alerting on failures; `present` first asks
        the terminal which client ids it has orders for (None: each looks itself up)."""
        with self._reconcile_lock:
            found = None
            if present is not None:
                try:
                    found = present()
                except ReconciliationError as exc:
                    log.warning("startup recovery looks up each execution: %s", exc)
            report = self.reconciler.run(
                execution_ids, wait=False, stop=self.stopping, present=found
            )
        self._reconciled(report, when)
        return report

    def _reconciled(self, report: RecoveryReport, when: str) -> None:
        if not report.failures:
            return
        if self._metrics is not None:
            self._metrics.reconcile_failed(len(report.failures))
        self._alerts.alert(
            "reconciliation_failed",
            f"reconciliation failed {when}: {report.error()}",
            executions=len(report.failures),
        )

    def _recover_orphans(self) -> None:
        orphans = self._orders.orphans()
        if not orphans or not self._children_alive():
            return
        report = self.reconcile(orphans, "in the background")
        self._orders.settled(set(orphans) - set(report.waiting) - set(report.failures))
        if report.resolved:
            log.info("recovered orphan executions: %s", report.summary())

    def _check_late(self) -> None:
        now = self._clock.monotonic()
        if now < self._late_due or not self._children_alive():
            return
        if self.owned is not None and not self.owned():
            return  # a standby: the owner corrects its own late fills
        self._late_due = now + self._config.late_interval
        with self._reconcile_lock:
            self._late.check()

    def reconcile_all(self) -> None:
        """Queue every execution that is not final and has no live OrderActor."""
        if self.owned is None:
            ids = {r.execution_id for r in self._repository.non_final(account=self._account)}
        else:
            ids = {
                r.execution_id
                for a in self.owned()
                if self._account in (None, a)
                for r in self._repository.non_final(account=a)
            }
        self._orders.adopt(ids)
        self._wake.set()

    def orphans(self) -> int:
        return self._orders.orphan_count()


__all__ = ["BackgroundRecovery"]
