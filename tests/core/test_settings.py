"""Tests of core.settings: names, defaults, validation, secrets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import AliasChoices, SecretStr, ValidationError

from core.enums import OppositePolicy, PartialFillPolicy, PositionScope
from core.errors import ConfigurationError
from core.settings import API_ROLES, Settings, load_settings


def _all_env_names() -> set[str]:
    names: set[str] = set()
    for info in Settings.model_fields.values():
        alias = info.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        names.update(str(c) for c in choices)
    return names


ENV_NAMES = _all_env_names()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No engine variable from the developer's shell or CI leaks in; no .env is around."""
    upper = {n.upper() for n in ENV_NAMES}
    for key in list(os.environ):
        if key.upper() in upper:
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


DEFAULTS: dict[str, Any] = {
    "max_slippage_pips": 10.0,
    "order_timeout_seconds": 60.0,
    "max_retries": 3,
    "min_margin_cushion": 1.5,
    "mt5_login": None,
    "mt5_password": None,
    "mt5_server": None,
    "mt5_terminal": None,
    "postgres_url": None,
    "accounts_file": None,
    "standby": None,
    "instance_name": None,
    "advertise_url": None,
    "takeover_seconds": 5.0,
    "terminal": "simulated",
    "rpyc_host": "127.0.0.1",
    "rpyc_port": 18812,
    "rpyc_timeout_seconds": 300.0,
    "max_spread_pips": 5.0,
    "max_tick_age_seconds": 10.0,
    "magic": 770001,
    "client_id_prefix": "ee",
    "pip_size_overrides": {},
    "partial_fill_policy": PartialFillPolicy.ACCEPT,
    "position_scope": PositionScope.ENGINE,
    "opposite_positions": OppositePolicy.REDUCE,
    "poll_interval_seconds": 0.1,
    "retry_backoff_seconds": 0.2,
    "retry_backoff_cap_seconds": 2.0,
    "reconcile_window_seconds": 30.0,
    "cache_tick_seconds": 0.05,
    "cache_account_seconds": 0.25,
    "cache_margin_seconds": 1.0,
    "group_commit_max": 64,
    "ask_timeout_seconds": 30.0,
    "order_threads": 8,
    "restart_intensity": 5,
    "restart_period_seconds": 10.0,
    "disconnect_halt_seconds": 30.0,
    "terminal_wait_seconds": 10.0,
    "gc_freeze_on_start": True,
    "audit_key": None,
    "audit_checkpoint_seconds": 60.0,
    "audit_checkpoint_file": None,
    "alert_webhook_url": None,
    "alert_timeout_seconds": 3.0,
    "api_tokens": None,
    "log_format": "text",
    "log_level": "INFO",
    "sim_seed": 0,
    "sim_order_send_ms": 0.0,
    "sim_ipc_ms": 0.0,
}


def test_every_field_has_a_tested_default() -> None:
    assert set(DEFAULTS) == set(Settings.model_fields)


@pytest.mark.parametrize(("field", "default"), sorted(DEFAULTS.items()))
def test_defaults(field: str, default: Any) -> None:
    assert getattr(load_settings(), field) == default


def test_every_field_is_documented() -> None:
    for name, info in Settings.model_fields.items():
        assert info.description, name


SEED_NAMES = {
    "MAX_SLIPPAGE_PIPS",
    "ORDER_TIMEOUT_SECONDS",
    "MAX_RETRIES",
    "MIN_MARGIN_CUSHION",
    "MT5_LOGIN",
    "MT5_PASSWORD",
    "MT5_SERVER",
    "MT5_TERMINAL",
    "POSTGRES_URL",
    "DATABASE_URL",
}


def test_variable_names_are_the_seeds_or_ee_prefixed() -> None:
    assert SEED_NAMES <= ENV_NAMES
    for name in ENV_NAMES - SEED_NAMES:
        assert name.startswith("EE_"), name
        field = name.removeprefix("EE_").lower()
        assert field in Settings.model_fields, name


