"""Switching provider: appointments already written stay where they are; new ones go to the new destination."""

from __future__ import annotations

import pytest
from conftest import soon
from servers import start_server

from core import actions


@pytest.fixture
def two_servers(tmp_path):
    old, new = start_server("radicale", tmp_path / "old"), start_server("xandikos", tmp_path / "new")
    try:
        yield old, new
    finally:
        old.stop()
        new.stop()


def test_switching_provider_keeps_old_events_and_sends_new_ones_to_the_new_calendar(rt, two_servers):
    old, new = two_servers
    old_cal, new_cal = old.make_calendar("work", "Old work"), new.make_calendar("work", "New work")
    actions.add_staff(rt, "ada@example.com", "Ada")
    first = actions.connect(rt, "ada@example.com", "caldav", url=old.base_url, username=old.username, password=old.password)
    actions.book(rt, "ada@example.com", soon(2).isoformat(), soon(2, 11).isoformat(), "Written before the switch")
    actions.sync_now(rt, first["id"])
    assert len(old.list_events(old_cal)) == 1

    actions.stop_sync(rt, first["id"], keep_events=True)
    second = actions.connect(rt, "ada@example.com", "caldav", url=new.base_url, username=new.username, password=new.password)
    actions.book(rt, "ada@example.com", soon(3).isoformat(), soon(3, 11).isoformat(), "Booked after the switch")
    actions.sync_now(rt, second["id"])

    (old_event,) = old.list_events(old_cal).values()
    assert "Written before the switch" in old_event
    (new_event,) = new.list_events(new_cal).values()
    assert "Booked after the switch" in new_event
    rows = {r["id"]: r for r in actions.list_statuses(rt, "ada@example.com")}
    assert rows[first["id"]]["status"] == "stopped" and rows[second["id"]]["destination"] == "New work"
