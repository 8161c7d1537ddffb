"""A remote object is parsed with only the properties calsync reads (``ics.parse(only=ics.READ)``):
what the sync makes of it must be exactly what it makes of the whole object, and no reader may
ask for a property the filter drops.

* ``test_every_property_the_read_path_asks_for_is_kept`` records every property name the read
  path (expansion, the busy policy, recurrence, the own-event comparison) looks up on a fully
  parsed event, over objects that carry every kind of property: a reader that starts using a
  new one fails here until it is added to ``ics.READ``.
* ``test_reading_only_what_is_read_changes_nothing`` (Hypothesis) holds the filtered parse to the
  whole one over random objects: read and unread properties, alarms, other components, time
  zones, series with overrides, invitations with the owner among the attendees.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import zoneinfo
from urllib.parse import urljoin

import icalendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core import busy, expander, ics, ics_limits
from core.providers import caldav_xml

WINDOW = (dt.datetime(2026, 3, 1, tzinfo=dt.UTC), dt.datetime(2026, 5, 1, tzinfo=dt.UTC))
ME = frozenset({"me@example.com"})
BERLIN_TZ = (
    "BEGIN:VTIMEZONE\r\nTZID:Custom/Berlin\r\n"
    "BEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\n"
    "TZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\n"
    "BEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\n"
    "TZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n"
)
UNREAD = (
    "DESCRIPTION:Join the call\\, dial in: https://example.com/j/123\\nPasscode: 42",
    "LOCATION:Room 4\\, second floor",
    "CATEGORIES:WORK,MEETING",
    "CLASS:PRIVATE",
    "CREATED:not a date at all",  # broken, and never read
    "SEQUENCE:3",
    "PRIORITY:5",
    "URL:https://example.com/event",
    'ORGANIZER;CN="Boss, The":mailto:boss@example.com',
    "X-ALT-DESC;FMTTYPE=text/html:<p>hello</p>",
    "ATTACH;FMTTYPE=application/pdf:https://example.com/a.pdf",
    "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nDESCRIPTION:soon\r\nEND:VALARM",
    "BEGIN:VALARM\r\nACTION:AUDIO\r\nTRIGGER;VALUE=DATE-TIME:garbage\r\nEND:VALARM",
)
READ_EXTRA = (
    "STATUS:TENTATIVE",
    "STATUS:CANCELLED",
    "TRANSP:TRANSPARENT",
    "TRANSP:OPAQUE",
    "X-MICROSOFT-CDO-BUSYSTATUS:OOF",
    "X-MICROSOFT-CDO-BUSYSTATUS:FREE",
    "ATTENDEE;PARTSTAT=DECLINED:mailto:me@example.com",
    "ATTENDEE;PARTSTAT=TENTATIVE;CN=Me:mailto:ME@example.com",
    "ATTENDEE;PARTSTAT=ACCEPTED:mailto:other@example.com",
    "X-CALSYNC-RESPONSE:DECLINED",
    "LAST-MODIFIED:20260201T101500Z",
    f"{ics.CALSYNC_PROP}:appt-7",
)
STARTS = (
    "DTSTART:20260310T090000Z|DTEND:20260310T100000Z",
    "DTSTART;TZID=Europe/Berlin:20260310T090000|DURATION:PT90M",
    "DTSTART;TZID=Custom/Berlin:20260328T230000|DTEND;TZID=Custom/Berlin:20260329T030000",
    "DTSTART;VALUE=DATE:20260312|DTEND;VALUE=DATE:20260313",
    "DTSTART:20260315T080000|DURATION:P1D",
    "DTSTART:20260101T090000Z|DTEND:20260101T100000Z",  # outside the window
)
RULES = (
    "",
    "RRULE:FREQ=WEEKLY;COUNT=6",
    "RRULE:FREQ=DAILY;INTERVAL=3;UNTIL=20260420T000000Z|EXDATE:20260316T090000Z",
    "RRULE:FREQ=MONTHLY;BYDAY=2TU|RDATE:20260401T090000Z",
    "RRULE:FREQ=DAILY;INTERVAL=0",  # refused (ics_limits.check_rule)
)


def obj(*lines: str, top: str = "", extra_components: str = "") -> str:
    body = "".join(f"{line}\r\n" for part in lines for line in part.split("|") if line)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//reading//EN\r\nMETHOD:PUBLISH\r\nX-WR-TIMEZONE:Asia/Tokyo\r\n"
        + top
        + BERLIN_TZ
        + extra_components
        + "BEGIN:VEVENT\r\nUID:read-1\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Planning\r\n"
        + body
        + "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def with_override(text: str, *lines: str) -> str:
    """``text`` with an override of its series' second occurrence (moved, or carrying ``lines``)."""
    override = (
        "BEGIN:VEVENT\r\nUID:read-1\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20260317T090000Z\r\n"
        "DTSTART:20260317T140000Z\r\nDTEND:20260317T150000Z\r\nSUMMARY:Planning (moved)\r\n"
        + "".join(f"{line}\r\n" for line in lines)
        + "END:VEVENT\r\n"
    )
    return text.replace("END:VCALENDAR", override + "END:VCALENDAR")


