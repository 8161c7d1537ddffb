"""Which calendars count (issue 18): per-calendar busy and write roles, extra write calendars that
behave like the primary, and an extra calendar's trouble that never stops the primary — on real
CalDAV servers (Radicale and Xandikos), through the same actions and CLI the adapters use."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT, soon, vevent

import models as m
from core import actions, notices

HOUR = dt.timedelta(hours=1)
ADA = "ada@example.com"


@pytest.fixture
def two(story):
    """Ada's account has a second calendar, "Team", besides the primary "Work"."""
    story.team_url = story.server.make_calendar("team", "Team")
    rows = actions.calendar_roles(story.rt, story.conn_id, refresh=True)
    story.ids = {r["name"]: r["id"] for r in rows}
    return story


def _row(story, name: str) -> dict:
    return next(r for r in actions.calendar_roles(story.rt, story.conn_id) if r["name"] == name)


def _uids(events: dict[str, str]) -> list[str]:
    return sorted(line.split(":", 1)[1].strip() for body in events.values() for line in body.splitlines() if line.startswith("UID:"))


def test_a_new_connection_writes_only_the_primary_and_every_calendar_of_its_own_blocks_time(two):
    work, team = _row(two, "Work"), _row(two, "Team")
    assert {k: work[k] for k in ("primary", "busy", "write", "writable")} == {
        "primary": True,
        "busy": True,
        "write": True,
        "writable": True,
    }
    assert {k: team[k] for k in ("primary", "busy", "write", "writable")} == {
        "primary": False,
        "busy": True,
        "write": False,
        "writable": True,
    }


def test_an_extra_write_calendar_gets_each_appointment_once_and_follows_changes_and_cancellations(two):
    row = actions.set_calendar_roles(two.rt, two.conn_id, "Team", write=True, actor="support")
    assert (row["write"], row["change"]) == (True, "updated")
    booked = two.book(soon(3, 10))
    assert two.sync()["outcome"] == "ok"
    uid = booked["uid"]
    assert _uids(two.server.list_events(two.calendar_url)) == [uid]
    assert _uids(two.server.list_events(two.team_url)) == [uid], "the same stable UID in each calendar, once"
    assert two.sync()["outcome"] == "ok"
    assert _uids(two.server.list_events(two.team_url)) == [uid], "a second run writes nothing twice"

    actions.upsert_appointment(two.rt, booked["id"], ADA, soon(3, 12).isoformat(), soon(3, 13).isoformat(), "Moved session")
    two.sync()
    for url in (two.calendar_url, two.team_url):
        (body,) = two.server.list_events(url).values()
        assert "SUMMARY:Moved session" in body
    actions.cancel_appointment(two.rt, booked["id"])
    two.sync()
    assert two.server.list_events(two.calendar_url) == {} and two.server.list_events(two.team_url) == {}
    assert m.AuditEntry.select().where(m.AuditEntry.action == "connection.calendar", m.AuditEntry.actor == "support").count() == 1


def test_our_events_on_the_extra_calendar_are_echoes_not_busy_time(two):
    actions.set_calendar_roles(two.rt, two.conn_id, "Team", write=True)
    two.book(soon(2, 9))
    two.sync()
    two.sync()
    entries = two.entries()
    assert len(entries) == 2, "one entry per calendar holding the appointment"
    assert all(not e["loaded"] and e["info"].startswith("calsync appointment (echo)") for e in entries), entries


