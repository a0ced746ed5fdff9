"""How a Supervisor starts each kind of child: the factories `Children` calls for the first
incarnation and for every restart (a new writer, a new terminal watch, each time)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pykka
from sqlalchemy import Engine

from actors._ownership import Ownership
from actors._scheduler import Scheduler
from actors._supervised import ChildHooks, ObservedWriter, SupervisedBroker, SupervisedPersistence
from actors._watchdog import Watchdog
from actors.broker import BrokerConfig
from actors.kill_switch import KillSwitch
from actors.metrics import EngineMetrics
from core.clock import Clock
from core.settings import Settings
from storage.journal import AuditKey

ChildFactory = Callable[[ChildHooks], pykka.ActorRef[Any]]


def persistence_factory(
    *,
    db: Engine,
    settings: Settings,
    metrics: EngineMetrics | None,
    audit_key: AuditKey | None,
    on_result: Callable[[BaseException | None], None],
    on_head: Callable[[int, str], None],
    ownership: Ownership | None,
) -> ChildFactory:
    """The PersistenceActor, each incarnation on a writer of its own. With hot standby the
    writer fences every intent by its account's lease and shares the chain with the other
    instances."""

    def start(hooks: ChildHooks) -> pykka.ActorRef[Any]:
        return SupervisedPersistence.start(
            hooks,
            lambda: ObservedWriter(
                db,
                on_result,
                audit_key=audit_key,
                on_head=on_head,
                fence=ownership.fence if ownership is not None else None,
                shared=ownership is not None,
            ),
            max_batch=settings.group_commit_max,
            on_commit=metrics.db_written if metrics is not None else None,
        )

    return start


def broker_factory(
    *,
    terminal: Any,
    broker_config: BrokerConfig,
    clock: Clock,
    scheduler: Scheduler,
    metrics: EngineMetrics | None,
    switch: KillSwitch,
    watchdog: Watchdog,
) -> ChildFactory:
    """The BrokerActor, each incarnation with a new terminal watch and the shared identity
    guard (a remade link is checked against the terminal the journal knows)."""

    def start(hooks: ChildHooks) -> pykka.ActorRef[Any]:
        return SupervisedBroker.start(
            hooks,
            terminal,
            broker_config,
            clock,
            scheduler,
            metrics,
            switch=switch,
            watch=watchdog.new_terminal_watch(),
            identity=watchdog.identity,
        )

    return start


__all__ = ["ChildFactory", "broker_factory", "persistence_factory"]
