"""The logging setup: JSON lines on request, and secrets masked whatever the format."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from api.logs import REDACTED, configure_logging

SECRET = "s3cret-token-value"


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_carry_time_level_logger_and_message() -> None:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    logging.getLogger("ee.test").info("filled %s", "EURUSD")
    logging.getLogger("ee.test").debug("not at INFO")
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["level"] == "INFO"
    assert entry["logger"] == "ee.test"
    assert entry["message"] == "filled EURUSD"
    assert entry["time"].endswith("+00:00")


@pytest.mark.usefixtures("restore_logging")
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_secrets_and_bearer_credentials_are_masked(log_format: str) -> None:
    stream = io.StringIO()
    configure_logging(log_format, "INFO", secrets=[SECRET], stream=stream)
    log = logging.getLogger("ee.test")
    log.warning("token %s in a message", SECRET)
    log.warning("header Authorization: Bearer abc.DEF-123_x")
    try:
        raise ValueError(f"failed with {SECRET}")
    except ValueError:
        log.exception("with a traceback")
    text = stream.getvalue()
    assert SECRET not in text
    assert "abc.DEF-123_x" not in text
    assert text.count(REDACTED) == 3


@pytest.mark.usefixtures("restore_logging")
def test_configuring_again_replaces_the_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    configure_logging("text", "INFO", stream=first)
    configure_logging("text", "INFO", stream=second)
    logging.getLogger("ee.test").info("once")
    assert first.getvalue() == ""
    assert second.getvalue().count("once") == 1
