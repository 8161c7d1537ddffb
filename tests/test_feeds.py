"""Private feeds as a calendar app reads them: two independent parsers, UTC, the window, no alarms."""

from __future__ import annotations

import datetime as dt
import zoneinfo

import icalendar
import pytest
import vobject
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import models as m
from core import actions, clock, feeds


@pytest.fixture
def ada(rt):
    actions.add_staff(rt, "ada@example.com", "Ada Lovelace", timezone="Europe/Berlin")
    return m.Staff.get()


def book(rt, external_id: str, start: dt.datetime, hours: float = 1, subject: str = "Session"):
    return actions.upsert_appointment(rt, external_id, "ada@example.com", start, start + dt.timedelta(hours=hours), subject)


def parse_both(data: bytes):
    first = icalendar.Calendar.from_ical(data)
    second = vobject.readOne(data.decode("utf-8"))
    return first, second


def test_feed_is_rfc5545_that_two_parsers_read_the_same_way(rt, ada):
    start = clock.now().replace(microsecond=0) + dt.timedelta(days=1)
    book(rt, "A-1", start, subject="Intro, with a comma; and semicolon")
    book(rt, "A-2", start + dt.timedelta(days=2), subject="Review")
    first, second = parse_both(feeds.render(rt, ada))
    assert str(first["PRODID"]) and str(first["VERSION"]) == "2.0"
    assert str(first["X-WR-CALNAME"]) == "Calsync — Ada Lovelace"
    events = [c for c in first.walk("VEVENT")]
    assert sorted(str(e["SUMMARY"]) for e in events) == ["Intro, with a comma; and semicolon", "Review"]
    for event in events:
        for prop in ("UID", "DTSTAMP", "SEQUENCE", "LAST-MODIFIED", "DTSTART", "DTEND"):
            assert prop in event
        assert event.decoded("DTSTART").utcoffset() == dt.timedelta(0)
    assert not list(first.walk("VALARM"))
    v_events = second.vevent_list
    assert sorted(e.summary.value for e in v_events) == ["Intro, with a comma; and semicolon", "Review"]
    assert {e.uid.value for e in v_events} == {str(e["UID"]) for e in events}
    assert v_events[0].dtstart.value.tzinfo is not None and v_events[0].dtstart.value.utcoffset() == dt.timedelta(0)


def test_the_same_data_gives_the_same_bytes_and_a_change_shows_at_once(rt, ada):
    """What an ETag promises: nothing changed, the same feed (DTSTAMP is each event's last change,
    not the render time); one appointment changed, that change and every other event still there."""
    start = clock.now().replace(microsecond=0) + dt.timedelta(days=1)
    for i in range(5):
        book(rt, f"A-{i}", start + dt.timedelta(days=i), subject=f"Session {i}")
    first = feeds.render(rt, ada)
    later = clock.now() + dt.timedelta(minutes=7)
    clock.set_now(lambda: later)
    assert feeds.render(rt, ada) == first
    book(rt, "A-2", start + dt.timedelta(days=2, hours=3), subject="Moved session")
    cal = icalendar.Calendar.from_ical(feeds.render(rt, ada))
    events = {str(e["SUMMARY"]): e for e in cal.walk("VEVENT")}
    assert sorted(events) == ["Moved session", "Session 0", "Session 1", "Session 3", "Session 4"]
    moved = events["Moved session"]
    assert moved.decoded("DTSTART") == clock.utc(start + dt.timedelta(days=2, hours=3))
    assert moved.decoded("DTSTAMP") == moved.decoded("LAST-MODIFIED")


def test_uids_are_stable_and_a_change_bumps_the_sequence(rt, ada):
    start = clock.now() + dt.timedelta(days=1)
    book(rt, "A-1", start)
    before = icalendar.Calendar.from_ical(feeds.render(rt, ada)).walk("VEVENT")[0]
    book(rt, "A-1", start + dt.timedelta(hours=1))
    after = icalendar.Calendar.from_ical(feeds.render(rt, ada)).walk("VEVENT")[0]
    assert str(before["UID"]) == str(after["UID"])
    assert int(after["SEQUENCE"]) == int(before["SEQUENCE"]) + 1


