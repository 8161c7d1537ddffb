"""The sync core against real CalDAV servers: every scenario on Radicale and Xandikos."""

from __future__ import annotations

import datetime as dt
import itertools

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
    assert entry["starts_at"] == start.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def test_free_event_is_not_loaded_and_says_why(story):
    start = soon(3, 9)
    story.server.put_event(
        story.calendar_url,
        "focus.ics",
        vevent("focus-1", start, start + dt.timedelta(hours=2), "Focus time", "TRANSP:TRANSPARENT\r\n"),
    )
    story.sync()
    (entry,) = story.entries()
    assert entry["loaded"] is False
    assert entry["info"] == "marked free/available"


def test_calsync_own_event_is_not_loaded_as_echo(story):
    story.book(soon(), subject="Intro call")
    story.sync()
    # The same event seen again by a fresh full read (as after a resync).
    m.Calendar.update(ctag="", sync_token="").execute()
    m.RemoteObject.delete().execute()
    story.sync()
    (entry,) = story.entries()
    assert entry["subject"] == "Intro call"
    assert entry["loaded"] is False
    assert entry["info"] == "calsync appointment (echo)"


def test_weekly_recurring_busy_event_is_expanded(story):
    start = soon(1, 8)
    story.server.put_event(
        story.calendar_url,
        "standup.ics",
        vevent("standup", start, start + dt.timedelta(minutes=30), "Team standup", "RRULE:FREQ=WEEKLY;COUNT=4\r\n"),
    )
    story.sync()
    entries = story.entries()
    assert [e["subject"] for e in entries] == ["Team standup"] * 4
    assert all(e["loaded"] for e in entries)
    starts = [dt.datetime.fromisoformat(e["starts_at"]) for e in entries]
    assert [b - a for a, b in itertools.pairwise(starts)] == [dt.timedelta(days=7)] * 3


def _edit_event(story, transform) -> None:
    ((href, data),) = story.events().items()
    story.server.put_event(story.calendar_url, href.rsplit("/", 1)[-1], transform(data))


def test_external_time_edit_is_applied_back_to_the_appointment(story):
    start = soon(2, 10)
    booked = story.book(start, subject="Intro call")
    story.sync()
    old = start.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    new_start = start + dt.timedelta(hours=3)
    new = new_start.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    _edit_event(story, lambda data: data.replace(f"DTSTART:{old}", f"DTSTART:{new}"))
    report = story.sync()
    assert report["applied_back"] == 1
    appointment = m.Appointment.get(m.Appointment.external_id == booked["id"])
    assert appointment.starts_at == new_start.astimezone(dt.UTC)
    assert appointment.version == 2
    assert m.AuditEntry.select().where(m.AuditEntry.action == "appointment.external_edit").count() == 1
    # Applying it back writes nothing more to the calendar.
    assert story.sync()["updated"] == 0


def test_external_delete_cancels_the_appointment(story):
    booked = story.book(soon(), subject="Intro call")
    story.sync()
    (href,) = story.events()
    story.server.delete_event(href)
    story.sync()
    appointment = m.Appointment.get(m.Appointment.external_id == booked["id"])
    assert appointment.cancelled is True
    assert "deleted in the external calendar" in appointment.cancel_reason
    assert story.events() == {}
    assert story.sync()["created"] == 0


class _CrashAfterPut(Exception):
    pass


def test_crash_after_put_before_commit_still_leaves_one_event(story, monkeypatch):
    story.sync()
    story.book(soon(), subject="Intro call")
    from core.providers.caldav import CalDAVProvider

    real_create = CalDAVProvider._create

    def create_then_crash(self, *args, **kwargs):
        real_create(self, *args, **kwargs)
        raise _CrashAfterPut("process killed after the PUT")

    monkeypatch.setattr(CalDAVProvider, "_create", create_then_crash)
    report = story.sync()
    assert report["outcome"] == "failed" and "internal error" in report["error"]
    assert len(story.events()) == 1
    monkeypatch.setattr(CalDAVProvider, "_create", real_create)
    report = story.sync()
    assert report["outcome"] == "ok", report
    assert len(story.events()) == 1
    assert m.AppointmentLink.get().state == "synced"


