"""The engine process of the engine-kill drill: `python -m drills._engine_proc`.

Configured by the environment like any engine (`EE_TERMINAL=rpyc` to the served
simulator, `DATABASE_URL` on PostgreSQL). It starts the engine (startup recovery runs
first), submits the drill's synthetic trades and reports on stdout, one line each:
``READY <startup recovery as JSON>``, ``FINAL <index> <status>``, ``ERROR <index> <error>``,
and ``DONE`` at the end.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from actors.engine import create_execution_engine
from drills._harness import trade

_out = threading.Lock()
_SETTLE_TIMEOUT = 60.0


def _emit(line: str) -> None:
    with _out:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m drills._engine_proc")
    parser.add_argument("--executions", type=int, required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    with create_execution_engine() as engine:
        _emit("READY " + json.dumps(engine.recovery.summary(), sort_keys=True))

        def one(index: int) -> None:
            try:
                confirmation = engine.execute(trade(args.run, index, args.seed))
            except Exception as exc:
                _emit(f"ERROR {index} {type(exc).__name__}: {exc}")
                return
            _emit(f"FINAL {index} {confirmation.status}")

        with ThreadPoolExecutor(max_workers=args.concurrency) as pool:
            list(pool.map(one, range(args.executions)))
        # What the previous run left is reconciled in the background: let it finish
        # before the drill compares the journal with the terminal.
        idle = threading.Event()
        deadline = time.monotonic() + _SETTLE_TIMEOUT
        while engine.repository.non_final() and time.monotonic() < deadline:
            idle.wait(0.05)
    _emit("DONE")
    return 0


if __name__ == "__main__":
    sys.exit(main())
