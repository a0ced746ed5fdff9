"""Restart-to-trading time of the engine after a SIGKILL under load, from outside.

    python -m bench.restart --rounds 5 --database postgres --order-send-ms 10

Each round, through public surfaces only: `execution-engine simulator serve` plays the
terminal in a process of its own (rpyc, a free port, `--order-send-ms` per send) and
`execution-engine serve` runs the engine on it (`EE_TERMINAL=rpyc`, a scratch database,
a trader token in `EE_API_TOKENS`, every other setting its default: the reconciliation
window stays 30 s). `--threads` workers POST new decisions back to back; after
`--kill-after` answers the engine is SIGKILLed with requests in flight and at once started
again on the same port, database and terminal. From that new process's start (its Popen)
the round measures:

- `health_s`: the first `GET /health` answered 200;
- `first_fill_s`: the first NEW decision answered FILLED by `POST /execute?wait=10`;
- `all_settled_s`: every execution the kill left unfinished is final (`GET /history`);
  an execution counts as unfinished when its POST got no final answer and it was not
  final at the kill (its `updated_at` is later than the kill).

Then the terminal's orders with the round's magic (read over the bridge) are matched with
the executions: no decision may have more than one order. Prints one JSON object: every
round, the medians, the duplicate counts and `machine_reference_ms` (see bench._common).
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import socket
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from bench._common import (
    DATABASES,
    DEFAULT_POSTGRES_ADMIN_URL,
    bench_database,
    emit,
    machine_reference_ms,
    new_run_id,
)
from bench._http import FINAL, TRANSPORT_ERRORS, Api, Load
from core.errors import ExecutionEngineError
from drills._harness import trade
from drills.engine_kill import ChildProcess, child_env, simulator_server, terminal_orders

START_TIMEOUT = 120.0
"""How long an engine may take to answer /health (or a probe to fill) before the round fails."""
SETTLE_TIMEOUT = 300.0
"""How long the executions the kill left unfinished may take to become final, by default."""
SECRET_SETTINGS = frozenset({"EE_API_TOKENS", "EE_AUDIT_KEY", "MT5_PASSWORD", "EE_MT5_PASSWORD"})


class RoundFailedError(ExecutionEngineError):
    """A round could not be measured (an engine did not start, no answers, ...)."""

    code = "BENCH_ROUND_FAILED"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _engine(port: int, env: dict[str, str], label: str) -> tuple[ChildProcess, float]:
    """`execution-engine serve` on `port`, and the monotonic time just before its Popen."""
    command = [sys.executable, "-m", "api.cli", "serve", "--port", str(port)]
    started = time.monotonic()
    return ChildProcess(command, env, label), started


def _until_health(api: Api, engine: ChildProcess, started: float) -> float:
    """Seconds from `started` to the first /health 200."""
    deadline = started + START_TIMEOUT
    while time.monotonic() < deadline:
        if engine.popen.poll() is not None:
            raise engine.failure(f"exited with {engine.popen.returncode}")
        try:
            status, _ = api.call("GET", "/health", timeout=5.0)
        except TRANSPORT_ERRORS:
            status = 0
        if status == 200:
            return time.monotonic() - started
        time.sleep(0.02)
    raise RoundFailedError(f"/health not 200 within {START_TIMEOUT:g} s")


def _until_filled(api: Api, message: dict[str, Any], started: float) -> tuple[float, str]:
    """Seconds from `started` until `message` is answered final, and its status. The same
    message is sent again on 202, 503 or no answer: the decision id makes it idempotent."""
    deadline = started + START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            status, body = api.execute(message, wait=10.0)
        except TRANSPORT_ERRORS:
            time.sleep(0.02)
            continue
        if status == 200 and isinstance(body, dict) and body.get("status") in FINAL:
            return time.monotonic() - started, str(body["status"])
        if status not in (202, 503):
            raise RoundFailedError(f"POST /execute answered {status}: {body!r}"[:300])
        time.sleep(0.05)
    raise RoundFailedError(f"no final answer within {START_TIMEOUT:g} s")


def _in_thread(target: Any, *args: Any) -> tuple[threading.Thread, dict[str, Any]]:
    """Run `target(*args)` in a thread; its result or error lands in the dict."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = target(*args)
        except Exception as exc:
            box["error"] = exc

    thread = threading.Thread(target=run, daemon=True, name=f"bench-{target.__name__}")
    thread.start()
    return thread, box


def _result(thread: threading.Thread, box: dict[str, Any]) -> Any:
    thread.join()  # each target ends by its own deadline
    if "error" in box:
        raise box["error"]
    return box.get("result")


