"""Relink links and the page they open: it names the account and what broke, and fixes that.

What the page offers follows the status, not the provider alone:

=================  ==========================================================
status             the page offers
=================  ==========================================================
relink_required    new credentials: a password, a feed URL, or the provider's
                   consent screen (Google, Microsoft)
calendar_missing   a picker of the account's writable calendars (no password)
read_only          what to change at the provider, a picker of writable
                   calendars, and "test again"
unreachable        "nothing to do, we keep trying", and a test
pending            a test (the first sync runs at once)
active             nothing to do
=================  ==========================================================

After a fix the page says ``active`` or exactly what is still wrong; the
link is spent only once the connection is active.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets

import models as m
from core import clock, incidents, outbox, relink, waiting, wording
from core.actions.common import (
    ActionError,
    InvalidInput,
    _connection,
    _iso,
    audit,
    audited,
)
from core.actions.connections import (
    refresh_calendars,
    test_connection,
    update_credentials,
)
from core.actions.roles import choose_calendars
from core.messages import meaning
from core.text import control_characters

# Self-service requests (/relink/request): at most one message with the link per staff member per
# REQUEST_THROTTLE_MINUTES (an alert or a support reissue counts), and REQUESTS_PER_CLIENT per client
# address per CLIENT_WINDOW.
REQUEST_THROTTLE_MINUTES = 5
REQUESTS_PER_CLIENT = 5
CLIENT_WINDOW = dt.timedelta(minutes=1)
LINK_EVENTS = ("incident.opened", "incident.reminder", "relink.link")
CREDENTIAL_FORMS = {"caldav": "password", "ics": "url", "google": "oauth", "microsoft": "oauth"}
FIX_BY_STATUS = {
    m.RELINK_REQUIRED: "credentials",
    m.CALENDAR_MISSING: "calendar",
    m.READ_ONLY: "read_only",
    m.UNREACHABLE: "unreachable",
    m.PENDING: "test",
    m.ACTIVE: "nothing",
}
# The relink page lists this many waiting appointments by name and time; "+N more" says the rest.
WAITING_LISTED = 10
# lifecycle's reason for an outage carries its own (rounded) length; the page says it in words instead.
_OUTAGE_PREFIX = re.compile(r"^the provider has failed for [0-9.]+ hours?: ")
READ_ONLY_ADVICE = (
    "Calsync can read this calendar but may not add events to it. Ask whoever shares it with you (or your "
    "calendar administrator) for permission to edit events, or choose another calendar of yours below."
)


@audited("connection.relink_link")
def issue_relink(rt, conn_id, via: tuple[str, ...] = ("email", "slack"), actor: str = "") -> dict:
    """A fresh relink link for a connection (earlier links stop working), sent through the outbox.

    The earlier Slack alert of the open incident is updated in place with the
    new button, so no message keeps a button that no longer works.
    """
    conn = _connection(conn_id)
    if conn.status == m.STOPPED:
        raise ActionError("the connection is stopped: connect again instead of relinking")
    unknown = [v for v in via if v not in ("email", "slack")]
    if unknown:
        raise InvalidInput(f"unknown delivery channel(s) {', '.join(unknown)}: use email and/or slack")
    configured = outbox.configured_channels(rt.settings)
    url, link = relink.issue(rt, conn, issued_by=actor or "support", via=",".join(via))
    payload = outbox.payload_for(rt, conn, link_expires_at=link.expires_at.isoformat(), issued_by=actor or "support")
    notification = outbox.notify(
        rt, "relink.link", f"relink:{link.id}", payload, connection=conn, staff=conn.staff, relink_url=url, channels=tuple(via)
    )
    channels = [d.channel for d in notification.deliveries if d.channel != "log"] if notification else []
    audit(
        actor,
        "connection.relink_link",
        conn.id,
        f"sent via {', '.join(channels)}" if channels else "not sent: no channel is configured (link shown once)",
    )
    return {
        "connection": conn.id,
        "url": url,
        "expires_at": _iso(link.expires_at),
        "sent_via": channels,
        "not_configured": [v for v in via if v not in configured],
    }


def relink_page(rt, token: str, list_calendars: bool = True) -> dict:
    """What the relink page shows: the account, what broke (core.wording), what waits, and what fixes it."""
    link = relink.lookup(token)
    conn = link.connection
    destination = conn.calendars.where(m.Calendar.is_primary == True).first()
    calendar = destination.name if destination is not None else None
    failing = waiting.is_failing(conn)
    missed = waiting.missed_count(conn)
    listed = waiting.missed_appointments(conn, limit=WAITING_LISTED) if missed else []
    page = {
        "connection": conn.id,
        "staff_name": conn.staff.name,
        "timezone": conn.staff.timezone,
        "provider": conn.provider,
        "provider_name": wording.provider_label(conn.provider, conn.server_url),
        "account": conn.account,
        "server": conn.server_url if conn.provider != "ics" else "",
        "status": conn.status,
        "meaning": meaning(conn.status),
        "reason": conn.reason or meaning(conn.status),
        "problem": wording.problem(conn.status, conn.provider, server_url=conn.server_url, calendar=calendar, failing=failing),
        "todo": wording.staff_advice(conn.status, conn.provider, conn.server_url),
        "detail": _detail(conn),
        "calendar": calendar,
        "since": _iso(conn.status_since),
        "missed": missed,
        "waiting": [{"subject": a.subject, "start": _iso(a.starts_at), "end": _iso(a.ends_at)} for a in listed],
        "waiting_more": max(0, missed - len(listed)),
        "fix": FIX_BY_STATUS.get(conn.status, "test"),
        "form": CREDENTIAL_FORMS.get(conn.provider, "password"),
        "expires_at": _iso(link.expires_at),
        "calendars": [],
        "roles": [],
        "calendars_error": "",
        "advice": READ_ONLY_ADVICE if conn.status == m.READ_ONLY else "",
    }
    if page["fix"] in ("calendar", "read_only") and list_calendars:
        try:
            calendars = refresh_calendars(rt, conn)
        except ActionError as exc:
            page["calendars_error"] = str(exc)
        else:
            page["calendars"] = [
                {"id": c.id, "name": c.name} for c in calendars if c.writable and not (c.is_primary and conn.status != m.ACTIVE)
            ]
            # The role boxes under the picker: every calendar but the broken primary, with its roles.
            page["roles"] = [
                {"id": c.id, "name": c.name, "busy": c.is_busy_source, "write": c.is_destination, "writable": c.writable}
                for c in calendars
                if not c.is_primary
            ]
    return page


def _detail(conn: m.Connection) -> str:
    """The provider's own words for what broke, said once (not the status meaning again); an outage
    says how long in words ("7 hours", never "0.0 hours")."""
    reason = (conn.reason or "").strip()
    if reason == meaning(conn.status):
        reason = ""
    if conn.status == m.UNREACHABLE:
        reason = _OUTAGE_PREFIX.sub("", reason)
        began = conn.failing_since or conn.status_since
        if began is not None:
            length = wording.duration((clock.now() - clock.utc(began)).total_seconds())
            reason = f"no answer for {length}" + (f": {reason}" if reason else "")
    return reason


def relink_download(rt, token: str) -> dict:
    """The waiting appointments as an .ics snapshot, from the relink page (the live link is the key)."""
    from core.actions.appointments import download_missed

    link = relink.lookup(token)
    return download_missed(rt, link.connection_id, actor=f"relink-link:{link.connection.staff.email}")


def _finish(link: m.RelinkLink, result: dict) -> dict:
    """Spend the link once the connection is active; say how many waiting appointments were written."""
    ok = result["status"] == m.ACTIVE
    if ok:
        relink.spend(link)
    # Another process is syncing it right now: the fix is saved and that run (or the next pass) finishes it.
    in_progress = not ok and (result.get("sync") or {}).get("outcome") == "busy"
    return {**result, "ok": ok, "in_progress": in_progress, "delivered": incidents.delivered_since_repair(link.connection_id) if ok else 0}


def complete_relink(rt, token: str, *, password: str = "", url: str = "") -> dict:
    """New credentials from the relink page: tested, saved, synced; the link is spent once it is active."""
    link = relink.lookup(token)
    conn = link.connection
    result = update_credentials(rt, conn.id, password=password, url=url, actor=f"relink-link:{conn.staff.email}")
    return _finish(link, result)


def relink_choose_calendar(rt, token: str, calendar, *, busy: list[str] | None = None, write: list[str] | None = None) -> dict:
    """A new primary calendar from the relink page (calendar_missing, read_only): no password needed;
    with ``busy`` / ``write``, the other calendars' roles too (choose_calendars)."""
    link = relink.lookup(token)
    conn = link.connection
    if conn.status not in (m.CALENDAR_MISSING, m.READ_ONLY):
        raise ActionError(f"this connection is {conn.status}: choosing a calendar does not fix it")
    result = choose_calendars(rt, conn.id, primary=str(calendar), busy=busy, write=write, actor=f"relink-link:{conn.staff.email}")
    return _finish(link, {**result, "sync": result.get("sync") or {"created": 0}})


