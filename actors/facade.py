"""ExecutionFacade: what the RPM holds.

`create_execution_engine()` starts the engine and returns the facade; `execute()` blocks for
the confirmation, `submit()` returns a future. Idempotency is on the RPM decision id: a
repeat returns the same execution and sends nothing; the same id with another payload is an
`IdempotencyConflictError`. Reads go straight to storage. The actors' lifecycle, crash
recovery (one pass at start, the rest in the background) and the kill switch belong to
`facade.supervisor`
(`actors.supervisor`); `halt`, `resume`, `trading_state` and `health` delegate to it.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import Any

import pykka
from pydantic import ValidationError

from actors._dispatcher import Dispatcher
from actors._firm_state import FirmState
from actors._flatten import FlattenPorts, flatten
from actors._legs import PositionClaims
from actors._ownership import ownership_from_settings
from actors._recovery_report import RecoveryReport
from actors._scheduler import Scheduler
from actors._shared import MarginBook
from actors.broker import BrokerConfig
from actors.messages import NewExecution
from actors.metrics import EngineMetrics
from actors.order import OrderContext
from actors.persistence import StoredDecisions
from actors.supervisor import Supervisor
from core.accounts import load_accounts
from core.clock import Clock, SystemClock
from core.enums import ExecutionStatus, RejectionReason
from core.errors import (
    EngineStoppedError,
    ExecutionNotFoundError,
    IdempotencyConflictError,
    InvalidRequestError,
    TradingHaltedError,
)
from core.execution import OrderConfig
from core.ids import IdSource, UuidIds
from core.models import (
    DECISION_ID,
    ExecutionConfirmation,
    ExecutionLog,
    RPMOutput,
    TradingStateRecord,
)
from core.rules import make_client_id
from core.settings import Settings, load_settings
from storage.db import create_db_engine, default_sqlite_url
from storage.migrate import upgrade
from storage.repository import Repository

log = logging.getLogger(__name__)

_RECENT_DECISIONS = 10_000
"""Finished decisions remembered in memory; older repeats are answered from the database."""


def engine_version() -> str:
    try:
        return version("mt5-execution-engine")
    except PackageNotFoundError:
        return "0+unknown"


@dataclass(slots=True)
class _Claim:
    fingerprint: str
    execution_id: str
    future: pykka.Future[ExecutionConfirmation]


class ExecutionFacade:
    """The engine as the RPM sees it. Use as a context manager, or call `stop()`."""

    def __init__(
        self,
        terminal: Any,
        database_url: str,
        settings: Settings,
        *,
        clock: Clock | None = None,
        ids: IdSource | None = None,
        metrics: EngineMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics if metrics is not None else EngineMetrics()
        self.terminal = terminal
        self.database_url = database_url
        self._clock = clock or SystemClock()
        self._ids = ids or UuidIds()
        self._lock = threading.Lock()
        self._claims: OrderedDict[str, _Claim] = OrderedDict()
        self._stopped = False
        self._version = engine_version()

        upgrade(database_url)
        self._db = create_db_engine(database_url)
        self.repository = Repository(self._db)
        self._stored = StoredDecisions(self._db, self.repository)
        self.scheduler = Scheduler(self._clock.monotonic)
        self.ownership = ownership_from_settings(
            settings, database_url, self._db, self._clock, load_accounts(settings).names
        )
        """Hot standby (EE_STANDBY): the accounts this instance trades; None = all of them."""
        self._firm_state: FirmState | None = None
        self.margin = MarginBook()
        self.claims = PositionClaims()
        # The Supervisor owns the actors and the kill switch: it starts the Persistence and
        # Broker actors, settles in one pass what a previous run left unfinished and can be
        # settled now, then lets trading become ACTIVE (or keeps it HALTED). Executions that
        # need more evidence are reconciled in the background, their margin held in
        # `self.margin`, so new work is accepted within a second or two of start.
        self.supervisor = Supervisor(
            terminal=terminal,
            db=self._db,
            repository=self.repository,
            settings=settings,
            broker_config=self._broker_config(),
            clock=self._clock,
            scheduler=self.scheduler,
            metrics=self.metrics,
            margin=self.margin,
            ownership=self.ownership,
        )
        self.switch = self.supervisor.switch
        self.probe = self.supervisor.probe
        """A read-only view of supervision (restarts, in flight, orphans, health)."""
        self.faults = self.supervisor.fault_injection
        """Drills' faults (armed for the next incarnation, or told to a live actor)."""
        self._order_config = self._make_order_config()
        self._order_pool = (
            Dispatcher("OrderActor", settings.order_threads) if settings.order_threads else None
        )
        self.metrics.bind_gauges(
            lambda: self.switch.halted, self.in_flight, lambda: self.switch.state
        )
        try:
            self.recovery: RecoveryReport = self.supervisor.start()
            if self.ownership is not None:
                self._firm_state = FirmState(
                    database_url, self.repository, self.supervisor.kill_switch, self._clock
                )
                self._firm_state.start()
                self.ownership.start()
        except BaseException:
            self._stop_standby()
            self.supervisor.stop()
            self.scheduler.stop()
            if self._order_pool is not None:
                self._order_pool.close()
            self._db.dispose()
            raise
        self._froze = settings.gc_freeze_on_start
        if self._froze:
            # What start-up made (modules, the schema, settings, the actors) lives as long
            # as the process; full collections walked all of it each time and paused every
            # thread for up to ~100 ms under load (half that once frozen, measured).
            gc.collect()
            gc.freeze()

    @property
    def broker(self) -> pykka.ActorRef[Any]:
        """The current BrokerActor (the Supervisor may have restarted it)."""
        return self.supervisor.broker_proxy().actor_ref  # type: ignore[no-any-return]

    @property
    def persistence(self) -> pykka.ActorRef[Any]:
        """The current PersistenceActor (the Supervisor may have restarted it)."""
        return self.supervisor.persistence_ref()

    # --- configuration ------------------------------------------------------------------

    def _broker_config(self) -> BrokerConfig:
        s = self.settings
        return BrokerConfig(
            magic=s.magic,
            client_id_prefix=s.client_id_prefix,
            tick_window=s.cache_tick_seconds,
            account_window=s.cache_account_seconds,
            margin_window=s.cache_margin_seconds,
            poll_interval=s.poll_interval_seconds,
            login=s.mt5_login,
            password=s.mt5_password.get_secret_value() if s.mt5_password else None,
            server=s.mt5_server,
            path=s.mt5_terminal,
            terminal_wait=s.terminal_wait_seconds,
        )

    def _make_order_config(self) -> OrderConfig:
        s = self.settings
        return OrderConfig(
            engine_version=self._version,
            magic=s.magic,
            max_slippage_pips=s.max_slippage_pips,
            order_timeout=s.order_timeout_seconds,
            max_retries=s.max_retries,
            margin_cushion=s.min_margin_cushion,
            max_spread_pips=s.max_spread_pips,
            max_tick_age=s.max_tick_age_seconds,
            pip_overrides=dict(s.pip_size_overrides),
            partial_policy=s.partial_fill_policy,
            backoff_base=s.retry_backoff_seconds,
            backoff_cap=s.retry_backoff_cap_seconds,
            reconcile_window=s.reconcile_window_seconds,
            ask_timeout=s.ask_timeout_seconds,
            position_scope=s.position_scope,
            opposite_positions=s.opposite_positions,
        )

    # --- executing ----------------------------------------------------------------------

    def submit(
        self, rpm_output: RPMOutput | Mapping[str, Any]
    ) -> pykka.Future[ExecutionConfirmation]:
        """Start an execution and return a future of its confirmation (non-blocking).

        A message that breaks a rule of the message itself is answered at once, REJECTED
        with INVALID_INPUT and the fields named; it is neither recorded nor executed."""
        try:
            rpm = parse_rpm(rpm_output)
        except InvalidRequestError as exc:
            return self._refused(rpm_output, exc)
        if self.ownership is not None:
            self.ownership.require(rpm.account)  # AccountNotOwnedError: trade it there
        payload, fingerprint = rpm.payload_and_fingerprint()
        decision_id = rpm.decision_id
        with self._lock:
            self._check_running()
            known = self._known(decision_id, fingerprint)
            if known is not None:
                return known
        # Previous runs are in the database; look outside the lock so submits stay parallel.
        stored = self._stored.get(decision_id)
        with self._lock:
            self._check_running()
            known = self._known(decision_id, fingerprint)
            if known is not None:
                return known
            if stored is not None:
                return self._answer_stored(stored, fingerprint)
            execution_id = self._ids.new_id("exec")
            future: pykka.Future[ExecutionConfirmation] = pykka.ThreadingFuture()
            self._claims[decision_id] = _Claim(fingerprint, execution_id, future)
            job = NewExecution(
                execution_id=execution_id,
                request_id=self._ids.new_id("req"),
                client_id=make_client_id(execution_id, self.settings.client_id_prefix),
                rpm=rpm,
                fingerprint=fingerprint,
                reply=future,
                rpm_payload=payload,
            )
            self.supervisor.start_order(job, self._order_context())
        return future

    def execute(
        self, rpm_output: RPMOutput | Mapping[str, Any], timeout: float | None = None
    ) -> ExecutionConfirmation:
        """Run one execution to its final state and return the confirmation (blocking)."""
        wait = timeout if timeout is not None else self._default_wait()
        return self.submit(rpm_output).get(timeout=wait)

    def _refused(
        self, rpm_output: object, exc: InvalidRequestError
    ) -> pykka.Future[ExecutionConfirmation]:
        decision_id = _clean_decision_id(rpm_output)
        refusal_id = self._ids.new_id("refused")
        log.warning("RPM message %s refused (%s): %s", decision_id, refusal_id, exc.message)
        future: pykka.Future[ExecutionConfirmation] = pykka.ThreadingFuture()
        future.set(
            ExecutionConfirmation.refused(
                refusal_id, RejectionReason.INVALID_INPUT, exc.message, decision_id
            )
        )
        return future

    def _default_wait(self) -> float:
        s = self.settings
        retries = (s.max_retries + 1) * (s.retry_backoff_cap_seconds + s.ask_timeout_seconds)
        return s.order_timeout_seconds + s.reconcile_window_seconds + retries

    def _known(
        self, decision_id: str, fingerprint: str
    ) -> pykka.Future[ExecutionConfirmation] | None:
        claim = self._claims.get(decision_id)
        if claim is None:
            return None
        if claim.fingerprint != fingerprint:
            raise IdempotencyConflictError(decision_id=decision_id, execution_id=claim.execution_id)
        if _failed(claim.future) and not self.supervisor.is_live(claim.execution_id):
            # That attempt died (e.g. the database refused its write): what the database
            # holds decides now, and a decision it never stored may be executed again.
            del self._claims[decision_id]
            return None
        self._claims.move_to_end(decision_id)
        return claim.future

    def _answer_stored(
        self, stored: ExecutionLog, fingerprint: str
    ) -> pykka.Future[ExecutionConfirmation]:
        if stored.rpm_fingerprint != fingerprint:
            raise IdempotencyConflictError(
                decision_id=stored.rpm_decision_id, execution_id=stored.execution_id
            )
        future: pykka.Future[ExecutionConfirmation] = pykka.ThreadingFuture()
        future.set(stored.to_confirmation())
        return future

    def _order_context(self) -> OrderContext:
        return OrderContext(
            broker=self.supervisor.broker_proxy,
            persistence=self.supervisor.persistence_ref,
            config=self._order_config,
            clock=self._clock,
            scheduler=self.scheduler,
            switch=self.switch,
            margin=self.margin,
            on_final=self._on_final,
            metrics=self.metrics,
            claims=self.claims,
            dispatcher=self._order_pool,
        )

    def _on_final(self, record: ExecutionLog) -> None:
        self.metrics.execution_final(record)
        self.supervisor.order_finished(record.execution_id)
        with self._lock:
            # Keep a bounded memory of finished decisions; older repeats hit the database.
            while len(self._claims) > _RECENT_DECISIONS:
                oldest = next(iter(self._claims))
                if self.supervisor.is_live(self._claims[oldest].execution_id):
                    break
                self._claims.popitem(last=False)

    def _check_running(self) -> None:
        if self._stopped:
            raise EngineStoppedError("the execution engine is stopped")

    def in_flight(self) -> int:
        return self.supervisor.in_flight()

    # --- reads --------------------------------------------------------------------------

    def get_execution(self, execution_id: str) -> ExecutionLog:
        record = self.repository.get_execution(execution_id)
        if record is None:
            raise ExecutionNotFoundError(execution_id=execution_id)
        return record

    def get_execution_history(
        self,
        symbol: str | None = None,
        status: ExecutionStatus | str | None = None,
        limit: int = 50,
    ) -> list[ExecutionLog]:
        wanted = ExecutionStatus(status) if isinstance(status, str) else status
        return self.repository.history(symbol=symbol, status=wanted, limit=limit)

    def export_audit_trail(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Every execution created in [start, end), as JSON-ready dicts, oldest first."""
        return [record.model_dump(mode="json") for record in self.iter_audit_trail(start, end)]

    def iter_audit_trail(self, start: datetime, end: datetime) -> Iterator[ExecutionLog]:
        return self.repository.audit_trail(start, end)

    # --- the kill switch ----------------------------------------------------------------

    def trading_state(self) -> TradingStateRecord | None:
        return self.supervisor.trading_state()

    def halt(self, reason: str, by: str, *, flatten: bool = False) -> dict[str, Any] | None:
        """Stop trading: no order_send starts after this returns; every execution not yet
        sent is rejected with TRADING_HALTED; orders still open are removed.

        `flatten=True` closes every owned position first: the state is REDUCING while the
        closes run (no opening send can start, executions in flight are halted), then
        HALTED, also when the flatten fails. Returns the flatten's report. Refused when
        already HALTED (`TradingHaltedError`)."""
        if not flatten:
            self.supervisor.halt(reason, by)
            return None
        if self.switch.halted:
            # Leaving a halt, even for closes only, is the admin's resume.
            raise TradingHaltedError(
                "trading is already HALTED: nothing is sent (resume, then flatten)",
                reason=self.switch.reason,
            )
        self.supervisor.halt_flatten_begins(reason, by)
        try:
            return self._flatten(None, reason=reason, by=by)
        finally:
            self.supervisor.halt(reason, by)

    def flatten(self, symbol: str | None = None, *, reason: str, by: str) -> dict[str, Any]:
        """Close every position the engine owns (on `symbol`, or all), each by its ticket
        as one execution through the normal pipeline; see `actors._flatten`. Refused while
        HALTED (`TradingHaltedError`: `halt(..., flatten=True)` flattens and halts)."""
        if self.switch.halted:
            raise TradingHaltedError(
                "trading is HALTED: nothing is sent (halt with flatten closes, then halts)",
                reason=self.switch.reason,
            )
        return self._flatten(symbol, reason=reason, by=by)

    def _flatten(self, symbol: str | None, *, reason: str, by: str) -> dict[str, Any]:
        self._check_running()
        s = self.settings
        ports = FlattenPorts(
            broker=self.supervisor.broker_proxy,
            persistence=self.supervisor.persistence_ref,
            submit=self.submit,
            non_final=self.repository.non_final,
            new_id=self._ids.new_id,
            clock=self._clock,
            magic=s.magic,
            scope=s.position_scope,
            ask_timeout=s.ask_timeout_seconds,
            wait=self._default_wait(),
        )
        report = flatten(ports, symbol, reason=reason, by=by)
        self.supervisor.alerts.alert(
            "flatten",
            f"flatten by {by}: {report['positions_closed']} of {report['positions_found']} "
            f"positions closed ({reason})",
            operation=report["operation"],
            by=by,
            reason=reason,
            symbol=symbol,
            volume_closed=report["volume_closed"],
            realized_profit=report["realized_profit"],
        )
        return report

    def reduce_only(self, *, reason: str, by: str) -> None:
        """REDUCING: only trades that reduce positions are sent; an opening part is REJECTED
        with REDUCE_ONLY (nothing sent). `resume` returns to ACTIVE. Refused while HALTED
        (`TradingHaltedError`)."""
        self.supervisor.reduce_only(reason, by)

    def resume(self, by: str, reason: str = "resumed") -> None:
        """Trade again (ACTIVE, from HALTED or REDUCING), only after a successful
        reconciliation (`ReconciliationError` otherwise, and the state stays as it was)."""
        self.supervisor.resume(by, reason)

    def health(self) -> dict[str, Any]:
        """Broker connection, database ping, trading state, each actor's state and the
        restart counts (what `/health` serves); never blocks on an actor."""
        health = self.supervisor.health()
        if self.ownership is not None:
            health["instance"] = self.ownership.owner
            health["accounts_owned"] = self.ownership.owned()
        return health

    # --- lifecycle ----------------------------------------------------------------------

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every actor this facade started. In-flight executions keep their last
        committed state; the next start reconciles them."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        self.supervisor.stop(timeout)
        self._stop_standby(timeout)
        self.scheduler.stop()
        if self._order_pool is not None:
            self._order_pool.close(timeout)
        self._db.dispose()
        if self._froze:
            gc.unfreeze()  # the host process goes on: its objects are collectable again

    def _stop_standby(self, timeout: float = 10.0) -> None:
        """Release the leases (a standby takes over) and stop hearing the firm's state."""
        if self._firm_state is not None:
            self._firm_state.stop(timeout)
        if self.ownership is not None:
            self.ownership.stop(timeout)

    def __enter__(self) -> ExecutionFacade:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _failed(future: pykka.Future[Any]) -> bool:
    """True when `future` is done with an exception."""
    try:
        future.get(timeout=0)
    except pykka.Timeout:
        return False
    except Exception:
        return True
    return False


def parse_rpm(rpm_output: object) -> RPMOutput:
    """The RPM message, validated (an `RPMOutput` is taken as it is: it was validated when
    built); `InvalidRequestError` naming every bad field otherwise."""
    if isinstance(rpm_output, RPMOutput):
        return rpm_output
    try:
        return RPMOutput.model_validate(rpm_output)
    except ValidationError as exc:
        errors = tuple(_describe(error) for error in exc.errors())
        raise InvalidRequestError(
            "invalid RPM message: " + "; ".join(errors), errors=errors
        ) from exc


def _describe(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _clean_decision_id(rpm_output: object) -> str | None:
    """The refused message's decision id, if it is a valid one (else it is not echoed)."""
    decision = rpm_output.get("decision") if isinstance(rpm_output, Mapping) else None
    found = decision.get("decision_id") if isinstance(decision, Mapping) else None
    return found if isinstance(found, str) and DECISION_ID.fullmatch(found) else None


def create_execution_engine(
    terminal: Any = None,
    database_url: str | None = None,
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    ids: IdSource | None = None,
    metrics: EngineMetrics | None = None,
) -> ExecutionFacade:
    """Start an engine: `terminal` is any object with the MetaTrader5 API (default: a
    `SimulatedTerminal`); `database_url` defaults to a SQLite file in the working directory."""
    settings = settings or load_settings()
    if terminal is None:
        from terminals.factory import terminal_from_settings

        terminal = terminal_from_settings(settings)
    url = database_url or settings.database_url or default_sqlite_url()
    return ExecutionFacade(terminal, url, settings, clock=clock, ids=ids, metrics=metrics)
