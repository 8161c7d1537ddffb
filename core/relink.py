"""Relink links: single-use, expiring, stored only as a hash, a reissue replaces the earlier ones.

A link opens a page (web/) naming the account and what broke; the new
credentials are tested before they are saved (``actions.update_credentials``),
and the link is spent only when they work, so a mistyped password can be
corrected with the same link.
"""

from __future__ import annotations

import datetime as dt
import hashlib
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


def issue(rt, conn: m.Connection, issued_by: str = "", via: str = "") -> tuple[str, m.RelinkLink]:
    """A new link for ``conn``; every earlier unused link stops working."""
    token = secrets.token_urlsafe(32)
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
        )
    return url_for(rt, token), link


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
