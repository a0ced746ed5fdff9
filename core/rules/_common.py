"""What every rule shares: the `Denied` value and float hygiene."""

from __future__ import annotations

import math
from dataclasses import dataclass

from core.enums import RejectionReason


@dataclass(frozen=True, slots=True)
class Denied:
    """A rule's refusal: the reason code and a human-readable detail with the numbers."""

    reason: RejectionReason
    detail: str


def finite_positive(value: float) -> bool:
    return math.isfinite(value) and value > 0


def fmt(value: float) -> str:
    """A number for a detail message: short, but exact enough to show why it was refused."""
    return f"{value:.12g}"


def denoise(value: float) -> float:
    """Drop binary-float noise (beyond 12 significant digits) without changing the value."""
    return float(f"{value:.12g}")
