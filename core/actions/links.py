"""Links people follow: relink links, one-off downloads of missed appointments, connect links."""

from __future__ import annotations

import datetime as dt

import models as m
from core import clock, health
from core.actions.appointments import download_missed, missed_appointments
from core.actions.common import (ActionError, InvalidInput, NotFoundError, _connection, _iso, _new_one_off, _spend_one_off,
                                 _staff, _usable_one_off, audit, audited)
from core.actions.connections import connect, update_credentials
from core.actions.syncing import sync_now
from core.actions.views import connection_dict
from core.messages import meaning


REQUEST_THROTTLE_MINUTES = 5


RELINK_FORMS = {"caldav": "password", "ics": "url", "google": "oauth", "microsoft": "oauth"}


@audited("connection.relink_link")
def issue_relink(rt, conn_id, via: tuple[str, ...] = ("email", "slack"), actor: str = "") -> dict:
    """A fresh relink link for a connection (earlier links stop working), sent through the outbox."""
    from core import outbox, relink

    conn = _connection(conn_id)
    if conn.status == m.STOPPED:
        raise ActionError("the connection is stopped: connect again instead of relinking")
    unknown = [v for v in via if v not in ("email", "slack")]
    if unknown:
        raise InvalidInput(f"unknown delivery channel(s) {', '.join(unknown)}: use email and/or slack")
    available = {s.channel for s in rt.senders}
    reachable = [v for v in via if v in available]
    url, link = relink.issue(rt, conn, issued_by=actor or "support", via=",".join(via))
    payload = outbox.payload_for(rt, conn, link_expires_at=link.expires_at.isoformat(), issued_by=actor or "support")
    notification = outbox.notify(
        rt, "relink.link", f"relink:{link.id}", payload, connection=conn, staff=conn.staff, relink_url=url, channels=tuple(via)
    )
    channels = [d.channel for d in notification.deliveries if d.channel != "log"] if notification else []
    audit(actor, "connection.relink_link", conn.id, f"via {', '.join(channels) or 'nobody (not configured)'}")
    return {
        "connection": conn.id,
        "url": url,
        "expires_at": _iso(link.expires_at),
        "sent_via": channels,
        "not_configured": [v for v in via if v not in reachable],
    }


def relink_page(rt, token: str) -> dict:
    """What the relink page shows: the account, what broke, and which form fixes it."""
    from core import relink

    link = relink.lookup(token)
    conn = link.connection
    return {
        "connection": conn.id,
        "staff_name": conn.staff.name,
        "provider": conn.provider,
        "account": conn.account,
        "server": conn.server_url,
        "status": conn.status,
        "meaning": meaning(conn.status),
        "reason": conn.reason or meaning(conn.status),
        "since": _iso(conn.status_since),
        "missed": health.missed_count(conn),
        "form": RELINK_FORMS.get(conn.provider, "password"),
        "expires_at": _iso(link.expires_at),
    }


def complete_relink(rt, token: str, *, password: str = "", url: str = "") -> dict:
    """New credentials from the relink page: tested, saved, synced; the link is spent once it is active."""
    from core import relink

    link = relink.lookup(token)
    conn = link.connection
    result = update_credentials(rt, conn.id, password=password, url=url, actor=f"relink-link:{conn.staff.email}")
    if result["status"] == m.ACTIVE:
        relink.spend(link)
    return {**result, "ok": result["status"] == m.ACTIVE}


def request_new_link(rt, email: str) -> dict:
    """Someone with a dead link asks for a new one: sent by e-mail to the staff member, if any.

    The answer is the same whether or not the address is known, so the page
    cannot be used to find out who has a connection.
    """
    staff = m.Staff.get_or_none(m.Staff.email == (email or "").strip().lower())
    if staff is not None:
        recent = clock.now() - dt.timedelta(minutes=REQUEST_THROTTLE_MINUTES)
        for conn in staff.connections.where(m.Connection.status.in_(list(m.BROKEN_STATUSES))):
            # Each request would revoke the link already in the inbox: at most one per few minutes.
            if m.RelinkLink.select().where(m.RelinkLink.connection == conn, m.RelinkLink.created_at > recent).exists():
                continue
            issue_relink(rt, conn.id, via=("email", "slack"), actor=f"self-service:{staff.email}")
    return {"message": "If this address has a calendar connection that needs relinking, a new link is on its way."}


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
