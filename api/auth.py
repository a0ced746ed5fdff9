"""Bearer tokens and roles.

Tokens come from `EE_API_TOKENS` (`role:token,role:token`); roles are ordered viewer < trader
< admin, and a role may do everything a weaker one may. Only SHA-256 digests of the tokens
are kept, every configured digest is compared with `secrets.compare_digest` (no early exit),
and a caller is named by a short digest prefix, never by the token itself, so journals and
logs can say who halted trading without holding a credential.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from core.settings import API_ROLES

GENERATED_TOKEN_BYTES = 32
"""Entropy of the admin token `serve` makes when none is configured (256 bits)."""


def role_rank(role: str) -> int:
    """0 for viewer, 1 for trader, 2 for admin; ValueError for anything else."""
    if role not in API_ROLES:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(API_ROLES)}")
    return API_ROLES.index(role)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who called: the token's role and a stable name derived from (not containing) it."""

    role: str
    identity: str

    def allows(self, needed: str) -> bool:
        return role_rank(self.role) >= role_rank(needed)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def token_identity(role: str, token: str) -> str:
    """`role:1a2b3c4d5e6f`: the role and the first 12 hex digits of the token's SHA-256."""
    return f"{role}:{_digest(token).hex()[:12]}"


class TokenTable:
    """The configured tokens, as digests, and the lookup that turns a token into a caller."""

    def __init__(self, tokens: Mapping[str, str]) -> None:
        """`tokens` maps token -> role (what `Settings.api_token_roles()` returns)."""
        for role in tokens.values():
            role_rank(role)
        self._entries = tuple(
            (_digest(token), Principal(role, token_identity(role, token)))
            for token, role in tokens.items()
        )

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, token: str) -> Principal | None:
        """The caller holding `token`, or None. Time does not depend on which token matched."""
        offered = _digest(token)
        found: Principal | None = None
        for digest, principal in self._entries:
            if secrets.compare_digest(digest, offered):
                found = principal
        return found


def generate_admin_token() -> str:
    """A fresh random token for the admin role (URL-safe text)."""
    return secrets.token_urlsafe(GENERATED_TOKEN_BYTES)


__all__ = ["Principal", "TokenTable", "generate_admin_token", "role_rank", "token_identity"]
