"""The `execution-engine` command line.

Every command has `--help`; errors are one clear line on stderr and a non-zero exit, never a
traceback. Commands import what they need lazily, so `--help` is instant.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import Any, TextIO

from core.errors import ExecutionEngineError

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

Handler = Callable[[argparse.Namespace], int]


def _database_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="SQLAlchemy URL of the store (default: DATABASE_URL or POSTGRES_URL, "
        "else execution_engine.db in the working directory)",
    )


def _resolve_database_url(args: argparse.Namespace) -> str:
    from core.settings import load_settings
    from storage.db import default_sqlite_url

    if args.database_url:
        return str(args.database_url)
    return load_settings().database_url or default_sqlite_url()


def _cmd_db_upgrade(args: argparse.Namespace) -> int:
    import os

    from storage.db import redact_url
    from storage.migrate import current_revision, upgrade

    if args.app_password_env and not args.app_role:
        raise ExecutionEngineError("--app-password-env needs --app-role")
    password = None
    if args.app_password_env:
        password = os.environ.get(args.app_password_env)
        if not password:
            raise ExecutionEngineError(f"--app-password-env: {args.app_password_env} is not set")
    url = _resolve_database_url(args)
    created = upgrade(url, app_role=args.app_role, app_password=password)
    print(f"database {redact_url(url)} is at revision {current_revision(url)}")
    if args.app_role:
        how = "created" if created else "updated"
        print(
            f"engine role {args.app_role} {how}: SELECT, INSERT on execution_events; "
            "SELECT, INSERT, UPDATE on execution_logs, trading_state and account_leases"
        )
    return EXIT_OK


def _cmd_audit_verify(args: argparse.Namespace) -> int:
    from core.settings import load_settings
    from storage.audit import verify_audit
    from storage.checkpoint import Checkpoint, read_checkpoint_file
    from storage.db import create_db_engine, redact_url
    from storage.journal import AuditKey

    secret = load_settings().audit_key_secret()
    key = AuditKey(secret) if secret is not None else None
    checkpoints = [("--checkpoint", Checkpoint.parse(text)) for text in args.checkpoint or ()]
    if args.checkpoint_file:
        with open(args.checkpoint_file, encoding="utf-8") as file:
            found = read_checkpoint_file(file)
        if not found:
            raise ExecutionEngineError(f"{args.checkpoint_file}: no checkpoint in it")
        for checkpoint in found:  # every line's signature; the newest against the journal
            problem = checkpoint.signature_problem(key)
            if problem is not None:
                raise ExecutionEngineError(
                    f"checkpoint {checkpoint.short()} in {args.checkpoint_file}: {problem}"
                )
        newest = max(found, key=lambda checkpoint: checkpoint.sequence)
        checkpoints.append((f"newest of {len(found)} in the checkpoint file", newest))
    url = _resolve_database_url(args)
    engine = create_db_engine(url)
    try:
        verdict = verify_audit(engine, key, checkpoints, where=redact_url(url))
    finally:
        engine.dispose()
    for line in verdict.notes:
        print(line)
    for line in verdict.problems:
        print(line, file=sys.stderr)
    return EXIT_OK if verdict.ok else EXIT_FAILED


def _cmd_execute(args: argparse.Namespace) -> int:
    from actors.engine import create_execution_engine
    from actors.facade import parse_rpm

    source: TextIO = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
    with source:
        try:
            message = json.load(source)
        except (json.JSONDecodeError, RecursionError) as exc:
            # RecursionError: nested deeper than the parser goes (no traceback for that).
            raise ExecutionEngineError(f"{args.file}: not valid JSON ({exc})") from exc
    # Refused here, as over HTTP, before an engine (and a database) is even started.
    rpm = parse_rpm(message)
    url = args.database_url or None
    with create_execution_engine(database_url=url) as engine:
        confirmation = engine.execute(rpm, timeout=args.timeout)
    print(confirmation.model_dump_json(indent=2))
    return EXIT_OK


def _cmd_simulator_serve(args: argparse.Namespace) -> int:
    from terminals.sim_server import serve

    serve(
        host=args.host,
        port=args.port,
        seed=args.seed,
        order_send_ms=args.order_send_ms,
        ipc_ms=args.ipc_ms,
        state_file=args.state,
        ready=lambda port: print(
            f"simulated MT5 terminal serving rpyc classic on {args.host}:{port}", flush=True
        ),
    )
    return EXIT_OK


def _cmd_serve(args: argparse.Namespace) -> int:
    from api.config import ApiConfig
    from api.server import serve

    config = ApiConfig(execute_wait_seconds=args.execute_wait, docs=args.docs)
    serve(host=args.host, port=args.port, database_url=args.database_url or None, config=config)
    return EXIT_OK


def _add_serve(sub: Any) -> None:
    serve = sub.add_parser(
        "serve",
        help="run the engine and its HTTP API",
        description="Start the engine (the terminal and database the environment names; the "
        "schema is migrated first) and serve its HTTP API until SIGINT or SIGTERM. Prints "
        "the URL; with EE_API_TOKENS unset, also a random admin token, once.",
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 in a container)",
    )
    serve.add_argument(
        "--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free port)"
    )
    serve.add_argument(
        "--execute-wait",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long POST /execute waits for the final state before answering 202 with "
        "the execution id (default 10)",
    )
    serve.add_argument(
        "--docs",
        action="store_true",
        help="also serve /docs and /openapi.json without a token (off by default)",
    )
    _database_option(serve)
    serve.set_defaults(handler=_cmd_serve)


def _cmd_drill(args: argparse.Namespace) -> int:
    from core.errors import ConfigurationError
    from core.settings import load_settings
    from drills import run_drill

    terminal = load_settings().terminal
    if terminal != "simulated":
        raise ConfigurationError(
            f"drills run only against the simulated terminal, and EE_TERMINAL={terminal}"
        )
    report = run_drill(
        args.name,
        executions=args.executions,
        seed=args.seed,
        database_url=args.database_url or None,
        progress=lambda line: print(f"[drill] {line}", file=sys.stderr, flush=True),
    )
    print(json.dumps(report))
    return EXIT_OK if report["passed"] else EXIT_FAILED


class _WholeNames(argparse.HelpFormatter):
    """Wraps help text without breaking a hyphenated name (a drill's) across lines."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        return textwrap.fill(
            " ".join(text.split()),
            width,
            initial_indent=indent,
            subsequent_indent=indent,
            break_on_hyphens=False,
        )


