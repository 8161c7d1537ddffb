"""Busy time held to the CalDAV server's own answer (issue 18): calsync's busy blocks against the
``CALDAV:free-busy-query`` REPORT (RFC 4791 §7.10) of a real Radicale and a real Xandikos.

Both servers implement the report (Radicale 3.9: ``radicale/app/report.py``; Xandikos 0.4:
``FreeBusyQueryReporter`` in ``xandikos/caldav.py``): REPORT on the calendar collection with Depth 1
answers one VFREEBUSY whose FREEBUSY periods are in UTC and cut to the query's range. Busy is every
FBTYPE but FREE (RFC 5545 §3.2.9): BUSY, BUSY-TENTATIVE, BUSY-UNAVAILABLE. Calsync's side is the
production path: ``core.expander.expand`` (a recurring object expanded in a worker with the sync's
limits) with ``all_day_policy="busy"`` — the servers count all-day events as busy — loaded occurrences
cut to the range and merged by ``core.hostapi.merge``, as the host API's ``busy`` does.

Hypothesis writes the calendars: series repeating daily, weekly (with BYDAY), monthly (BYMONTHDAY, BYDAY=2TU) or yearly, with COUNT,
UNTIL or no end, INTERVAL, EXDATE, RDATE, RECURRENCE-ID overrides that move an occurrence or cancel it,
TRANSP and STATUS, times in UTC, in Europe/Berlin and America/New_York (each with its VTIMEZONE, both
zones' DST changes inside the range), floating times and all-day dates, and events across the range's
edges. Every example is a fresh calendar collection.

Floating times and dates (RFC 4791 §5.2.2: resolved in the calendar's CALDAV:calendar-timezone; without
one, in a zone of the server's choice): Xandikos honours the property, so its calendars get one
(Berlin or New York) and calsync reads floating times in the same zone. Radicale stores the property and
ignores it (floating times and dates are UTC to it, whatever the calendar says; pinned by
``test_known_server_deviations_are_still_there``), so its calendars get none and calsync reads them in
UTC, the zone Radicale chose.

Known server deviations, left out of that server's generated calendars (``DEVIATIONS``) and each pinned
by an example in ``test_known_server_deviations_are_still_there``, so a fixed server shows up as a
failure there and its exclusion can go:

Radicale
  * an all-day override (``RECURRENCE-ID;VALUE=DATE``) does not take its occurrence out of the series:
    the original day stays busy (RFC 5545 §3.8.4.4, §3.8.5);
  * a repeating all-day event without DTEND or DURATION lasts one second per occurrence, not one day
    (RFC 5545 §3.6.1; RFC 4791 §9.9's table);
  * an exact duration (``DURATION:PT3H``) is added on the wall clock, so it is an hour off across a DST
    change (RFC 5545 §3.3.6);
  * a local time that does not exist (in the spring-forward gap) is read with the offset after the gap,
    and a recurrence instance there is kept (RFC 5545 §3.3.5: the offset before the gap; §3.3.10: such an
    instance is ignored).

Xandikos
  * an event with RDATE but no RRULE has only its DTSTART occurrence (RFC 5545 §3.8.5.2);
  * an all-day event without DTEND or DURATION is a FREEBUSY period of no length (``P0D``), not one day
    (RFC 5545 §3.6.1; RFC 4791 §9.9's table);
  * a nominal duration (``DURATION:P1D``) is added in UTC, so it is 24 hours on a 23- or 25-hour day
    (RFC 5545 §3.3.6, §3.8.5.3);
  * a repeat whose length is DTEND minus DTSTART keeps its wall-clock span, as in Radicale (§3.8.5.3);
  * a repeat at a local time that does not exist is kept, read with the offset before the gap
    (RFC 5545 §3.3.10: ignored, and not counted);
  * a floating series' instances are picked for the asked range by their UTC reading, so one at the
    range's edge is missing or extra (RFC 4791 §9.9: floating times are in the calendar's zone; a single
    floating event is read right).
  (Also, not busy time: its answer has no Content-Type, and its DTSTAMP is off by the calendar zone's offset.)

Where calsync itself is wrong it is not excluded anywhere: ``test_calsync_*`` below hold calsync to the
RFC's answer for each bug found, and the generated test fails whenever its examples hit one against a
server that gets it right. Those found so far (all fixed by core/recurrence.py): a nominal day added as 24
hours; an exact length of a repeat added on the wall clock across a DST change (RFC 5545 §3.3.6,
§3.8.5.3); a repeat at a skipped local time kept and counted (§3.3.10); an EXDATE removing an RDATE
instance written in another reading of the zone (§3.8.5.1).

``CALSYNC_BUSY_EXAMPLES=500`` runs that many random examples per server instead of the fixed ones.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import uuid
import zoneinfo
from collections.abc import Callable
from xml.sax.saxutils import escape

import icalendar
from dateutil.rrule import rrulestr
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from servers import CalDAVServer

from core import expander, hostapi, ics

UTC = dt.UTC
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
BUSY_TYPES = ("BUSY", "BUSY-TENTATIVE", "BUSY-UNAVAILABLE")  # RFC 5545 §3.2.9: every FBTYPE but FREE is busy time
_LONG = int(os.environ.get("CALSYNC_BUSY_EXAMPLES", "0") or 0)

Blocks = list[tuple[dt.datetime, dt.datetime]]

# ---------------------------------------------------------------------------------------------- zones

VTIMEZONES = {
    # As calendar clients write them: the zone's current rules, repeated every year (RFC 5545 §3.6.5).
    "Europe/Berlin": (
        "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\n"
        "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\nDTSTART:19700329T020000\r\n"
        "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n"
        "BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\nDTSTART:19701025T030000\r\n"
        "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    ),
    "America/New_York": (
        "BEGIN:VTIMEZONE\r\nTZID:America/New_York\r\n"
        "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\nTZNAME:EDT\r\nDTSTART:20070311T020000\r\n"
        "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\r\nEND:DAYLIGHT\r\n"
        "BEGIN:STANDARD\r\nTZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\nTZNAME:EST\r\nDTSTART:20071104T020000\r\n"
        "RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    ),
}
TZIDS = tuple(VTIMEZONES)
FLOATING, DATE = "floating", "date"
ZONES = ("UTC", *TZIDS, FLOATING, DATE)  # how an event writes its times


def Z(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    """A time in UTC."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


@dataclasses.dataclass(frozen=True)
class Range:
    start: dt.datetime
    end: dt.datetime
    dst: tuple[tuple[str, dt.datetime], ...] = ()  # each zone's DST change inside it


# Each range holds both of its season's DST changes, Europe's and America's, and starts and ends off the hour.
SPRING = Range(Z(2026, 3, 5, 9, 30), Z(2026, 4, 2, 15, 45), (("America/New_York", Z(2026, 3, 8, 7)), ("Europe/Berlin", Z(2026, 3, 29, 1))))
AUTUMN = Range(
    Z(2026, 10, 21, 6, 15), Z(2026, 11, 12, 18, 0), (("Europe/Berlin", Z(2026, 10, 25, 1)), ("America/New_York", Z(2026, 11, 1, 6)))
)

