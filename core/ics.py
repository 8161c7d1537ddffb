"""iCalendar in and out: rendering calsync appointments, reading external events.

Reading turns one calendar object into feed-entry rows: recurring events
expanded inside the sync window (bounded, so an RRULE bomb cannot run away),
times converted to UTC (Windows zone names are mapped by icalendar; an
unknown TZID is read in the staff member's zone and says so), and each row
marked loaded or not with the SPEC's reason.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
import sys
import threading
import zoneinfo
from typing import TYPE_CHECKING

from core import busy, clock, ics_limits, recurrence
from core.text import control_characters

if TYPE_CHECKING:
    from icalendar import Calendar as ICalendar
    from icalendar import Event


def _icalendar():
    """icalendar (~40 ms to import): only a run that reads or writes
    events needs it, not a no-change sync nor most commands."""
    import icalendar

    return icalendar


def warm_up() -> None:
    """Import icalendar in the background, while this thread waits for a calendar's answer (a
    first sync's read waits ~150 ms on the server: the import no longer follows it). Whoever
    needs icalendar before the import is done waits for it (Python's import lock)."""
    if "icalendar" not in sys.modules:
        threading.Thread(target=_icalendar, name="calsync-icalendar-import", daemon=True).start()


PRODID = "-//Calsync//calsync 0.1//EN"
CALSYNC_PROP = "X-CALSYNC-APPOINTMENT"

INFO_ECHO = "calsync appointment (echo)"
INFO_FREE = busy.INFO_FREE
INFO_CANCELLED = busy.INFO_CANCELLED
INFO_OUTSIDE = "outside the sync window"
INFO_ALL_DAY = busy.INFO_ALL_DAY

_PLAIN_ID = re.compile(r"[A-Za-z0-9._:@~+=-]{1,200}")  # the documented appointment-id set (core.actions.common)


def appointment_uid(external_id: str) -> str:
    """The stable UID of an appointment: the same id always gives the same UID.

    Ids in the documented set appear as they are; any other id (one stored before ids
    were checked) as a hash, so no UID ever needs escaping or carries a control character.
    """
    if _PLAIN_ID.fullmatch(external_id or ""):
        return f"calsync-{external_id}@calsync"
    return f"calsync-x{hashlib.sha256((external_id or '').encode('utf-8', 'surrogatepass')).hexdigest()[:40]}@calsync"


def _safe_uid(appointment) -> str:
    """The stored UID, unless it holds control characters (an id stored before ids were
    checked): icalendar would write those raw or refuse the whole feed."""
    return appointment.uid if not control_characters(appointment.uid) else appointment_uid(appointment.external_id)


def _marker(external_id: str) -> str:
    """The X-CALSYNC-APPOINTMENT value: the id, or an escaped one-line form of a legacy id that is not plain text."""
    if not control_characters(external_id):
        return external_id
    return external_id.encode("unicode_escape").decode("ascii")


def _event_for(appointment, stamp: dt.datetime) -> Event:
    event = _icalendar().Event()
    event.add("uid", _safe_uid(appointment))
    event.add("dtstamp", stamp)
    event.add("dtstart", clock.utc(appointment.starts_at))
    event.add("dtend", clock.utc(appointment.ends_at))
    event.add("summary", appointment.subject)
    if appointment.description:
        event.add("description", appointment.description)
    if appointment.location:
        event.add("location", appointment.location)
    event.add("sequence", max(appointment.version - 1, 0))
    event.add("last-modified", clock.utc(appointment.updated_at))
    event.add("transp", "OPAQUE")
    event.add(CALSYNC_PROP, _marker(appointment.external_id))
    return event


def feed_event(appointment, stamp: dt.datetime) -> Event:
    """An appointment in a subscription feed, exactly as it is pushed (the marker lets a
    calendar that reads the feed back recognise it as calsync's own)."""
    return _event_for(appointment, stamp)


def new_calendar(name: str | None = None) -> ICalendar:
    cal = _icalendar().Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    if name:
        cal.add("x-wr-calname", name)
    return cal


def render_appointment(appointment) -> str:
    """One appointment as the iCalendar object written to a destination calendar."""
    cal = new_calendar()
    cal.add_component(_event_for(appointment, clock.now()))
    return cal.to_ical().decode("utf-8")


def render_snapshot(appointments, name: str, note: str) -> bytes:
    """Several appointments as one .ics file; ``note`` is added to every description."""
    cal = new_calendar(name)
    stamp = clock.now()
    for appointment in appointments:
        event = _event_for(appointment, stamp)
        description = (appointment.description + "\n\n" if appointment.description else "") + note
        event.pop("DESCRIPTION", None)
        event.add("description", description)
        cal.add_component(event)
    return cal.to_ical()


InvalidData = ics_limits.InvalidData


# What the read path uses of an event (this module, core.busy, core.recurrence): a remote object is
# parsed with only these (parse(only=...)); tests/test_ics_reading.py fails when a reader asks for
# anything else.
READ = frozenset(
    {
        "UID",
        "SUMMARY",
        "DTSTART",
        "DTEND",
        "DURATION",
        "RRULE",
        "RDATE",
        "EXDATE",
        "RECURRENCE-ID",
        "STATUS",
        "TRANSP",
        "ATTENDEE",
        "LAST-MODIFIED",
        "DTSTAMP",
        CALSYNC_PROP,
        ics_limits.INVALID_PROP,
        busy.RESPONSE_PROP,
        busy.OUTLOOK_STATUS_PROP,
    }
)
READ_OWN = READ | {"DESCRIPTION", "LOCATION"}  # a copy of calsync's own event: an edit is looked for (appointment_fields)


def parse(data: str, *, only: frozenset[str] | None = None) -> ICalendar:
    """One iCalendar object, with the limits on hostile input applied first (core.ics_limits).
    ``only``: the event properties to read (READ, READ_OWN); the rest of the object is not parsed."""
    try:
        cal = _icalendar().Calendar.from_ical(ics_limits.sanitize(data, only))
    except Exception as exc:  # noqa: BLE001 — icalendar raises ValueError, KeyError, IndexError on broken input
        raise InvalidData(f"cannot be parsed: {str(exc)[:160]}") from None
    if not isinstance(cal, _icalendar().Calendar) or cal.name != "VCALENDAR":
        raise InvalidData("not a VCALENDAR object")
    return cal


def events(cal: ICalendar) -> list:
    return [c for c in cal.subcomponents if c.name == "VEVENT"]


def is_calsync_event(cal: ICalendar) -> str | None:
    """The appointment id if the object is one calsync wrote, else None."""
    for event in events(cal):
        marker = event.get(CALSYNC_PROP)
        if marker:
            return str(marker)
    return None


@dataclasses.dataclass
class Occurrence:
    uid: str
    recurrence_id: str
    starts_at: dt.datetime | None
    ends_at: dt.datetime | None
    subject: str
    loaded: bool
    info: str
    remote_updated_at: dt.datetime | None


_to_utc = recurrence.to_utc


def _unknown_tzid(event) -> str:
    prop = event.get("DTSTART")
    tzid = prop.params.get("TZID") if prop is not None and hasattr(prop, "params") else None
    if tzid and isinstance(getattr(prop, "dt", None), dt.datetime) and prop.dt.tzinfo is None:
        return str(tzid)
    return ""


def _last_modified(event) -> dt.datetime | None:
    for name in ("LAST-MODIFIED", "DTSTAMP"):
        if name in event:
            try:
                value = event.decoded(name)
            except Exception:  # noqa: BLE001, S112 — an unreadable LAST-MODIFIED falls back to DTSTAMP, then to none
                continue
            if isinstance(value, dt.datetime):
                return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)
    return None


