"""Position effect: how an approved trade acts on the open positions of its symbol.

The RPM decides how much exposure to add or remove; this rule decides how to do that on
the account, as MQL5's CTrade and NautilusTrader's reduce-only orders do. On a hedging
account (`ACCOUNT_MARGIN_MODE_RETAIL_HEDGING`) with the `reduce` policy, a trade opposite
to open positions closes them oldest first (FIFO, which also keeps US FIFO accounts legal):
full closes by `position` ticket, a partial close of the last one, and a new position only
for the remainder. With `hedge`, or on a netting account (MT5 nets one order by itself),
the trade is one OPEN leg. Either way the legs add up to exactly the approved volume: the
trade is split, never re-sized.

The reducing part is what the margin cushion, the in-flight reservations, the reduce-only
state and the close-only / long-only / short-only trade modes do not hold against a trade;
the opening part keeps every check. Volumes are counted in whole volume steps so that no
float noise can make a close bigger than its position.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from core.enums import LegAction, OppositePolicy, PositionScope, RejectionReason
from core.rules._common import Denied, fmt
from core.rules.volume import _decimals

POSITION_TYPE_BUY = 0
POSITION_TYPE_SELL = 1


@dataclass(frozen=True, slots=True)
class OpenPosition:
    """What the rule needs of one `positions_get` row."""

    ticket: int
    type: int
    """POSITION_TYPE_BUY (0) or POSITION_TYPE_SELL (1)."""
    volume: float
    """Lots."""
    time_msc: int
    """When it was opened (its age decides the FIFO order; the ticket breaks ties)."""
    magic: int = 0
    symbol: str = ""

    @property
    def direction(self) -> int:
        return 1 if self.type == POSITION_TYPE_BUY else -1


@dataclass(frozen=True, slots=True)
class LegPlan:
    """One order_send to make: CLOSE `volume` lots of position `position`, or OPEN `volume`."""

    action: LegAction
    volume: float
    position: int | None = None


@dataclass(frozen=True, slots=True)
class PositionPlan:
    legs: tuple[LegPlan, ...]
    reducing_volume: float
    """Lots of the trade that reduce exposure on the symbol (closes, or a netting order's
    part up to the opposite position's volume)."""
    opening_volume: float
    """Lots that open or add to exposure: the only part the margin and reduce-only rules hold."""

    @property
    def reduces_only(self) -> bool:
        return self.opening_volume == 0


def owned_positions(
    positions: Iterable[OpenPosition], *, symbol: str, magic: int, scope: PositionScope
) -> list[OpenPosition]:
    """The positions on `symbol` the engine may act on: its own (by magic), or all of them."""
    return [
        p
        for p in positions
        if (not p.symbol or p.symbol == symbol)
        and (scope is PositionScope.ACCOUNT or p.magic == magic)
    ]


def plan_position_effect(
    positions: Iterable[OpenPosition],
    *,
    direction: int,
    volume: float,
    volume_step: float,
    volume_min: float,
    hedging: bool,
    policy: OppositePolicy,
) -> PositionPlan | Denied:
    """The legs that trade exactly `volume` lots in `direction` given the open `positions`
    of the symbol (already filtered by `owned_positions`).

    Refused (INVALID_VOLUME) only when a leg of the split would fall below `volume_min`,
    which the broker would refuse: the trade as approved cannot be done exactly.
    """
    if direction not in (1, -1):
        raise ValueError(f"direction must be +1 or -1, not {direction!r}")
    step = _Steps(volume_step)
    wanted = step.count(volume)
    opposite = sorted(
        (p for p in positions if p.direction == -direction and p.volume > 0),
        key=lambda p: (p.time_msc, p.ticket),
    )
    if not hedging:
        # One order; MT5 nets it against the (single) position of the symbol.
        against = min(wanted, sum(step.count(p.volume) for p in opposite))
        return PositionPlan(
            (LegPlan(LegAction.OPEN, step.lots(wanted)),),
            reducing_volume=step.lots(against),
            opening_volume=step.lots(wanted - against),
        )
    if policy is OppositePolicy.HEDGE or not opposite:
        return PositionPlan(
            (LegPlan(LegAction.OPEN, step.lots(wanted)),),
            reducing_volume=0.0,
            opening_volume=step.lots(wanted),
        )
    legs: list[LegPlan] = []
    left = wanted
    for position in opposite:
        if left == 0:
            break
        take = min(left, step.count(position.volume))
        legs.append(LegPlan(LegAction.CLOSE, step.lots(take), position.ticket))
        left -= take
    if left:
        legs.append(LegPlan(LegAction.OPEN, step.lots(left)))
    too_small = [leg for leg in legs if leg.volume < volume_min - step.slack]
    if too_small:
        leg = too_small[0]
        what = f"close of position {leg.position}" if leg.position else "opening remainder"
        return Denied(
            RejectionReason.INVALID_VOLUME,
            f"{fmt(volume)} lots against the open positions leaves a {what} of "
            f"{fmt(leg.volume)} lots, below volume_min={fmt(volume_min)}",
        )
    return PositionPlan(
        tuple(legs),
        reducing_volume=step.lots(wanted - left),
        opening_volume=step.lots(left),
    )


class _Steps:
    """Lots <-> whole volume steps, exact for any volume the broker could hold."""

    def __init__(self, volume_step: float) -> None:
        if not volume_step > 0:
            raise ValueError(f"volume_step must be positive, not {volume_step!r}")
        self._step = volume_step
        self._decimals = _decimals(volume_step)
        self.slack = 1e-9 * volume_step

    def count(self, lots: float) -> int:
        return round(lots / self._step)

    def lots(self, steps: int) -> float:
        return round(steps * self._step, self._decimals)


__all__ = [
    "POSITION_TYPE_BUY",
    "POSITION_TYPE_SELL",
    "LegPlan",
    "OpenPosition",
    "PositionPlan",
    "owned_positions",
    "plan_position_effect",
]