# ---------------------------------------------------------------------------------------------- calendar objects


@dataclasses.dataclass(frozen=True)
class Ev:
    """One VEVENT's times and busy-ness: ``start`` a naive wall-clock time, or a date for an all-day event."""

    start: dt.datetime | dt.date
    length: dt.timedelta
    end_form: str  # DTEND, DURATION, or NONE (an all-day event of one day, RFC 5545 §3.6.1)
    status: str | None = None
    transp: str | None = None


@dataclasses.dataclass(frozen=True)
class Override:
    recurrence_id: dt.datetime | dt.date
    event: Ev


@dataclasses.dataclass(frozen=True)
class Obj:
    """One calendar object resource: a VEVENT with its repeat rule, exceptions and overrides.

    ``series``: the starts the master's RRULE (with COUNT/UNTIL) gives up to well past the range,
    before EXDATE; what the generator picked exceptions from, and what the deviation filters read."""

    uid: str
    zone: str
    master: Ev
    rrule: str | None = None
    exdates: tuple[dt.datetime | dt.date, ...] = ()
    rdates: tuple[dt.datetime | dt.date, ...] = ()
    overrides: tuple[Override, ...] = ()
    series: tuple[dt.datetime | dt.date, ...] = ()

    @property
    def recurring(self) -> bool:
        return bool(self.rrule or self.rdates)

    def instances(self) -> list[Ev]:
        """Every occurrence, as the RFC reads the object: the series less EXDATEs and overridden starts,
        the RDATEs, and the overrides (at their own, moved, times)."""
        if not self.recurring:
            return [self.master]
        gone = set(self.exdates) | {o.recurrence_id for o in self.overrides}
        starts = [s for s in self.series if s not in gone] + list(self.rdates)
        return [dataclasses.replace(self.master, start=s) for s in starts] + [o.event for o in self.overrides]

    def ics(self) -> str:
        text = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync//busy differential//EN\r\n"
        text += VTIMEZONES.get(self.zone, "")
        extra = []
        if self.rrule:
            extra.append(f"RRULE:{self.rrule}")
        if self.exdates:
            extra.append("EXDATE" + self._values(self.exdates))
        if self.rdates:
            extra.append("RDATE" + self._values(self.rdates))
        text += self._vevent(self.master, extra)
        for override in self.overrides:
            text += self._vevent(override.event, ["RECURRENCE-ID" + self._values((override.recurrence_id,))])
        return text + "END:VCALENDAR\r\n"

    def _values(self, values) -> str:
        """``;params:value,value`` in the object's own form: a DATE, UTC, floating, or a TZID's local time."""
        if self.zone == DATE:
            return ";VALUE=DATE:" + ",".join(f"{v:%Y%m%d}" for v in values)
        if self.zone == "UTC":
            return ":" + ",".join(f"{v:%Y%m%dT%H%M%S}Z" for v in values)
        params = "" if self.zone == FLOATING else f";TZID={self.zone}"
        return params + ":" + ",".join(f"{v:%Y%m%dT%H%M%S}" for v in values)

    def _vevent(self, ev: Ev, extra: list[str]) -> str:
        lines = ["BEGIN:VEVENT", f"UID:{self.uid}", "DTSTAMP:20260101T000000Z", "SUMMARY:busy differential"]
        lines.append("DTSTART" + self._values((ev.start,)))
        if ev.end_form == "DTEND":
            lines.append("DTEND" + self._values((ev.start + ev.length,)))
        elif ev.end_form == "DURATION":
            lines.append("DURATION:" + duration_text(ev.length))
        if ev.status:
            lines.append(f"STATUS:{ev.status}")
        if ev.transp:
            lines.append(f"TRANSP:{ev.transp}")
        lines += extra
        lines.append("END:VEVENT")
        return "\r\n".join(lines) + "\r\n"


def duration_text(length: dt.timedelta) -> str:
    """RFC 5545 §3.3.6: whole days as nominal days (``P1D``), the rest as exact hours and minutes (``T1H30M``)."""
    days, seconds = length.days, length.seconds
    text = "P" + (f"{days}D" if days else "")
    if seconds or not days:
        text += f"T{seconds // 3600}H{seconds % 3600 // 60}M"
    return text


def calendar(*vevents: str, tzid: str | None = "Europe/Berlin") -> str:
    """A calendar object from VEVENT bodies (``|`` between lines), with the zone's VTIMEZONE; its VEVENTs share a new UID."""
    uid = f"hand-{uuid.uuid4().hex[:12]}"
    lines = (f"BEGIN:VEVENT|UID:{uid}|DTSTAMP:20260101T000000Z|" + v + "|END:VEVENT|" for v in vevents)
    body = "".join(lines).replace("|", "\r\n")
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync//busy differential//EN\r\n"
        + (VTIMEZONES[tzid] if tzid else "")
        + body
        + "END:VCALENDAR\r\n"
    )


# ---------------------------------------------------------------------------------------------- what calsync and the server say


def calsync_busy(texts: list[str], rng: Range, tz: dt.tzinfo) -> Blocks:
    """Calsync's busy blocks in ``rng`` for these objects, the way a sync and the host API get them (less any
    of no length, as in ``server_busy`` and the host API: an event of no length blocks nothing)."""
    blocks = []
    for text in texts:
        parsed = ics.parse(text, only=ics.READ)  # as a sync parses what it reads
        for occ in expander.expand(text, parsed, rng.start, rng.end, tz, all_day_policy="busy", max_occurrences=1000, timeout=30):
            assert not occ.info.startswith("invalid data"), (occ, text)
            if not occ.loaded or occ.starts_at is None or occ.ends_at is None or occ.ends_at <= occ.starts_at:
                continue
            if occ.starts_at < rng.end and occ.ends_at > rng.start:
                blocks.append((max(occ.starts_at, rng.start), min(occ.ends_at, rng.end)))
    return hostapi.merge(blocks)


FREE_BUSY_QUERY = (
    '<?xml version="1.0" encoding="utf-8"?>'
    '<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav"><C:time-range start="{start}" end="{end}"/></C:free-busy-query>'
)


def free_busy_answer(server: CalDAVServer, calendar_url: str, rng: Range) -> str:
    """The server's VFREEBUSY for ``rng``: the REPORT on the calendar collection, Depth 1 (RFC 4791 §7.10)."""
    body = FREE_BUSY_QUERY.format(start=f"{rng.start:%Y%m%dT%H%M%SZ}", end=f"{rng.end:%Y%m%dT%H%M%SZ}")
    resp = server.request(
        "REPORT", calendar_url, data=body.encode(), headers={"Depth": "1", "Content-Type": "application/xml; charset=utf-8"}
    )
    assert resp.status_code == 200, (resp.status_code, resp.text[:500])
    return resp.content.decode("utf-8")


