"""No order ticket is ever stored on two executions.

A terminal that lost its history (a restarted simulator; a real terminal pointed at a new
account) hands out tickets it handed out before. Storing such a ticket on a second
execution would make two executions claim one order, and reconciliation would settle
both on it. `TicketClaims` checks every projection that carries an `order_id` before the
write: a ticket another execution holds refuses the write (`TicketConflictError`).

Each execution claims its ticket once, so the check reads the database only for tickets
not seen before (one indexed query per batch that has any, in the batch's own transaction:
no connection of its own to check out, ping and roll back); the single writer keeps the
owners it has seen.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, Engine, select
from sqlalchemy.exc import SQLAlchemyError

from core.errors import PersistenceUnavailableError, TicketConflictError
from storage.ops import WriteOp
from storage.schema import execution_logs

_MAX_KNOWN = 200_000
"""Owners kept in memory; past this the map starts again (the database still knows them)."""


def claimed_tickets(engine: Engine, account: str | None = None) -> set[int]:
    """Every order ticket some execution holds (reconciliation must not match another's);
    only `account`'s when given (each account's terminal numbers its own tickets)."""
    query = select(execution_logs.c.order_id).where(execution_logs.c.order_id.is_not(None))
    if account is not None:
        query = query.where(execution_logs.c.account == account)
    try:
        with engine.connect() as connection:
            return {int(ticket) for (ticket,) in connection.execute(query)}
    except SQLAlchemyError as exc:
        raise PersistenceUnavailableError(
            f"cannot read the claimed tickets: {type(exc).__name__}"
        ) from exc


class TicketClaims:
    """The (account, ticket) -> execution map of one writer (not thread-safe: the writer's
    thread). Tickets are per account: each account's terminal numbers its own orders."""

    def __init__(self) -> None:
        self._owner: dict[tuple[str, int], str] = {}

    def check(self, ops: Sequence[WriteOp], connection: Connection) -> dict[tuple[str, int], str]:
        """The batch's claims; raises `TicketConflictError` if one is another's ticket.
        Tickets not seen before are read on `connection` (the write's transaction)."""
        claims: dict[tuple[str, int], str] = {}
        for op in ops:
            record = op.projection
            if record is None or not record.order_id:
                continue
            first = claims.setdefault((record.account, record.order_id), record.execution_id)
            if first != record.execution_id:
                raise TicketConflictError(
                    ticket=record.order_id, owner=first, claimant=record.execution_id
                )
        unknown = [key for key in claims if key not in self._owner]
        if unknown:
            self._load(unknown, connection)
        for key, claimant in claims.items():
            owner = self._owner.get(key)
            if owner is not None and owner != claimant:
                raise TicketConflictError(ticket=key[1], owner=owner, claimant=claimant)
        return claims

    def written(self, claims: dict[tuple[str, int], str]) -> None:
        """The batch committed: its claims are the owners now."""
        if len(self._owner) + len(claims) > _MAX_KNOWN:
            self._owner.clear()
        self._owner.update(claims)

    def _load(self, keys: list[tuple[str, int]], connection: Connection) -> None:
        c = execution_logs.c
        query = select(c.account, c.order_id, c.execution_id).where(
            c.order_id.in_({ticket for _, ticket in keys})
        )
        for account, ticket, execution_id in connection.execute(query):
            self._owner.setdefault((str(account), int(ticket)), str(execution_id))


__all__ = ["TicketClaims"]
