"""The engine's configuration: one frozen `Settings`, read from environment variables.

Variables the seeds name keep their names (`MAX_SLIPPAGE_PIPS`, `MT5_LOGIN`, `POSTGRES_URL`,
...); everything else is `EE_`-prefixed. Python attribute names are the snake_case
variable names without the `EE_` prefix (`EE_MAX_SPREAD_PIPS` -> `max_spread_pips`).
Keyword arguments by Python name (or by variable name) override the environment.

Build it with `load_settings()`, which turns a validation failure into a
`ConfigurationError` naming the variables. There is no module-level instance: importing this
module reads nothing. No `.env` file is read unless `_env_file=` is passed, and such a file
may hold only the engine's variables: unknown names are refused there as they are in keyword
arguments, where they are most likely typos.
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal, Self

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from core.enums import OppositePolicy, PartialFillPolicy, PositionScope
from core.errors import ConfigurationError
from core.rules import CLIENT_ID_PREFIX_RE

TerminalKind = Literal["simulated", "metatrader5", "rpyc"]
LogFormat = Literal["text", "json"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

#: API roles, weakest first (DESIGN.md, "Interfaces").
API_ROLES: tuple[str, ...] = ("viewer", "trader", "admin")

#: A shorter EE_AUDIT_KEY is guessable; `openssl rand -hex 32` makes a good one.
_MIN_AUDIT_KEY_LENGTH = 16

_WEBHOOK_URL = re.compile(r"(?i)https?://[^/\s?#@]+(?:[/?#]\S*)?")
"""A webhook: http(s), a host (no user:password@ part), anything after it."""

# Values copied from examples and templates; refused when a real terminal is configured.
_PLACEHOLDER_SECRETS = frozenset({"changeme", "changethis", "password", "secret"})


class Settings(BaseSettings):
    """Every knob of the engine. Frozen: pass a new `Settings` instead of mutating one."""

    model_config = SettingsConfigDict(
        frozen=True,
        populate_by_name=True,
        extra="forbid",
        case_sensitive=False,
        env_ignore_empty=True,  # `export MAX_RETRIES=` means "unset", not "invalid".
        hide_input_in_errors=True,  # a rejected value may be a secret.
    )

    # --- the seeds' variables -------------------------------------------------------------
    max_slippage_pips: float = Field(
        10.0,
        ge=0,
        validation_alias="MAX_SLIPPAGE_PIPS",
        description="Largest slippage the broker may give, sent as order_send `deviation`.",
    )
    order_timeout_seconds: float = Field(
        60.0,
        gt=0,
        validation_alias="ORDER_TIMEOUT_SECONDS",
        description="How long a submitted order is watched before it is removed and EXPIRES.",
    )
    max_retries: int = Field(
        3,
        ge=0,
        validation_alias="MAX_RETRIES",
        description="Resends after clean rejections (requote, price changed, ...); 0 = none.",
    )
    min_margin_cushion: float = Field(
        1.5,
        ge=1.0,
        validation_alias="MIN_MARGIN_CUSHION",
        description="Free margin must cover the order's margin times this factor.",
    )
    mt5_login: int | None = Field(
        None, gt=0, validation_alias="MT5_LOGIN", description="Trading account number."
    )
    mt5_password: SecretStr | None = Field(
        None, validation_alias="MT5_PASSWORD", description="Trading account password."
    )
    mt5_server: str | None = Field(
        None, validation_alias="MT5_SERVER", description="Broker trade server name."
    )
    mt5_terminal: str | None = Field(
        None, validation_alias="MT5_TERMINAL", description="Path to terminal64.exe."
    )
    postgres_url: SecretStr | None = Field(
        None,
        # DATABASE_URL wins when both are set: it is the more specific, deployment-level name.
        validation_alias=AliasChoices("DATABASE_URL", "POSTGRES_URL"),
        description="SQLAlchemy URL of the store; unset = the embedded SQLite file.",
    )

    # --- accounts --------------------------------------------------------------------------
    accounts_file: str | None = Field(
        None,
        min_length=1,
        validation_alias="EE_ACCOUNTS_FILE",
        description="TOML file of the accounts this engine trades (terminal, magic, limits "
        "per account; `core.accounts`); unset = one account `default` from these settings.",
    )
    """Read by `core.accounts.load_accounts`; the file names no password itself, only the
    environment variable holding it, so it can be shared by every instance of a standby
    pair. Unset keeps the one-terminal set-up: an account `default` built from the terminal,
    magic, limit and position-policy settings here."""

    # --- hot standby (PostgreSQL) ----------------------------------------------------------
    standby: bool | None = Field(
        None,
        validation_alias="EE_STANDBY",
        description="Share the database with other instances: each account is traded by the "
        "instance holding its lease; unset = on when EE_ADVERTISE_URL or EE_INSTANCE_NAME is set.",
    )
    """Off (the default) keeps the single-instance engine exactly as it was. On, `serve` needs
    PostgreSQL: accounts are leased (`storage.lease`), intents are fenced, and halts are pushed
    to every instance (`storage.notify`)."""
    instance_name: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        validation_alias="EE_INSTANCE_NAME",
        description="This instance's name in the lease table and in 503 answers; "
        "unset = host name and process id.",
    )
    advertise_url: str | None = Field(
        None,
        min_length=1,
        validation_alias="EE_ADVERTISE_URL",
        description="Base URL other instances redirect (307) an account's trades to while "
        "this instance owns it; unset = they answer 503 naming this instance.",
    )
    takeover_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        validation_alias="EE_TAKEOVER_SECONDS",
        description="A standby trades an account at most this long after its owner died "
        "(lease checks run five times per period; a new owner waits two checks first).",
    )

    # --- terminal --------------------------------------------------------------------------
    terminal: TerminalKind = Field(
        "simulated",
        validation_alias="EE_TERMINAL",
        description="simulated (in-process), metatrader5 (Windows), or rpyc (bridge).",
    )
    rpyc_host: str = Field(
        "127.0.0.1", min_length=1, validation_alias="EE_RPYC_HOST", description="rpyc bridge host."
    )
    rpyc_port: int = Field(
        18812, ge=1, le=65535, validation_alias="EE_RPYC_PORT", description="rpyc bridge port."
    )
    rpyc_timeout_seconds: float = Field(
        300.0,
        gt=0,
        validation_alias="EE_RPYC_TIMEOUT_SECONDS",
        description="rpyc call timeout; above the ~60 s a terminal initialize() can take.",
    )

    # --- validation and submission ---------------------------------------------------------
    max_spread_pips: float = Field(
        5.0,
        gt=0,
        validation_alias="EE_MAX_SPREAD_PIPS",
        description="Orders are rejected while the spread is wider than this.",
    )
    max_tick_age_seconds: float = Field(
        10.0,
        gt=0,
        validation_alias="EE_MAX_TICK_AGE_SECONDS",
        description="A quote older than this is no quote (MT5 has no trading-hours API).",
    )
    magic: int = Field(
        770001,
        # 0 is what manual trades carry; BIGINT columns hold at most 2**63 - 1.
        gt=0,
        le=2**63 - 1,
        validation_alias="EE_MAGIC",
        description="order_send `magic` of this engine instance; reconciliation keys on it.",
    )
    client_id_prefix: str = Field(
        "ee",
        validation_alias="EE_CLIENT_ID_PREFIX",
        description="Prefix of the client id sent as the order comment (1-8 of [A-Za-z0-9_]).",
    )
    pip_size_overrides: dict[str, float] = Field(
        default_factory=dict,
        validation_alias="EE_PIP_SIZE_OVERRIDES",
        description='Pip size per symbol, JSON, e.g. {"XAUUSD": 0.1}.',
    )
    partial_fill_policy: PartialFillPolicy = Field(
        PartialFillPolicy.ACCEPT,
        validation_alias="EE_PARTIAL_FILL_POLICY",
        description="accept: a partial fill is final; complete: re-submit the remainder.",
    )
    position_scope: PositionScope = Field(
        PositionScope.ENGINE,
        validation_alias="EE_POSITION_SCOPE",
        description="engine: act only on positions with the engine's magic; "
        "account: on every position of the symbol.",
    )
    opposite_positions: OppositePolicy = Field(
        OppositePolicy.REDUCE,
        validation_alias="EE_OPPOSITE_POSITIONS",
        description="reduce: on a hedging account an opposite trade closes open positions "
        "(FIFO) before opening the remainder; hedge: it opens a new position beside them.",
    )
    poll_interval_seconds: float = Field(
        0.1,
        gt=0,
        validation_alias="EE_POLL_INTERVAL_SECONDS",
        description="Period of the broker's one shared poll of watched orders.",
    )
    retry_backoff_seconds: float = Field(
        0.2,
        ge=0,
        validation_alias="EE_RETRY_BACKOFF_SECONDS",
        description="Back-off before the first resend; doubles per retry.",
    )
    retry_backoff_cap_seconds: float = Field(
        2.0,
        ge=0,
        validation_alias="EE_RETRY_BACKOFF_CAP_SECONDS",
        description="Longest back-off between resends.",
    )
    reconcile_window_seconds: float = Field(
        30.0,
        gt=0,
        validation_alias="EE_RECONCILE_WINDOW_SECONDS",
        description="After this long past a submit, an order the terminal lacks never happened.",
    )

    # --- broker cache ----------------------------------------------------------------------
    cache_tick_seconds: float = Field(
        0.05,
        ge=0,
        validation_alias="EE_CACHE_TICK_SECONDS",
        description="Ticks younger than this are shared instead of re-read; 0 = no cache.",
    )
    cache_account_seconds: float = Field(
        0.25,
        ge=0,
        validation_alias="EE_CACHE_ACCOUNT_SECONDS",
        description="Freshness window of account_info.",
    )
    cache_margin_seconds: float = Field(
        1.0,
        ge=0,
        validation_alias="EE_CACHE_MARGIN_SECONDS",
        description="Freshness window of margin per lot.",
    )

    # --- persistence and actors ------------------------------------------------------------
    group_commit_max: int = Field(
        64,
        ge=1,
        validation_alias="EE_GROUP_COMMIT_MAX",
        description="Most writes grouped into one transaction.",
    )
    ask_timeout_seconds: float = Field(
        30.0,
        gt=0,
        validation_alias="EE_ASK_TIMEOUT_SECONDS",
        description="Timeout of an actor ask (and of the supervisor's heartbeat).",
    )
    order_threads: int = Field(
        8,
        ge=0,
        le=1024,
        validation_alias="EE_ORDER_THREADS",
        description="Threads the OrderActors share (a bounded pool: OrderActors never "
        "block, so a few threads run any number of executions); 0 = a thread for each "
        "execution in flight.",
    )
    restart_intensity: int = Field(
        5,
        ge=0,
        validation_alias="EE_RESTART_INTENSITY",
        description="Restarts allowed per period before the supervisor halts trading.",
    )
    restart_period_seconds: float = Field(
        10.0,
        gt=0,
        validation_alias="EE_RESTART_PERIOD_SECONDS",
        description="The period of restart_intensity.",
    )
    terminal_wait_seconds: float = Field(
        10.0,
        gt=0,
        validation_alias="EE_TERMINAL_WAIT_SECONDS",
        description="A send waits at most this long for a terminal that does not answer "
        "(link down, or a call unanswered this long); then it is REJECTED / NOT_SENT.",
    )
    disconnect_halt_seconds: float = Field(
        30.0,
        gt=0,
        validation_alias="EE_DISCONNECT_HALT_SECONDS",
        description="A terminal disconnected this long halts trading.",
    )

    gc_freeze_on_start: bool = Field(
        True,
        validation_alias="EE_GC_FREEZE_ON_START",
        description="After start-up, exempt every object that exists from garbage "
        "collection (gc.freeze): full collections then walk only what came later.",
    )

    # --- the audit journal -----------------------------------------------------------------
    audit_key: SecretStr | None = Field(
        None,
        validation_alias="EE_AUDIT_KEY",
        description="Secret of the journal's HMAC chain and of signed checkpoints (16+ chars); "
        "unset = plain SHA-256.",
    )
    audit_checkpoint_seconds: float = Field(
        60.0,
        gt=0,
        validation_alias="EE_AUDIT_CHECKPOINT_SECONDS",
        description="Period of the journal-head checkpoint (also written at shutdown).",
    )
    audit_checkpoint_file: str | None = Field(
        None,
        min_length=1,
        validation_alias="EE_AUDIT_CHECKPOINT_FILE",
        description="File each checkpoint is appended to, one JSON line (outside the database).",
    )

    # --- alerts pushed by the engine ----------------------------------------------------
    alert_webhook_url: SecretStr | None = Field(
        None,
        validation_alias="EE_ALERT_WEBHOOK_URL",
        description="Webhook URL(s), comma-separated, that receive a Slack-compatible JSON "
        "alert on a halt, reduce-only, flatten, restart-intensity escalation, terminal "
        "disconnect, journal write failure or failed reconciliation; unset = no alerts.",
    )
    alert_timeout_seconds: float = Field(
        3.0,
        gt=0,
        le=30,
        validation_alias="EE_ALERT_TIMEOUT_SECONDS",
        description="Limit of one webhook POST; a failed one is retried with back-off.",
    )

    # --- API and logging -------------------------------------------------------------------
    api_tokens: SecretStr | None = Field(
        None,
        validation_alias="EE_API_TOKENS",
        description="Bearer tokens, 'role:token,role:token'; roles viewer, trader, admin.",
    )
    log_format: LogFormat = Field(
        "text", validation_alias="EE_LOG_FORMAT", description="text or json."
    )
    log_level: LogLevel = Field(
        "INFO", validation_alias="EE_LOG_LEVEL", description="Python logging level name."
    )

    # --- simulated terminal ----------------------------------------------------------------
    sim_seed: int = Field(
        0, validation_alias="EE_SIM_SEED", description="Seed of the simulated market."
    )
    sim_order_send_ms: float = Field(
        0.0,
        ge=0,
        validation_alias="EE_SIM_ORDER_SEND_MS",
        description="Simulated order_send latency (a server round trip).",
    )
    sim_ipc_ms: float = Field(
        0.0,
        ge=0,
        validation_alias="EE_SIM_IPC_MS",
        description="Simulated latency of the local info calls.",
    )

    @field_validator(
        "terminal",
        "log_format",
        "partial_fill_policy",
        "position_scope",
        "opposite_positions",
        mode="before",
    )
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("client_id_prefix")
    @classmethod
    def _client_id_prefix(cls, value: str) -> str:
        if not CLIENT_ID_PREFIX_RE.match(value):
            raise ValueError("must be 1-8 characters of [A-Za-z0-9_]")
        return value

    @field_validator("pip_size_overrides")
    @classmethod
    def _pip_sizes(cls, value: dict[str, float]) -> dict[str, float]:
        bad = sorted(s for s, pip in value.items() if not (math.isfinite(pip) and pip > 0))
        if bad:
            raise ValueError(f"pip sizes must be positive numbers; not for {', '.join(bad)}")
        return value

    @field_validator("api_tokens")
    @classmethod
    def _api_tokens_format(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _parse_api_tokens(value.get_secret_value())
        return value

    @field_validator("audit_key")
    @classmethod
    def _audit_key_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < _MIN_AUDIT_KEY_LENGTH:
            raise ValueError(f"must be at least {_MIN_AUDIT_KEY_LENGTH} characters")
        return value

    @field_validator("advertise_url")
    @classmethod
    def _advertise_url_format(cls, value: str | None) -> str | None:
        if value is not None and not _WEBHOOK_URL.fullmatch(value.strip()):
            raise ValueError("must be http:// or https:// with a host")
        return value

    @field_validator("alert_webhook_url")
    @classmethod
    def _alert_urls_format(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            for url in value.get_secret_value().split(","):
                if url.strip() and not _WEBHOOK_URL.fullmatch(url.strip()):
                    raise ValueError("each URL must be http:// or https:// with a host")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.retry_backoff_cap_seconds < self.retry_backoff_seconds:
            raise ValueError("EE_RETRY_BACKOFF_CAP_SECONDS must be >= EE_RETRY_BACKOFF_SECONDS")
        if self.terminal != "simulated":
            self._refuse_placeholder_secrets()
        return self

    def _refuse_placeholder_secrets(self) -> None:
        # Only against a real terminal: tests and demos on the simulator may use anything.
        if self.mt5_password is not None and _is_placeholder(self.mt5_password.get_secret_value()):
            raise ValueError(f"MT5_PASSWORD is a placeholder value (EE_TERMINAL={self.terminal})")
        if any(_is_placeholder(token) for token in self.api_token_roles()):
            raise ValueError(
                f"EE_API_TOKENS holds a placeholder token (EE_TERMINAL={self.terminal})"
            )

    def alert_webhook_urls(self) -> tuple[str, ...]:
        """The plain EE_ALERT_WEBHOOK_URL URLs (none when unset)."""
        if self.alert_webhook_url is None:
            return ()
        raw = self.alert_webhook_url.get_secret_value().split(",")
        return tuple(url.strip() for url in raw if url.strip())

    def audit_key_secret(self) -> str | None:
        """The plain EE_AUDIT_KEY, or None when the chain is not keyed."""
        return self.audit_key.get_secret_value() if self.audit_key is not None else None

    @property
    def standby_enabled(self) -> bool:
        """EE_STANDBY, or implied by EE_ADVERTISE_URL / EE_INSTANCE_NAME when unset."""
        if self.standby is not None:
            return self.standby
        return self.advertise_url is not None or self.instance_name is not None

    @property
    def database_url(self) -> str | None:
        """The plain database URL (DATABASE_URL, else POSTGRES_URL), or None for SQLite."""
        return self.postgres_url.get_secret_value() if self.postgres_url is not None else None

    def api_token_roles(self) -> dict[str, str]:
        """Bearer token -> role, from EE_API_TOKENS (empty when unset)."""
        if self.api_tokens is None:
            return {}
        return _parse_api_tokens(self.api_tokens.get_secret_value())

    def pip_size_override(self, symbol: str) -> float | None:
        """The configured pip size of `symbol`, if any."""
        return self.pip_size_overrides.get(symbol)


def _is_placeholder(secret: str) -> bool:
    return secret.strip().lower() in _PLACEHOLDER_SECRETS


def _parse_api_tokens(raw: str) -> dict[str, str]:
    # Error messages name the entry's position, never its text: the text is a token.
    roles: dict[str, str] = {}
    for position, entry in enumerate((e.strip() for e in raw.split(",")), start=1):
        if not entry:
            continue
        role, sep, token = entry.partition(":")
        role, token = role.strip().lower(), token.strip()
        if not sep or not token:
            raise ValueError(f"entry {position} is not 'role:token'")
        if role not in API_ROLES:
            raise ValueError(f"entry {position} has an unknown role; roles: {', '.join(API_ROLES)}")
        if roles.get(token, role) != role:
            raise ValueError(f"entry {position} gives a token a second role")
        roles[token] = role
    return roles


def _env_names() -> dict[str, str]:
    """Field name and every accepted variable name (lower case) -> the variable name(s)."""
    names: dict[str, str] = {}
    for field_name, info in Settings.model_fields.items():
        alias = info.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias or field_name]
        shown = " or ".join(str(c) for c in choices)
        for key in (field_name, *(str(c) for c in choices)):
            names[key.lower()] = shown
    return names


def _describe(error: ValidationError) -> str:
    names = _env_names()
    problems = []
    for item in error.errors():
        loc, msg = item["loc"], item["msg"].removeprefix("Value error, ")
        problems.append(f"{names.get(str(loc[0]).lower(), loc[0])}: {msg}" if loc else msg)
    return "invalid configuration: " + "; ".join(problems)


def _describe_unparsable(error: SettingsError) -> str:
    # pydantic-settings fails before validation when a JSON-typed variable is not JSON, and
    # names the field, not the variable.
    found = re.search(r'field "(\w+)"', str(error))
    where = _env_names().get(found.group(1).lower(), found.group(1)) if found else "settings"
    return f"invalid configuration: {where}: not valid JSON"


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with `overrides` (by Python or variable name) on top.

    Raises ConfigurationError naming every invalid variable (never its value).
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc)) from exc
    except SettingsError as exc:
        raise ConfigurationError(_describe_unparsable(exc)) from exc


__all__ = ["API_ROLES", "LogFormat", "LogLevel", "Settings", "TerminalKind", "load_settings"]
