"""Supervisor: starts, watches and restarts the actors; trading halts when it must.

Pykka has no supervision of its own, so this module builds it. The Supervisor starts the
PersistenceActor, then the BrokerActor, makes one reconciliation pass over every execution
that is not final (`actors.recovery`), and then lets trading become ACTIVE: executions
that must wait for evidence are reconciled in the background (`actors._orphans`) with
their margin held, so a restart does not wait out reconcile windows. It then sees every
way a Pykka actor can die:

- a `tell` that raised: Pykka calls `on_failure`, which the supervised actor reports;
- an exception in `on_start` (Pykka skips `on_failure`): the actor reports it itself;
- a hung actor: its `Heartbeat` ask (non-blocking) is not answered within the heartbeat
  timeout; the hung incarnation is fenced (it never acts again) and replaced;
- a dead reference met by anyone: `broker_proxy()` / `persistence_ref()` ask for a pass,
  which finds `is_alive()` false (every pass looks anyway).

Dead children are restarted one-for-one, OTP-style (`actors._children`); restarts and
OrderActor crashes count in one sliding window (not a failure on an execution's own data:
`actors._failures`). Past `restart_intensity` within `restart_period_seconds` the
restarting ends and trading halts; `resume()` revives the children after a successful
reconciliation. The trading state and its gate are `actors.kill_switch` (no send starts
after `halt()` returns); halt, reduce-only and resume are `actors._trading_control`; the
other automatic halts (terminal lost, journal failing, unknown terminal) are
`actors._watchdog`'s.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import pykka
from sqlalchemy import Engine

from actors._checkpoints import audit_from_settings, journal_tail_problem
from actors._child_specs import ChildFactory, broker_factory, persistence_factory
from actors._children import Child, Children, ChildState, RestartWindow
from actors._failures import is_own_failure
from actors._order_registry import OrderRegistry
from actors._orphans import BackgroundRecovery
from actors._ownership import Ownership
from actors._recovery_report import RecoveryReport
from actors._scheduler import Scheduler
from actors._shared import MarginBook
from actors._supervised import (
    ChildHooks,
    FaultPlan,
    SupervisedOrder,
)
from actors._supervisor_actor import ChildDied, OrderDied, SupervisorInbox
from actors._supervisor_config import SUPERVISOR, SupervisorConfig
from actors._takeover import standby
from actors._terminal_identity import TERMINAL_IDENTIFIED
from actors._trading_control import TradingControl
from actors._watchdog import Watchdog
from actors.alerts import alerts_from_settings
from actors.broker import BrokerConfig
from actors.kill_switch import KillSwitch
from actors.messages import NewExecution, Rewatch
from actors.metrics import EngineMetrics
from actors.order import OrderContext
from actors.probe import EngineFaults, EngineProbe
from core.accounts import DEFAULT_ACCOUNT
from core.clock import Clock
from core.enums import JournalEventType
from core.errors import PersistenceError
from core.models import TradingStateRecord
from core.settings import Settings
from storage.journal import check_audit_key
from storage.repository import Repository

log = logging.getLogger(__name__)


class Supervisor:
    """Owns the Persistence and Broker actors, the OrderActors' registry and the kill switch."""

    def __init__(
        self,
        *,
        terminal: Any,
        db: Engine,
        repository: Repository,
        settings: Settings,
        broker_config: BrokerConfig,
        clock: Clock,
        scheduler: Scheduler,
        metrics: EngineMetrics | None = None,
        config: SupervisorConfig | None = None,
        margin: MarginBook | None = None,
        ownership: Ownership | None = None,
        account: str = DEFAULT_ACCOUNT,
        shared_persistence: Callable[[], pykka.ActorRef[Any]] | None = None,
    ) -> None:
        """One account's supervision. `shared_persistence`: the PersistenceActor of another
        account's Supervisor, shared (one journal, one writer); None: this one starts and
        watches it (the first account's)."""
        self.account = account
        self._shared_persistence = shared_persistence
        self.journal_listeners: list[Callable[[BaseException | None], None]] = []
        """Other accounts' watchdogs, told each journal write's result (a failing journal
        halts every account)."""
        self.terminal = terminal
        self.ownership = ownership
        """Hot standby: the accounts this instance owns; None = it trades them all."""
        self.db = db
        self.repository = repository
        self.config = cfg = config or SupervisorConfig.from_settings(settings)
        self.faults = FaultPlan()
        self._clock = clock
        self._metrics = metrics
        self.orders = OrderRegistry()
        self._scheduler = scheduler
        self._stopping = threading.Event()
        self._inbox = SupervisorInbox()
        """The Supervisor's own actor: deaths and ticks arrive there as messages."""
        self.last_recovery: RecoveryReport | None = None
        self.window = RestartWindow(cfg.restart_intensity, cfg.restart_period, clock)
        self.kill_switch = KillSwitch(
            self.persistence_ref, clock, cfg.ask_timeout, self._retry, account=account
        )
        self.switch = self.kill_switch
        """The gate the BrokerActor and the OrderActors read (the kill switch itself)."""
        self.alerts = alerts_from_settings(settings, clock, metrics, [db.url.password or ""])
        """Webhook alerts (EE_ALERT_WEBHOOK_URL); `alerts.alert(kind, text, **fields)`."""
        self.kill_switch.on_change = self.alerts.state_changed
        self.audit_key, self.checkpoints = audit_from_settings(settings, clock, metrics)
        self.watchdog = Watchdog(
            config=cfg,
            clock=clock,
            terminal=terminal,
            terminal_wait=broker_config.terminal_wait,
            alerts=self.alerts,
            metrics=metrics,
            switch=self.switch,
            halt=lambda reason: self.halt(reason, SUPERVISOR, automatic=True),
            wake=self._inbox.check_soon,
            journal=self._journal,
        )

        persistence = persistence_factory(
            db=db,
            settings=settings,
            metrics=metrics,
            audit_key=self.audit_key,
            on_result=self._journal_result,
            on_head=self.checkpoints.note,
            ownership=ownership,
        )
        broker = broker_factory(
            terminal=terminal,
            broker_config=broker_config,
            clock=clock,
            scheduler=scheduler,
            metrics=metrics,
            switch=self.kill_switch,
            watchdog=self.watchdog,
        )
        specs: list[tuple[str, ChildFactory]] = [("broker", broker)]
        if self._shared_persistence is None:
            specs.insert(0, ("persistence", persistence))
        self.children = Children(
            specs,
            faults=self.faults,
            window=self.window,
            clock=clock,
            heartbeat_interval=cfg.heartbeat_interval,
            heartbeat_timeout=cfg.heartbeat_timeout,
            on_death=self._child_died,
            on_restarted=self._restarted,
        )
        self._persistence = (
            self.children.get("persistence") if self._shared_persistence is None else None
        )
        self._broker = self.children.get("broker")
        self.recovery = BackgroundRecovery(
            config=cfg,
            settings=settings,
            clock=clock,
            broker=self.broker_proxy,
            persistence=self.persistence_ref,
            repository=repository,
            db=db,
            orders=self.orders,
            kill_switch=self.kill_switch,
            children_alive=self.children.alive,
            alerts=self.alerts,
            metrics=metrics,
            margin=margin,
            account=account,
        )
        self.control = TradingControl(
            kill_switch=self.kill_switch,
            orders=self.orders,
            recovery=self.recovery,
            watchdog=self.watchdog,
            children=self.children,
            broker=self._broker,
            repository=repository,
            account=account,
        )
        self.probe = EngineProbe(
            children=self.children,
            orders=self.orders,
            switch=self.kill_switch,
            window=self.window,
            watchdog=self.watchdog,
            db=db,
            repository=repository,
        )
        """The read-only view drills, benchmarks and tests use."""
        self.fault_injection = EngineFaults(self.faults, self.children, self.orders)
        if ownership is not None:
            standby(self, ownership)

    @property
    def total_restarts(self) -> int:
        return self.children.total_restarts

    # --- start ----------------------------------------------------------------------------

    def start(self) -> RecoveryReport:
        """Start the children in order, reconcile once, set the trading state, then watch.

        Returns the report of the startup pass. What it settled is settled; executions whose
        order it did not find and cannot yet prove absent are left to the recovery thread
        (UNKNOWN to the RPM, their margin held, each settled once), so the engine takes new
        work at once instead of waiting out their reconcile windows. Trading is ACTIVE
        afterwards only when no reconciliation failed (the terminal answered, no broker-
        acknowledged order is missing) and the persisted state was ACTIVE; an engine that
        was REDUCING boots REDUCING, one that was HALTED boots HALTED.
        """
        self.alerts.start()
        check_audit_key(self.db, self.audit_key)
        tail_problem = None
        if self._shared_persistence is None:  # the journal's owner checks its tail
            tail_problem = journal_tail_problem(self.db, self.checkpoints.file, self.audit_key)
        if tail_problem is not None:
            log.critical("audit journal does not match its last checkpoint: %s", tail_problem)
        known = self.repository.last_engine_event(TERMINAL_IDENTIFIED, self.account)
        identity = known.payload.get("identity") if known is not None else None
        self.watchdog.identity.set_known(identity)
        self.children.start_all()
        if self._shared_persistence is None:
            self.checkpoints.start()
        try:
            self.recovery.flush_pending()  # the terminal's identity, before any execution
        except (PersistenceError, pykka.ActorDeadError) as exc:
            log.warning("terminal identity not journaled yet: %s", exc)
        persisted = self.repository.trading_state(self.account)
        # Hot standby: nothing is owned yet; each account is reconciled when taken over.
        records = self.repository.non_final(account=self.account) if self.ownership is None else []
        report = self.recovery.reconcile(
            [r.execution_id for r in records],
            "at start",
            present=lambda: self.recovery.reconciler.present(r for r in records if r.attempts),
        )
        self.last_recovery = report
        if report.examined:
            log.info("startup recovery: %s", report.summary())
        if report.waiting:
            self.orders.adopt(report.waiting)  # the recovery thread looks again, with back-off
        identity_error = self.watchdog.identity_error
        if tail_problem is not None:
            why = f"audit journal does not match its last checkpoint: {tail_problem}"
            self.halt(why, SUPERVISOR)
        elif identity_error is not None:
            self.halt(identity_error, SUPERVISOR)
        elif report.failures:
            self.halt(f"reconciliation failed at start: {report.error()}", SUPERVISOR)
        else:
            self.kill_switch.boot(persisted)
        self._inbox.start(
            watch_once=self._watch_once,
            order_died=self._count_order_death,
            scheduler=self._scheduler,
            tick=self.config.tick,
        )
        self.recovery.start()
        return report

    # --- the children as callers see them --------------------------------------------------

    def broker_proxy(self) -> Any:
        """The current BrokerActor's proxy (OrderActors call this for every request)."""
        if not self._broker.alive():
            self._inbox.check_soon()
        return self._broker.current_proxy()

    def persistence_ref(self) -> pykka.ActorRef[Any]:
        """The current PersistenceActor (a dead one makes `write_and_wait` fail cleanly)."""
        if self._shared_persistence is not None:
            return self._shared_persistence()
        assert self._persistence is not None
        ref = self._persistence.ref
        if ref is None:
            raise pykka.ActorDeadError("the persistence actor is not running")
        if not ref.is_alive():
            self._inbox.check_soon()
        return ref

    def start_order(self, job: NewExecution, ctx: OrderContext) -> pykka.ActorRef[Any]:
        """Start (and watch) the OrderActor of one execution."""
        execution_id = job.execution_id
        hooks = ChildHooks(
            f"order {execution_id}",
            lambda how, exc: self._order_died(execution_id, how, exc),
            self.faults,
        )
        with self.orders.starting(execution_id):  # live before its first write can land
            ref = SupervisedOrder.start(hooks, job, ctx)
            self.orders.add(execution_id, ref)
        return ref

    def order_finished(self, execution_id: str) -> None:
        self.orders.finished(execution_id)

    def live_orders(self) -> dict[str, pykka.ActorRef[Any]]:
        return self.orders.live()

    def is_live(self, execution_id: str) -> bool:
        return self.orders.is_live(execution_id)

    def in_flight(self) -> int:
        return len(self.orders)

    @property
    def order_crashes(self) -> int:
        return self.orders.crashes

    # --- deaths ---------------------------------------------------------------------------

    def _order_died(self, execution_id: str, how: str, exc: BaseException | None) -> None:
        # A write the store refused is the store's failure (it halts trading by itself),
        # not a crash of this actor: it does not count toward the restart intensity. Nor
        # does a failure on the execution's own data (`actors._failures`): one bad message,
        # repeated, must not halt all trading.
        crash = not isinstance(exc, PersistenceError)
        level = logging.ERROR if crash else logging.WARNING
        log.log(level, "the OrderActor of %s died (%s: %r)", execution_id, how, exc)
        self.orders.died(execution_id, crash=crash)  # callers see it gone at once
        death = OrderDied(execution_id, counts=crash and not is_own_failure(exc))
        if not self._inbox.tell(death):
            self._count_order_death(death)

    def _child_died(self, name: str) -> None:
        """From the dying child's thread, its death noted on the child: a pass soon."""
        self._inbox.tell(ChildDied(name))

    def _count_order_death(self, death: OrderDied) -> None:
        """On the Supervisor's actor (or inline while it is not running)."""
        if death.counts:
            self.window.record()
            if self._metrics is not None:
                self._metrics.restarted("order")
        self.recovery.wake()

    def _restarted(self, child: Child, why: str) -> None:
        """After a child's new incarnation started (on the Supervisor's actor)."""
        if self._metrics is not None:
            self._metrics.restarted(child.name)
        self._journal(JournalEventType.ACTOR_RESTARTED, {"actor": child.name, "why": why})
        if child is self._broker:
            for ref in self.live_orders().values():
                _tell(ref, Rewatch())  # the new broker knows no watched order
        self.recovery.wake()

    # --- the passes ----------------------------------------------------------------------

    def _watch_once(self) -> None:
        """One supervision pass, on the Supervisor's actor."""
        if self._stopping.is_set():
            return
        self.children.check_all()
        if self.orders.sweep_dead():
            self.recovery.wake()
        self.watchdog.check(self._broker, self.children, self.window)

    def _journal(self, event_type: str, payload: dict[str, Any]) -> None:
        """An engine event, written by the recovery thread (from any thread, never blocks);
        it names its account unless that is the default (whose journal is as before)."""
        if self.account != DEFAULT_ACCOUNT:
            payload = {**payload, "account": self.account}
        self.recovery.journal(event_type, payload)

    def _journal_result(self, exc: BaseException | None) -> None:
        """From the PersistenceActor's thread: every account's watchdog hears of it."""
        self.watchdog.journal_result(exc)
        for listener in self.journal_listeners:
            listener(exc)

    def _retry(self) -> None:
        """A trading state the store could not take: the recovery thread writes it."""
        self.recovery.wake()

    def reconcile_all(self) -> None:
        """Queue every execution that is not final and has no live OrderActor."""
        self.recovery.reconcile_all()

    def orphans(self) -> int:
        return self.recovery.orphans()

    def recovered(self) -> bool:
        """Whole again: trading ACTIVE, every child alive, no orphan left to reconcile."""
        return self.probe.recovered()

    # --- trading control (see `actors._trading_control`) -----------------------------------

    def trading_state(self) -> TradingStateRecord | None:
        return self.repository.trading_state(self.account)

    def halt(self, reason: str, by: str, *, automatic: bool = False) -> None:
        self.control.halt(reason, by, automatic=automatic)

    def halt_flatten_begins(self, reason: str, by: str) -> None:
        self.control.halt_flatten_begins(reason, by)

    def reduce_only(self, reason: str, by: str) -> None:
        self.control.reduce_only(reason, by)

    def resume(self, by: str, reason: str = "resumed") -> RecoveryReport:
        return self.control.resume(by, reason)

    # --- health, faults -------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """A snapshot for `/health` (see `EngineProbe.health`); never waits on an actor."""
        return self.probe.health()

    def inject(self, target: str, kind: str = "crash", **options: Any) -> None:
        """A drill's fault (see `EngineFaults.inject`)."""
        self.fault_injection.inject(target, kind, **options)

    # --- stop -----------------------------------------------------------------------------

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching, then the OrderActors, then the children in reverse order."""
        self._stopping.set()
        self._inbox.stop(timeout)
        self.recovery.stop(timeout)
        refs = list(self.live_orders().values())
        for ref in refs:
            ref.stop(block=False)
        for ref in refs:
            try:
                ref.stop(block=True, timeout=timeout)
            except pykka.Timeout:
                log.warning("an order actor did not stop within %s s", timeout)
        self.children.stop_all(timeout)
        if self._shared_persistence is None:
            self.checkpoints.stop(timeout)  # after the writer's last commit: the final head
        self.alerts.stop()


def _tell(ref: pykka.ActorRef[Any], message: Any) -> None:
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        return


__all__ = ["SUPERVISOR", "ChildState", "Supervisor", "SupervisorConfig"]
