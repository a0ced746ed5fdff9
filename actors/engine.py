"""Wiring: `create_execution_engine()` builds what an `ExecutionFacade` fronts.

The database (migrated first), the scheduler, the OrderActors' threads, and one
`AccountRuntime` per account of `load_accounts(settings)`: its terminal, its Supervisor
(BrokerActor, terminal watch, kill switch, restart intensity, recovery), its margin book and
position claims, its magic and limits (`Accounts.settings_for`). Without an accounts file
there is one account, `default`, built from the settings exactly as before accounts existed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from actors._dispatcher import Dispatcher
from actors._firm_state import FirmState
from actors._legs import PositionClaims
from actors._ownership import Ownership, ownership_from_settings
from actors._recovery_report import RecoveryReport
from actors._scheduler import Scheduler
from actors._shared import MarginBook
from actors.broker import BrokerConfig
from actors.facade import ExecutionFacade, engine_version
from actors.kill_switch import TradingSwitch
from actors.metrics import EngineMetrics
from actors.persistence import StoredDecisions
from actors.supervisor import Supervisor
from core.accounts import Accounts, load_accounts
from core.clock import Clock, SystemClock
from core.enums import TradingState
from core.execution import OrderConfig
from core.ids import IdSource, UuidIds
from core.settings import Settings, load_settings
from storage.db import create_db_engine, default_sqlite_url
from storage.migrate import upgrade
from storage.repository import Repository

log = logging.getLogger(__name__)


def broker_config(settings: Settings) -> BrokerConfig:
    s = settings
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


def order_config(settings: Settings, version: str) -> OrderConfig:
    s = settings
    return OrderConfig(
        engine_version=version,
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


@dataclass(slots=True)
class AccountRuntime:
    """One account's trading, started and stopped as a unit (so that the set of accounts an
    engine trades can change while it runs: a lease won or lost starts or stops one)."""

    name: str
    settings: Settings
    terminal: Any
    supervisor: Supervisor
    order_config: OrderConfig
    margin: MarginBook = field(default_factory=MarginBook)
    claims: PositionClaims = field(default_factory=PositionClaims)
    recovery: RecoveryReport | None = None
    firm_state: FirmState | None = None
    """Hot standby: keeps this account's gate on its persisted state (other instances')."""

    def start(self) -> RecoveryReport:
        """Start its actors and reconcile its unfinished executions against its terminal."""
        self.recovery = self.supervisor.start()
        if self.firm_state is not None:
            self.firm_state.start()
        return self.recovery

    def stop(self, timeout: float = 10.0) -> None:
        if self.firm_state is not None:
            self.firm_state.stop(timeout)
        self.supervisor.stop(timeout)


@dataclass(slots=True)
class EngineWiring:
    """Everything an `ExecutionFacade` fronts, built but not started."""

    settings: Settings
    accounts: Accounts
    database_url: str
    db: Engine
    repository: Repository
    stored: StoredDecisions
    scheduler: Scheduler
    clock: Clock
    ids: IdSource
    metrics: EngineMetrics
    runtimes: dict[str, AccountRuntime]
    order_pool: Dispatcher | None
    version: str
    ownership: Ownership | None = None
    """Hot standby (EE_STANDBY): the accounts this instance trades; None = all of them."""


def wire_engine(
    terminals: Mapping[str, Any],
    database_url: str,
    settings: Settings,
    accounts: Accounts,
    *,
    clock: Clock | None = None,
    ids: IdSource | None = None,
    metrics: EngineMetrics | None = None,
) -> EngineWiring:
    """Migrate the database and build every account's runtime (nothing started yet)."""
    clock = clock or SystemClock()
    metrics = metrics if metrics is not None else EngineMetrics()
    version = engine_version()
    upgrade(database_url)
    db = create_db_engine(database_url)
    repository = Repository(db)
    scheduler = Scheduler(clock.monotonic)
    ownership = ownership_from_settings(settings, database_url, db, clock, accounts.names)
    runtimes: dict[str, AccountRuntime] = {}
    first: Supervisor | None = None
    for name in accounts.names:
        account_settings = accounts.settings_for(name, settings)
        margin = MarginBook()
        # The Supervisor owns the actors and the kill switch: it starts the Persistence and
        # Broker actors, settles in one pass what a previous run left unfinished and can be
        # settled now, then lets trading become ACTIVE (or keeps it HALTED). Executions that
        # need more evidence are reconciled in the background, their margin held in
        # `margin`, so new work is accepted within a second or two of start.
        supervisor = Supervisor(
            terminal=terminals[name],
            db=db,
            repository=repository,
            settings=account_settings,
            broker_config=broker_config(account_settings),
            clock=clock,
            scheduler=scheduler,
            metrics=metrics,
            margin=margin,
            account=name,
            ownership=ownership,
            # One journal, one writer: the first account's Supervisor starts and watches
            # the PersistenceActor, the others share it (and hear of its failures).
            shared_persistence=first.persistence_ref if first is not None else None,
        )
        if first is None:
            first = supervisor
        else:
            first.journal_listeners.append(supervisor.watchdog.journal_result)
        runtimes[name] = AccountRuntime(
            name=name,
            settings=account_settings,
            terminal=terminals[name],
            supervisor=supervisor,
            order_config=order_config(account_settings, version),
            margin=margin,
            firm_state=(
                FirmState(database_url, repository, supervisor.kill_switch, clock, name)
                if ownership is not None
                else None
            ),
        )
    assert first is not None  # Accounts holds at least one
    metrics.bind_terminal(first.watchdog.disconnected_for)  # each watchdog bound its own
    for name, runtime in runtimes.items():
        supervisor = runtime.supervisor
        metrics.accounts.bind(
            name, _state_of(supervisor.switch), supervisor.watchdog.disconnected_for
        )
    pool = Dispatcher("OrderActor", settings.order_threads) if settings.order_threads else None
    return EngineWiring(
        settings=settings,
        accounts=accounts,
        database_url=database_url,
        db=db,
        repository=repository,
        stored=StoredDecisions(db, repository),
        scheduler=scheduler,
        clock=clock,
        ids=ids or UuidIds(),
        metrics=metrics,
        runtimes=runtimes,
        order_pool=pool,
        version=version,
        ownership=ownership,
    )


