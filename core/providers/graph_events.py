"""Graph events and iCalendar, both ways: what :mod:`core.providers.microsoft` reads and writes.

Reading, a Graph event (asked for with times in UTC and a text body) becomes one small VCALENDAR
whose UID is the Graph event id; calsync's appointment id comes back from a single-value extended
property as ``X-CALSYNC-APPOINTMENT``. Writing, the engine's iCalendar object becomes a Graph event
carrying that property and calsync's UID. Zones Graph names the Windows way are mapped to IANA
names; a zone nobody knows is passed on as a TZID, and the engine says so in the feed entry.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import zoneinfo

from icalendar import Event
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from core import busy, clock, ics
from core.providers.base import BadData

# calsync's own property set (a GUID of ours): Graph extended property ids name a set and a name.
PROPERTY_SET = "{66f5a359-4659-4830-9070-00047ec6ac6e}"
APPOINTMENT_PROPERTY = f"String {PROPERTY_SET} Name calsyncAppointment"
UID_PROPERTY = f"String {PROPERTY_SET} Name calsyncUid"


# -- Graph event -> iCalendar ------------------------------------------------------------------

_DATETIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d)?)(?:\.\d+)?(Z|[+-]\d\d:?\d\d)?")


def instant_of(value) -> dt.datetime | None:
    """A DateTimeOffset such as ``2026-05-01T10:00:00.1234567Z`` (7 fractional digits) as aware UTC."""
    match = _DATETIME.fullmatch(str(value or "").strip())
    if not match:
        return None
    parsed = dt.datetime.fromisoformat(match.group(1) + (match.group(2) or "Z").replace("Z", "+00:00"))
    return parsed.astimezone(dt.UTC)


def _zone(name: str) -> dt.tzinfo | None:
    name = (name or "").strip()
    if name.upper() in ("UTC", "GMT", "Z", "ETC/UTC"):
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(WINDOWS_TO_OLSON.get(name, name))
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


def moment_of(value) -> tuple[dt.datetime | None, str]:
    """A dateTimeTimeZone as aware UTC, or (naive local time, zone name) when the zone is unknown."""
    if not isinstance(value, dict):
        return None, ""
    match = _DATETIME.fullmatch(str(value.get("dateTime") or "").strip())
    if not match:
        return None, ""
    local = dt.datetime.fromisoformat(match.group(1))
    zone_name = str(value.get("timeZone") or "UTC")
    zone = _zone(zone_name)
    if zone is None:
        return local, zone_name
    return local.replace(tzinfo=zone).astimezone(dt.UTC), ""


def _text_body(body) -> str:
    if not isinstance(body, dict):
        return ""
    content = str(body.get("content") or "")
    if str(body.get("contentType", "text")).lower() == "html":
        # Asked for text, but some mailboxes answer HTML anyway: keep the words, not the markup.
        content = re.sub(r"(?is)<(script|style)[^>]*>.*?</\1>", "", content)
        content = re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\n", content)
        content = html.unescape(re.sub(r"<[^>]+>", "", content)).strip()
    # Exchange stores text bodies with CRLF; calsync's descriptions use LF.
    return content.replace("\r\n", "\n")


def marker_of(event: dict) -> str:
    for prop in event.get("singleValueExtendedProperties") or []:
        if isinstance(prop, dict) and str(prop.get("id", "")).lower() == APPOINTMENT_PROPERTY.lower():
            return str(prop.get("value") or "")
    return ""


def etag_of(event: dict) -> str:
    return str(event.get("@odata.etag") or (f'W/"{event["changeKey"]}"' if event.get("changeKey") else ""))


def event_to_ics(event: dict) -> str:
    """One Graph event as the iCalendar object the sync engine reads."""
    vevent = Event()
    vevent.add("uid", str(event.get("id", "")))
    modified = instant_of(event.get("lastModifiedDateTime"))
    vevent.add("dtstamp", modified or clock.now())
    all_day = bool(event.get("isAllDay"))
    for name, key in (("dtstart", "start"), ("dtend", "end")):
        value, unknown_zone = moment_of(event.get(key))
        if value is None:
            continue  # the engine reports the event as invalid data ("no start time")
        if all_day:
            # All-day events float: the day is the date as written, in whatever zone it came.
            vevent.add(name, dt.date.fromisoformat(str(event[key]["dateTime"])[:10]))
        elif unknown_zone:
            # Read in the staff member's zone by the engine, which says so in the feed entry.
            vevent.add(name, value, parameters={"TZID": unknown_zone})
        else:
            vevent.add(name, value)
    vevent.add("summary", str(event.get("subject") or ""))
    description = _text_body(event.get("body"))
    if description:
        vevent.add("description", description)
    location = str((event.get("location") or {}).get("displayName") or "")
    if location:
        vevent.add("location", location)
    show_as = busy.GRAPH_SHOW_AS.get(str(event.get("showAs") or ""), "")
    vevent.add("transp", "TRANSPARENT" if show_as in busy.FREE_SHOW_AS else "OPAQUE")
    if show_as:
        vevent.add(busy.OUTLOOK_STATUS_PROP, show_as)
    response = event.get("responseStatus")
    answer = busy.GRAPH_RESPONSES.get(str(response.get("response") or ""), "") if isinstance(response, dict) else ""
    if answer:
        vevent.add(busy.RESPONSE_PROP, answer)
    if event.get("isCancelled"):
        vevent.add("status", "CANCELLED")
    if modified:
        vevent.add("last-modified", modified)
    marker = marker_of(event)
    if marker:
        vevent.add(ics.CALSYNC_PROP, marker)
    cal = ics.new_calendar()
    cal.add_component(vevent)
    return cal.to_ical().decode("utf-8")


# -- iCalendar -> Graph event ------------------------------------------------------------------


def _graph_time(value) -> dict:
    if isinstance(value, dt.datetime):
        value = clock.utc(value)  # a floating time is taken as UTC, as calsync writes only UTC
        return {"dateTime": value.strftime("%Y-%m-%dT%H:%M:%S"), "timeZone": "UTC"}
    return {"dateTime": value.strftime("%Y-%m-%dT00:00:00"), "timeZone": "UTC"}


def ics_to_event(data: str, uid: str = "") -> dict:
    """The Graph event for the iCalendar object the engine wants written."""
    try:
        vevents = ics.events(ics.parse(data))
    except ics.InvalidData as exc:
        raise BadData(f"calsync could not read the event it was to write: {exc}") from None
    if not vevents:
        raise BadData("calsync was asked to write an iCalendar object without an event")
    vevent = vevents[0]
    try:
        start = vevent.decoded("DTSTART")
        if "DTEND" in vevent:
            end = vevent.decoded("DTEND")
        elif "DURATION" in vevent:
            end = start + vevent.decoded("DURATION")
        else:
            end = start
    except Exception as exc:  # noqa: BLE001 — icalendar raises several types for a broken date
        raise BadData(f"the event to write has an unreadable start or end ({exc.__class__.__name__})") from None
    all_day = not isinstance(start, dt.datetime)
    properties = []
    marker = str(vevent.get(ics.CALSYNC_PROP, "") or "")
    if marker:
        properties.append({"id": APPOINTMENT_PROPERTY, "value": marker})
    uid = uid or str(vevent.get("UID", "") or "")
    if uid:
        properties.append({"id": UID_PROPERTY, "value": uid})
    return {
        "subject": str(vevent.get("SUMMARY", "") or ""),
        "body": {"contentType": "text", "content": str(vevent.get("DESCRIPTION", "") or "")},
        "start": _graph_time(start),
        "end": _graph_time(end),
        "isAllDay": all_day,
        "location": {"displayName": str(vevent.get("LOCATION", "") or "")},
        "showAs": "free" if str(vevent.get("TRANSP", "") or "").upper() == "TRANSPARENT" else "busy",
        "singleValueExtendedProperties": properties,
    }