def test_password_change_marks_relink_required(story):
    story.sync()
    story.server.set_password("a-new-secret-9")
    report = story.sync()
    assert report["status"] == "relink_required"
    status = story.status()
    assert status["status"] == "relink_required"
    assert "rejected the username or password" in status["reason"]
    change = m.StatusChange.select().order_by(m.StatusChange.id.desc()).get()
    assert (change.old, change.new) == ("active", "relink_required")
    assert "401" in change.provider_answer


def test_appointments_booked_while_broken_wait_as_missed_then_arrive_after_relink(story):
    story.sync()
    story.server.set_password("a-new-secret-9")
    story.sync()
    story.book(soon(), subject="Booked during the outage")
    story.sync()
    assert story.status()["missed"] == 1
    download = actions.download_missed(story.rt, story.conn_id)
    assert download["count"] == 1 and b"Booked during the outage" in download["ics"]
    assert b"will not update" in download["ics"].replace(b"\r\n ", b"")
    result = actions.update_credentials(story.rt, story.conn_id, password="a-new-secret-9")
    assert result["status"] == "active"
    assert result["missed"] == 0
    assert result["id"] == story.conn_id
    (data,) = story.events().values()
    assert "Booked during the outage" in data


def test_user_made_read_only_marks_read_only(story):
    story.sync()
    story.server.set_read_only(True)
    story.book(soon(), subject="Intro call")
    report = story.sync()
    assert report["status"] == "read_only", report
    assert story.status()["missed"] == 1
    assert story.events() == {}
    story.server.set_read_only(False)
    report = story.sync()
    assert report["status"] == "active"
    assert len(story.events()) == 1


def test_deleted_destination_calendar_marks_calendar_missing(story):
    story.sync()
    story.server.delete_calendar(story.calendar_url)
    report = story.sync()
    assert report["status"] == "calendar_missing", report
    assert "no longer exists" in story.status()["reason"]


def test_choosing_a_new_primary_after_the_calendar_was_deleted_delivers_the_missed(story):
    story.sync()
    story.server.delete_calendar(story.calendar_url)
    story.sync()
    story.book(soon(), subject="Waiting for a calendar")
    story.sync()
    assert story.status()["missed"] == 1
    new_url = story.server.make_calendar("personal", "Personal")
    actions.set_destination(story.rt, story.conn_id, "Personal")
    report = story.sync()
    assert report["status"] == "active", report
    events = story.server.list_events(new_url)
    assert len(events) == 1 and "Waiting for a calendar" in next(iter(events.values()))


def test_server_stopped_is_transient_and_changes_no_status(story):
    story.sync()
    story.server.stop()
    report = story.sync()
    assert report["outcome"] == "transient"
    status = story.status()
    assert status["status"] == "active"
    assert "could not connect" in status["last_error"]
    assert m.StatusChange.select().count() == 2


def test_long_outage_becomes_unreachable(story):
    from core import clock

    story.sync()
    story.server.stop()
    story.sync()
    later = clock.now() + dt.timedelta(hours=7)
    clock.set_now(lambda: later)
    report = story.sync()
    assert report["status"] == "unreachable"
    assert "has not answered for 7 hours" in story.status()["reason"]


