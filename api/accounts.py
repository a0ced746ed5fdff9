"""The accounts at the HTTP door: which ones a message may name, and where another
instance's account is traded.

The app holds the engine's `Accounts` (`app.state.accounts`, from `core.accounts`); a POSTed
RPM message naming another account is refused with 422 before it reaches the engine. An
`AccountNotOwnedError` (the account's lease is held by another instance) answers 307 to
the owner's advertised URL when one is known (`redirect_for`), else 503 naming the owner.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse, Response

from core.accounts import Accounts
from core.errors import AccountNotOwnedError, InvalidRequestError


async def get_accounts(request: Request) -> Accounts:
    accounts: Accounts = request.app.state.accounts
    return accounts


AccountsDep = Annotated[Accounts, Depends(get_accounts)]


def check_account(accounts: Accounts, name: str) -> None:
    """Nothing when this engine has account `name`; InvalidRequestError (422) naming it and
    the accounts there are, else (the engine's answer to such a message is UNKNOWN_ACCOUNT)."""
    if name in accounts:
        return
    known = ", ".join(accounts.names)
    problem = f"account: unknown account {name!r} (this engine trades: {known})"
    raise InvalidRequestError(f"invalid RPM message: {problem}", errors=(problem,))


def redirect_for(error: AccountNotOwnedError, target: str) -> Response | None:
    """A 307 to the owner's advertised URL followed by `target` (the request's path and query),
    or None when the owner advertises none. 307 keeps the method and the body, so a POSTed
    message is sent on unchanged; the location is the owner's configured base URL, never one
    built from the request's Host header."""
    base = error.advertise_url
    if not base:
        return None
    if not target.startswith("/"):
        target = "/" + target
    return RedirectResponse(base.rstrip("/") + target, status_code=307)


__all__ = ["AccountsDep", "check_account", "get_accounts", "redirect_for"]
