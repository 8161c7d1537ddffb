"""Google Calendar events and iCalendar, both ways: what :mod:`core.providers.google` reads and writes.

Reading, a Google event becomes one small VCALENDAR whose UID is the Google event id (times in
UTC, all-day events as dates, a start or end in a shape we cannot read left out so the engine
records "invalid data" instead of guessing); calsync's appointment id comes back from a private
extended property. Writing, the engine's iCalendar object becomes the JSON body of an insert or
patch carrying calsync's UID and appointment id as private extended properties.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from icalendar import Calendar as ICalendar
from icalendar import Event

from core import busy, clock, ics
from core.providers.base import BadData

EXT_APPOINTMENT = "calsyncAppointment"
EXT_UID = "calsyncUid"


def rfc3339(value: dt.datetime) -> str:
    return clock.utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_when(value: dict | None) -> dt.datetime | dt.date | None:
    """A Google ``start``/``end`` as a UTC datetime or, for all-day events, a date."""
    if not isinstance(value, dict):
        return None
    try:
        if value.get("dateTime"):
            moment = dt.datetime.fromisoformat(str(value["dateTime"]))
            if moment.tzinfo is None:
                try:
                    moment = moment.replace(tzinfo=zoneinfo.ZoneInfo(str(value.get("timeZone") or "UTC")))
                except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                    moment = moment.replace(tzinfo=dt.UTC)
            return moment.astimezone(dt.UTC)
        if value.get("date"):
            return dt.date.fromisoformat(str(value["date"]))
    except (TypeError, ValueError):
        return None
    return None


def _parse_stamp(value) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(value)).astimezone(dt.UTC) if value else None
    except ValueError:
        return None


def event_to_ics(event: dict) -> str:
    """One Google event as the iCalendar object the engine reads."""
    vevent = Event()
    vevent.add("uid", str(event.get("id", "")))
    updated = _parse_stamp(event.get("updated"))
    vevent.add("dtstamp", updated or clock.now())
    # A start or end Google sent in a shape we cannot read is left out: the engine
    # then records the event as "invalid data" instead of guessing a time.
    start, end = _parse_when(event.get("start")), _parse_when(event.get("end"))
    if start is not None:
        vevent.add("dtstart", start)
    if end is not None and type(end) is type(start):
        vevent.add("dtend", end)
    for field in ("summary", "description", "location"):
        if event.get(field):
            vevent.add(field, str(event[field]))
    if event.get("transparency") == "transparent":
        vevent.add("transp", "TRANSPARENT")
    status = str(event.get("status") or "").lower()
    if status in ("confirmed", "tentative", "cancelled"):
        vevent.add("status", status.upper())
    answer = _own_response(event.get("attendees"))
    if answer:
        vevent.add(busy.RESPONSE_PROP, answer)
    if updated is not None:
        vevent.add("last-modified", updated)
    props = event.get("extendedProperties")
    private = props.get("private") if isinstance(props, dict) else None
    if isinstance(private, dict) and private.get(EXT_APPOINTMENT):
        vevent.add(ics.CALSYNC_PROP, str(private[EXT_APPOINTMENT]))
    cal = ics.new_calendar()
    cal.add_component(vevent)
    return cal.to_ical().decode("utf-8")


def _own_response(attendees) -> str:
    """The calendar owner's answer to the invitation: the attendee Google marks ``self``."""
    if not isinstance(attendees, list):
        return ""
    for attendee in attendees[:1000]:
        if isinstance(attendee, dict) and attendee.get("self") is True:
            return busy.GOOGLE_RESPONSES.get(str(attendee.get("responseStatus") or ""), "")
    return ""


def _when(value) -> dict:
    if isinstance(value, dt.datetime):
        return {"dateTime": rfc3339(value), "timeZone": "UTC"}
    return {"date": value.isoformat()}


def ics_to_event(data: str, uid: str) -> dict:
    """The JSON body for an appointment's ICS (``core.ics.render_appointment``)."""
    try:
        cal = ICalendar.from_ical(data)
        vevent = next(c for c in cal.walk("VEVENT"))
        start = vevent.decoded("DTSTART")
        end = vevent.decoded("DTEND") if "DTEND" in vevent else start + vevent.decoded("DURATION")
    except Exception as exc:  # noqa: BLE001 — icalendar raises many types; StopIteration when there is no VEVENT
        raise BadData(f"calsync could not read the event it was about to write ({exc.__class__.__name__})") from None
    private = {EXT_UID: uid}
    marker = vevent.get(ics.CALSYNC_PROP)
    if marker:
        private[EXT_APPOINTMENT] = str(marker)
    return {
        "summary": str(vevent.get("SUMMARY", "") or ""),
        # Always sent, also when empty: a PATCH must clear what an update removed.
        "description": str(vevent.get("DESCRIPTION", "") or ""),
        "location": str(vevent.get("LOCATION", "") or ""),
        "start": _when(start),
        "end": _when(end),
        "transparency": "transparent" if str(vevent.get("TRANSP", "")).upper() == "TRANSPARENT" else "opaque",
        # An event deleted in Google stays as a cancelled tombstone under its id; writing
        # it again (the "restore" policy, or a takeover after 409) brings it back.
        "status": "confirmed",
        "extendedProperties": {"private": private},
    }
