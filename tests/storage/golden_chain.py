"""A fixed journal, batch by batch, whose rows were stored by the writer before its split.

`tests/storage/golden_chain.json` holds the rows the pre-split writer stored for these
batches (plain, then keyed from a second writer on); `test_golden_chain` holds the writer
of today to them byte for byte. The batches take every path of the planner: creations in
one INSERT, the changing-columns UPDATE, the full UPDATE (a fixed field changed), several
ops of one execution in a batch, a projection read back by a new writer, a trading-state
change, payloads that are not plain JSON (int keys, a tuple) and text outside ASCII.
"""

from __future__ import annotations

from storage.journal import AuditKey
from storage.ops import WriteOp
from tests.storage.conftest import advance, filled, make_log, note_op, op_for, state_op

GOLDEN_KEY = AuditKey("golden-chain-key-of-enough-length")
"""The key of the second writer's rows."""

_S = "SUBMITTING"
_ROW_COLUMNS = (
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


def plain_batches() -> list[list[WriteOp]]:
    """What the first (plain SHA-256) writer stores."""
    from core.enums import ExecutionStatus as S

    one, two, three = make_log(1), make_log(2), make_log(3)
    created = [
        WriteOp(
            execution_id=log.execution_id,
            event_type="EXECUTION_CREATED",
            payload={"stage": "log"},
            engine_time_us=1_709_294_400_000_000 + n,
            projection=log,
            creates=True,
        )
        for n, log in enumerate((one, two, three))
    ]
    submitting = advance(one, S.SUBMITTING, attempts=1)
    moved_two = advance(two, S.SUBMITTING)
    return [
        created,
        [
            op_for(submitting, _S, lots=0.1, note="caf\u00e9 \u2603"),
            note_op(one.execution_id, 5, retcode=10009, nested={"b": [1, 2.5, None, True]}),
            op_for(moved_two, _S),
            op_for(advance(moved_two, S.SUBMITTED, order_id=50_000_001), "ORDER_ACCEPTED"),
        ],
        [state_op("HALTED", 7, changed_by="ops \u00e9")],
        [
            op_for(filled(submitting), "EXECUTION_FILLED", fills=[[0.1, 1.08457]]),
            note_op(None, 9, odd={10: "ten", 9: "nine"}, t=(1, 2)),
            # A fixed field changes: the full UPDATE.
            op_for(advance(three, S.REJECTED, magic=7), "EXECUTION_REJECTED"),
        ],
        [state_op("ACTIVE", 11)],
    ]


def keyed_batches() -> list[list[WriteOp]]:
    """What a second writer stores next, keyed with `GOLDEN_KEY` (it reads two's state)."""
    from core.enums import ExecutionStatus as S

    two = advance(advance(make_log(2), S.SUBMITTING), S.SUBMITTED, order_id=50_000_001)
    return [
        [op_for(filled(two, order_id=50_000_001), "EXECUTION_FILLED")],
        [note_op(None, 13, last=True)],
    ]


def row_dict(row: object) -> dict[str, object]:
    """A journal row as the JSON file holds it."""
    return {column: getattr(row, column) for column in _ROW_COLUMNS}
