"""A repeating event's instances inside the sync window, by RFC 5545's own rules.

dateutil walks each RRULE on the event's wall clock; the rest of RFC 5545 §3.8.5 is applied here,
because the expansion library calsync used before got three parts of it wrong (the differential test in
tests/test_busy_differential.py holds this module to the CalDAV servers' own free-busy answer):

- an exact length (``PT1H``, or DTEND minus DTSTART, §3.8.5.3 "the same exact duration") stays exact
  across a DST change; weeks and days of a DURATION are nominal and added on the wall clock (§3.3.6);
- a repeat at a local time that does not exist (the spring-forward gap) is ignored and not counted
  towards COUNT (§3.3.10); DTSTART and RDATE values are explicit, read as §3.3.5 says (the offset before
  the gap; the first of two readings);
- EXDATE and RECURRENCE-ID name an instance by its instant, whatever zone each is written in.

Also here: RDATE periods, RECURRENCE-ID overrides (a moved instance blocks its new time only),
``RANGE=THISANDFUTURE`` (the override's shift, length and properties carry to every later instance),
UNTIL in UTC, floating or as a date. Bounded: a rule is walked at most RULE_STEPS_BEFORE_WINDOW times
before the window, and stops one day past its end or at ``limit`` + 1 instances inside it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Callable, Iterator
from typing import Any

from core.ics_limits import WRITTEN_PARAM, InvalidData

UTC = dt.UTC
RULE_STEPS_BEFORE_WINDOW = 200_000  # repeat-rule starts walked to reach the sync window
_NOMINAL = re.compile(r"([+-])?P(?:(\d+)W)?(?:(\d+)D)?")


@dataclasses.dataclass(frozen=True)
class Instance:
    """One member of the recurrence set: UTC times, the component whose properties apply (the master,
    or the override that replaced or reshaped it) and the RECURRENCE-ID text that keys its feed entry."""

    starts_at: dt.datetime
    ends_at: dt.datetime
    component: Any  # an icalendar Event
    recurrence_id: str
    all_day: bool


def to_utc(value, tz: dt.tzinfo) -> tuple[dt.datetime, bool]:
    """UTC datetime and whether the value was an all-day date; a floating time is read in ``tz``."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=tz)
        return value.astimezone(UTC), False
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(), tz).astimezone(UTC), True
    raise InvalidData(f"has a start or end that is not a date or time ({type(value).__name__})")


def nominal_days(event) -> int:
    """The weeks and days of the event's DURATION, as days (the part added on the wall clock)."""
    prop = event["DURATION"]
    written = str(prop.params.get(WRITTEN_PARAM, "")) or prop.to_ical().decode("ascii", "replace")
    found = _NOMINAL.match(written.strip().upper())
    if found is None:
        return 0
    days = 7 * int(found.group(2) or 0) + int(found.group(3) or 0)
    return -days if found.group(1) == "-" else days


def end_of(event, local_start, tz: dt.tzinfo) -> dt.datetime:
    """When one event that starts at ``local_start`` (its own DTSTART, or an instance's) ends, in UTC."""
    return ender(event, tz)(local_start)


def ender(event, tz: dt.tzinfo) -> Callable[[Any], dt.datetime]:
    """``end_of`` for many starts of one event: its DTEND, DTSTART and DURATION are read once."""
    if "DTEND" in event:
        end_value = event.decoded("DTEND")
        own_start = event.decoded("DTSTART")
        exact = to_utc(end_value, tz)[0] - to_utc(own_start, tz)[0]
        if isinstance(end_value, dt.datetime):
            return lambda local_start: to_utc(local_start, tz)[0] + exact
        days = end_value - own_start if not isinstance(own_start, dt.datetime) else exact

        def by_days(local_start) -> dt.datetime:
            start, all_day = to_utc(local_start, tz)
            return to_utc(_wall(local_start, tz) + days, tz)[0] if all_day else start + exact  # whole days: nominal

        return by_days
    if "DURATION" in event:
        nominal = dt.timedelta(days=nominal_days(event))
        rest = event.decoded("DURATION") - nominal
        return lambda local_start: to_utc(_wall(local_start, tz) + nominal, tz)[0] + rest
    one_day = dt.timedelta(days=1)

    def no_length(local_start) -> dt.datetime:
        start, all_day = to_utc(local_start, tz)
        return to_utc(_wall(local_start, tz) + one_day, tz)[0] if all_day else start

    return no_length


def _wall(value, tz: dt.tzinfo) -> dt.datetime:
    """An aware local time (aware datetime + timedelta is wall-clock arithmetic in Python)."""
    if isinstance(value, dt.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=tz)
    return dt.datetime.combine(value, dt.time(), tz)


def _exists(wall: dt.datetime, tz: dt.tzinfo) -> bool:
    """Whether a naive local time happens at all in ``tz`` (not in a spring-forward gap)."""
    there = wall.replace(tzinfo=tz)
    return there.astimezone(UTC).astimezone(tz).replace(tzinfo=None) == wall


