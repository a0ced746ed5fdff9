"""Position volume that executions in flight are closing, shared by all of them.

The pure leg rules live in `core.rules.legs`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace

from core.enums import LegAction
from core.records import Preflight
from core.rules import Denied
from core.rules.positions import PositionPlan

_VOLUME_EPS = 1e-9


class PositionClaims:
    """Lots of open positions that executions in flight are closing, so that concurrent
    trades on one symbol plan against what is left, not against the same positions.

    A claim outlives its execution for the reads made before it ended: positions read
    before a close filled still show the closed volume (`positions_read_at`).
    """

    _KEEP_SECONDS = 120.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._claims: dict[str, tuple[dict[int, float], float | None]] = {}
        """execution_id -> (position ticket -> lots being closed, released_at or None)."""

    def plan(
        self,
        execution_id: str,
        pre: Preflight,
        planner: Callable[[Preflight], PositionPlan | Denied],
    ) -> PositionPlan | Denied:
        """`planner` on the preflight with the volume others are closing taken off its
        positions, atomically with recording this plan's own closes."""
        with self._lock:
            held: dict[int, float] = {}
            for tickets, released in self._claims.values():
                if released is not None and released <= pre.positions_read_at:
                    continue
                for ticket, lots in tickets.items():
                    held[ticket] = held.get(ticket, 0.0) + lots
            if held and pre.positions:
                left = [
                    replace(p, volume=round(p.volume - held.get(p.ticket, 0.0), 8))
                    for p in pre.positions
                ]
                pre = replace(pre, positions=tuple(p for p in left if p.volume > _VOLUME_EPS))
            plan = planner(pre)
            if not isinstance(plan, Denied):
                closes = {
                    leg.position: leg.volume
                    for leg in plan.legs
                    if leg.action is LegAction.CLOSE and leg.position is not None
                }
                if closes:
                    self._claims[execution_id] = (closes, None)
            return plan

    def release(self, execution_id: str, now: float) -> None:
        with self._lock:
            claim = self._claims.get(execution_id)
            if claim is not None and claim[1] is None:
                self._claims[execution_id] = (claim[0], now)
            stale = [
                key
                for key, (_, released) in self._claims.items()
                if released is not None and now - released > self._KEEP_SECONDS
            ]
            for key in stale:
                del self._claims[key]


__all__ = ["PositionClaims"]
