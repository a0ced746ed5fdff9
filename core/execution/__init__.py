"""The execution lifecycle as a pure state machine.

    step(state: Execution, event: Event, now: Now, cfg: OrderConfig)
        -> tuple[Execution, list[Effect]]

`state` holds what one execution knows (`state.Execution`, a frozen record); `events` are
what it is told, `effects` what it asks the world to do. `actors.order.OrderActor` is the
shell around it. The rules it applies are in `core.rules` (validation, settlement, legs,
retcodes, reconcile), which crash recovery shares.
"""

from core.execution._run import InvalidTransitionError
from core.execution.config import OrderConfig
from core.execution.state import Entry, Execution, Job, Now, Phase, Stage, Trading
from core.execution.step import can_settle_own_failure, start, step

__all__ = [
    "Entry",
    "Execution",
    "InvalidTransitionError",
    "Job",
    "Now",
    "OrderConfig",
    "Phase",
    "Stage",
    "Trading",
    "can_settle_own_failure",
    "start",
    "step",
]