def _settle(
    api: Api, load: Load, killed_at: datetime, started: float, timeout: float
) -> dict[str, Any]:
    """Wait until every execution the kill left unfinished is final. Runs from the restart
    on, beside the other probes, so that it sees the moment even if it comes first."""
    load.join(30.0)  # the kill cut every request in flight: the workers are ending
    wanted = set(load.unanswered())
    deadline = started + timeout
    while True:
        try:
            history = api.history()
        except (*TRANSPORT_ERRORS, RuntimeError):  # not up yet, or 503 while starting
            if time.monotonic() > deadline:
                raise RoundFailedError(f"no GET /history within {timeout:g} s") from None
            time.sleep(0.05)
            continue
        rows = [r for r in history if r["rpm_decision_id"] in wanted]
        unfinished = [
            r
            for r in rows
            if r["status"] not in FINAL or datetime.fromisoformat(r["updated_at"]) > killed_at
        ]
        pending = [r for r in unfinished if r["status"] not in FINAL]
        if not pending or time.monotonic() > deadline:
            return {
                "all_settled_s": None if pending else round(time.monotonic() - started, 3),
                "unanswered_at_kill": len(wanted),
                "never_recorded": len(wanted - {r["rpm_decision_id"] for r in rows}),
                "unfinished_at_kill": len(unfinished),
                "unfinished_final_statuses": dict(Counter(map(_status, unfinished))),
            }
        time.sleep(0.1)


def _status(row: dict[str, Any]) -> str:
    """`REJECTED/NOT_SENT` for a rejection (its reason code), else the status."""
    reason = row.get("rejection_reason")
    return f"{row['status']}/{reason}" if reason else str(row["status"])


def _duplicates(executions: Sequence[dict[str, Any]], orders: Sequence[Any]) -> dict[str, int]:
    """The terminal's orders against the executions: one order per decision at most."""
    per_decision = Counter(r["rpm_decision_id"] for r in executions)
    per_client = Counter(str(order.comment) for order in orders)
    clients_of: dict[str, list[str]] = {}
    for row in executions:
        # One order per leg: a trade that closes positions first has a client id per leg.
        legs = [leg["client_id"] for leg in row.get("legs") or ()] or [row["client_id"]]
        clients_of.setdefault(row["rpm_decision_id"], []).extend(legs)
    known = {client for clients in clients_of.values() for client in clients}
    filled = {"FILLED", "PARTIALLY_FILLED"}
    return {
        "terminal_orders": len(orders),
        "decisions_with_two_executions": sum(1 for n in per_decision.values() if n > 1),
        "decisions_with_two_orders": sum(
            1 for clients in clients_of.values() if any(per_client[c] > 1 for c in clients)
        ),
        "orders_without_execution": sum(1 for order in orders if str(order.comment) not in known),
        "filled_without_order": sum(
            1
            for r in executions
            if r["status"] in filled
            and not any(per_client[c] for c in clients_of[r["rpm_decision_id"]])
        ),
    }


def run_round(args: argparse.Namespace, index: int, overrides: dict[str, str]) -> dict[str, Any]:
    """One round: its own terminal, database and engine, one SIGKILL under load."""
    seed = args.seed + index
    magic = 700_000 + random.Random(seed).randrange(99_991)
    run = new_run_id()
    token = secrets.token_urlsafe(24)
    with (
        bench_database(args.database, args.postgres_admin_url) as url,
        simulator_server(seed, args.order_send_ms) as terminal_port,
    ):
        port = _free_port()
        env = child_env({
            "EE_TERMINAL": "rpyc",
            "EE_RPYC_HOST": "127.0.0.1",
            "EE_RPYC_PORT": str(terminal_port),
            "DATABASE_URL": url,
            "EE_MAGIC": str(magic),
            "EE_API_TOKENS": f"trader:{token}",
            **overrides,
        })  # fmt: skip
        api = Api(f"http://127.0.0.1:{port}", token)
        first, started = _engine(port, env, "engine 1")
        try:
            cold_start = _until_health(api, first, started)
            _until_filled(api, trade(run, 999_990, seed), time.monotonic())  # warm-up
            load = Load(api, lambda n: trade(run, n, seed), args.threads)
            load.start()
            if not load.wait_for_answers(args.kill_after, START_TIMEOUT):
                raise RoundFailedError(f"fewer than {args.kill_after} answers before the kill")
            load.stop()
            in_flight = load.in_flight
            killed_at = datetime.now(UTC)
            first.kill()
        finally:
            first.close()
        second, restarted = _engine(port, env, "engine 2")
        try:
            health = _in_thread(_until_health, api, second, restarted)
            probe = _in_thread(_until_filled, api, trade(run, 999_999, seed), restarted)
            settle = _in_thread(_settle, api, load, killed_at, restarted, args.settle_timeout)
            health_s = _result(*health)
            first_fill_s, probe_status = _result(*probe)
            settled = _result(*settle)
            executions = api.history()
            orders = terminal_orders(terminal_port, magic)
        finally:
            second.close()
    return {
        "round": index + 1,
        "cold_start_health_s": round(cold_start, 3),
        "answers_before_kill": len(load.answered),
        "in_flight_at_kill": in_flight,
        "health_s": round(health_s, 3),
        "first_fill_s": round(first_fill_s, 3),
        "probe_status": probe_status,
        **settled,
        "load_statuses": dict(Counter(load.answered.values())),
        "duplicates": _duplicates(executions, orders),
    }


