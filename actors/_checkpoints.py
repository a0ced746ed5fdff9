"""The engine's journal-head checkpoints: periodic, and one more at shutdown.

The writer tells `note` the head after every commit (and the tail it started from); a
thread of its own takes a checkpoint every `interval` seconds when the head moved, and
`stop` takes the last one once the writer has stopped. Each checkpoint is logged as one
line, exported as metrics and, with a file, appended to it: outside the database, where
whoever can delete the newest journal rows cannot reach them (see `storage.checkpoint`).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from sqlalchemy import Engine

from actors.metrics import EngineMetrics
from core.clock import Clock, utc_micros
from core.settings import Settings
from storage.checkpoint import (
    Checkpoint,
    CheckpointFormatError,
    check_checkpoint,
    read_checkpoint_file,
)
from storage.journal import AuditKey

log = logging.getLogger(__name__)


class AuditCheckpointer:
    """Takes signed checkpoints of the head `note` was last told. Thread-safe."""

    def __init__(
        self,
        *,
        key: AuditKey | None,
        interval: float,
        clock: Clock,
        file: Path | None = None,
        metrics: EngineMetrics | None = None,
    ) -> None:
        self._key = key
        self._interval = interval
        self._clock = clock
        self._file = file
        self._metrics = metrics
        self._lock = threading.Lock()
        self._head: tuple[int, str] | None = None
        self._taken: tuple[int, str] | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def file(self) -> Path | None:
        return self._file

    def note(self, sequence: int, head_hash: str) -> None:
        """The journal's committed head is now (`sequence`, `head_hash`); never blocks long."""
        with self._lock:
            self._head = (sequence, head_hash)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ee-audit-checkpoint", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> Checkpoint | None:
        """Stop the periodic thread and take the final checkpoint (when a head is known)."""
        self._stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        return self.checkpoint(force=True)

    def checkpoint(self, *, force: bool = False) -> Checkpoint | None:
        """Take a checkpoint of the head if it moved since the last one (or `force`)."""
        with self._lock:
            head = self._head
            if head is None or (head == self._taken and not force):
                return None
            self._taken = head
            taken = Checkpoint.take(head[0], head[1], utc_micros(self._clock.now()), self._key)
            # Under the lock: two checkpoints reach the file in the order they were taken.
            self._publish(taken)
        return taken

    def _run(self) -> None:
        while not self._stopping.wait(self._interval):
            try:
                self.checkpoint()
            except Exception:
                log.exception("audit checkpoint failed")

    def _publish(self, checkpoint: Checkpoint) -> None:
        line = checkpoint.to_line()
        log.info("audit checkpoint %s", line)
        if self._metrics is not None:
            assert checkpoint.taken_at_us is not None
            self._metrics.audit_checkpoint(checkpoint.sequence, checkpoint.taken_at_us / 1e6)
        if self._file is not None:
            try:
                _append(self._file, line)
            except OSError as exc:
                log.error("audit checkpoint not written to the checkpoint file: %s", exc)


def journal_tail_problem(engine: Engine, path: Path | None, key: AuditKey | None) -> str | None:
    """At start: what is wrong with the journal against the newest checkpoint of `path`
    whose signature holds (None when it matches, or when there is no file or checkpoint).

    The chain walk cannot see rows deleted from the end; the last checkpoint written
    outside the database can, before the engine appends anything after a shorter tail.
    """
    if path is None or not path.exists():
        return None
    try:
        with path.open(encoding="utf-8") as lines:
            checkpoints = read_checkpoint_file(lines)
    except (OSError, CheckpointFormatError) as exc:
        return f"the audit checkpoint file cannot be read: {exc}"
    for checkpoint in reversed(checkpoints):
        if checkpoint.signature_problem(key) is None:
            with engine.connect() as connection:
                return check_checkpoint(connection, checkpoint)
    return None


def audit_from_settings(
    settings: Settings, clock: Clock, metrics: EngineMetrics | None
) -> tuple[AuditKey | None, AuditCheckpointer]:
    """The chain's key (EE_AUDIT_KEY) and the checkpointer of the journal's head."""
    secret = settings.audit_key_secret()
    key = AuditKey(secret) if secret is not None else None
    path = settings.audit_checkpoint_file
    checkpoints = AuditCheckpointer(
        key=key,
        interval=settings.audit_checkpoint_seconds,
        clock=clock,
        file=Path(path) if path is not None else None,
        metrics=metrics,
    )
    return key, checkpoints


def _append(path: Path, line: str) -> None:
    # Synced: a checkpoint the process reported must survive a crash of the machine.
    with path.open("a", encoding="utf-8") as file:
        file.write(line + "\n")
        file.flush()
        os.fsync(file.fileno())


__all__ = ["AuditCheckpointer", "audit_from_settings", "journal_tail_problem"]
