"""Id sources. Code that makes ids takes an `IdSource`, so tests get predictable ids."""

from __future__ import annotations

import uuid
from typing import Protocol, runtime_checkable


@runtime_checkable
class IdSource(Protocol):
    """Makes unique string ids."""

    def new_id(self, prefix: str = "") -> str:
        """A new id: 32 lowercase hex digits, as `prefix_<hex>` when a prefix is given."""
        ...


def join_id(prefix: str, hex32: str) -> str:
    """`prefix_hex32`, or `hex32` alone for an empty prefix: the one id shape."""
    return f"{prefix}_{hex32}" if prefix else hex32


class UuidIds:
    """Random (uuid4) ids, e.g. `new_id("exec")` -> `exec_3f2a...` (32 hex digits)."""

    def new_id(self, prefix: str = "") -> str:
        return join_id(prefix, uuid.uuid4().hex)


__all__ = ["IdSource", "UuidIds", "join_id"]
