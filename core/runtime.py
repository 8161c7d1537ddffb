"""The running product: settings, the bound database and the credential vault.

Every adapter (CLI, console, bot, web, scheduler) starts one ``Runtime`` and
hands it to :mod:`core.actions`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from pathlib import Path

import models as m
from core.config import ConfigError, Settings, load_settings
from core.crypto import Vault, feed_key

# HTTP, the providers and the feed renderer are imported when first used: a CLI command that only
# reads the database (``status``) starts without requests, icalendar or OAuth.

log = logging.getLogger("calsync")


@dataclasses.dataclass
class Runtime:
    settings: Settings
    vault: Vault
    senders: list = dataclasses.field(default_factory=list)  # outbox senders (core.outbox.Sender)
    feed_key: bytes = b""

    def http(self):
        """A new core.http.HttpClient with the settings' limits."""
        from core.http import HttpClient

        return HttpClient.from_settings(self.settings)

    def provider_for(self, conn: m.Connection, secrets: dict | None = None):
        """The core.providers.base.Provider for ``conn``."""
        from core.providers import provider_class

        params = {
            "server_url": conn.server_url,
            "account": conn.account,
            "max_bytes": self.settings.ics_max_bytes,
        }
        if secrets is None:
            secrets = self.vault.decrypt(conn.credentials)
        provider = provider_class(conn.provider)(params, secrets, self.http())
        provider.settings = self.settings  # OAuth providers refresh their tokens with it
        return provider

    def keep_secrets(self, conn: m.Connection, provider) -> None:
        """Store credentials a provider renewed (a refreshed OAuth token), encrypted."""
        if getattr(provider, "secrets_changed", False) and conn.id is not None:
            m.Connection.update(credentials=self.vault.encrypt(provider.secrets)).where(m.Connection.id == conn.id).execute()
            provider.secrets_changed = False

    def close(self) -> None:
        if not m.db.is_closed():
            m.db.close()
        http = sys.modules.get("core.http")  # not imported just to close nothing
        if http is not None:
            http.close_idle()


def start(settings: Settings | None = None) -> Runtime:
    """Load settings (unless given), open and migrate the database, open the vault."""
    settings = settings or load_settings()
    private_dir(settings.data_dir)
    try:
        m.busy_timeout()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    try:
        m.bind(settings.database_url)
    except OSError as exc:
        raise ConfigError(f"CALSYNC_DATABASE_URL: cannot create {exc.filename or 'the database file'}: {exc.strerror or exc}") from None
    from core import leases

    leases.configure(settings)
    feeds = sys.modules.get("core.feeds")  # its render caches exist only once it was imported
    if feeds is not None:
        feeds.forget_rendered()  # rendered events are keyed by row id: another database, other rows
    rt = Runtime(
        settings=settings,
        vault=Vault.from_settings(settings),
        senders=default_senders(settings),
        feed_key=feed_key(settings),
    )
    from core import accounts

    accounts.backfill(rt)  # connections made before account fingerprints (schema 6)
    return rt


def private_dir(path: Path) -> None:
    """The data dir (keys, database, logs) only for us: made 0700, tightened when it is ours and looser."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.stat()
        shared = info.st_mode & 0o1000  # a sticky dir such as /tmp is everyone's: never ours to tighten
        if info.st_mode & 0o077 and info.st_uid == os.getuid() and not shared:
            path.chmod(0o700)
            log.warning("data dir %s was open to other users (mode %o): now 700", path, info.st_mode & 0o777)
    except OSError as exc:
        raise ConfigError(f"CALSYNC_DATA_DIR: cannot use {path}: {exc.strerror or exc}") from None


def default_senders(settings: Settings) -> list:
    """The log always; e-mail when CALSYNC_SMTP_URL is set. (Slack adds its own.)"""
    from core.outbox import LogSender

    senders: list = [LogSender()]
    if settings.smtp_url:
        from core.mail import EmailSender  # the e-mail package only where mail is configured

        senders.append(EmailSender(settings.smtp_url.reveal(), settings.mail_from))
    if settings.host_webhook_url:
        from core.webhook import WebhookSender

        senders.append(WebhookSender(settings.host_webhook_url, settings.host_webhook_secret))
    return senders
