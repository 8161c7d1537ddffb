"""Hostile iCalendar: recurrence and time-zone bombs end quickly as "invalid data" entries of their
own, the rest of the calendar is read, and no sync is ever left "running".

Each case is served by a real HTTP server on loopback and read through calsync's real iCalendar
URL provider and sync engine. Bounds are generous (the point is that it *ends*).
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from conftest import soon
from test_ics_url import Subscription, calendar, event, feed, runtime_with  # noqa: F401 (fixtures)

import models as m
from core import actions
from core.actions import ActionError


def one_event_with(uid: str, summary: str, start: dt.datetime, lines: str) -> str:
    return event(uid, summary, start, lines=lines)


def read(sub: Subscription) -> dict[str, list[dict]]:
    started = time.monotonic()
    report = sub.sync()
    assert time.monotonic() - started < 60, "a hostile feed must not hold the sync"
    assert report["outcome"] == "ok", report
    assert m.SyncRun.select().where(m.SyncRun.outcome == "running").count() == 0
    found: dict[str, list[dict]] = {}
    for entry in sub.entries():
        found.setdefault(entry["uid"], []).append(entry)
    return found


def test_a_rule_that_never_advances_is_invalid_data_and_the_rest_is_read(rt, feed):
    body = calendar(
        one_event_with("loop-1", "Interval zero", soon(1, 9), "RRULE:FREQ=DAILY;INTERVAL=0\r\n"),
        event("dentist-1", "Dentist", soon(2, 14)),
    )
    found = read(Subscription(rt, feed, body))
    (loop,) = found["loop-1"]
    assert loop["loaded"] is False and loop["info"].startswith("invalid data: its repeat rule has INTERVAL=0")
    assert found["dentist-1"][0]["loaded"] is True


def test_impossible_rules_run_out_of_time_one_by_one_and_the_rest_is_read(runtime_with, feed):
    rt = runtime_with(CALSYNC_PARSE_TIMEOUT=1)
    impossible = [one_event_with(f"never-{i}", "Never", soon(1, 9), "RRULE:FREQ=HOURLY;BYMONTH=2;BYMONTHDAY=30\r\n") for i in range(5)]
    body = calendar(*impossible, event("dentist-1", "Dentist", soon(2, 14)))
    found = read(Subscription(rt, feed, body))
    infos = [found[f"never-{i}"][0]["info"] for i in range(5)]
    timed_out = [i for i in infos if "takes too long to read" in i]
    skipped = [i for i in infos if "other repeat rules of this calendar already took too long" in i]
    assert len(timed_out) == 3 and len(skipped) == 2, infos
    assert found["dentist-1"][0]["loaded"] is True


def test_a_time_zone_bomb_costs_nothing_and_the_zone_is_said_to_be_unknown(rt, feed):
    bomb_zone = (
        "BEGIN:VTIMEZONE\r\nTZID:Custom/Bomb\r\nBEGIN:STANDARD\r\nDTSTART:16010101T000000\r\n"
        "RRULE:FREQ=SECONDLY\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0000\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    )
    start = soon(1, 9).replace(tzinfo=None)
    stamp = start.strftime("%Y%m%dT%H%M%S")
    end = (start + dt.timedelta(hours=1)).strftime("%Y%m%dT%H%M%S")
    in_zone = (
        f"BEGIN:VEVENT\r\nUID:zoned-1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Custom/Bomb:{stamp}\r\n"
        f"DTEND;TZID=Custom/Bomb:{end}\r\nSUMMARY:In a strange zone\r\nEND:VEVENT\r\n"
    )
    body = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nX-WR-CALNAME:Bombs\r\n"
        + bomb_zone
        + in_zone
        + event("dentist-1", "Dentist", soon(2, 14))
        + "END:VCALENDAR\r\n"
    )
    found = read(Subscription(rt, feed, body))
    (zoned,) = found["zoned-1"]
    assert zoned["loaded"] is True and "unknown time zone 'Custom/Bomb'" in zoned["info"]
    assert found["dentist-1"][0]["loaded"] is True


def test_a_known_zone_is_read_from_zoneinfo_whatever_its_vtimezone_says(rt, feed):
    lying_zone = (
        "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:16010101T000000\r\n"
        "RRULE:FREQ=SECONDLY\r\nTZOFFSETFROM:+0500\r\nTZOFFSETTO:+0500\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    )
    start = dt.datetime(2026, 12, 10, 9, 0)
    body = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n"
        + lying_zone
        + "BEGIN:VEVENT\r\nUID:berlin-1\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART;TZID=Europe/Berlin:{start:%Y%m%dT%H%M%S}\r\nDTEND;TZID=Europe/Berlin:{start:%Y%m%dT1000%S}\r\n"
        "SUMMARY:Berlin\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
    found = read(Subscription(rt, feed, body))
    (berlin,) = found["berlin-1"]
    assert berlin["starts_at"] == "2026-12-10T08:00:00Z", "09:00 in Berlin in December is 08:00 UTC"


def test_an_event_with_a_flood_of_dates_is_invalid_data_not_a_flood_of_occurrences(runtime_with, feed):
    rt = runtime_with(CALSYNC_ICS_MAX_BYTES=8 * 1024 * 1024)
    base = soon(1, 9)
    dates = ",".join((base + dt.timedelta(minutes=i)).strftime("%Y%m%dT%H%M%SZ") for i in range(100_000))
    body = calendar(one_event_with("flood-1", "Flood", base, f"RDATE:{dates}\r\n"), event("dentist-1", "Dentist", soon(2, 14)))
    found = read(Subscription(rt, feed, body))
    (flood,) = found["flood-1"]
    assert flood["loaded"] is False and "100000 RDATE/EXDATE dates (more than the 1000" in flood["info"]
    assert found["dentist-1"][0]["loaded"] is True


def test_a_feed_of_too_many_events_is_refused_with_a_clear_reason(runtime_with, feed):
    rt = runtime_with(CALSYNC_ICS_MAX_BYTES=16 * 1024 * 1024)
    body = calendar(*(event(f"e-{i}", "Busy", soon(1, 9)) for i in range(20_001)))
    sub = Subscription(rt, feed, calendar(event("first-1", "First", soon(1, 9))))
    sub.sync()
    feed.serve(body)
    report = sub.sync()
    assert report["outcome"] == "failed" and "20,001 events, more than the 20,000" in report["error"]
    assert [e["uid"] for e in sub.entries()] == ["first-1"], "what was read before is kept"
    assert m.SyncRun.select().where(m.SyncRun.outcome == "running").count() == 0


def test_a_feed_far_past_the_cap_is_refused_before_it_is_parsed(runtime_with, feed):
    """Counted in the raw text: neither connect nor a sync builds 60,000 components to say no."""
    rt = runtime_with(CALSYNC_ICS_MAX_BYTES=16 * 1024 * 1024)
    sub = Subscription(rt, feed, calendar(event("first-1", "First", soon(1, 9))))
    sub.sync()
    huge = calendar(*(event(f"e-{i}", "Busy", soon(1, 9)) for i in range(60_000)))
    feed.serve(huge, "/huge.ics")
    actions.add_staff(rt, "bob@example.com", "Bob")
    with pytest.raises(ActionError, match="more than the 20,000 events"):
        actions.connect(rt, "bob@example.com", "ics", url=feed.url("/huge.ics"))  # refused at connect, too
    feed.serve(huge)
    started = time.monotonic()
    report = sub.sync()
    assert report["outcome"] == "failed" and "more than the 20,000 events calsync reads" in report["error"]
    assert time.monotonic() - started < 20, "counting lines, not building 60,000 components"
    assert [e["uid"] for e in sub.entries()] == ["first-1"], "what was read before is kept"


def test_a_calendar_of_many_long_series_stops_at_its_occurrence_cap_and_says_so(rt, feed, monkeypatch):
    """Per feed, not only per event: what would pass the calendar's cap is one entry that says why."""
    from core import entries

    monkeypatch.setattr(entries, "MAX_CALENDAR_ENTRIES", 150)
    series = [one_event_with(f"daily-{i}", f"Daily {i}", soon(1, 9 + i), "RRULE:FREQ=DAILY\r\n") for i in range(3)]
    found = read(Subscription(rt, feed, calendar(*series, event("dentist-1", "Dentist", soon(2, 14)))))
    loaded = {uid: len(rows) for uid, rows in found.items() if all(r["loaded"] for r in rows)}
    assert loaded.get("dentist-1") == 1 and loaded.get("daily-0", 0) > 50, loaded
    capped = [rows for uid, rows in found.items() if uid.startswith("daily-") and uid not in loaded]
    assert capped and all(len(rows) == 1 and "past the 150 calsync reads in the sync window" in rows[0]["info"] for rows in capped), capped
    assert m.FeedEntry.select().count() <= 150 + len(capped)


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_a_nul_in_an_event_is_dropped_not_a_sync_that_fails_on_every_run(database, request, feed):
    rt = request.getfixturevalue("rt" if database == "sqlite" else "pg_rt")
    body = calendar(event("nul-1", "Den\x00tist", soon(2, 14)), event("plain-1", "Plain", soon(3, 9)))
    found = read(Subscription(rt, feed, body))
    assert found["nul-1"][0]["subject"] == "Dentist" and found["nul-1"][0]["loaded"] is True
    assert found["plain-1"][0]["loaded"] is True
