"""What every drill shares: a scratch store, synthetic trades, the burst and the report.

A drill's verdict comes from the two sides that cannot lie to each other: the orders the
terminal holds with the drill's magic, and the store (execution rows and the journal).
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from core.enums import FINAL_STATUSES, JournalEventType
from core.errors import ConfigurationError
from core.models import ExecutionLog
from core.settings import Settings, load_settings
from storage.db import create_db_engine, redact_url
from storage.journal import replay_projection, verify_chain
from storage.schema import execution_events, execution_logs, row_to_log
from storage.scratch import scratch_database_at

Progress = Callable[[str], None]

SYMBOLS = ("EURUSD", "GBPUSD", "USDJPY")
_FINAL = frozenset(s.value for s in FINAL_STATUSES)


def drill_settings(magic: int, **overrides: Any) -> Settings:
    """Short timers (the rules are unchanged), so that a drill of 500 takes seconds."""
    values: dict[str, Any] = {
        "terminal": "simulated",
        "magic": magic,
        "poll_interval_seconds": 0.01,
        "retry_backoff_seconds": 0.005,
        "retry_backoff_cap_seconds": 0.02,
        "reconcile_window_seconds": 0.3,
        "order_timeout_seconds": 5.0,
        "ask_timeout_seconds": 5.0,
        "cache_tick_seconds": 0.0,
        "cache_account_seconds": 0.0,
        "cache_margin_seconds": 0.0,
        "disconnect_halt_seconds": 0.3,
        "restart_intensity": 5,
        "restart_period_seconds": 10.0,
    }
    values.update(overrides)
    return load_settings(**values)


def run_id() -> str:
    return secrets.token_hex(4)


def trade(run: str, index: int, seed: int) -> dict[str, Any]:
    """The `index`-th synthetic approved trade of run `run` (the same every time it is made:
    a restarted engine resubmits byte-identical messages)."""
    mix = (index * 7919 + seed) % 997
    symbol = SYMBOLS[mix % len(SYMBOLS)]
    return {
        "decision": {
            "status": "APPROVED",
            "decision_id": f"drill-{run}-{index:05d}",
            "approved_trade": {
                "symbol": symbol,
                "direction": 1 if mix % 2 == 0 else -1,
                "position_units": 1000 * (1 + mix % 5),
                "confidence_score": 0.7,
                "atr": 0.0012,
            },
        },
        "portfolio_state": {"trading_halted": False},
        "rpm_version": "drill",
        "model_version": "drill",
        "timestamp": "2025-01-01T00:00:00Z",
    }


def decision_prefix(run: str) -> str:
    return f"drill-{run}-"


# --- the store ---------------------------------------------------------------------------


@contextlib.contextmanager
def scratch_store(database_url: str | None) -> Iterator[str]:
    """A store for one drill, removed afterwards.

    None: a SQLite file in a temporary directory. A PostgreSQL URL names the server: a
    database `ee_drill_<random>` is created there and dropped at the end. A SQLite URL
    is used as it is and must hold no executions (a drill never mixes with real data).
    """
    if database_url is None:
        with tempfile.TemporaryDirectory(prefix="ee-drill-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'drill.db'}"
        return
    url = make_url(database_url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        _require_empty(database_url)
        yield database_url
        return
    if backend != "postgresql":
        raise ConfigurationError(f"drills run on SQLite or PostgreSQL, not {backend}")
    with scratch_database_at(url, "ee_drill") as scratch_url:
        yield scratch_url


def _require_empty(database_url: str) -> None:
    path = make_url(database_url).database
    if not path or not Path(path).exists():
        return
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            count = connection.execute(select(func.count()).select_from(execution_logs)).scalar()
    except Exception:
        count = 0  # no schema yet: a new store
    finally:
        engine.dispose()
    if count:
        raise ConfigurationError(
            f"{redact_url(database_url)} holds {count} executions; a drill needs an empty store"
        )


class DatabaseOutage:
    """Takes the store away from the engine and gives it back.

    PostgreSQL: a real outage: the database refuses connections (ALLOW_CONNECTIONS false)
    and every session of it is terminated. SQLite: every statement of the engine's own
    connection pool fails at the driver (sqlite3.OperationalError), as a lost disk would.
    """

    def __init__(self, database_url: str, engine: Engine) -> None:
        self._url = make_url(database_url)
        self._engine = engine
        self._down = threading.Event()
        self._listening = False

    def start(self) -> None:
        self._down.set()
        if self._url.get_backend_name() == "postgresql":
            self._postgres(allow=False)
            return
        if not self._listening:
            from sqlalchemy import event

            event.listen(self._engine, "before_cursor_execute", self._refuse)
            self._listening = True

    def stop(self) -> None:
        self._down.clear()
        if self._url.get_backend_name() == "postgresql":
            self._postgres(allow=True)

    def _refuse(self, *_: Any) -> None:
        if self._down.is_set():
            import sqlite3

            raise sqlite3.OperationalError("disk I/O error (drill: database outage)")

    def _postgres(self, *, allow: bool) -> None:
        name = self._url.database
        admin_url = self._url.set(database="postgres")
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        try:
            with admin.connect() as connection:
                connection.exec_driver_sql(
                    f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {"true" if allow else "false"}'
                )
                if not allow:
                    connection.execute(
                        text(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = :name AND pid <> pg_backend_pid()"
                        ),
                        {"name": name},
                    )
        finally:
            admin.dispose()


# --- the burst ---------------------------------------------------------------------------


@dataclass(slots=True)
class BurstResult:
    confirmed: dict[int, str] = field(default_factory=dict)
    """index -> final status answered to the caller."""
    errors: dict[int, str] = field(default_factory=dict)
    """index -> the error the caller got (the execution may still exist)."""


def burst(
    submit: Callable[[dict[str, Any]], Any],
    messages: Sequence[dict[str, Any]],
    *,
    concurrency: int,
    at: int | None,
    fault: Callable[[], None] | None,
    progress: Progress,
    timeout: float = 60.0,
) -> BurstResult:
    """Run `messages` through `submit` (a facade's `execute`), `concurrency` at a time,
    calling `fault` once when message number `at` starts (mid-burst)."""
    result = BurstResult()
    lock = threading.Lock()
    done = [0]
    step = max(1, len(messages) // 10)

    def one(index: int) -> None:
        if fault is not None and index == at:
            progress(f"injecting the fault at execution {index} of {len(messages)}")
            fault()
        try:
            confirmation = submit(messages[index])
            status = str(confirmation.status)
        except Exception as exc:
            with lock:
                result.errors[index] = f"{type(exc).__name__}: {exc}"
        else:
            with lock:
                result.confirmed[index] = status
        with lock:
            done[0] += 1
            if done[0] % step == 0 or done[0] == len(messages):
                progress(f"{done[0]}/{len(messages)} answered")

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="drill") as pool:
        list(pool.map(one, range(len(messages)), timeout=timeout))
    return result


def wait_until(check: Callable[[], bool], timeout: float, what: str, pause: float = 0.02) -> None:
    """Poll `check` (drills run outside any actor) until it holds or `timeout` passes."""
    deadline = time.monotonic() + timeout
    idle = threading.Event()
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout:g} s: {what}")
        idle.wait(pause)


# --- the verdict -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoreView:
    statuses: dict[str, str]
    """decision id -> status."""
    by_execution: dict[str, str]
    """execution id -> status."""
    reasons: dict[str, int]
    """rejection (or expiry) reason -> how many."""
    client_ids: dict[str, str]
    """client id -> execution id."""
    intents: frozenset[str]
    """client ids of executions with a committed SUBMITTING (the write-ahead intent)."""


def read_store(engine: Engine, prefix: str) -> StoreView:
    with engine.connect() as connection:
        rows = connection.execute(
            select(execution_logs).where(execution_logs.c.rpm_decision_id.startswith(prefix))
        ).all()
        intent_ids = {
            eid
            for (eid,) in connection.execute(
                select(execution_events.c.execution_id)
                .where(execution_events.c.event_type == JournalEventType.SUBMITTING)
                .distinct()
            )
        }
    logs = [row_to_log(row) for row in rows]
    reasons = [log.rejection_reason for log in logs]
    return StoreView(
        statuses={log.rpm_decision_id: log.status.value for log in logs},
        by_execution={log.execution_id: log.status.value for log in logs},
        reasons=dict(sorted(Counter(r.value for r in reasons if r is not None).items())),
        # Every leg's order comment is the execution's (legs: issue 10's position effect).
        client_ids={cid: log.execution_id for log in logs for cid in _client_ids(log)},
        intents=frozenset(
            cid for log in logs if log.execution_id in intent_ids for cid in _client_ids(log)
        ),
    )


def _client_ids(log: ExecutionLog) -> tuple[str, ...]:
    return (log.client_id, *(leg.client_id for leg in log.legs))


def executions_with_event(engine: Engine, prefix: str, event_type: str) -> int:
    """How many of the run's executions journaled `event_type` at least once."""
    query = (
        select(func.count(func.distinct(execution_events.c.execution_id)))
        .select_from(
            execution_events.join(
                execution_logs,
                execution_logs.c.execution_id == execution_events.c.execution_id,
            )
        )
        .where(
            execution_events.c.event_type == event_type,
            execution_logs.c.rpm_decision_id.startswith(prefix),
        )
    )
    with engine.connect() as connection:
        return int(connection.execute(query).scalar() or 0)


def audit_ok(engine: Engine, prefix: str) -> tuple[bool, str]:
    """The hash chain verifies and the projection agrees with a replay of the journal."""
    chain = verify_chain(engine)
    if not chain.ok:
        return False, f"chain broken at {chain.first_broken_sequence}: {chain.reason}"
    replayed = replay_projection(engine)
    with engine.connect() as connection:
        rows = connection.execute(
            select(execution_logs).where(execution_logs.c.rpm_decision_id.startswith(prefix))
        ).all()
    for row in rows:
        stored = row_to_log(row).model_dump(mode="json")
        if replayed.get(row.execution_id) != stored:
            return False, f"projection of {row.execution_id} differs from the journal replay"
    return True, f"{chain.rows_checked} journal rows verified"


def verdict(
    *,
    drill: str,
    executions: int,
    store: StoreView,
    orders: Sequence[Any],
    audit: tuple[bool, str],
    recovery_seconds: float,
    extra: dict[str, Any] | None = None,
    checks: dict[str, bool] | None = None,
) -> dict[str, Any]:
    """The one JSON report of a drill."""
    per_client = Counter(str(order.comment) for order in orders)
    duplicates = sum(1 for client, n in per_client.items() if n > 1 and client in store.client_ids)
    without_intent = sum(1 for order in orders if str(order.comment) not in store.intents)
    lost = (
        executions
        - len(store.statuses)
        + sum(1 for status in store.statuses.values() if status not in _FINAL)
    )
    passed = duplicates == 0 and lost == 0 and without_intent == 0 and audit[0]
    passed = passed and all((checks or {}).values())
    report: dict[str, Any] = {
        "drill": drill,
        "executions": executions,
        "final_statuses": dict(sorted(Counter(store.statuses.values()).items())),
        "duplicates": duplicates,
        "lost": lost,
        "orders_without_intent": without_intent,
        "recovery_seconds": round(recovery_seconds, 3),
        "audit_verified": audit[0],
        "passed": passed,
    }
    details: dict[str, Any] = {"audit": audit[1], "reasons": store.reasons, **(extra or {})}
    if checks:
        details["checks"] = checks
    report["details"] = details
    return report
