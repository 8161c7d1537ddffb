"""What blocks a staff member's time (core.busy), read from real CalDAV servers: the owner's answer to
an invitation, tentative events, Outlook's own free/busy status and transparency, each with the reason
in the feed entry. The Google and Microsoft forms of the same rules are in test_google / test_microsoft."""

from __future__ import annotations

import datetime as dt

from conftest import soon, vevent

from core import actions, busy

HOUR = dt.timedelta(hours=1)
ADA = "ada@example.com"


def _attendees(*people: tuple[str, str]) -> str:
    return "".join(f"ATTENDEE;PARTSTAT={partstat};CN=Someone:mailto:{who}\r\n" for who, partstat in people)


def _iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def test_the_owner_s_answer_the_status_and_outlook_s_busy_status_decide_and_the_entry_says_why(story):
    start = soon(3, 7)
    organizer = ("boss@example.com", "ACCEPTED")
    cases = [
        # (summary, extra properties, blocks, info starts with)
        ("Declined review", _attendees(organizer, ("Ada@Example.com", "DECLINED")), False, busy.INFO_DECLINED),
        ("Bob declined", _attendees(organizer, ("bob@example.com", "DECLINED"), (ADA, "ACCEPTED")), True, "last updated"),
        ("Maybe", _attendees(organizer, (ADA, "TENTATIVE")), True, "accepted tentatively, counted as busy"),
        ("Unanswered", _attendees(organizer, (ADA, "NEEDS-ACTION")), True, "invitation not answered yet, counted as busy"),
        ("Hold", "STATUS:TENTATIVE\r\n", True, "tentative, counted as busy"),
        ("Focus", "TRANSP:TRANSPARENT\r\n", False, busy.INFO_FREE),
        ("Elsewhere", "X-MICROSOFT-CDO-BUSYSTATUS:WORKINGELSEWHERE\r\n", False, busy.INFO_ELSEWHERE),
        ("Away", "X-MICROSOFT-CDO-BUSYSTATUS:OOF\r\n", True, "out of office"),
        ("Called off", "STATUS:CANCELLED\r\n" + _attendees((ADA, "ACCEPTED")), False, busy.INFO_CANCELLED),
    ]
    for n, (summary, extra, _, _) in enumerate(cases):
        begins = start + n * HOUR
        story.server.put_event(story.calendar_url, f"case{n}.ics", vevent(f"case-{n}", begins, begins + HOUR, summary, extra))
    assert story.sync()["outcome"] == "ok"
    entries = {e["subject"]: e for e in story.entries()}
    for summary, _, blocks, info in cases:
        assert entries[summary]["loaded"] is blocks and entries[summary]["info"].startswith(info), entries[summary]

    answer = actions.busy_times(story.rt, ADA, start.isoformat(), (start + len(cases) * HOUR).isoformat())
    blocking = [n for n, (_, _, blocks, _) in enumerate(cases) if blocks]
    expected, run = [], None
    for n in blocking:  # consecutive hours merge into one block
        if run is not None and run[1] == n:
            run = (run[0], n + 1)
        else:
            if run is not None:
                expected.append(run)
            run = (n, n + 1)
    expected.append(run)
    assert [(b["start"], b["end"]) for b in answer["busy"]] == [(_iso(start + a * HOUR), _iso(start + b * HOUR)) for a, b in expected]


def test_a_declined_occurrence_of_a_series_frees_only_that_occurrence(story):
    """An override of one occurrence carries its own answer (RFC 5545 §3.8.4.4): declining one
    meeting of a weekly series leaves the others blocking."""
    start = soon(2, 9)
    fmt = "%Y%m%dT%H%M%SZ"
    second = start + dt.timedelta(days=7)
    ics = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//outside//EN\r\n"
        "BEGIN:VEVENT\r\nUID:weekly-1\r\nDTSTAMP:20260101T000000Z\r\n"
        f"DTSTART:{start.astimezone(dt.UTC).strftime(fmt)}\r\nDTEND:{(start + HOUR).astimezone(dt.UTC).strftime(fmt)}\r\n"
        "RRULE:FREQ=WEEKLY;COUNT=3\r\nSUMMARY:Weekly review\r\n"
        + _attendees(("boss@example.com", "ACCEPTED"), (ADA, "ACCEPTED"))
        + "END:VEVENT\r\n"
        "BEGIN:VEVENT\r\nUID:weekly-1\r\nDTSTAMP:20260101T000000Z\r\n"
        f"RECURRENCE-ID:{second.astimezone(dt.UTC).strftime(fmt)}\r\n"
        f"DTSTART:{second.astimezone(dt.UTC).strftime(fmt)}\r\nDTEND:{(second + HOUR).astimezone(dt.UTC).strftime(fmt)}\r\n"
        "SUMMARY:Weekly review\r\n" + _attendees(("boss@example.com", "ACCEPTED"), (ADA, "DECLINED")) + "END:VEVENT\r\n"
        "END:VCALENDAR\r\n"
    )
    story.server.put_event(story.calendar_url, "weekly.ics", ics)
    assert story.sync()["outcome"] == "ok"
    rows = sorted(story.entries(), key=lambda e: e["starts_at"])
    assert [(r["starts_at"], r["loaded"]) for r in rows] == [
        (_iso(start), True),
        (_iso(second), False),
        (_iso(start + dt.timedelta(days=14)), True),
    ]
    assert rows[1]["info"] == busy.INFO_DECLINED
