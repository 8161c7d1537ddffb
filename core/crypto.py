"""Credentials encrypted at rest (Fernet: AES-128-CBC + HMAC-SHA256).

The key comes from ``CALSYNC_SECRET_KEY`` or, when that is unset, from a key
file in the data dir generated with mode 0600. Several comma-separated keys
may be given: the first encrypts, all decrypt, so a key can be rotated by
putting the new key first and running ``run_console.py rotate-key``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from core.config import ConfigError, Settings


class CredentialsUnreadable(Exception):
    """Stored credentials cannot be decrypted with any configured key."""


def _keys_from_text(text: str, origin: str) -> list[Fernet]:
    keys = [k.strip() for k in text.replace("\n", ",").split(",") if k.strip()]
    if not keys:
        raise ConfigError(f"{origin}: holds no key")
    fernets = []
    for key in keys:
        try:
            fernets.append(Fernet(key.encode()))
        except (ValueError, TypeError):
            raise ConfigError(
                f"{origin}: not a valid key (expected 32 url-safe base64-encoded bytes, as made by `run_console.py keygen`)"
            ) from None
    return fernets


def ensure_key_file(path: Path, variable: str = "CALSYNC_SECRET_KEY") -> str:
    """The key file's text, creating it with mode 0600 when it does not exist."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise ConfigError(f"{variable}: key file {path} is readable by others (mode {mode:o}); chmod 600 it")
        return path.read_text()
    with os.fdopen(fd, "w") as fh:
        fh.write(Fernet.generate_key().decode() + "\n")
    return path.read_text()


class Vault:
    """Encrypts and decrypts credential dictionaries."""

    def __init__(self, fernets: list[Fernet]):
        self._fernets = fernets
        self._multi = MultiFernet(fernets)

    @classmethod
    def from_settings(cls, settings: Settings) -> Vault:
        if settings.secret_key:
            return cls(_keys_from_text(settings.secret_key.reveal(), "CALSYNC_SECRET_KEY"))
        text = ensure_key_file(settings.key_file)
        return cls(_keys_from_text(text, f"CALSYNC_SECRET_KEY (key file {settings.key_file})"))

    def encrypt(self, data: dict) -> str:
        return self._multi.encrypt(json.dumps(data, sort_keys=True).encode()).decode()

    def decrypt(self, token: str) -> dict:
        if not token:
            return {}
        try:
            return json.loads(self._multi.decrypt(token.encode()))
        except InvalidToken:
            raise CredentialsUnreadable("stored credentials cannot be decrypted with the configured CALSYNC_SECRET_KEY") from None

    def rotate(self, token: str) -> str:
        """Re-encrypt ``token`` under the first (newest) key."""
        try:
            return self._multi.rotate(token.encode()).decode()
        except InvalidToken:
            raise CredentialsUnreadable("stored credentials cannot be decrypted with the configured CALSYNC_SECRET_KEY") from None


def feed_key(settings: Settings) -> bytes:
    """The secret feed tokens are derived from (CALSYNC_FEED_SECRET, else a 0600 key file).

    Separate from CALSYNC_SECRET_KEY on purpose: rotating the credential key
    must not change every staff member's feed URL.
    """
    if settings.feed_secret:
        text = settings.feed_secret.reveal()
        if len(text) < 32:
            raise ConfigError("CALSYNC_FEED_SECRET: must be at least 32 characters (e.g. from `run_console.py keygen`)")
        return text.encode()
    return ensure_key_file(settings.feed_key_file, "CALSYNC_FEED_SECRET").strip().encode()


def generate_key() -> str:
    return Fernet.generate_key().decode()
