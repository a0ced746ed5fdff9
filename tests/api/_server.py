"""Runs `execution-engine serve` (or a shell command around it) as a subprocess and finds its
URL: the shared part of the end-to-end and Dockerfile tests."""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
URL_LINE = re.compile(r"execution-engine serving on (http://\S+)")
START_TIMEOUT = 30.0


@dataclass
class Server:
    url: str
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    """Every stdout line read so far."""


def server_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "POSTGRES_URL", "EE_API_TOKENS"}
    }
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


@contextmanager
def running(args: Sequence[str], cwd: Path, env: Mapping[str, str]) -> Iterator[Server]:
    """Start `args`, wait (bounded) for the URL line and for /health to answer, yield the
    server; terminate it (SIGTERM, then SIGKILL) at the end."""
    stderr = (cwd / "server.stderr").open("w+")
    process = subprocess.Popen(
        list(args),
        cwd=cwd,
        env=server_env(env),
        stdout=subprocess.PIPE,
        stderr=stderr,  # a file, not a pipe: a pipe nobody reads would block the server
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(process, lines), daemon=True).start()
    server: Server | None = None
    try:
        server = _wait_for_url(process, lines)
        _wait_for_health(server)
        yield server
    finally:
        _stop(process)
        if server is None:
            stderr.seek(0)
            sys.stderr.write(stderr.read())
        stderr.close()


def _pump(process: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.put(line.rstrip("\n"))
    lines.put(None)


def _wait_for_url(process: subprocess.Popen[str], lines: queue.Queue[str | None]) -> Server:
    deadline = time.monotonic() + START_TIMEOUT
    seen: list[str] = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            continue
        if line is None:
            raise AssertionError(f"server exited ({process.wait()}) before printing its URL")
        seen.append(line)
        found = URL_LINE.search(line)
        if found:
            server = Server(found.group(1), process, seen)
            threading.Thread(target=_collect, args=(lines, seen), daemon=True).start()
            return server
    raise AssertionError(f"no URL within {START_TIMEOUT} s; stdout so far: {seen}")


def _collect(lines: queue.Queue[str | None], seen: list[str]) -> None:
    while (line := lines.get()) is not None:
        seen.append(line)


def _wait_for_health(server: Server) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):  # not listening yet
            if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                return
        time.sleep(0.05)
    raise AssertionError(f"{server.url}/health not 200 within {START_TIMEOUT} s")


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
    if process.stdout is not None:
        process.stdout.close()
