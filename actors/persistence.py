"""PersistenceActor: the single writer of execution rows and the journal.

Group commit: a `Write` does not commit on its own. The first write of a group tells the
actor a `Flush`, which queues behind every write already in the inbox; when the Flush is
handled, everything received so far goes into one transaction. A write's reply is set only
after that commit, so an acknowledged write is durable. A failed batch is retried write by
write, so that one bad write (a duplicate decision id) fails alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import pykka
from sqlalchemy import Engine, event

from actors._reply import FastInbox, Reply
from actors.messages import Flush, Write
from core.errors import PersistenceError, PersistenceUnavailableError
from core.models import ExecutionLog
from storage.db import redact_url
from storage.ops import WriteOp
from storage.repository import Repository
from storage.writer import JournalWriter

log = logging.getLogger(__name__)


class PersistenceActor(FastInbox):
    """Owns the one `JournalWriter`; every other actor writes through it."""

    use_daemon_thread = True

    def __init__(
        self,
        writer_factory: Callable[[], JournalWriter],
        max_batch: int = 64,
        on_commit: Callable[[int, float], None] | None = None,
    ) -> None:
        super().__init__()
        self._writer_factory = writer_factory
        self._writer: JournalWriter | None = None
        self._max_batch = max_batch
        self._pending: list[Write] = []
        self._flush_queued = False
        self._on_commit = on_commit
        self.batches = 0
        self.writes = 0

    def on_start(self) -> None:
        # The writer reads the last sequence and hash, so a restarted actor continues the chain.
        self._writer = self._writer_factory()

    def on_receive(self, message: Any) -> Any:
        if isinstance(message, Write):
            self._pending.append(message)
            if len(self._pending) >= self._max_batch:
                self._flush()
            elif not self._flush_queued:
                self._flush_queued = True
                self.actor_ref.tell(Flush())
            return None
        if isinstance(message, Flush):
            self._flush_queued = False
            self._flush()
            return None
        log.warning("PersistenceActor ignored unknown message %r", message)
        return None

    def on_failure(self, *_: object) -> None:
        self._fail_pending(PersistenceUnavailableError("the persistence actor failed"))

    def on_stop(self) -> None:
        self._flush()
        if self._writer is not None:
            self._writer.close()

    def _flush(self) -> None:
        if not self._pending:
            return
        group, self._pending = self._pending, []
        ops: list[WriteOp] = [op for write in group for op in write.ops]
        started = time.perf_counter()
        try:
            events = self._write(ops)
        except PersistenceError as exc:
            if len(group) == 1:
                group[0].reply.set_exception(exc_info=(type(exc), exc, exc.__traceback__))
                return
            log.info("group commit of %d writes failed (%s); writing one by one", len(group), exc)
            for write in group:
                self._write_alone(write)
            return
        self._report(len(ops), time.perf_counter() - started)
        offset = 0
        for write in group:
            write.reply.set(events[offset : offset + len(write.ops)])
            offset += len(write.ops)

    def _write_alone(self, write: Write) -> None:
        started = time.perf_counter()
        try:
            events = self._write(list(write.ops))
        except PersistenceError as exc:
            write.reply.set_exception(exc_info=(type(exc), exc, exc.__traceback__))
            return
        self._report(len(write.ops), time.perf_counter() - started)
        write.reply.set(events)

    def _write(self, ops: Sequence[WriteOp]) -> list[Any]:
        assert self._writer is not None
        try:
            return self._writer.write_batch(ops)
        except PersistenceError:
            raise
        except Exception as exc:
            raise PersistenceUnavailableError(
                f"the database could not take the write: {exc}"
            ) from exc

    def _report(self, ops: int, seconds: float) -> None:
        self.batches += 1
        self.writes += ops
        if self._on_commit is not None:
            self._on_commit(ops, seconds)

    def _fail_pending(self, exc: Exception) -> None:
        pending, self._pending = self._pending, []
        for write in pending:
            write.reply.set_exception(exc_info=(type(exc), exc, exc.__traceback__))

    def stats(self) -> dict[str, int]:
        return {"batches": self.batches, "writes": self.writes}


def write_and_wait(
    persistence: pykka.ActorRef[Any], ops: Sequence[WriteOp], timeout: float
) -> list[Any]:
    """Tell `ops` to the PersistenceActor and block until they are committed.

    Raises `PersistenceUnavailableError` when the write failed, the actor is gone or the
    commit did not come back in time: the caller must then act as if nothing was written.
    """
    reply: Reply[list[Any]] = Reply()
    try:
        persistence.tell(Write(tuple(ops), reply))
    except pykka.ActorDeadError as exc:
        raise PersistenceUnavailableError("the persistence actor is not running") from exc
    try:
        result: list[Any] = reply.get(timeout=timeout)
    except pykka.Timeout as exc:
        raise PersistenceUnavailableError(f"no commit within {timeout} s") from exc
    return result


_EXISTS_QMARK = "SELECT 1 FROM execution_logs WHERE rpm_decision_id = ?"
_EXISTS_FORMAT = "SELECT 1 FROM execution_logs WHERE rpm_decision_id = %s"


class StoredDecisions:
    """Finds the execution an earlier run stored for an RPM decision id (the facade's
    idempotency check on every submit), cheaply when there is none.

    Almost every submit carries a new decision, so the question is almost always answered
    "no". That answer costs one parameterized `SELECT 1` on a connection of its own, kept
    open in autocommit mode: no pool checkout, no liveness ping, no statement building, no
    transaction to end. A "yes" is then read in full through the `Repository`. A connection
    that fails is dropped and the question asked once more on a new one (a restarted
    server), and a second failure is the `PersistenceUnavailableError` a read raises.
    The connection is closed when the engine is disposed. Thread-safe.
    """

    def __init__(self, engine: Engine, repository: Repository) -> None:
        self._engine = engine
        self._repository = repository
        self._lock = threading.Lock()
        self._connection: Any = None
        self._sql = _EXISTS_QMARK if engine.dialect.paramstyle == "qmark" else _EXISTS_FORMAT
        event.listen(engine, "engine_disposed", lambda _engine: self.close())

    def get(self, decision_id: str) -> ExecutionLog | None:
        if not self._exists(decision_id):
            return None
        return self._repository.get_by_decision_id(decision_id)

    def close(self) -> None:
        with self._lock:
            self._drop()

    def _exists(self, decision_id: str) -> bool:
        with self._lock:
            for attempt in range(2):
                try:
                    return self._ask(decision_id)
                except self._engine.dialect.loaded_dbapi.Error as exc:
                    self._drop()
                    if attempt == 1:
                        raise PersistenceUnavailableError(
                            f"read from {redact_url(str(self._engine.url))} failed: "
                            f"{type(exc).__name__}"
                        ) from exc
        raise AssertionError("unreachable")

    def _ask(self, decision_id: str) -> bool:
        if self._connection is None:
            connection = self._engine.raw_connection()
            try:
                # PostgreSQL: no transaction around a lone read. SQLite connections of
                # `create_db_engine` already leave transaction control to the caller.
                if self._engine.dialect.name == "postgresql":
                    connection.dbapi_connection.autocommit = True  # type: ignore[union-attr]
            except Exception:
                connection.close()
                raise
            self._connection = connection
        cursor = self._connection.cursor()
        try:
            cursor.execute(self._sql, (decision_id,))
            return cursor.fetchone() is not None
        finally:
            cursor.close()

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.invalidate()
            except Exception:
                log.debug("closing the decision lookup connection failed", exc_info=True)
