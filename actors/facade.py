"""ExecutionFacade: what the RPM holds.

`actors.engine.create_execution_engine()` starts the engine and returns the facade;
`execute()` blocks for the confirmation, `submit()` returns a future. Idempotency is on the
RPM decision id (`actors._decisions`): a repeat returns the same execution and sends
nothing; the same id with another payload is an `IdempotencyConflictError`. Each execution
runs on its message's account (`AccountRuntime`); an account the engine does not trade is
REJECTED with UNKNOWN_ACCOUNT, nothing sent or recorded. Reads go straight to storage. The
actors' lifecycle, crash recovery (one pass at start, the rest in the background) and the
kill switch belong to each account's Supervisor (`actors.supervisor`); `halt`, `resume`,
`trading_state` and `health` delegate to them: to one account's when `account` is given,
to every account's (the firm) when it is not.
"""

from __future__ import annotations

import gc
import logging
import threading
from collections.abc import Iterator, Mapping
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pykka

from actors._decisions import (
    DecisionClaims,
    answer_stored,
    answered,
    clean_decision_id,
    parse_rpm,
)
from actors._flatten import FlattenPorts, flatten
from actors._legs import PositionClaims
from actors._recovery_report import RecoveryReport
from actors._shared import MarginBook
from actors.messages import NewExecution
from actors.order import OrderContext
from core.enums import ExecutionStatus, RejectionReason
from core.errors import (
    EngineStoppedError,
    ExecutionNotFoundError,
    InvalidRequestError,
    TradingHaltedError,
    UnknownAccountError,
)
from core.models import ExecutionConfirmation, ExecutionLog, RPMOutput, TradingStateRecord
from core.rules import make_client_id

if TYPE_CHECKING:
    from actors.engine import AccountRuntime, EngineWiring

log = logging.getLogger(__name__)


def engine_version() -> str:
    try:
        return version("mt5-execution-engine")
    except PackageNotFoundError:
        return "0+unknown"


