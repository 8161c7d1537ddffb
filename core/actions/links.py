"""One-off links people follow: downloads of missed appointments, and connect links.

(Relink links and their page: :mod:`core.actions.relinking`.)
"""

from __future__ import annotations

import models as m
from core import clock
from core.actions.appointments import download_missed, missed_appointments
from core.actions.common import (
    ActionError,
    NotFoundError,
    _connection,
    _iso,
    _new_one_off,
    _spend_one_off,
    _staff,
    _token_hash,
    _usable_one_off,
    audit,
)
from core.actions.connections import connect
from core.actions.roles import choose_calendars
from core.actions.syncing import sync_now
from core.actions.views import connection_dict

# How long a new connection with several calendars waits for the person to choose one before
# the scheduler syncs it to the first writable calendar.
CHOICE_MINUTES = 15


def download_link(rt, conn_id, actor: str = "") -> dict:
    """A one-off link to the missed appointments' .ics (what a Slack button opens)."""
    conn = _connection(conn_id)
    token, expires = _new_one_off(m.DownloadLink, connection=conn)
    if actor:
        audit(actor, "connection.download_link", conn.id)
    return {
        "connection": conn.id,
        "url": f"{rt.settings.base_url}/download/{token}.ics",
        "expires_at": _iso(expires),
        "count": len(missed_appointments(conn)),
    }


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


class ConnectLinkSpent(NotFoundError):
    """The connect link is unknown, expired, or was used (perhaps a moment ago, by a form sent twice)."""


def spend_connect_link(rt, token: str) -> m.Staff | None:
    """Spend a usable link: its staff member, or None when it is not usable or another request
    spent it first (one conditional UPDATE: exactly one request wins)."""
    link = _usable_one_off(m.ConnectLink, token)
    return link.staff if link is not None and _spend_one_off(m.ConnectLink, link) else None


def give_back_connect_link(rt, token: str) -> None:
    """Nothing was started with this link (sign-in not set up, say): it works again."""
    link = m.ConnectLink.get_or_none(m.ConnectLink.token_hash == _token_hash(token)) if token and len(token) <= 100 else None
    if link is not None and link.expires_at > clock.now():
        _give_back(link)


def _give_back(link: m.ConnectLink) -> None:
    """Nothing was created with this link (the account refused, a mistyped address): it works again."""
    m.ConnectLink.update(used_at=None).where(m.ConnectLink.id == link.id).execute()


def connect_by_link(rt, token: str, provider: str, *, url: str, username: str = "", password: str = "") -> dict:
    """Connect from the page, one connection per link whatever arrives at once.

    The link is spent first, by one conditional UPDATE that only one request
    can win (the others get ConnectLinkSpent). If the connect is then refused
    for a reason the user can fix (ActionError: a wrong password, a bad
    address; raised before anything is stored), the link is given back so
    the same link works with the right password. Any other failure keeps it
    spent: a new link is cheap, a second connection is not.

    An account with several calendars calsync may write to is not synced yet
    (``choose`` is True): the page asks which one the appointments go to
    (:func:`connect_link_choose_calendar`), so nothing is written to a
    calendar the person did not choose. Until then the first writable one is
    the primary, and the scheduler syncs to it after CHOICE_MINUTES.
    """
    link = _usable_one_off(m.ConnectLink, token)
    if link is None or not _spend_one_off(m.ConnectLink, link):
        raise ConnectLinkSpent("this connect link is not valid any more; ask for a new one with /calsync connect")
    staff = link.staff
    try:
        result = connect(
            rt,
            staff.email,
            provider,
            url=url,
            username=username,
            password=password,
            actor=f"connect-link:{staff.email}",
            choice_minutes=CHOICE_MINUTES,
        )
    except ActionError:
        _give_back(link)
        raise
    conn = m.Connection.get_by_id(result["id"])
    choosable = [c for c in connection_dict(conn)["calendars"] if c.get("choosable", c["writable"])]
    if len(choosable) > 1:
        # connect() already made the scheduler wait for the choice (choice_minutes, in its transaction).
        return {**connection_dict(conn), "warnings": result["warnings"], "first_sync": None, "choose": True}
    report = sync_now(rt, result["id"])[0]
    return {**connection_dict(m.Connection.get_by_id(result["id"])), "warnings": result["warnings"], "first_sync": report, "choose": False}


def connect_link_choose_calendar(
    rt, token: str, conn_id, calendar, *, busy: list[str] | None = None, write: list[str] | None = None
) -> dict:
    """The calendar the appointments of a connection just made with this connect link go to, and
    (when the page asked) which calendars block time and which others are written too.

    Only with the link that made it (spent, not expired, same staff member, the connection
    made after the link was spent); the first sync runs at once (choose_calendars).
    """
    link = m.ConnectLink.get_or_none(m.ConnectLink.token_hash == _token_hash(token)) if token and len(token) <= 100 else None
    try:
        conn = _connection(conn_id)
    except ActionError:  # not a number, or no such connection: the same answer as a bad link
        conn = None
    if (
        link is None
        or link.used_at is None
        or link.expires_at <= clock.now()
        or conn is None
        or conn.staff_id != link.staff_id
        or clock.utc(conn.created_at) < clock.utc(link.used_at)
    ):
        raise ConnectLinkSpent("this connect link is not valid any more; ask for a new one with /calsync connect")
    return choose_calendars(rt, conn.id, primary=str(calendar), busy=busy, write=write, actor=f"connect-link:{link.staff.email}")