def _median(rounds: Sequence[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in rounds if r.get(key) is not None]
    return round(statistics.median(values), 3) if values else None


def _overrides(pairs: Sequence[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--engine-env needs NAME=VALUE, not {pair!r}")
        values[name] = value
    return values


def _shown(overrides: dict[str, str]) -> dict[str, str]:
    """The non-default engine settings of the run (secrets by name only)."""
    inherited = {k: v for k, v in os.environ.items() if k.startswith("EE_")}
    merged = {**inherited, **overrides}
    return {k: ("***" if k in SECRET_SETTINGS else v) for k, v in sorted(merged.items())}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.restart",
        description="Restart-to-trading time of `execution-engine serve` after a SIGKILL "
        "under load (HTTP, rpyc simulator, scratch database); prints one JSON object.",
    )
    parser.add_argument("--rounds", type=int, default=5, metavar="N", help="default 5")
    parser.add_argument("--database", choices=DATABASES, default="postgres")
    parser.add_argument(
        "--order-send-ms", type=float, default=10.0, metavar="L",
        help="the simulator's order_send (and order_check) round trip (default 10)",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=int, default=8, metavar="T",
        help="concurrent POST /execute callers of the load (default 8)",
    )  # fmt: skip
    parser.add_argument(
        "--kill-after", type=int, default=40, metavar="A",
        help="SIGKILL the engine once the load got this many answers (default 40)",
    )  # fmt: skip
    parser.add_argument(
        "--settle-timeout", type=float, default=SETTLE_TIMEOUT, metavar="S",
        help="how long the executions the kill left unfinished may take to become final "
        f"(default {SETTLE_TIMEOUT:g}; those still open then give all_settled_s null)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--engine-env", action="append", default=[], metavar="NAME=VALUE",
        help="an extra setting of both engines (repeatable); the defaults are the "
        "production ones, and EE_* variables of this process apply too",
    )  # fmt: skip
    parser.add_argument(
        "--postgres-admin-url", default=DEFAULT_POSTGRES_ADMIN_URL, metavar="URL",
        help="maintenance database of the PostgreSQL server (CREATE/DROP DATABASE)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.threads < 1 or not 1 <= args.kill_after <= 900:
        parser.error("--rounds and --threads must be >= 1, --kill-after in 1..900")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    overrides = _overrides(args.engine_env)
    load_before = os.getloadavg()[0]
    reference_ms = machine_reference_ms()
    rounds = [run_round(args, index, overrides) for index in range(args.rounds)]
    totals = Counter[str]()
    for one in rounds:
        totals.update(one["duplicates"])
    result = {
        "benchmark": "restart",
        "database": args.database,
        "order_send_ms": args.order_send_ms,
        "threads": args.threads,
        "kill_after": args.kill_after,
        "engine_settings": _shown(overrides),
        "rounds": rounds,
        "median_s": {
            "health": _median(rounds, "health_s"),
            "first_fill": _median(rounds, "first_fill_s"),
            "all_settled": _median(rounds, "all_settled_s"),
            "cold_start_health": _median(rounds, "cold_start_health_s"),
        },
        "decisions_with_two_orders": totals["decisions_with_two_orders"],
        "decisions_with_two_executions": totals["decisions_with_two_executions"],
        "orders_without_execution": totals["orders_without_execution"],
        "machine_load_1m": round(load_before, 2),
        "machine_reference_ms": reference_ms,
    }
    emit(result)
    return result


if __name__ == "__main__":
    main()
