"""Which external account a connection is: a keyed fingerprint to compare, a label to show.

Two connections are the same external account when their fingerprints match:
for CalDAV the server and the login, for Google and Microsoft the signed-in
account, for an iCalendar feed its *whole* URL — which is often the only
secret (a Google "secret address"), so it is compared only as an HMAC under a
key outside the database and shown only as its host plus a short hint (the
feed's name, or a harmless last path segment) and four characters of the
fingerprint, so support can tell feeds apart and nothing secret is displayed.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from urllib.parse import unquote, urlsplit

import models as m

SECRET_LOOKING = re.compile(r"[A-Za-z0-9_-]{16,}")
HINT_MAX = 40


def _key(rt) -> bytes:
    return hmac.new(rt.feed_key, b"calsync account fingerprints v1", hashlib.sha256).digest()


def normal_url(url: str) -> str:
    """The URL as compared: webcal is https, scheme and host in lower case, no trailing slash."""
    url = (url or "").strip()
    if url.lower().startswith("webcal://"):
        url = "https://" + url[len("webcal://") :]
    parts = urlsplit(url)
    netloc = parts.netloc.lower()
    path = parts.path.rstrip("/") or "/"
    return f"{parts.scheme.lower()}://{netloc}{path}" + (f"?{parts.query}" if parts.query else "")


def identity(provider: str, server_url: str, account: str, credentials: dict | None = None) -> str:
    if provider == "ics":
        return normal_url((credentials or {}).get("url", "") or server_url)
    if provider == "caldav":
        return f"{normal_url(server_url)}\0{(account or '').strip().lower()}"
    return (account or "").strip().lower()


def fingerprint(rt, provider: str, server_url: str, account: str, credentials: dict | None = None) -> str:
    text = f"{provider}\0{identity(provider, server_url, account, credentials)}"
    return hmac.new(_key(rt), text.encode(), hashlib.sha256).hexdigest()[:32]


def feed_label(url: str, name: str = "", key: str = "") -> str:
    """What people see of a feed: host, a hint that is not the secret, and a fingerprint tag."""
    parts = urlsplit(normal_url(url))
    host = parts.hostname or "?"
    if parts.port:
        host += f":{parts.port}"
    hint = "" if "://" in (name or "") else " ".join((name or "").split())[:HINT_MAX]
    if not hint:
        last = unquote(parts.path.rstrip("/").rpartition("/")[2])[:HINT_MAX]
        if last and not SECRET_LOOKING.search(last) and "@" not in last:
            hint = f"…/{last}"
    label = f"{host} · {hint}" if hint else host
    return f"{label} #{key[:4]}" if key else label


def backfill(rt) -> int:
    """Fingerprints for connections made before schema 6 (and feed labels without the host-only form)."""
    done = 0
    for conn in m.Connection.select().where(m.Connection.account_key == ""):
        credentials = {}
        if conn.provider == "ics" and conn.credentials:
            try:
                credentials = rt.vault.decrypt(conn.credentials)
            except Exception:  # noqa: BLE001 — a key that cannot open it any more: compared by its label only
                credentials = {}
        key = fingerprint(rt, conn.provider, conn.server_url, conn.account, credentials)
        update = {m.Connection.account_key: key}
        if conn.provider == "ics" and credentials.get("url"):
            name = m.Calendar.select(m.Calendar.name).where(m.Calendar.connection == conn).scalar() or ""
            update[m.Connection.account] = feed_label(credentials["url"], name, key)
        m.Connection.update(update).where(m.Connection.id == conn.id).execute()
        done += 1
    return done
