"""The position-effect rule: which legs an approved trade becomes on each kind of account."""

from __future__ import annotations

import pytest

from core.enums import LegAction, OppositePolicy, PositionScope, RejectionReason
from core.rules._common import Denied
from core.rules.positions import (
    POSITION_TYPE_BUY,
    POSITION_TYPE_SELL,
    LegPlan,
    OpenPosition,
    PositionPlan,
    owned_positions,
    plan_position_effect,
)

CLOSE, OPEN = LegAction.CLOSE, LegAction.OPEN


def _long(ticket: int, volume: float, t: int = 0, magic: int = 7) -> OpenPosition:
    return OpenPosition(ticket, POSITION_TYPE_BUY, volume, t or ticket, magic, "EURUSD")


def _short(ticket: int, volume: float, t: int = 0, magic: int = 7) -> OpenPosition:
    return OpenPosition(ticket, POSITION_TYPE_SELL, volume, t or ticket, magic, "EURUSD")


def _plan(
    positions: list[OpenPosition],
    direction: int,
    volume: float,
    *,
    hedging: bool = True,
    policy: OppositePolicy = OppositePolicy.REDUCE,
    step: float = 0.01,
    vmin: float = 0.01,
) -> PositionPlan | Denied:
    return plan_position_effect(
        positions,
        direction=direction,
        volume=volume,
        volume_step=step,
        volume_min=vmin,
        hedging=hedging,
        policy=policy,
    )


@pytest.mark.parametrize(
    ("positions", "direction", "volume", "legs", "reducing", "opening"),
    [
        # The case: long 1.00, sell 0.50 closes half of it, opens nothing.
        ([_long(11, 1.0)], -1, 0.5, [LegPlan(CLOSE, 0.5, 11)], 0.5, 0.0),
        # Full close.
        ([_long(11, 1.0)], -1, 1.0, [LegPlan(CLOSE, 1.0, 11)], 1.0, 0.0),
        # Reverse: close all, open the remainder.
        ([_long(11, 1.0)], -1, 1.3, [LegPlan(CLOSE, 1.0, 11), LegPlan(OPEN, 0.3)], 1.0, 0.3),
        # FIFO: oldest first by open time, whatever the tickets say; the last one partly.
        (
            [_long(30, 0.2, t=3), _long(10, 0.3, t=1), _long(20, 0.4, t=2)],
            -1,
            0.6,
            [LegPlan(CLOSE, 0.3, 10), LegPlan(CLOSE, 0.3, 20)],
            0.6,
            0.0,
        ),
        # Same direction: nothing to reduce.
        ([_long(11, 1.0)], 1, 0.5, [LegPlan(OPEN, 0.5)], 0.0, 0.5),
        # Flat book.
        ([], -1, 0.07, [LegPlan(OPEN, 0.07)], 0.0, 0.07),
        # Float noise never makes a close bigger than its position: 0.1 + 0.2 lots.
        (
            [_short(1, 0.1), _short(2, 0.2)],
            1,
            0.3,
            [LegPlan(CLOSE, 0.1, 1), LegPlan(CLOSE, 0.2, 2)],
            0.3,
            0.0,
        ),
    ],
)
def test_hedging_reduce_first(
    positions: list[OpenPosition],
    direction: int,
    volume: float,
    legs: list[LegPlan],
    reducing: float,
    opening: float,
) -> None:
    plan = _plan(positions, direction, volume)
    assert isinstance(plan, PositionPlan)
    assert list(plan.legs) == legs
    assert (plan.reducing_volume, plan.opening_volume) == (reducing, opening)
    assert plan.reduces_only is (opening == 0)
    assert round(sum(leg.volume for leg in plan.legs), 8) == volume  # never re-sized


def test_hedge_policy_opens_beside_the_opposite_position() -> None:
    plan = _plan([_long(11, 1.0)], -1, 0.5, policy=OppositePolicy.HEDGE)
    assert isinstance(plan, PositionPlan)
    assert plan.legs == (LegPlan(OPEN, 0.5),)
    assert (plan.reducing_volume, plan.opening_volume) == (0.0, 0.5)


@pytest.mark.parametrize(
    ("positions", "direction", "volume", "reducing", "opening"),
    [
        ([_long(11, 1.0)], -1, 0.5, 0.5, 0.0),
        ([_long(11, 1.0)], -1, 1.5, 1.0, 0.5),
        ([_long(11, 1.0)], 1, 0.5, 0.0, 0.5),
        ([], -1, 0.5, 0.0, 0.5),
    ],
)
def test_netting_is_one_order_whose_reducing_part_is_known(
    positions: list[OpenPosition], direction: int, volume: float, reducing: float, opening: float
) -> None:
    plan = _plan(positions, direction, volume, hedging=False)
    assert isinstance(plan, PositionPlan)
    assert plan.legs == (LegPlan(OPEN, volume),)
    assert (plan.reducing_volume, plan.opening_volume) == (reducing, opening)


def test_a_leg_below_the_minimum_volume_is_refused_not_resized() -> None:
    # Long 1.00, sell 1.05 with volume_min 0.1: the remainder 0.05 could not be opened.
    denied = _plan([_long(11, 1.0)], -1, 1.05, vmin=0.1)
    assert isinstance(denied, Denied)
    assert denied.reason is RejectionReason.INVALID_VOLUME
    assert "opening remainder of 0.05 lots" in denied.detail


def test_owned_positions_by_scope() -> None:
    mine, theirs = _long(1, 0.1, magic=7), _long(2, 0.1, magic=99)
    other_symbol = OpenPosition(3, POSITION_TYPE_BUY, 0.1, 3, 7, "GBPUSD")
    rows = [mine, theirs, other_symbol]
    engine = owned_positions(rows, symbol="EURUSD", magic=7, scope=PositionScope.ENGINE)
    account = owned_positions(rows, symbol="EURUSD", magic=7, scope=PositionScope.ACCOUNT)
    assert engine == [mine]
    assert account == [mine, theirs]


def test_direction_must_be_a_side() -> None:
    with pytest.raises(ValueError, match="direction"):
        _plan([], 0, 0.1)
