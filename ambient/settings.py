"""One settings class for every entry point (env prefix ``AMBIENT_``, ``.env`` supported)."""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from ambient.domain.notify import sender_mailbox
from ambient.domain.users import Language, validate_timezone
from ambient.setting_types import ServerSecret, StrList, UserPath, as_key, is_sender

TASK_QUEUE = "ambient-ops"
# A Kubernetes service link's value (tcp://10.0.0.1:8000, of a Service named ambient-api).
SERVICE_LINK = ("tcp://", "udp://", "sctp://")
# The model `make llm` installs and `--local-llm` serves (ambient/local_llm.py).
LOCAL_LLM_MODEL = "qwen2.5-coder-1.5b-instruct-q4_k_m"
PLACEHOLDER_SECRETS = {"", "changeme", "change-me", "secret", "dev", "development", "placeholder"}
MIN_RETENTION_DAYS = 8  # AMBIENT_RETENTION_DAYS other than 0: past a week of deliver-later


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"
    TEST = "test"


class Settings(BaseSettings):
    """Configuration read from ``AMBIENT_*`` variables, a ``.env`` file, or arguments."""

    # A refusal never quotes what it was given: a model-level one carried every setting (the
    # SMTP password, the secrets) in its error (`cli_group.settings_refusal` says it in one line).
    model_config = SettingsConfigDict(
        env_prefix="AMBIENT_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        hide_input_in_errors=True,
    )

    environment: Environment = Environment.DEVELOPMENT
    data_dir: UserPath = Path(".data")

    # Temporal
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    temporal_task_queue: str = TASK_QUEUE
    temporal_tls: bool = False
    temporal_tls_cert: UserPath | None = None
    temporal_tls_key: UserPath | None = None
    temporal_tls_ca: UserPath | None = None
    temporal_api_key: SecretStr | None = None

    # App database; SQLite under data_dir when unset.
    database_url: str | None = None

    # API / MCP over HTTP
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    public_url: str | None = None
    # Hosts the MCP endpoint accepts besides localhost (DNS-rebinding protection).
    mcp_allowed_hosts: StrList = Field(default_factory=list)
    secret_key: SecretStr = SecretStr("dev-insecure-secret-key")
    # Anyone may register (as a member) without an admin's token. Off: only admins register.
    open_registration: bool = False
    # The pages' language for a user who has not chosen one (and a browser that asks for
    # neither zh nor en). Chinese: the product is for Chinese-speaking teams.
    default_language: Language = Language.ZH

    # Payload encryption (Temporal history): base64 of 32 bytes; `ambient new-payload-key`.
    payload_key: SecretStr | None = None
    payload_key_id: str = "k1"
    # Older keys still able to decrypt, as {"id": "base64 key"} (key rotation).
    payload_old_keys: dict[str, SecretStr] = Field(default_factory=dict)
    # Origins of Temporal Web UIs allowed to call the codec endpoint (CORS).
    codec_cors_origins: StrList = Field(
        default_factory=lambda: ["http://localhost:8233", "http://127.0.0.1:8233"]
    )
    # A token only for the codec endpoint, for a Temporal Web UI that cannot send a user's
    # bearer token: the UI's codec endpoint is then {api}/codec/ui/{token}.
    codec_token: SecretStr | None = None

    # Worker
    metrics_port: int | None = 9464
    max_concurrent_activities: int = 100
    # Workflows kept in the worker's sticky cache (~100 KB of worker memory each). A web
    # monitor's workflow wakes once an hour (its poll, an activity, does the checks), so it
    # need not stay cached: a hand-back replays its run, which RUN_EVENTS keeps short
    # (bench/memory.py measures both). The cache only has to hold a run between tasks that
    # follow each other within seconds (a start and its baseline, a control and the poll's
    # answer): at 20,000 watches 100 runs are the last ~18 s of hand-backs. Raise it for
    # many short-interval threshold watches, whose workflow wakes at every check.
    max_cached_workflows: int = 100
    # Web monitors poll in long-running activities, one per watch, mostly asleep: they have
    # their own allowance on top of max_concurrent_activities.
    max_watch_polls: int = 25_000
    # A worker process that has not said it is alive for this long is dead: live processes
    # hand its polls back to their workflows, which start them again (docs/watches.md).
    worker_dead_after_seconds: float = Field(default=30.0, ge=5.0, le=3600.0)

    # LLM: offline (deterministic) unless an OpenAI-compatible key is set.
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("AMBIENT_OPENAI_API_KEY", "OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("AMBIENT_OPENAI_BASE_URL", "OPENAI_BASE_URL")
    )
    llm_model: str = "gpt-4o-mini"
    # Seconds one LLM request may take; the local model's default is far longer (below).
    llm_timeout: float = Field(default=60.0, gt=0, le=7200)
    # The opt-in local model (`make llm`, `ambient dev --local-llm`): every LLM use goes to
    # llama-server on 127.0.0.1:local_llm_port, whatever key or base URL is set besides.
    local_llm: bool = False
    local_llm_port: int = Field(default=8091, ge=1, le=65535)
    # Weights and the server build; DATA_DIR/llm when unset (share one across checkouts).
    llm_cache_dir: UserPath | None = None
    # The chat agent offers the model, each turn, the best `chat_tools` tools of the full list
    # for the person's words (find_tools' search), plus these pinned ones and any it already
    # called; 0 offers every tool (ambient/agent/chat.py, ToolOffer; docs/agent.md).
    chat_tools: int = Field(default=5, ge=0, le=100)
    chat_pinned_tools: StrList = Field(default_factory=list)
    # Which of the model's calls wait for the person's yes: "writes" (every tool that is not
    # read-only) or "destructive" (only those the tool marks so). A small local model calls a
    # tool on most turns, thanks and small talk included (docs/benchmarks.md), so by default
    # nothing changes on its say-so alone.
    chat_confirm: Literal["writes", "destructive"] = "writes"
    # How much of a conversation's past a turn sends the model, in characters (its turns before
    # are dropped, whole): the local model's 32k tokens hold the tools offered, this and the
    # turn itself (a tool result may be 20,000 characters; Chinese is about a token a character).
    chat_history_chars: int = Field(default=24_000, ge=2_000, le=1_000_000)

    # --- push channels (email, WeCom, DingTalk, webhooks, Apprise) ---
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "ambient-ops@localhost"
    smtp_tls: Literal["none", "starttls", "ssl"] = "starttls"
    # The name the worker greets the server with (EHLO); none: the host's own, as the system
    # finds it (a container's is its bare id, which relays checking the name refuse).
    smtp_helo: str | None = Field(default=None, max_length=255, pattern=r"^[A-Za-z0-9.\-\[\]:]+$")
    # Named secrets that targets reference as `secret:NAME` (bot keys, webhook URLs, ...):
    # {"NAME": "value"} (admins only) or {"NAME": {"value": "...", "users": ["alice"]}}.
    secrets: dict[str, SecretStr | ServerSecret] = Field(default_factory=dict)
    webhook_signing_secret: SecretStr | None = None
    sms_apprise_url: SecretStr | None = None
    wecom_base_url: str = "https://qyapi.weixin.qq.com"
    dingtalk_base_url: str = "https://oapi.dingtalk.com"
    share_link_days: int = Field(default=7, ge=1, le=365)
    # Per user: new share links an hour (0: no limit); a long body renders for seconds.
    share_links_per_hour: int = Field(default=20, ge=0)
    # Each target's send is cut off after this; its delivery lease lasts a little longer. At
    # most 60 s: the notify activity's two minutes (NOTIFY_TIMEOUT) must hold a send and a
    # robot's wait for its turn (TURN_WAIT, 30 s), or Temporal cuts a send mid-post, frees its
    # row, and each try posts it again.
    notify_target_timeout: float = Field(default=30.0, gt=0, le=60)
    # A poll's next try of a failed delivery waits this long, doubling after each (to 16 times).
    notify_retry_seconds: float = Field(default=2.0, ge=0.5, le=60)
    # Targets of one notification sent at the same time.
    notify_concurrency: int = Field(default=8, ge=1, le=64)
    # A delivery whose receiver said "try again later" (greylisting, HTTP 429/503) is retried
    # by Temporal after the delay it asked for until this long after it first said so; 0: not
    # at all past the activity's own retries (docs/notifications.md, "Deliver later").
    notify_give_up_seconds: float = Field(default=3600.0, ge=0, le=7 * 86400)
    # Events, finished deliveries and inbox messages older than this many days are deleted by
    # the workers, once an hour (ambient/storage/retention.py); 0 keeps everything.
    retention_days: int = Field(default=90, ge=0, le=36500)
    # Its first wait when the receiver stated none, doubling (to 15 minutes) while it asks so.
    notify_later_seconds: float = Field(default=60.0, ge=1, le=900)

    # --- Tencent Cloud ---
    tencentcloud_region: str = "ap-guangzhou"
    tencentcloud_endpoint: str | None = None
    tencentcloud_protocol: Literal["https", "http"] = "https"
    # Name of a CAM role bound to the CVM: temporary credentials from instance metadata.
    tencentcloud_cvm_role: str | None = None
    # TKE kubeconfigs for the cluster's internet access (DescribeClusterKubeconfig IsExtranet),
    # not the intranet one: for a worker outside the cluster's VPC.
    tke_extranet: bool = False
    kubeconfig: UserPath | None = None
    # Folder of log files that search_logs may read as topic "file:NAME" (no other paths).
    log_dir: UserPath | None = None

    # --- daily briefing / voice ---
    # Voice devices allowed to call POST /voice/greeting: {"name": "token"} (X-Device-Token).
    voice_device_tokens: dict[str, SecretStr] = Field(default_factory=dict)
    # The API process dials the registered xiaozhi.me endpoints (`ambient xiaozhi endpoint`).
    xiaozhi_bridge: bool = True

    # --- watches ---
    # Non-public networks the web fetcher may reach anyway (e.g. ["10.0.0.0/8"]).
    fetch_allow_cidrs: StrList = Field(default_factory=list)
    # Named metrics for threshold watches: {"name": {"type": "http_json", "url": ..., ...}}.
    metric_catalogue: dict[str, dict[str, Any]] = Field(default_factory=dict)

    # --- graded remediation ---
    # What execute mode changes with: "dry_run" is the global switch that keeps every
    # remediation a dry run; "kubernetes" patches workloads (lightkube).
    remediation_executor: Literal["dry_run", "kubernetes"] = "dry_run"
    # Rungs from this one up wait for a person's approval; 0 turns approval off.
    remediation_approval_from_rung: int = Field(default=3, ge=0, le=6)
    remediation_approval_timeout_minutes: float = Field(default=30, gt=0)
    remediation_settle_seconds: int = Field(default=120, ge=0, le=24 * 3600)
    # Per cluster: changes an hour (0: no limit) and the pause between two changes.
    remediation_rate_limit_per_hour: int = Field(default=10, ge=0)
    remediation_cluster_cooldown_seconds: int = Field(default=60, ge=0)
    # Waiting for a change window or the rate limit longer than this hands over to a person.
    remediation_max_gate_wait_minutes: float = Field(default=240, ge=0)
    # Circuit breaker per (service, rung): opens after this many failures in a row.
    remediation_breaker_failures: int = Field(default=3, ge=0)
    remediation_breaker_open_minutes: float = Field(default=60, ge=0)
    # Blast radius of scale out: at most this many replicas, at most this many more at once.
    remediation_max_replicas: int = Field(default=20, ge=1)
    remediation_max_scale_step: int = Field(default=5, ge=1)
    # How long one change (a rung's apply) may run: a worker killed in it holds the step this
    # long before another worker tries it again.
    remediation_step_timeout_seconds: float = Field(default=30, ge=1, le=600)
    # Who besides a run's owner and the admins may see and steer (approve, refuse, abort) a
    # remediation, by cluster: {"cls-shared*": ["bob", "carol"]} (glob → user names). Sending
    # the same alert again grants nothing: a team that shares a cluster names its approvers here.
    remediation_approvers: dict[str, list[str]] = Field(default_factory=dict)
    # Change windows as [{"days": [1..7], "start": "HH:MM", "end": "HH:MM"}]; empty: any time.
    remediation_change_windows: list[dict[str, Any]] = Field(default_factory=list)
    # Team time zone of change windows and the nightly alert triage.
    remediation_timezone: Annotated[str, AfterValidator(validate_timezone)] = "Asia/Shanghai"
    remediation_triage_at: str = Field(default="05:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    # The user the nightly triage acts as (its permission applies); off when unset.
    remediation_triage_user: str | None = None

    @property
    def llm_mode(self) -> str:
        if self.local_llm:
            return "local"
        return "remote" if self.openai_api_key else "offline"

    @property
    def llm_description(self) -> str:
        """Which model answers, and where: what status pages show."""
        if self.llm_mode == "offline":
            return "offline (deterministic rules, no model)"
        return f"{self.llm_mode} {self.llm_model} at {self.openai_base_url or 'api.openai.com'}"

    @property
    def public_base_url(self) -> str:
        """Where people open the API's pages: public_url, or the API's own address."""
        return self.public_url or f"http://{self.api_host}:{self.api_port}"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        from sqlalchemy.engine import URL  # not for every command that reads its settings

        # Built, not written: a "?", "#" or "%" in the path was read as the URL's own.
        path = str((self.data_dir / "ambient.db").resolve())
        return URL.create("sqlite+aiosqlite", database=path).render_as_string(hide_password=False)

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, url: str | None) -> str | None:
        # Read here, not at the first command that opens it: a URL SQLAlchemy cannot parse
        # (or a driver that cannot run async) left every command with a traceback.
        if not url:
            return url
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            parsed = make_url(url)
        except ArgumentError:
            raise ValueError(
                "not a database URL (e.g. postgresql+asyncpg://user:pass@host:5432/ambient)"
            ) from None
        # The name as written: SQLAlchemy's driver of "postgres://" (libpq's and many hosts'
        # spelling) is a dialect it cannot load, a traceback of its own.
        if parsed.drivername not in ("postgresql+asyncpg", "sqlite+aiosqlite"):
            raise ValueError(
                f"{parsed.drivername!r} is not a database the product runs on: use "
                "postgresql+asyncpg://user:pass@host:5432/ambient (or sqlite+aiosqlite:///PATH)"
            )
        return url

    @field_validator("temporal_address")
    @classmethod
    def _temporal_address(cls, address: str) -> str:
        # A URL or a host alone was taken as typed: "unreachable at localhost", or the SDK's
        # warning about a scheme on the terminal, said nothing of what to write.
        # An http(s):// written before it (which the SDK took, with a warning) is left out.
        given = address.strip()
        plain = re.sub(r"^https?://", "", given, flags=re.IGNORECASE).rstrip("/")
        host, colon, port = plain.rpartition(":")
        if "://" in plain or not colon or not host or not port.isdigit():
            raise ValueError(
                f"{address!r}: host:port of the Temporal frontend "
                "(e.g. localhost:7233, or NAMESPACE.ACCOUNT.tmprl.cloud:7233)"
            )
        return plain

    @field_validator("temporal_tls_cert", "temporal_tls_key", "temporal_tls_ca", mode="before")
    @classmethod
    def _tls_unset(cls, value: Any) -> Any:
        # An empty variable (a template's `AMBIENT_TEMPORAL_TLS_CA=`) is none, not the cwd.
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("temporal_tls_cert", "temporal_tls_key", "temporal_tls_ca")
    @classmethod
    def _tls_file(cls, path: Path | None) -> Path | None:
        # Read at each connect: a wrong path was a FileNotFoundError traceback there.
        if path is not None and not path.is_file():
            raise ValueError(f"{str(path)!r} is not a file (a PEM file the process can read)")
        return path

    @model_validator(mode="after")
    def _tls_pair(self) -> Self:
        # mTLS needs both halves: one alone failed the handshake with the SDK's words.
        if (self.temporal_tls_cert is None) != (self.temporal_tls_key is None):
            raise ValueError(
                "AMBIENT_TEMPORAL_TLS_CERT and AMBIENT_TEMPORAL_TLS_KEY are set together "
                "(the client certificate and its private key), or neither"
            )
        return self

    @field_validator("remediation_change_windows")
    @classmethod
    def _change_windows(cls, windows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        # Read here: a mistyped window ("25:00", day 8) was read by the worker alone, which
        # left with a 115-line traceback while `status` and the API said all was well.

        from ambient.remediation.safety import ChangeWindow

        for number, window in enumerate(windows, 1):
            try:
                ChangeWindow.model_validate(window)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(part) for part in first["loc"])
                said = first["msg"].removeprefix("Value error, ")
                raise ValueError(f"window {number}: {where}: {said}") from None
        return windows

    @field_validator("retention_days")
    @classmethod
    def _long_enough(cls, days: int) -> int:
        if 0 < days < MIN_RETENTION_DAYS:
            raise ValueError(
                f"at least {MIN_RETENTION_DAYS} days (a briefing reads yesterday's events, a "
                "notice may be retried for a week), or 0 to keep everything"
            )
        return days

    @field_validator("payload_key")
    @classmethod
    def _payload_key(cls, key: SecretStr | None) -> SecretStr | None:
        if key is not None:
            as_key(key.get_secret_value(), "")
        return key

    @field_validator("payload_old_keys")
    @classmethod
    def _payload_old_keys(cls, keys: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for key_id, key in keys.items():
            as_key(key.get_secret_value(), f"{key_id!r}: ")
        return keys

    @field_validator("api_port", "metrics_port", "smtp_port", "local_llm_port", mode="before")
    @classmethod
    def _not_a_service_link(cls, value: object, info: ValidationInfo) -> object:
        """Kubernetes puts AMBIENT_API_PORT=tcp://10.0.0.1:8000 in every pod of a namespace
        with a Service named ambient-api (its service links): every command then exited 2 on
        "Input should be a valid integer". Such a value is no port of ours: the default."""
        if isinstance(value, str) and value.startswith(SERVICE_LINK):
            return cls.model_fields[str(info.field_name)].default
        return value

    @field_validator("fetch_allow_cidrs")
    @classmethod
    def _networks(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise ValueError(f"{value!r} is not a network (e.g. 10.0.0.0/8)") from None
        return values

    @model_validator(mode="after")
    def _local_llm_endpoint(self) -> Self:
        # One switch points every client (LLMClient, the chat agent, image descriptions) at the
        # local server: they all read these three fields. llama-server checks no key.
        if self.local_llm:
            self.openai_base_url = f"http://127.0.0.1:{self.local_llm_port}/v1"
            self.openai_api_key = SecretStr("local")
            self.llm_model = LOCAL_LLM_MODEL
            # On 2 cores a cold prompt of the chat agent's whole tool list (~31k tokens) takes
            # minutes; later ones reuse the server's prompt cache.
            if "llm_timeout" not in self.model_fields_set:
                self.llm_timeout = 3600.0
        return self

    @model_validator(mode="after")
    def _smtp_defaults(self) -> Self:
        # Port 465 speaks TLS from the first byte (RFC 8314; smtp.qq.com, smtp.163.com):
        # STARTTLS there waits for a greeting that never comes.
        if self.smtp_port == 465 and "smtp_tls" not in self.model_fields_set:
            self.smtp_tls = "ssl"
        # Mail leaves as the account it logs in with unless a sender is set: providers refuse
        # another one (QQ, 163: "mail from address must be same as authorization user").
        login = self.smtp_username or ""
        if "smtp_from" not in self.model_fields_set:
            if "@" in login and is_sender(login):
                self.smtp_from = login
            return self
        # Read here as a name and an address (the email channel writes From and the envelope's
        # sender from them): "Ops, Beijing <ops@example.com>" went into From as written, two
        # addresses (the first "Ops"); a value holding no one mailbox failed every send.
        try:
            sender_mailbox(self.smtp_from)
        except ValueError as exc:
            raise ValueError(
                f"AMBIENT_SMTP_FROM is not a sender: {exc}; give an address, or a name and an "
                "address (Ops <ops@example.com>)"
            ) from None
        return self

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Self:
        # Development and tests run on embedded defaults; anything else must be configured.
        if self.environment is Environment.PRODUCTION:
            key = self.secret_key.get_secret_value()
            if key.lower() in PLACEHOLDER_SECRETS or key.startswith("dev-insecure"):
                raise ValueError(
                    "AMBIENT_SECRET_KEY is a placeholder; set a random value "
                    "(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
                )
        return self