def server_busy(answer: str, rng: Range) -> Blocks:
    """The busy periods of a VFREEBUSY answer, merged. Each must lie inside the range (RFC 4791 §7.10)."""
    (vfreebusy,) = icalendar.Calendar.from_ical(answer).walk("VFREEBUSY")
    assert vfreebusy.decoded("DTSTART") == rng.start and vfreebusy.decoded("DTEND") == rng.end, answer
    props = vfreebusy.get("FREEBUSY", [])
    blocks = []
    for prop in props if isinstance(props, list) else [props]:
        if str(prop.params.get("FBTYPE", "BUSY")).upper() not in BUSY_TYPES:
            continue
        start, end_or_length = prop.dt
        end = start + end_or_length if isinstance(end_or_length, dt.timedelta) else end_or_length
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        assert rng.start <= start <= end <= rng.end, f"a FREEBUSY period outside the query's range: {prop.to_ical()!r}"
        if end > start:  # a period of no length holds no busy time
            blocks.append((start, end))
    return hostapi.merge(blocks)


CALENDAR_TIMEZONE = (
    '<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
    "<D:set><D:prop><C:calendar-timezone>{}</C:calendar-timezone></D:prop></D:set></D:propertyupdate>"
)


def fresh_calendar(server: CalDAVServer, calendar_zone: str | None) -> str:
    """A new calendar collection; ``calendar_zone``: its CALDAV:calendar-timezone (RFC 4791 §5.2.2), set by PROPPATCH."""
    url = server.make_calendar("fb-" + uuid.uuid4().hex[:12])
    if calendar_zone is not None:
        vcal = (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync//busy differential//EN\r\n"
            + VTIMEZONES[calendar_zone]
            + "END:VCALENDAR\r\n"
        )
        body = CALENDAR_TIMEZONE.format(escape(vcal)).encode()
        resp = server.request("PROPPATCH", url, data=body, headers={"Content-Type": "application/xml; charset=utf-8"})
        assert resp.status_code == 207 and "200 OK" in resp.text, resp.text
    return url


def zone_of(server: CalDAVServer) -> tuple[str | None, dt.tzinfo]:
    """The calendar-timezone a calendar on this server gets, and the zone calsync then reads floating times in."""
    if server.kind == "radicale":
        return None, UTC  # it ignores the property: floating times are UTC to it (see the module docstring)
    return "Europe/Berlin", BERLIN


def both(server: CalDAVServer, texts: list[str], rng: Range, calendar_zone: str | None, tz: dt.tzinfo) -> tuple[Blocks, Blocks, str]:
    """Calsync's busy blocks and the server's, for the objects ``texts`` on a fresh calendar; and the server's answer."""
    url = fresh_calendar(server, calendar_zone)
    try:
        for i, text in enumerate(texts):
            server.put_event(url, f"object-{i}.ics", text)
        answer = free_busy_answer(server, url, rng)
        return calsync_busy(texts, rng, tz), server_busy(answer, rng), answer
    finally:
        server.delete_calendar(url)


def shown(blocks: Blocks) -> list[str]:
    return [f"{a:%Y-%m-%d %H:%M}Z – {b:%Y-%m-%d %H:%M}Z" for a, b in blocks]


# ---------------------------------------------------------------------------------------------- generated calendars

DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