def _occurrence(
    event, tz, policy_all_day: str, recurrence_id: str, note: str, me: frozenset[str] = frozenset(), at: recurrence.Instance | None = None
) -> Occurrence:
    """One feed-entry row: of ``event`` itself, or of the series instance ``at`` (its times, ``event``'s properties)."""
    uid = str(event.get("UID", "") or "")
    subject = str(event.get("SUMMARY", "") or "")
    if at is not None:
        start, end, all_day = at.starts_at, at.ends_at, at.all_day
    else:
        try:
            local_start = event.decoded("DTSTART")
            start, all_day = _to_utc(local_start, tz)
            end = recurrence.end_of(event, local_start, tz)
        except InvalidData as exc:
            return Occurrence(uid, recurrence_id, None, None, subject, False, f"invalid data: {exc}", None)
        except Exception as exc:  # noqa: BLE001 — icalendar raises many types on hostile dates; the entry says why
            return Occurrence(uid, recurrence_id, None, None, subject, False, f"invalid data: {str(exc)[:160]}", None)
    updated = _last_modified(event)
    if end < start:
        return Occurrence(uid, recurrence_id, start, end, subject, False, "invalid data: ends before it starts", updated)
    loaded, info = busy.decide(event, me, all_day=all_day, all_day_policy=policy_all_day)
    if loaded:
        stamp = "last updated " + (updated.strftime("%Y-%m-%d %H:%M UTC") if updated else "(unknown)")
        info = f"{info}; {stamp}" if info else stamp
    if note:
        info += f"; {note}"
    return Occurrence(uid, recurrence_id, start, end, subject, loaded, info, updated)