def _values(event, name: str) -> list:
    """Every value of a date-list property (RDATE, EXDATE), however many lines it is written on."""
    prop = event.get(name)
    lines = prop if isinstance(prop, list) else ([prop] if prop is not None else [])
    return [one.dt for line in lines for one in getattr(line, "dts", [])]


@dataclasses.dataclass
class _Series:
    master: Any  # the icalendar Event holding the RRULE
    tz: dt.tzinfo  # the staff member's zone, for floating times and dates
    rule_tz: dt.tzinfo  # the zone the master's DTSTART is written in
    all_day: bool
    first: dt.datetime  # the master's DTSTART as a naive wall time in rule_tz

    @classmethod
    def of(cls, master, tz: dt.tzinfo) -> _Series:
        start = master.decoded("DTSTART")
        if isinstance(start, dt.datetime):
            return cls(master, tz, start.tzinfo or tz, False, start.replace(tzinfo=None))
        if isinstance(start, dt.date):
            return cls(master, tz, tz, True, dt.datetime.combine(start, dt.time()))
        raise InvalidData(f"has a start that is not a date or time ({type(start).__name__})")

    def local(self, wall: dt.datetime):
        """A naive wall time as the master's own kind of value (a date for an all-day series)."""
        return wall.date() if self.all_day else wall.replace(tzinfo=self.rule_tz)

    def key(self, value) -> dt.datetime:
        """The instant an instance, EXDATE or RECURRENCE-ID names (RFC 5545 §3.8.4.4: by its time, not its text)."""
        if isinstance(value, dt.datetime):
            return to_utc(value, self.rule_tz)[0]
        return to_utc(value, self.tz)[0]

    def rid_text(self, start_utc: dt.datetime) -> str:
        if self.all_day:
            return start_utc.astimezone(self.tz).strftime("%Y%m%d")
        if self.rule_tz.utcoffset(None) == dt.timedelta(0) and getattr(self.rule_tz, "key", "UTC") in ("UTC", "Etc/UTC"):
            return start_utc.strftime("%Y%m%dT%H%M%SZ")
        return start_utc.astimezone(self.rule_tz).strftime("%Y%m%dT%H%M%S")


def _until(text: str):
    from icalendar import vDDDTypes

    return vDDDTypes.from_ical(text)


def _past_until(series: _Series, wall: dt.datetime, until) -> bool:
    if isinstance(until, dt.datetime):
        if until.tzinfo is None:
            return wall > until
        return wall.replace(tzinfo=series.rule_tz).astimezone(UTC) > until
    return wall.date() > until  # a date: that whole day is in


def _rule_starts(series: _Series, rule, first_wall: dt.datetime, last_wall: dt.datetime) -> Iterator[dt.datetime]:
    """One RRULE's instance starts (naive wall times) from ``first_wall`` to ``last_wall``; COUNT and UNTIL are
    applied here so a start that does not exist is neither kept nor counted. Starts before ``first_wall`` are
    only counted (when there is a COUNT), never built; past RULE_STEPS_BEFORE_WINDOW of them the rule is refused."""
    from dateutil.rrule import rrule, rrulestr

    parts = [p for p in rule.to_ical().decode().split(";") if p]
    count, until = None, None
    kept = []
    for part in parts:
        name, _, value = part.partition("=")
        if name.upper() == "COUNT":
            count = int(value)
        elif name.upper() == "UNTIL":
            until = _until(value)
        else:
            kept.append(part)
    walked = rrulestr(";".join(kept), dtstart=series.first)
    if not isinstance(walked, rrule):  # one RRULE value is one rule; anything else is not an RRULE
        raise InvalidData("its repeat rule is not a single rule")
    gaps = not series.all_day and _has_gaps(series.rule_tz)
    counted = 0
    for steps, wall in enumerate(walked, 1):
        if wall > last_wall or (until is not None and _past_until(series, wall, until)):
            return
        early = wall < first_wall
        if early and steps > RULE_STEPS_BEFORE_WINDOW:
            raise InvalidData(f"the repeat rule repeats more than {RULE_STEPS_BEFORE_WINDOW} times before the sync window")
        if steps > 2 * RULE_STEPS_BEFORE_WINDOW:  # a shifted series reaching far past the window
            raise InvalidData(f"the repeat rule repeats more than {2 * RULE_STEPS_BEFORE_WINDOW} times around the sync window")
        if early and count is None:
            continue  # neither counted nor kept: nothing to check
        if gaps and wall != series.first and not _exists(wall, series.rule_tz):
            continue  # RFC 5545 §3.3.10: ignored, and not counted
        counted += 1
        if count is not None and counted > count:
            return
        if not early:
            yield wall


def _has_gaps(tz: dt.tzinfo) -> bool:
    """Whether some local times may not exist in ``tz`` (any zone but a fixed offset may change its offset)."""
    return not isinstance(tz, dt.timezone) and getattr(tz, "key", None) not in ("UTC", "Etc/UTC")