@pytest.mark.parametrize(
    ("env", "raw", "field", "value"),
    [
        ("MAX_SLIPPAGE_PIPS", "2.5", "max_slippage_pips", 2.5),
        ("ORDER_TIMEOUT_SECONDS", "15", "order_timeout_seconds", 15.0),
        ("MAX_RETRIES", "0", "max_retries", 0),
        ("MIN_MARGIN_CUSHION", "2", "min_margin_cushion", 2.0),
        ("MT5_LOGIN", "123456", "mt5_login", 123456),
        ("MT5_SERVER", "Broker-Demo", "mt5_server", "Broker-Demo"),
        ("MT5_TERMINAL", r"C:\MT5\terminal64.exe", "mt5_terminal", r"C:\MT5\terminal64.exe"),
        ("EE_TERMINAL", "rpyc", "terminal", "rpyc"),
        ("EE_TERMINAL", " MetaTrader5 ", "terminal", "metatrader5"),
        ("EE_RPYC_HOST", "10.0.0.5", "rpyc_host", "10.0.0.5"),
        ("EE_RPYC_PORT", "18813", "rpyc_port", 18813),
        ("EE_RPYC_TIMEOUT_SECONDS", "120", "rpyc_timeout_seconds", 120.0),
        ("EE_MAX_SPREAD_PIPS", "1.5", "max_spread_pips", 1.5),
        ("EE_MAX_TICK_AGE_SECONDS", "3", "max_tick_age_seconds", 3.0),
        ("EE_MAGIC", "424242", "magic", 424242),
        ("EE_CLIENT_ID_PREFIX", "bot_1", "client_id_prefix", "bot_1"),
        (
            "EE_PIP_SIZE_OVERRIDES",
            '{"XAUUSD": 0.1, "US30": 1}',
            "pip_size_overrides",
            {"XAUUSD": 0.1, "US30": 1.0},
        ),
        ("EE_PARTIAL_FILL_POLICY", "COMPLETE", "partial_fill_policy", PartialFillPolicy.COMPLETE),
        ("EE_POSITION_SCOPE", "Account", "position_scope", PositionScope.ACCOUNT),
        ("EE_OPPOSITE_POSITIONS", "hedge", "opposite_positions", OppositePolicy.HEDGE),
        ("EE_POLL_INTERVAL_SECONDS", "0.05", "poll_interval_seconds", 0.05),
        ("EE_RETRY_BACKOFF_SECONDS", "0.5", "retry_backoff_seconds", 0.5),
        ("EE_RETRY_BACKOFF_CAP_SECONDS", "5", "retry_backoff_cap_seconds", 5.0),
        ("EE_RECONCILE_WINDOW_SECONDS", "90", "reconcile_window_seconds", 90.0),
        ("EE_CACHE_TICK_SECONDS", "0", "cache_tick_seconds", 0.0),
        ("EE_CACHE_ACCOUNT_SECONDS", "0.5", "cache_account_seconds", 0.5),
        ("EE_CACHE_MARGIN_SECONDS", "2", "cache_margin_seconds", 2.0),
        ("EE_GROUP_COMMIT_MAX", "1", "group_commit_max", 1),
        ("EE_ORDER_THREADS", "4", "order_threads", 4),
        ("EE_ASK_TIMEOUT_SECONDS", "5", "ask_timeout_seconds", 5.0),
        ("EE_RESTART_INTENSITY", "0", "restart_intensity", 0),
        ("EE_RESTART_PERIOD_SECONDS", "60", "restart_period_seconds", 60.0),
        ("EE_DISCONNECT_HALT_SECONDS", "5", "disconnect_halt_seconds", 5.0),
        ("EE_GC_FREEZE_ON_START", "false", "gc_freeze_on_start", False),
        ("EE_LOG_FORMAT", "JSON", "log_format", "json"),
        ("EE_LOG_LEVEL", "debug", "log_level", "DEBUG"),
        ("EE_SIM_SEED", "42", "sim_seed", 42),
        ("EE_SIM_ORDER_SEND_MS", "25", "sim_order_send_ms", 25.0),
        ("EE_SIM_IPC_MS", "0.5", "sim_ipc_ms", 0.5),
        ("max_retries", "7", "max_retries", 7),  # variable names are case-insensitive
    ],
)
def test_reads_the_environment(
    monkeypatch: pytest.MonkeyPatch, env: str, raw: str, field: str, value: Any
) -> None:
    monkeypatch.setenv(env, raw)
    assert getattr(load_settings(), field) == value


def test_empty_variable_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_RETRIES", "")
    monkeypatch.setenv("MT5_LOGIN", "")
    settings = load_settings()
    assert settings.max_retries == 3
    assert settings.mt5_login is None


def test_keyword_arguments_by_python_name_override_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAX_RETRIES", "5")
    assert Settings(max_retries=0).max_retries == 0
    assert load_settings(max_retries=1, magic=9).max_retries == 1
    assert Settings.model_validate({"MAX_RETRIES": 2}).max_retries == 2  # by variable name
    assert Settings().max_retries == 5


def test_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValidationError, match="frozen"):
        settings.max_retries = 10  # type: ignore[misc]
    assert settings == load_settings()