def rows(cal, tz=dt.UTC, policy="busy") -> list:
    return ics.expand(cal, *WINDOW, tz, all_day_policy=policy, max_occurrences=50, me=ME)


def everything_read(cal, tz) -> tuple:
    """All that the read path makes of one parsed object."""
    fields: object
    try:
        fields = ics.appointment_fields(cal, tz)
    except Exception as exc:  # noqa: BLE001 — the comparison is of the outcome, an error included
        fields = type(exc).__name__
    return rows(cal, tz), rows(cal, tz, "ignore"), ics.is_calsync_event(cal), ics.rule_problem(cal), ics.is_recurring(cal), fields


# -- every lookup is of a kept property --------------------------------------------------------


@contextlib.contextmanager
def recorded_lookups():
    """The property names looked up on any icalendar component while the block runs."""
    names: set[str] = set()
    component = icalendar.cal.component.Component
    originals = {name: getattr(component, name) for name in ("get", "decoded", "__getitem__", "__contains__", "pop", "popitem")}

    def wrap(name, original):
        def looked_up(self, key, *args, **kwargs):
            if isinstance(key, str) and getattr(self, "name", "") == "VEVENT":
                names.add(key.upper())
            return original(self, key, *args, **kwargs)

        return looked_up

    try:
        for name, original in originals.items():
            if name != "popitem":
                setattr(component, name, wrap(name, original))
        yield names
    finally:
        for name, original in originals.items():
            setattr(component, name, original)


SAMPLES = [
    obj(start, rule, *READ_EXTRA[i : i + 3], *UNREAD[:4]) for i, (start, rule) in enumerate((s, r) for s in STARTS for r in RULES)
] + [with_override(obj(STARTS[0], RULES[1], *READ_EXTRA), "STATUS:CANCELLED", "ATTENDEE;PARTSTAT=DECLINED:mailto:me@example.com")]


@pytest.mark.parametrize("tz", [dt.UTC, zoneinfo.ZoneInfo("Europe/Berlin")], ids=["UTC", "Berlin"])
def test_every_property_the_read_path_asks_for_is_kept(tz):
    # The sample objects are valid where the rule limits allow: a lookup on a path never taken proves nothing.
    assert sum(1 for text in SAMPLES if not ics.rule_problem(ics.parse(text))) > len(SAMPLES) // 2
    for text in SAMPLES:
        full = icalendar.Calendar.from_ical(ics_limits.sanitize(text))
        with recorded_lookups() as names:
            everything_read(full, tz)
            for event in ics.events(full):
                busy.decide(event, ME, all_day=False, all_day_policy="busy")
        assert names, "the read path looked nothing up: the recording is broken"
        missing = names - ics.READ_OWN
        assert not missing, f"the read path looks up {sorted(missing)}, which ics.READ drops: add them to ics.READ"
        # Only the own-event comparison (appointment_fields) needs the event's text.
        with recorded_lookups() as names:
            rows(full, tz)
            ics.is_calsync_event(full)
            ics.rule_problem(full)
        assert names <= ics.READ, sorted(names - ics.READ)