def _state_of(switch: TradingSwitch) -> Callable[[], TradingState]:
    return lambda: switch.state


def create_execution_engine(
    terminal: Any = None,
    database_url: str | None = None,
    settings: Settings | None = None,
    *,
    clock: Clock | None = None,
    ids: IdSource | None = None,
    metrics: EngineMetrics | None = None,
    terminals: Mapping[str, Any] | None = None,
) -> ExecutionFacade:
    """Start an engine: `terminal` is any object with the MetaTrader5 API, the first
    account's (default: from the settings, a `SimulatedTerminal` unless told otherwise);
    `terminals` gives other accounts theirs by name (the rest are made from the accounts
    file); `database_url` defaults to a SQLite file in the working directory."""
    settings = settings or load_settings()
    accounts = load_accounts(settings)
    given = dict(terminals or {})
    if terminal is not None:
        given.setdefault(accounts.names[0], terminal)
    found: dict[str, Any] = {}
    for name in accounts.names:
        found[name] = given.get(name)
        if found[name] is None:
            from terminals.factory import terminal_from_settings

            found[name] = terminal_from_settings(accounts.settings_for(name, settings))
    url = database_url or settings.database_url or default_sqlite_url()
    wiring = wire_engine(found, url, settings, accounts, clock=clock, ids=ids, metrics=metrics)
    return ExecutionFacade(wiring)


__all__ = [
    "AccountRuntime",
    "EngineWiring",
    "broker_config",
    "create_execution_engine",
    "order_config",
    "wire_engine",
]
