"""Appointments from the host (or `book`): upsert, cancel, and what waits while a connection is broken."""

from __future__ import annotations

import datetime as dt
import unicodedata
import uuid

import models as m
from core import clock, ics, waiting
from core.actions.common import (
    ActionError,
    InvalidInput,
    NotFoundError,
    _check_appointment_id,
    _connection,
    _parse_time,
    _staff,
    _valid_timezone,
    audit,
    audited,
)
from core.actions.views import appointment_dict

SNAPSHOT_NOTE = (
    "Snapshot from calsync taken {when}: this file will not update. If the appointment is "
    "rescheduled or cancelled later, this copy stays as it is. You may import it into the calendar "
    "calsync writes to: once the connection works again, calsync recognises these appointments as "
    "its own and keeps them up to date there, without duplicates."
)

IMPORT_NOTE = (
    "Safe to import into the calendar calsync writes to: after the repair calsync recognises these "
    "appointments as its own and updates them in place, without duplicates."
)


def upsert_appointment(
    rt,
    external_id: str,
    staff_email: str,
    start,
    end,
    subject: str,
    description: str = "",
    location: str = "",
    source: str = "host",
    actor: str = "",
    timezone: str | None = None,
) -> dict:
    """Create or change an appointment; repeating the same call changes nothing.

    Times with a UTC offset are taken as they are; times without one are read
    in ``timezone`` (an IANA name) or else the staff member's zone. A new id must
    be in the documented set; one stored before ids were checked keeps working.
    """
    if _stored(external_id) is None:
        _check_appointment_id(external_id)
    staff = _staff(staff_email)
    tz = ics.zone(_valid_timezone(timezone) if timezone else staff.timezone)
    starts_at = _parse_time(start, tz, "start")
    ends_at = _parse_time(end, tz, "end")
    if ends_at <= starts_at:
        raise InvalidInput("the appointment must end after it starts")
    if ends_at - starts_at > dt.timedelta(days=31):
        raise InvalidInput("an appointment may last at most 31 days")
    fields = {"starts_at": starts_at, "ends_at": ends_at, **_texts(subject, description, location)}
    with m.db.atomic():
        appointment = m.Appointment.get_or_none(m.Appointment.external_id == external_id)
        if appointment is None:
            appointment = m.Appointment.create(
                external_id=external_id, staff=staff, uid=ics.appointment_uid(external_id), source=source, **fields
            )
            changed = "created"
        else:
            if appointment.staff_id != staff.id:
                raise ActionError(f"appointment {external_id} belongs to another staff member; cancel it and create a new one")
            current = {k: getattr(appointment, k) for k in fields}
            if current == fields and not appointment.cancelled:
                return {**appointment_dict(appointment), "change": "unchanged"}
            for key, value in fields.items():
                setattr(appointment, key, value)
            appointment.cancelled, appointment.cancel_reason = False, ""
            appointment.version += 1
            appointment.updated_at = clock.now()
            appointment.save()
            changed = "updated"
        waiting.after_appointment_change(appointment)
        if actor:  # in the same transaction: a busy database leaves neither half
            audit(actor, f"appointment.{changed}", external_id)
    return {**appointment_dict(appointment), "change": changed}


def book(rt, staff_email: str, start, end, subject: str, description: str = "", location: str = "", actor: str = "") -> dict:
    """A test appointment, created exactly as the host API creates one; with the staff member's
    name and zone, so the caller can say the time where they live."""
    external_id = f"test-{uuid.uuid4().hex[:12]}"
    booked = upsert_appointment(rt, external_id, staff_email, start, end, subject, description, location, source="cli", actor=actor)
    staff = _staff(staff_email)
    return {**booked, "staff_name": staff.name, "timezone": staff.timezone}


# The longest text each field takes (in characters, as sent); a longer one is refused, never cut,
# so what the host stored is what it sent (web/openapi.json gives the same limits).
TEXT_MAX = {"subject": 500, "description": 8000, "location": 500}


def _texts(subject, description, location) -> dict:
    """Subject and location are one line, the description may break lines; no other control
    characters or broken (surrogate) text, which iCalendar cannot carry and calendars refuse."""
    for what, value in (("subject", subject), ("description", description), ("location", location)):
        if len(value or "") > TEXT_MAX[what]:
            raise InvalidInput(f"the {what} may be at most {TEXT_MAX[what]} characters (it has {len(value)})")
    subject = (subject or "").strip()
    if not subject:
        raise InvalidInput("the appointment needs a subject")
    for what, value, allowed in (("subject", subject, "\t"), ("location", location, "\t"), ("description", description, "\t\r\n")):
        found = [f"U+{ord(c):04X}" for c in dict.fromkeys(value or "") if c not in allowed and unicodedata.category(c) in ("Cc", "Cs")]
        if found:
            raise InvalidInput(f"the {what} may not contain control characters (found {', '.join(found[:5])})")
    return {"subject": subject, "description": description or "", "location": location or ""}


def _stored(external_id) -> m.Appointment | None:
    """The appointment with exactly this id (ids stored before they were checked included)."""
    if not isinstance(external_id, str) or not external_id or len(external_id) > 1000:
        return None
    try:
        return m.Appointment.get_or_none(m.Appointment.external_id == external_id)
    except ValueError:  # PostgreSQL (psycopg2) refuses a NUL even in a query: it holds no such id
        return None


def _existing(external_id) -> m.Appointment:
    appointment = _stored(external_id)
    if appointment is None:
        _check_appointment_id(external_id)  # a malformed id is a bad request, not an unknown one
        raise NotFoundError(f"no appointment with id {external_id!r}")
    return appointment


def get_appointment(rt, external_id: str) -> dict:
    appointment = _existing(external_id)
    links = [{"calendar": link.calendar.name, "connection": link.calendar.connection_id, "state": link.state} for link in appointment.links]
    return {**appointment_dict(appointment), "calendars": links}


def cancel_appointment(rt, external_id: str, reason: str = "cancelled by the host", actor: str = "") -> dict:
    appointment = _existing(external_id)
    if appointment.cancelled:
        return {**appointment_dict(appointment), "change": "unchanged"}
    with m.db.atomic():
        appointment.cancelled, appointment.cancel_reason = True, reason
        appointment.version += 1
        appointment.updated_at = clock.now()
        appointment.save()
        waiting.after_appointment_change(appointment)
        if actor:
            audit(actor, "appointment.cancel", external_id)
    return {**appointment_dict(appointment), "change": "cancelled"}


def missed_appointments(conn: m.Connection) -> list[m.Appointment]:
    return waiting.missed_appointments(conn)


@audited("connection.download_missed")
def download_missed(rt, conn_id, actor: str = "") -> dict:
    """The missed appointments as an .ics snapshot (which says it will not update)."""
    conn = _connection(conn_id)
    appointments = missed_appointments(conn)
    note = SNAPSHOT_NOTE.format(when=clock.now().strftime("%Y-%m-%d %H:%M UTC"))
    data = ics.render_snapshot(appointments, f"Missed appointments ({conn.staff.name})", note)
    if actor:
        audit(actor, "connection.download_missed", conn.id, f"{len(appointments)} appointment(s)")
    return {
        "connection": conn.id,
        "count": len(appointments),
        "ics": data,
        "filename": f"calsync-missed-{conn.id}.ics",
        "import_note": IMPORT_NOTE,
    }
