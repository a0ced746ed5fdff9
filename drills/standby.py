"""The hot-standby drills, with processes: two engine instances (`drills._standby_proc`)
on one PostgreSQL database and one simulated terminal served over rpyc.

- `failover`: instance a trades the burst and is SIGKILLed mid-burst; instance b takes the
  account over (reconciling what a left) and resubmits the burst (the same decision ids).
- `partition`: a's database sessions are ended with pg_terminate_backend, again and again,
  while its process lives on and keeps trying; a must stop sending before b starts.
- `firm-halt`: a trades the burst; b, the standby, halts trading firm-wide mid-burst; no
  send may start on a more than 1 s after b's halt call returned.

Each report has the keys of the other drills plus `takeover_seconds` (the fault to the
standby trading; None for firm-halt) and `sends_by_instance` (calls of `order_send`).
"""

from __future__ import annotations

import contextlib
import random
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from drills._harness import Progress, audit_ok, decision_prefix, read_store, run_id, scratch_store
from drills._harness import verdict as drill_verdict
from drills._standby_tools import Lines, Partition
from drills.engine_kill import (
    _ENGINE_ENV,
    ChildProcess,
    _postgres_url,
    child_env,
    simulator_server,
    terminal_orders,
)
from storage.db import create_db_engine

_READY_TIMEOUT = 90.0
HALT_BOUND_SECONDS = 1.0
"""firm-halt: no send may start on another instance later than this after the halt."""


@dataclass
class _Drill:
    """The set-up every standby drill shares: the store, the terminal, the two instances."""

    name: str
    executions: int
    seed: int
    store_url: str
    port: int
    magic: int
    takeover_seconds: float
    concurrency: int
    go_file: Path
    rid: str = field(default_factory=run_id)
    lines: Lines = field(default_factory=Lines)
    processes: dict[str, ChildProcess] = field(default_factory=dict)

    def start(self, instance: str, role: str = "trader") -> ChildProcess:
        env = child_env({
            **_ENGINE_ENV,
            "EE_RPYC_PORT": str(self.port),
            "DATABASE_URL": self.store_url,
            "EE_MAGIC": str(self.magic),
            "EE_INSTANCE_NAME": instance,
            "EE_TAKEOVER_SECONDS": str(self.takeover_seconds),
        })  # fmt: skip
        command = [
            sys.executable, "-m", "drills._standby_proc", "--role", role,
            "--executions", str(self.executions), "--run", self.rid, "--seed", str(self.seed),
            "--concurrency", str(self.concurrency), "--go-file", str(self.go_file),
        ]  # fmt: skip
        process = ChildProcess(command, env, f"instance {instance}")
        self.processes[instance] = process
        self.lines.follow(process, instance)
        return process

    def ready(self, instance: str, marker: str = "READY") -> None:
        self.lines.wait(
            f"instance {instance} {marker}",
            lambda: self.lines.seen_line(instance, marker),
            _READY_TIMEOUT,
        )

    def go(self) -> None:
        self.go_file.touch()

    def close(self) -> None:
        for process in self.processes.values():
            process.close()

    def report(
        self,
        *,
        takeover_seconds: float | None,
        extra: dict[str, Any],
        checks: dict[str, bool] | None = None,
    ) -> dict[str, Any]:
        orders = terminal_orders(self.port, self.magic)
        engine = create_db_engine(self.store_url)
        try:
            store = read_store(engine, decision_prefix(self.rid))
            audit = audit_ok(engine, decision_prefix(self.rid))
        finally:
            engine.dispose()
        sends = {name: self.lines.count(name, "SEND") for name in sorted(self.processes)}
        report = drill_verdict(
            drill=self.name,
            executions=self.executions,
            store=store,
            orders=orders,
            audit=audit,
            recovery_seconds=takeover_seconds or 0.0,
            extra={
                "seed": self.seed,
                "magic": self.magic,
                "terminal_orders": len(orders),
                "lease_takeover_setting_seconds": self.takeover_seconds,
                **extra,
            },
            checks=checks,
        )
        report["takeover_seconds"] = (
            round(takeover_seconds, 3) if takeover_seconds is not None else None
        )
        report["sends_by_instance"] = sends
        return report


@contextlib.contextmanager
def _drill(
    name: str,
    executions: int,
    seed: int,
    database_url: str | None,
    *,
    server_port: int | None,
    magic: int | None,
    takeover_seconds: float,
    concurrency: int,
) -> Iterator[_Drill]:
    url = _postgres_url(database_url)
    rng = random.Random(seed)
    magic = magic or 810_000 + rng.randrange(99_991)
    with (
        scratch_store(url) as store_url,
        contextlib.ExitStack() as stack,
        tempfile.TemporaryDirectory() as scratch,
    ):
        port = server_port or stack.enter_context(simulator_server(seed))
        drill = _Drill(
            name=name,
            executions=executions,
            seed=seed,
            store_url=store_url,
            port=port,
            magic=magic,
            takeover_seconds=takeover_seconds,
            concurrency=concurrency,
            go_file=Path(scratch) / "go",
        )
        try:
            yield drill
        finally:
            drill.close()