def relink_test(rt, token: str) -> dict:
    """ "Test again" from the relink page; a good test syncs at once and writes what waited."""
    link = relink.lookup(token)
    conn = link.connection
    test = test_connection(rt, conn.id, actor=f"relink-link:{conn.staff.email}")
    result = {
        "id": conn.id,
        "status": test["status"],
        "reason": test["reason"],
        "test": test,
        "sync": test.get("sync") or {"created": 0},
        "missed": waiting.missed_count(_connection(conn.id)),
    }
    return _finish(link, result)


class TooManyRequests(ActionError):
    """This client asked for links too often; it says nothing about any address."""


def link_channels(rt) -> list[str]:
    """How a requested link reaches a staff member here: "email" and/or "slack" ([] when neither is set up).

    Slack finds a staff member without a Slack id by e-mail, so every staff member gets the same
    channels: the answer can say how the link arrives without saying whether the address is known.
    """
    configured = outbox.configured_channels(rt.settings)
    return [c for c in ("email", "slack") if c in configured]


def request_words(channels: list[str]) -> dict:
    """The request page's title, its introduction and its answer, for the channels that exist."""
    if not channels:
        return {
            "title": "Ask your support team for a new link",
            "intro": "This calsync cannot send links by itself (it has no e-mail or Slack set up). "
            "Ask your support team: they can send you a new link.",
            "message": "This calsync cannot send links by itself (it has no e-mail or Slack set up), so nothing "
            "was sent. Ask your support team: they can send you a new link.",
        }
    how = {
        ("email",): "by e-mail",
        ("slack",): "as a Slack message from calsync",
        ("email", "slack"): "by e-mail and as a Slack message from calsync",
    }[tuple(channels)]
    where = {
        ("email",): "Check your inbox (and its spam folder)",
        ("slack",): "Check your direct messages in Slack",
        ("email", "slack"): "Check your inbox (and its spam folder) and your direct messages in Slack",
    }[tuple(channels)]
    title = {("email",): "Check your e-mail", ("slack",): "Check Slack", ("email", "slack"): "Check your e-mail and Slack"}[tuple(channels)]
    return {
        "title": title,
        "intro": f"If your calendar connection needs to be reconnected, calsync sends you a new link {how}.",
        "message": f"If this address has a calendar connection that needs reconnecting, a new link is on its way "
        f"{how}. {where} in a few minutes. Nothing arrives? Ask your support team.",
    }