@pytest.mark.parametrize("zone", ["America/New_York", "Europe/Berlin", "Australia/Sydney", "Asia/Kolkata"])
def test_times_are_converted_to_utc_across_dst_changes(rt, ada, zone):
    tz = zoneinfo.ZoneInfo(zone)
    year = clock.now().year
    # 09:00 local on both sides of the northern and southern DST switches.
    days = [
        dt.datetime(year, 3, 1, 9, tzinfo=tz),
        dt.datetime(year, 4, 15, 9, tzinfo=tz),
        dt.datetime(year, 10, 1, 9, tzinfo=tz),
        dt.datetime(year, 11, 15, 9, tzinfo=tz),
    ]
    later = dt.datetime(year, 1, 1, tzinfo=dt.UTC)
    clock.set_now(lambda: later)
    for i, day in enumerate(days):
        actions.upsert_appointment(
            rt, f"T-{i}", "ada@example.com", day.isoformat(), (day + dt.timedelta(hours=1)).isoformat(), "Local nine"
        )
    clock.set_now(lambda: dt.datetime(year, 3, 1, tzinfo=dt.UTC))
    cal = icalendar.Calendar.from_ical(feeds.render(rt, ada))
    starts = {e.decoded("DTSTART") for e in cal.walk("VEVENT")}
    expected = {d.astimezone(dt.UTC) for d in days if d.astimezone(dt.UTC) < dt.datetime(year, 3, 1, tzinfo=dt.UTC) + dt.timedelta(days=60)}
    assert starts == expected
    assert all(s.tzinfo is not None and s.utcoffset() == dt.timedelta(0) for s in starts)


def test_window_is_45_days_back_and_60_ahead_and_cancelled_are_dropped(rt, ada):
    now = clock.now().replace(microsecond=0)
    book(rt, "old-in", now - dt.timedelta(days=44))
    book(rt, "old-out", now - dt.timedelta(days=46))
    book(rt, "new-in", now + dt.timedelta(days=59))
    book(rt, "new-out", now + dt.timedelta(days=61))
    book(rt, "gone", now + dt.timedelta(days=3))
    actions.cancel_appointment(rt, "gone")
    cal = icalendar.Calendar.from_ical(feeds.render(rt, ada))
    uids = sorted(str(e["UID"]) for e in cal.walk("VEVENT"))
    assert uids == ["calsync-new-in@calsync", "calsync-old-in@calsync"]


def test_validators_change_with_the_data_not_without(rt, ada):
    book(rt, "A-1", clock.now() + dt.timedelta(days=1))
    first = feeds.validators(rt, ada)
    assert feeds.validators(rt, ada) == first
    actions.cancel_appointment(rt, "A-1")
    assert feeds.validators(rt, ada).etag != first.etag


def test_reset_revokes_the_old_token_at_once(rt, ada):
    old = actions.feed_url(rt, "ada@example.com")["url"].rsplit("/", 1)[-1][:-4]
    assert actions.feed_url(rt, "ada@example.com")["url"].endswith(old + ".ics")  # shown again, unchanged
    assert feeds.lookup(old).id == ada.id
    new = actions.feed_reset(rt, "ada@example.com")["url"].rsplit("/", 1)[-1][:-4]
    assert feeds.lookup(old) is None and feeds.lookup(new).id == ada.id
    assert old not in (m.Staff.get().feed_token_hash or "")


# -- the ETag's promise: other bytes, another ETag -------------------------------------------------

_steps = st.lists(
    st.one_of(
        st.tuples(st.just("book"), st.integers(0, 5), st.integers(-50, 70), st.sampled_from(["Session", "Review"])),
        st.tuples(st.just("cancel"), st.integers(0, 5)),
        st.tuples(st.just("clock"), st.sampled_from([-90, -1, 1, 30, 600, 60 * 24, 60 * 24 * 3])),  # minutes; back too
        st.tuples(st.just("rename"), st.sampled_from(["Ada", "Ada L."])),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=_steps)
def test_whenever_the_feed_s_bytes_change_its_etag_changes(rt, steps):
    """Random bookings, edits, cancellations, renames and clock moves (backwards too: another
    server's clock): a client holding an ETag is never told 304 for a feed that differs."""
    start = dt.datetime(2026, 12, 3, 13, 30, tzinfo=dt.UTC)
    moment = [start]
    clock.set_now(lambda: moment[0])
    try:
        email = f"prop-{m.Staff.select().count()}@example.com"
        actions.add_staff(rt, email, "Ada", timezone="UTC")
        staff = m.Staff.get(m.Staff.email == email)
        seen: dict[str, bytes] = {}
        for step in steps:
            if step[0] == "book":
                _, n, days, subject = step
                when = start + dt.timedelta(days=days, hours=n)
                actions.upsert_appointment(rt, f"{email}-{n}", email, when, when + dt.timedelta(hours=1), subject)
            elif step[0] == "cancel" and m.Appointment.select().where(m.Appointment.external_id == f"{email}-{step[1]}").exists():
                actions.cancel_appointment(rt, f"{email}-{step[1]}")
            elif step[0] == "clock":
                moment[0] = moment[0] + dt.timedelta(minutes=step[1])
            elif step[0] == "rename":
                m.Staff.update(name=step[1]).where(m.Staff.id == staff.id).execute()
            staff = m.Staff.get_by_id(staff.id)
            etag = feeds.validators(rt, staff).etag
            body = feeds.render(rt, staff)
            assert seen.setdefault(etag, body) == body, f"ETag {etag} stood for two different feeds"
    finally:
        clock.set_now(None)
