"""The margin check: the broker's margin for the order, with a cushion, must be free."""

from __future__ import annotations

import math

from core.enums import RejectionReason
from core.rules._common import Denied, fmt


def required_margin(margin_per_order: float, cushion: float) -> float:
    """Margin the engine insists on being free: the broker's margin times the cushion."""
    if not math.isfinite(cushion) or cushion < 1.0:
        raise ValueError(f"margin cushion must be >= 1.0, got {cushion!r}")
    return margin_per_order * cushion


def margin_check(
    *, margin_required: float, free_margin: float, reserved_margin: float, cushion: float
) -> Denied | None:
    """None when `margin_required x cushion` fits in `free_margin - reserved_margin`.

    `reserved_margin` is what in-flight executions already hold, which the account's free
    margin does not show yet. Missing or nonsensical broker figures (NaN, inf, a negative
    margin) deny: the check fails closed.
    """
    if not math.isfinite(reserved_margin) or reserved_margin < 0:
        raise ValueError(f"reserved_margin must be >= 0, got {reserved_margin!r}")
    usable = math.isfinite(margin_required) and margin_required >= 0
    if not usable or not math.isfinite(free_margin):
        return Denied(
            RejectionReason.MARGIN_INSUFFICIENT,
            f"margin figures unusable: margin_required={margin_required!r}, "
            f"free_margin={free_margin!r}",
        )
    needed = required_margin(margin_required, cushion)
    available = free_margin - reserved_margin
    if needed > available:
        return Denied(
            RejectionReason.MARGIN_INSUFFICIENT,
            f"margin {fmt(margin_required)} x cushion {fmt(cushion)} = {fmt(needed)} "
            f"exceeds free margin {fmt(free_margin)} - reserved {fmt(reserved_margin)} "
            f"= {fmt(available)}",
        )
    return None
