"""What a log line may not carry: secrets in any encoding, auth-like query parameters, and
control or line-separator characters that would let a client forge log lines.

The access log shows each request's path and query as the client sent them (the path
percent-decoded by the server), so every rule here assumes the text is hostile.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import unquote_plus

REDACTED = "[redacted]"

MIN_SECRET_LENGTH = 4
"""Shorter 'secrets' would mask ordinary words; settings refuse such tokens in production."""

_BEARER = re.compile(r"(?i)\b(bearer\s+)(?!tokens?\b)[A-Za-z0-9._~+/=-]+")
"""A credential after "Bearer" (not the word "token", as in "no bearer token")."""

# --- known secrets, in any percent-encoding ---------------------------------------------


def secret_pattern(secret: str) -> re.Pattern[str]:
    """Matches `secret` written plainly or with any of its characters percent-encoded (upper
    or lower hex, encoded again any number of times: `%2541`), a space also as `+`. A
    client may encode a token in a query string however it likes; the log must not care."""
    parts = []
    for char in secret:
        encoded = "".join(f"%(?:25)*{byte:02X}" for byte in char.encode("utf-8", "replace"))
        options = [re.escape(char), f"(?i:{encoded})"] + (["\\+"] if char == " " else [])
        parts.append("(?:" + "|".join(options) + ")")
    return re.compile("".join(parts))


# --- auth-like query parameters ----------------------------------------------------------

_SENSITIVE_WORDS = frozenset({"key", "pwd", "pass", "sig", "apikey", "jwt", "sid"})
"""Parameter names (or `_`/`-`-separated words of them) that carry a credential."""
_SENSITIVE_PARTS = ("token", "secret", "password", "passwd", "apikey", "auth", "credential")
"""Substrings of a squashed, lower-cased name that make it auth-like (`access_token`,
`X-Api-Key`, `client_secret`, `Authorization`)."""

_QUERY = re.compile(r"(?:\?|%(?:25)*3F)(\S*)", re.IGNORECASE)
"""A query string in a line: from `?` (or an encoded `?`, as a decoded path may show it)
to the next blank, which ends the request target in an access-log line."""
_PAIR_SEPARATOR = re.compile(r"([&;?])")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_.\-\[\]]{1,64}")
_DECODE_ROUNDS = 4
_MAYBE_SENSITIVE = re.compile(
    "|".join(sorted({*_SENSITIVE_WORDS, *_SENSITIVE_PARTS, "pass"})), re.IGNORECASE
)
"""A cheap first look: a name none of these words occur in is not sensitive."""


def is_sensitive_name(name: str) -> bool:
    """True for a query parameter name that carries a credential (case-insensitive)."""
    if not _MAYBE_SENSITIVE.search(name):
        return False
    words = [w for w in re.split(r"[^a-z0-9]+", name.strip().lower()) if w]
    if any(word in _SENSITIVE_WORDS for word in words):
        return True
    squashed = "".join(words)
    return any(part in squashed for part in _SENSITIVE_PARTS)


def _decode(text: str) -> str:
    """`text` percent- and plus-decoded until it no longer changes (double encoding too)."""
    if "%" not in text and "+" not in text:
        return text
    for _ in range(_DECODE_ROUNDS):
        decoded = unquote_plus(text, errors="replace")
        if decoded == text:
            break
        text = decoded
    return text


def _pair_is_sensitive(raw: str) -> bool:
    # Decoded, one raw pair may hold more pairs (`next=%2Fx%3Ftoken%3D...`, `token%3D...`):
    # any auth-like name among them makes the whole pair sensitive.
    decoded = _decode(raw)
    return any(is_sensitive_name(piece.partition("=")[0]) for piece in re.split(r"[&;?#]", decoded))


def _redact_pair(raw: str) -> str:
    if not _pair_is_sensitive(raw):
        return raw
    name, sep, _ = raw.partition("=")
    # The name stays only when it is plainly written (so it cannot hide the value itself).
    return f"{name}={REDACTED}" if sep and _PLAIN_NAME.fullmatch(name) else REDACTED


def _redact_query(match: re.Match[str]) -> str:
    start = match.group(0)[: match.start(1) - match.start(0)]
    pieces = _PAIR_SEPARATOR.split(match.group(1))
    return start + "".join(
        piece if index % 2 else _redact_pair(piece) for index, piece in enumerate(pieces)
    )


def redact_query_strings(text: str) -> str:
    """`text` with the values of auth-like query parameters replaced by `[redacted]`."""
    if "?" not in text and "%" not in text:
        return text
    return _QUERY.sub(_redact_query, text)


# --- control characters -----------------------------------------------------------------

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
"""Every Unicode Cc character, plus the line and paragraph separators: each ends a line
for some reader (a terminal, `str.splitlines`, a log shipper)."""
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """`text` on one line: control and line-separator characters written as escapes."""
    return _UNSAFE.sub(_escape, text)


_JSON_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029]")


def escape_json_line(line: str) -> str:
    """A `json.dumps` line with the characters it leaves raw (DEL, C1 controls, U+2028,
    U+2029) escaped too; valid JSON either way, as they can only be inside strings."""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group(0)):04x}", line)


# --- all of it ---------------------------------------------------------------------------


class Redactor:
    """Masks known secrets (in any percent-encoding), auth-like query parameters and
    bearer credentials in a text."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so that a secret containing another is masked whole.
        ordered = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)
        self._secrets = ordered
        self._patterns = [secret_pattern(secret) for secret in ordered]

    def __call__(self, text: str) -> str:
        if "%" in text or "+" in text:
            for pattern in self._patterns:
                text = pattern.sub(REDACTED, text)
        else:  # nothing encoded: the plain replace is the same, at a tenth of the cost
            for secret in self._secrets:
                text = text.replace(secret, REDACTED)
        text = redact_query_strings(text)
        if "bearer" not in text.lower():  # no bearer credential either
            return text
        return _BEARER.sub(r"\1" + REDACTED, text)


__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "Redactor",
    "escape_controls",
    "escape_json_line",
    "is_sensitive_name",
    "redact_query_strings",
    "secret_pattern",
]