def _add_drill(sub: Any) -> None:
    from drills import DRILL_NAMES

    drill = sub.add_parser(
        "drill",
        formatter_class=_WholeNames,
        help="run a failover drill against the simulated terminal and print a JSON verdict",
        description="Run a burst of synthetic approved trades against a simulated terminal, "
        "inject the drill's fault mid-burst, wait for recovery and print one JSON report "
        "(duplicates, lost executions, orders without intent, recovery time, audit chain). "
        "Progress goes to stderr. Exit 0 only when the drill passed. Drills: "
        + ", ".join(DRILL_NAMES)
        + ". Refused when EE_TERMINAL names a real terminal.",
    )
    drill.add_argument("name", metavar="NAME", choices=DRILL_NAMES, help=" | ".join(DRILL_NAMES))
    drill.add_argument(
        "--executions", type=int, default=200, metavar="N", help="trades in the burst (200)"
    )
    drill.add_argument(
        "--seed", type=int, default=0, help="seed of the market and of the kill point (0)"
    )
    drill.add_argument(
        "--database-url",
        metavar="URL",
        help="store of the drill: a PostgreSQL server URL (a scratch database is created "
        "there and dropped) or a new SQLite file; default a temporary SQLite file "
        "(engine-kill needs PostgreSQL: DATABASE_URL or POSTGRES_URL, or this option)",
    )
    drill.set_defaults(handler=_cmd_drill)


