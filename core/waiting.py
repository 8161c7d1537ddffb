"""What waits: appointments not yet on a connection's write calendars, held while it fails.

An appointment link is ``pending`` when the next run writes it, and ``missed``
when it waits because the connection is failing — broken, or failing quietly
before it is ``unreachable``. Missed appointments are counted, downloadable,
and released (back to ``pending``) as soon as the connection works again,
whatever showed that it works. Only :mod:`core.lifecycle` holds and releases;
everyone else reads the counts here.
"""

from __future__ import annotations

import datetime as dt

import peewee as pw

import models as m
from core import clock, prepared

WAITING = (m.LINK_PENDING, m.LINK_MISSED)


def is_failing(conn: m.Connection) -> bool:
    """Broken, or its recent runs failed (before the SPEC's threshold for ``unreachable``)."""
    return conn.status in m.BROKEN_STATUSES or conn.failing_since is not None


def _calendars(conn: m.Connection):
    return m.Calendar.select(m.Calendar.id).where(m.Calendar.connection == conn)


def _calendars_that_take_work(conn: m.Connection):
    """Every calendar of the connection but an extra write calendar in trouble (which keeps its own waiting)."""
    return m.Calendar.select(m.Calendar.id).where(m.Calendar.connection == conn, m.Calendar.problem == "")


def hold(conn: m.Connection) -> int:
    """The connection failed: everything it was about to write now waits as missed."""
    return (
        m.AppointmentLink.update(state=m.LINK_MISSED, updated_at=clock.now())
        .where(m.AppointmentLink.calendar.in_(_calendars(conn)), m.AppointmentLink.state == m.LINK_PENDING)
        .execute()
    )


def hold_lost(conn: m.Connection) -> int:
    """The primary calendar is gone, and calsync's events with it: the upcoming ones wait again
    (for the new primary, or for the calendar if it comes back: a stable UID finds it there)."""
    destinations = m.Calendar.select(m.Calendar.id).where(m.Calendar.connection == conn, m.Calendar.is_destination == True)
    upcoming = m.Appointment.select(m.Appointment.id).where(
        m.Appointment.cancelled == False,
        m.Appointment.ends_at >= clock.now(),
    )
    return (
        m.AppointmentLink.update(state=m.LINK_MISSED, href="", etag="", pushed_version=0, updated_at=clock.now())
        .where(
            m.AppointmentLink.calendar.in_(destinations),
            m.AppointmentLink.state == m.LINK_SYNCED,
            m.AppointmentLink.appointment.in_(upcoming),
        )
        .execute()
    )


def release(conn: m.Connection, incident_id: int | None) -> int:
    """The connection works: what waited is written on this run (or the next one, at once)."""
    return (
        m.AppointmentLink.update(state=m.LINK_PENDING, released_by=incident_id, updated_at=clock.now())
        .where(m.AppointmentLink.calendar.in_(_calendars_that_take_work(conn)), m.AppointmentLink.state == m.LINK_MISSED)
        .execute()
    )


def state_for_new_work(conn: m.Connection) -> str:
    """The state of a link the host just created or changed: it waits if the connection fails."""
    return m.LINK_MISSED if is_failing(conn) else m.LINK_PENDING


def _missed():
    """Waiting as missed, or (stopped with --force) never delivered — not written at all, or a change
    of it never written: what the staff member lacks. Needs the Appointment joined."""
    never_delivered = (m.AppointmentLink.href == "") | (m.AppointmentLink.pushed_version < m.Appointment.version)
    return (m.AppointmentLink.state == m.LINK_MISSED) | ((m.AppointmentLink.state == m.LINK_ORPHANED) & never_delivered)


def missed_count(conn: m.Connection) -> int:
    return (
        m.AppointmentLink.select()
        .join(m.Calendar)
        .switch(m.AppointmentLink)
        .join(m.Appointment)
        .where(m.Calendar.connection == conn, _missed())
        .count()
    )


def missed_counts() -> dict[int, int]:
    """Connection id -> appointments missed, for every connection, in one query."""
    return dict(
        m.tuples(
            m.AppointmentLink.select(m.Calendar.connection, pw.fn.COUNT(m.AppointmentLink.id))
            .join(m.Calendar)
            .switch(m.AppointmentLink)
            .join(m.Appointment)
            .where(_missed())
            .group_by(m.Calendar.connection)
        )
    )


def write_errors(conn: m.Connection) -> list[m.AppointmentLink]:
    """Appointments whose last write to this connection failed (each its own error), oldest first."""
    return list(
        m.AppointmentLink.select(m.AppointmentLink, m.Appointment)
        .join(m.Appointment)
        .switch(m.AppointmentLink)
        .join(m.Calendar)
        .where(
            m.Calendar.connection == conn,
            m.AppointmentLink.last_error != "",
            m.AppointmentLink.state.in_([m.LINK_PENDING, m.LINK_SYNCED, m.LINK_MISSED]),
        )
        .order_by(m.Appointment.starts_at)
    )


