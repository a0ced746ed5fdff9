"""engine-kill: the real thing, with processes.

`execution-engine simulator serve` plays the terminal in a process of its own, so that
it lives on when the engine dies, as a real terminal would. An engine process
(`drills._engine_proc`, `EE_TERMINAL=rpyc`, PostgreSQL) sends the burst and is
SIGKILLed after a seeded number of confirmations; a fresh engine on the same database
then runs startup recovery and resubmits the burst (the same decision ids, as an RPM
that got no answer would). Finally the terminal's orders with the drill's magic, read
through the bridge, are compared with the journal.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from sqlalchemy.engine import make_url

from core.errors import ConfigurationError, ExecutionEngineError
from core.settings import load_settings
from drills._harness import (
    Progress,
    audit_ok,
    decision_prefix,
    read_store,
    run_id,
    scratch_store,
    verdict,
)
from storage.db import create_db_engine

_READY_TIMEOUT = 60.0
_RUN_TIMEOUT = 120.0
_ENGINE_ENV = {
    "EE_TERMINAL": "rpyc",
    "EE_RPYC_HOST": "127.0.0.1",
    "EE_RPYC_TIMEOUT_SECONDS": "30",
    "EE_POLL_INTERVAL_SECONDS": "0.01",
    "EE_RETRY_BACKOFF_SECONDS": "0.005",
    "EE_RETRY_BACKOFF_CAP_SECONDS": "0.02",
    "EE_RECONCILE_WINDOW_SECONDS": "0.5",
    "ORDER_TIMEOUT_SECONDS": "5",
    "EE_ASK_TIMEOUT_SECONDS": "10",
    "EE_CACHE_TICK_SECONDS": "0",
    "EE_CACHE_ACCOUNT_SECONDS": "0",
    "EE_CACHE_MARGIN_SECONDS": "0",
    "EE_DISCONNECT_HALT_SECONDS": "5",
    "EE_LOG_LEVEL": "WARNING",
}


class DrillProcessError(ExecutionEngineError):
    """A process of the engine-kill drill did not behave (its stderr tail is attached)."""

    code = "DRILL_PROCESS_FAILED"


class _Process:
    """A child process whose stdout lines arrive on a queue (never a blocking read)."""

    def __init__(self, command: list[str], env: dict[str, str], label: str) -> None:
        self.label = label
        self._stderr: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
        self.popen = subprocess.Popen(  # noqa: S603 - our own interpreter and modules
            command,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            stdin=subprocess.DEVNULL,
            env=env,
            text=True,
            encoding="utf-8",
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True, name=f"drill-{label}")
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def next_line(self, deadline: float) -> str | None:
        """The next line; None at end of output. Raises when the deadline passes."""
        try:
            return self.lines.get(timeout=max(deadline - time.monotonic(), 0.0))
        except queue.Empty:
            raise self.failure("no output in time") from None

    def failure(self, what: str) -> DrillProcessError:
        self._stderr.seek(0)
        tail = " | ".join(self._stderr.read().strip().splitlines()[-3:])
        return DrillProcessError(f"{self.label}: {what}" + (f" ({tail})" if tail else ""))

    def kill(self) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def close(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self._reader.join(timeout)
        self._stderr.close()


@contextlib.contextmanager
def simulator_server(seed: int = 0, order_send_ms: float = 2.0) -> Iterator[int]:
    """`execution-engine simulator serve` on a free loopback port; yields the port."""
    command = [
        sys.executable, "-m", "api.cli", "simulator", "serve", "--port", "0",
        "--seed", str(seed), "--order-send-ms", str(order_send_ms),
    ]  # fmt: skip
    server = _Process(command, _child_env({}), "simulator")
    try:
        line = server.next_line(time.monotonic() + _READY_TIMEOUT)
        if line is None or ":" not in line:
            raise server.failure("did not start")
        yield int(line.rsplit(":", 1)[1])
    finally:
        server.close()


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("POSTGRES_URL", "DATABASE_URL")}
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


def _postgres_url(database_url: str | None) -> str:
    url = database_url or load_settings().database_url
    if not url or make_url(url).get_backend_name() != "postgresql":
        raise ConfigurationError(
            "engine-kill runs the engine on PostgreSQL: pass --database-url "
            "postgresql+psycopg2://USER@HOST:PORT/DB (a scratch database is made there)"
        )
    return url


def run_engine_kill(
    executions: int,
    seed: int,
    database_url: str | None,
    progress: Progress,
    *,
    server_port: int | None = None,
    magic: int | None = None,
    kill_after: int | None = None,
    concurrency: int = 16,
) -> dict[str, Any]:
    """The drill. The engine is killed after `kill_after` answers (default: drawn from
    `seed`); `server_port` reuses a simulator server already running (tests do)."""
    url = _postgres_url(database_url)
    rng = random.Random(seed)
    drawn = rng.randint(1, max(1, executions - 1))
    kill_after = kill_after if kill_after is not None else drawn
    magic = magic or 800_000 + rng.randrange(99_991)
    rid = run_id()
    with scratch_store(url) as store_url, contextlib.ExitStack() as stack:
        port = server_port or stack.enter_context(simulator_server(seed))
        env = _child_env({
            **_ENGINE_ENV,
            "EE_RPYC_PORT": str(port),
            "DATABASE_URL": store_url,
            "EE_MAGIC": str(magic),
        })  # fmt: skip
        command = [
            sys.executable, "-m", "drills._engine_proc", "--executions", str(executions),
            "--run", rid, "--seed", str(seed), "--concurrency", str(concurrency),
        ]  # fmt: skip
        progress(f"engine-kill: engine 1 sends {executions}; SIGKILL after {kill_after} answers")
        first = _Process(command, env, "engine 1")
        try:
            answered = _until(first, lambda finals, _: finals >= kill_after)
            first.kill()
        finally:
            first.close()
        killed_at = time.monotonic()
        progress(f"killed engine 1 after {answered} answers; starting engine 2 (recovery)")
        second = _Process(command, env, "engine 2")
        try:
            ready: dict[str, Any] = {}
            _until(second, lambda _, line: line.startswith("READY") and _mark(ready, line))
            _until(second, lambda _, line: _first_fill(ready, line) or line == "DONE")
            if second.popen.wait(30) != 0:
                raise second.failure(f"exited with {second.popen.returncode}")
        finally:
            second.close()
        recovered_at = ready.get("at", time.monotonic())
        progress("comparing the terminal's orders with the journal")
        orders = _terminal_orders(port, magic)
        engine = create_db_engine(store_url)
        try:
            store = read_store(engine, decision_prefix(rid))
            audit = audit_ok(engine, decision_prefix(rid))
        finally:
            engine.dispose()
    return verdict(
        drill="engine-kill",
        executions=executions,
        store=store,
        orders=orders,
        audit=audit,
        recovery_seconds=recovered_at - killed_at,
        extra={
            "first_fill_seconds": round(ready["filled_at"] - killed_at, 3)
            if "filled_at" in ready
            else None,
            "seed": seed,
            "killed_after_answers": answered,
            "kill_point": kill_after,
            "magic": magic,
            "terminal_orders": len(orders),
            "startup_recovery": ready.get("recovery"),
        },
    )


def _mark(ready: dict[str, Any], line: str) -> bool:
    ready["at"] = time.monotonic()
    ready["recovery"] = json.loads(line.removeprefix("READY").strip() or "{}")
    return True


def _first_fill(ready: dict[str, Any], line: str) -> bool:
    """Note when the restarted engine's first execution filled (never ends the wait)."""
    if "filled_at" not in ready and line.startswith("FINAL") and line.endswith("FILLED"):
        ready["filled_at"] = time.monotonic()
    return False


def _until(process: _Process, done: Callable[[int, str], bool]) -> int:
    """Read `process`'s lines until `done(finals_so_far, line)`; returns the FINAL count.
    The end of the output before that is an error only for the recovering engine."""
    deadline = time.monotonic() + _RUN_TIMEOUT
    finals = 0
    while True:
        line = process.next_line(deadline)
        if line is None:
            if process.label == "engine 1":
                return finals  # engine 1 finished before the kill point
            raise process.failure(f"ended early (exit {process.popen.poll()})")
        if line.startswith("FINAL"):
            finals += 1
        if done(finals, line):
            return finals


def _terminal_orders(port: int, magic: int) -> list[Any]:
    from terminals.bridge import RpycTerminal

    bridge = RpycTerminal(port=port, timeout=30)
    try:
        return list(bridge.remote("orders_for_magic", magic))
    finally:
        bridge.close()


# Public names of the process helpers, for the restart bench (bench.restart) to reuse.
ChildProcess = _Process
child_env = _child_env
terminal_orders = _terminal_orders

__all__ = [
    "ChildProcess",
    "DrillProcessError",
    "child_env",
    "run_engine_kill",
    "simulator_server",
    "terminal_orders",
]