def test_a_deleted_extra_calendar_waits_as_missed_while_the_primary_syncs_on(two):
    actions.set_calendar_roles(two.rt, two.conn_id, "Team", write=True)
    two.book(soon(3, 10), subject="Before")
    assert two.sync()["outcome"] == "ok"
    two.server.delete_calendar(two.team_url)
    later = two.book(soon(4, 10), subject="Meanwhile")
    report = two.sync()
    status = two.status()
    assert report["outcome"] == "ok" and status["status"] == "active", "an extra calendar does not break the connection"
    assert [later["uid"]] == [u for u in _uids(two.server.list_events(two.calendar_url)) if u == later["uid"]]
    team = _row(two, "Team")
    assert team["problem"] == "calendar_missing"
    assert status["missed"] == 2, "both upcoming appointments wait for the missing extra calendar"
    # Told at once (no incident: the connection works), in the e-mail's words too.
    (told,) = m.Notification.select().where(m.Notification.event == "calendar.trouble")
    subject, body = notices.render(told.event, json.loads(told.payload))
    assert subject == "Your calendar 'Team' cannot take appointments — 2 appointments are waiting"
    assert "Your calendar 'Team' was deleted" in body and "Meanwhile" in body and "/calsync calendars" in body
    assert not m.Incident.select().exists()

    # It comes back (recreated under the same address): what waited is written, once.
    two.server.make_calendar("team", "Team")
    assert two.sync()["outcome"] == "ok"
    assert _row(two, "Team")["problem"] == ""
    assert len(_uids(two.server.list_events(two.team_url))) == 2
    assert two.status()["missed"] == 0
    assert [n.event for n in m.Notification.select().order_by(m.Notification.id)] == ["calendar.trouble", "calendar.recovered"]


def test_turning_write_off_keeps_what_is_there_and_drops_what_waited(two):
    actions.set_calendar_roles(two.rt, two.conn_id, "Team", write=True)
    two.book(soon(3, 10))
    two.sync()
    two.server.delete_calendar(two.team_url)
    two.book(soon(4, 10))
    two.sync()
    assert two.status()["missed"] == 2
    actions.set_calendar_roles(two.rt, two.conn_id, "Team", write=False)
    assert two.status()["missed"] == 0
    assert _row(two, "Team")["write"] is False


def test_busy_off_takes_a_calendar_out_of_the_host_s_busy_times_at_once(two):
    start = soon(3, 9)
    two.server.put_event(two.team_url, "standup.ics", vevent("standup-1", start, start + HOUR, "Team standup"))
    two.sync()
    window = (start.isoformat(), (start + 2 * HOUR).isoformat())
    assert actions.busy_times(two.rt, ADA, *window)["busy"], "the team calendar blocks time"
    actions.set_calendar_roles(two.rt, two.conn_id, "Team", busy=False)
    assert actions.busy_times(two.rt, ADA, *window)["busy"] == []
    actions.set_calendar_roles(two.rt, two.conn_id, "Team", busy=True)
    two.sync()
    assert actions.busy_times(two.rt, ADA, *window)["busy"], "read whole again once busy is back on"


def test_roles_refuse_what_cannot_be_and_change_nothing(two):
    with pytest.raises(actions.ActionError, match="primary calendar, which is always written"):
        actions.set_calendar_roles(two.rt, two.conn_id, "Work", write=False)
    with pytest.raises(actions.InvalidInput, match="no calendar .Nope. in this account"):
        actions.set_calendar_roles(two.rt, two.conn_id, "Nope", busy=False)
    with pytest.raises(actions.InvalidInput, match="say what to change"):
        actions.set_calendar_roles(two.rt, two.conn_id, "Team")
    m.Calendar.update(writable=False).where(m.Calendar.id == two.ids["Team"]).execute()
    with pytest.raises(actions.ActionError, match="read-only for this account"):
        actions.set_calendar_roles(two.rt, two.conn_id, "Team", write=True)
    assert _row(two, "Team")["write"] is False and _row(two, "Work")["write"] is True


def test_every_role_chosen_at_once_like_a_form_does_it(two):
    """choose_calendars (the connect and relink pages, Slack's Calendars modal): a new primary, the old one
    kept as an extra write calendar, busy only where chosen; the appointment reaches both at once."""
    booked = two.book(soon(3, 10))
    result = actions.choose_calendars(two.rt, two.conn_id, primary="Team", busy=["Team"], write=["Work"], actor="slack:U1")
    assert result["primary"] == "Team" and result["change"] == "updated"
    roles = {r["name"]: (r["primary"], r["busy"], r["write"]) for r in result["calendars"]}
    assert roles == {"Team": (True, True, True), "Work": (False, False, True)}
    assert _uids(two.server.list_events(two.team_url)) == [booked["uid"]], "the new primary's sync wrote it at once"
    two.sync()
    assert _uids(two.server.list_events(two.calendar_url)) == [booked["uid"]], "the old primary keeps it, once"
    again = actions.choose_calendars(two.rt, two.conn_id, busy=["Team"], write=["Work"])
    assert again["change"] == "unchanged" and again["changed"] == []


