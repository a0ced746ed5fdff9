"""Units <-> lots. The engine submits exactly the RPM's size or refuses; it never re-sizes."""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from core.enums import RejectionReason
from core.rules._common import Denied, denoise, finite_positive, fmt

#: Tolerance, in units of one volume step, for "is a whole number of steps". Float division
#: leaves noise around 1e-15 of a step (0.07 / 0.01 = 7.000000000000001); a real extra unit
#: of size is orders of magnitude larger, so this separates noise from a wrong size.
VOLUME_STEP_TOLERANCE: Final = 1e-9


def _decimals(step: float) -> int:
    """Decimal places needed to write `step` exactly as typed (0.01 -> 2, 1e-05 -> 5, 5.0 -> 0)."""
    exponent = Decimal(repr(step)).normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # finite: the caller checked
    return max(0, -exponent)


def units_to_lots(
    units: float,
    *,
    contract_size: float,
    volume_min: float,
    volume_max: float,
    volume_step: float,
) -> float | Denied:
    """The MT5 volume in lots for exactly `units`, or `Denied` if MT5 cannot express it.

    `units / contract_size` must be a whole number of `volume_step`s inside
    `[volume_min, volume_max]`. The result is only cleaned of float noise (rounded to the
    step's decimal places); 95001 units on a 100000 contract with a 0.01 step is refused
    with INVALID_VOLUME, never rounded to 0.95.
    """
    spec = (contract_size, volume_min, volume_max, volume_step)
    if not all(finite_positive(v) for v in spec) or volume_max < volume_min:
        # Nothing can be sized against such a spec: it is the symbol that is broken.
        return Denied(
            RejectionReason.SYMBOL_NOT_TRADABLE,
            f"invalid symbol volume spec: contract_size={fmt(contract_size)}, "
            f"volume_min={fmt(volume_min)}, volume_max={fmt(volume_max)}, "
            f"volume_step={fmt(volume_step)}",
        )
    if not finite_positive(units):
        return Denied(RejectionReason.INVALID_VOLUME, f"units={units!r} is not a positive number")

    lots = units / contract_size
    steps = lots / volume_step
    whole_steps = round(steps)
    if abs(steps - whole_steps) > VOLUME_STEP_TOLERANCE:
        return Denied(
            RejectionReason.INVALID_VOLUME,
            f"units={fmt(units)} is {fmt(lots)} lots (contract_size={fmt(contract_size)}), "
            f"not a whole multiple of volume_step={fmt(volume_step)}",
        )
    lots_clean = round(whole_steps * volume_step, _decimals(volume_step))
    slack = VOLUME_STEP_TOLERANCE * volume_step
    if whole_steps < 1 or lots_clean < volume_min - slack:
        return Denied(
            RejectionReason.INVALID_VOLUME,
            f"units={fmt(units)} is {fmt(lots)} lots, below volume_min={fmt(volume_min)}",
        )
    if lots_clean > volume_max + slack:
        return Denied(
            RejectionReason.INVALID_VOLUME,
            f"units={fmt(units)} is {fmt(lots)} lots, above volume_max={fmt(volume_max)}",
        )
    return lots_clean


def lots_to_units(lots: float, contract_size: float) -> float:
    """Units for a volume in lots (`lots * contract_size`), without float noise."""
    if not (finite_positive(lots) or lots == 0) or not finite_positive(contract_size):
        raise ValueError(f"lots={lots!r}, contract_size={contract_size!r}")
    return denoise(lots * contract_size)
