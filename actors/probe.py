"""A read-only view of a running engine, and the faults a drill may arm.

Drills, benchmarks and tests read the engine's supervision through `EngineProbe` rather
than through the Supervisor's attributes, so the Supervisor's parts can change without
them; `EngineFaults` is the one way in for a fault (drills only, on a simulated terminal).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from actors._children import Children, RestartWindow
from actors._order_registry import OrderRegistry
from actors._supervised import FaultPlan
from actors._watchdog import Watchdog
from actors.kill_switch import KillSwitch
from actors.messages import InjectFault
from core.enums import TradingState
from storage.repository import Repository


class EngineProbe:
    """What an engine's supervision looks like now: restarts, executions in flight,
    orphans, the trading state and the store it writes to. Never changes anything."""

    def __init__(
        self,
        *,
        children: Children,
        orders: OrderRegistry,
        switch: KillSwitch,
        window: RestartWindow,
        watchdog: Watchdog,
        db: Engine,
        repository: Repository,
    ) -> None:
        self._children = children
        self._orders = orders
        self._switch = switch
        self._window = window
        self._watchdog = watchdog
        self.db = db
        """The store (drills read their verdict from it)."""
        self.repository = repository

    @property
    def restarts(self) -> int:
        """Restarts of the permanent children (Persistence, Broker) since start."""
        return self._children.total_restarts

    @property
    def order_crashes(self) -> int:
        return self._orders.crashes

    def children_alive(self) -> bool:
        return self._children.alive()

    def in_flight(self) -> int:
        return len(self._orders)

    def is_live(self, execution_id: str) -> bool:
        return self._orders.is_live(execution_id)

    def orphans(self) -> int:
        """Executions whose OrderActor died and that recovery has not settled yet."""
        return self._orders.orphan_count()

    @property
    def halted(self) -> bool:
        return self._switch.halted

    @property
    def reason(self) -> str:
        """Why trading is HALTED or REDUCING (empty when ACTIVE)."""
        return self._switch.reason

    def recovered(self) -> bool:
        """Whole again: trading ACTIVE, every child alive, no orphan left to reconcile."""
        return not self._switch.halted and self._children.alive() and not self.orphans()

    def health(self) -> dict[str, Any]:
        """A snapshot for `/health`; it never waits on an actor."""
        actors: dict[str, Any] = self._children.describe()
        actors["orders"] = self._orders.describe()
        switch = self._switch
        state = switch.state
        window = self._window
        return {
            "trading_state": state.value,
            "halted_reason": switch.reason if state is TradingState.HALTED else None,
            "reducing_reason": switch.reason if state is TradingState.REDUCING else None,
            "trading_state_persisted": switch.persisted,
            "broker": self._watchdog.broker_health(),
            "database": {
                "ok": self.repository.ping(),
                "journal_error": self._watchdog.journal_error,
            },
            "actors": actors,
            "restarts": self._children.total_restarts,
            "restarts_in_window": window.count(),
            "restart_intensity": f"{window.intensity} in {window.period:g} s",
            "escalated": self._children.escalated or None,
        }


class EngineFaults:
    """Faults a drill injects: armed for an actor's next incarnation or told to a live one."""

    def __init__(self, plan: FaultPlan, children: Children, orders: OrderRegistry) -> None:
        self._plan = plan
        self._children = children
        self._orders = orders

    def crash_after_sends(self, times: int = 1) -> None:
        """The BrokerActor dies right after its next `times` order_send calls returned."""
        self._plan.crash_after_sends(times)

    def fail_starts(self, child: str, times: int) -> None:
        """The next `times` starts of `child` ("broker", "persistence") raise in `on_start`."""
        self._plan.fail_starts(child, times)

    def inject(self, target: str, kind: str = "crash", **options: Any) -> None:
        """`target` is "broker", "persistence" or an execution id; `kind` is "crash" (a
        failing tell) or "hang" (see `InjectFault`)."""
        if target in ("broker", "persistence"):
            ref = self._children.get(target).ref
        else:
            ref = self._orders.live().get(target)
        if ref is None:
            raise ValueError(f"no live actor {target!r}")
        ref.tell(InjectFault(kind, **options))


__all__ = ["EngineFaults", "EngineProbe"]
