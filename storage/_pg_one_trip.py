"""A batch's writes as driver SQL: the journal rows' multi-row INSERTs (every path), and for
psycopg2 the whole batch, projections and journal, in one round trip.

Hand-built SQL is here because SQLAlchemy's per-row parameter processing was the largest
cost of a batch; errors still come back wrapped as SQLAlchemy's, inside its transaction.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Dialect, Insert, Update, bindparam, insert, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.compiler import SQLCompiler

from storage._batch import NOT_CHANGING, ProjectionWrites
from storage.schema import execution_logs

# Built once: statements with bound parameters hit SQLAlchemy's compiled cache cheaply,
# where `.values(literal dict)` re-derives a cache key over every column on every call.
INSERT_LOG = insert(execution_logs)
UPDATE_LOG = update(execution_logs).where(
    execution_logs.c.execution_id == bindparam("key_execution_id")
)
EVENT_COLUMNS = (
    "sequence",
    "execution_id",
    "event_type",
    "payload",
    "engine_time_us",
    "broker_time_msc",
    "prev_hash",
    "hash",
    "hash_key_id",
)
INSERT_EVENTS_HEAD = (
    "INSERT INTO execution_events (sequence, execution_id, event_type, payload, "
    "engine_time_us, broker_time_msc, prev_hash, hash, hash_key_id) VALUES "
)
_ROWS_PER_INSERT = 500


class BulkInsertRefusedError(Exception):
    """The one INSERT of every new execution of a batch was refused (the batch is rolled
    back and written again with one INSERT each, which names the op at fault).

    Also raised when the one round trip of a batch that inserts fails on a constraint: the
    driver does not say which statement failed, and the retry finds out.
    """


def insert_events(connection: Connection, rows: list[dict[str, Any]]) -> None:
    """INSERT the journal rows, many per statement.

    Every column is a plain integer or text that needs no conversion, so the statement is
    written out here and sent as is.
    """
    marker = "?" if connection.dialect.paramstyle == "qmark" else "%s"
    for sql, params in _event_statements(marker, rows):
        connection.exec_driver_sql(sql, params)


def _event_statements(
    marker: str, rows: list[dict[str, Any]]
) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """The journal rows' INSERT statements, as driver SQL and its parameters."""
    row_sql = "(" + ", ".join([marker] * len(EVENT_COLUMNS)) + ")"
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        chunk = rows[start : start + _ROWS_PER_INSERT]
        params = tuple(row[column] for row in chunk for column in EVENT_COLUMNS)
        yield INSERT_EVENTS_HEAD + ", ".join([row_sql] * len(chunk)), params


_PYFORMAT_MARKER = re.compile(r"%\((\w+)\)s")
_BindProcessor = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _DriverStatement:
    """A compiled statement as driver SQL with positional ``%s`` markers.

    The parameters are converted by the same bind processors SQLAlchemy would apply (the
    UTC datetime type, JSON through the engine's serializer), so the stored values are the
    same, without SQLAlchemy's per-row work around them.
    """

    sql: str
    binds: tuple[tuple[str, _BindProcessor | None], ...]
    """Each marker's value name, in order, and its bind processor if it has one."""

    @classmethod
    def compile(
        cls, statement: Insert | Update, dialect: Dialect, column_keys: Sequence[str]
    ) -> _DriverStatement:
        compiled = statement.compile(dialect=dialect, column_keys=list(column_keys))
        assert isinstance(compiled, SQLCompiler)
        text = str(compiled)
        binds = tuple(
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in _PYFORMAT_MARKER.findall(text)
        )
        return cls(_PYFORMAT_MARKER.sub("%s", text), binds)

    def params(self, values: dict[str, Any]) -> list[Any]:
        return [
            values[name] if process is None else process(values[name])
            for name, process in self.binds
        ]


@dataclass(frozen=True, slots=True)
class DriverStatements:
    """The projection statements as driver SQL, for psycopg2 only.

    psycopg2 sends a statement with its parameters inlined, so several statements joined by
    semicolons go to the server as one round trip; drivers that bind on the server (psycopg
    3) refuse that, and SQLite runs one statement per call.
    """

    insert: _DriverStatement
    """The INSERT of one row; `insert_head` and `insert_row` split it for several rows."""
    insert_head: str
    insert_row: str
    update: _DriverStatement
    full_update: _DriverStatement

    @classmethod
    def for_dialect(cls, dialect: Dialect) -> DriverStatements | None:
        if (
            dialect.name != "postgresql"
            or dialect.driver != "psycopg2"
            or dialect.paramstyle not in ("pyformat", "format")
        ):
            return None
        columns = execution_logs.c.keys()
        changing = [name for name in columns if name not in NOT_CHANGING]
        # As the UPDATEs' parameters name them: the row's own id only in the WHERE clause.
        every = [name for name in columns if name != "execution_id"]
        key = ["key_execution_id"]
        insert = _DriverStatement.compile(INSERT_LOG, dialect, columns)
        head, row = insert.sql.split(" VALUES ", 1)
        return cls(
            insert=insert,
            insert_head=head + " VALUES ",
            insert_row=row,
            update=_DriverStatement.compile(UPDATE_LOG, dialect, changing + key),
            full_update=_DriverStatement.compile(UPDATE_LOG, dialect, every + key),
        )


def write_in_one_round_trip(
    connection: Connection,
    driver: DriverStatements,
    writes: ProjectionWrites,
    rows: list[dict[str, Any]],
) -> None:
    """Send the batch's projection and journal writes as one multi-statement call.

    Raises:
        BulkInsertRefusedError: a constraint refused the call and the batch inserts
            executions (a duplicate decision id, most likely).
    """
    statements: list[str] = []
    params: list[Any] = []
    for sql, statement_params in itertools.chain(
        _projection_statements(driver, writes), _event_statements("%s", rows)
    ):
        statements.append(sql)
        params += statement_params
    try:
        connection.exec_driver_sql("; ".join(statements), tuple(params))
    except IntegrityError as exc:
        if writes.inserts:
            raise BulkInsertRefusedError from exc
        raise


def _projection_statements(
    driver: DriverStatements, writes: ProjectionWrites
) -> Iterator[tuple[str, list[Any]]]:
    """The `execution_logs` INSERTs and UPDATEs of `writes`, as driver SQL and parameters."""
    for start in range(0, len(writes.inserts), _ROWS_PER_INSERT):
        chunk = writes.inserts[start : start + _ROWS_PER_INSERT]
        params: list[Any] = []
        for state, _ in chunk:
            params += driver.insert.params(state.row_values())
        yield driver.insert_head + ", ".join([driver.insert_row] * len(chunk)), params
    for statement, updates in (
        (driver.update, writes.updates),
        (driver.full_update, writes.full_updates),
    ):
        for values in updates:
            yield statement.sql, statement.params(values)


__all__ = [
    "EVENT_COLUMNS",
    "INSERT_EVENTS_HEAD",
    "INSERT_LOG",
    "UPDATE_LOG",
    "BulkInsertRefusedError",
    "DriverStatements",
    "insert_events",
    "write_in_one_round_trip",
]
