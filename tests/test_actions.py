"""Core actions the adapters share: test connection, stop sync, primary calendar, appointments."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import Story, soon

import models as m
from core import actions


def test_test_connection_reports_every_check_and_the_status(story):
    story.sync()
    result = actions.test_connection(story.rt, story.conn_id, actor="sam")
    assert result["ok"] is True and result["status"] == "active"
    assert [c["check"] for c in result["checks"]] == ["credentials", "read", "destination", "write"]
    assert story.status()["last_check_at"] is not None
    assert m.AuditEntry.select().where(m.AuditEntry.actor == "sam", m.AuditEntry.action == "connection.test").exists()


def test_read_only_is_found_by_a_test_before_any_write_fails(story):
    story.sync()
    story.server.set_read_only(True)
    result = actions.test_connection(story.rt, story.conn_id)
    assert result["ok"] is False
    assert result["status"] == "read_only"
    assert "read-only" in result["reason"]
    assert story.events() == {}


def test_test_connection_with_a_changed_password_gives_the_providers_answer(story):
    story.sync()
    story.server.set_password("changed-1")
    result = actions.test_connection(story.rt, story.conn_id)
    assert result["status"] == "relink_required"
    assert "401" in result["provider_answer"]


def test_stop_on_a_working_connection_removes_our_events_and_forgets_credentials(story):
    story.book(soon(), subject="Intro call")
    story.sync()
    plan = actions.stop_plan(story.rt, story.conn_id)
    assert plan["events_on_calendar"] == 1 and plan["remove_events"] is True
    result = actions.stop_sync(story.rt, story.conn_id, actor="sam")
    assert result["removed"] == 1
    assert story.events() == {}
    conn = m.Connection.get_by_id(story.conn_id)
    assert conn.status == "stopped" and conn.credentials == ""
    assert story.entries() == []


def test_stop_keep_events_leaves_them(story):
    story.book(soon(), subject="Intro call")
    story.sync()
    result = actions.stop_sync(story.rt, story.conn_id, keep_events=True)
    assert result["kept"] == 1 and len(story.events()) == 1


def test_stop_on_a_broken_connection_refuses_then_force_records_orphans(story):
    story.book(soon(), subject="Intro call")
    story.sync()
    story.server.set_password("changed-1")
    story.sync()
    with pytest.raises(actions.ActionError, match="Relink first") as info:
        actions.stop_sync(story.rt, story.conn_id)
    assert "1 appointment(s)" in str(info.value)
    assert story.status()["status"] == "relink_required"
    result = actions.stop_sync(story.rt, story.conn_id, force=True)
    assert result["orphaned"] == 1
    assert m.AppointmentLink.get().state == "orphaned"
    assert len(story.events()) == 1  # calsync could not remove it; support can follow up


def test_stopping_one_of_a_shared_account_warns_and_leaves_the_other(rt, caldav):
    first = Story(rt, caldav)
    actions.add_staff(rt, "bob@example.com", "Bob")
    second = actions.connect(rt, "bob@example.com", "caldav", url=caldav.base_url, username=caldav.username, password=caldav.password)
    assert "shared" in second["flags"]
    plan = actions.stop_plan(rt, second["id"])
    assert "ada@example.com" in plan["warning"]
    actions.stop_sync(rt, second["id"])
    assert first.sync()["status"] == "active"


def test_two_connections_to_one_account_for_one_person_are_a_duplicate_risk(rt, caldav):
    Story(rt, caldav)
    again = actions.connect(rt, "ada@example.com", "caldav", url=caldav.base_url, username=caldav.username, password=caldav.password)
    assert "duplicate" in again["flags"]
    assert any("duplicate risk" in w for w in again["warnings"])


def test_upsert_is_idempotent_and_a_change_is_pushed(story):
    start = soon()
    first = actions.upsert_appointment(story.rt, "A-1", "ada@example.com", start, start + dt.timedelta(hours=1), "Intro")
    again = actions.upsert_appointment(story.rt, "A-1", "ada@example.com", start, start + dt.timedelta(hours=1), "Intro")
    assert (first["change"], again["change"], again["version"]) == ("created", "unchanged", 1)
    story.sync()
    changed = actions.upsert_appointment(story.rt, "A-1", "ada@example.com", start, start + dt.timedelta(hours=2), "Intro (long)")
    assert changed["version"] == 2
    report = story.sync()
    assert report["updated"] == 1
    (data,) = story.events().values()
    assert "Intro (long)" in data


def test_cancel_removes_the_event(story):
    start = soon()
    actions.upsert_appointment(story.rt, "A-1", "ada@example.com", start, start + dt.timedelta(hours=1), "Intro")
    story.sync()
    actions.cancel_appointment(story.rt, "A-1")
    assert story.sync()["deleted"] == 1
    assert story.events() == {}


@pytest.mark.parametrize(
    "start, end, words",
    [
        ("2026-12-01T10:00:00Z", "2026-12-01T09:00:00Z", "end after it starts"),
        ("next tuesday", "2026-12-01T09:00:00Z", "ISO 8601"),
    ],
)
def test_bad_appointments_are_refused_and_change_nothing(rt, start, end, words):
    actions.add_staff(rt, "ada@example.com", "Ada")
    with pytest.raises(actions.InvalidInput, match=words):
        actions.upsert_appointment(rt, "A-1", "ada@example.com", start, end, "Intro")
    assert m.Appointment.select().count() == 0


def test_unknown_time_zone_for_staff_is_refused(rt):
    with pytest.raises(actions.InvalidInput, match="unknown time zone"):
        actions.add_staff(rt, "ada@example.com", "Ada", timezone="Mars/Olympus")


def test_switching_primary_keeps_written_appointments_where_they_are(story):
    story.book(soon(), subject="Written to Work")
    story.sync()
    personal = story.server.make_calendar("personal", "Personal")
    actions.set_destination(story.rt, story.conn_id, "Personal")
    story.book(soon(3), subject="Goes to Personal")
    story.sync()
    assert ["Written to Work" in d for d in story.events().values()] == [True]
    (data,) = story.server.list_events(personal).values()
    assert "Goes to Personal" in data


def test_no_action_is_named_like_a_module_of_its_package():
    """The package loads each action on first use (PEP 562 ``__getattr__``); a module of the same name,
    once imported by another module, is the package's attribute instead, and ``actions.NAME(...)``
    calls a module. (``calendar_roles`` was both until it was found.)"""
    from pathlib import Path

    modules = {p.stem for p in Path(actions.__file__).parent.glob("*.py")}
    assert set(actions._HOME) & modules == set()
    assert all(callable(getattr(actions, name)) for name in actions._HOME)
