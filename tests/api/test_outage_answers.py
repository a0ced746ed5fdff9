"""During a database outage the API answers 503 saying only that the database is unavailable;
which database, as whom and why goes to the log."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from api.errors import DATABASE_UNAVAILABLE, install_error_handlers
from core.errors import PersistenceUnavailableError, ReconciliationError
from tests.api._server import running
from tests.api._support import TOKEN_OF, TOKENS, ApiClient, rpm_message
from tests.helpers import eventually

DATABASE_URL = "postgresql+psycopg2://ee_user:***@db.internal:5432/ee_prod"


@contextmanager
def database_refusing_connections(admin: Engine, name: str) -> Iterator[None]:
    """A real outage of one database: new connections refused, open ones ended."""
    with admin.connect() as connection:
        connection.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": name},
        )
    try:
        yield
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


@pytest.mark.postgres
def test_a_503_in_a_database_outage_names_no_user_host_or_database(
    postgres_url: str, postgres_admin_engine: Engine, tmp_path: Path
) -> None:
    url = make_url(postgres_url)
    database, user, host = url.database, url.username, url.host
    assert database is not None
    assert user is not None
    assert host is not None
    env = {"EE_API_TOKENS": ",".join(f"{r}:{t}" for t, r in TOKENS.items())}
    args = ["execution-engine", "serve", "--port", "0", "--database-url", postgres_url]
    with (
        running(args, tmp_path, env) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
        database_refusing_connections(postgres_admin_engine, database),
    ):
        viewer = {"Authorization": f"Bearer {TOKEN_OF['viewer']}"}
        trader = {"Authorization": f"Bearer {TOKEN_OF['trader']}"}
        answers = [
            client.get("/history", headers=viewer),
            client.get("/executions/exec_0123", headers=viewer),
            client.get("/trading-state", headers=viewer),
            client.get(
                "/audit_trail",
                headers=viewer,
                params={"start_date": "2000-01-01", "end_date": "2100-01-01"},
            ),
            client.post("/execute", headers=trader, json=rpm_message("during-outage")),
            client.post("/halt", headers=trader, json={"reason": "outage"}),
        ]
        # The full health report (for any token) quotes the failed journal write.
        health = eventually(
            lambda: _with_journal_error(client.get("/health", headers=viewer)),
            timeout=10,
            what="/health reporting the failed journal write",
        )
    assert health.status_code == 503
    for detail in (database, user, host):
        assert detail not in health.text
    for answer in answers:
        assert answer.status_code == 503, (answer.request.url, answer.text)
        body = answer.json()
        assert body == {
            "code": "PERSISTENCE_UNAVAILABLE",
            "message": DATABASE_UNAVAILABLE,
            "details": {},
        }
        for detail in (database, user, host, "OperationalError"):
            assert detail not in answer.text
    log = (tmp_path / "server.stderr").read_text()
    assert f"{database} failed: OperationalError" in log  # the detail is in the log
    assert "not currently accepting connections" in log  # with the driver's reason


def _with_journal_error(response: httpx.Response) -> httpx.Response | None:
    detail = response.json().get("detail", {})
    return response if detail.get("database", {}).get("journal_error") else None


def test_server_errors_quoting_a_database_url_answer_without_it() -> None:
    app = FastAPI()
    install_error_handlers(app)
    quoted = f"journal write of 1 op(s) to {DATABASE_URL} failed: OperationalError"

    @app.get("/reconcile")
    def reconcile() -> None:
        raise ReconciliationError(f"not resumed: reconciliation failed: exec_1: {quoted}")

    @app.get("/read")
    def read() -> None:
        raise PersistenceUnavailableError(quoted)

    with ApiClient(app) as client:
        reconcile_answer = client.get("/reconcile")
        read_answer = client.get("/read")
    assert reconcile_answer.status_code == read_answer.status_code == 503
    assert reconcile_answer.json()["message"] == (
        "not resumed: reconciliation failed: exec_1: journal write of 1 op(s) to <url> "
        "failed: OperationalError"
    )
    assert read_answer.json()["message"] == DATABASE_UNAVAILABLE
    for part in ("ee_user", "db.internal", "ee_prod"):
        assert part not in reconcile_answer.text + read_answer.text
