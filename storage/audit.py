"""`execution-engine audit verify`: the hash chain, then the checkpoints, as lines to print.

The chain walk finds a changed, inserted or removed row (and, with the key, a re-hashed
one); a checkpoint kept outside the database finds what the walk cannot: a tail deleted
from the end. Every problem is one line naming the row or the checkpoint.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import Engine

from storage.checkpoint import Checkpoint, check_checkpoint
from storage.journal import AuditKey, ChainReport, verify_chain


@dataclass(slots=True)
class AuditVerdict:
    """What `audit verify` prints: `notes` on stdout, `problems` on stderr (exit 1 if any)."""

    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_audit(
    engine: Engine,
    key: AuditKey | None,
    checkpoints: Sequence[tuple[str, Checkpoint]] = (),
    where: str = "the journal",
) -> AuditVerdict:
    """Verify the chain of `engine`'s journal and each (source, checkpoint) against it.

    Checkpoints are all checked for their signature; against the journal are checked the
    given ones whose signature holds, which is enough: a row whose hash matches vouches
    for every row before it once the chain checks out.
    """
    verdict = AuditVerdict()
    report = verify_chain(engine, key=key)
    _chain_lines(verdict, report, key, where)
    with engine.connect() as connection:
        for source, checkpoint in checkpoints:
            signature = checkpoint.signature_problem(key)
            if signature is not None:
                verdict.problems.append(f"checkpoint {checkpoint.short()} ({source}): {signature}")
                continue
            problem = check_checkpoint(connection, checkpoint)
            if problem is not None:
                verdict.problems.append(f"{problem} ({source})")
            else:
                verdict.notes.append(
                    f"checkpoint {checkpoint.short()} ({source}) holds: row "
                    f"{checkpoint.sequence} is there with that hash"
                )
    return verdict


def _chain_lines(
    verdict: AuditVerdict, report: ChainReport, key: AuditKey | None, where: str
) -> None:
    if not report.ok:
        what = "NOT VERIFIED" if report.key_problem else "BROKEN"
        verdict.problems.append(
            f"audit chain {what} at sequence {report.first_broken_sequence}: {report.reason} "
            f"({report.rows_checked} rows checked before it)"
        )
        return
    plain = report.rows_checked - report.keyed_rows
    verdict.notes.append(
        f"audit chain of {where} verified: {report.rows_checked} rows intact "
        f"({report.keyed_rows} keyed with HMAC-SHA256, {plain} plain SHA-256)"
    )
    if key is not None and plain:
        verdict.notes.append(
            f"note: rows 1..{plain} were written without EE_AUDIT_KEY: the key does not "
            "protect them against a re-hash (a checkpoint does)"
        )


__all__ = ["AuditVerdict", "verify_audit"]
