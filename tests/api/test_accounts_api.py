"""The account at the HTTP door (issue 13): the filters of the reads, an unknown account in
a POSTed message, and an account owned by another instance (307 or 503)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import pykka
import pytest
from fastapi import FastAPI
from sqlalchemy import insert

from actors.facade import ExecutionFacade
from api.accounts import check_account, redirect_for
from api.app import create_app
from api.errors import install_error_handlers
from core.accounts import Accounts, default_accounts, parse_accounts
from core.errors import AccountNotOwnedError, InvalidRequestError
from storage.schema import execution_logs, log_to_values
from tests.actors.conftest import fast_settings
from tests.api._support import TOKENS, ApiClient, bearer, engine_and_app, rpm_message
from tests.storage.conftest import make_log

TRADER, VIEWER = bearer("trader"), bearer("viewer")
A_DAY = {"start_date": "2000-01-01", "end_date": "2100-01-01"}
TWO_ACCOUNTS = parse_accounts(
    {
        "accounts": {
            "default": {"magic": 770001, "terminal": {"kind": "simulated"}},
            "alpha": {"magic": 770002, "terminal": {"kind": "simulated", "seed": 3}},
        }
    },
    "accounts.toml",
)


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


def test_the_app_holds_the_accounts_of_the_facade_settings_by_default(
    engine: tuple[ExecutionFacade, FastAPI],
) -> None:
    facade, app = engine
    assert app.state.accounts == default_accounts(facade.settings)
    given = create_app(facade, TOKENS, accounts=TWO_ACCOUNTS)
    assert given.state.accounts is TWO_ACCOUNTS


def test_a_confirmation_and_the_history_show_the_default_account(client: ApiClient) -> None:
    absent = client.post("/execute", headers=TRADER, json=rpm_message("a"))
    # Naming the default account is the same message as naming none: a repeat, not a 409.
    named = client.post("/execute", headers=TRADER, json={**rpm_message("a"), "account": "default"})

    assert (absent.status_code, named.status_code) == (200, 200), named.text
    assert absent.json()["execution_id"] == named.json()["execution_id"]
    assert absent.json()["account"] == named.json()["account"] == "default"
    rows = client.get("/history?account=default", headers=VIEWER).json()
    assert [(row["rpm_decision_id"], row["account"]) for row in rows] == [("a", "default")]
    assert "account" not in rows[0]["rpm_payload"]


def test_an_unknown_account_is_422_naming_it_and_nothing_is_recorded(client: ApiClient) -> None:
    response = client.post(
        "/execute", headers=TRADER, json={**rpm_message("ghostly"), "account": "ghost"}
    )

    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "INVALID_REQUEST"
    assert "unknown account 'ghost'" in body["message"]
    assert "default" in body["message"]  # the accounts there are
    assert body["details"]["errors"] == [
        "account: unknown account 'ghost' (this engine trades: default)"
    ]
    assert client.get("/history", headers=VIEWER).json() == []


@pytest.mark.parametrize("name", ["", "al pha", "-alpha", "a" * 65, "Ålpha", 7])
def test_a_bad_account_name_is_422_naming_the_field(client: ApiClient, name: object) -> None:
    response = client.post("/execute", headers=TRADER, json={**rpm_message("x1"), "account": name})

    assert response.status_code == 422
    assert "account" in response.json()["message"]
    assert client.get("/history", headers=VIEWER).json() == []


def test_history_and_audit_trail_filter_by_account(
    engine: tuple[ExecutionFacade, FastAPI], client: ApiClient
) -> None:
    facade, _ = engine
    assert client.post("/execute", headers=TRADER, json=rpm_message("mine")).status_code == 200
    alpha = make_log(1, account="alpha")
    with facade.supervisor.db.begin() as connection:  # another account's row, as stored
        connection.execute(insert(execution_logs).values(log_to_values(alpha)))

    only_alpha = client.get("/history?account=alpha", headers=VIEWER).json()
    assert [(row["execution_id"], row["account"]) for row in only_alpha] == [
        (alpha.execution_id, "alpha")
    ]
    assert [
        row["rpm_decision_id"]
        for row in client.get("/history?account=default", headers=VIEWER).json()
    ] == ["mine"]
    assert len(client.get("/history", headers=VIEWER).json()) == 2
    assert client.get("/history?account=beta", headers=VIEWER).json() == []

    audit = client.get("/audit_trail", headers=VIEWER, params={**A_DAY, "account": "alpha"})
    assert [row["execution_id"] for row in audit.json()] == [alpha.execution_id]
    as_csv = client.get(
        "/audit_trail", headers=VIEWER, params={**A_DAY, "account": "default", "format": "csv"}
    )
    rows = list(csv.reader(io.StringIO(as_csv.text)))
    assert rows[0][-1] == "account"  # last, so the columns before it keep their places
    assert [row[-1] for row in rows[1:]] == ["default"]


@pytest.mark.parametrize("query", ["account=", "account=al%20pha", "account=" + "a" * 65])
def test_a_bad_account_filter_is_422_naming_it(client: ApiClient, query: str) -> None:
    for path in ("/history", "/audit_trail?start_date=2000-01-01&end_date=2100-01-01"):
        joiner = "&" if "?" in path else "?"
        response = client.get(f"{path}{joiner}{query}", headers=VIEWER)
        assert response.status_code == 422
        assert "query.account" in response.json()["message"]


def test_check_account_passes_the_accounts_there_are() -> None:
    check_account(TWO_ACCOUNTS, "alpha")
    check_account(TWO_ACCOUNTS, "default")
    with pytest.raises(InvalidRequestError, match=r"unknown account 'beta' \(this engine trades: "):
        check_account(TWO_ACCOUNTS, "beta")
    with pytest.raises(InvalidRequestError):
        check_account(default_accounts(fast_settings()), "alpha")


# --- an account owned by another instance ---------------------------------------------------


def test_redirect_for_goes_to_the_owner_with_the_path_and_query() -> None:
    owned = AccountNotOwnedError(account="alpha", owner="b", advertise_url="http://b.example:8080/")

    response = redirect_for(owned, "/execute?wait=1")

    assert response is not None
    assert response.status_code == 307
    assert response.headers["location"] == "http://b.example:8080/execute?wait=1"
    assert redirect_for(AccountNotOwnedError(account="alpha", owner="b"), "/execute") is None
    assert redirect_for(AccountNotOwnedError(account="alpha"), "/execute") is None


def _raising_app(error: AccountNotOwnedError) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/execute")
    async def execute() -> None:
        raise error

    return app


def test_an_account_owned_elsewhere_answers_307_to_the_owner_keeping_the_method() -> None:
    error = AccountNotOwnedError(account="alpha", owner="b", advertise_url="http://b.example:8080")
    with ApiClient(_raising_app(error)) as client:
        response = client.post("/execute?wait=2", json={"x": 1})

    assert response.status_code == 307
    assert response.headers["location"] == "http://b.example:8080/execute?wait=2"


def test_an_account_owned_elsewhere_without_a_url_is_503_naming_the_owner() -> None:
    error = AccountNotOwnedError(account="alpha", owner="engine-b")
    with ApiClient(_raising_app(error)) as client:
        response = client.post("/execute", json={})

    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "ACCOUNT_NOT_OWNED"
    assert "engine-b" in body["message"]
    assert body["details"] == {"account": "alpha", "owner": "engine-b", "advertise_url": None}


def test_two_accounts_fixture_is_valid() -> None:
    assert isinstance(TWO_ACCOUNTS, Accounts)
    assert TWO_ACCOUNTS.names == ("default", "alpha")
