"""The accounts an engine trades: `EE_ACCOUNTS_FILE`, or one account `default`.

Not wired into the engine yet: issue 13 builds one BrokerActor per account from
`Accounts.settings_for`. The file is TOML, one table per account::

    [accounts.alpha]
    magic = 770001
    terminal = { kind = "rpyc", host = "10.0.0.5", port = 18812 }
    limits = { max_spread_pips = 3, max_retries = 1 }
    positions = { position_scope = "account" }

    [accounts.beta]
    magic = 770002

    [accounts.beta.terminal]
    kind = "metatrader5"
    path = 'C:\\MT5\\terminal64.exe'
    login = 5001
    server = "Broker-Demo"
    password_env = "MT5_PASSWORD_BETA"

    [accounts.sim]
    magic = 770003
    terminal = { kind = "simulated", seed = 7 }

The file holds no password: a MetaTrader5 account names the environment variable that holds
it (`password_env`), so that the file can be shared by every instance of a standby pair and
shown in a review. Limits and position policies left out fall back to the settings.
Without a file there is one account, `default`, made from today's settings, and
`settings_for("default", settings)` is those settings unchanged.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from core.enums import OppositePolicy, PartialFillPolicy, PositionScope
from core.errors import ConfigurationError
from core.settings import Settings

DEFAULT_ACCOUNT: Final = "default"
"""The account of a set-up without an accounts file (and of an RPM message naming none)."""

ACCOUNT_NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
ACCOUNT_NAME_RULE: Final = (
    "must be 1-64 ASCII letters, digits and _ . - starting with a letter or digit"
)
ACCOUNT_NAME: Final = re.compile(ACCOUNT_NAME_PATTERN.removeprefix("^").removesuffix("$"), re.ASCII)
"""The pattern for `fullmatch`; like decision ids, two names differ only if they look different
(no Unicode look-alikes) and a name fits a metric label, a URL query and an advisory-lock key."""

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}", re.ASCII)


class _Frozen(BaseModel):
    # hide_input_in_errors: a value put where it does not belong may be a password.
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class SimulatedTerminal(_Frozen):
    """The in-process simulated market (`EE_SIM_*`)."""

    kind: Literal["simulated"]
    seed: int = 0
    order_send_ms: float = Field(0.0, ge=0)
    ipc_ms: float = Field(0.0, ge=0)


class RpycTerminal(_Frozen):
    """A terminal behind an rpyc bridge (`EE_RPYC_*`)."""

    kind: Literal["rpyc"]
    host: str = Field(min_length=1)
    port: int = Field(18812, ge=1, le=65535)
    timeout_seconds: float = Field(300.0, gt=0)


class MetaTrader5Terminal(_Frozen):
    """A terminal driven in this process by the MetaTrader5 package (`MT5_*`)."""

    kind: Literal["metatrader5"]
    path: str | None = Field(None, min_length=1)
    login: int | None = Field(None, gt=0)
    server: str | None = Field(None, min_length=1)
    password_env: str | None = None
    """The name of the environment variable holding the password; never the password."""

    @field_validator("password_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.fullmatch(value):
            raise ValueError("must be the name of an environment variable, e.g. MT5_PASSWORD_A")
        return value


TerminalConnection = Annotated[
    SimulatedTerminal | RpycTerminal | MetaTrader5Terminal, Field(discriminator="kind")
]


class AccountLimits(_Frozen):
    """Per-account overrides of the settings' limits; None = the setting's value.

    Each field has the type and bounds of the `Settings` field of the same name (a test
    holds them equal), so an account can never be given what the settings would refuse.
    """

    max_slippage_pips: float | None = Field(None, ge=0)
    order_timeout_seconds: float | None = Field(None, gt=0)
    max_retries: int | None = Field(None, ge=0)
    min_margin_cushion: float | None = Field(None, ge=1.0)
    max_spread_pips: float | None = Field(None, gt=0)
    max_tick_age_seconds: float | None = Field(None, gt=0)


class PositionPolicy(_Frozen):
    """Per-account overrides of the position settings; None = the setting's value."""

    partial_fill_policy: PartialFillPolicy | None = None
    position_scope: PositionScope | None = None
    opposite_positions: OppositePolicy | None = None

    @field_validator("*", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


class Account(_Frozen):
    """One trading account: its terminal, the magic of its orders, its own limits."""

    name: str
    terminal: TerminalConnection
    magic: int = Field(gt=0, le=2**63 - 1)
    limits: AccountLimits = AccountLimits()
    positions: PositionPolicy = PositionPolicy()

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if ACCOUNT_NAME.fullmatch(value) is None:
            raise ValueError(ACCOUNT_NAME_RULE)
        return value


class Accounts(_Frozen):
    """Every account of this engine, in file order; `source` is the file (None: settings)."""

    accounts: tuple[Account, ...] = Field(min_length=1)
    source: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(account.name for account in self.accounts)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def get(self, name: str) -> Account:
        """The account called `name`; KeyError when there is none (UNKNOWN_ACCOUNT)."""
        for account in self.accounts:
            if account.name == name:
                return account
        raise KeyError(name)

    def settings_for(
        self, name: str, base: Settings, environ: Mapping[str, str] | None = None
    ) -> Settings:
        """`base` with account `name`'s terminal, password, magic, limits and policies.

        Without a file this is `base` itself. The password is read from the variable the
        account names, now (never kept in `Accounts`).
        """
        account = self.get(name)
        if self.source is None:
            return base
        update: dict[str, Any] = {"magic": account.magic, **_terminal_settings(account)}
        update.update(account.limits.model_dump(exclude_none=True))
        update.update(account.positions.model_dump(exclude_none=True))
        terminal = account.terminal
        if isinstance(terminal, MetaTrader5Terminal):
            update["mt5_password"] = _password(self.source, account, environ)
        try:
            return Settings.model_validate({**base.model_dump(), **update})
        except ValidationError as exc:
            raise ConfigurationError(_describe(self.source, name, exc)) from exc


_SETTING_OF: Final[dict[str, dict[str, str]]] = {
    "simulated": {"seed": "sim_seed", "order_send_ms": "sim_order_send_ms", "ipc_ms": "sim_ipc_ms"},
    "rpyc": {"host": "rpyc_host", "port": "rpyc_port", "timeout_seconds": "rpyc_timeout_seconds"},
    "metatrader5": {"path": "mt5_terminal", "login": "mt5_login", "server": "mt5_server"},
}
"""Each terminal kind's connection fields -> the `Settings` field each stands for."""


def _terminal_settings(account: Account) -> dict[str, Any]:
    terminal = account.terminal
    names = _SETTING_OF[terminal.kind]
    return {"terminal": terminal.kind, **{names[f]: getattr(terminal, f) for f in names}}


def _password(source: str, account: Account, environ: Mapping[str, str] | None) -> SecretStr | None:
    terminal = account.terminal
    assert isinstance(terminal, MetaTrader5Terminal)
    if terminal.password_env is None:
        return None  # a terminal already logged in needs none
    value = (os.environ if environ is None else environ).get(terminal.password_env, "")
    if not value:
        raise ConfigurationError(
            f"accounts file {source}: account {account.name!r}: terminal.password_env: "
            f"environment variable {terminal.password_env} is not set"
        )
    return SecretStr(value)


def default_accounts(settings: Settings) -> Accounts:
    """The one account `default` of a set-up without an accounts file."""
    names = _SETTING_OF[settings.terminal]
    connection: dict[str, Any] = {f: getattr(settings, s) for f, s in names.items()}
    if settings.terminal == "metatrader5" and settings.mt5_password is not None:
        connection["password_env"] = "MT5_PASSWORD"  # noqa: S105 (a variable name)
    account = Account.model_validate(
        {
            "name": DEFAULT_ACCOUNT,
            "terminal": {"kind": settings.terminal, **connection},
            "magic": settings.magic,
        }
    )
    return Accounts(accounts=(account,))


def load_accounts(settings: Settings, environ: Mapping[str, str] | None = None) -> Accounts:
    """The accounts of `settings.accounts_file`, or `default_accounts(settings)` without one.

    Raises ConfigurationError naming the file, the account and the field, never a value.
    Every password variable the file names must be set in `environ` (default: os.environ).
    """
    path = settings.accounts_file
    if path is None:
        return default_accounts(settings)
    try:
        with open(path, "rb") as file:
            document = tomllib.load(file)
    except OSError as exc:
        raise ConfigurationError(f"accounts file {path}: cannot be read ({exc.strerror})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"accounts file {path}: not valid TOML: {exc}") from exc
    accounts = parse_accounts(document, path)
    for account in accounts.accounts:
        if isinstance(account.terminal, MetaTrader5Terminal):
            _password(path, account, environ)
    return accounts


def parse_accounts(document: Mapping[str, Any], source: str) -> Accounts:
    """The accounts of a parsed accounts file; `source` names it in errors."""
    where = f"accounts file {source}"
    unknown = sorted(set(document) - {"accounts"})
    if unknown:
        raise ConfigurationError(
            f"{where}: unknown top-level key {unknown[0]!r}: accounts are [accounts.<name>] tables"
        )
    tables = document.get("accounts")
    if not isinstance(tables, dict) or not tables:
        raise ConfigurationError(f"{where}: no accounts: add an [accounts.<name>] table")
    accounts: list[Account] = []
    problems: list[str] = []
    for name, table in tables.items():
        if not isinstance(table, dict):
            problems.append(f"account {name!r}: must be a table ([accounts.{name}])")
            continue
        if "name" in table:
            problems.append(f"account {name!r}: name: the table's key is the account's name")
            continue
        try:
            accounts.append(Account.model_validate({"name": name, **table}))
        except ValidationError as exc:
            problems.extend(_problems(name, exc))
    problems.extend(_clashes(accounts))
    if problems:
        raise ConfigurationError(f"{where}: " + "; ".join(problems))
    return Accounts(accounts=tuple(accounts), source=source)


def _problems(name: str, error: ValidationError) -> list[str]:
    found = []
    for item in error.errors():
        # The discriminated union puts the kind in the path (terminal.rpyc.port): drop it.
        loc = [str(part) for part in item["loc"]]
        if len(loc) > 2 and loc[0] == "terminal" and loc[1] in {"simulated", "rpyc", "metatrader5"}:
            del loc[1]
        field = ".".join(loc) if loc != ["name"] else "name"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "union_tag_invalid":
            message = "kind must be one of simulated, rpyc, metatrader5"
        elif item["type"] == "extra_forbidden" and loc[-1] == "password":
            message = "no passwords in the accounts file: name their variable in password_env"
        found.append(f"account {name!r}: {field}: {message}")
    return found


def _clashes(accounts: list[Account]) -> list[str]:
    problems = []
    native = [a.name for a in accounts if isinstance(a.terminal, MetaTrader5Terminal)]
    if len(native) > 1:
        problems.append(
            f"accounts {', '.join(map(repr, native))}: the MetaTrader5 package drives one "
            'terminal per process: give the others an rpyc bridge (kind = "rpyc")'
        )
    bridges: dict[tuple[str, int], str] = {}
    for account in accounts:
        terminal = account.terminal
        if isinstance(terminal, RpycTerminal):
            other = bridges.setdefault((terminal.host.lower(), terminal.port), account.name)
            if other != account.name:
                problems.append(
                    f"accounts {other!r} and {account.name!r}: the same rpyc bridge "
                    f"{terminal.host}:{terminal.port} (one terminal trades one account)"
                )
    return problems


def _describe(source: str, name: str, error: ValidationError) -> str:
    fields = sorted({str(item["loc"][0]) for item in error.errors() if item["loc"]})
    return (
        f"accounts file {source}: account {name!r}: the settings refuse its "
        f"{', '.join(fields) or 'values'}: "
        + "; ".join(item["msg"].removeprefix("Value error, ") for item in error.errors())
    )


__all__ = [
    "ACCOUNT_NAME",
    "ACCOUNT_NAME_PATTERN",
    "ACCOUNT_NAME_RULE",
    "DEFAULT_ACCOUNT",
    "Account",
    "AccountLimits",
    "Accounts",
    "MetaTrader5Terminal",
    "PositionPolicy",
    "RpycTerminal",
    "SimulatedTerminal",
    "TerminalConnection",
    "default_accounts",
    "load_accounts",
    "parse_accounts",
]
