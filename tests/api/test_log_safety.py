"""What reaches the log from a hostile client: no credential in any encoding, no forged line,
and with EE_LOG_FORMAT=json nothing on stderr but JSON lines.

The end-to-end tests drive `execution-engine serve` over real sockets with raw request
targets (http.client sends them as written; httpx would re-encode them)."""

from __future__ import annotations

import http.client
import io
import json
import logging
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, unquote_plus, urlsplit

import pytest

from api.logs import REDACTED, configure_logging
from api.redact import Redactor, escape_controls, redact_query_strings
from tests.api._server import BIN, running, server_env

TOKEN = "viewer-token-for-log-tests-0123"
"""The one configured API token."""

UNLISTED = {
    "api_key": "unlisted-api-key-1",
    "apikey": "unlisted-api-key-2",
    "key": "unlisted-key-3",
    "password": "unlisted pass 4",
    "secret": "unlisted-secret-5",
    "auth": "unlisted-auth-6",
    "X-Api-Key": "unlisted-api-key-7",
    "client_secret": "unlisted-secret-8",
}
"""Credentials the engine does not know, in auth-like query parameters."""


def _every_byte(text: str, hex_format: str = "%{:02X}") -> str:
    return "".join(hex_format.format(byte) for byte in text.encode())


TOKEN_QUERIES = [
    f"access_token={TOKEN}",
    f"access_token={_every_byte(TOKEN)}",
    f"access_token={_every_byte(TOKEN, '%{:02x}')}",
    f"ACCESS%5FTOKEN={_every_byte(TOKEN)}&limit=5",
    f"limit=5&Token={quote(TOKEN)}",
    f"access_token%3D{_every_byte(TOKEN)}",
    f"next=%2Fhistory%3Faccess_token%3D{TOKEN}",
    f"q={quote(_every_byte(TOKEN), safe='')}",  # the known token, twice encoded, anywhere
    f"Authorization=Bearer%20{TOKEN}",
    *(f"{name}={quote(value)}" for name, value in UNLISTED.items()),
    "password=unlisted+pass+4",
]

FORGED = "2026-01-01 00:00:00,000 CRITICAL forged: the engine halted"
HOSTILE_PATH = (
    "/executions/e%1B[31mESC%0BVT%0CFF%C2%85NEL%E2%80%A8LS%E2%80%A9PS%7FDEL%0D%0A" + quote(FORGED)
)
"""ESC, VT, FF, U+0085, U+2028, U+2029, DEL and CR LF, then what a forged line would say."""
LINE_BREAKERS = "\x0b\x0c\x1b\x1c\x1d\x1e\x85\u2028\u2029\r"

TEXT_RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \S+: ")


def _decoded(text: str) -> str:
    for _ in range(4):
        text = unquote_plus(text)
    return text