def request_new_link(rt, email: str, client: str = "") -> dict:
    """Someone with a dead link asks for a new one: the live link is sent again to the staff member, if any.

    The answer is the same whether or not the address is known or has a
    broken connection, so the page cannot be used to find out who has one
    (it says how a link would arrive, which depends only on this
    installation's channels); it only writes the outbox (the message is sent
    by the scheduler, outside the request) and the web page pads it to a
    fixed time. Nothing here revokes a link: the button in every earlier
    message keeps working.
    """
    _admit(client)
    staff = _staff_for(email)
    sent = _send_live_links(rt, staff) if staff is not None else 0
    if sent and staff is not None:
        audit(f"self-service:{staff.email}", "connection.relink_resent", staff.email, f"{sent} link(s) queued")
    channels = link_channels(rt)
    return {**request_words(channels), "channels": channels}


def _admit(client: str) -> None:
    """At most REQUESTS_PER_CLIENT requests per client address and minute, counted in the audit trail
    (so every web process agrees); refused requests are not written, so a flood adds no rows."""
    target = f"client:{client or 'unknown'}"[:200]
    since = clock.now() - CLIENT_WINDOW
    with m.db.atomic():
        asked = (
            m.AuditEntry.select()
            .where(m.AuditEntry.action == "relink.request", m.AuditEntry.target == target, m.AuditEntry.at > since)
            .count()
        )
        if asked >= REQUESTS_PER_CLIENT:
            raise TooManyRequests("too many requests for a new link from this address: try again in a minute")
        audit("self-service", "relink.request", target)


def _staff_for(email: str) -> m.Staff | None:
    """The staff member an address names; None for an unknown or malformed one (answered like any other)."""
    address = (email or "").strip().lower()
    if not address or len(address) > 254 or control_characters(address):
        return None
    return m.Staff.get_or_none(m.Staff.email == address)


def _send_live_links(rt, staff: m.Staff) -> int:
    """One message per broken connection with its live link (a new one only when none is live);
    nothing when a link went to this staff member less than REQUEST_THROTTLE_MINUTES ago.

    The staff row is locked so two requests at once cannot both pass the
    throttle, nor both issue a link (the second would revoke the first one's).
    """
    with m.db.atomic():
        locked = m.Staff.select().where(m.Staff.id == staff.id)
        if m.db.for_update:  # PostgreSQL; SQLite's BEGIN IMMEDIATE already holds the write lock
            locked = locked.for_update()
        locked.get()
        if _mailed_recently(staff):
            return 0
        sent = 0
        for conn in staff.connections.where(m.Connection.status.in_(list(m.BROKEN_STATUSES))):
            url, link = relink.live_or_new(rt, conn, issued_by=f"self-service:{staff.email}", via="email,slack")
            payload = outbox.payload_for(rt, conn, link_expires_at=link.expires_at.isoformat(), issued_by="self-service")
            sent += (
                outbox.notify(
                    rt,
                    "relink.link",
                    f"relink.request:{link.id}:{secrets.token_hex(8)}",
                    payload,
                    connection=conn,
                    staff=staff,
                    relink_url=url,
                    channels=("email", "slack"),
                )
                is not None
            )
    return sent


def _mailed_recently(staff: m.Staff) -> bool:
    since = clock.now() - dt.timedelta(minutes=REQUEST_THROTTLE_MINUTES)
    return (
        m.Notification.select()
        .where(m.Notification.staff == staff, m.Notification.event.in_(list(LINK_EVENTS)), m.Notification.created_at > since)
        .exists()
    )