@st.composite
def objects(draw, uid: str, rng: Range, floating: dt.tzinfo) -> Obj:
    zone = draw(st.sampled_from(ZONES))
    all_day = zone == DATE
    kind = draw(st.sampled_from(("single", "rrule", "rrule", "rrule", "rdate")))
    start: dt.datetime | dt.date
    # Around an edge of the range, around a DST change (that day, or a day or a week before it for a series
    # to reach it), or anywhere in and around the range; read in the event's own zone.
    wall_zone = zoneinfo.ZoneInfo(zone) if zone in TZIDS else UTC if zone == "UTC" else floating
    changes = dict(rng.dst)
    anchor = draw(st.sampled_from(("start", "end", "dst", "dst", None)))
    if anchor is None:
        day = rng.start.date() + dt.timedelta(days=draw(st.integers(-25, 30)))
        start = day if all_day else dt.datetime.combine(day, dt.time(draw(st.integers(0, 23)), draw(st.sampled_from((0, 30, 45)))))
    else:
        days_before = 0
        if anchor == "dst":  # the change of the event's own zone (the calendar's, for floating times)
            at = changes.get(getattr(wall_zone, "key", ""), rng.dst[0][1])
            days_before = draw(st.sampled_from((0, 0, 1, 7)))
        else:
            at = rng.start if anchor == "start" else rng.end
        wall = at.astimezone(wall_zone).replace(tzinfo=None) - dt.timedelta(days=days_before)
        start = (
            wall.date() if all_day else wall.replace(minute=wall.minute // 15 * 15) + dt.timedelta(minutes=15 * draw(st.integers(-12, 8)))
        )

    def event(at: dt.datetime | dt.date, like: Ev | None = None) -> Ev:
        if like is not None and draw(st.booleans()):
            length, form = like.length, like.end_form
        elif all_day:
            length = dt.timedelta(days=draw(st.integers(1, 3)))
            form = draw(st.sampled_from(("DTEND", "DURATION", "NONE") if length.days == 1 else ("DTEND", "DURATION")))
        else:
            length = dt.timedelta(minutes=draw(st.sampled_from((15, 30, 60, 90, 150, 480, 1500))))
            form = draw(st.sampled_from(("DTEND", "DURATION")))
        status = draw(st.sampled_from((None, None, "CONFIRMED", "TENTATIVE", "CANCELLED")))
        return Ev(at, length, form, status, draw(st.sampled_from((None, None, "OPAQUE", "TRANSPARENT"))))

    master = event(start)
    if kind == "single":
        return Obj(uid, zone, master)
    first = start if isinstance(start, dt.datetime) else dt.datetime.combine(start, dt.time())

    def value(wall: dt.datetime) -> dt.datetime | dt.date:
        return wall.date() if all_day else wall

    rule = None
    walls = [first]
    if kind == "rrule":
        freq = draw(st.sampled_from(("DAILY", "WEEKLY", "MONTHLY", "YEARLY")))
        parts = [f"FREQ={freq}"]
        interval = draw(st.integers(1, 3))
        if interval > 1:
            parts.append(f"INTERVAL={interval}")
        if freq == "WEEKLY" and draw(st.booleans()):  # with DTSTART's own day: in step with the rule (RFC 5545 §3.8.5.3)
            days = {first.weekday()} | set(draw(st.lists(st.integers(0, 6), max_size=2)))
            parts.append("BYDAY=" + ",".join(DAYS[d] for d in sorted(days)))
        if freq == "MONTHLY":  # in step with DTSTART too: its day of the month, or its nth weekday
            by = draw(st.sampled_from(("", "BYMONTHDAY", "BYDAY")))
            if by == "BYMONTHDAY":
                parts.append(f"BYMONTHDAY={first.day}")
            elif by == "BYDAY":
                parts.append(f"BYDAY={(first.day - 1) // 7 + 1}{DAYS[first.weekday()]}")
        ending = draw(st.sampled_from(("COUNT", "UNTIL", "open")))
        if ending == "COUNT":
            parts.append(f"COUNT={draw(st.integers(1, 8))}")
        rule = ";".join(parts)
        horizon = rng.end.replace(tzinfo=None) + dt.timedelta(days=40)
        walls = []
        for wall in rrulestr(rule, dtstart=first):
            if wall > horizon or len(walls) >= 80:
                break
            walls.append(wall)
        if ending == "UNTIL":  # inclusive: at an occurrence's start, or an hour after it
            last = walls[draw(st.integers(0, min(len(walls), 12) - 1))] + draw(st.sampled_from((dt.timedelta(0), dt.timedelta(hours=1))))
            walls = [w for w in walls if w <= last]
            # in the form RFC 5545 §3.3.10 asks for: a DATE with a DATE start, UTC with a zoned or UTC one, floating with floating
            if all_day:
                until = f"{last:%Y%m%d}"
            elif zone == FLOATING:
                until = f"{last:%Y%m%dT%H%M%S}"
            else:
                until = f"{last.replace(tzinfo=zoneinfo.ZoneInfo(zone) if zone in TZIDS else UTC).astimezone(UTC):%Y%m%dT%H%M%SZ}"
            rule += f";UNTIL={until}"
    picked = draw(st.lists(st.sampled_from(range(len(walls))), unique=True, max_size=min(3, len(walls))))
    cut = draw(st.integers(0, len(picked)))
    exdates = tuple(value(walls[i]) for i in picked[:cut])
    overrides = []
    for i in picked[cut:]:  # moved (or not) by up to days and hours, each with its own STATUS and TRANSP
        shift = dt.timedelta(days=draw(st.integers(-1, 3)))
        if not all_day:
            shift += dt.timedelta(minutes=30 * draw(st.integers(-6, 10)))
        overrides.append(Override(value(walls[i]), event(value(walls[i] + shift), like=master)))
    rdates: list[dt.datetime | dt.date] = []
    if kind == "rdate" or draw(st.integers(0, 3)) == 0:
        for _ in range(draw(st.integers(1, 2))):
            extra = walls[draw(st.integers(0, len(walls) - 1))] + dt.timedelta(days=draw(st.integers(1, 4)))
            if not all_day:
                extra += dt.timedelta(hours=draw(st.integers(-3, 3)))
            if extra not in walls and value(extra) not in rdates:
                rdates.append(value(extra))
    return Obj(uid, zone, master, rule, exdates, tuple(rdates), tuple(overrides), tuple(value(w) for w in walls))


# ---------------------------------------------------------------------------------------------- known server deviations


def _tz(obj: Obj, floating: dt.tzinfo) -> dt.tzinfo:
    return zoneinfo.ZoneInfo(obj.zone) if obj.zone in TZIDS else UTC if obj.zone == "UTC" else floating


def _wall(value: dt.datetime | dt.date) -> dt.datetime:
    return value if isinstance(value, dt.datetime) else dt.datetime.combine(value, dt.time())


def near_dst(obj: Obj, ev: Ev, floating: dt.tzinfo) -> bool:
    """Whether the UTC offset changes within three hours of the occurrence (its wall-clock span, widened)."""
    tz = _tz(obj, floating)
    start = _wall(ev.start).replace(tzinfo=tz)
    end = (_wall(ev.start) + ev.length).replace(tzinfo=tz)
    return (start - dt.timedelta(hours=3)).astimezone(tz).utcoffset() != (end + dt.timedelta(hours=3)).astimezone(tz).utcoffset()


def floating_repeat_at_an_edge(obj: Obj, floating: dt.tzinfo) -> bool:
    """Whether a floating series has an instance that is in a range read in the calendar's zone but not read in
    UTC, or the other way round."""
    if obj.zone != "floating" or not obj.recurring:
        return False
    for rng in (SPRING, AUTUMN):
        for ev in obj.instances():
            wall = _wall(ev.start)
            real = (wall.replace(tzinfo=floating), (wall + ev.length).replace(tzinfo=floating))
            as_utc = (wall.replace(tzinfo=UTC), (wall + ev.length).replace(tzinfo=UTC))
            if (real[0] < rng.end and real[1] > rng.start) != (as_utc[0] < rng.end and as_utc[1] > rng.start):
                return True
    return False


def repeat_length_near_dst(obj: Obj, floating: dt.tzinfo) -> bool:
    """Whether a repeat of a series whose length is DTEND - DTSTART crosses a DST change."""
    if not obj.recurring or obj.master.end_form != "DTEND" or not isinstance(obj.master.start, dt.datetime):
        return False
    return any(near_dst(obj, dataclasses.replace(obj.master, start=s), floating) for s in list(obj.series) + list(obj.rdates))


def nonexistent(obj: Obj, ev: Ev, floating: dt.tzinfo) -> bool:
    """Whether the occurrence's start, or its DTEND, is a local time the DST change skips."""
    tz = _tz(obj, floating)
    walls = [_wall(ev.start)] + ([_wall(ev.start) + ev.length] if ev.end_form == "DTEND" else [])
    return any(w.replace(tzinfo=tz).astimezone(UTC).astimezone(tz).replace(tzinfo=None) != w for w in walls)


Check = Callable[[Obj, dt.tzinfo], bool]
DEVIATIONS: dict[str, dict[str, Check]] = {
    "radicale": {
        # RFC 5545 §3.8.4.4: the override replaces its occurrence. Radicale compares the DATE RECURRENCE-ID
        # with the series' starts, which vobject makes datetimes: no match, so the original day stays busy.
        "an all-day override leaves its original day busy": lambda o, tz: o.zone == DATE and bool(o.overrides),
        # RFC 5545 §3.6.1, RFC 4791 §9.9: a DATE start without an end lasts one day; Radicale gives each repeat one second.
        "a repeating all-day event without an end lasts a second": lambda o, tz: (
            o.zone == DATE and o.recurring and any(e.end_form == "NONE" for e in o.instances())
        ),
        # RFC 5545 §3.3.6: hours, minutes and seconds are exact; Radicale adds them to the local wall-clock time.
        "an exact duration is added on the wall clock": lambda o, tz: any(
            e.end_form == "DURATION" and e.length.seconds and near_dst(o, e, tz) for e in o.instances()
        ),
        # RFC 5545 §3.3.5: a skipped local time has the offset from before the gap; §3.3.10: such a repeat is ignored.
        "a skipped local time is read with the offset after the gap": lambda o, tz: any(nonexistent(o, e, tz) for e in o.instances()),
        # RFC 5545 §3.8.5.3: DTEND - DTSTART is the same exact duration for every repeat; Radicale keeps the wall-clock span.
        "a repeat's DTEND length is kept on the wall clock": lambda o, tz: repeat_length_near_dst(o, tz),
    },
    "xandikos": {
        # RFC 5545 §3.8.5.2: RDATE adds occurrences with or without RRULE; Xandikos expands only events with an RRULE.
        "an RDATE without an RRULE is ignored": lambda o, tz: bool(o.rdates) and o.rrule is None,
        # RFC 5545 §3.6.1, RFC 4791 §9.9: a DATE start without an end lasts one day; Xandikos answers P0D.
        "an all-day event without an end has no length": lambda o, tz: any(e.end_form == "NONE" for e in o.instances()),
        # RFC 5545 §3.3.6, §3.8.5.3: days are nominal (a 23- or 25-hour day across DST); Xandikos adds them in UTC.
        "a nominal duration is added in UTC": lambda o, tz: any(
            e.end_form == "DURATION" and e.length.days and near_dst(o, e, tz) for e in o.instances()
        ),
        # RFC 5545 §3.8.5.3: as for Radicale.
        "a repeat's DTEND length is kept on the wall clock": lambda o, tz: repeat_length_near_dst(o, tz),
        # RFC 4791 §9.9: floating times are read in the calendar's zone; Xandikos picks a series' instances in UTC.
        "a floating repeat is picked for the range in UTC": lambda o, tz: floating_repeat_at_an_edge(o, tz),
        # RFC 5545 §3.3.10: a repeat at a local time that does not exist is ignored and not counted; Xandikos keeps it.
        "a repeat at a skipped local time is kept": lambda o, tz: (
            o.recurring and any(nonexistent(o, dataclasses.replace(o.master, start=s, end_form="NONE"), tz) for s in o.series[1:])
        ),
    },
}


def deviates(kind: str, obj: Obj, floating: dt.tzinfo) -> bool:
    return any(check(obj, floating) for check in DEVIATIONS[kind].values())


def valid(obj: Obj, floating: dt.tzinfo) -> bool:
    """No written DTEND before its DTSTART (RFC 5545 §3.8.2.2), as one in the spring-forward gap can be: 02:45 is
    read as 01:45Z (§3.3.5), a DTEND of 03:00 CEST is 01:00Z. Not data to compare busy time on (Xandikos answers 500)."""
    tz = _tz(obj, floating)
    for ev in [obj.master] + [o.event for o in obj.overrides]:
        if not isinstance(ev.start, dt.datetime) or ev.end_form != "DTEND":
            continue
        if (ev.start + ev.length).replace(tzinfo=tz).astimezone(UTC) < ev.start.replace(tzinfo=tz).astimezone(UTC):
            return False
    return True


@st.composite
def calendars(draw, kind: str, floating: dt.tzinfo) -> tuple[Range, list[Obj]]:
    """One to three valid objects, none in a case the server ``kind`` is known to answer wrongly."""
    rng = draw(st.sampled_from((SPRING, AUTUMN)))
    count = draw(st.integers(1, 3))

    def fit(o: Obj) -> bool:
        return valid(o, floating) and not deviates(kind, o, floating)

    return rng, [draw(objects(f"gen-{i}", rng, floating).filter(fit)) for i in range(count)]


@settings(
    max_examples=_LONG or 30,
    deadline=None,
    derandomize=not _LONG,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(data=st.data())
def test_busy_blocks_are_the_servers_free_busy_answer(caldav, data):
    # Xandikos' calendars get a calendar-timezone, Berlin or New York; Radicale's none (module docstring).
    calendar_zone = None if caldav.kind == "radicale" else data.draw(st.sampled_from(TZIDS))
    tz = zoneinfo.ZoneInfo(calendar_zone) if calendar_zone else UTC
    rng, objs = data.draw(calendars(caldav.kind, tz))
    texts = [obj.ics() for obj in objs]
    mine, theirs, answer = both(caldav, texts, rng, calendar_zone, tz)
    note("\n".join(texts) + "\n" + answer)
    assert mine == theirs, {"calsync": shown(mine), caldav.kind: shown(theirs)}


# ---------------------------------------------------------------------------------------------- by hand, on both servers

MARCH = Range(Z(2026, 3, 1), Z(2026, 4, 15))
WEEKLY_TUESDAY = "DTSTART;TZID=Europe/Berlin:20260310T100000|DTEND;TZID=Europe/Berlin:20260310T110000|RRULE:FREQ=WEEKLY;COUNT=3"


def agreed(server: CalDAVServer, rng: Range, *texts: str) -> Blocks:
    """The server's busy blocks, after checking that calsync's are the same."""
    calendar_zone, tz = zone_of(server)
    mine, theirs, answer = both(server, list(texts), rng, calendar_zone, tz)
    assert mine == theirs, {"calsync": shown(mine), server.kind: shown(theirs), "answer": answer}
    return theirs


def test_a_moved_occurrence_blocks_its_new_time_and_not_its_old_one(caldav):
    moved = "RECURRENCE-ID;TZID=Europe/Berlin:20260317T100000|DTSTART;TZID=Europe/Berlin:20260318T140000|DTEND;TZID=Europe/Berlin:20260318T150000"
    assert agreed(caldav, MARCH, calendar(WEEKLY_TUESDAY, moved)) == [
        (Z(2026, 3, 10, 9), Z(2026, 3, 10, 10)),
        (Z(2026, 3, 18, 13), Z(2026, 3, 18, 14)),  # Wednesday 14:00 CET, not Tuesday 17 March
        (Z(2026, 3, 24, 9), Z(2026, 3, 24, 10)),
    ]


def test_a_cancelled_override_frees_its_occurrence_and_only_that_one(caldav):
    cancelled = (
        "RECURRENCE-ID;TZID=Europe/Berlin:20260317T100000|DTSTART;TZID=Europe/Berlin:20260317T100000|"
        "DTEND;TZID=Europe/Berlin:20260317T110000|STATUS:CANCELLED"
    )
    assert agreed(caldav, MARCH, calendar(WEEKLY_TUESDAY, cancelled)) == [
        (Z(2026, 3, 10, 9), Z(2026, 3, 10, 10)),
        (Z(2026, 3, 24, 9), Z(2026, 3, 24, 10)),
    ]


def test_an_exdate_frees_its_occurrence_and_an_rdate_adds_one(caldav):
    series = WEEKLY_TUESDAY + "|EXDATE;TZID=Europe/Berlin:20260317T100000|RDATE;TZID=Europe/Berlin:20260326T160000"
    assert agreed(caldav, MARCH, calendar(series)) == [
        (Z(2026, 3, 10, 9), Z(2026, 3, 10, 10)),
        (Z(2026, 3, 24, 9), Z(2026, 3, 24, 10)),
        (Z(2026, 3, 26, 15), Z(2026, 3, 26, 16)),  # the RDATE, an hour long like the series
    ]


def test_a_weekly_series_keeps_its_local_time_across_the_dst_change(caldav):
    # Mondays 09:00-10:00 in Berlin: 08:00Z in CET, 07:00Z from 29 March (CEST); New York's 09:00 moves on 8 March.
    berlin = calendar("DTSTART;TZID=Europe/Berlin:20260316T090000|DTEND;TZID=Europe/Berlin:20260316T100000|RRULE:FREQ=WEEKLY;COUNT=4")
    new_york = calendar(
        "DTSTART;TZID=America/New_York:20260302T090000|DURATION:PT30M|RRULE:FREQ=WEEKLY;UNTIL=20260309T130000Z", tzid="America/New_York"
    )
    assert agreed(caldav, MARCH, berlin, new_york) == [
        (Z(2026, 3, 2, 14), Z(2026, 3, 2, 14, 30)),  # EST
        (Z(2026, 3, 9, 13), Z(2026, 3, 9, 13, 30)),  # EDT, and UNTIL is inclusive
        (Z(2026, 3, 16, 8), Z(2026, 3, 16, 9)),
        (Z(2026, 3, 23, 8), Z(2026, 3, 23, 9)),
        (Z(2026, 3, 30, 7), Z(2026, 3, 30, 8)),
        (Z(2026, 4, 6, 7), Z(2026, 4, 6, 8)),
    ]


def test_transparent_and_cancelled_are_free_and_tentative_is_busy(caldav):
    def one(day: int, lines: str) -> str:
        return calendar(f"DTSTART:202603{day:02d}T100000Z|DTEND:202603{day:02d}T110000Z|{lines}".rstrip("|"), tzid=None)

    found = agreed(
        caldav,
        MARCH,
        one(10, "TRANSP:TRANSPARENT"),
        one(11, "TRANSP:OPAQUE"),
        one(12, "STATUS:TENTATIVE"),
        one(13, "STATUS:CANCELLED"),
        one(16, "STATUS:CONFIRMED|TRANSP:TRANSPARENT"),
        one(17, ""),
    )
    assert found == [(Z(2026, 3, d, 10), Z(2026, 3, d, 11)) for d in (11, 12, 17)]


def test_events_across_the_ranges_edges_are_cut_to_it(caldav):
    rng = Range(Z(2026, 3, 10, 9, 30), Z(2026, 3, 12, 15, 45))
    found = agreed(
        caldav,
        rng,
        calendar("DTSTART:20260310T080000Z|DTEND:20260310T100000Z", tzid=None),
        calendar("DTSTART:20260312T150000Z|DURATION:PT2H", tzid=None),
        calendar("DTSTART:20260311T000000Z|DTEND:20260311T010000Z|RRULE:FREQ=DAILY", tzid=None),
    )
    assert found == [
        (Z(2026, 3, 10, 9, 30), Z(2026, 3, 10, 10)),
        (Z(2026, 3, 11, 0), Z(2026, 3, 11, 1)),
        (Z(2026, 3, 12, 0), Z(2026, 3, 12, 1)),
        (Z(2026, 3, 12, 15), Z(2026, 3, 12, 15, 45)),
    ]


def test_a_series_split_at_this_and_following_blocks_each_part_once(caldav):
    # How Google and Outlook save "change this and all following": the first series ends (UNTIL) before
    # the split, and a new one, with its own UID, carries on at the new time (over their own APIs both
    # expand series themselves, so this shape is what calsync expands: on CalDAV).
    first = calendar(
        "DTSTART;TZID=Europe/Berlin:20260302T090000|DTEND;TZID=Europe/Berlin:20260302T100000|RRULE:FREQ=WEEKLY;UNTIL=20260315T225959Z"
    )
    rest = calendar(
        "DTSTART;TZID=Europe/Berlin:20260317T140000|DTEND;TZID=Europe/Berlin:20260317T150000|RRULE:FREQ=WEEKLY;COUNT=3"
        "|RELATED-TO;RELTYPE=SIBLING:hand-first-part"
    )
    assert agreed(caldav, MARCH, first, rest) == [
        (Z(2026, 3, 2, 8), Z(2026, 3, 2, 9)),
        (Z(2026, 3, 9, 8), Z(2026, 3, 9, 9)),  # the Monday of 16 March is past UNTIL: not blocked
        (Z(2026, 3, 17, 13), Z(2026, 3, 17, 14)),
        (Z(2026, 3, 24, 13), Z(2026, 3, 24, 14)),
        (Z(2026, 3, 31, 12), Z(2026, 3, 31, 13)),  # CEST
    ]


def test_a_long_repeat_begun_well_before_the_range_blocks_its_part_inside_it(caldav):
    # A two-week stay every two weeks since 2024, and a four-day trip every 30 days: only instances that
    # start days before the range reach into it. Calsync builds no instance that cannot reach it, so how
    # far back it looks must follow each series' own length.
    rng = Range(Z(2026, 3, 10), Z(2026, 3, 12))
    stay = calendar("DTSTART:20240104T120000Z|DTEND:20240118T120000Z|RRULE:FREQ=WEEKLY;INTERVAL=2", tzid=None)
    trip = calendar("DTSTART:20240117T000000Z|DURATION:P4D|RRULE:FREQ=DAILY;INTERVAL=30", tzid=None)
    agreed(caldav, rng, stay, trip)
    assert calsync_busy([stay], rng, UTC) == [(Z(2026, 3, 10), Z(2026, 3, 12))]  # 26 February 12:00 to 12 March 12:00
    assert calsync_busy([trip], rng, UTC) == [(Z(2026, 3, 10), Z(2026, 3, 11))]  # 7 March for four days


def test_floating_times_and_all_day_dates_are_read_in_the_calendars_zone(caldav):
    floating = calendar("DTSTART:20260310T080000|DTEND:20260310T090000", tzid=None)
    all_day = calendar("DTSTART;VALUE=DATE:20260312|DTEND;VALUE=DATE:20260313", tzid=None)
    found = agreed(caldav, MARCH, floating, all_day)
    if caldav.kind == "xandikos":  # calendar-timezone Europe/Berlin (CET, +01:00)
        assert found == [(Z(2026, 3, 10, 7), Z(2026, 3, 10, 8)), (Z(2026, 3, 11, 23), Z(2026, 3, 12, 23))]
    else:  # no calendar-timezone: Radicale's own choice, UTC
        assert found == [(Z(2026, 3, 10, 8), Z(2026, 3, 10, 9)), (Z(2026, 3, 12), Z(2026, 3, 13))]


# ---------------------------------------------------------------------------------------------- the known deviations


@dataclasses.dataclass(frozen=True)
class Known:
    """A deviation of ``DEVIATIONS``, shown: the RFC's answer (calsync's too) and the server's different one."""

    deviation: str
    rng: Range
    text: str
    right: Blocks
    calendar_zone: str | None = None


AUTUMN_DAYS = Range(Z(2026, 10, 10), Z(2026, 11, 10))
# Both servers: RFC 5545 §3.8.5.3 keeps DTEND - DTSTART as "the same exact duration" for every repeat.
WALL_CLOCK_DTEND = Known(
    "a repeat's DTEND length is kept on the wall clock",
    AUTUMN_DAYS,
    calendar("DTSTART;TZID=Europe/Berlin:20261018T010000|DTEND;TZID=Europe/Berlin:20261018T040000|RRULE:FREQ=WEEKLY;COUNT=2"),
    # three hours each: the second from 01:00 CEST to 03:00 CET, not to 04:00 CET
    [(Z(2026, 10, 17, 23), Z(2026, 10, 18, 2)), (Z(2026, 10, 24, 23), Z(2026, 10, 25, 2))],
)
KNOWN: dict[str, list[Known]] = {
    "radicale": [
        Known(
            "an all-day override leaves its original day busy",
            MARCH,
            calendar(
                "DTSTART;VALUE=DATE:20260310|DTEND;VALUE=DATE:20260311|RRULE:FREQ=DAILY;COUNT=2",
                "RECURRENCE-ID;VALUE=DATE:20260310|DTSTART;VALUE=DATE:20260313|DTEND;VALUE=DATE:20260314",
                tzid=None,
            ),
            [(Z(2026, 3, 11), Z(2026, 3, 12)), (Z(2026, 3, 13), Z(2026, 3, 14))],
        ),
        Known(
            "a repeating all-day event without an end lasts a second",
            MARCH,
            calendar("DTSTART;VALUE=DATE:20260310|RRULE:FREQ=WEEKLY;COUNT=2", tzid=None),
            [(Z(2026, 3, 10), Z(2026, 3, 11)), (Z(2026, 3, 17), Z(2026, 3, 18))],
        ),
        Known(
            "an exact duration is added on the wall clock",
            MARCH,
            calendar("DTSTART;TZID=Europe/Berlin:20260329T010000|DURATION:PT3H"),
            [(Z(2026, 3, 29, 0), Z(2026, 3, 29, 3))],  # 01:00 CET plus three hours is 04:00 CEST
        ),
        Known(
            "a skipped local time is read with the offset after the gap",
            MARCH,
            calendar("DTSTART;TZID=Europe/Berlin:20260329T023000|DURATION:PT1H"),
            [(Z(2026, 3, 29, 1, 30), Z(2026, 3, 29, 2, 30))],  # 02:30 does not exist: read as 02:30 CET
        ),
        WALL_CLOCK_DTEND,
        Known(
            "it ignores CALDAV:calendar-timezone (RFC 4791 §5.2.2): floating times stay UTC",
            MARCH,
            calendar("DTSTART:20260310T080000|DTEND:20260310T090000", tzid=None),
            [(Z(2026, 3, 10, 7), Z(2026, 3, 10, 8))],
            calendar_zone="Europe/Berlin",
        ),
    ],
    "xandikos": [
        Known(
            "an RDATE without an RRULE is ignored",
            MARCH,
            calendar("DTSTART:20260310T100000Z|DTEND:20260310T110000Z|RDATE:20260312T100000Z", tzid=None),
            [(Z(2026, 3, 10, 10), Z(2026, 3, 10, 11)), (Z(2026, 3, 12, 10), Z(2026, 3, 12, 11))],
        ),
        Known(
            "an all-day event without an end has no length",
            MARCH,
            calendar("DTSTART;VALUE=DATE:20260310", tzid=None),
            [(Z(2026, 3, 9, 23), Z(2026, 3, 10, 23))],
            calendar_zone="Europe/Berlin",
        ),
        Known(
            "a nominal duration is added in UTC",
            AUTUMN_DAYS,
            calendar("DTSTART;TZID=Europe/Berlin:20261017T120000|DURATION:P1D|RRULE:FREQ=WEEKLY;COUNT=2"),
            # the second lasts from 12:00 CEST on 24 October to 12:00 CET on the 25th: a 25-hour day
            [(Z(2026, 10, 17, 10), Z(2026, 10, 18, 10)), (Z(2026, 10, 24, 10), Z(2026, 10, 25, 11))],
        ),
        WALL_CLOCK_DTEND,
        Known(
            "a floating repeat is picked for the range in UTC",
            SPRING,
            calendar("DTSTART:20260305T043000|DTEND:20260305T044500|RRULE:FREQ=DAILY;COUNT=1", tzid=None),
            [(Z(2026, 3, 5, 9, 30), Z(2026, 3, 5, 9, 45))],  # 04:30 New York is the range's first quarter hour
            calendar_zone="America/New_York",
        ),
        Known(
            "a repeat at a skipped local time is kept",
            MARCH,
            calendar("DTSTART;TZID=Europe/Berlin:20260328T023000|DTEND;TZID=Europe/Berlin:20260328T033000|RRULE:FREQ=DAILY;COUNT=3"),
            # 29 March has no 02:30: the three are the 28th, 30th and 31st
            [
                (Z(2026, 3, 28, 1, 30), Z(2026, 3, 28, 2, 30)),
                (Z(2026, 3, 30, 0, 30), Z(2026, 3, 30, 1, 30)),
                (Z(2026, 3, 31, 0, 30), Z(2026, 3, 31, 1, 30)),
            ],
        ),
    ],
}


def test_known_server_deviations_are_still_there(caldav):
    """Each deviation excluded from the generated calendars still happens, on a minimal calendar that
    calsync reads as the RFC says. When a server release fixes one, this fails: drop its exclusion."""
    gone = []
    for known in KNOWN[caldav.kind]:
        tz = zoneinfo.ZoneInfo(known.calendar_zone) if known.calendar_zone else UTC
        mine, theirs, _answer = both(caldav, [known.text], known.rng, known.calendar_zone, tz)
        assert mine == known.right, (known.deviation, shown(mine))
        if theirs == known.right:
            gone.append(known.deviation)
    assert not gone, f"{caldav.kind} no longer shows these deviations; remove them from DEVIATIONS and KNOWN: {gone}"
    assert set(DEVIATIONS[caldav.kind]) <= {k.deviation for k in KNOWN[caldav.kind]}, "every excluded deviation needs its example"


# ---------------------------------------------------------------------------------------------- calsync's own bugs
#
# Found by the comparison above and by reading the RFC; reported with issue 18. Calsync is held to the
# RFC's answer: these fail until core/ics.py reads these cases right.


def test_calsync_a_nominal_day_of_a_single_event_is_a_calendar_day():
    """RFC 5545 §3.3.6 / §3.8.2.5: ``P1D`` is a nominal day, added in local time; §3.6.1: an all-day event
    without an end lasts one day. 25 October 2026 is a 25-hour day in Berlin. Calsync adds 24 hours in UTC
    to a single (non-recurring) event; its recurring path gets it right. Radicale gets the timed case right."""
    rng, tz = AUTUMN_DAYS, BERLIN
    assert calsync_busy([calendar("DTSTART;VALUE=DATE:20261025", tzid=None)], rng, tz) == [(Z(2026, 10, 24, 22), Z(2026, 10, 25, 23))]
    assert calsync_busy([calendar("DTSTART;VALUE=DATE:20261025|DURATION:P1D", tzid=None)], rng, tz) == [
        (Z(2026, 10, 24, 22), Z(2026, 10, 25, 23))
    ]
    assert calsync_busy([calendar("DTSTART;TZID=Europe/Berlin:20261024T120000|DURATION:P1D")], rng, tz) == [
        (Z(2026, 10, 24, 10), Z(2026, 10, 25, 11))  # to 12:00 CET
    ]


def test_calsync_an_exact_duration_of_a_repeat_is_exact():
    """RFC 5545 §3.3.6: hours are exact; §3.8.5.3: DTEND - DTSTART is "the same exact duration" for every
    repeat. Calsync once added both on the wall clock, so a repeat across the DST change was an hour too
    long or short. Xandikos gets the DURATION case right; no one here the DTEND one."""
    rng, tz = AUTUMN_DAYS, BERLIN
    # The smallest the generated test found: one repeat, at 02:00 on the night the clocks go back (02:00 CEST
    # comes first, RFC 5545 §3.3.5), one hour long: 00:00Z to 01:00Z, not to 03:00 CET (02:00Z).
    once = "DTSTART;TZID=Europe/Berlin:20261025T020000|DURATION:PT1H|RRULE:FREQ=DAILY;COUNT=1"
    assert calsync_busy([calendar(once)], rng, tz) == [(Z(2026, 10, 25, 0), Z(2026, 10, 25, 1))]
    assert calsync_busy([calendar("DTSTART;TZID=Europe/Berlin:20261017T120000|DURATION:PT24H|RRULE:FREQ=WEEKLY;COUNT=2")], rng, tz) == [
        (Z(2026, 10, 17, 10), Z(2026, 10, 18, 10)),
        (Z(2026, 10, 24, 10), Z(2026, 10, 25, 10)),  # 24 hours: to 11:00 CET
    ]
    three_hours = "DTSTART;TZID=Europe/Berlin:20261018T010000|DTEND;TZID=Europe/Berlin:20261018T040000|RRULE:FREQ=WEEKLY;COUNT=2"
    assert calsync_busy([calendar(three_hours)], rng, tz) == [
        (Z(2026, 10, 17, 23), Z(2026, 10, 18, 2)),
        (Z(2026, 10, 24, 23), Z(2026, 10, 25, 2)),  # three hours: 01:00 CEST to 03:00 CET, not 04:00 CET
    ]
    # A nominal week of a repeat stays a calendar week: 12:00 to 12:00 local, 169 hours across the change.
    week = "DTSTART;TZID=Europe/Berlin:20261020T120000|DURATION:P1W|RRULE:FREQ=DAILY;COUNT=1"
    assert calsync_busy([calendar(week)], rng, tz) == [(Z(2026, 10, 20, 10), Z(2026, 10, 27, 11))]


def test_calsync_a_repeat_at_a_skipped_local_time_is_not_an_occurrence():
    """RFC 5545 §3.3.10: an instance at a local time that does not exist "MUST be ignored and MUST NOT be
    counted". Daily 02:30-03:30 Berlin from 28 March, COUNT=3: 29 March has no 02:30, so the three are the
    28th, 30th and 31st. Calsync once kept a zero-length 29th and counted it, so the 31st was not busy."""
    text = calendar("DTSTART;TZID=Europe/Berlin:20260328T023000|DTEND;TZID=Europe/Berlin:20260328T033000|RRULE:FREQ=DAILY;COUNT=3")
    assert calsync_busy([text], MARCH, BERLIN) == [
        (Z(2026, 3, 28, 1, 30), Z(2026, 3, 28, 2, 30)),
        (Z(2026, 3, 30, 0, 30), Z(2026, 3, 30, 1, 30)),
        (Z(2026, 3, 31, 0, 30), Z(2026, 3, 31, 1, 30)),
    ]


def test_calsync_an_exdate_removes_the_instance_at_its_own_instant():
    """RFC 5545 §3.8.5.1: EXDATE removes the instance that starts at that time. The expansion library calsync
    used before compared one reading in local time with another in UTC: an EXDATE of 10:30 Berlin on the 8th
    also removed the RDATE instance at 11:30 Berlin (10:30 UTC) that day, and a weekly EXDATE of 09:30 UTC
    removed the 10:30 Berlin instance it is not."""
    rdate = calendar(
        "DTSTART;TZID=Europe/Berlin:20260305T103000|DTEND;TZID=Europe/Berlin:20260305T104500|RRULE:FREQ=DAILY;COUNT=5"
        "|RDATE;TZID=Europe/Berlin:20260308T113000|EXDATE;TZID=Europe/Berlin:20260308T103000"
    )
    assert calsync_busy([rdate], MARCH, BERLIN) == [
        (Z(2026, 3, 5, 9, 30), Z(2026, 3, 5, 9, 45)),
        (Z(2026, 3, 6, 9, 30), Z(2026, 3, 6, 9, 45)),
        (Z(2026, 3, 7, 9, 30), Z(2026, 3, 7, 9, 45)),
        (Z(2026, 3, 8, 10, 30), Z(2026, 3, 8, 10, 45)),  # the RDATE, 11:30 Berlin
        (Z(2026, 3, 9, 9, 30), Z(2026, 3, 9, 9, 45)),
    ]
    weekly = calendar(
        "DTSTART;TZID=Europe/Berlin:20260305T103000|DTEND;TZID=Europe/Berlin:20260305T104500|RRULE:FREQ=WEEKLY;COUNT=2|EXDATE:20260312T093000Z"
    )
    assert calsync_busy([weekly], MARCH, BERLIN) == [(Z(2026, 3, 5, 9, 30), Z(2026, 3, 5, 9, 45))]  # 09:30Z is 10:30 Berlin: removed
    other = calendar(
        "DTSTART;TZID=Europe/Berlin:20260305T103000|DTEND;TZID=Europe/Berlin:20260305T104500|RRULE:FREQ=WEEKLY;COUNT=2|EXDATE:20260312T103000Z"
    )
    assert len(calsync_busy([other], MARCH, BERLIN)) == 2  # 10:30Z is 11:30 Berlin: no instance, nothing removed


def test_calsync_this_and_future_reshapes_every_later_instance():
    """RFC 5545 §3.8.4.4 RANGE=THISANDFUTURE: the override's shift, length and properties apply to its instance
    and every later one; earlier ones keep the master's. (Neither server expands RANGE, so this is by hand.)
    Daily 09:00-10:00 Berlin; from the 4th, 11:00-11:30; and when that override is free, nothing from the 4th."""
    master = "DTSTART;TZID=Europe/Berlin:20260302T090000|DTEND;TZID=Europe/Berlin:20260302T100000|RRULE:FREQ=DAILY;COUNT=5"
    override = (
        "RECURRENCE-ID;RANGE=THISANDFUTURE;TZID=Europe/Berlin:20260304T090000"
        "|DTSTART;TZID=Europe/Berlin:20260304T110000|DTEND;TZID=Europe/Berlin:20260304T113000"
    )
    assert calsync_busy([calendar(master, override)], MARCH, BERLIN) == [
        (Z(2026, 3, 2, 8), Z(2026, 3, 2, 9)),
        (Z(2026, 3, 3, 8), Z(2026, 3, 3, 9)),
        (Z(2026, 3, 4, 10), Z(2026, 3, 4, 10, 30)),
        (Z(2026, 3, 5, 10), Z(2026, 3, 5, 10, 30)),
        (Z(2026, 3, 6, 10), Z(2026, 3, 6, 10, 30)),
    ]
    free = calendar(master, override + "|TRANSP:TRANSPARENT")
    assert calsync_busy([free], MARCH, BERLIN) == [(Z(2026, 3, 2, 8), Z(2026, 3, 2, 9)), (Z(2026, 3, 3, 8), Z(2026, 3, 3, 9))]
    # Moved three weeks on from an instance before the range: the later instances land inside it.
    february = "DTSTART;TZID=Europe/Berlin:20260201T090000|DTEND;TZID=Europe/Berlin:20260201T100000|RRULE:FREQ=DAILY;COUNT=20"
    later = "RECURRENCE-ID;RANGE=THISANDFUTURE;TZID=Europe/Berlin:20260215T090000|DTSTART;TZID=Europe/Berlin:20260308T090000"
    later += "|DTEND;TZID=Europe/Berlin:20260308T100000"
    assert calsync_busy([calendar(february, later)], MARCH, BERLIN) == [(Z(2026, 3, d, 8), Z(2026, 3, d, 9)) for d in range(8, 14)]