def test_choosing_every_role_at_once_changes_nothing_when_any_part_is_wrong(two):
    before = actions.calendar_roles(two.rt, two.conn_id)
    with pytest.raises(actions.InvalidInput, match="no calendar .Nope."):
        actions.choose_calendars(two.rt, two.conn_id, busy=[], write=["Team", "Nope"])
    two.server.set_read_only(True)  # every calendar of the account: read, never written
    with pytest.raises(actions.ActionError, match="read-only for this account"):
        actions.choose_calendars(two.rt, two.conn_id, busy=[], write=["Team"])
    with pytest.raises(actions.ActionError, match="cannot be the primary"):
        actions.choose_calendars(two.rt, two.conn_id, primary="Team", busy=[])
    two.server.set_read_only(False)
    after = actions.calendar_roles(two.rt, two.conn_id, refresh=True)
    assert [{k: r[k] for k in ("name", "primary", "busy", "write")} for r in after] == [
        {k: r[k] for k in ("name", "primary", "busy", "write")} for r in before
    ]
    assert not m.AuditEntry.select().where(m.AuditEntry.action == "connection.calendar").exists()


def test_the_cli_lists_and_sets_roles_with_json_and_exit_codes(two, env):
    def cli(*argv):
        return subprocess.run(
            [sys.executable, str(ROOT / "run_console.py"), *argv],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    listed = cli("calendars", str(two.conn_id), "--json")
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [{k: r[k] for k in ("id", "name", "primary", "busy", "write", "writable")} for r in rows] == [
        {"id": two.ids["Work"], "name": "Work", "primary": True, "busy": True, "write": True, "writable": True},
        {"id": two.ids["Team"], "name": "Team", "primary": False, "busy": True, "write": False, "writable": True},
    ]
    changed = cli("calendars", str(two.conn_id), "set", "Team", "--write", "yes", "--busy", "no", "--json")
    assert changed.returncode == 0, changed.stderr
    assert {k: json.loads(changed.stdout)[k] for k in ("write", "busy", "change")} == {"write": True, "busy": False, "change": "updated"}
    assert cli("calendars", str(two.conn_id), "set", "Team", "--busy", "maybe").returncode == 2
    refused = cli("calendars", str(two.conn_id), "set", "Work", "--write", "no", "--json")
    assert refused.returncode == 1 and json.loads(refused.stderr)["error"] == "failed"


def test_stop_removes_calsyncs_events_from_every_write_calendar(two):
    actions.set_calendar_roles(two.rt, two.conn_id, "Team", write=True)
    two.book(soon(3, 10))
    two.book(soon(4, 10))
    two.sync()
    assert len(two.server.list_events(two.team_url)) == 2
    assert actions.stop_plan(two.rt, two.conn_id)["events_on_calendar"] == 4
    result = actions.stop_sync(two.rt, two.conn_id)
    assert result["removed"] == 4 and m.Connection.get_by_id(two.conn_id).status == "stopped"
    assert two.server.list_events(two.calendar_url) == {} and two.server.list_events(two.team_url) == {}


def test_the_host_api_says_per_calendar_whether_it_counted(two):
    two.sync()
    actions.set_calendar_roles(two.rt, two.conn_id, "Team", busy=False)
    start = soon(3, 9)
    answer = actions.busy_times(two.rt, ADA, start.isoformat(), (start + HOUR).isoformat())
    assert [(s["calendar"], s["counted"], s["state"]) for s in answer["sources"]] == [("Work", True, "ok"), ("Team", False, "not_counted")]
    assert answer["complete"] is True and answer["warnings"] == []
