"""Relink links: single-use, expiring, stored only as a hash, a reissue replaces the earlier ones.

A link opens a page (web/) naming the account and what broke and offering
what fixes it; new credentials are tested before they are saved
(``actions.update_credentials``), and the link is spent only when the
connection works, so a mistyped password can be corrected with the same link.

A token is the HMAC of a random nonce (stored) under a key that is not in the
database (derived from the feed secret), and only the token's hash is
stored: the database alone opens no link, yet a reminder can carry the same
live link again, so the button in every earlier message keeps working. Only
an explicit reissue replaces it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import secrets

import models as m
from core import clock


class LinkInvalid(Exception):
    """A relink token that cannot be used; ``why`` is unknown | expired | used | replaced."""

    def __init__(self, why: str, connection: m.Connection | None = None):
        super().__init__(why)
        self.why = why
        self.connection = connection


WHY_TEXT = {
    "unknown": "This link is not valid. It may have been mistyped or cut off.",
    "expired": "This link has expired.",
    "used": "This link was already used to reconnect the account.",
    "replaced": "A newer link was sent for this account; only the newest link works.",
}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _token(rt, nonce: str) -> str:
    key = hmac.new(rt.feed_key, b"calsync relink links v1", hashlib.sha256).digest()
    mac = hmac.new(key, nonce.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def issue(rt, conn: m.Connection, issued_by: str = "", via: str = "") -> tuple[str, m.RelinkLink]:
    """A new link for ``conn``; every earlier unused link stops working."""
    nonce = secrets.token_urlsafe(16)
    token = _token(rt, nonce)
    now = clock.now()
    with m.db.atomic():
        m.RelinkLink.update(revoked_at=now).where(
            m.RelinkLink.connection == conn, m.RelinkLink.used_at.is_null(), m.RelinkLink.revoked_at.is_null()
        ).execute()
        link = m.RelinkLink.create(
            connection=conn,
            token_hash=token_hash(token),
            created_at=now,
            expires_at=now + dt.timedelta(seconds=rt.settings.relink_ttl),
            issued_by=issued_by,
            via=via,
            nonce=nonce,
        )
    return url_for(rt, token), link


def live(rt, conn: m.Connection) -> tuple[str, m.RelinkLink] | None:
    """The connection's link that still works, with its URL (None: none, or one from before schema 6)."""
    now = clock.now()
    link = (
        m.RelinkLink.select()
        .where(
            m.RelinkLink.connection == conn,
            m.RelinkLink.used_at.is_null(),
            m.RelinkLink.revoked_at.is_null(),
            m.RelinkLink.expires_at > now + dt.timedelta(hours=1),
            m.RelinkLink.nonce != "",
        )
        .order_by(m.RelinkLink.id.desc())
        .first()
    )
    if link is None:
        return None
    token = _token(rt, link.nonce)
    if token_hash(token) != link.token_hash:
        return None  # the feed secret changed since it was issued: that link cannot be shown again
    return url_for(rt, token), link


def live_or_new(rt, conn: m.Connection, issued_by: str = "calsync", via: str = "notification") -> tuple[str, m.RelinkLink]:
    """The live link again (every earlier message keeps working), or a new one when none is left."""
    return live(rt, conn) or issue(rt, conn, issued_by=issued_by, via=via)


def url_for(rt, token: str) -> str:
    return f"{rt.settings.base_url}/relink/{token}"


def lookup(token: str) -> m.RelinkLink:
    """The usable link for ``token``; raises LinkInvalid saying why not."""
    if not token or len(token) > 200:
        raise LinkInvalid("unknown")
    link = m.RelinkLink.get_or_none(m.RelinkLink.token_hash == token_hash(token))
    if link is None:
        raise LinkInvalid("unknown")
    if link.used_at is not None:
        raise LinkInvalid("used", link.connection)
    if link.revoked_at is not None:
        raise LinkInvalid("replaced", link.connection)
    if link.expires_at <= clock.now():
        raise LinkInvalid("expired", link.connection)
    return link


def spend(link: m.RelinkLink) -> None:
    m.RelinkLink.update(used_at=clock.now()).where(m.RelinkLink.id == link.id).execute()
