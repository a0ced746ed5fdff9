"""One instance of the standby drills: `python -m drills._standby_proc`.

Configured by the environment like any engine (`EE_TERMINAL=rpyc` to the served
simulator, `DATABASE_URL` on PostgreSQL, `EE_INSTANCE_NAME`, `EE_TAKEOVER_SECONDS`). Each
call of the terminal's `order_send` is reported before it is made, so the drill knows
which instance sent what, and when (wall-clock seconds: every process is on one host).

Lines on stdout: ``READY``, ``OWNER <time>`` (the account is taken over),
``SEND <time> <client id>``, ``FINAL <index> <status>``, ``ERROR <index> <error>``,
``HALTED <time>`` (the halt call returned), ``DONE``.

`--role trader` waits until it owns the account (and `--go-file` exists), sends the
burst (the same decision ids on every instance, as an RPM resubmits what got no answer)
and waits until none of the account's executions is unfinished. `--role halter` halts
trading firm-wide on SIGUSR1 and
then idles until it is terminated.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from actors.engine import create_execution_engine
from actors.facade import ExecutionFacade
from core.accounts import DEFAULT_ACCOUNT
from core.settings import load_settings
from drills._harness import trade
from terminals.factory import terminal_from_settings

_out = threading.Lock()
_SETTLE_TIMEOUT = 60.0
_OWN_TIMEOUT = 120.0
_RETRY_TIMEOUT = 120.0


def _emit(line: str) -> None:
    with _out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def _traced(terminal: Any) -> Any:
    """`terminal` with every `order_send` reported (SEND) just before it is made."""
    send = terminal.order_send

    def order_send(request: dict[str, Any]) -> Any:
        _emit(f"SEND {time.time():.6f} {request.get('comment', '')}")
        return send(request)

    terminal.order_send = order_send
    return terminal


def _owns(engine: ExecutionFacade) -> bool:
    return engine.ownership is not None and engine.ownership.owns(DEFAULT_ACCOUNT)


def _trader(engine: ExecutionFacade, args: argparse.Namespace) -> None:
    pause = threading.Event()
    deadline = time.monotonic() + _OWN_TIMEOUT
    while not (_owns(engine) and (args.go_file is None or Path(args.go_file).exists())):
        if time.monotonic() > deadline:
            raise SystemExit("never owned the account")
        pause.wait(0.01)
    _emit(f"OWNER {time.time():.6f}")

    def one(index: int) -> bool:
        try:
            confirmation = engine.execute(trade(args.run, index, args.seed))
        except Exception as exc:
            _emit(f"ERROR {index} {type(exc).__name__}: {exc}")
            return False
        _emit(f"FINAL {index} {confirmation.status}")
        return True

    with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
        answered = list(pool.map(one, range(args.executions)))
    # Keep trying what got no answer, as an RPM would (a cut-off instance keeps failing).
    failed = [index for index, ok in enumerate(answered) if not ok]
    deadline = time.monotonic() + _RETRY_TIMEOUT
    while failed and time.monotonic() < deadline:
        pause.wait(0.2)
        failed = [index for index in failed if not one(index)]
    deadline = time.monotonic() + _SETTLE_TIMEOUT
    while _owns(engine) and engine.repository.non_final(account=DEFAULT_ACCOUNT):
        if time.monotonic() > deadline:
            break
        pause.wait(0.05)


def _halter(engine: ExecutionFacade) -> None:
    asked = threading.Event()
    signal.signal(signal.SIGUSR1, lambda *_: asked.set())
    _emit("LISTENING")
    # A lock wait without a timeout is interrupted by signals on POSIX: the handler runs
    # on this (the main) thread and sets the event.
    asked.wait()
    engine.halt("firm-halt drill", by="drill")
    _emit(f"HALTED {time.time():.6f}")
    # Stay up (trading nothing) until the drill stops this instance.
    threading.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drills._standby_proc")
    parser.add_argument("--role", choices=("trader", "halter"), default="trader")
    parser.add_argument("--executions", type=int, default=0)
    parser.add_argument("--run", default="")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--go-file", default=None, help="send only once this file exists")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    settings = load_settings()
    terminal = _traced(terminal_from_settings(settings))
    with create_execution_engine(terminal=terminal, settings=settings) as engine:
        _emit("READY")
        if args.role == "halter":
            _halter(engine)
        else:
            _trader(engine, args)
    _emit("DONE")
    return 0


if __name__ == "__main__":
    sys.exit(main())