def error_counts() -> dict[int, int]:
    """Connection id -> appointments with a failing write, for every connection, in one query."""
    return dict(
        m.tuples(
            m.AppointmentLink.select(m.Calendar.connection, pw.fn.COUNT(m.AppointmentLink.id))
            .join(m.Calendar)
            .where(m.AppointmentLink.last_error != "", m.AppointmentLink.state.in_([m.LINK_PENDING, m.LINK_SYNCED, m.LINK_MISSED]))
            .group_by(m.Calendar.connection)
        )
    )


def missed_appointments(conn: m.Connection, limit: int | None = None) -> list[m.Appointment]:
    """What the staff member should have on the calendar and does not: waiting as missed, or
    (on a stopped connection) never written before the stop; the first ``limit`` by start."""
    query = (
        m.Appointment.select()
        .join(m.AppointmentLink)
        .join(m.Calendar)
        .where(
            m.Calendar.connection == conn,
            _missed(),
            m.Appointment.cancelled == False,
        )
        .order_by(m.Appointment.starts_at)
        .distinct()
    )
    return list(query.limit(limit) if limit else query)


def after_appointment_change(appointment: m.Appointment) -> None:
    """Every write calendar that should show this appointment learns of the change."""
    conns = m.Connection.select().where(m.Connection.staff == appointment.staff_id, m.Connection.status != m.STOPPED)
    now = clock.now()
    for conn in conns:
        connection_state = state_for_new_work(conn)
        for cal in conn.calendars.where(m.Calendar.is_destination == True):
            state = m.LINK_MISSED if cal.problem else connection_state
            link = m.AppointmentLink.get_or_none(appointment=appointment, calendar=cal)
            if link is None:
                if not appointment.cancelled:
                    m.AppointmentLink.create(appointment=appointment, calendar=cal, state=state, updated_at=now)
                continue
            if link.state in (m.LINK_KEPT, m.LINK_ORPHANED):
                continue
            if appointment.cancelled and not link.href:
                link.state = m.LINK_REMOVED
            else:
                link.state = state
            link.last_error, link.write_failures = "", 0
            link.updated_at = now
            link.save()


def _unlinked(cal_id, staff_id, since: dt.datetime):
    """Appointments of the staff member this destination should hold and has no link for
    (``cal_id`` and ``staff_id`` may be columns of an outer query)."""
    return m.Appointment.select(m.Appointment.id).where(
        m.Appointment.staff == staff_id,
        m.Appointment.cancelled == False,
        m.Appointment.ends_at >= since,
        ~pw.fn.EXISTS(
            m.AppointmentLink.select(m.AppointmentLink.id).where(
                m.AppointmentLink.appointment == m.Appointment.id,
                # Already on this calendar, or left on purpose where it was written
                # (a primary or provider switch moves only what comes next).
                (m.AppointmentLink.calendar == cal_id) | (m.AppointmentLink.state == m.LINK_KEPT),
            )
        ),
    )


def waits_on(since: dt.datetime):
    """SQL, for a query over calendars joined with their connection: does anything wait on this
    calendar row? An appointment missed here, one pending or changed or without a link here (a
    destination), or a repaired incident of the connection that still owes its "delivered" message.
    The one definition of "nothing to do" (:func:`nothing_to_do`, and the scheduler's read of a
    connection with its calendars)."""
    K, C, L, A = m.Calendar, m.Connection, m.AppointmentLink, m.Appointment
    missed = pw.fn.EXISTS(L.select(L.id).join(A).where(L.calendar == K.id, _missed()))
    owed = pw.fn.EXISTS(m.Incident.select(m.Incident.id).where(m.Incident.connection == K.connection, m.Incident.delivery_open == True))
    to_write = pw.fn.EXISTS(
        L.select(L.id)
        .join(A)
        .where(L.calendar == K.id, (L.state == m.LINK_PENDING) | ((L.state == m.LINK_SYNCED) & (L.pushed_version < A.version)))
    )
    unlinked = pw.fn.EXISTS(_unlinked(K.id, C.staff, since))
    return pw.Case(None, [(missed | owed | ((K.is_destination == True) & (to_write | unlinked)), 1)], 0)


def _nothing_to_do(conn_id, since):
    K = m.Calendar
    return K.select(pw.fn.MAX(waits_on(since))).join(m.Connection).where(K.connection == conn_id)


_NOTHING_TO_DO = prepared.Prepared(_nothing_to_do)


def nothing_to_do(conn: m.Connection, since: dt.datetime) -> bool:
    """True when a run that read no change has nothing to write, release or tell (:func:`waits_on`
    on every calendar of the connection). One query, for the no-change path of a sync."""
    rows = _NOTHING_TO_DO.rows(conn_id=conn.id, since=since)
    return bool(rows) and rows[0][0] == 0


def ensure_links(cal: m.Calendar, since: dt.datetime, state: str = m.LINK_PENDING) -> int:
    """Every appointment of the staff member that this destination should hold has a link."""
    missing = _unlinked(cal.id, cal.connection.staff_id, since)
    rows = [{"appointment": a.id, "calendar": cal.id, "state": state} for a in missing]
    if rows:
        m.AppointmentLink.insert_many(rows).execute()
    return len(rows)
