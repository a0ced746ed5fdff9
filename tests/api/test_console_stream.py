"""`GET /executions/stream` over a real server: a snapshot, then each change within a
second, and a bound on how many streams run at once."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api.routes.live import MAX_STREAMS
from tests.api._console import client, console_server
from tests.api._server import Server
from tests.api._support import rpm_message


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with console_server(tmp_path_factory.mktemp("console-stream")) as server:
        yield server


def _events(response: httpx.Response) -> Iterator[tuple[str, Any]]:
    name, data = "", ""
    for line in response.iter_lines():
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            data = line[5:].strip()
        elif not line and data:
            yield name, json.loads(data)
            name, data = "", ""


def test_the_stream_sends_a_snapshot_then_each_change_within_a_second(server: Server) -> None:
    with client(server, "trader") as trader, client(server, "viewer") as viewer:
        first = trader.post("/execute", json=rpm_message("stream-before")).json()
        with viewer.stream("GET", "/executions/stream") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = _events(response)
            name, rows = next(events)
            assert name == "snapshot"
            assert [row["execution_id"] for row in rows] == [first["execution_id"]]
            assert "rpm_payload" not in rows[0]  # the list's columns, not the whole record
            sent = time.monotonic()
            second = trader.post(
                "/execute", params={"wait": 0}, json=rpm_message("stream-after")
            ).json()
            seen: dict[str, str] = {}
            for name, rows in events:
                assert name == "executions"
                seen.update({row["execution_id"]: row["status"] for row in rows})
                if seen.get(second["execution_id"]) == "FILLED":
                    break
            assert time.monotonic() - sent < 2.0


def test_streams_past_the_bound_are_refused_with_503(server: Server) -> None:
    with client(server, "viewer") as viewer:
        opened: list[tuple[httpx.Response, Iterator[str]]] = []
        try:
            for _ in range(MAX_STREAMS):
                response = viewer.send(
                    viewer.build_request("GET", "/executions/stream"), stream=True
                )
                # The iterator is kept: dropping it would close the connection.
                lines = response.iter_lines()
                opened.append((response, lines))
                assert response.status_code == 200
                assert next(lines) == "event: snapshot"  # running: counted
            refused = viewer.get("/executions/stream")
            assert refused.status_code == 503
            assert "live streams" in refused.json()["message"]
        finally:
            for response, _ in opened:
                response.close()


def test_the_stream_needs_a_token(server: Server) -> None:
    assert httpx.get(f"{server.url}/executions/stream", timeout=10).status_code == 401
