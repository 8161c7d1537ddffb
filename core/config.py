"""Settings, read once from the environment into a typed object.

A bad value stops start-up with :class:`ConfigError`, whose message is one line
naming the variable, so the operator knows exactly what to fix.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from core.secret import Secret


class ConfigError(Exception):
    """One bad setting; ``str()`` is the line shown to the operator."""


TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off", ""}


@dataclasses.dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    base_url: str
    http_host: str
    http_port: int
    secret_key: Secret
    slack_bot_token: Secret
    slack_signing_secret: Secret
    slack_app_token: Secret
    slack_api_url: str
    support_channel: str
    support_users: tuple[str, ...]
    smtp_url: Secret
    mail_from: str
    sync_interval: int
    workers: int
    allow_private_urls: bool
    http_timeout: float
    http_retries: int
    http_backoff: float
    ics_max_bytes: int
    sync_past_days: int
    sync_future_days: int
    max_occurrences: int
    unreachable_after: int
    all_day_policy: str
    external_edit_policy: str
    external_delete_policy: str
    sweep_interval: int
    reminder_interval: int
    pending_escalate_after: int
    escalate_after: int
    relink_ttl: int
    feed_secret: Secret
    feed_past_days: int
    feed_future_days: int
    host_webhook_url: str
    host_webhook_secret: Secret
    stale_after: int
    lease_ttl: int = 600
    http_deadline: float = 60.0
    http_max_bytes: int = 32 * 1024 * 1024
    http_per_host: int = 4
    sync_budget: int = 300
    parse_timeout: float = 5.0
    push: str = "auto"  # CALSYNC_PUSH: auto (a public https base URL), on (any base URL: local use), off
    oauth: dict = dataclasses.field(default_factory=dict)  # provider -> OAuthClient (only the configured ones)

    @property
    def slack_enabled(self) -> bool:
        """Slack can deliver: a bot token, and a way for Slack to reach us (HTTP or Socket Mode)."""
        return bool(self.slack_bot_token) and (bool(self.slack_signing_secret) or bool(self.slack_app_token))

    @property
    def feed_key_file(self) -> Path:
        return self.data_dir / "feed.key"

    @property
    def key_file(self) -> Path:
        return self.data_dir / "secret.key"


def _int(env: Mapping[str, str], name: str, default: int, lo: int, hi: int, what: str) -> int:
    raw = env.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}: {what} must be a whole number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}: {what} must be between {lo} and {hi}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, lo: float, hi: float, what: str) -> float:
    raw = env.get(name, "").strip()
    if raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: {what} must be a number, got {raw!r}") from None
    if not lo <= value <= hi:
        raise ConfigError(f"{name}: {what} must be between {lo} and {hi}, got {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    low = raw.strip().lower()
    if low in TRUE:
        return True
    if low in FALSE:
        return False
    raise ConfigError(f"{name}: must be one of 1/0, true/false, yes/no, on/off, got {raw!r}")


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip().lower() or default
    if raw not in choices:
        raise ConfigError(f"{name}: must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _url(env: Mapping[str, str], name: str, default: str, schemes: tuple[str, ...]) -> str:
    raw = env.get(name, "").strip() or default
    if not raw:
        return ""
    parts = urlsplit(raw)
    if parts.scheme not in schemes or not parts.netloc:
        raise ConfigError(f"{name}: must be a URL starting with {' or '.join(s + '://' for s in schemes)}, got {_redact(raw)!r}")
    return raw.rstrip("/") if parts.scheme in ("http", "https") else raw


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


@dataclasses.dataclass(frozen=True)
class OAuthClient:
    provider: str
    client_id: str
    client_secret: Secret
    auth_url: str
    token_url: str
    api_url: str


OAUTH_DEFAULTS = {
    "google": {
        "AUTH_URL": "https://accounts.google.com/o/oauth2/v2/auth",
        "TOKEN_URL": "https://oauth2.googleapis.com/token",
        "API_URL": "https://www.googleapis.com/calendar/v3",
    },
    "microsoft": {
        "AUTH_URL": "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/authorize",
        "TOKEN_URL": "https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token",
        "API_URL": "https://graph.microsoft.com/v1.0",
    },
}


def _oauth_clients(env: Mapping[str, str]) -> dict:
    clients = {}
    for provider, defaults in OAUTH_DEFAULTS.items():
        prefix = f"CALSYNC_{provider.upper()}_"
        client_id = env.get(prefix + "CLIENT_ID", "").strip()
        secret = env.get(prefix + "CLIENT_SECRET", "").strip()
        if not client_id and not secret:
            continue
        if not client_id or not secret:
            missing = prefix + ("CLIENT_SECRET" if client_id else "CLIENT_ID")
            raise ConfigError(f"{missing}: {provider} sign-in needs both {prefix}CLIENT_ID and {prefix}CLIENT_SECRET")
        tenant = env.get("CALSYNC_MICROSOFT_TENANT", "").strip() or "common"
        urls = {key: _url(env, prefix + key, value.format(tenant=tenant), ("http", "https")) for key, value in defaults.items()}
        clients[provider] = OAuthClient(provider, client_id, Secret(secret), urls["AUTH_URL"], urls["TOKEN_URL"], urls["API_URL"])
    return clients


def load_settings(env: Mapping[str, str] | None = None, *, read_dotenv: bool = True) -> Settings:
    """Settings from ``env`` (default: the process environment plus ``.env``)."""
    if env is None:
        dotenv_path = Path.cwd() / ".env"
        if read_dotenv and dotenv_path.is_file():  # python-dotenv is loaded only to read one
            from dotenv import load_dotenv

            load_dotenv(dotenv_path, override=False)
        env = os.environ
    data_dir = Path(env.get("CALSYNC_DATA_DIR", "").strip() or "./var").expanduser()
    if data_dir.exists() and not data_dir.is_dir():
        raise ConfigError(f"CALSYNC_DATA_DIR: {data_dir} exists and is not a directory")

    db_default = f"sqlite:///{(data_dir / 'calsync.db').as_posix()}"
    database_url = env.get("CALSYNC_DATABASE_URL", "").strip() or db_default
    scheme = urlsplit(database_url).scheme
    if scheme not in ("sqlite", "postgresql", "postgres"):
        raise ConfigError(f"CALSYNC_DATABASE_URL: must start with sqlite:/// or postgresql://, got {_redact(database_url)!r}")

    host = env.get("CALSYNC_HTTP_HOST", "").strip() or "127.0.0.1"
    port = _int(env, "CALSYNC_HTTP_PORT", 8080, 1, 65535, "the web server's port")
    base_url = _url(env, "CALSYNC_BASE_URL", f"http://{host}:{port}", ("http", "https"))

    smtp_url = env.get("CALSYNC_SMTP_URL", "").strip()
    if smtp_url:
        _url({"CALSYNC_SMTP_URL": smtp_url}, "CALSYNC_SMTP_URL", "", ("smtp", "smtps"))

    slack_api_url = _url(env, "SLACK_API_URL", "https://slack.com/api", ("http", "https"))
    sync_interval = _int(env, "CALSYNC_SYNC_INTERVAL", 900, 30, 86400, "the sync interval in seconds")

    return Settings(
        data_dir=data_dir,
        database_url=database_url,
        base_url=base_url,
        http_host=host,
        http_port=port,
        secret_key=Secret(env.get("CALSYNC_SECRET_KEY", "").strip()),
        slack_bot_token=Secret(env.get("SLACK_BOT_TOKEN", "").strip()),
        slack_signing_secret=Secret(env.get("SLACK_SIGNING_SECRET", "").strip()),
        slack_app_token=Secret(env.get("SLACK_APP_TOKEN", "").strip()),
        slack_api_url=slack_api_url.rstrip("/") + "/",
        support_channel=env.get("CALSYNC_SUPPORT_CHANNEL", "").strip(),
        support_users=tuple(u.strip() for u in env.get("CALSYNC_SUPPORT_USERS", "").split(",") if u.strip()),
        smtp_url=Secret(smtp_url),
        mail_from=env.get("CALSYNC_MAIL_FROM", "").strip() or "calsync@localhost",
        sync_interval=sync_interval,
        workers=_int(env, "CALSYNC_WORKERS", 8, 1, 256, "the number of sync workers"),
        allow_private_urls=_bool(env, "CALSYNC_ALLOW_PRIVATE_URLS", False),
        http_timeout=_float(env, "CALSYNC_HTTP_TIMEOUT", 20.0, 0.1, 300.0, "the provider request timeout in seconds"),
        http_retries=_int(env, "CALSYNC_HTTP_RETRIES", 2, 0, 10, "the retries of a failed provider request"),
        http_backoff=_float(env, "CALSYNC_HTTP_BACKOFF", 0.5, 0.0, 60.0, "the retry backoff factor in seconds"),
        ics_max_bytes=_int(env, "CALSYNC_ICS_MAX_BYTES", 10 * 1024 * 1024, 1024, 1024**3, "the iCalendar size cap in bytes"),
        sync_past_days=_int(env, "CALSYNC_SYNC_PAST_DAYS", 7, 0, 3650, "the days of the past the sync reads"),
        sync_future_days=_int(env, "CALSYNC_SYNC_FUTURE_DAYS", 90, 1, 3650, "the days ahead the sync reads"),
        max_occurrences=_int(env, "CALSYNC_MAX_OCCURRENCES", 1000, 1, 100000, "the occurrences one recurring event may expand to"),
        unreachable_after=_int(
            env, "CALSYNC_UNREACHABLE_AFTER", 6 * 3600, 60, 30 * 86400, "the seconds of failure before a connection is unreachable"
        ),
        all_day_policy=_choice(env, "CALSYNC_ALL_DAY_EVENTS", "ignore", ("ignore", "busy")),
        external_edit_policy=_choice(env, "CALSYNC_EXTERNAL_EDIT_POLICY", "apply", ("apply", "revert", "calendar")),
        external_delete_policy=_choice(env, "CALSYNC_EXTERNAL_DELETE_POLICY", "cancel", ("cancel", "restore")),
        sweep_interval=_int(env, "CALSYNC_SWEEP_INTERVAL", 300, 30, 86400, "the health sweep interval in seconds"),
        reminder_interval=_int(
            env, "CALSYNC_REMINDER_INTERVAL", 86400, 60, 30 * 86400, "the seconds between reminders of an open incident"
        ),
        pending_escalate_after=_int(
            env, "CALSYNC_PENDING_ESCALATE_AFTER", 86400, 60, 30 * 86400, "the seconds a connection may stay pending before support is told"
        ),
        escalate_after=_int(
            env, "CALSYNC_ESCALATE_AFTER", 3 * 86400, 60, 90 * 86400, "the seconds an incident may stay open before support is told"
        ),
        relink_ttl=_int(env, "CALSYNC_RELINK_TTL", 7 * 86400, 60, 90 * 86400, "the lifetime of a relink link in seconds"),
        feed_secret=Secret(env.get("CALSYNC_FEED_SECRET", "").strip()),
        feed_past_days=_int(env, "CALSYNC_FEED_PAST_DAYS", 45, 0, 3650, "the days of the past a feed shows"),
        feed_future_days=_int(env, "CALSYNC_FEED_FUTURE_DAYS", 60, 1, 3650, "the days ahead a feed shows"),
        host_webhook_url=_url(env, "CALSYNC_HOST_WEBHOOK_URL", "", ("http", "https")),
        host_webhook_secret=Secret(env.get("CALSYNC_HOST_WEBHOOK_SECRET", "").strip()),
        stale_after=_int(
            env,
            "CALSYNC_STALE_AFTER",
            0,
            0,
            30 * 86400,
            "the seconds after which a busy source's last sync is stale (0: twice the sync interval)",
        )
        or 2 * sync_interval,
        oauth=_oauth_clients(env),
        lease_ttl=_int(env, "CALSYNC_LEASE_TTL", 600, 5, 86400, "the seconds a scheduler's claim on a connection lasts"),
        http_deadline=_float(
            env,
            "CALSYNC_HTTP_DEADLINE",
            60.0,
            1.0,
            3600.0,
            "the seconds one provider request may take in all (connect, answer, body, retries)",
        ),
        http_max_bytes=_int(
            env,
            "CALSYNC_HTTP_MAX_BYTES",
            32 * 1024 * 1024,
            64 * 1024,
            1024**3,
            "the size cap in bytes of one provider answer (after decompression)",
        ),
        http_per_host=_int(
            env, "CALSYNC_HTTP_PER_HOST", 4, 1, 256, "the provider requests one process may have in flight at once to one host"
        ),
        sync_budget=_int(env, "CALSYNC_SYNC_BUDGET", 300, 10, 86400, "the seconds one sync of a connection may take in all"),
        parse_timeout=_float(env, "CALSYNC_PARSE_TIMEOUT", 5.0, 0.5, 600.0, "the seconds of work one recurring event may take to expand"),
        push=_choice(env, "CALSYNC_PUSH", "auto", ("auto", "on", "off")),
    )