def test_unknown_keyword_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="max_retriess"):
        load_settings(max_retriess=1)


# --------------------------------------------------------------------------- database url


def test_database_url_unset_means_sqlite() -> None:
    assert load_settings().database_url is None


@pytest.mark.parametrize("env", ["POSTGRES_URL", "DATABASE_URL"])
def test_database_url_from_either_variable(monkeypatch: pytest.MonkeyPatch, env: str) -> None:
    monkeypatch.setenv(env, "postgresql://engine:s3cr3t@db/ee")
    settings = load_settings()
    assert settings.database_url == "postgresql://engine:s3cr3t@db/ee"
    assert isinstance(settings.postgres_url, SecretStr)


def test_database_url_wins_over_postgres_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_URL", "postgresql://a")
    monkeypatch.setenv("DATABASE_URL", "postgresql://b")
    assert load_settings().database_url == "postgresql://b"


def test_database_url_by_keyword() -> None:
    assert load_settings(postgres_url="sqlite:///ee.db").database_url == "sqlite:///ee.db"


# --------------------------------------------------------------------------- secrets

SECRETS = {
    "MT5_PASSWORD": "hunter2-mt5",
    "POSTGRES_URL": "postgresql://engine:pg-pass-77@db/ee",
    "EE_API_TOKENS": "admin:tok-admin-9f,viewer:tok-view-3c",
    "EE_AUDIT_KEY": "audit-key-5e5e5e5e",
}


@pytest.fixture
def secret_settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    return load_settings()


@pytest.mark.parametrize(
    "render",
    [repr, str, lambda s: s.model_dump_json(), lambda s: str(s.model_dump()), lambda s: f"{s}"],
)
def test_secrets_never_rendered(secret_settings: Settings, render: Any) -> None:
    text = render(secret_settings)
    for secret in ("hunter2", "pg-pass-77", "tok-admin-9f", "tok-view-3c", "audit-key-5e"):
        assert secret not in text
    assert "**********" in text


def test_secrets_are_readable_on_purpose(secret_settings: Settings) -> None:
    assert secret_settings.mt5_password is not None
    assert secret_settings.mt5_password.get_secret_value() == "hunter2-mt5"
    assert secret_settings.database_url == SECRETS["POSTGRES_URL"]
    assert secret_settings.api_token_roles() == {"tok-admin-9f": "admin", "tok-view-3c": "viewer"}
    assert secret_settings.audit_key_secret() == "audit-key-5e5e5e5e"


def test_a_short_audit_key_is_refused_without_echoing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EE_AUDIT_KEY", "short-key-77")
    with pytest.raises(ConfigurationError, match="EE_AUDIT_KEY: must be at least 16") as caught:
        load_settings()
    assert "short-key-77" not in str(caught.value)


@pytest.mark.parametrize(
    "tokens",
    [
        "boss:tok-secret-1",  # unknown role
        "admin",  # no token
        "admin:",  # empty token
        "admin:tok-secret-1,viewer:tok-secret-1",  # one token, two roles
        "tok-secret-1",
    ],
)
def test_bad_api_tokens_are_refused_without_echoing_them(
    monkeypatch: pytest.MonkeyPatch, tokens: str
) -> None:
    monkeypatch.setenv("EE_API_TOKENS", tokens)
    with pytest.raises(ConfigurationError, match="EE_API_TOKENS") as caught:
        load_settings()
    assert "tok-secret" not in str(caught.value)
    assert "tok-secret" not in repr(caught.value)
    assert "tok-secret" not in str(caught.value.__cause__)


@pytest.mark.parametrize(
    ("tokens", "roles"),
    [
        ("", {}),
        ("admin:a", {"a": "admin"}),
        (" Trader : t1 , viewer:v1,", {"t1": "trader", "v1": "viewer"}),
        ("admin:x,admin:x", {"x": "admin"}),
        ("viewer:a:b", {"a:b": "viewer"}),  # a token may contain ':'
    ],
)
def test_api_token_roles(tokens: str, roles: dict[str, str]) -> None:
    assert load_settings(api_tokens=tokens).api_token_roles() == roles


def test_api_roles_weakest_first() -> None:
    assert API_ROLES == ("viewer", "trader", "admin")


@pytest.mark.parametrize("terminal", ["metatrader5", "rpyc"])
@pytest.mark.parametrize(
    "kwargs",
    [
        {"mt5_password": "password"},
        {"mt5_password": "ChangeThis"},
        {"api_tokens": "admin:changeme"},
        {"api_tokens": "viewer:ok,admin:secret"},
    ],
)
def test_placeholder_secrets_refused_against_a_real_terminal(
    terminal: str, kwargs: dict[str, str]
) -> None:
    with pytest.raises(ConfigurationError, match="placeholder"):
        load_settings(terminal=terminal, **kwargs)


