"""Supervisor: starts, watches and restarts the actors, and owns the kill switch.

Pykka has no supervision of its own, so this module builds it. The Supervisor starts the
PersistenceActor, then the BrokerActor, makes one reconciliation pass over every execution
that is not final (`actors.recovery`), and then lets trading become ACTIVE: executions
that must wait for evidence (an order not found yet) are reconciled in the background with
their margin held, so a restart does not wait out reconcile windows. A watcher thread then
sees every way a Pykka actor can die:

- a `tell` that raised: Pykka calls `on_failure`, which the supervised actor reports;
- an exception in `on_start` (Pykka skips `on_failure`): the actor reports it itself;
- a hung actor: the watcher's `Heartbeat` ask (non-blocking) is not answered within the
  heartbeat timeout (`ask_timeout_seconds`); the hung incarnation is fenced (it never
  touches the terminal or the journal again) and replaced;
- a dead reference met by anyone: `broker_proxy()` / `persistence_ref()` wake the
  watcher, which finds `is_alive()` false (it also looks on every pass).

Dead children are restarted one-for-one, OTP-style (`actors._children`); restarts and
OrderActor crashes count in one sliding window (not a failure on an execution's own data,
which ends that execution: `actors._failures`). More than `restart_intensity` within
`restart_period_seconds` and the Supervisor stops restarting and halts trading, saying
why; `resume()` revives the children after a successful reconciliation. An OrderActor
that died (a crash, or a write the store refused) leaves an orphan execution, which the
recovery thread reconciles with the terminal exactly as startup recovery does.

The kill switch (`actors.kill_switch`) is persisted and journaled with who, when and
why; its states are ACTIVE, REDUCING (only reducing sends pass its gate) and HALTED, and
an engine boots in the state it left (after recovery). `halt()` first closes the shared
`TradingSwitch` that the BrokerActor checks under its gate right before each
`order_send`, so no send starts after `halt()` returns, not even one already queued in
the broker's inbox. Trading halts on its own when the restart intensity is exceeded,
the terminal stays disconnected longer than `disconnect_halt_seconds`, reconciliation
fails at start, or a journal write fails.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pykka
from sqlalchemy import Engine

from actors._checkpoints import AuditCheckpointer, journal_tail_problem
from actors._children import Child, Children, ChildState, RestartWindow
from actors._corrections import LateAppearances
from actors._failures import is_own_failure
from actors._order_registry import OrderRegistry
from actors._scheduler import Scheduler
from actors._shared import MarginBook
from actors._supervised import (
    ChildHooks,
    FaultPlan,
    ObservedWriter,
    SupervisedBroker,
    SupervisedOrder,
    SupervisedPersistence,
)
from actors._terminal_identity import TERMINAL_IDENTIFIED, Identity, IdentityGuard
from actors._terminal_watch import TerminalWatch, describe_terminal
from actors.alerts import alerts_from_settings
from actors.broker import BrokerConfig
from actors.kill_switch import KillSwitch
from actors.messages import Halt, InjectFault, NewExecution, Rewatch
from actors.metrics import EngineMetrics
from actors.order import OrderContext
from actors.persistence import write_and_wait
from actors.probe import EngineFaults, EngineProbe
from actors.recovery import Reconciler, RecoveryConfig, RecoveryReport
from core.clock import Clock, utc_micros
from core.enums import TradingState
from core.errors import (
    PersistenceError,
    ReconciliationError,
    TicketConflictError,
)
from core.models import TradingStateRecord
from core.settings import Settings
from storage.journal import AuditKey, check_audit_key
from storage.repository import Repository
from storage.writer import WriteOp

log = logging.getLogger(__name__)

SUPERVISOR = "supervisor"
"""`changed_by` of the automatic halts."""


@dataclass(frozen=True, slots=True)
class SupervisorConfig:
    """Timings of supervision (the defaults of `from_settings`).

    restart_intensity / restart_period: more restarts than this within the period halt
        trading and end the restarting (OTP's intensity and period; default 5 in 10 s).
    heartbeat_interval / heartbeat_timeout: how often each child is asked `Heartbeat`,
        and how long an answer may take before the child counts as hung.
    disconnect_halt_after: seconds of a disconnected terminal before trading halts.
    tick: the watcher's pass period (a reported death wakes it at once).
    ask_timeout: commits and broker asks made by the Supervisor itself.
    recovery_interval: pass period of the thread that reconciles orphan executions.
    late_interval / late_lookback: how often, and how far back, the recovery thread checks
        that no execution settled NOT_SENT has an order at the terminal after all.
    """

    restart_intensity: int = 5
    restart_period: float = 10.0
    heartbeat_interval: float = 0.5
    heartbeat_timeout: float = 30.0
    disconnect_halt_after: float = 30.0
    tick: float = 0.05
    ask_timeout: float = 30.0
    recovery_interval: float = 0.1
    late_interval: float = 10.0
    late_lookback: float = 3600.0

    @classmethod
    def from_settings(cls, settings: Settings) -> SupervisorConfig:
        return cls(
            restart_intensity=settings.restart_intensity,
            restart_period=settings.restart_period_seconds,
            heartbeat_interval=min(0.5, settings.ask_timeout_seconds / 4),
            heartbeat_timeout=settings.ask_timeout_seconds,
            disconnect_halt_after=settings.disconnect_halt_seconds,
            ask_timeout=settings.ask_timeout_seconds,
            recovery_interval=min(0.25, settings.reconcile_window_seconds / 3),
            late_interval=min(10.0, max(1.0, settings.reconcile_window_seconds)),
        )

    @property
    def connection_interval(self) -> float:
        return max(min(0.5, self.disconnect_halt_after / 4), self.tick)


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
    ) -> None:
        self.terminal = terminal
        self.db = db
        self.repository = repository
        self.config = cfg = config or SupervisorConfig.from_settings(settings)
        self.faults = FaultPlan()
        self._clock = clock
        self._metrics = metrics
        self._lock = threading.RLock()
        self._reconcile_lock = threading.Lock()
        self.orders = OrderRegistry()
        self._pending_events: list[WriteOp] = []
        self._journal_error: str | None = None
        self._connected: bool | None = None
        self._disconnected_since: float | None = None
        self._health_future: pykka.Future[Any] | None = None
        self._health_sent = 0.0
        self._next_health = 0.0
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._recovery_wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self.last_recovery: RecoveryReport | None = None
        self.window = RestartWindow(cfg.restart_intensity, cfg.restart_period, clock)
        self.kill_switch = KillSwitch(
            self.persistence_ref, clock, cfg.ask_timeout, self._recovery_wake.set
        )
        self.switch = self.kill_switch
        """The gate the BrokerActor and the OrderActors read (the kill switch itself)."""
        self.alerts = alerts_from_settings(settings, clock, metrics, [db.url.password or ""])
        """Webhook alerts (EE_ALERT_WEBHOOK_URL); `alerts.alert(kind, text, **fields)`."""
        self.kill_switch.on_change = self.alerts.state_changed
        self._disconnect_alerted = False
        if metrics is not None:
            metrics.bind_terminal(self._disconnected_for)
        self.audit_key, self.checkpoints = _audit(settings, clock, metrics)

        def persistence(hooks: ChildHooks) -> pykka.ActorRef[Any]:
            return SupervisedPersistence.start(
                hooks,
                lambda: ObservedWriter(
                    db,
                    self._journal_result,
                    audit_key=self.audit_key,
                    on_head=self.checkpoints.note,
                ),
                max_batch=settings.group_commit_max,
                on_commit=metrics.db_written if metrics is not None else None,
            )

        self._terminal_wait = broker_config.terminal_wait
        self._identity_error: str | None = None
        self.identity = IdentityGuard(self._identity_first, self._identity_refused)
        """The account and terminal the journal knows (see `actors._terminal_identity`)."""
        self.terminal_watch = TerminalWatch(describe_terminal(terminal), clock.monotonic)
        """The current broker incarnation's view of the terminal (see `_bound_terminal_wait`)."""

        def broker(hooks: ChildHooks) -> pykka.ActorRef[Any]:
            watch = TerminalWatch(describe_terminal(terminal), clock.monotonic)
            self.terminal_watch = watch
            return SupervisedBroker.start(
                hooks,
                terminal,
                broker_config,
                clock,
                scheduler,
                metrics,
                switch=self.switch,
                watch=watch,
                identity=self.identity,
            )

        self.children = Children(
            [("persistence", persistence), ("broker", broker)],
            faults=self.faults,
            window=self.window,
            clock=clock,
            heartbeat_interval=cfg.heartbeat_interval,
            heartbeat_timeout=cfg.heartbeat_timeout,
            on_death=self._wake.set,
            on_restarted=self._restarted,
        )
        self._persistence = self.children.get("persistence")
        self._broker = self.children.get("broker")
        self.reconciler = Reconciler(
            self.broker_proxy,
            self.persistence_ref,
            repository,
            db,
            clock,
            RecoveryConfig(
                reconcile_window=settings.reconcile_window_seconds,
                ask_timeout=settings.ask_timeout_seconds,
                pip_overrides=dict(settings.pip_size_overrides),
            ),
            on_final=metrics.execution_final if metrics is not None else None,
            margin=margin,
            on_unknown=metrics.unknown if metrics is not None else None,
        )
        self.late = LateAppearances(
            self.reconciler.ask,
            self.persistence_ref,
            repository,
            db,
            clock,
            lookback=cfg.late_lookback,
            ask_timeout=settings.ask_timeout_seconds,
            pip_overrides=dict(settings.pip_size_overrides),
            on_correction=metrics.corrected if metrics is not None else None,
        )
        self._late_due = 0.0
        self.probe = EngineProbe(
            children=self.children,
            orders=self.orders,
            switch=self.switch,
            db=db,
            repository=repository,
            health=self.health,
        )
        """The read-only view drills, benchmarks and tests use."""
        self.fault_injection = EngineFaults(self.faults, self.inject)

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
        tail_problem = journal_tail_problem(self.db, self.checkpoints.file, self.audit_key)
        if tail_problem is not None:
            log.critical("audit journal does not match its last checkpoint: %s", tail_problem)
        known = self.repository.last_engine_event(TERMINAL_IDENTIFIED)
        self.identity.set_known(known.payload.get("identity") if known is not None else None)
        self.children.start_all()
        self.checkpoints.start()
        try:
            self._flush_pending()  # the terminal's identity, journaled before any execution
        except (PersistenceError, pykka.ActorDeadError) as exc:
            log.warning("terminal identity not journaled yet: %s", exc)
        persisted = self.repository.trading_state()
        records = self.repository.non_final()
        with self._reconcile_lock:
            try:
                present = self.reconciler.present(r for r in records if r.attempts)
            except ReconciliationError as exc:
                log.warning("startup recovery looks up each execution: %s", exc)
                present = None
            report = self.reconciler.run(
                [r.execution_id for r in records],
                wait=False,
                stop=self._stopping,
                present=present,
            )
        self.last_recovery = report
        self._reconciled(report, "at start")
        if report.examined:
            log.info("startup recovery: %s", report.summary())
        if report.waiting:
            self.orders.adopt(report.waiting)  # the recovery thread looks again, with back-off
        if tail_problem is not None:
            why = f"audit journal does not match its last checkpoint: {tail_problem}"
            self.halt(why, SUPERVISOR)
        elif self._identity_error is not None:
            self.halt(self._identity_error, SUPERVISOR)
        elif report.failures:
            self.halt(f"reconciliation failed at start: {report.error()}", SUPERVISOR)
        elif persisted is not None and persisted.state == TradingState.HALTED.value:
            self.kill_switch.restore(TradingState.HALTED, persisted.reason)
        elif persisted is not None and persisted.state == TradingState.REDUCING.value:
            self.kill_switch.restore(TradingState.REDUCING, persisted.reason)
        else:
            self.kill_switch.restore(TradingState.ACTIVE, "")
        for target, name in (
            (self._watch_loop, "ee-supervisor"),
            (self._recovery_loop, "ee-recovery"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return report

    # --- the children as callers see them --------------------------------------------------

    def broker_proxy(self) -> Any:
        """The current BrokerActor's proxy (OrderActors call this for every request)."""
        if not self._broker.alive():
            self._wake.set()
        return self._broker.current_proxy()

    def persistence_ref(self) -> pykka.ActorRef[Any]:
        """The current PersistenceActor (a dead one makes `write_and_wait` fail cleanly)."""
        ref = self._persistence.ref
        if ref is None:
            raise pykka.ActorDeadError("the persistence actor is not running")
        if not ref.is_alive():
            self._wake.set()
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
        self.orders.died(execution_id, crash=crash)
        if crash and not is_own_failure(exc):
            self.window.record()
            if self._metrics is not None:
                self._metrics.restarted("order")
        self._wake.set()
        self._recovery_wake.set()

    def _restarted(self, child: Child, why: str) -> None:
        """After a child's new incarnation started (on the watcher thread)."""
        if self._metrics is not None:
            self._metrics.restarted(child.name)
        with self._lock:
            self._pending_events.append(
                self._event("ACTOR_RESTARTED", {"actor": child.name, "why": why})
            )
        if child is self._broker:
            for ref in self.live_orders().values():
                _tell(ref, Rewatch())  # the new broker knows no watched order
        self._recovery_wake.set()

    # --- the watcher ----------------------------------------------------------------------

    def _watch_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.config.tick)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                self._watch_once()
            except Exception:
                log.exception("supervisor pass failed")

    def _watch_once(self) -> None:
        self.children.check_all()
        if self.orders.sweep_dead():
            self._recovery_wake.set()
        self._bound_terminal_wait()
        self._check_connection()
        if self.switch.halted:
            return
        if self.children.escalated:
            self.alerts.alert("restart_intensity", self.children.escalated)
            self.halt(self.children.escalated, SUPERVISOR, automatic=True)
        elif self.window.exceeded():
            why = (
                f"restart intensity exceeded: more than {self.window.intensity} restarts "
                f"and actor crashes within {self.window.period:g} s"
            )
            self.alerts.alert("restart_intensity", why, restarts=self.window.count())
            self.halt(why, SUPERVISOR, automatic=True)
        elif self._journal_error is not None:
            self.halt(f"journal writes failing: {self._journal_error}", SUPERVISOR, automatic=True)
        elif self._identity_error is not None:
            self.halt(self._identity_error, SUPERVISOR, automatic=True)

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

    def _check_connection(self) -> None:
        now = self._clock.monotonic()
        if not self._broker.alive():
            self._health_future = None
            return
        future = self._health_future
        if future is None:
            if now >= self._next_health:
                self._health_future = self._broker.current_proxy().health()
                self._health_sent = now
            return
        try:
            health = future.get(timeout=0)
        except pykka.Timeout:
            if now - self._health_sent > self.config.heartbeat_timeout:
                self._health_future = None  # the heartbeat deals with a hung broker
            return
        except Exception:
            health = {"connected": False}
        self._health_future = None
        self._next_health = now + self.config.connection_interval
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
        if down >= self.config.disconnect_halt_after and not self._disconnect_alerted:
            self._disconnect_alerted = True  # once per outage, halted already or not
            self.alerts.alert(
                "terminal_disconnected",
                f"terminal disconnected for {down:.1f} s "
                f"(limit {self.config.disconnect_halt_after:g} s)",
                seconds=round(down, 1),
            )
        if down >= self.config.disconnect_halt_after and not self.switch.halted:
            self.halt(
                f"terminal disconnected for {down:.1f} s "
                f"(limit {self.config.disconnect_halt_after:g} s)",
                SUPERVISOR,
                automatic=True,
            )

    def _identity_first(self, identity: Identity, how: str) -> None:
        """From a BrokerActor's thread: journal the identity now known (never blocks)."""
        log.info("terminal identity %s: %s", how, identity)
        with self._lock:
            self._pending_events.append(
                self._event(TERMINAL_IDENTIFIED, {"identity": identity, "how": how})
            )
        self._recovery_wake.set()

    def _identity_refused(self, reason: str, seen: Identity) -> None:
        """From a BrokerActor's thread: a terminal the journal does not know. Loud, journaled
        once, and trading halts (on the watcher thread: this one must not block)."""
        if self._identity_error == reason:
            return
        log.error("%s (seen: %s)", reason, seen or "-")
        self._identity_error = reason
        with self._lock:
            self._pending_events.append(
                self._event("TERMINAL_REFUSED", {"reason": reason, "seen": seen})
            )
        self._wake.set()
        self._recovery_wake.set()

    def _journal_result(self, exc: BaseException | None) -> None:
        """From the PersistenceActor's thread: never blocks, never writes. A failure stays
        noted (and trading halted) until `resume()`."""
        if exc is not None:
            self._journal_failed(exc)
        if isinstance(exc, TicketConflictError):
            log.critical("%s", exc.message)  # loud: the terminal reused a ticket
            self._identity_error = exc.message  # halts; an admin's resume decides
            self._wake.set()
        elif exc is not None:
            self._journal_error = str(exc)
            self._wake.set()

    def _journal_failed(self, exc: BaseException) -> None:
        if self._metrics is not None:
            self._metrics.journal_failed()
        self.alerts.alert("journal_write_failure", f"journal write failed: {exc}")

    def _reconciled(self, report: RecoveryReport, when: str) -> None:
        if not report.failures:
            return
        if self._metrics is not None:
            self._metrics.reconcile_failed(len(report.failures))
        self.alerts.alert(
            "reconciliation_failed",
            f"reconciliation failed {when}: {report.error()}",
            executions=len(report.failures),
        )

    def _disconnected_for(self) -> float:
        since = self._disconnected_since
        return 0.0 if since is None else max(self._clock.monotonic() - since, 0.0)

    # --- the recovery thread --------------------------------------------------------------

    def _recovery_loop(self) -> None:
        while not self._stopping.is_set():
            self._recovery_wake.wait(self.config.recovery_interval)
            self._recovery_wake.clear()
            if self._stopping.is_set():
                return
            try:
                self._flush_pending()
                self._recover_orphans()
                self._check_late()
            except (PersistenceError, ReconciliationError, pykka.ActorDeadError) as exc:
                log.warning("recovery pass deferred: %s", exc)
            except Exception:
                log.exception("recovery pass failed")

    def _flush_pending(self) -> None:
        """Write what the store could not take before; raises while it still cannot."""
        timeout = min(self.config.ask_timeout, 2.0)
        self.kill_switch.flush(timeout)
        with self._lock:
            events, self._pending_events = self._pending_events, []
        if events:
            try:
                write_and_wait(self.persistence_ref(), events, timeout)
            except (PersistenceError, pykka.ActorDeadError):
                with self._lock:
                    self._pending_events = events + self._pending_events
                raise

    def _recover_orphans(self) -> None:
        orphans = self.orders.orphans()
        if not orphans or not self.children.alive():
            return
        with self._reconcile_lock:
            report = self.reconciler.run(orphans, wait=False, stop=self._stopping)
        self._reconciled(report, "in the background")
        self.orders.settled(set(orphans) - set(report.waiting) - set(report.failures))
        if report.resolved:
            log.info("recovered orphan executions: %s", report.summary())

    def _check_late(self) -> None:
        now = self._clock.monotonic()
        if now < self._late_due or not self.children.alive():
            return
        self._late_due = now + self.config.late_interval
        with self._reconcile_lock:
            self.late.check()

    def reconcile_all(self) -> None:
        """Queue every execution that is not final and has no live OrderActor."""
        ids = {r.execution_id for r in self.repository.non_final()}
        self.orders.adopt(ids)
        self._recovery_wake.set()

    def orphans(self) -> int:
        return self.orders.orphan_count()

    def recovered(self) -> bool:
        """Whole again: trading ACTIVE, every child alive, no orphan left to reconcile."""
        return not self.switch.halted and self.children.alive() and not self.orphans()

    # --- the kill switch ------------------------------------------------------------------

    def trading_state(self) -> TradingStateRecord | None:
        return self.repository.trading_state()

    def halt(self, reason: str, by: str, *, automatic: bool = False) -> None:
        """Stop trading. When this returns no `order_send` starts (the switch is the
        broker's gate), every execution not yet sent is rejected with TRADING_HALTED at its
        next stage, and orders still open are being removed. The change is persisted and
        journaled; if the store cannot take it now, it is written as soon as it can."""
        if not self.kill_switch.halt(reason, by, automatic=automatic):
            return
        for ref in self.live_orders().values():
            _tell(ref, Halt(reason))
        try:
            self.reconcile_all()  # orphans: PENDING rejected, open orders removed
        except PersistenceError:
            log.warning("cannot list open executions now; the recovery thread retries")

    def halt_flatten_begins(self, reason: str, by: str) -> None:
        """The first step of a halt that flattens: REDUCING (no opening send starts after
        this returns; the closes of the flatten pass the gate) and every live execution
        told to halt, as a halt does; `halt()` follows once the closes are settled."""
        self.kill_switch.halt_flatten_begins(reason, by)
        for ref in self.live_orders().values():
            _tell(ref, Halt(reason))

    def reduce_only(self, reason: str, by: str) -> None:
        """REDUCING: from here on only trades that reduce positions are sent; an opening
        part is refused (REDUCE_ONLY). When this returns no opening `order_send` is in
        progress. Persisted and journaled as a halt is. From HALTED it is refused
        (`TradingHaltedError`): leaving a halt, even for REDUCING, is the admin's resume."""
        self.kill_switch.reduce_only(reason, by)

    def resume(self, by: str, reason: str = "resumed") -> RecoveryReport:
        """Trade again (ACTIVE, from HALTED or REDUCING), only once the children are up,
        the terminal is connected, and a reconciliation pass over every execution without a
        live OrderActor met no failure (those still waiting for evidence go on in the
        background, as at start): raises `ReconciliationError` otherwise (or
        `PersistenceError`), and trading stays as it was."""
        return self.kill_switch.resume(reason, by, lambda: self._ready_to_resume(by))

    def _ready_to_resume(self, by: str) -> RecoveryReport:
        """The checks of a resume, under the kill switch's lock: raises to refuse it."""
        if self._identity_error is not None:
            # The admin's decision: the terminal now connected becomes the known one.
            self.identity.accept_next(by)
            self._identity_error = None
        revived = self.children.revive()
        if revived:
            log.warning("resume revived %d actor(s)", revived)
        self._require_connected()
        self._flush_pending()
        ids = [
            r.execution_id for r in self.repository.non_final() if not self.is_live(r.execution_id)
        ]
        with self._reconcile_lock:
            report = self.reconciler.run(ids, wait=False, stop=self._stopping)
        self._reconciled(report, "at resume")
        if report.failures:
            raise ReconciliationError(f"not resumed: reconciliation failed: {report.error()}")
        # As at start: executions still waiting for evidence are reconciled in the
        # background (their margin held); trading does not wait for their windows.
        self.orders.settled(set(ids) - set(report.waiting))
        self.orders.adopt(report.waiting)
        self._journal_error = None
        self._disconnected_since = None
        return report

    def _require_connected(self) -> None:
        try:
            health = self.broker_proxy().health().get(timeout=self.config.ask_timeout)
        except (pykka.ActorDeadError, pykka.Timeout) as exc:
            raise ReconciliationError(f"not resumed: the broker does not answer ({exc})") from exc
        if not health.get("connected"):
            raise ReconciliationError("not resumed: the terminal is not connected")
        self._note_connection(True, self._clock.monotonic())

    def _event(self, event_type: str, payload: dict[str, Any]) -> WriteOp:
        return WriteOp(
            execution_id=None,
            event_type=event_type,
            payload=payload,
            engine_time_us=utc_micros(self._clock.now()),
        )

    # --- health, faults -----------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """A snapshot for `/health`; it never waits on an actor."""
        actors: dict[str, Any] = self.children.describe()
        actors["orders"] = self.orders.describe()
        since = self._disconnected_since
        down = None if since is None else round(self._clock.monotonic() - since, 3)
        state = self.switch.state
        halted = state is TradingState.HALTED
        stall = self.terminal_watch.stall()
        # Not answering for a moment is a slow call; for half the send wait, a fault.
        answering = stall is None or stall[0] < self._terminal_wait / 2
        connected = self._connected
        if self.terminal_watch.unreachable():
            connected = False  # known down, whatever the last health answer said
        return {
            "trading_state": state.value,
            "halted_reason": self.switch.reason if halted else None,
            "reducing_reason": self.switch.reason if state is TradingState.REDUCING else None,
            "trading_state_persisted": self.kill_switch.persisted,
            "broker": {
                "connected": connected,
                "disconnected_seconds": down,
                "terminal_answering": answering,
                "terminal": self.terminal_watch.stall_text(),
            },
            "database": {"ok": self.repository.ping(), "journal_error": self._journal_error},
            "actors": actors,
            "restarts": self.total_restarts,
            "restarts_in_window": self.window.count(),
            "restart_intensity": f"{self.window.intensity} in {self.window.period:g} s",
            "escalated": self.children.escalated or None,
        }

    def inject(self, target: str, kind: str = "crash", **options: Any) -> None:
        """A drill's fault: `target` is "broker", "persistence" or an execution id; `kind`
        is "crash" (a failing tell) or "hang" (see `InjectFault`)."""
        if target in ("broker", "persistence"):
            ref = self.children.get(target).ref
        else:
            ref = self.live_orders().get(target)
        if ref is None:
            raise ValueError(f"no live actor {target!r}")
        ref.tell(InjectFault(kind, **options))

    # --- stop -----------------------------------------------------------------------------

    def stop(self, timeout: float = 10.0) -> None:
        """Stop watching, then the OrderActors, then the children in reverse order."""
        self._stopping.set()
        self._wake.set()
        self._recovery_wake.set()
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)
        refs = list(self.live_orders().values())
        for ref in refs:
            ref.stop(block=False)
        for ref in refs:
            try:
                ref.stop(block=True, timeout=timeout)
            except pykka.Timeout:
                log.warning("an order actor did not stop within %s s", timeout)
        self.children.stop_all(timeout)
        self.checkpoints.stop(timeout)  # after the writer's last commit: the final head
        self.alerts.stop()


def _audit(
    settings: Settings, clock: Clock, metrics: EngineMetrics | None
) -> tuple[AuditKey | None, AuditCheckpointer]:
    """The chain's key (EE_AUDIT_KEY) and the checkpointer of the journal's head."""
    secret = settings.audit_key_secret()
    key = AuditKey(secret) if secret is not None else None
    path = settings.audit_checkpoint_file
    checkpoints = AuditCheckpointer(
        key=key,
        interval=settings.audit_checkpoint_seconds,
        clock=clock,
        file=Path(path) if path is not None else None,
        metrics=metrics,
    )
    return key, checkpoints


def _tell(ref: pykka.ActorRef[Any], message: Any) -> None:
    try:
        ref.tell(message)
    except pykka.ActorDeadError:
        return


__all__ = ["ChildState", "Supervisor", "SupervisorConfig"]
