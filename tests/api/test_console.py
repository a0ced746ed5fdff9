"""The console's routes in process: its files and their security headers, /whoami, an
execution's journal, and the journal head in /health. (The live stream needs a real server:
tests/api/test_console_stream.py; the page itself a real browser: test_console_browser.py.)"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pykka
import pytest
from fastapi import FastAPI

from actors.facade import ExecutionFacade
from api.auth import token_identity
from api.routes.console import ASSETS
from tests.api._support import TOKEN_OF, ApiClient, bearer, engine_and_app, rpm_message

ROOT = Path(__file__).resolve().parents[2]
CONSOLE = ROOT / "api" / "console"


@pytest.fixture(autouse=True)
def _stop_all_actors() -> Iterator[None]:
    yield
    pykka.ActorRegistry.stop_all()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[tuple[ExecutionFacade, FastAPI]]:
    with engine_and_app(tmp_path) as made:
        yield made


@pytest.fixture
def client(engine: tuple[ExecutionFacade, FastAPI]) -> Iterator[ApiClient]:
    with ApiClient(engine[1]) as client:
        yield client


def test_the_console_is_served_without_a_token_under_a_strict_policy(client: ApiClient) -> None:
    page = client.get("/console")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    for name, media_type in ASSETS.items():
        asset = client.get(f"/console/{name}")
        assert asset.status_code == 200, name
        assert asset.headers["content-type"] == media_type
        assert asset.headers["x-frame-options"] == "DENY"
    assert client.get("/console/..%2Fapp.py").status_code == 404
    assert client.get("/console/index.htm").status_code == 404


def test_the_page_runs_only_its_own_script_and_never_writes_html_from_data() -> None:
    html = (CONSOLE / "index.html").read_text()
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts == ['<script src="/console/console.js" defer>']
    assert not re.search(r"<[^>]*\son\w+\s*=", html)  # no inline event handlers
    assert "style=" not in html
    assert "http://" not in html.replace("http://www.w3.org", "")
    script = (CONSOLE / "console.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in script, sink
    assert "localStorage" not in script  # the token lives in sessionStorage only


def test_the_console_files_are_package_data() -> None:
    """`pip install .` ships them: every file in api/console matches a package-data pattern."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["api"]
    files = sorted(p.name for p in CONSOLE.iterdir())
    assert files == sorted([*ASSETS, "index.html"])
    for name in files:
        assert any(fnmatch(f"console/{name}", pattern) for pattern in patterns), name


@pytest.mark.parametrize("role", ["viewer", "trader", "admin"])
def test_whoami_names_the_role_and_the_identity_not_the_token(client: ApiClient, role: str) -> None:
    answer = client.get("/whoami", headers=bearer(role))
    assert answer.status_code == 200
    assert answer.json() == {"role": role, "identity": token_identity(role, TOKEN_OF[role])}
    assert TOKEN_OF[role] not in answer.text


def test_whoami_refuses_a_bad_token(client: ApiClient) -> None:
    assert client.get("/whoami").status_code == 401
    answer = client.get("/whoami", headers={"Authorization": "Bearer not-a-token"})
    assert answer.status_code == 401
    assert answer.json()["code"] == "NOT_AUTHENTICATED"


def test_an_executions_journal_events_read_back_in_order(client: ApiClient) -> None:
    filled = client.post("/execute", headers=bearer("trader"), json=rpm_message()).json()
    events: list[dict[str, Any]] = client.get(
        f"/executions/{filled['execution_id']}/events", headers=bearer("viewer")
    ).json()
    sequences = [event["sequence"] for event in events]
    assert sequences == sorted(sequences)
    assert len(events) >= 2
    assert {event["execution_id"] for event in events} == {filled["execution_id"]}
    assert client.get("/executions/nope/events", headers=bearer("viewer")).status_code == 404
    assert client.get(f"/executions/{filled['execution_id']}/events").status_code == 401


def test_the_full_health_report_names_the_journal_head(
    client: ApiClient, engine: tuple[ExecutionFacade, FastAPI]
) -> None:
    before = client.get("/health", headers=bearer("viewer")).json()
    assert before["detail"]["journal_checkpoint"] == {"sequence": None, "at": None}
    engine[0].metrics.audit_checkpoint(42, 1_700_000_000.0)
    after = client.get("/health", headers=bearer("viewer")).json()
    assert after["detail"]["journal_checkpoint"] == {
        "sequence": 42,
        "at": "2023-11-14T22:13:20+00:00",
    }
    assert "journal_checkpoint" not in str(client.get("/health").json())