def test_placeholder_secrets_allowed_on_the_simulator() -> None:
    settings = load_settings(mt5_password="password", api_tokens="admin:changeme")
    assert settings.terminal == "simulated"


def test_real_secrets_accepted_against_a_real_terminal() -> None:
    settings = load_settings(terminal="rpyc", mt5_password="x7!kQ", api_tokens="admin:9f8e7d")
    assert settings.terminal == "rpyc"


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "variable"),
    [
        ({"max_slippage_pips": -1}, "MAX_SLIPPAGE_PIPS"),
        ({"order_timeout_seconds": 0}, "ORDER_TIMEOUT_SECONDS"),
        ({"max_retries": -1}, "MAX_RETRIES"),
        ({"min_margin_cushion": 0.99}, "MIN_MARGIN_CUSHION"),
        ({"mt5_login": 0}, "MT5_LOGIN"),
        ({"terminal": "mt4"}, "EE_TERMINAL"),
        ({"rpyc_port": 0}, "EE_RPYC_PORT"),
        ({"rpyc_port": 65536}, "EE_RPYC_PORT"),
        ({"rpyc_host": ""}, "EE_RPYC_HOST"),
        ({"rpyc_timeout_seconds": 0}, "EE_RPYC_TIMEOUT_SECONDS"),
        ({"max_spread_pips": 0}, "EE_MAX_SPREAD_PIPS"),
        ({"max_tick_age_seconds": -1}, "EE_MAX_TICK_AGE_SECONDS"),
        ({"magic": 0}, "EE_MAGIC"),
        ({"magic": 2**63}, "EE_MAGIC"),
        ({"client_id_prefix": "too-long-prefix"}, "EE_CLIENT_ID_PREFIX"),
        ({"client_id_prefix": ""}, "EE_CLIENT_ID_PREFIX"),
        ({"pip_size_overrides": {"XAUUSD": 0}}, "EE_PIP_SIZE_OVERRIDES"),
        ({"pip_size_overrides": {"XAUUSD": float("nan")}}, "EE_PIP_SIZE_OVERRIDES"),
        ({"partial_fill_policy": "sometimes"}, "EE_PARTIAL_FILL_POLICY"),
        ({"poll_interval_seconds": 0}, "EE_POLL_INTERVAL_SECONDS"),
        ({"retry_backoff_seconds": -0.1}, "EE_RETRY_BACKOFF_SECONDS"),
        ({"retry_backoff_seconds": 3, "retry_backoff_cap_seconds": 2}, "EE_RETRY_BACKOFF_CAP"),
        ({"reconcile_window_seconds": 0}, "EE_RECONCILE_WINDOW_SECONDS"),
        ({"cache_tick_seconds": -1}, "EE_CACHE_TICK_SECONDS"),
        ({"cache_account_seconds": -1}, "EE_CACHE_ACCOUNT_SECONDS"),
        ({"cache_margin_seconds": -1}, "EE_CACHE_MARGIN_SECONDS"),
        ({"group_commit_max": 0}, "EE_GROUP_COMMIT_MAX"),
        ({"order_threads": -1}, "EE_ORDER_THREADS"),
        ({"ask_timeout_seconds": 0}, "EE_ASK_TIMEOUT_SECONDS"),
        ({"restart_intensity": -1}, "EE_RESTART_INTENSITY"),
        ({"restart_period_seconds": 0}, "EE_RESTART_PERIOD_SECONDS"),
        ({"disconnect_halt_seconds": 0}, "EE_DISCONNECT_HALT_SECONDS"),
        ({"log_format": "xml"}, "EE_LOG_FORMAT"),
        ({"log_level": "LOUD"}, "EE_LOG_LEVEL"),
        ({"sim_order_send_ms": -1}, "EE_SIM_ORDER_SEND_MS"),
        ({"sim_ipc_ms": -1}, "EE_SIM_IPC_MS"),
    ],
)
def test_invalid_values_name_the_variable(kwargs: dict[str, Any], variable: str) -> None:
    with pytest.raises(ConfigurationError, match=variable) as caught:
        load_settings(**kwargs)
    assert caught.value.code == "CONFIGURATION_ERROR"


