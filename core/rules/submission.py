"""What the engine attaches to a send and how it paces retries: client ids and back-off."""

from __future__ import annotations

import hashlib
import math
import random
import re
from base64 import b32encode
from collections.abc import Callable
from typing import Final

#: An order comment that every build and broker seen accepts: at most 25 ASCII
#: `[A-Za-z0-9_-]` (mt5-api.md §3). Longer ones make order_send return None with -2.
CLIENT_ID_MAX_LENGTH: Final = 25
CLIENT_ID_RE: Final = re.compile(r"\A[A-Za-z0-9_-]{1,25}\Z")
#: Prefixes leave >= 16 digest characters (80 bits) and contain no `-`, the separator.
CLIENT_ID_PREFIX_RE: Final = re.compile(r"\A[A-Za-z0-9_]{1,8}\Z")


def make_client_id(execution_id: str, prefix: str = "ee") -> str:
    """The order comment naming an execution: `<prefix>-<digest>`, always 25 characters.

    Deterministic, so that recovery can recompute it from the stored execution id, and unique
    per execution id (SHA-256, base32, lowercase, at least 80 bits kept).
    """
    if not CLIENT_ID_PREFIX_RE.match(prefix):
        raise ValueError(f"client id prefix must be 1-8 of [A-Za-z0-9_], got {prefix!r}")
    if not execution_id:
        raise ValueError("execution_id must not be empty")
    # Base32 encodes each 5 bytes on their own, so the first 15 bytes (24 characters) give
    # the same leading characters as the whole digest, at half the cost (it runs per submit).
    digest = b32encode(hashlib.sha256(execution_id.encode("utf-8")).digest()[:15])
    return f"{prefix}-{digest.decode('ascii').lower()[: CLIENT_ID_MAX_LENGTH - len(prefix) - 1]}"


def backoff_seconds(
    attempt: int,
    base: float,
    cap: float,
    jitter: float = 0.0,
    rand: Callable[[], float] | None = None,
) -> float:
    """Delay before retry number `attempt` (1 = the first retry): `base * 2**(attempt-1)`,
    at most `cap`, then shortened by up to `jitter` (0..1) of itself with `rand()` in [0, 1)
    (random.random by default), so the cap is never exceeded.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts retries from 1, got {attempt!r}")
    if not (math.isfinite(base) and base >= 0 and math.isfinite(cap) and cap >= 0):
        raise ValueError(f"base and cap must be finite and >= 0, got base={base!r}, cap={cap!r}")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter must be within [0, 1], got {jitter!r}")
    # 2.0 ** 1024 overflows; long before that the cap has won.
    delay = cap if attempt > 64 else min(cap, base * 2.0 ** (attempt - 1))
    if jitter:
        delay *= 1.0 - jitter * (rand or random.random)()
    return delay
