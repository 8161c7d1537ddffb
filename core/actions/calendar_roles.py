"""Which calendars count: each calendar of a connection is ``busy`` (its busy events block the staff
member's availability), ``write`` (appointments are written to it) or both, and exactly one write
calendar is the primary (``set_destination``), whose loss or read-only state breaks the connection.

New connections start with the chosen calendar as primary, every calendar busy and only the primary
written. An extra write calendar gets every appointment like the primary (one event each, the
appointment's stable UID); when it is gone or read-only its appointments wait there as missed while
the primary syncs on (core.sync, core.waiting).
"""

from __future__ import annotations

import models as m
from core import lifecycle, waiting
from core.actions.common import ActionError, InvalidInput, _connection, audit, audited, find_calendar
from core.actions.connections import refresh_calendars
from core.actions.views import calendar_dict
from core.sync import window as sync_window


def calendar_roles(rt, conn_id, refresh: bool = False) -> list[dict]:
    """Every calendar of the connection with its roles: ``id, name, primary, busy, write, writable``
    (and ``problem``: why an extra write calendar cannot take appointments now)."""
    conn = _connection(conn_id)
    cals = refresh_calendars(rt, conn) if refresh else list(conn.calendars.order_by(m.Calendar.id))
    return [calendar_dict(c, conn) for c in cals]


@audited("connection.calendar")
def set_calendar_roles(rt, conn_id, calendar: str, *, busy: bool | None = None, write: bool | None = None, actor: str = "") -> dict:
    """Turn a calendar's ``busy`` and/or ``write`` role on or off; returns the calendar's new row."""
    if busy is None and write is None:
        raise InvalidInput("say what to change: busy yes|no and/or write yes|no")
    conn = _connection(conn_id)
    if conn.status == m.STOPPED:
        raise ActionError("the connection is stopped")
    cal = find_calendar(list(conn.calendars.order_by(m.Calendar.id)), calendar)
    changes = []
    with m.db.atomic():
        if write is not None and write != cal.is_destination:
            changes.append(_set_write(rt, conn, cal, write))
        if busy is not None and busy != cal.is_busy_source:
            changes.append(_set_busy(cal, busy))
    cal = m.Calendar.get_by_id(cal.id)
    if changes:
        audit(actor, "connection.calendar", conn.id, f"{cal.name}: " + ", ".join(changes))
        lifecycle.request_sync(conn)  # the next pass writes to it, or reads it whole, at once
    return {**calendar_dict(cal, conn), "connection": conn.id, "change": "updated" if changes else "unchanged"}


def _set_write(rt, conn: m.Connection, cal: m.Calendar, write: bool) -> str:
    if not write:
        if cal.is_primary:
            raise ActionError(
                f"{cal.name!r} is the primary calendar, which is always written: make another calendar the primary first "
                f"(`primary {conn.id} CALENDAR`)"
            )
        # Like a new primary: what is there stays there (kept); what waited for it is dropped.
        m.AppointmentLink.delete().where(
            m.AppointmentLink.calendar == cal, m.AppointmentLink.state.in_([m.LINK_PENDING, m.LINK_MISSED, m.LINK_REMOVED])
        ).execute()
        m.AppointmentLink.update(state=m.LINK_KEPT).where(
            m.AppointmentLink.calendar == cal, m.AppointmentLink.state == m.LINK_SYNCED
        ).execute()
        cal.is_destination, cal.problem = False, ""
        cal.save()
        return "write off (events already written stay)"
    if conn.provider == "ics":
        raise ActionError("an iCalendar URL is read-only: nothing can be written to it")
    if not cal.writable:
        raise ActionError(f"the calendar {cal.name!r} is read-only for this account: it cannot be written")
    cal.is_destination, cal.problem = True, ""
    cal.save()
    # Every upcoming appointment of the staff member goes there too (waiting if the connection fails).
    # Events it kept from before are calsync's again: brought up to date in place, not written twice.
    m.AppointmentLink.update(state=m.LINK_SYNCED, pushed_version=0).where(
        m.AppointmentLink.calendar == cal, m.AppointmentLink.state == m.LINK_KEPT, m.AppointmentLink.href != ""
    ).execute()
    waiting.ensure_links(cal, sync_window(rt.settings)[0], state=waiting.state_for_new_work(conn))
    return "write on"


def _set_busy(cal: m.Calendar, busy: bool) -> str:
    cal.is_busy_source = busy
    if busy:
        cal.sync_token, cal.ctag = "", ""  # read whole at the next sync: its busy events count from then
    else:
        m.FeedEntry.delete().where(m.FeedEntry.calendar == cal).execute()
        if not cal.is_destination:
            m.RemoteObject.delete().where(m.RemoteObject.calendar == cal).execute()
            cal.sync_token, cal.ctag = "", ""
    cal.save()
    return "busy on" if busy else "busy off"
