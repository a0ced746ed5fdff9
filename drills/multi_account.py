"""The `multi-account` drill: one engine trading three simulated accounts, a burst spread
over them, and on the first account a broker crash then a terminal disconnect mid-burst.
The other two must keep filling throughout: no restart, no halt, no rejection of theirs.

The report is the other drills' (`verdict`) over every account, plus each account's fills,
restarts and trading state under `details.accounts`.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from actors.engine import create_execution_engine
from actors.facade import ExecutionFacade
from core.errors import ExecutionEngineError
from drills._harness import (
    Progress,
    audit_ok,
    burst,
    decision_prefix,
    drill_settings,
    read_store,
    run_id,
    scratch_store,
    trade,
    verdict,
    wait_until,
)
from terminals.simulated import SimulatedTerminal

NAME = "multi-account"
ACCOUNTS = ("acct-a", "acct-b", "acct-c")
FAULTED = ACCOUNTS[0]
_TIMEOUT = 60.0
_FINAL = ("FILLED", "PARTIALLY_FILLED", "REJECTED", "EXPIRED")


def _accounts_file(directory: Path, magic: int, seed: int) -> str:
    path = directory / "accounts.toml"
    path.write_text(
        "".join(
            f'[accounts.{name}]\nmagic = {magic + i}\nterminal = {{ kind = "simulated", '
            f"seed = {seed + i} }}\n\n"
            for i, name in enumerate(ACCOUNTS)
        )
    )
    return str(path)


def run_multi_account(
    executions: int, seed: int, database_url: str | None, progress: Progress
) -> dict[str, Any]:
    rid = run_id()
    magic = 700_000 + (seed * 7_919 + int(rid, 16)) % 99_991
    sims = {
        name: SimulatedTerminal(seed=seed + i, order_send_latency=0.001, ipc_latency=0.0)
        for i, name in enumerate(ACCOUNTS)
    }
    with scratch_store(database_url) as url, tempfile.TemporaryDirectory() as tmp:
        settings = drill_settings(magic, accounts_file=_accounts_file(Path(tmp), magic, seed))
        engine = create_execution_engine(database_url=url, settings=settings, terminals=sims)
        try:
            return _drive(engine, sims, executions, seed, rid, progress)
        finally:
            engine.stop()


def _message(rid: str, index: int, seed: int) -> dict[str, Any]:
    return {**trade(rid, index, seed), "account": ACCOUNTS[index % len(ACCOUNTS)]}


def _drive(
    engine: ExecutionFacade,
    sims: dict[str, SimulatedTerminal],
    executions: int,
    seed: int,
    rid: str,
    progress: Progress,
) -> dict[str, Any]:
    faulted = engine.runtime(FAULTED).supervisor
    others = [engine.runtime(name).supervisor for name in ACCOUNTS if name != FAULTED]
    halted_seen: dict[str, bool] = dict.fromkeys(ACCOUNTS, False)
    stop_watch = threading.Event()

    def watch() -> None:
        # Whether an account was ever halted or reduced during the run (not only at its end).
        while not stop_watch.wait(0.005):
            for name in ACCOUNTS:
                if engine.runtime(name).supervisor.switch.state.value != "ACTIVE":
                    halted_seen[name] = True

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    fault_at: list[float] = []

    def crash() -> None:
        fault_at.append(time.monotonic())
        progress(f"crashing the broker of {FAULTED}")
        faulted.inject("broker", "crash")

    def disconnect() -> None:
        progress(f"disconnecting the terminal of {FAULTED}")
        sims[FAULTED].set_connected(False)
        wait_until(lambda: faulted.switch.halted, 10.0, f"{FAULTED} halted by its supervisor")
        sims[FAULTED].set_connected(True)

    messages = [_message(rid, i, seed) for i in range(executions)]
    third = max(1, executions // 3)
    progress(f"{NAME}: bursting {executions} executions over {len(ACCOUNTS)} accounts")
    first = burst(
        engine.execute,
        messages[:third],
        concurrency=24,
        at=third // 2,
        fault=crash,
        progress=progress,
    )
    second = burst(
        engine.execute,
        messages[third:],
        concurrency=24,
        at=(executions - third) // 3,
        fault=disconnect,
        progress=progress,
    )
    progress("recovering")
    _resume(engine)
    recovered_at = time.monotonic()
    wait_until(
        lambda: not engine.in_flight() and not engine.repository.non_final(),
        _TIMEOUT,
        "every execution final",
        pause=0.05,
    )
    stop_watch.set()
    watcher.join(1.0)

    prefix = decision_prefix(rid)
    store = read_store(engine.supervisor.db, prefix)
    account_of = {m["decision"]["decision_id"]: m["account"] for m in messages}
    per_account: dict[str, Counter[str]] = {name: Counter() for name in ACCOUNTS}
    for decision_id, status in store.statuses.items():
        per_account[account_of[decision_id]][status] += 1
    orders = [
        order
        for name, sim in sims.items()
        for order in sim.orders_for_magic(engine.runtime(name).settings.magic)
    ]
    healthy = [name for name in ACCOUNTS if name != FAULTED]
    checks = {
        "faulted_account_restarted": faulted.total_restarts >= 1,
        "faulted_account_halted_by_disconnect": halted_seen[FAULTED],
        "others_never_halted": not any(halted_seen[name] for name in healthy),
        "others_never_restarted": all(s.total_restarts == 0 for s in others),
        "others_all_filled": all(
            set(per_account[name]) == {"FILLED"}
            and sum(per_account[name].values()) == sum(1 for m in messages if m["account"] == name)
            for name in healthy
        ),
    }
    return verdict(
        drill=NAME,
        executions=executions,
        store=store,
        orders=orders,
        audit=audit_ok(engine.supervisor.db, prefix),
        recovery_seconds=max(recovered_at - (fault_at[0] if fault_at else recovered_at), 0.0),
        extra={
            "accounts": {
                name: {
                    "statuses": dict(sorted(per_account[name].items())),
                    "fills": per_account[name]["FILLED"] + per_account[name]["PARTIALLY_FILLED"],
                    "restarts": engine.runtime(name).supervisor.total_restarts,
                    "halted_during_run": halted_seen[name],
                    "terminal_orders": len(
                        sims[name].orders_for_magic(engine.runtime(name).settings.magic)
                    ),
                }
                for name in ACCOUNTS
            },
            "caller_errors": len(first.errors) + len(second.errors),
            "faulted_account": FAULTED,
        },
        checks=checks,
    )


def _resume(engine: ExecutionFacade) -> None:
    def attempt() -> bool:
        switch = engine.runtime(FAULTED).supervisor.switch
        if not switch.halted:
            return True
        try:
            engine.resume(by="drill", reason=f"drill {NAME}: recovered", account=FAULTED)
        except ExecutionEngineError:
            return False
        return True

    wait_until(attempt, _TIMEOUT, f"{FAULTED} resumed", pause=0.1)


__all__ = ["ACCOUNTS", "NAME", "run_multi_account"]