def _raw_get(url: str, target: str, headers: dict[str, str] | None = None) -> int:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.putrequest("GET", target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.fixture(scope="module", params=["text", "json"])
def served_log(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, str]:
    """A server on SQLite hit by the hostile requests, once per format for the module's
    tests; returns (format, its whole stderr)."""
    log_format = str(request.param)
    tmp_path = tmp_path_factory.mktemp(f"log_safety_{log_format}")
    env = {"EE_API_TOKENS": f"viewer:{TOKEN}", "EE_LOG_FORMAT": log_format}
    args = ["execution-engine", "serve", "--port", "0"]
    with running(args, tmp_path, env) as server:
        for query in TOKEN_QUERIES:
            assert _raw_get(server.url, f"/history?{query}") == 401, query
        assert _raw_get(server.url, HOSTILE_PATH) == 401
        assert _raw_get(server.url, HOSTILE_PATH, {"Authorization": "Bearer wrong-token"}) == 401
        assert _raw_get(server.url, "/nowhere%E2%80%A8" + quote(FORGED)) == 404
    return log_format, (tmp_path / "server.stderr").read_text(encoding="utf-8")


def test_no_credential_reaches_the_log_in_any_encoding(served_log: tuple[str, str]) -> None:
    _, log = served_log
    assert "/history?" in log  # the access log is on
    decoded = _decoded(log)
    for secret in [TOKEN, *UNLISTED.values()]:
        assert secret not in log
        assert secret not in decoded, secret
    assert "limit=5" in log  # other parameters stay readable


def test_a_hostile_path_cannot_forge_a_log_line(served_log: tuple[str, str]) -> None:
    log_format, log = served_log
    lines = log.split("\n")[:-1]
    assert lines
    for line in lines:
        assert not any(char in line for char in LINE_BREAKERS), repr(line)
        assert len(line.splitlines()) == 1
        if log_format == "json":
            entry = json.loads(line)  # every stderr line, start-up ones too
            assert set(entry) >= {"time", "level", "logger", "message"}
        else:
            assert TEXT_RECORD.match(line) or line.startswith("    "), repr(line)
    if log_format == "json":
        messages = [json.loads(line)["message"] for line in lines]
        # Escaped for the line, the message itself is kept whole.
        assert any("e\x1b[31mESC\x0bVT\x0cFF\x85NEL\u2028LS\u2029PS\x7fDEL" in m for m in messages)
    else:
        assert "e\\x1b[31mESC\\x0bVT\\x0cFF\\x85NEL\\u2028LS\\u2029PS\\x7fDEL" in log
    assert not any(line.startswith(FORGED) for line in lines)


def test_a_start_up_failure_is_a_json_line_too(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [str(BIN / "execution-engine"), "serve", "--port", str(port)],
            cwd=tmp_path,
            env=server_env({"EE_LOG_FORMAT": "json"}),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 1
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    assert entries[-1]["level"] == "CRITICAL"
    assert f"127.0.0.1:{port}" in entries[-1]["message"]


# --- the rules, in process --------------------------------------------------------------


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
    logging.captureWarnings(False)


@pytest.mark.parametrize(
    "written",
    [
        "tok en-Val/ue",
        "tok%20en-Val/ue",
        "tok+en-Val/ue",
        "%74%6F%6B%20%65%6E%2D%56%61%6C%2F%75%65",
        "%74%6f%6b%20%65%6e%2d%56%61%6c%2f%75%65",
        "t%6Fk%2520en-Val%252Fue",
    ],
)
def test_a_known_secret_is_masked_however_it_is_encoded(written: str) -> None:
    redact = Redactor(["tok en-Val/ue"])
    assert redact(f"GET /x/{written}/y") == f"GET /x/{REDACTED}/y"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("GET /h?access_token=abc&x=1 HTTP/1.1", f"GET /h?access_token={REDACTED}&x=1 HTTP/1.1"),
        ("/h?x=1;API_KEY=abc", f"/h?x=1;API_KEY={REDACTED}"),
        ("/h?x-api-key=abc", f"/h?x-api-key={REDACTED}"),
        ("/h?Authorization=Basic%20abc", f"/h?Authorization={REDACTED}"),
        ("/h?pass%77ord=abc&a=b", f"/h?{REDACTED}&a=b"),
        ("/h?token%3Dabc", f"/h?{REDACTED}"),
        ("/h%3Fsecret%3Dabc", f"/h%3F{REDACTED}"),
        ("/h?a=1?key=abc", f"/h?a=1?key={REDACTED}"),
        ("/h?monkey=1&keyword=2&author=3", f"/h?monkey=1&keyword=2&author={REDACTED}"),
        ("no query here", "no query here"),
    ],
)
def test_auth_like_query_parameters_are_masked(line: str, expected: str) -> None:
    assert redact_query_strings(line) == expected


def test_every_control_and_line_separator_is_escaped() -> None:
    hostile = "".join(chr(c) for c in range(0x20)) + "\x7f\x85\x9f\u2028\u2029"
    escaped = escape_controls(f"a{hostile}b é ✓")
    assert escaped.startswith("a\\x00\\x01")
    assert escaped.endswith("\\u2028\\u2029b é ✓")
    assert escaped.isprintable()


@pytest.mark.usefixtures("restore_logging")
def test_a_traceback_cannot_forge_a_line_either() -> None:
    stream = io.StringIO()
    configure_logging("text", "INFO", stream=stream)
    try:
        raise ValueError(f"bad input\n{FORGED}\u2028{FORGED}")
    except ValueError:
        logging.getLogger("ee.test").exception("request %s failed", "/x\u2028" + FORGED)
    lines = stream.getvalue().split("\n")[:-1]
    assert TEXT_RECORD.match(lines[0])
    assert all(line.startswith("    ") for line in lines[1:]), lines
    assert all(len(line.splitlines()) == 1 for line in lines)


@pytest.mark.usefixtures("restore_logging")
def test_json_lines_escape_what_json_dumps_leaves_raw() -> None:
    stream = io.StringIO()
    configure_logging("json", "INFO", stream=stream)
    logging.getLogger("ee.test").info("a\u2028b\u2029c\x85d\x7fe é")
    (line,) = stream.getvalue().splitlines()
    assert json.loads(line)["message"] == "a\u2028b\u2029c\x85d\x7fe é"
    assert "\\u2028" in line
    assert "é" in line
