"""Service configuration, read once from the environment (or ``.env``).

Every setting has a documented default so the service runs with no configuration at all: with no
``DATABASE_URL`` / ``REDIS_URL`` it starts embedded PostgreSQL (pgvector) and Redis under
``DATA_DIR``; with them set it uses those servers.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from limits import parse_many
from pydantic import Field, IPvAnyNetwork, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: Checkout root (``src/support_agent/settings.py`` → three parents up).
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _default_shared_data() -> Path:
    """Where the public data sets live: ``../shared/data`` next to the checkout."""
    return PROJECT_ROOT.parent / "shared" / "data"


class Settings(BaseSettings):
    """All configuration of the service.

    Attributes:
        database_url: PostgreSQL URL (``postgresql://...``). ``None`` starts embedded PostgreSQL
            with pgvector under ``data_dir/pg``.
        redis_url: Redis URL (``redis://...`` or ``unix://...``). ``None`` starts an embedded
            redis-server under ``data_dir/redis``.
        redis_cluster: ``REDIS_URL`` is one node of a Redis Cluster (the client finds the
            others; every key of one customer shares a hash tag, so no command spans slots).
        data_dir: Directory for embedded servers and built models; default ``.data/`` in the
            checkout (git-ignored).
        shared_data_dir: Directory with the public data sets (``tau2-retail`` etc.).
        tenant_packs_dir: optional directory of extra tenant packs (``<dir>/<tenant>/``), searched
            before the built-in packs.
        openai_api_key / openai_base_url / llm_model: optional OpenAI-compatible chat model. With
            no key and no base URL the agent runs fully deterministic (templates).
        llm_timeout_s: seconds before a chat model call is abandoned (the template reply is
            kept). Default 20.
        embedding_model: ``"minilm"`` (local all-MiniLM-L6-v2, 384 dims, default) or ``"openai"``.
        openai_embedding_model: the OpenAI-compatible embedding model used with
            ``embedding_model="openai"`` (truncated to 384 dimensions). Default
            ``text-embedding-3-small``.
        session_idle_timeout_s: a session with no message for this many seconds is ended by the
            idle sweep (its episode is written). Default 1800 s (30 min).
        hot_ttl_s: TTL of the hot Customer 360 in Redis, seconds. Default 3600 (1 hour).
        turn_lock_wait_s: how long a message waits for the previous message of the same session
            to be answered before it is refused with 409 ``TURN_IN_PROGRESS``. Default 30 s.
        rate_limit: requests per API key, in the ``limits`` notation (``"120/minute"``,
            ``"10/second;600/hour"``); a tenant pack's ``rate_limit`` overrides it. Default
            ``"600/minute"``. Counted in Redis (fixed window per key); when Redis is down requests
            are not limited (the service keeps answering).
        trusted_proxies: the reverse proxies in front of the API (CIDRs or addresses,
            comma-separated in ``TRUSTED_PROXIES``). Empty (default): the socket peer is the
            client; otherwise a request from one of them is the right-most address of
            ``X-Forwarded-For`` that is not a trusted proxy.
        visitor_rate_limit: requests per client address with a publishable (widget) key,
            counted before the key's own limit (a refused request costs the tenant nothing).
            Default ``"30/minute;300/hour"``.
        session_rate_limit: requests per widget session and per verified customer (each
            counted apart). Default ``"20/minute;200/hour"``.
        auth_failure_rate_limit: requests without a valid key per client address; over it the
            address is refused (429) before any key is looked up. Default ``"20/minute"``.
        customer_token_max_age_s: the longest lifetime (``exp - iat``, seconds) of a site's
            signed customer token; longer-lived tokens and tokens without ``iat`` are refused.
            Default 3600.
        db_pool_timeout_s: how long a call waits for a PostgreSQL connection before it fails
            with 503 ``SERVICE_UNAVAILABLE`` (seconds). Default 2: calls fail fast while the
            database is down.
        default_tenant: tenant used by the CLI when none is given.
        memory_worker: ``serve`` runs a memory pipeline worker in-process (default True); turn
            off when dedicated ``support-agent worker`` processes run.
        api_workers: API processes ``serve`` starts (uvicorn workers sharing the port, the
            embedded servers and everything else); default: the machine's CPU cores.
        code_sender: how one-time verification codes reach the customer: ``file`` (development
            and tests: one JSON line per code in ``code_outbox``, never logged) or ``smtp``
            (email through ``smtp_*``, with ``aiosmtplib``).
        code_outbox: the ``file`` sender's file; default ``data_dir/outbox/codes.jsonl``.
        smtp_host / smtp_port / smtp_username / smtp_password / smtp_from / smtp_starttls: the
            SMTP server of the ``smtp`` sender (port 587 with STARTTLS by default).
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str | None = None
    redis_url: str | None = None
    redis_cluster: bool = False
    data_dir: Path = Field(default_factory=lambda: PROJECT_ROOT / ".data")
    shared_data_dir: Path = Field(default_factory=_default_shared_data)
    tenant_packs_dir: Path | None = None

    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    llm_model: str = "gpt-4o-mini"
    llm_timeout_s: float = 20.0

    embedding_model: str = "minilm"
    openai_embedding_model: str = "text-embedding-3-small"

    session_idle_timeout_s: int = 1800
    hot_ttl_s: int = 3600
    turn_lock_wait_s: float = 30.0
    rate_limit: str = "600/minute"
    trusted_proxies: Annotated[list[IPvAnyNetwork], NoDecode] = Field(default_factory=list)
    visitor_rate_limit: str = "30/minute;300/hour"
    session_rate_limit: str = "20/minute;200/hour"
    auth_failure_rate_limit: str = "20/minute"
    customer_token_max_age_s: int = Field(default=3600, ge=60)
    db_pool_timeout_s: float = 2.0
    default_tenant: str = "retail"
    memory_worker: bool = True

    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_workers: int | None = Field(default=None, ge=1, le=64)
    log_level: str = "INFO"

    code_sender: str = Field(default="file", pattern="^(file|smtp)$")
    code_outbox: Path | None = None
    smtp_host: str = "localhost"
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "support@localhost"
    smtp_starttls: bool = True

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """``TRUSTED_PROXIES=10.0.0.0/8, 192.168.1.7``: one network or address per item."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("visitor_rate_limit", "session_rate_limit", "auth_failure_rate_limit")
    @classmethod
    def _limits_parse(cls, value: str) -> str:
        """A limit in the ``limits`` notation (a ValueError names what it could not read)."""
        parse_many(value)
        return value

    @property
    def llm_enabled(self) -> bool:
        """True when an OpenAI-compatible chat model is configured (key or base URL)."""
        return self.openai_api_key is not None or self.openai_base_url is not None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Return the process-wide settings (read from the environment once)."""
    return Settings()