def expand(
    cal: ICalendar,
    window_start: dt.datetime,
    window_end: dt.datetime,
    tz: dt.tzinfo,
    *,
    all_day_policy: str = "ignore",
    max_occurrences: int = 1000,
    me: frozenset[str] = frozenset(),
) -> list[Occurrence]:
    """Feed-entry rows for every event of ``cal`` (one object, one UID); ``me``: the staff member's own
    addresses, whose answers to invitations count (core.busy)."""
    vevents = events(cal)
    if not vevents:
        return []
    master = next((e for e in vevents if "RECURRENCE-ID" not in e), vevents[0])
    uid = str(master.get("UID", "") or "")
    if not uid:
        return [Occurrence("", "", None, None, str(master.get("SUMMARY", "") or ""), False, "invalid data: the event has no UID", None)]
    unknown = _unknown_tzid(master)
    note = f"unknown time zone {unknown!r} read as {getattr(tz, 'key', str(tz))}" if unknown else ""
    why = rule_problem(cal)
    if why:
        return [Occurrence(uid, "", None, None, str(master.get("SUMMARY", "") or ""), False, f"invalid data: {why}", None)]
    if "DTSTART" not in master:
        return [
            Occurrence(uid, "", None, None, str(master.get("SUMMARY", "") or ""), False, "invalid data: the event has no start time", None)
        ]
    recurring = "RRULE" in master or "RDATE" in master or len(vevents) > 1
    if not recurring:
        occ = _occurrence(master, tz, all_day_policy, "", note, me)
        if occ.starts_at is not None and occ.ends_at is not None and (occ.ends_at <= window_start or occ.starts_at >= window_end):
            occ.loaded, occ.info = False, INFO_OUTSIDE
        return [occ]

    rows: list[Occurrence] = []
    try:
        found = recurrence.instances(vevents, master, window_start, window_end, tz, max_occurrences)
        for at in found[:max_occurrences]:
            rows.append(_occurrence(at.component, tz, all_day_policy, at.recurrence_id, note, me, at))
        if len(found) > max_occurrences:
            rows[-1].info += f"; the series has more than {max_occurrences} occurrences in the sync window, the rest were not read"
    except InvalidData as exc:
        return [Occurrence(uid, "", None, None, str(master.get("SUMMARY", "") or ""), False, f"invalid data: {exc}", None)]
    except Exception as exc:  # noqa: BLE001 — a broken RRULE surfaces as many exception types
        return [
            Occurrence(
                uid,
                "",
                None,
                None,
                str(master.get("SUMMARY", "") or ""),
                False,
                f"invalid data: the repeat rule cannot be read ({str(exc)[:120]})",
                None,
            )
        ]
    if not rows:
        occ = _occurrence(master, tz, all_day_policy, "", note)
        occ.loaded, occ.info = False, INFO_OUTSIDE + " (no occurrence inside it)"
        return [occ]
    return rows


def is_recurring(cal: ICalendar) -> bool:
    vevents = events(cal)
    if not vevents:
        return False
    master = next((e for e in vevents if "RECURRENCE-ID" not in e), vevents[0])
    return "RRULE" in master or "RDATE" in master or len(vevents) > 1


def rule_problem(cal: ICalendar) -> str:
    """Why the object's event is not read at all ("" when it can be): limits of core.ics_limits."""
    for event in events(cal):
        marked = event.get(ics_limits.INVALID_PROP)
        if marked:
            return str(marked)
        rules = event.get("RRULE")
        for rule in rules if isinstance(rules, list) else ([rules] if rules is not None else []):
            why = ics_limits.check_rule(rule.to_ical().decode())
            if why:
                return why
    return ""


def appointment_fields(cal: ICalendar, tz: dt.tzinfo) -> dict:
    """Time, title, description and location of a calsync event as found on the calendar."""
    event = events(cal)[0]
    start, _ = _to_utc(event.decoded("DTSTART"), tz)
    if "DTEND" in event:
        end, _ = _to_utc(event.decoded("DTEND"), tz)
    else:
        end = start + event.decoded("DURATION") if "DURATION" in event else start
    return {
        "starts_at": start,
        "ends_at": end,
        "subject": str(event.get("SUMMARY", "") or ""),
        "description": str(event.get("DESCRIPTION", "") or ""),
        "location": str(event.get("LOCATION", "") or ""),
    }


def zone(name: str) -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return dt.UTC
