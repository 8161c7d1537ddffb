"""The sync core against real CalDAV servers: every scenario on Radicale and Xandikos."""

from __future__ import annotations

import datetime as dt

from conftest import soon, vevent

import models as m
from core import actions


def test_connect_then_first_sync_goes_pending_then_active(story):
    assert story.conn["status"] == "pending"
    assert [c["name"] for c in story.conn["calendars"]] == ["Work"]
    assert story.conn["calendars"][0]["destination"] is True
    report = story.sync()
    assert report["outcome"] == "ok", report
    assert story.status()["status"] == "active"
    changes = [(c.old, c.new) for c in m.StatusChange.select().order_by(m.StatusChange.id)]
    assert changes == [("", "pending"), ("pending", "active")]


def test_booked_appointment_appears_on_the_server_exactly_once(story):
    story.sync()
    booked = story.book(soon(), subject="Intro call")
    report = story.sync()
    assert report["created"] == 1
    events = story.events()
    assert len(events) == 1
    (data,) = events.values()
    assert booked["uid"] in data and "Intro call" in data
    story.sync()
    assert len(story.events()) == 1


def test_rerun_with_nothing_changed_writes_nothing_and_costs_at_most_two_requests(story):
    story.book(soon(), subject="Intro call")
    story.sync()
    story.sync()  # settles the calendar's ctag after our own write
    report = story.sync()
    assert report["created"] == report["updated"] == report["deleted"] == 0
    calendars = len(story.status()["calendars"])
    assert report["requests"] <= 2 * calendars, report


def test_external_busy_event_is_loaded(story):
    start = soon(3, 14)
    story.server.put_event(story.calendar_url, "dentist.ics", vevent("dentist-1", start, start + dt.timedelta(hours=1), "Dentist"))
    story.sync()
    (entry,) = story.entries()
    assert entry["subject"] == "Dentist"
    assert entry["loaded"] is True
    assert entry["info"].startswith("last updated")
    assert entry["starts_at"] == start.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
