"""Busy times the host asks for: merged blocks, and honesty about sources that could not be used."""

from __future__ import annotations

import datetime as dt

from conftest import soon, vevent

import models as m
from core import actions, clock, hostapi

T0 = dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC)


def test_overlapping_and_touching_blocks_are_merged():
    h = dt.timedelta(hours=1)
    blocks = [(T0, T0 + h), (T0 + h / 2, T0 + 2 * h), (T0 + 2 * h, T0 + 3 * h), (T0 + 5 * h, T0 + 6 * h)]
    assert hostapi.merge(blocks) == [(T0, T0 + 3 * h), (T0 + 5 * h, T0 + 6 * h)]


def test_busy_merges_loaded_entries_with_appointments(story):
    start = soon(2, 9)
    story.server.put_event(story.calendar_url, "busy.ics", vevent("busy-1", start, start + dt.timedelta(hours=2), "Board"))
    story.server.put_event(
        story.calendar_url,
        "free.ics",
        vevent("free-1", start + dt.timedelta(hours=5), start + dt.timedelta(hours=6), "Focus", "TRANSP:TRANSPARENT\r\n"),
    )
    story.server.put_event(
        story.calendar_url, "reminder.ics", vevent("tick-1", start + dt.timedelta(hours=7), start + dt.timedelta(hours=7), "Tick")
    )
    story.book(start + dt.timedelta(hours=1), hours=2, subject="Overlaps the board")
    story.sync()
    result = actions.busy_times(story.rt, "ada@example.com", start - dt.timedelta(hours=1), start + dt.timedelta(hours=10))
    assert result["busy"] == [
        {"start": start.isoformat().replace("+00:00", "Z"), "end": (start + dt.timedelta(hours=3)).isoformat().replace("+00:00", "Z")}
    ]
    assert result["complete"] is True and result["warnings"] == []
    (source,) = result["sources"]
    assert source["state"] == "ok" and source["last_successful_sync"]


def test_a_broken_calendar_is_named_not_silently_ignored(story):
    story.sync()
    story.server.set_password("changed-1")
    story.sync()
    result = actions.busy_times(story.rt, "ada@example.com", soon(1), soon(5))
    assert result["complete"] is False
    assert "relink_required" in result["warnings"][0]
    assert result["sources"][0]["state"] == "broken"


def test_a_stale_calendar_is_named(story):
    story.sync()
    later = clock.now() + dt.timedelta(hours=1)
    clock.set_now(lambda: later)
    result = actions.busy_times(story.rt, "ada@example.com", soon(1), soon(5))
    assert result["sources"][0]["state"] == "stale" and result["complete"] is False
    assert "may be out of date" in result["warnings"][0]


def test_external_edit_is_reported_to_the_host_through_the_outbox(story):
    start = soon(2, 10)
    booked = story.book(start, subject="Intro call")
    story.sync()
    ((href, data),) = story.events().items()
    story.server.put_event(story.calendar_url, href.rsplit("/", 1)[-1], data.replace("Intro call", "Intro call (moved by Ada)"))
    story.sync()
    (notification,) = m.Notification.select().where(m.Notification.event == "appointment.external_edit")
    assert booked["id"] in notification.payload and "subject" in notification.payload
