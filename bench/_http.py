"""The HTTP side of `bench.restart`: a tiny JSON client on the standard library (the bench
needs no test-only dependency), and the load of concurrent `POST /execute` calls that the
engine is killed under."""

from __future__ import annotations

import http.client
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from core.enums import FINAL_STATUSES

FINAL = frozenset(status.value for status in FINAL_STATUSES)
TRANSPORT_ERRORS = (OSError, http.client.HTTPException)
"""What a request to an engine that is dead, starting or being killed raises: refused,
reset, timed out, or an answer cut short."""


class Api:
    """JSON over HTTP to one `execution-engine serve`, with the bench's bearer token."""

    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url
        self._token = token

    def call(
        self, method: str, path: str, body: Any = None, timeout: float = 5.0
    ) -> tuple[int, Any]:
        """(status, parsed JSON body). Raises one of TRANSPORT_ERRORS without an answer."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - our own engine, over http on loopback
            self.base_url + path,
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self._token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return response.status, _json(response.read())
        except urllib.error.HTTPError as error:
            with error:
                return error.code, _json(error.read())

    def execute(self, message: dict[str, Any], wait: float) -> tuple[int, Any]:
        return self.call("POST", f"/execute?wait={wait:g}", message, timeout=wait + 10.0)

    def history(self, limit: int = 1000) -> list[dict[str, Any]]:
        status, body = self.call("GET", f"/history?limit={limit}", timeout=30.0)
        if status != 200 or not isinstance(body, list):
            raise RuntimeError(f"GET /history answered {status}: {body!r}"[:300])
        return body


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw[:200].decode("utf-8", "replace")


class Load:
    """`threads` workers POSTing new decisions back to back (`POST /execute?wait=30`), each
    waiting for its answer, until `stop()`; a worker whose request fails without an answer
    (the engine was killed) ends."""

    def __init__(self, api: Api, message: Callable[[int], dict[str, Any]], threads: int) -> None:
        self._api = api
        self._message = message
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._next = 0
        self.in_flight = 0
        self.sent: list[str] = []
        self.answered: dict[str, str] = {}
        """Decision id -> final status, for every decision answered 200 with a final state."""
        self.other_answers: dict[str, int] = {}
        """Decision id -> HTTP status, for answers that were not a final confirmation."""
        self._workers = [
            threading.Thread(target=self._work, name=f"bench-load-{n}", daemon=True)
            for n in range(threads)
        ]

    def start(self) -> None:
        for worker in self._workers:
            worker.start()

    def wait_for_answers(self, count: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: len(self.answered) >= count, timeout)

    def stop(self) -> None:
        """No new requests from here on; those in flight go on until answered or cut."""
        self._stopping.set()

    def join(self, timeout: float) -> None:
        for worker in self._workers:
            worker.join(timeout)

    def _work(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                index, self._next = self._next, self._next + 1
                message = self._message(index)
                decision_id = str(message["decision"]["decision_id"])
                self.sent.append(decision_id)
                self.in_flight += 1
            try:
                status, body = self._api.execute(message, wait=30.0)
            except TRANSPORT_ERRORS:
                with self._cond:
                    self.in_flight -= 1
                return
            with self._cond:
                self.in_flight -= 1
                final = isinstance(body, dict) and body.get("status") in FINAL
                if status == 200 and final:
                    self.answered[decision_id] = str(body["status"])
                else:
                    self.other_answers[decision_id] = status
                self._cond.notify_all()

    def unanswered(self) -> list[str]:
        with self._cond:
            return [d for d in self.sent if d not in self.answered]


__all__ = ["FINAL", "TRANSPORT_ERRORS", "Api", "Load"]
