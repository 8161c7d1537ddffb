"""Limits on hostile iCalendar, applied to the text before the icalendar library parses it.

Parsing and expanding are where a 4 KB file can cost minutes or gigabytes, so what could blow up
is cut on the way in, in one linear pass over the (unfolded) lines:

- **Time zones**: a VTIMEZONE whose TZID zoneinfo knows (IANA or a Windows name) is dropped, the
  zone is read from zoneinfo; a custom one is kept only when its rules repeat at most monthly
  (real ones repeat yearly) and are few; otherwise it is dropped and its TZID is then an
  *unknown time zone*, which the feed entry says. A VTIMEZONE of ``FREQ=SECONDLY`` from 1601
  therefore costs nothing.
- **Date lists**: an event with more than ``MAX_VALUES`` RDATE/EXDATE values keeps none of them
  and is marked invalid (``X-CALSYNC-INVALID``), so it becomes an "invalid data: …" entry instead
  of millions of occurrences.
- **Durations** keep their written form in a parameter (``X-CALSYNC-WRITTEN``): a day of it is a
  calendar day, 23 or 25 hours across a DST change, and 24 hours are exact (RFC 5545 §3.3.6), but the
  parsed value is one timedelta for both.
- **Repeat rules** are checked per event by :func:`check_rule` (``INTERVAL=0`` never advances,
  an absurd ``COUNT``); the expansion itself is capped (``CALSYNC_MAX_OCCURRENCES``) and runs
  bounded in time and memory (:mod:`core.expander`).
"""

from __future__ import annotations

import re
import zoneinfo


class InvalidData(ValueError):
    """An object whose content cannot be used; ``str()`` is the reason."""


MAX_VALUES = 1000  # RDATE + EXDATE values one event may carry
MAX_ZONE_RULES = 20  # STANDARD/DAYLIGHT parts of one custom VTIMEZONE
SAFE_ZONE_FREQS = ("YEARLY", "MONTHLY")
MAX_INTERVAL = 10_000
INVALID_PROP = "X-CALSYNC-INVALID"
WRITTEN_PARAM = "X-CALSYNC-WRITTEN"  # a DURATION as written: icalendar keeps only a timedelta, PT24H and P1D alike
_DURATION = re.compile(r"[+-]?P(?:\d{1,9}W)?(?:\d{1,9}D)?(?:T(?:\d{1,9}H)?(?:\d{1,9}M)?(?:\d{1,9}S)?)?")

_FOLD = re.compile(r"\r?\n[ \t]")


def _windows_zones() -> dict:
    try:
        from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON
    except ImportError:  # an icalendar without the table: IANA names only
        return {}
    return WINDOWS_TO_OLSON


def known_zone(tzid: str) -> bool:
    """True when zoneinfo can give this zone (by its IANA name, or its Windows name)."""
    tzid = tzid.strip().strip('"')
    if not tzid or len(tzid) > 100:
        return False
    if tzid in _windows_zones():
        return True
    try:
        zoneinfo.ZoneInfo(tzid)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _name_and_value(line: str) -> tuple[str, str]:
    head, _, value = line.partition(":")
    return head.split(";", 1)[0].strip().upper(), value


def _zone_is_safe(lines: list[str]) -> bool:
    parts = sum(1 for line in lines if _name_and_value(line)[0] == "BEGIN") - 1
    if parts > MAX_ZONE_RULES:
        return False
    for line in lines:
        name, value = _name_and_value(line)
        if name == "RRULE" and _rule_parts(value).get("FREQ") not in SAFE_ZONE_FREQS:
            return False
        if name == "RDATE" and value.count(",") >= MAX_VALUES:
            return False
    return True


def _rule_parts(value: str) -> dict:
    return {k.strip().upper(): v.strip() for k, _, v in (p.partition("=") for p in value.split(";")) if k}


def sanitize(text: str, keep: frozenset[str] | None = None) -> str:
    """``text`` with the limits above applied (line endings become CRLF, long lines unfolded).
    NUL is dropped: no iCalendar value may hold it (RFC 5545 §3.1, VALUE-CHAR) and PostgreSQL
    refuses to store it, so one would fail every sync of the calendar.

    With ``keep`` (a calendar's events being read), only what is read goes on to the parser: the
    VEVENTs with just the properties named in ``keep``, and the VTIMEZONEs. The calendar's own
    properties, alarms and other components are dropped, so they cost nothing (icalendar spends
    ~30 µs on every line) and a broken one cannot make the event unreadable."""
    lines = _FOLD.sub("", text.replace("\x00", "")).replace("\r\n", "\n").split("\n")
    out: list[str] = []
    zone: list[str] | None = None
    event_start = values = 0
    inside: list[str] = []  # the components open, when reading
    skipping = 0  # how deep inside a component that is not read
    for line in lines:
        if zone is not None:
            zone.append(line)
            if line.strip().upper() == "END:VTIMEZONE":
                tzid = next((v for ln in zone for n, v in [_name_and_value(ln)] if n == "TZID"), "")
                if not known_zone(tzid) and _zone_is_safe(zone):
                    out.extend(zone)
                zone = None
            continue
        name, value = _name_and_value(line)
        if keep is not None:
            if skipping:
                skipping += 1 if name == "BEGIN" else -1 if name == "END" else 0
                continue
            if name == "BEGIN":
                if inside and (inside[-1] != "VCALENDAR" or value.strip().upper() not in ("VEVENT", "VTIMEZONE")):
                    skipping = 1
                    continue
                inside.append(value.strip().upper())
            elif name == "END":
                if inside:
                    inside.pop()
            elif inside and (inside[-1] != "VEVENT" or name not in keep):
                continue
        upper = line.strip().upper()
        if upper == "BEGIN:VTIMEZONE":
            zone = [line]
            if inside:
                inside.pop()  # read whole by the branch above, its END included
            continue
        if upper == "BEGIN:VEVENT":
            event_start, values = len(out), 0
        if name in ("RDATE", "EXDATE"):
            values += value.count(",") + 1
            if values > MAX_VALUES:
                continue
        if name == "DURATION" and _DURATION.fullmatch(value.strip()) and WRITTEN_PARAM not in line.upper():
            head, _, _ = line.partition(":")
            line = f"{head};{WRITTEN_PARAM}={value.strip()}:{value}"
        if upper == "END:VEVENT" and values > MAX_VALUES:
            out[event_start:] = [ln for ln in out[event_start:] if _name_and_value(ln)[0] not in ("RDATE", "EXDATE")]
            out.append(f"{INVALID_PROP}:it lists {values} RDATE/EXDATE dates (more than the {MAX_VALUES} calsync reads of one event)")
        out.append(line)
    return "\r\n".join(out)


def check_rule(rule_text: str) -> str:
    """Why a repeat rule is not read (``""`` when it is fine)."""
    parts = _rule_parts(rule_text)
    interval = parts.get("INTERVAL", "1")
    if not interval.isdigit() or not 1 <= int(interval) <= MAX_INTERVAL:
        return f"its repeat rule has INTERVAL={interval[:20]}, which must be a whole number from 1 to {MAX_INTERVAL}"
    count = parts.get("COUNT")
    if count is not None and (not count.isdigit() or int(count) > 1_000_000):
        return f"its repeat rule has COUNT={count[:20]}, which must be a whole number up to 1,000,000"
    return ""