def test_servers_without_sync_collection_are_read_by_ctag_and_etags(story, monkeypatch):
    from core.providers import caldav as caldav_module
    from core.providers import caldav_reading

    def no_sync_collection(self, state, token):
        raise caldav_reading._NoSyncCollection()

    monkeypatch.setattr(caldav_module.CalDAVProvider, "_sync_collection", no_sync_collection)
    start = soon(2, 15)
    story.server.put_event(story.calendar_url, "a.ics", vevent("a", start, start + dt.timedelta(hours=1), "First"))
    story.sync()
    assert [e["subject"] for e in story.entries()] == ["First"]
    story.server.put_event(story.calendar_url, "a.ics", vevent("a", start, start + dt.timedelta(hours=1), "First (moved)"))
    story.server.put_event(story.calendar_url, "b.ics", vevent("b", start + dt.timedelta(hours=2), start + dt.timedelta(hours=3), "Second"))
    story.sync()
    assert sorted(e["subject"] for e in story.entries()) == ["First (moved)", "Second"]
    (href_b,) = [h for h in story.events() if h.endswith("b.ics")]
    story.server.delete_event(href_b)
    story.sync()
    assert [e["subject"] for e in story.entries()] == ["First (moved)"]
    report = story.sync()
    assert report["requests"] == 1  # unchanged ctag: one probe, nothing listed


def test_an_expired_sync_token_means_a_full_resync_not_an_error(story):
    start = soon(2, 15)
    story.server.put_event(story.calendar_url, "a.ics", vevent("a", start, start + dt.timedelta(hours=1), "First"))
    story.sync()
    cal = m.Calendar.get()
    cal.sync_token = cal.sync_token[:-6] + "ffffff" if cal.sync_token else "bogus"
    cal.ctag = ""
    cal.save()
    story.server.put_event(story.calendar_url, "b.ics", vevent("b", start + dt.timedelta(hours=2), start + dt.timedelta(hours=3), "Second"))
    report = story.sync()
    assert report["outcome"] == "ok", report
    assert report["status"] == "active"
    assert sorted(e["subject"] for e in story.entries()) == ["First", "Second"]


