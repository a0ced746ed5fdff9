"""Failover drills: a burst of synthetic approved trades against the simulated terminal,
one fault injected mid-burst, recovery, and a JSON verdict.

| drill | fault |
|---|---|
| broker-crash | the BrokerActor dies with an order_send in flight, then on a failed tell |
| persistence-crash | the PersistenceActor dies on a failed tell (pending writes fail) |
| order-actor-crash | three OrderActors die mid-execution |
| terminal-disconnect | the terminal loses its trade server until the supervisor halts |
| ambiguous-submits | sends time out or lose their reply, executed or not |
| database-outage | the store refuses every statement until trading halts |
| halt-under-load | an operator halts mid-burst (PLACED orders are open) |
| engine-kill | the engine process is SIGKILLed mid-burst and restarted |
| flatten-under-faults | a flatten of 3 symbols while closes time out and the broker dies |
| failover | two instances (hot standby); the owner is SIGKILLed mid-burst |
| partition | the owner's database sessions are ended while its process runs on |
| firm-halt | a halt on the standby instance during a burst on the owner |
| multi-account | 3 accounts: a broker crash, then a disconnect, on one; the others keep filling |

Each returns `drill`, `executions`, `final_statuses`, `duplicates` (executions with more
than one order at the terminal), `lost` (executions without a final state after
recovery), `orders_without_intent` (terminal orders with the drill's magic and no
SUBMITTING in the journal), `recovery_seconds`, `audit_verified` and `passed`, plus
`details`; the two-instance drills (`drills.standby`) add `takeover_seconds` and
`sends_by_instance`. Drills never run against a real terminal: each builds its own simulator.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.errors import ConfigurationError

# Kept light: `execution-engine drill --help` imports this module for the names only.

DRILL_NAMES: tuple[str, ...] = (
    "broker-crash",
    "persistence-crash",
    "order-actor-crash",
    "terminal-disconnect",
    "ambiguous-submits",
    "database-outage",
    "halt-under-load",
    "engine-kill",
    "flatten-under-faults",
    "failover",
    "partition",
    "firm-halt",
    "multi-account",
)

PROCESS_DRILLS: tuple[str, ...] = ("engine-kill", "failover", "partition", "firm-halt")
"""The drills that run engines in processes of their own, on PostgreSQL."""


def run_drill(
    name: str,
    executions: int = 200,
    seed: int = 0,
    database_url: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run drill `name` and return its report (see the module docstring).

    Raises `ConfigurationError` for an unknown name, a bad count or an unusable store.
    """
    if name not in DRILL_NAMES:
        raise ConfigurationError(f"unknown drill {name!r}; drills: {', '.join(DRILL_NAMES)}")
    if executions < 2:
        raise ConfigurationError("a drill needs at least 2 executions")
    say = progress or (lambda _: None)
    if name == "flatten-under-faults":
        from drills.flatten import run_flatten_under_faults

        return run_flatten_under_faults(executions, seed, database_url, say)
    if name == "multi-account":
        from drills.multi_account import run_multi_account

        return run_multi_account(executions, seed, database_url, say)
    if name == "engine-kill":
        from drills.engine_kill import run_engine_kill

        return run_engine_kill(executions, seed, database_url, say)
    if name in ("failover", "partition", "firm-halt"):
        from drills import standby

        if name == "failover":
            return standby.run_failover(executions, seed, database_url, say)
        if name == "partition":
            return standby.run_partition(executions, seed, database_url, say)
        return standby.run_firm_halt(executions, seed, database_url, say)
    from drills._in_process import run_in_process

    return run_in_process(name, executions, seed, database_url, say)


def run_drill_beside(
    terminal: object,
    name: str,
    executions: int = 200,
    seed: int = 0,
    database_url: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run drill `name` for an engine whose terminal is `terminal`, in a scratch engine of
    its own (that engine is not touched). Refused (`ConfigurationError`) unless `terminal`
    is the simulated one: drills never run beside a real terminal."""
    from terminals.simulated import SimulatedTerminal

    if not isinstance(terminal, SimulatedTerminal):
        raise ConfigurationError("drills run only where the terminal is the simulated one")
    return run_drill(
        name, executions=executions, seed=seed, database_url=database_url, progress=progress
    )


__all__ = ["DRILL_NAMES", "PROCESS_DRILLS", "run_drill", "run_drill_beside"]
