"""Persistence: the execution projection, the hash-chained journal and the kill switch.

`storage` depends only on `core`. The PersistenceActor is the only caller of
`JournalWriter`; everything else reads through `Repository`.
"""

from core.errors import DuplicateDecisionError
from storage.db import create_db_engine, default_sqlite_url, redact_url
from storage.journal import (
    GENESIS_HASH,
    AuditKey,
    ChainReport,
    event_hash,
    replay_projection,
    verify_chain,
)
from storage.migrate import current_revision, head_revision, upgrade
from storage.ops import WriteOp
from storage.repository import Repository
from storage.writer import JournalWriter

__all__ = [
    "GENESIS_HASH",
    "AuditKey",
    "ChainReport",
    "DuplicateDecisionError",
    "JournalWriter",
    "Repository",
    "WriteOp",
    "create_db_engine",
    "current_revision",
    "default_sqlite_url",
    "event_hash",
    "head_revision",
    "redact_url",
    "replay_projection",
    "upgrade",
    "verify_chain",
]
