"""One-off links people follow: downloads of missed appointments, and connect links.

(Relink links and their page: :mod:`core.actions.relinking`.)
"""

from __future__ import annotations

import models as m
from core.actions.appointments import download_missed, missed_appointments
from core.actions.common import NotFoundError, _connection, _iso, _new_one_off, _spend_one_off, _staff, _usable_one_off, audit
from core.actions.connections import connect
from core.actions.syncing import sync_now
from core.actions.views import connection_dict


def download_link(rt, conn_id, actor: str = "") -> dict:
    """A one-off link to the missed appointments' .ics (what a Slack button opens)."""
    conn = _connection(conn_id)
    token, expires = _new_one_off(m.DownloadLink, connection=conn)
    if actor:
        audit(actor, "connection.download_link", conn.id)
    return {"connection": conn.id, "url": f"{rt.settings.base_url}/download/{token}.ics", "expires_at": _iso(expires),
            "count": len(missed_appointments(conn))}


def download_by_link(rt, token: str) -> dict | None:
    """The snapshot behind a one-off link, spending it; None for an unknown, used or expired link."""
    link = _usable_one_off(m.DownloadLink, token)
    if link is None or not _spend_one_off(m.DownloadLink, link):
        return None
    return download_missed(rt, link.connection_id)


def connect_link(rt, staff_email: str, actor: str = "") -> dict:
    """A one-off link (24 h) to the page where the staff member connects a calendar themselves."""
    staff = _staff(staff_email)
    token, expires = _new_one_off(m.ConnectLink, staff=staff)
    if actor:
        audit(actor, "staff.connect_link", staff.email)
    return {"staff": staff.email, "url": f"{rt.settings.base_url}/connect/{token}", "expires_at": _iso(expires)}


def connect_link_info(rt, token: str) -> dict | None:
    """Who a usable connect link belongs to and until when (None: unknown, used or expired)."""
    link = _usable_one_off(m.ConnectLink, token)
    return None if link is None else {"staff": link.staff, "expires_at": _iso(link.expires_at)}


def connect_link_staff(rt, token: str) -> m.Staff | None:
    info = connect_link_info(rt, token)
    return None if info is None else info["staff"]


def spend_connect_link(rt, token: str) -> None:
    link = _usable_one_off(m.ConnectLink, token)
    if link is not None:
        _spend_one_off(m.ConnectLink, link)


def connect_by_link(rt, token: str, provider: str, *, url: str, username: str = "", password: str = "") -> dict:
    """Connect from the page: the link is spent only when the connection was made."""
    staff = connect_link_staff(rt, token)
    if staff is None:
        raise NotFoundError("this connect link is not valid any more; ask for a new one with /calsync connect")
    result = connect(rt, staff.email, provider, url=url, username=username, password=password, actor=f"connect-link:{staff.email}")
    spend_connect_link(rt, token)
    report = sync_now(rt, result["id"])[0]
    return {**connection_dict(m.Connection.get_by_id(result["id"])), "warnings": result["warnings"], "first_sync": report}