@pytest.mark.parametrize(
    ("env", "raw"),
    [
        ("MAX_RETRIES", "-2"),
        ("MAX_RETRIES", "three"),
        ("ORDER_TIMEOUT_SECONDS", "0"),
        ("MIN_MARGIN_CUSHION", "0.5"),
        ("MT5_LOGIN", "abc"),
        ("EE_TERMINAL", "mt4"),
        ("EE_RPYC_PORT", "99999"),
        ("EE_PIP_SIZE_OVERRIDES", "not json"),
        ("EE_PIP_SIZE_OVERRIDES", '{"XAUUSD": "a lot"}'),
        ("EE_PIP_SIZE_OVERRIDES", '{"XAUUSD": -0.1}'),
    ],
)
def test_invalid_environment_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: str, raw: str
) -> None:
    monkeypatch.setenv(env, raw)
    with pytest.raises(ConfigurationError, match=env):
        load_settings()


def test_all_problems_reported_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_RETRIES", "-1")
    monkeypatch.setenv("EE_RPYC_PORT", "0")
    with pytest.raises(ConfigurationError) as caught:
        load_settings(order_timeout_seconds=0)
    message = str(caught.value)
    for variable in ("MAX_RETRIES", "EE_RPYC_PORT", "ORDER_TIMEOUT_SECONDS"):
        assert variable in message


def test_settings_constructor_raises_validation_error() -> None:
    with pytest.raises(ValidationError):
        Settings(max_retries=-1)


@pytest.mark.parametrize(
    ("kwargs", "field", "value"),
    [
        ({"max_slippage_pips": 0}, "max_slippage_pips", 0.0),
        ({"min_margin_cushion": 1.0}, "min_margin_cushion", 1.0),
        ({"rpyc_port": 1}, "rpyc_port", 1),
        ({"rpyc_port": 65535}, "rpyc_port", 65535),
        ({"magic": 2**63 - 1}, "magic", 2**63 - 1),
        ({"client_id_prefix": "abcdefgh"}, "client_id_prefix", "abcdefgh"),
        ({"retry_backoff_seconds": 2, "retry_backoff_cap_seconds": 2}, "retry_backoff_seconds", 2),
        ({"restart_intensity": 0}, "restart_intensity", 0),
    ],
)
def test_edge_values_accepted(kwargs: dict[str, Any], field: str, value: Any) -> None:
    assert getattr(load_settings(**kwargs), field) == value


def test_pip_size_override_lookup() -> None:
    settings = load_settings(pip_size_overrides={"XAUUSD": 0.1})
    assert settings.pip_size_override("XAUUSD") == 0.1
    assert settings.pip_size_override("EURUSD") is None


# --------------------------------------------------------------------------- env files


def test_no_env_file_is_read_by_default(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MAX_RETRIES=9\n")  # tmp_path is the cwd
    assert load_settings().max_retries == 3


def test_env_file_on_request(tmp_path: Path) -> None:
    env_file = tmp_path / "engine.env"
    env_file.write_text("MAX_RETRIES=9\nEE_MAGIC=12\n")
    settings = load_settings(_env_file=env_file)
    assert (settings.max_retries, settings.magic) == (9, 12)


@pytest.mark.parametrize(
    "urls", ["ftp://hooks.example/x-secret", "https://user:x-secret@hooks.example/p", "x-secret"]
)
def test_bad_alert_webhook_urls_are_refused_without_echoing_them(
    monkeypatch: pytest.MonkeyPatch, urls: str
) -> None:
    monkeypatch.setenv("EE_ALERT_WEBHOOK_URL", f"https://ok.example/a,{urls}")
    with pytest.raises(ConfigurationError, match="EE_ALERT_WEBHOOK_URL") as caught:
        load_settings()
    assert "x-secret" not in str(caught.value)


def test_alert_webhook_urls_are_comma_separated_and_secret() -> None:
    settings = load_settings(alert_webhook_url=" https://a.example/T/B/x , http://b:8080/h,")
    assert settings.alert_webhook_urls() == ("https://a.example/T/B/x", "http://b:8080/h")
    assert "a.example" not in repr(settings)


def test_standby_is_implied_by_an_instance_name_or_an_advertised_url() -> None:
    assert not load_settings().standby_enabled
    assert load_settings(EE_INSTANCE_NAME="a").standby_enabled
    assert load_settings(EE_ADVERTISE_URL="http://a.example:8000").standby_enabled
    assert not load_settings(EE_INSTANCE_NAME="a", EE_STANDBY="false").standby_enabled
    with pytest.raises(ConfigurationError, match="EE_ADVERTISE_URL"):
        load_settings(EE_ADVERTISE_URL="a.example:8000")
