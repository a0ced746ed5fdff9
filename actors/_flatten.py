"""Flatten: close every position the engine owns (all symbols, or one), each by its ticket.

Each close is one execution of an approved trade carrying `position_ticket`, submitted
through the normal pipeline: written ahead, sent through the BrokerActor's gate as a
reducing send, reconciled like any leg after an ambiguous send or a crash. Nothing is
ever opened: a close by ticket of a position already closed is answered 10036 and settled
without a send into a new position.

Idempotent: the positions are read fresh from the terminal (through the BrokerActor,
filtered by magic per `EE_POSITION_SCOPE`), so a second flatten on a flat book sends
nothing; a position whose close is still in flight (an execution not final, e.g. UNKNOWN
after a timed-out send) is skipped, never closed twice; a later flatten, after that close
was reconciled, closes it only if it is still open.

The operation is journaled as one FLATTEN event (who, when, why, the positions and the
executions) once its closes are submitted, and a FLATTEN_DONE event with their outcome.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pykka

from actors.broker import BrokerProxy
from actors.persistence import write_and_wait
from core.clock import Clock, utc_micros
from core.enums import ExecutionStatus, JournalEventType, PositionScope
from core.errors import TerminalNotReadyError
from core.models import ExecutionConfirmation, ExecutionLog
from core.rules.positions import OpenPosition
from storage.ops import WriteOp

log = logging.getLogger(__name__)

FLATTEN = JournalEventType.FLATTEN
FLATTEN_DONE = JournalEventType.FLATTEN_DONE
RPM_VERSION = "engine-flatten"
"""`rpm_version` of the closes a flatten makes: they are the engine's, not the RPM's."""


@dataclass(frozen=True, slots=True)
class FlattenPorts:
    """What a flatten uses of the engine (passed in, so the module stays small)."""

    broker: Callable[[], BrokerProxy]
    persistence: Callable[[], pykka.ActorRef[Any]]
    submit: Callable[[dict[str, Any]], pykka.Future[ExecutionConfirmation]]
    non_final: Callable[[], Sequence[ExecutionLog]]
    new_id: Callable[[str], str]
    clock: Clock
    magic: int
    scope: PositionScope
    ask_timeout: float
    wait: float


def in_flight_closes(records: Sequence[ExecutionLog]) -> set[int]:
    """Tickets of positions that an execution not yet final is closing."""
    tickets: set[int] = set()
    for record in records:
        trade = (record.rpm_payload.get("decision") or {}).get("approved_trade") or {}
        ticket = trade.get("position_ticket") if isinstance(trade, dict) else None
        if isinstance(ticket, int):
            tickets.add(ticket)
        for leg in record.legs:
            if leg.position_ticket is not None:
                tickets.add(leg.position_ticket)
    return tickets


def flatten(ports: FlattenPorts, symbol: str | None, *, reason: str, by: str) -> dict[str, Any]:
    """Close the owned positions (of `symbol`, or all) and report what happened."""
    operation = ports.new_id("flatten")
    broker = ports.broker()
    positions = broker.positions_now(symbol).get(timeout=ports.ask_timeout)
    if positions is None:
        raise TerminalNotReadyError("flatten: the open positions could not be read")
    owned = [
        p
        for p in positions
        if (symbol is None or p.symbol == symbol)
        and (ports.scope is PositionScope.ACCOUNT or p.magic == ports.magic)
    ]
    busy = in_flight_closes(ports.non_final())
    to_close = [p for p in owned if p.ticket not in busy]
    skipped = sorted(p.ticket for p in owned if p.ticket in busy)
    contract = _contract_sizes(broker, {p.symbol for p in to_close}, ports.ask_timeout)
    submitted: list[tuple[OpenPosition, float, pykka.Future[ExecutionConfirmation]]] = []
    for position in to_close:
        size = contract.get(position.symbol)
        if size is None:
            log.error("flatten %s: no contract size for %s", operation, position.symbol)
            continue
        message = _close_message(operation, position, size, ports.clock)
        submitted.append((position, size, ports.submit(message)))
    executions = [_execution_row(p, size, _answer(f, ports.wait)) for p, size, f in submitted]
    _journal(
        ports,
        FLATTEN,
        {
            "operation": operation,
            "by": by,
            "reason": reason,
            "symbol": symbol,
            "positions": [_position_row(p) for p in owned],
            "skipped_in_flight": skipped,
            "executions": [
                {"execution_id": e["execution_id"], "position_ticket": e["position_ticket"]}
                for e in executions
            ],
        },
    )
    closed = [e for e in executions if e["status"] in _FILLED]
    profits = _profits(broker, [e["position_ticket"] for e in closed], ports.ask_timeout)
    report: dict[str, Any] = {
        "operation": operation,
        "by": by,
        "reason": reason,
        "symbol": symbol,
        "positions_found": len(owned),
        "positions_closed": len(closed),
        "volume_closed": round(sum(e["executed_lots"] for e in executions), 8),
        "realized_profit": round(sum(profits.values()), 2) if profits else None,
        "skipped_in_flight": skipped,
        "executions": executions,
    }
    _journal(
        ports,
        FLATTEN_DONE,
        {k: report[k] for k in report if k not in ("by", "reason", "symbol")},
    )
    log.warning(
        "flatten %s (by %s, %s): %d of %d positions closed",
        operation,
        by,
        reason,
        len(closed),
        len(owned),
    )
    return report


_FILLED = {ExecutionStatus.FILLED.value, ExecutionStatus.PARTIALLY_FILLED.value}


def _close_message(
    operation: str, position: OpenPosition, contract_size: float, clock: Clock
) -> dict[str, Any]:
    return {
        "decision": {
            "status": "APPROVED",
            "decision_id": f"{operation}-{position.ticket}",
            "approved_trade": {
                "symbol": position.symbol,
                "direction": -position.direction,
                "position_units": round(position.volume * contract_size, 6),
                "position_ticket": position.ticket,
            },
        },
        "rpm_version": RPM_VERSION,
        "timestamp": clock.now().isoformat(),
    }


def _contract_sizes(broker: BrokerProxy, symbols: set[str], timeout: float) -> dict[str, float]:
    sizes: dict[str, float] = {}
    for symbol in sorted(symbols):
        spec = broker.symbol_spec(symbol).get(timeout=timeout)
        if spec is not None:
            sizes[symbol] = float(spec.trade_contract_size)
    return sizes


def _answer(
    future: pykka.Future[ExecutionConfirmation], wait: float
) -> ExecutionConfirmation | str:
    try:
        return future.get(timeout=wait)
    except pykka.Timeout:
        return "not final within the wait: it is reconciled like any execution"
    except Exception as exc:  # the execution's own failure: reported, the rest go on
        return f"{type(exc).__name__}: {exc}"


def _execution_row(
    position: OpenPosition, contract_size: float, confirmation: ExecutionConfirmation | str
) -> dict[str, Any]:
    if isinstance(confirmation, str):
        return {
            "execution_id": None,
            "position_ticket": position.ticket,
            "symbol": position.symbol,
            "status": ExecutionStatus.UNKNOWN.value,
            "executed_lots": 0.0,
            "rejection_reason": None,
            "details": confirmation,
        }
    legs = confirmation.legs
    lots = (
        sum(leg.filled_volume for leg in legs)
        if legs
        else confirmation.executed_units / contract_size
    )
    return {
        "execution_id": confirmation.execution_id,
        "position_ticket": position.ticket,
        "symbol": position.symbol,
        "status": confirmation.status.value,
        "executed_lots": round(lots, 8),
        "rejection_reason": (
            confirmation.rejection_reason.value if confirmation.rejection_reason else None
        ),
        "details": confirmation.rejection_details,
    }


def _position_row(position: OpenPosition) -> dict[str, Any]:
    return {
        "ticket": position.ticket,
        "symbol": position.symbol,
        "direction": position.direction,
        "volume": position.volume,
    }


def _profits(broker: BrokerProxy, tickets: list[int], timeout: float) -> dict[int, float]:
    """Realized P&L per closed position, where its closing deals report `profit`."""
    if not tickets:
        return {}
    try:
        found: dict[int, float] = broker.closing_profits(tickets).get(timeout=timeout)
    except (pykka.ActorDeadError, pykka.Timeout):
        return {}
    return found


def _journal(ports: FlattenPorts, event_type: JournalEventType, payload: dict[str, Any]) -> None:
    op = WriteOp(
        execution_id=None,
        event_type=event_type,
        payload=payload,
        engine_time_us=utc_micros(ports.clock.now()),
    )
    write_and_wait(ports.persistence(), [op], ports.ask_timeout)


__all__ = ["FLATTEN", "FLATTEN_DONE", "FlattenPorts", "flatten", "in_flight_closes"]
