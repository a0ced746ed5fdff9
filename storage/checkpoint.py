"""Checkpoints of the journal's head, kept outside the database.

A checkpoint says "row `sequence` existed with hash `hash` at `taken_at_us`". The hash chain
alone cannot show that its newest rows were deleted: what is left still links up. A
checkpoint held elsewhere (the log, a file, metrics) can: the row it names must still be
there with the same hash. And since each hash covers every row before it, that one row
vouches for the whole history up to it.

With an `AuditKey` the checkpoint is signed (HMAC-SHA256 under EE_AUDIT_KEY), so that
someone who can write where checkpoints are kept cannot forge one for a shorter or rewritten
journal. Without a key the "signature" is a plain SHA-256 checksum: it catches a garbled
line, not a forged one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from core.models import canonical_json
from storage.journal import AuditKey, read_tail
from storage.schema import execution_events

_SHORT_FORM = re.compile(r"^(\d+):([0-9a-f]{64})$")


class CheckpointFormatError(ValueError):
    """A checkpoint that cannot be read: neither SEQ:HASH nor a checkpoint line."""


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The journal's head at one moment; `signature` is None for a bare SEQ:HASH."""

    sequence: int
    hash: str
    taken_at_us: int | None = None
    key_id: str | None = None
    signature: str | None = None

    @classmethod
    def take(
        cls, sequence: int, head_hash: str, taken_at_us: int, key: AuditKey | None
    ) -> Checkpoint:
        """A checkpoint of (`sequence`, `head_hash`), signed with `key` when there is one."""
        unsigned = cls(sequence, head_hash, taken_at_us, key.key_id if key else None)
        return cls(sequence, head_hash, taken_at_us, unsigned.key_id, unsigned._sign(key))

    def _signed_bytes(self) -> bytes:
        return (
            f"ee-audit-checkpoint:{self.sequence}:{self.hash}:{self.taken_at_us}:"
            f"{self.key_id or '-'}"
        ).encode()

    def _sign(self, key: AuditKey | None) -> str:
        data = self._signed_bytes()
        return key.digest(data) if key is not None else hashlib.sha256(data).hexdigest()

    def signature_problem(self, key: AuditKey | None) -> str | None:
        """Why the signature does not hold (None when it does, or when there is none)."""
        if self.signature is None:
            return None
        if self.key_id is None:
            ok = hmac.compare_digest(self._sign(None), self.signature)
            return None if ok else "its checksum does not match its content (altered)"
        if key is None:
            return f"it is signed with key id {self.key_id}: set EE_AUDIT_KEY to check it"
        if key.key_id != self.key_id:
            return f"it is signed with key id {self.key_id}, EE_AUDIT_KEY has {key.key_id}"
        if not hmac.compare_digest(self._sign(key), self.signature):
            return "its signature does not match (forged or altered)"
        return None

    def to_line(self) -> str:
        """One JSON line, as logged and appended to the checkpoint file."""
        return canonical_json(
            {
                "sequence": self.sequence,
                "hash": self.hash,
                "taken_at_us": self.taken_at_us,
                "key_id": self.key_id,
                "signature": self.signature,
            }
        )

    def short(self) -> str:
        """SEQ:HASH, what `audit verify --checkpoint` takes."""
        return f"{self.sequence}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """`SEQ:HASH`, or a checkpoint line as `to_line` writes it (the log's text too)."""
        text = text.strip()
        short = _SHORT_FORM.match(text)
        if short:
            return cls(int(short.group(1)), short.group(2))
        start = text.find("{")
        try:
            fields: Any = json.loads(text[start:]) if start >= 0 else None
            return cls(
                sequence=_int(fields["sequence"]),
                hash=_hex64(fields["hash"]),
                taken_at_us=_int(fields["taken_at_us"]),
                key_id=_optional_hex(fields["key_id"], 16),
                signature=_optional_hex(fields["signature"], 64),
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise CheckpointFormatError(
                "not a checkpoint: expected SEQ:HASH or a checkpoint line"
            ) from exc


def _int(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise ValueError("not a non-negative integer")
    return value


def _hex64(value: Any) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError("not a 64-digit hex hash")
    return value


def _optional_hex(value: Any, digits: int) -> str | None:
    if value is not None and (
        not isinstance(value, str) or not re.fullmatch(rf"[0-9a-f]{{{digits}}}", value)
    ):
        raise ValueError(f"not {digits} hex digits")
    return value


def read_checkpoint_file(lines: Iterable[str]) -> list[Checkpoint]:
    """Every checkpoint of a checkpoint file (blank lines skipped).

    Raises CheckpointFormatError naming the first line that is not one.
    """
    found: list[Checkpoint] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            found.append(Checkpoint.parse(line))
        except CheckpointFormatError as exc:
            raise CheckpointFormatError(f"line {number}: {exc}") from exc
    return found


def check_checkpoint(connection: Connection, checkpoint: Checkpoint) -> str | None:
    """What is wrong with the journal against `checkpoint`, or None when its row is there.

    Names a truncated tail (the journal now ends before the checkpointed row) and a row
    that is there but differs (history rewritten, or truncated and written again).
    """
    if checkpoint.sequence == 0:
        return None  # the head of an empty journal: nothing to look for
    stored = connection.execute(
        select(execution_events.c.hash).where(execution_events.c.sequence == checkpoint.sequence)
    ).scalar_one_or_none()
    if stored is None:
        last, _hash, _key_id = read_tail(connection)
        if last < checkpoint.sequence:
            return (
                f"truncated tail: the journal ends at sequence {last} but checkpoint "
                f"{checkpoint.short()} records sequence {checkpoint.sequence}: rows "
                f"{last + 1}..{checkpoint.sequence} are missing"
            )
        return f"row {checkpoint.sequence} of checkpoint {checkpoint.short()} is missing"
    if not hmac.compare_digest(str(stored), checkpoint.hash):
        return (
            f"row {checkpoint.sequence} differs from checkpoint {checkpoint.short()} (the "
            f"journal has hash {stored}): history was rewritten or truncated and written again"
        )
    return None


__all__ = [
    "Checkpoint",
    "CheckpointFormatError",
    "check_checkpoint",
    "read_checkpoint_file",
]