def test_what_is_not_read_is_not_parsed():
    text = obj(STARTS[0], *UNREAD, extra_components="BEGIN:VTODO\r\nUID:todo\r\nSUMMARY:unrelated\r\nEND:VTODO\r\n")
    kept = ics_limits.sanitize(text, ics.READ)
    for gone in ("DESCRIPTION", "LOCATION", "VALARM", "VTODO", "METHOD", "X-WR-TIMEZONE", "PRODID", "ORGANIZER", "CREATED"):
        assert gone not in kept, gone
    for stays in ("UID:read-1", "SUMMARY:Planning", "DTSTART:20260310T090000Z", "BEGIN:VTIMEZONE", "TZID:Custom/Berlin"):
        assert stays in kept, stays
    assert "LOCATION:Room 4" in ics_limits.sanitize(text, ics.READ_OWN)


def test_a_broken_property_calsync_never_reads_no_longer_makes_the_event_unreadable():
    text = obj(STARTS[0], "LAST-MODIFIED:20260201T101500Z", "BEGIN:VALARM\r\nACTION:AUDIO\r\nTRIGGER;VALUE=DATE-TIME:garbage\r\nEND:VALARM")
    with pytest.raises(ics.InvalidData):
        ics.parse(text)  # the whole object: icalendar refuses the alarm's trigger
    (occ,) = rows(ics.parse(text, only=ics.READ))
    assert occ.loaded and occ.starts_at == dt.datetime(2026, 3, 10, 9, tzinfo=dt.UTC), occ


def test_the_sync_reads_the_text_of_its_own_copies_and_the_worker_reads_series_the_same_way():
    text = obj(STARTS[0], RULES[1], *UNREAD[:2], f"{ics.CALSYNC_PROP}:appt-7")
    fields = ics.appointment_fields(ics.parse(text, only=ics.READ_OWN), dt.UTC)
    assert fields["description"].startswith("Join the call, dial in") and fields["location"] == "Room 4, second floor"
    in_worker = expander.expand(
        text, ics.parse(text, only=ics.READ), *WINDOW, dt.UTC, all_day_policy="busy", max_occurrences=50, timeout=30
    )
    assert [(o.starts_at, o.loaded) for o in in_worker] == [(o.starts_at, o.loaded) for o in rows(ics.parse(text))]


# -- the filtered parse makes the same of every object --------------------------------------------


@st.composite
def objects(draw) -> str:
    start = draw(st.sampled_from(STARTS))
    rule = draw(st.sampled_from(RULES))
    read = draw(st.lists(st.sampled_from(READ_EXTRA), max_size=4, unique=True))
    unread = draw(st.lists(st.sampled_from([u for u in UNREAD if "garbage" not in u and "not a date" not in u]), max_size=6, unique=True))
    lines = draw(st.permutations([start, rule, *read, *unread]))
    others = draw(
        st.sampled_from(["", "BEGIN:VTODO\r\nUID:t\r\nEND:VTODO\r\n", "BEGIN:VJOURNAL\r\nUID:j\r\nDESCRIPTION:x\r\nEND:VJOURNAL\r\n"])
    )
    text = obj(*lines, extra_components=others)
    if rule and start == STARTS[0] and draw(st.booleans()):
        text = with_override(text, *draw(st.lists(st.sampled_from(READ_EXTRA + UNREAD[:3]), max_size=3, unique=True)))
    return text


@settings(max_examples=150, deadline=None)
@given(text=objects(), tz=st.sampled_from([dt.UTC, zoneinfo.ZoneInfo("Europe/Berlin"), zoneinfo.ZoneInfo("America/New_York")]))
def test_reading_only_what_is_read_changes_nothing(text, tz):
    whole = everything_read(ics.parse(text), tz)
    assert everything_read(ics.parse(text, only=ics.READ_OWN), tz) == whole
    filtered = everything_read(ics.parse(text, only=ics.READ), tz)
    assert filtered[:5] == whole[:5]  # all but the own-event text, which READ leaves out


# -- hrefs ------------------------------------------------------------------------------------


HREF_PARTS = st.sampled_from(["/", "cal", "a b", "%20", ".", "..", "./", "../", "//", "?q=1", "#f", ":", "@", "~x", "ü", ";p"])


@settings(max_examples=400, deadline=None)
@given(
    base=st.sampled_from(["http://127.0.0.1:5232/u/cal/", "https://dav.example.com/cal", "https://h:8443/a/b/c/", "http://[::1]/x/"]),
    href=st.lists(HREF_PARTS, max_size=8).map("".join),
)
def test_an_href_is_joined_as_urljoin_joins_it(base, href):
    assert caldav_xml.join(base, href) == urljoin(base, href)