def _fault_point(executions: int, seed: int, after: int | None) -> int:
    drawn = random.Random(seed).randint(max(1, executions // 5), max(1, executions // 2))
    return after if after is not None else drawn


def _owner_then_standby(drill: _Drill, standby_role: str = "trader") -> None:
    """Instance a owns the account before b starts; both up before a trades."""
    drill.start("a")
    drill.ready("a")
    drill.start("b", standby_role)
    drill.ready("b", "LISTENING" if standby_role == "halter" else "READY")
    drill.go()
    drill.ready("a", "OWNER")


def run_failover(
    executions: int,
    seed: int,
    database_url: str | None,
    progress: Progress,
    *,
    server_port: int | None = None,
    magic: int | None = None,
    kill_after: int | None = None,
    takeover_seconds: float = 5.0,
    concurrency: int = 16,
) -> dict[str, Any]:
    """SIGKILL the owner after `kill_after` answers; the standby takes over."""
    kill_after = _fault_point(executions, seed, kill_after)
    with _drill(
        "failover", executions, seed, database_url, server_port=server_port, magic=magic,
        takeover_seconds=takeover_seconds, concurrency=concurrency,
    ) as drill:  # fmt: skip
        _owner_then_standby(drill)
        progress(f"failover: a trades {executions}; SIGKILL after {kill_after} answers")
        lines = drill.lines
        lines.wait("a's answers", lambda: lines.count("a", "FINAL") >= kill_after)
        drill.processes["a"].kill()
        killed_at = time.time()
        answered = lines.count("a", "FINAL")
        progress(f"killed a after {answered} answers; b takes over")
        drill.ready("b", "OWNER")
        lines.wait("b's burst", lambda: lines.seen_line("b", "DONE"))
        owner_at = lines.times("b", "OWNER")[0]
        return drill.report(
            takeover_seconds=owner_at - killed_at,
            extra={"killed_after_answers": answered, "kill_point": kill_after},
        )


def run_partition(
    executions: int,
    seed: int,
    database_url: str | None,
    progress: Progress,
    *,
    server_port: int | None = None,
    magic: int | None = None,
    cut_after: int | None = None,
    takeover_seconds: float = 5.0,
    concurrency: int = 16,
) -> dict[str, Any]:
    """Cut a off the database after `cut_after` answers while its process runs on."""
    cut_after = _fault_point(executions, seed, cut_after)
    with _drill(
        "partition", executions, seed, database_url, server_port=server_port, magic=magic,
        takeover_seconds=takeover_seconds, concurrency=concurrency,
    ) as drill:  # fmt: skip
        _owner_then_standby(drill)
        progress(f"partition: a trades {executions}; its sessions end after {cut_after} answers")
        lines = drill.lines
        lines.wait("a's answers", lambda: lines.count("a", "FINAL") >= cut_after)
        admin = create_db_engine(drill.store_url)
        try:
            with Partition(admin, "a", drill.processes["a"].popen.pid) as partition:
                cut_at = time.time()
                answered = lines.count("a", "FINAL")
                progress(f"a cut off after {answered} answers; b takes over")
                drill.ready("b", "OWNER")
                lines.wait("b's burst", lambda: lines.seen_line("b", "DONE"))
                a_alive = drill.processes["a"].popen.poll() is None
            ended = partition.ended
        finally:
            admin.dispose()
        owner_at = lines.times("b", "OWNER")[0]
        a_sends = lines.times("a", "SEND")
        b_sends = [t for t in lines.times("b", "SEND") if t >= cut_at]
        a_last = max(a_sends) if a_sends else 0.0
        b_first = min(b_sends) if b_sends else float("inf")
        return drill.report(
            takeover_seconds=owner_at - cut_at,
            extra={
                "cut_after_answers": answered,
                "cut_point": cut_after,
                "sessions_ended": ended,
                "a_sends_after_cut": sum(1 for t in a_sends if t >= cut_at),
                "a_last_send_to_b_first_send_seconds": round(b_first - a_last, 3)
                if b_sends
                else None,
            },
            checks={
                "a_alive_through_the_partition": a_alive,
                "a_stopped_before_b": a_last < b_first,
            },
        )


def run_firm_halt(
    executions: int,
    seed: int,
    database_url: str | None,
    progress: Progress,
    *,
    server_port: int | None = None,
    magic: int | None = None,
    halt_after: int | None = None,
    takeover_seconds: float = 5.0,
    concurrency: int = 16,
) -> dict[str, Any]:
    """Halt on the standby b after `halt_after` of a's answers."""
    halt_after = _fault_point(executions, seed, halt_after)
    with _drill(
        "firm-halt", executions, seed, database_url, server_port=server_port, magic=magic,
        takeover_seconds=takeover_seconds, concurrency=concurrency,
    ) as drill:  # fmt: skip
        _owner_then_standby(drill, standby_role="halter")
        progress(f"firm-halt: a trades {executions}; b halts after {halt_after} answers")
        lines = drill.lines
        lines.wait("a's answers", lambda: lines.count("a", "FINAL") >= halt_after)
        drill.processes["b"].popen.send_signal(signal.SIGUSR1)
        drill.ready("b", "HALTED")
        halted_at = lines.times("b", "HALTED")[0]
        answered = lines.count("a", "FINAL")
        lines.wait("a's burst", lambda: lines.seen_line("a", "DONE"))
        a_sends = lines.times("a", "SEND")
        late = [t for t in a_sends if t > halted_at + HALT_BOUND_SECONDS]
        after = [t for t in a_sends if t > halted_at]
        report = drill.report(
            takeover_seconds=None,
            extra={
                "halted_after_answers": answered,
                "halt_point": halt_after,
                "a_sends_after_halt": len(after),
                "a_last_send_after_halt_seconds": round(max(after) - halted_at, 3)
                if after
                else None,
            },
            checks={"no_send_1s_after_the_halt": not late},
        )
        report["sends_after_halt_plus_1s"] = len(late)
        return report


__all__ = ["HALT_BOUND_SECONDS", "run_failover", "run_firm_halt", "run_partition"]
