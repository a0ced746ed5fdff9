"""What the terminal told the engine, as data: specs, quotes, preflights, send outcomes,
send traces and order findings.

Records, not messages: the BrokerActor returns them and the execution core decides on them,
so they live in `core` (no actor, no I/O) and `actors.messages` re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.enums import RetcodeClass
from core.rules.positions import OpenPosition
from core.rules.reconcile import SendFate


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """The static part of `symbol_info`, cached for the life of the connection."""

    name: str
    digits: int
    point: float
    trade_contract_size: float
    volume_min: float
    volume_max: float
    volume_step: float
    trade_mode: int
    trade_exemode: int
    filling_mode: int
    visible: bool
    trade_stops_level: int = 0
    """Points a stop-loss / take-profit must keep from the closing price (0: none)."""


@dataclass(frozen=True, slots=True)
class Quote:
    bid: float
    ask: float
    time_msc: int
    """Broker-server time of the tick."""
    age_seconds: float
    """How old the tick is by the engine's clock, for the NO_MARKET_DATA check."""


@dataclass(frozen=True, slots=True)
class Preflight:
    """Everything validation needs from the terminal, gathered in one ask."""

    ready: bool
    not_ready_detail: str = ""
    spec: SymbolSpec | None = None
    quote: Quote | None = None
    margin_per_lot: float | None = None
    margin_free: float | None = None
    market_closed: bool = False
    symbol_detail: str = ""
    hedging: bool = False
    """The account is ACCOUNT_MARGIN_MODE_RETAIL_HEDGING (positions have their own tickets)."""
    positions: tuple[OpenPosition, ...] | None = None
    """The open positions of the symbol (every magic); None when they could not be read."""
    positions_read_at: float = 0.0
    """When `positions` were read (the engine's monotonic clock)."""


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """What one `place_order` or `remove_order` ended as, classified."""

    klass: RetcodeClass
    retcode: int | None
    order: int = 0
    deal: int = 0
    volume: float = 0.0
    price: float = 0.0
    bid: float = 0.0
    ask: float = 0.0
    comment: str = ""
    request_id: int = 0
    last_error: tuple[int, str] | None = None
    request: dict[str, Any] = field(default_factory=dict)
    halted: bool = False
    """True when nothing was sent because trading is halted."""
    not_sent: bool = False
    """True when the send certainly never reached `order_send` and will not be tried
    again (the terminal did not answer within `EE_TERMINAL_WAIT_SECONDS`, or the broker
    was replaced): the execution ends REJECTED / NOT_SENT with `comment` as its reason."""

    @property
    def sent(self) -> bool:
        return bool(self.request) and not self.halted


@dataclass(frozen=True, slots=True)
class SendTrace:
    """One send as the BrokerActor saw it (`BrokerActor.send_trace`), for reconciliation.

    seq counts order_sends of this BrokerActor as they start; `fence` is the highest seq
    whose send came back with a definite answer from the terminal (a retcode that is not
    ambiguous); `broker` names the BrokerActor incarnation the numbers belong to.
    For an UNKNOWN fate `seq` is the last number given out: later sends have higher ones.
    started_mono: engine monotonic time at which order_send actually started (not queued).
    """

    fate: SendFate
    broker: int
    fence: int
    seq: int = 0
    started_mono: float | None = None
    ended_mono: float | None = None


@dataclass(frozen=True, slots=True)
class Deal:
    ticket: int
    order: int
    volume: float
    price: float
    time_msc: int
    position_id: int


@dataclass(frozen=True, slots=True)
class OrderFinding:
    """What the terminal knows about one of our orders (by poll or by reconciliation)."""

    ticket: int
    found: bool
    open: bool
    """Still working at the server (PLACED, PARTIAL and not yet done)."""
    state: int | None
    volume_initial: float
    filled_volume: float
    vwap: float | None
    deals: tuple[Deal, ...] = ()
    time_msc: int | None = None

    @property
    def done(self) -> bool:
        return self.found and not self.open


__all__ = ["Deal", "OrderFinding", "Preflight", "Quote", "SendOutcome", "SendTrace", "SymbolSpec"]