class ExecutionFacade:
    """The engine as the RPM sees it. Use as a context manager, or call `stop()`."""

    def __init__(self, wiring: EngineWiring) -> None:
        self.settings = wiring.settings
        self.accounts = wiring.accounts
        self.metrics = wiring.metrics
        self.database_url = wiring.database_url
        self._clock = wiring.clock
        self._ids = wiring.ids
        self._lock = threading.Lock()
        self._stopped = False
        self._version = wiring.version
        self._db = wiring.db
        self.repository = wiring.repository
        self._stored = wiring.stored
        self.scheduler = wiring.scheduler
        self._order_pool = wiring.order_pool
        self.ownership = wiring.ownership
        """Hot standby (EE_STANDBY): the accounts this instance trades; None = all of them."""
        self.runtimes: dict[str, AccountRuntime] = wiring.runtimes
        """Each account's runtime, by name, in the accounts file's order."""
        primary = next(iter(self.runtimes.values()))
        self._primary = primary
        self.terminal = primary.terminal
        self.supervisor = primary.supervisor
        """The first account's Supervisor (the only one without an accounts file)."""
        self.switch = self.supervisor.switch
        self.probe = self.supervisor.probe
        """A read-only view of supervision (restarts, in flight, orphans, health)."""
        self.faults = self.supervisor.fault_injection
        """Drills' faults (armed for the next incarnation, or told to a live actor)."""
        self._decisions = DecisionClaims(self._is_live)
        self.metrics.bind_gauges(
            lambda: self.switch.halted, self.in_flight, lambda: self.switch.state
        )
        try:
            reports = [runtime.start() for runtime in self.runtimes.values()]
            if self.ownership is not None:
                self.ownership.start()
        except BaseException:
            if self.ownership is not None:
                self.ownership.stop()
            for runtime in reversed(self.runtimes.values()):
                runtime.stop()
            self.scheduler.stop()
            if self._order_pool is not None:
                self._order_pool.close()
            self._db.dispose()
            raise
        self.recovery: RecoveryReport = reports[0]
        self._froze = self.settings.gc_freeze_on_start
        if self._froze:
            # What start-up made (modules, the schema, settings, the actors) lives as long
            # as the process; full collections walked all of it each time and paused every
            # thread for up to ~100 ms under load (half that once frozen, measured).
            gc.collect()
            gc.freeze()

    @property
    def broker(self) -> pykka.ActorRef[Any]:
        """The current BrokerActor of the first account (its Supervisor may have restarted it)."""
        return self.supervisor.broker_proxy().actor_ref  # type: ignore[no-any-return]

    @property
    def persistence(self) -> pykka.ActorRef[Any]:
        """The current PersistenceActor (the Supervisor may have restarted it)."""
        return self.supervisor.persistence_ref()

    @property
    def margin(self) -> MarginBook:
        """The first account's margin book (each account has its own)."""
        return self._primary.margin

    @margin.setter
    def margin(self, book: MarginBook) -> None:
        # Read per submit: a test may put a failing book in place.
        self._primary.margin = book

    @property
    def claims(self) -> PositionClaims:
        """The first account's position claims (each account has its own)."""
        return self._primary.claims

    def runtime(self, account: str) -> AccountRuntime:
        """The runtime of `account`; `UnknownAccountError` when this engine does not trade
        it."""
        runtime = self.runtimes.get(account)
        if runtime is None:
            raise UnknownAccountError(account=account, known=tuple(self.runtimes))
        return runtime

    # --- executing ----------------------------------------------------------------------

    def submit(
        self, rpm_output: RPMOutput | Mapping[str, Any]
    ) -> pykka.Future[ExecutionConfirmation]:
        """Start an execution and return a future of its confirmation (non-blocking).

        A message that breaks a rule of the message itself is answered at once, REJECTED
        with INVALID_INPUT and the fields named; one naming an account this engine does not
        trade, REJECTED with UNKNOWN_ACCOUNT. Neither is recorded nor executed."""
        try:
            rpm = parse_rpm(rpm_output)
        except InvalidRequestError as exc:
            return self._refused(rpm_output, RejectionReason.INVALID_INPUT, exc.message)
        runtime = self.runtimes.get(rpm.account)
        if runtime is None:
            known = ", ".join(self.runtimes)
            why = f"unknown account {rpm.account!r}: this engine trades {known}"
            return self._refused(rpm, RejectionReason.UNKNOWN_ACCOUNT, why)
        if self.ownership is not None:
            self.ownership.require(rpm.account)  # AccountNotOwnedError: trade it there
        payload, fingerprint = rpm.payload_and_fingerprint()
        decision_id = rpm.decision_id
        with self._lock:
            self._check_running()
            known_future = self._decisions.known(decision_id, fingerprint)
            if known_future is not None:
                return known_future
        # Previous runs are in the database; look outside the lock so submits stay parallel.
        stored = self._stored.get(decision_id)
        with self._lock:
            self._check_running()
            known_future = self._decisions.known(decision_id, fingerprint)
            if known_future is not None:
                return known_future
            if stored is not None:
                return answer_stored(stored, fingerprint)
            execution_id = self._ids.new_id("exec")
            future = self._decisions.claim(decision_id, fingerprint, execution_id)
            job = NewExecution(
                execution_id=execution_id,
                request_id=self._ids.new_id("req"),
                client_id=make_client_id(execution_id, runtime.settings.client_id_prefix),
                rpm=rpm,
                fingerprint=fingerprint,
                reply=future,
                rpm_payload=payload,
            )
            runtime.supervisor.start_order(job, self._order_context(runtime))
        return future

    def execute(
        self, rpm_output: RPMOutput | Mapping[str, Any], timeout: float | None = None
    ) -> ExecutionConfirmation:
        """Run one execution to its final state and return the confirmation (blocking)."""
        wait = timeout if timeout is not None else self._default_wait()
        return self.submit(rpm_output).get(timeout=wait)

    def _refused(
        self, rpm_output: object, reason: RejectionReason, message: str
    ) -> pykka.Future[ExecutionConfirmation]:
        decision_id = clean_decision_id(rpm_output)
        refusal_id = self._ids.new_id("refused")
        log.warning("RPM message %s refused (%s): %s", decision_id, refusal_id, message)
        return answered(ExecutionConfirmation.refused(refusal_id, reason, message, decision_id))

    def _default_wait(self) -> float:
        s = self.settings
        retries = (s.max_retries + 1) * (s.retry_backoff_cap_seconds + s.ask_timeout_seconds)
        return s.order_timeout_seconds + s.reconcile_window_seconds + retries

    def _order_context(self, runtime: AccountRuntime) -> OrderContext:
        supervisor = runtime.supervisor
        return OrderContext(
            broker=supervisor.broker_proxy,
            persistence=supervisor.persistence_ref,
            config=runtime.order_config,
            clock=self._clock,
            scheduler=self.scheduler,
            switch=supervisor.switch,
            margin=runtime.margin,
            on_final=lambda record: self._on_final(runtime, record),
            metrics=self.metrics,
            claims=runtime.claims,
            dispatcher=self._order_pool,
        )

    def _on_final(self, runtime: AccountRuntime, record: ExecutionLog) -> None:
        self.metrics.execution_final(record)
        runtime.supervisor.order_finished(record.execution_id)
        with self._lock:
            self._decisions.forget_finished()

    def _is_live(self, execution_id: str) -> bool:
        return any(rt.supervisor.is_live(execution_id) for rt in self.runtimes.values())

    def _check_running(self) -> None:
        if self._stopped:
            raise EngineStoppedError("the execution engine is stopped")

    def in_flight(self) -> int:
        return sum(rt.supervisor.in_flight() for rt in self.runtimes.values())

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
        account: str | None = None,
    ) -> list[ExecutionLog]:
        wanted = ExecutionStatus(status) if isinstance(status, str) else status
        return self.repository.history(symbol=symbol, status=wanted, limit=limit, account=account)

    def export_audit_trail(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Every execution created in [start, end), as JSON-ready dicts, oldest first."""
        return [record.model_dump(mode="json") for record in self.iter_audit_trail(start, end)]

    def iter_audit_trail(self, start: datetime, end: datetime) -> Iterator[ExecutionLog]:
        return self.repository.audit_trail(start, end)

    # --- the kill switch ----------------------------------------------------------------

    def _chosen(self, account: str | None) -> list[AccountRuntime]:
        """`account`'s runtime, or every account's (the firm) when None."""
        if account is None:
            return list(self.runtimes.values())
        return [self.runtime(account)]

    def trading_state(self, account: str | None = None) -> TradingStateRecord | None:
        """The persisted state of `account` (default: the first account's)."""
        runtime = self.runtime(account) if account is not None else self._primary
        return runtime.supervisor.trading_state()

    def halt(
        self, reason: str, by: str, *, flatten: bool = False, account: str | None = None
    ) -> dict[str, Any] | None:
        """Stop trading on `account` (every account when None): no order_send starts there
        after this returns; every execution not yet sent is rejected with TRADING_HALTED;
        orders still open are removed. Other accounts trade on.

        `flatten=True` closes every owned position first: the state is REDUCING while the
        closes run (no opening send can start, executions in flight are halted), then
        HALTED, also when the flatten fails. Returns the flatten's report (the last
        account's when several). Refused when already HALTED (`TradingHaltedError`)."""
        runtimes = self._chosen(account)
        if not flatten:
            for runtime in runtimes:
                runtime.supervisor.halt(reason, by)
            return None
        for runtime in runtimes:
            switch = runtime.supervisor.switch
            if switch.halted:
                # Leaving a halt, even for closes only, is the admin's resume.
                raise TradingHaltedError(
                    "trading is already HALTED: nothing is sent (resume, then flatten)",
                    reason=switch.reason,
                )
        report: dict[str, Any] | None = None
        for runtime in runtimes:
            runtime.supervisor.halt_flatten_begins(reason, by)
            try:
                report = self._flatten(runtime, None, reason=reason, by=by)
            finally:
                runtime.supervisor.halt(reason, by)
        return report

    def flatten(
        self,
        symbol: str | None = None,
        *,
        reason: str,
        by: str,
        account: str | None = None,
    ) -> dict[str, Any]:
        """Close every position the engine owns (on `symbol`, or all; on `account`, or
        every account), each by its ticket as one execution through the normal pipeline;
        see `actors._flatten`. Refused while HALTED (`TradingHaltedError`:
        `halt(..., flatten=True)` flattens and halts). Returns the report (the last
        account's when several)."""
        runtimes = self._chosen(account)
        for runtime in runtimes:
            switch = runtime.supervisor.switch
            if switch.halted:
                raise TradingHaltedError(
                    "trading is HALTED: nothing is sent (halt with flatten closes, then halts)",
                    reason=switch.reason,
                )
        reports = [self._flatten(rt, symbol, reason=reason, by=by) for rt in runtimes]
        return reports[-1]

    def _flatten(
        self, runtime: AccountRuntime, symbol: str | None, *, reason: str, by: str
    ) -> dict[str, Any]:
        self._check_running()
        s = runtime.settings
        name = runtime.name
        supervisor = runtime.supervisor
        ports = FlattenPorts(
            broker=supervisor.broker_proxy,
            persistence=supervisor.persistence_ref,
            submit=lambda message: self.submit({**message, "account": name}),
            non_final=lambda: self.repository.non_final(account=name),
            new_id=self._ids.new_id,
            clock=self._clock,
            magic=s.magic,
            scope=s.position_scope,
            ask_timeout=s.ask_timeout_seconds,
            wait=self._default_wait(),
        )
        report = flatten(ports, symbol, reason=reason, by=by)
        supervisor.alerts.alert(
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

    def reduce_only(self, *, reason: str, by: str, account: str | None = None) -> None:
        """REDUCING: only trades that reduce positions are sent; an opening part is REJECTED
        with REDUCE_ONLY (nothing sent). `resume` returns to ACTIVE. Refused while HALTED
        (`TradingHaltedError`). On `account`, or every account when None."""
        for runtime in self._chosen(account):
            runtime.supervisor.reduce_only(reason, by)

    def resume(self, by: str, reason: str = "resumed", *, account: str | None = None) -> None:
        """Trade again (ACTIVE, from HALTED or REDUCING), only after a successful
        reconciliation (`ReconciliationError` otherwise, and the state stays as it was).
        On `account`, or every account when None."""
        for runtime in self._chosen(account):
            runtime.supervisor.resume(by, reason)

    def health(self) -> dict[str, Any]:
        """Broker connection, database ping, trading state, each actor's state and the
        restart counts (what `/health` serves); never blocks on an actor. With several
        accounts, `accounts` holds each one's (the top level is the first account's)."""
        health = self.supervisor.health()
        if self.ownership is not None:
            health["instance"] = self.ownership.owner
            health["accounts_owned"] = self.ownership.owned()
        if len(self.runtimes) > 1:
            health["accounts"] = {
                name: runtime.supervisor.health() for name, runtime in self.runtimes.items()
            }
        return health

    # --- lifecycle ----------------------------------------------------------------------

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every actor this facade started. In-flight executions keep their last
        committed state; the next start reconciles them."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        for runtime in reversed(self.runtimes.values()):
            runtime.stop(timeout)
        if self.ownership is not None:
            self.ownership.stop(timeout)  # releases the leases: a standby takes over
        self.scheduler.stop()
        if self._order_pool is not None:
            self._order_pool.close(timeout)
        self._db.dispose()
        if self._froze:
            gc.unfreeze()  # the host process goes on: its objects are collectable again

    def __enter__(self) -> ExecutionFacade:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


__all__ = ["ExecutionFacade", "engine_version", "parse_rpm"]
