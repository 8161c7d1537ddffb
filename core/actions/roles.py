"""Which calendars count: each calendar of a connection is ``busy`` (its busy events block the staff
member's availability), ``write`` (appointments are written to it) or both, and exactly one write
calendar is the primary (``set_destination``), whose loss or read-only state breaks the connection.

New connections start with the chosen calendar as primary, every calendar the account owns busy (not
one shared with it, subscribed or generated: core.providers.base.CalendarInfo.owned) and only the
primary written. An extra write calendar gets every appointment like the primary (one event each, the
appointment's stable UID); when it is gone or read-only its appointments wait there as missed while
the primary syncs on (core.sync, core.waiting).
"""

from __future__ import annotations

import models as m
from core import lifecycle, waiting
from core.actions.common import ActionError, InvalidInput, _connection, audit, audited, find_calendar
from core.actions.connections import refresh_calendars, set_destination
from core.actions.views import calendar_dict, connection_dict
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


def choose_calendars(
    rt, conn_id, *, primary: str | None = None, busy: list[str] | None = None, write: list[str] | None = None, actor: str = ""
) -> dict:
    """Every role of a connection's calendars at once, as a form or a Slack modal asks for them: the
    ``primary``, the calendars that are ``busy`` and the ``write`` ones (the primary is always written;
    None leaves that choice as it is). All of it is checked first: on any error nothing is changed.

    The roles of the other calendars change before a new primary is set, so the sync that follows the
    new primary (set_destination) already writes to every chosen calendar and reads every busy one."""
    conn = _connection(conn_id)
    if conn.status == m.STOPPED:
        raise ActionError("the connection is stopped")
    calendars = refresh_calendars(rt, conn)
    old = next((c for c in calendars if c.is_primary), None)
    new = old
    if primary is not None and str(primary).strip():
        new = find_calendar(calendars, primary)
        if conn.provider == "ics" or not new.writable:  # the primary again is fine: a resubmitted form
            raise ActionError(f"the calendar {new.name!r} cannot be the primary: calsync cannot write to it")
    busy_ids = {find_calendar(calendars, c).id for c in busy} if busy is not None else None
    write_ids = {find_calendar(calendars, c).id for c in write} if write is not None else None
    for cal in calendars:
        # Newly written: an extra write calendar from now on (the old primary counts: it stops being one).
        newly = write_ids is not None and cal.id in write_ids and cal is not new and (cal is old or not cal.is_destination)
        if newly and (conn.provider == "ics" or not cal.writable):
            raise ActionError(f"the calendar {cal.name!r} is read-only for this account: it cannot be written")

    def plan(cal: m.Calendar) -> dict:
        """What to change on a calendar that is not the primary (any more)."""
        change: dict = {}
        if busy_ids is not None and (cal.id in busy_ids) != cal.is_busy_source:
            change["busy"] = cal.id in busy_ids
        if write_ids is not None and (cal.id in write_ids) != cal.is_destination:
            change["write"] = cal.id in write_ids
        return change

    def apply(cal: m.Calendar, change: dict) -> None:
        if change:
            changed.append(set_calendar_roles(rt, conn.id, str(cal.id), **change, actor=actor)["name"])

    changed: list[str] = []
    for cal in calendars:
        if cal is new:
            if busy_ids is not None and (cal.id in busy_ids) != cal.is_busy_source:
                apply(cal, {"busy": cal.id in busy_ids})
        elif cal is not old or new is old:
            apply(cal, plan(cal))
    # Named, even if unchanged: set_destination then repairs and syncs a connection that is not active
    # (the first choice of a new one, or a resubmitted form), as the primary picker always did.
    named = new is not None and (new is not old or bool(primary))
    result = set_destination(rt, conn.id, str(new.id), actor=actor) if new is not None and named else None
    if result is not None and old is not None and new is not old:
        demoted = m.Calendar.get_or_none(m.Calendar.id == old.id)  # gone with the missing primary, or a plain calendar now
        if demoted is not None:
            apply(demoted, plan(demoted))
    conn = m.Connection.get_by_id(conn.id)
    return {
        **(result or connection_dict(conn)),
        "change": "updated" if (changed or (result or {}).get("change") == "updated") else "unchanged",
        "primary": next((c.name for c in conn.calendars if c.is_primary), ""),
        "calendars": [calendar_dict(c, conn) for c in conn.calendars.order_by(m.Calendar.id)],
        "changed": changed,
    }


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