def test_windows_time_zone_names_are_understood(story):
    story.server.put_event(
        story.calendar_url,
        "win.ics",
        (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Microsoft Corporation//Outlook 16.0 MIMEDIR//EN\r\n"
            "BEGIN:VEVENT\r\nUID:win-1\r\nDTSTAMP:20260101T000000Z\r\n"
            f"DTSTART;TZID=W. Europe Standard Time:{soon(3).strftime('%Y%m%d')}T100000\r\n"
            f"DTEND;TZID=W. Europe Standard Time:{soon(3).strftime('%Y%m%d')}T110000\r\n"
            "SUMMARY:Outlook meeting\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        ),
    )
    story.sync()
    (entry,) = story.entries()
    assert entry["loaded"] is True
    assert entry["starts_at"].endswith("T09:00:00Z")  # 10:00 Berlin winter time


def test_events_too_large_for_one_multiget_answer_still_all_arrive(caldav, tmp_path):
    """A first sync asks for many events at once (one request for up to 1,000); when the answer
    would pass CALSYNC_HTTP_MAX_BYTES it asks again for fewer, and every event is read."""
    from conftest import Story, make_env

    from core import runtime
    from core.config import load_settings

    rt = runtime.start(load_settings(make_env(tmp_path, CALSYNC_HTTP_MAX_BYTES=str(128 * 1024)), read_dotenv=False))
    try:
        story = Story(rt, caldav)
        start = soon()
        notes = "DESCRIPTION:" + "x" * 4000 + "\r\n"  # ~4 KB each: 40 of them are ~160 KB, past the 128 KB cap
        for i in range(40):
            when = start + dt.timedelta(hours=i)
            caldav.put_event(
                story.calendar_url, f"big-{i}.ics", vevent(f"big-{i}", when, when + dt.timedelta(minutes=30), f"Long meeting {i}", notes)
            )
        report = story.sync()
        assert report["outcome"] == "ok", report
        loaded = [e for e in story.entries() if e["loaded"]]
        assert sorted(e["subject"] for e in loaded) == sorted(f"Long meeting {i}" for i in range(40))
    finally:
        rt.close()


def _asked_props(monkeypatch) -> list[set[str]]:
    """The property names of each PROPFIND the CalDAV provider builds, in order."""
    from core.providers import caldav as caldav_module

    asked: list[set[str]] = []
    real = caldav_module.propfind

    def recording_propfind(*props):
        asked.append({name for _ns, name in props})
        return real(*props)

    monkeypatch.setattr(caldav_module, "propfind", recording_propfind)
    return asked


PROBE_BASE = {"resourcetype", "displayname", "current-user-privilege-set", "supported-calendar-component-set"}


def test_no_change_probes_ask_for_the_ctag_alone_once_a_token_vouched_for_it_and_still_see_changes(story, monkeypatch):
    # Servers that compute the ctag and the sync token each from every object (Radicale) did the
    # work twice when both were asked; the ctag alone is the cheaper one. It is trusted only once
    # an answer whose token equals the stored one carried it (then it describes what was read).
    asked = _asked_props(monkeypatch)
    start = soon(2, 15)
    story.server.put_event(story.calendar_url, "a.ics", vevent("a", start, start + dt.timedelta(hours=1), "First"))
    story.sync()
    assert m.Calendar.get().sync_token, "both servers support sync-collection"
    assert not m.Calendar.get().ctag, "a ctag seen before the read is not trusted"
    asked.clear()
    report = story.sync()  # right after a read: the token alone (a calendar that changes at every run never needs a ctag)
    assert report["requests"] == 1 and report["entries_read"] == 0, report
    assert asked == [PROBE_BASE | {"sync-token"}]
    assert not m.Calendar.get().ctag
    asked.clear()
    report = story.sync()  # seen unchanged since the read: the token vouches for the ctag of the same answer
    assert report["requests"] == 1 and report["entries_read"] == 0, report
    assert asked == [PROBE_BASE | {"sync-token", "getctag"}]
    assert m.Calendar.get().ctag
    asked.clear()
    report = story.sync()
    assert report["requests"] == 1 and report["entries_read"] == 0, report
    assert asked == [PROBE_BASE | {"getctag"}], "a no-change probe asks for the ctag alone"
    story.server.put_event(story.calendar_url, "b.ics", vevent("b", start + dt.timedelta(hours=2), start + dt.timedelta(hours=3), "Second"))
    story.sync()
    assert sorted(e["subject"] for e in story.entries()) == ["First", "Second"]
    assert not m.Calendar.get().ctag, "after a read the probe's ctag is unknown again"
    asked.clear()
    story.sync()
    story.sync()
    assert asked == [PROBE_BASE | {"sync-token"}, PROBE_BASE | {"sync-token", "getctag"}]
    story.server.delete_event(story.calendar_url + "b.ics")
    asked.clear()
    story.sync()
    assert sorted(e["subject"] for e in story.entries()) == ["First"]


def test_a_calendar_that_moves_between_probe_and_read_and_back_is_still_seen(story, monkeypatch):
    # The probe sees one state, the report a later one: the probe's ctag must not be stored as the
    # calendar's, or a return to that state (an event added and removed again; Radicale's ctag is a
    # hash of the objects) would look unchanged and the removal would never arrive.
    from core.providers import caldav as caldav_module

    start = soon(2, 15)
    story.server.put_event(story.calendar_url, "a.ics", vevent("a", start, start + dt.timedelta(hours=1), "First"))
    story.sync()
    story.sync()
    story.sync()  # the ctag vouched for: probes ask for it alone from now on
    assert m.Calendar.get().ctag
    story.server.put_event(story.calendar_url, "b.ics", vevent("b", start + dt.timedelta(hours=2), start + dt.timedelta(hours=3), "Second"))
    probed: list[str] = []
    real_probe = caldav_module.CalDAVProvider.probe

    def probe_then_another_client_writes(self, state):
        info = real_probe(self, state)
        if not probed and not state.check:
            probed.append(info.ctag)
            story.server.put_event(
                story.calendar_url, "c.ics", vevent("c", start + dt.timedelta(hours=4), start + dt.timedelta(hours=5), "Third")
            )
        return info

    monkeypatch.setattr(caldav_module.CalDAVProvider, "probe", probe_then_another_client_writes)
    story.sync()
    assert sorted(e["subject"] for e in story.entries()) == ["First", "Second", "Third"]
    story.server.delete_event(story.calendar_url + "c.ics")  # back to what the probe saw
    if story.server.kind == "radicale":
        now = real_probe(story.rt.provider_for(m.Connection.get()), caldav_module.CalendarState(remote_id=story.calendar_url, ctag="x"))
        assert now.ctag == probed[0], "the premise: the server's ctag returned to the probed one"
    story.sync()
    assert sorted(e["subject"] for e in story.entries()) == ["First", "Second"]


def _recording(monkeypatch):
    """The request bodies the CalDAV provider sends, in order (method, the XML's root element)."""
    from core.providers import caldav as caldav_module

    sent: list[tuple[str, str]] = []
    real = caldav_module.CalDAVProvider._request

    def recording(self, method, url, **kw):
        body = kw.get("data") or b""
        root = body.split(b">", 2)[1].split(b" ", 1)[0].lstrip(b"<").decode() if body.startswith(b"<?xml") else ""
        sent.append((method, root.split(":")[-1]))
        return real(self, method, url, **kw)

    monkeypatch.setattr(caldav_module.CalDAVProvider, "_request", recording)
    return sent


def test_a_first_read_is_one_calendar_query_after_a_probe_for_the_token_alone(story, monkeypatch):
    # vdirsyncer's first sync is a listing and a multiget; calsync's was a probe for ctag and token,
    # a sync-collection and a multiget. A calendar never read has nothing to compare: the probe asks
    # for the token to start from, and one calendar-query brings every object.
    from core.providers import caldav as caldav_module

    start = soon(2, 9)
    for i in range(5):
        when = start + dt.timedelta(hours=i)
        story.server.put_event(story.calendar_url, f"e{i}.ics", vevent(f"e{i}", when, when + dt.timedelta(minutes=30), f"Busy {i}"))
    asked = []
    real_propfind = caldav_module.propfind
    monkeypatch.setattr(caldav_module, "propfind", lambda *props: asked.append({n for _ns, n in props}) or real_propfind(*props))
    sent = _recording(monkeypatch)
    report = story.sync()
    assert report["outcome"] == "ok" and report["entries_read"] == 5, report
    assert sent == [("PROPFIND", "propfind"), ("REPORT", "calendar-query")]
    assert "sync-token" in asked[0] and "getctag" not in asked[0]
    assert sorted(e["subject"] for e in story.entries()) == [f"Busy {i}" for i in range(5)]
    # The probe's token is where the next read starts: a change made now is seen, and only it is read.
    story.server.put_event(story.calendar_url, "late.ics", vevent("late", start, start + dt.timedelta(hours=1), "Late"))
    sent.clear()
    report = story.sync()
    assert report["entries_read"] == 1, report
    assert ("REPORT", "sync-collection") in sent
    assert "Late" in {e["subject"] for e in story.entries()}


def test_a_server_that_refuses_the_whole_calendar_query_is_read_by_sync_collection(story, monkeypatch):
    from core.providers import caldav_reading

    start = soon(2, 9)
    story.server.put_event(story.calendar_url, "a.ics", vevent("a", start, start + dt.timedelta(hours=1), "First"))
    monkeypatch.setattr(
        caldav_reading, "everything", lambda: b'<?xml version="1.0"?><C:calendar-query xmlns:C="urn:ietf:params:xml:ns:caldav"'
    )
    sent = _recording(monkeypatch)
    report = story.sync()
    assert report["outcome"] == "ok" and report["entries_read"] == 1, report
    assert [root for _method, root in sent][1:] == ["calendar-query", "sync-collection", "calendar-multiget"]
    assert [e["subject"] for e in story.entries()] == ["First"]


def test_a_check_asks_neither_for_the_ctag_nor_the_sync_token(story, monkeypatch):
    # The health sweep and "test connection" only ask "is it there, may we write?": a server that
    # computes the ctag and the token from every object (Radicale) need not do either.
    from core.providers import caldav as caldav_module

    story.sync()
    asked = []
    real_propfind = caldav_module.propfind
    monkeypatch.setattr(caldav_module, "propfind", lambda *props: asked.append({n for _ns, n in props}) or real_propfind(*props))
    result = actions.test_connection(story.rt, story.conn["id"])
    assert result["ok"], result
    probes = [props for props in asked if "current-user-privilege-set" in props and "resourcetype" in props and len(props) < 6]
    assert probes and all(not ({"getctag", "sync-token"} & props) for props in probes), asked


def test_a_large_read_parsed_in_the_workers_is_what_the_sync_reads_itself(story, monkeypatch):
    """expander.read_ahead: a first read of many objects has its plain events parsed in the expansion
    workers. What the feed holds must not depend on it, nor on a chunk that fails there."""
    from core import expander

    start = soon(3, 8)
    extras = [
        "",
        "TRANSP:TRANSPARENT\r\n",
        "STATUS:CANCELLED\r\n",
        "STATUS:TENTATIVE\r\n",
        "ATTENDEE;PARTSTAT=DECLINED:mailto:ada@example.com\r\n",
        "RRULE:FREQ=DAILY;COUNT=3\r\n",
        "BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER:-PT15M\r\nDESCRIPTION:soon\r\nEND:VALARM\r\n",
        "LAST-MODIFIED:20260301T101500Z\r\nDESCRIPTION:long text\\, escaped\r\n",
    ]
    for j in range(24):
        at = start + dt.timedelta(hours=5 * j)
        text = vevent(f"many-{j}", at, at + dt.timedelta(minutes=45), f"Outside {j}", extras[j % len(extras)])
        story.server.put_event(story.calendar_url, f"many-{j}.ics", text)
    story.server.put_event(story.calendar_url, "broken.ics", vevent("broken-1", start, start - dt.timedelta(hours=1), "Backwards"))
    story.book(soon(4, 15), subject="Booked here")
    assert story.sync()["outcome"] == "ok"  # our own copy is now on the calendar, read back like the rest

    calls = []
    original = expander.read_ahead

    def recorded(*args, **kwargs):
        result = original(*args, **kwargs)
        calls.append(sum(1 for r in result if r is not None))
        return result

    def fresh_read(min_objects: int, chunk: int = 7, *, failing: bool = False) -> list[dict]:
        monkeypatch.setattr(expander, "READ_AHEAD_MIN", min_objects)
        monkeypatch.setattr(expander, "READ_AHEAD_CHUNK", chunk)
        if failing:  # every chunk raises in the worker (no window start to compare with)
            monkeypatch.setattr(expander, "read_ahead", lambda datas, start, *a, **k: recorded(datas, None, *a, **k))
        else:
            monkeypatch.setattr(expander, "read_ahead", recorded)
        m.Calendar.update(ctag="", sync_token="", full_read_at=None).execute()
        m.RemoteObject.delete().execute()
        m.FeedEntry.delete().execute()
        report = story.sync()
        assert report["outcome"] == "ok" and report["entries_read"] == 26, report
        return sorted(({k: v for k, v in e.items() if k != "id"} for e in story.entries()), key=lambda e: (e["uid"], e["starts_at"] or ""))

    in_thread = fresh_read(10_000)
    assert calls.pop() == 0
    in_workers = fresh_read(10)
    # Every plain event of others came from the workers (the backwards one too); not the 3 series, nor our own copy.
    assert calls.pop() == 24 - 3 + 1
    assert in_workers == in_thread
    assert any("declined" in e["info"] for e in in_thread) and any(e["info"].startswith("invalid data") for e in in_thread)
    assert sum(1 for e in in_thread if e["subject"] == "Booked here") == 1
    # A chunk that fails in the worker: it and the rest are read by the sync itself.
    assert fresh_read(10, failing=True) == in_thread
    assert calls.pop() == 0
