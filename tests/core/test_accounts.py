"""Tests of core.accounts: the accounts file, its errors, and the `default` account."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from core.accounts import (
    DEFAULT_ACCOUNT,
    AccountLimits,
    MetaTrader5Terminal,
    PositionPolicy,
    RpycTerminal,
    SimulatedTerminal,
    default_accounts,
    load_accounts,
)
from core.enums import PositionScope
from core.errors import ConfigurationError
from core.settings import Settings, load_settings

GOOD = """
[accounts.alpha]
magic = 770001
terminal = { kind = "rpyc", host = "10.0.0.5", port = 18813 }
limits = { max_spread_pips = 3, max_retries = 1 }
positions = { position_scope = "ACCOUNT" }

[accounts."beta-2.live"]
magic = 770002

[accounts."beta-2.live".terminal]
kind = "metatrader5"
path = 'C:\\MT5\\terminal64.exe'
login = 5001
server = "B-Demo"
password_env = "PW_BETA"

[accounts.sim]
magic = 770003

[accounts.sim.terminal]
kind = "simulated"
seed = 7
order_send_ms = 20
"""

ENV = {"PW_BETA": "s3cret-beta-pw"}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("EE_", "MT5_")) or key in {"MAX_RETRIES", "MAX_SLIPPAGE_PIPS"}:
            monkeypatch.delenv(key)


def _write(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "accounts.toml"
    path.write_text(text)
    return load_settings(accounts_file=str(path))


def _error(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> str:
    settings = _write(tmp_path, text)
    with pytest.raises(ConfigurationError) as caught:
        load_accounts(settings, ENV if environ is None else environ)
    message = str(caught.value)
    assert message.startswith(f"accounts file {settings.accounts_file}: "), message
    return message


def test_a_good_file_gives_every_account_in_order(tmp_path: Path) -> None:
    accounts = load_accounts(_write(tmp_path, GOOD), ENV)

    assert accounts.names == ("alpha", "beta-2.live", "sim")
    alpha = accounts.get("alpha")
    assert alpha.terminal == RpycTerminal(kind="rpyc", host="10.0.0.5", port=18813)
    assert alpha.limits == AccountLimits(max_spread_pips=3, max_retries=1)
    assert alpha.positions == PositionPolicy(position_scope=PositionScope.ACCOUNT)
    beta = accounts.get("beta-2.live").terminal
    assert isinstance(beta, MetaTrader5Terminal)
    assert (beta.path, beta.login, beta.server) == (r"C:\MT5\terminal64.exe", 5001, "B-Demo")
    sim = accounts.get("sim").terminal
    assert sim == SimulatedTerminal(kind="simulated", seed=7, order_send_ms=20)
    assert "alpha" in accounts
    assert "gamma" not in accounts
    with pytest.raises(KeyError):
        accounts.get("gamma")


def test_the_password_is_read_from_its_variable_and_never_kept(tmp_path: Path) -> None:
    settings = _write(tmp_path, GOOD)
    accounts = load_accounts(settings, ENV)

    assert "s3cret" not in repr(accounts)
    assert "s3cret" not in accounts.model_dump_json()
    beta = accounts.settings_for("beta-2.live", settings, ENV)
    assert beta.mt5_password is not None
    assert beta.mt5_password.get_secret_value() == "s3cret-beta-pw"
    assert "s3cret" not in repr(beta)


def test_settings_for_an_account_apply_its_terminal_magic_limits_and_policies(
    tmp_path: Path,
) -> None:
    settings = _write(tmp_path, GOOD)
    accounts = load_accounts(settings, ENV)

    alpha = accounts.settings_for("alpha", settings, ENV)
    assert (alpha.terminal, alpha.rpyc_host, alpha.rpyc_port) == ("rpyc", "10.0.0.5", 18813)
    assert (alpha.magic, alpha.max_spread_pips, alpha.max_retries) == (770001, 3.0, 1)
    assert alpha.position_scope is PositionScope.ACCOUNT
    # What the account leaves out is the settings' value.
    assert alpha.max_slippage_pips == settings.max_slippage_pips
    assert alpha.partial_fill_policy is settings.partial_fill_policy
    sim = accounts.settings_for("sim", settings, ENV)
    assert (sim.terminal, sim.sim_seed, sim.sim_order_send_ms, sim.magic) == (
        "simulated",
        7,
        20.0,
        770003,
    )
    beta = accounts.settings_for("beta-2.live", settings, ENV)
    assert (beta.terminal, beta.mt5_login, beta.mt5_server) == ("metatrader5", 5001, "B-Demo")


def test_settings_for_names_the_account_when_the_settings_refuse_the_result(
    tmp_path: Path,
) -> None:
    settings = _write(tmp_path, GOOD)
    accounts = load_accounts(settings, ENV)

    with pytest.raises(ConfigurationError, match=r"account 'beta-2.live'.*placeholder"):
        accounts.settings_for("beta-2.live", settings, {"PW_BETA": "changeme"})


def test_without_a_file_one_default_account_gives_the_settings_unchanged() -> None:
    settings = load_settings(magic=4242, sim_seed=3, max_retries=1)

    accounts = load_accounts(settings)

    assert accounts.names == (DEFAULT_ACCOUNT,)
    assert accounts.source is None
    account = accounts.get(DEFAULT_ACCOUNT)
    assert account.magic == 4242
    assert account.terminal == SimulatedTerminal(kind="simulated", seed=3)
    assert accounts.settings_for(DEFAULT_ACCOUNT, settings) is settings


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (
            {"terminal": "rpyc", "rpyc_host": "bridge", "rpyc_port": 18900},
            RpycTerminal(kind="rpyc", host="bridge", port=18900),
        ),
        (
            {"terminal": "metatrader5", "mt5_login": 7, "mt5_server": "S", "mt5_password": "pw1"},
            MetaTrader5Terminal(
                kind="metatrader5", login=7, server="S", password_env="MT5_PASSWORD"
            ),
        ),
    ],
)
def test_the_default_account_has_the_configured_terminal(
    overrides: dict[str, Any], expected: Any
) -> None:
    accounts = default_accounts(load_settings(**overrides))

    assert accounts.get(DEFAULT_ACCOUNT).terminal == expected
    assert "pw1" not in repr(accounts)


def test_account_limits_have_the_bounds_of_the_settings_fields() -> None:
    # The account may override a limit only within what the setting itself allows.
    for model in (AccountLimits, PositionPolicy):
        for name, field in model.model_fields.items():
            setting = Settings.model_fields[name]
            assert field.metadata == setting.metadata, name
            assert setting.annotation is not None
            assert field.annotation == setting.annotation | None, name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[accounts.a\n", "not valid TOML"),
        ("title = 'x'\n[accounts.a]\nmagic = 1", "unknown top-level key 'title'"),
        ("", "no accounts"),
        ("accounts = 3", "no accounts"),
        ("[accounts]\na = 3", "account 'a': must be a table"),
        (
            "[accounts.'bad name']\nmagic = 1\nterminal = {kind='simulated'}",
            "account 'bad name': name: must be 1-64 ASCII letters",
        ),
        (
            "[accounts.'_hidden']\nmagic = 1\nterminal = {kind='simulated'}",
            "account '_hidden': name: must be",
        ),
        (
            f"[accounts.{'a' * 65}]\nmagic = 1\nterminal = {{kind='simulated'}}",
            "name: must be 1-64",
        ),
        (
            "[accounts.a]\nname = 'b'\nmagic = 1\nterminal = {kind='simulated'}",
            "account 'a': name: the table's key is the account's name",
        ),
        ("[accounts.a]\nterminal = {kind='simulated'}", "account 'a': magic: Field required"),
        ("[accounts.a]\nmagic = 0\nterminal = {kind='simulated'}", "account 'a': magic: "),
        ("[accounts.a]\nmagic = 1", "account 'a': terminal: Field required"),
        (
            "[accounts.a]\nmagic = 1\nterminal = {kind='mt4'}",
            "account 'a': terminal: kind must be one of simulated, rpyc, metatrader5",
        ),
        (
            "[accounts.a]\nmagic = 1\nterminal = {kind='rpyc', host='h', port=70000}",
            "account 'a': terminal.port: Input should be less than or equal to 65535",
        ),
        (
            "[accounts.a]\nmagic = 1\nterminal = {kind='rpyc', port=1}",
            "account 'a': terminal.host: Field required",
        ),
        (
            "[accounts.a]\nmagic = 1\nterminal = {kind='simulated'}\nlimits = {max_spread_pips=0}",
            "account 'a': limits.max_spread_pips: Input should be greater than 0",
        ),
        (
            "[accounts.a]\nmagic = 1\nterminal = {kind='simulated'}\nlimits = {max_spred=1}",
            "account 'a': limits.max_spred: Extra inputs are not permitted",
        ),
        (
            "[accounts.a]\nmagic = 1\nterminal = {kind='simulated'}\n"
            "positions = {position_scope='everything'}",
            "account 'a': positions.position_scope: Input should be 'engine' or 'account'",
        ),
        (
            "[accounts.a]\nmagic = 1\nterminal = {kind='metatrader5', password_env='1X'}",
            "account 'a': terminal.password_env: must be the name of an environment variable",
        ),
        (
            "[accounts.a]\nmagic = 1\nterminal = {kind='metatrader5', password_env='NOPE_PW'}",
            "account 'a': terminal.password_env: environment variable NOPE_PW is not set",
        ),
        (
            "[accounts.a]\nmagic = 1\nterminal = {kind='rpyc', host='h', port=1}\n"
            "[accounts.b]\nmagic = 2\nterminal = {kind='rpyc', host='H', port=1}",
            "accounts 'a' and 'b': the same rpyc bridge",
        ),
        (
            "[accounts.a]\nmagic = 1\nterminal = {kind='metatrader5'}\n"
            "[accounts.b]\nmagic = 2\nterminal = {kind='metatrader5'}",
            "accounts 'a', 'b': the MetaTrader5 package drives one terminal per process",
        ),
    ],
)
def test_a_bad_file_is_refused_naming_the_file_account_and_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    assert expected in _error(tmp_path, text)


def test_every_problem_of_every_account_is_named_at_once(tmp_path: Path) -> None:
    message = _error(
        tmp_path,
        "[accounts.a]\nmagic = -1\nterminal = {kind='simulated'}\n"
        "[accounts.b]\nmagic = 1\nterminal = {kind='rpyc', host='', port=1}",
    )

    assert "account 'a': magic" in message
    assert "account 'b': terminal.host" in message


def test_a_password_in_the_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    message = _error(
        tmp_path,
        "[accounts.a]\nmagic = 1\n"
        "terminal = {kind='metatrader5', login=5, password='hunter2-in-file'}",
    )

    assert "account 'a': terminal.password: no passwords in the accounts file" in message
    assert "hunter2" not in message


def test_a_missing_file_is_refused_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.toml"

    with pytest.raises(ConfigurationError, match=r"accounts file .*nowhere.toml: cannot be read"):
        load_accounts(load_settings(accounts_file=str(missing)))


def test_accounts_are_frozen(tmp_path: Path) -> None:
    accounts = load_accounts(_write(tmp_path, GOOD), ENV)

    with pytest.raises(ValidationError):
        accounts.get("alpha").magic = 5  # type: ignore[misc]


def test_the_accounts_file_comes_from_its_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "accounts.toml"
    path.write_text(GOOD)
    monkeypatch.setenv("EE_ACCOUNTS_FILE", str(path))
    monkeypatch.setenv("PW_BETA", "from-env")

    accounts = load_accounts(load_settings())

    assert accounts.source == str(path)
    assert accounts.names[0] == "alpha"
