"""Property tests of the chain hash: the writer hashes a row around its payload's canonical
text (`chain_hash`), and that must equal, for any row, the hash as the journal defines it:
SHA-256 (HMAC with a key) of the previous hash + the canonical JSON of the row's content.
A drift would store rows that `verify_chain` later reports as broken: this catches it first.
"""

from __future__ import annotations

import hashlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from core.models import canonical_json
from storage._batch import canonical_payload
from storage.journal import AuditKey, chain_hash, event_hash

_KEY = AuditKey("property-test-key-of-enough-length")

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
_json = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
_payloads = st.dictionaries(st.text(), _json, max_size=6)
_rows = st.fixed_dictionaries(
    {
        "prev_hash": st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
        "sequence": st.integers(min_value=1, max_value=2**62),
        "execution_id": st.none() | st.text(max_size=40),
        "event_type": st.text(min_size=1, max_size=64),
        "payload": _payloads,
        "engine_time_us": st.integers(min_value=0, max_value=2**62),
        "broker_time_msc": st.none() | st.integers(min_value=0, max_value=2**62),
    }
)


def _defined_hash(row: dict[str, Any], key: AuditKey | None) -> str:
    """The definition, written out independently of `storage.journal`."""
    content = canonical_json({k: v for k, v in row.items() if k != "prev_hash"})
    data = (row["prev_hash"] + content).encode()
    return key.digest(data) if key is not None else hashlib.sha256(data).hexdigest()


def _args(row: dict[str, Any], payload: Any) -> tuple[Any, ...]:
    return (
        row["prev_hash"],
        row["sequence"],
        row["execution_id"],
        row["event_type"],
        payload,
        row["engine_time_us"],
        row["broker_time_msc"],
    )


@settings(max_examples=200, deadline=None)
@given(row=_rows, keyed=st.booleans())
def test_chain_hash_of_the_canonical_text_is_the_defined_hash(
    row: dict[str, Any], keyed: bool
) -> None:
    key = _KEY if keyed else None
    text = canonical_json(row["payload"])

    expected = _defined_hash(row, key)

    assert chain_hash(*_args(row, text), key) == expected
    assert event_hash(*_args(row, row["payload"]), key) == expected


@settings(max_examples=100, deadline=None)
@given(payload=_payloads)
def test_the_writer_payload_text_is_the_canonical_json_of_what_reads_back(
    payload: dict[str, Any],
) -> None:
    parsed, text = canonical_payload(payload, payload)

    assert text == canonical_json(parsed)
    assert canonical_json(payload) == text
