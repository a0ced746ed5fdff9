"""Logging for the server and the command line: text or one JSON object per line.

`EE_LOG_FORMAT=json` gives `{"time", "level", "logger", "message"[, "exception"]}` lines for
log shippers. Whatever the format, a filter on the handler masks every secret it was told
about (API tokens, the MT5 password, the database password) in any percent-encoding, the
values of auth-like query parameters (`?access_token=...`) and anything shaped like a bearer
credential, in the message and in tracebacks. A record is one line whatever its message
holds: control and line-separator characters are escaped (JSON: by the encoder, and U+2028,
U+2029 and C1 controls too), so a client's path cannot forge a line.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TextIO

from api.redact import REDACTED, Redactor, escape_controls, escape_json_line


class RedactingFilter(logging.Filter):
    """Replaces known secrets (in any percent-encoding), auth-like query parameters and
    bearer credentials in a record with `[redacted]` (see `api.redact`)."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.redact = Redactor(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, with the engine's UTC time in microseconds."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return escape_json_line(json.dumps(entry, ensure_ascii=False))


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class TextFormatter(logging.Formatter):
    """`TEXT_FORMAT`, one record per line whatever the message holds: control and
    line-separator characters are escaped (a client's path must not forge a line), and a
    traceback's lines are indented, so that only a record's own line starts at column 0."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        message = record.message
        record.message = escape_controls(message)
        try:
            return super().formatMessage(record)
        finally:
            record.message = message

    def formatException(self, ei: Any) -> str:  # noqa: N802 - logging's name
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:  # noqa: N802 - logging's name
        return _indented(stack_info)

    def format(self, record: logging.LogRecord) -> str:
        # The filter may have set exc_text with the plain formatter: indent it here.
        text = record.exc_text
        if text and not text.startswith(_INDENT):
            record.exc_text = _indented(text)
        return super().format(record)


_INDENT = "    "


def _indented(text: str) -> str:
    return "\n".join(_INDENT + escape_controls(line) for line in text.split("\n"))


def configure_logging(
    log_format: str = "text",
    level: str = "INFO",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send every log record (uvicorn's too) to one handler on `stream` (stderr); returns it.

    Replaces the root logger's handlers, so calling it again reconfigures instead of
    duplicating lines.
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Python's warnings would go to stderr raw: through the handler they are one line (JSON).
    logging.captureWarnings(True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    return handler


__all__ = ["REDACTED", "JsonFormatter", "RedactingFilter", "TextFormatter", "configure_logging"]