def _add_commands(sub: Any) -> None:
    _add_serve(sub)
    _add_drill(sub)
    db = sub.add_parser("db", help="database schema commands")
    db_sub = db.add_subparsers(dest="db_command", metavar="COMMAND", required=True)
    up = db_sub.add_parser(
        "upgrade",
        help="apply every Alembic migration (safe to run again)",
        description="Create or upgrade the schema of the store to the latest revision. Run it "
        "as the role that owns the tables; with --app-role (PostgreSQL), also create or update "
        "the role the engine runs as, allowed only to append to the journal.",
    )
    up.add_argument(
        "--app-role",
        metavar="NAME",
        help="PostgreSQL role for `serve` (created if missing, LOGIN): granted SELECT, INSERT "
        "on execution_events and SELECT, INSERT, UPDATE on execution_logs, trading_state and "
        "account_leases, nothing else",
    )
    up.add_argument(
        "--app-password-env",
        metavar="VAR",
        help="environment variable holding that role's password (sent as a SCRAM verifier, "
        "never in clear); without it the password is left as it is",
    )
    _database_option(up)
    up.set_defaults(handler=_cmd_db_upgrade)

    audit = sub.add_parser("audit", help="audit trail commands")
    audit_sub = audit.add_subparsers(dest="audit_command", metavar="COMMAND", required=True)
    verify = audit_sub.add_parser(
        "verify",
        help="walk the journal's hash chain and name the first broken row",
        description="Recompute every journal row's SHA-256 chain (keyed rows are HMAC-SHA256 "
        "and need EE_AUDIT_KEY) and check checkpoints of its head: a checkpointed row that "
        "is missing or different means a truncated or rewritten tail. Exit 0 when intact, "
        "1 naming the first broken sequence or checkpoint otherwise.",
    )
    verify.add_argument(
        "--checkpoint",
        action="append",
        metavar="SEQ:HASH",
        help="a checkpoint (SEQ:HASH, or the JSON of an 'audit checkpoint' log line); repeatable",
    )
    verify.add_argument(
        "--checkpoint-file",
        metavar="FILE",
        help="the EE_AUDIT_CHECKPOINT_FILE: every line's signature is checked, the newest "
        "against the journal",
    )
    _database_option(verify)
    verify.set_defaults(handler=_cmd_audit_verify)

    execute = sub.add_parser(
        "execute",
        help="execute one RPM message (JSON) and print the confirmation",
        description="Read one RPM message as JSON from FILE (or - for stdin), run it through "
        "the engine configured by the environment, print the confirmation as JSON.",
    )
    execute.add_argument("file", metavar="FILE|-", help="RPM message as JSON, or - for stdin")
    execute.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds to wait for the final state (default: derived from "
        "ORDER_TIMEOUT_SECONDS and the retry settings)",
    )
    _database_option(execute)
    execute.set_defaults(handler=_cmd_execute)

    sim = sub.add_parser("simulator", help="the simulated MT5 terminal")
    sim_sub = sim.add_subparsers(dest="simulator_command", metavar="COMMAND", required=True)
    sim_serve = sim_sub.add_parser(
        "serve",
        help="serve the simulated terminal over rpyc (classic protocol)",
        description="Serve a SimulatedTerminal in this process over the rpyc classic protocol, "
        "the same protocol a MetaTrader5 under Wine speaks through mt5linux. Listens on "
        "127.0.0.1 only: the classic protocol runs arbitrary code. Its fault injection is "
        "reachable through the bridge client.",
    )
    sim_serve.add_argument(
        "--host",
        default="127.0.0.1",
        choices=["127.0.0.1", "localhost"],
        help="address to listen on (loopback only; default 127.0.0.1)",
    )
    sim_serve.add_argument(
        "--port",
        type=int,
        default=18812,
        help="TCP port (default 18812, mt5linux's; 0 picks a free port)",
    )
    sim_serve.add_argument("--seed", type=int, default=0, help="seed of the simulated market")
    sim_serve.add_argument(
        "--order-send-ms",
        type=float,
        default=0.0,
        help="latency of order_send/order_check, in ms (default 0)",
    )
    sim_serve.add_argument(
        "--ipc-ms", type=float, default=0.0, help="latency of every other call, in ms (default 0)"
    )
    sim_serve.add_argument(
        "--state",
        metavar="FILE",
        default=None,
        help="keep the simulated account (orders, deals, positions, ticket counters, "
        "balance) in FILE: loaded at start, written atomically before each answer that "
        "changed it, so a restarted simulator has its history back as a real terminal "
        "gets it from the trade server",
    )
    sim_serve.set_defaults(handler=_cmd_simulator_serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="execution-engine",
        description="Trade execution engine for MetaTrader 5: validates RPM-approved trades, "
        "submits exactly the approved size, watches fills, measures slippage and keeps a "
        "tamper-evident audit trail.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    _add_commands(sub)
    return parser


def _database_errors() -> tuple[type[BaseException], ...]:
    """SQLAlchemy's error base, imported only when an error reaches `main` (keeps --help fast),
    and ImportError: a URL naming a database driver that is not installed."""
    from sqlalchemy.exc import SQLAlchemyError

    return (SQLAlchemyError, ImportError)


def _database_error_line(exc: BaseException) -> str:
    """One line for a database error: the driver's own message when there is one (it names
    no password), never the SQL statement or the multi-line SQLAlchemy trailer."""
    detail = str(getattr(exc, "orig", None) or exc).strip()
    first = detail.splitlines()[0].strip() if detail else type(exc).__name__
    return f"execution-engine: database error ({type(exc).__name__}): {first}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except ExecutionEngineError as exc:
        print(f"execution-engine: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (OSError, ValueError) as exc:
        print(f"execution-engine: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except _database_errors() as exc:
        print(_database_error_line(exc), file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