def _reach(master, future: list, tz: dt.tzinfo) -> tuple[dt.timedelta, dt.timedelta]:
    """How far before the window an instance may start and still touch it, and how far after it one may
    start and be moved into it (by a THISANDFUTURE override's shift)."""
    before, after = dt.timedelta(days=1), dt.timedelta(days=1)  # a day either way covers any offset change
    for event in [master, *[one for _, one in future]]:
        try:
            start = event.decoded("DTSTART")
            before = max(before, end_of(event, start, tz) - to_utc(start, tz)[0] + dt.timedelta(days=1))
        except (KeyError, InvalidData):
            continue
    for rid_key, event in future:
        if "DTSTART" in event:
            shift = to_utc(event.decoded("DTSTART"), tz)[0] - rid_key
            before, after = (before + shift, after) if shift > dt.timedelta(0) else (before, after - shift)
    return before, after


def _override_of(overrides: list, key: dt.datetime):
    """The THISANDFUTURE override in force at ``key`` (the latest one at or before it), with its RECURRENCE-ID's instant."""
    found = None
    for rid_key, event in overrides:
        if rid_key <= key:
            found = (rid_key, event)
    return found


def instances(cal_events: list, master, window_start: dt.datetime, window_end: dt.datetime, tz: dt.tzinfo, limit: int) -> list[Instance]:
    """The recurrence set's members overlapping the window, by start; more than ``limit`` only when there are."""
    series = _Series.of(master, tz)

    excluded = set()
    excluded_days = set()
    for value in _values(master, "EXDATE"):
        if isinstance(value, dt.datetime) or series.all_day:
            excluded.add(series.key(value))
        else:
            excluded_days.add(value)  # a date on a timed series: that day's instance (what its writer meant)

    overrides: dict[dt.datetime, Any] = {}
    future: list[tuple[dt.datetime, Any]] = []
    for event in cal_events:
        if event is master or "RECURRENCE-ID" not in event:
            continue
        rid = event["RECURRENCE-ID"]
        rid_key = series.key(event.decoded("RECURRENCE-ID"))
        overrides[rid_key] = event
        if str(rid.params.get("RANGE", "")).upper() == "THISANDFUTURE":
            future.append((rid_key, event))
    future.sort(key=lambda pair: pair[0])
    before, after = _reach(master, future, tz)
    first_wall = window_start.astimezone(series.rule_tz).replace(tzinfo=None) - before
    last_wall = window_end.astimezone(series.rule_tz).replace(tzinfo=None) + after
    master_end = ender(master, series.rule_tz)

    starts: dict[dt.datetime, tuple[dt.datetime, dt.datetime]] = {}  # instant -> (start, end) in UTC

    def add(local_start, end: dt.datetime | None = None) -> None:
        key = series.key(local_start)
        if key in excluded or (not series.all_day and key.astimezone(series.rule_tz).date() in excluded_days):
            return
        starts.setdefault(key, (key, end if end is not None else master_end(local_start)))

    def inside(start: dt.datetime, end: dt.datetime) -> bool:
        return start < window_end and end > window_start

    add(series.local(series.first))
    rules = master.get("RRULE")
    for rule in rules if isinstance(rules, list) else ([rules] if rules is not None else []):
        in_window = 0
        for wall in _rule_starts(series, rule, first_wall, last_wall):
            local = series.local(wall)
            known = len(starts)
            add(local)
            if len(starts) > known and inside(*starts[series.key(local)]):
                in_window += 1
                if in_window > limit:
                    break
    for value in _values(master, "RDATE"):
        if isinstance(value, tuple):  # a PERIOD: its own end or length
            begin, length = value
            end = to_utc(length, tz)[0] if isinstance(length, dt.date) else to_utc(begin, tz)[0] + length
            add(begin, end)
        else:
            add(value)

    found: list[Instance] = []
    for key, (start, end) in starts.items():
        if key in overrides:
            continue  # replaced by its override, below
        component = master
        shifted = _override_of(future, key)
        if shifted is not None:
            rid_key, event = shifted
            own_start = to_utc(event.decoded("DTSTART"), tz)[0]
            start = key + (own_start - rid_key)
            end = start + (end_of(event, event.decoded("DTSTART"), tz) - own_start)
            component = event
        if inside(start, end):
            found.append(Instance(start, end, component, series.rid_text(key), series.all_day))
    for key, event in overrides.items():
        local_start = event.decoded("DTSTART") if "DTSTART" in event else series.local(key.astimezone(series.rule_tz).replace(tzinfo=None))
        start, all_day = to_utc(local_start, tz)
        end = end_of(event, local_start, tz) if "DTSTART" in event else starts.get(key, (key, key))[1]
        if inside(start, end):
            found.append(Instance(start, end, event, event["RECURRENCE-ID"].to_ical().decode(), all_day))
    found.sort(key=lambda one: (one.starts_at, one.recurrence_id))
    return found
