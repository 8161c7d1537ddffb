"""Google Calendar end to end: the GoogleProvider against a local fake of Google's
OAuth endpoints and Calendar API v3 (tests/fakes/google_api.py).

Where the story is a person on a consent screen (connect, relink, Deny, a
permission unticked), it runs in real headless Chromium against calsync's real
waitress server. Elsewhere the same consent is answered with requests and the
callback goes through ``actions.oauth_callback``, exactly what the callback
route calls.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import re
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from conftest import CHROMIUM_ARGS, chromium_path, running_web, soon, started, web_env
from fakes.google_api import CALENDAR_SCOPE, FakeGoogle

import models as m
from core import actions, busy, clock
from core.providers.google import GoogleProvider, event_id

EMAIL = "ada@example.com"

# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def grt(tmp_path, google):
    """A runtime whose Google sign-in and API are the fake, linking to its own web server."""
    with started(web_env(tmp_path, **google.env())) as rt:
        actions.add_staff(rt, EMAIL, "Ada Lovelace", timezone="Europe/Berlin")
        yield rt


@pytest.fixture
def web(grt):
    with running_web(grt) as server:
        yield server


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser):
    context = browser.new_context()
    try:
        yield context.new_page()
    finally:
        context.close()


# -- the story ---------------------------------------------------------------------------


def answer_consent(google: FakeGoogle, consent_url: str, decision: str = "allow") -> dict:
    """What a person does on Google's consent screen, with requests: returns the redirect's query."""
    session = requests.Session()
    screen = session.get(consent_url, timeout=5)
    assert screen.status_code == 200, screen.text
    request_id = re.search(r'name="request" value="([^"]+)"', screen.text)
    assert request_id is not None, screen.text
    form = {
        "request": request_id.group(1),
        "decision": decision,
        "scope": re.findall(r'name="scope" value="([^"]+)"', screen.text),
    }
    answer = session.post(google.url + "/o/oauth2/v2/approve", data=form, allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    return dict(parse_qsl(urlsplit(answer.headers["Location"]).query))


class Story:
    """Ada connects her Google account by signing in."""

    def __init__(self, rt, google: FakeGoogle):
        self.rt = rt
        self.google = google
        self.conn_id = None

    def connect(self) -> dict:
        url = actions.oauth_connect_url(self.rt, EMAIL, "google")["url"]
        back = answer_consent(self.google, url)
        result = actions.oauth_callback(self.rt, "google", back.get("code", ""), back.get("state", ""), back.get("error", ""))
        self.conn_id = result["id"]
        return result

    def sync(self) -> dict:
        return actions.sync_now(self.rt, self.conn_id)[0]

    def status(self) -> dict:
        return actions.get_connection(self.rt, self.conn_id)

    def entries(self) -> list[dict]:
        return actions.list_entries(self.rt, self.conn_id)

    def book(self, start: dt.datetime, hours: float = 1, subject: str = "Coaching session") -> dict:
        return actions.book(self.rt, EMAIL, start.isoformat(), (start + dt.timedelta(hours=hours)).isoformat(), subject)

    def events(self, calendar_id: str = EMAIL) -> list[dict]:
        return self.google.events(calendar_id)

    def event_lists(self) -> list:
        return [c for c in self.google.api_calls("GET") if c.path.endswith("/events")]


@pytest.fixture
def story(grt, google):
    return Story(grt, google)


@pytest.fixture
def connected(story):
    story.connect()
    return story


def utc(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC)


def _z(value: dt.datetime) -> str:
    """A time as a feed entry shows it."""
    return utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- connecting --------------------------------------------------------------------------


def test_connect_from_the_connect_page_in_the_browser_by_allowing_access(grt, google, web, page):
    from playwright.sync_api import expect

    google.add_calendar("team-holidays@group.calendar.google.com", "Team holidays", role="reader")
    google.add_calendar("grace@example.com", "grace@example.com", role="freeBusyReader", summary_override="Grace")
    page.goto(actions.connect_link(grt, EMAIL)["url"])
    page.get_by_role("button", name="Sign in with Google").click()

    expect(page.get_by_text(EMAIL)).to_be_visible()
    query = dict(parse_qsl(urlsplit(page.url).query))
    assert query["code_challenge_method"] == "S256" and query["access_type"] == "offline"
    assert query["scope"] == CALENDAR_SCOPE
    expect(page.get_by_text(CALENDAR_SCOPE)).to_be_visible()
    page.get_by_role("button", name="Allow").click()

    expect(page.get_by_role("heading", name="Calendar connected")).to_be_visible()
    expect(page.get_by_text(f"Google Calendar account {EMAIL} is connected")).to_be_visible()
    expect(page.locator(".status")).to_have_text("Active")

    (conn,) = m.Connection.select()
    assert (conn.provider, conn.account, conn.status) == ("google", EMAIL, "active")
    changes = [(c.old, c.new) for c in m.StatusChange.select().order_by(m.StatusChange.id)]
    assert changes == [("", "pending"), ("pending", "active")]
    calendars = {c["name"]: c for c in actions.get_connection(grt, conn.id)["calendars"]}
    assert set(calendars) == {EMAIL, "Team holidays", "Grace"}
    assert calendars[EMAIL]["destination"] is True
    assert [n for n, c in calendars.items() if c["writable"]] == [EMAIL]
    # The tokens are stored encrypted, never in the clear.
    secrets_ = grt.vault.decrypt(conn.credentials)
    assert secrets_["refresh_token"].startswith("1//")
    assert secrets_["access_token"] not in conn.credentials and secrets_["refresh_token"] not in conn.credentials


def test_a_new_connection_counts_only_the_accounts_own_calendars_as_busy(story, google):
    """Issue 18: busy = every calendar the account owns. A colleague's calendar it may edit (writer), the
    holidays it reads and a colleague's free/busy are not its own: they block nothing until turned on."""
    google.add_calendar("team@group.calendar.google.com", "Team", role="writer")
    google.add_calendar("holidays@group.v.calendar.google.com", "Holidays", role="reader")
    google.add_calendar("grace@example.com", "grace@example.com", role="freeBusyReader", summary_override="Grace")
    google.add_calendar("side@group.calendar.google.com", "Side project", role="owner")
    google.add_event("team@group.calendar.google.com", "Team offsite", soon(2, 8), soon(2, 9))
    google.add_event("holidays@group.v.calendar.google.com", "Holiday", soon(3), soon(4), all_day=True)
    google.add_event("grace@example.com", "Grace busy", soon(2, 15), soon(2, 16))
    google.add_event("side@group.calendar.google.com", "Side work", soon(2, 10), soon(2, 11))
    story.connect()
    story.sync()

    roles = {r["name"]: r for r in actions.calendar_roles(story.rt, story.conn_id)}
    assert {n for n, r in roles.items() if r["busy"]} == {EMAIL, "Side project"}
    assert {n for n, r in roles.items() if r["write"]} == {EMAIL}
    assert {e["subject"] for e in story.entries()} == {"Side work"}
    lists = {c.path for c in story.event_lists()}
    assert not any("grace" in p or "holidays" in p or "team" in p for p in lists), "a calendar with no role is not read"

    actions.set_calendar_roles(story.rt, story.conn_id, "Grace", busy=True)
    story.sync()
    loaded = sorted((e["subject"], e["starts_at"]) for e in story.entries() if e["loaded"])
    assert loaded == sorted([("", _z(soon(2, 15))), ("Side work", _z(soon(2, 10)))])  # free/busy: times only


def test_an_account_with_two_writable_calendars_asks_which_one_and_only_the_signed_in_browser_may_choose(grt, google, web):
    from core.actions.links import CHOICE_MINUTES

    coaching = google.add_calendar("coaching@group.calendar.google.com", "Coaching")
    story = Story(grt, google)
    story.book(soon(), subject="Intro call")
    back = answer_consent(google, actions.oauth_connect_url(grt, EMAIL, "google")["url"])
    browser = requests.Session()
    step = browser.get(grt.settings.base_url + "/oauth/google/callback", params=back, timeout=10)
    assert step.status_code == 200 and "Choose the calendar for your appointments" in step.text
    (conn,) = m.Connection.select()
    assert conn.status == m.PENDING and conn.last_sync_at is None  # nothing written before the choice
    assert conn.next_sync_at >= clock.now() + dt.timedelta(minutes=CHOICE_MINUTES - 1)
    assert google.events(EMAIL) == [] and google.events(coaching) == []
    offered = {name: key for key, name in re.findall(r'<label for="calendar-(\d+)">([^<]*)</label>', step.text)}
    assert set(offered) == {EMAIL, "Coaching"}
    action = re.search(r'<form method="post" action="([^"]+)"', step.text).group(1)
    assert action == "/oauth/google/calendar"
    choice = {"csrf_token": csrf_of(step.text), "connection": str(conn.id), "calendar": offered["Coaching"]}

    stranger = requests.Session()  # another browser, without the sign-in: refused, nothing changes
    page = stranger.get(actions.connect_link(grt, EMAIL)["url"], timeout=10)
    refused = stranger.post(grt.settings.base_url + action, data={**choice, "csrf_token": csrf_of(page.text)}, timeout=10)
    assert refused.status_code == 410 and "Nothing was changed" in refused.text
    assert m.Calendar.get(m.Calendar.is_destination == True).name == EMAIL
    assert m.Connection.get_by_id(conn.id).last_sync_at is None

    done = browser.post(grt.settings.base_url + action, data=choice, timeout=10)
    assert done.status_code == 200 and "Calendar connected" in done.text
    assert 'Your appointments go to the calendar <strong class="wrap">Coaching</strong>' in done.text
    assert m.Connection.get_by_id(conn.id).status == m.ACTIVE
    assert [e["summary"] for e in google.events(coaching)] == ["Intro call"]
    assert google.events(EMAIL) == []
    again = browser.post(grt.settings.base_url + action, data={**choice, "calendar": offered[EMAIL]}, timeout=10)
    assert again.status_code == 410  # the choice is made once; later changes are /calsync primary
    assert m.Calendar.get(m.Calendar.is_destination == True).name == "Coaching"


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


def test_deny_on_the_consent_screen_says_so_and_connects_nothing(grt, google, web, page):
    from playwright.sync_api import expect

    page.goto(actions.oauth_connect_url(grt, EMAIL, "google")["url"])
    page.get_by_role("button", name="Deny").click()
    expect(page.get_by_role("heading", name="Sign-in did not work")).to_be_visible()
    expect(page.get_by_text("You did not allow calsync to use your calendar, so nothing was connected")).to_be_visible()
    assert m.Connection.select().count() == 0


def test_consent_without_the_calendar_permission_says_what_is_missing(grt, google, web, page):
    from playwright.sync_api import expect

    page.goto(actions.oauth_connect_url(grt, EMAIL, "google")["url"])
    page.get_by_role("checkbox").uncheck()  # granular consent: the calendar permission unticked
    page.get_by_role("button", name="Allow").click()
    expect(page.get_by_role("heading", name="Sign-in did not work")).to_be_visible()
    expect(page.get_by_text("missing a permission calsync needs")).to_be_visible()
    expect(page.get_by_text(CALENDAR_SCOPE)).to_be_visible()
    assert m.Connection.select().count() == 0


# -- reading -----------------------------------------------------------------------------


def test_an_invitation_ada_declined_leaves_her_time_free_and_a_tentative_one_blocks_it(story, google):
    """Google's answer of the calendar's own attendee (``self``) decides; another guest's does not."""
    hour = dt.timedelta(hours=1)
    start = soon(3, 9)
    boss = {"email": "boss@example.com", "responseStatus": "accepted"}
    google.add_event(
        EMAIL, "Declined review", start, start + hour, attendees=[boss, {"email": EMAIL.upper(), "responseStatus": "declined"}]
    )
    google.add_event(
        EMAIL, "Maybe lunch", start + 2 * hour, start + 3 * hour, attendees=[boss, {"email": EMAIL, "responseStatus": "tentative"}]
    )
    google.add_event(EMAIL, "Unanswered", start + 4 * hour, start + 5 * hour, attendees=[boss, {"email": EMAIL}])
    google.add_event(
        EMAIL, "Bob declined", start + 6 * hour, start + 7 * hour, attendees=[{"email": "bob@example.com", "responseStatus": "declined"}]
    )
    google.add_event(EMAIL, "Tentative hold", start + 8 * hour, start + 9 * hour, status="tentative")
    story.connect()
    entries = {e["subject"]: e for e in story.entries()}
    assert (entries["Declined review"]["loaded"], entries["Declined review"]["info"]) == (False, busy.INFO_DECLINED)
    expected = {
        "Maybe lunch": "accepted tentatively, counted as busy; last updated",
        "Unanswered": "invitation not answered yet, counted as busy; last updated",
        "Bob declined": "last updated",
        "Tentative hold": "tentative, counted as busy; last updated",
    }
    for subject, info in expected.items():
        assert entries[subject]["loaded"] is True and entries[subject]["info"].startswith(info), entries[subject]
    answer = actions.busy_times(story.rt, EMAIL, start.isoformat(), (start + 10 * hour).isoformat())
    assert [(b["start"], b["end"]) for b in answer["busy"]] == [
        (utc(start + n * hour).isoformat().replace("+00:00", "Z"), utc(start + (n + 1) * hour).isoformat().replace("+00:00", "Z"))
        for n in (2, 4, 6, 8)
    ]


def test_first_sync_loads_busy_events_skips_free_ones_and_expands_a_weekly_series(story, google):
    dentist = soon(3, 14)
    google.add_event(EMAIL, "Dentist", dentist, dentist + dt.timedelta(hours=1))
    focus = soon(3, 9)
    google.add_event(EMAIL, "Focus time", focus, focus + dt.timedelta(hours=2), transparent=True)
    standup = soon(1, 8)
    google.add_event(EMAIL, "Team standup", standup, standup + dt.timedelta(minutes=30), recurrence=["RRULE:FREQ=WEEKLY;COUNT=4"])
    google.add_event(EMAIL, "Conference", soon(5), soon(6), all_day=True)

    result = story.connect()
    assert result["first_sync"]["outcome"] == "ok" and result["status"] == "active"

    entries = story.entries()
    by_subject: dict[str, list] = {}
    for entry in entries:
        by_subject.setdefault(entry["subject"], []).append(entry)
    (dentist_entry,) = by_subject["Dentist"]
    assert dentist_entry["loaded"] is True and dentist_entry["info"].startswith("last updated")
    assert dentist_entry["starts_at"] == utc(dentist).isoformat().replace("+00:00", "Z")
    (focus_entry,) = by_subject["Focus time"]
    assert (focus_entry["loaded"], focus_entry["info"]) == (False, "marked free/available")
    standups = by_subject["Team standup"]
    assert len(standups) == 4 and all(e["loaded"] for e in standups)
    starts = [dt.datetime.fromisoformat(e["starts_at"]) for e in standups]
    assert [b - a for a, b in itertools.pairwise(starts)] == [dt.timedelta(days=7)] * 3
    (conference,) = by_subject["Conference"]
    assert (conference["loaded"], conference["info"]) == (False, "all-day event ignored by policy")
    # The first listing is the sync window, instances expanded, deletions shown.
    (listing,) = story.event_lists()
    assert listing.query["singleEvents"] == "true" and listing.query["showDeleted"] == "true"
    assert "timeMin" in listing.query and "timeMax" in listing.query and "syncToken" not in listing.query


def test_later_syncs_ask_only_for_changes_and_a_quiet_rerun_costs_two_requests(connected, google):
    lunch = soon(2, 12)
    google.add_event(EMAIL, "Lunch with Bob", lunch, lunch + dt.timedelta(hours=1))
    report = connected.sync()
    assert report["entries_read"] == 1
    listing = connected.event_lists()[-1]
    assert listing.query.get("syncToken")
    assert not {"timeMin", "timeMax"} & set(listing.query)
    assert [e["subject"] for e in connected.entries()] == ["Lunch with Bob"]

    report = connected.sync()
    assert report["outcome"] == "ok"
    assert report["entries_read"] == 0
    assert report["requests"] <= 2, report


def test_an_invalidated_sync_token_means_a_full_resync_not_an_error(connected, google):
    old = soon(2, 9)
    old_id = google.add_event(EMAIL, "Old meeting", old, old + dt.timedelta(hours=1))
    connected.sync()
    google.invalidate_sync_tokens()
    google.delete_event(EMAIL, old_id)
    new = soon(4, 9)
    google.add_event(EMAIL, "New meeting", new, new + dt.timedelta(hours=1))
    calls_before = len(connected.event_lists())

    report = connected.sync()
    assert report["outcome"] == "ok", report
    assert connected.status()["status"] == "active"
    assert m.Incident.select().count() == 0
    assert [e["subject"] for e in connected.entries()] == ["New meeting"]
    refused, full = connected.event_lists()[calls_before:]
    assert refused.query.get("syncToken") and "timeMin" in full.query and "syncToken" not in full.query
    assert connected.sync()["outcome"] == "ok"


def test_a_series_keeps_being_read_as_the_window_moves_on(connected, google, grt):
    """A sync token reports changes only: instances that merely came into the window are
    listed from the slice between the old and the new end of the window."""
    start = soon(1, 8)
    google.add_event(EMAIL, "Weekly review", start, start + dt.timedelta(hours=1), recurrence=["RRULE:FREQ=WEEKLY"])
    connected.sync()
    before = [e["starts_at"] for e in connected.entries() if e["loaded"]]
    old_end = clock.now() + dt.timedelta(days=grt.settings.sync_future_days)
    later = clock.now() + dt.timedelta(days=8)
    clock.set_now(lambda: later)
    # Read whole an hour ago (the daily full read, tested below, is not due): only changes and the slice.
    m.Calendar.update(full_read_at=later - dt.timedelta(hours=1)).execute()
    calls = len(connected.event_lists())

    report = connected.sync()
    assert report["outcome"] == "ok", report
    incremental, new_slice = connected.event_lists()[calls:]
    assert incremental.query.get("syncToken")
    assert abs(dt.datetime.fromisoformat(new_slice.query["timeMin"]) - old_end) < dt.timedelta(minutes=1)
    after = [e["starts_at"] for e in connected.entries() if e["loaded"]]
    assert len(after) == len(before) + 1
    assert dt.datetime.fromisoformat(after[-1]) > old_end
    # Within the day, nothing is listed twice.
    assert connected.sync()["requests"] <= 2


def test_a_calendar_is_read_whole_once_a_day_whatever_the_sync_token_says(connected, google, grt):
    start = soon(1, 8)
    google.add_event(EMAIL, "Planning", start, start + dt.timedelta(hours=1))
    connected.sync()
    calls = len(connected.event_lists())
    connected.sync()  # within the day: the sync token
    (incremental,) = connected.event_lists()[calls:]
    assert incremental.query.get("syncToken")
    later = clock.now() + dt.timedelta(hours=25)
    clock.set_now(lambda: later)
    calls = len(connected.event_lists())
    report = connected.sync()
    assert report["outcome"] == "ok", report
    (whole,) = connected.event_lists()[calls:]
    assert "syncToken" not in whole.query and whole.query.get("timeMin")
    assert [e["subject"] for e in connected.entries()] == ["Planning"]
    assert m.Calendar.get(m.Calendar.remote_id == EMAIL).full_read_at == later


def test_a_full_resync_keeps_appointments_that_left_the_window(connected, google, grt):
    booked = connected.book(soon(1), subject="Intro call")
    connected.sync()
    later = clock.now() + dt.timedelta(days=grt.settings.sync_past_days + 10)
    clock.set_now(lambda: later)
    google.invalidate_sync_tokens()
    report = connected.sync()
    assert report["outcome"] == "ok", report
    appointment = m.Appointment.get(m.Appointment.external_id == booked["id"])
    assert appointment.cancelled is False
    assert m.AppointmentLink.get().state == "synced"
    assert len(connected.events()) == 1


def test_calsync_own_event_read_back_is_an_echo(connected):
    connected.book(soon(), subject="Intro call")
    connected.sync()
    # A fresh full read (as after a resync) sees our event again.
    m.Calendar.update(ctag="", sync_token="").execute()
    m.RemoteObject.delete().execute()
    connected.sync()
    (entry,) = connected.entries()
    assert (entry["subject"], entry["loaded"], entry["info"]) == ("Intro call", False, "calsync appointment (echo)")


# -- writing -----------------------------------------------------------------------------


def test_a_booked_appointment_is_on_google_exactly_once_with_the_private_property(connected):
    start = soon(2, 10)
    booked = connected.book(start, subject="Intro call")
    report = connected.sync()
    assert report["created"] == 1, report
    (event,) = connected.events()
    assert event["id"] == "cs" + hashlib.sha256(booked["uid"].encode()).hexdigest()[:40] == event_id(booked["uid"])
    assert event["summary"] == "Intro call"
    assert event["extendedProperties"]["private"] == {"calsyncAppointment": booked["id"], "calsyncUid": booked["uid"]}
    assert event["start"] == {"dateTime": utc(start).strftime("%Y-%m-%dT%H:%M:%SZ"), "timeZone": "UTC"}
    link = m.AppointmentLink.get()
    assert link.href == f"{connected.google.url}/calendar/v3/calendars/{EMAIL}/events/{event['id']}"
    assert link.etag == event["etag"]
    assert connected.sync()["created"] == 0
    assert len(connected.events()) == 1


def test_a_crash_after_the_insert_still_leaves_one_event(connected, monkeypatch):
    connected.book(soon(), subject="Intro call")
    real_create = GoogleProvider._create

    def create_then_crash(self, *args, **kwargs):
        real_create(self, *args, **kwargs)
        raise RuntimeError("process killed after the insert")

    monkeypatch.setattr(GoogleProvider, "_create", create_then_crash)
    report = connected.sync()
    assert report["outcome"] == "failed" and "internal error" in report["error"]
    monkeypatch.setattr(GoogleProvider, "_create", real_create)
    report = connected.sync()
    assert report["outcome"] == "ok", report
    assert len(connected.events()) == 1
    assert m.AppointmentLink.get().state == "synced"


def test_an_external_time_edit_is_applied_back_to_the_appointment(connected, google):
    start = soon(2, 10)
    booked = connected.book(start, subject="Intro call")
    connected.sync()
    (event,) = connected.events()
    new_start = start + dt.timedelta(hours=3)
    google.edit_event(EMAIL, event["id"], start=new_start, end=new_start + dt.timedelta(hours=1))

    report = connected.sync()
    assert report["applied_back"] == 1, report
    appointment = m.Appointment.get(m.Appointment.external_id == booked["id"])
    assert appointment.starts_at == utc(new_start)
    assert appointment.version == 2
    assert m.AuditEntry.select().where(m.AuditEntry.action == "appointment.external_edit").count() == 1
    assert connected.sync()["updated"] == 0


def test_an_external_delete_cancels_the_appointment(connected, google):
    booked = connected.book(soon(), subject="Intro call")
    connected.sync()
    (event,) = connected.events()
    google.delete_event(EMAIL, event["id"])
    connected.sync()
    appointment = m.Appointment.get(m.Appointment.external_id == booked["id"])
    assert appointment.cancelled is True
    assert "deleted in the external calendar" in appointment.cancel_reason
    assert connected.events() == []
    assert connected.sync()["created"] == 0


# -- credentials -------------------------------------------------------------------------


def test_an_expired_access_token_is_refreshed_and_stored_encrypted(connected, google, grt):
    before = m.Connection.get_by_id(connected.conn_id).credentials
    old_token = grt.vault.decrypt(before)["access_token"]
    google.expire_access_tokens()

    report = connected.sync()
    assert report["outcome"] == "ok", report
    after = m.Connection.get_by_id(connected.conn_id).credentials
    assert after != before
    new_token = grt.vault.decrypt(after)["access_token"]
    assert new_token != old_token and google.current_access_tokens() == [new_token]
    assert new_token not in after
    assert [r["grant_type"] for r in google.token_requests] == ["authorization_code", "refresh_token"]
    assert connected.status()["status"] == "active"


def test_a_revoked_grant_needs_relink_and_the_browser_relink_delivers_what_was_booked(connected, google, grt, web, page):
    from playwright.sync_api import expect

    connected.sync()
    google.revoke_grant()
    connected.book(soon(), subject="Booked meanwhile")
    report = connected.sync()
    assert report["status"] == "relink_required", report
    status = connected.status()
    assert status["status"] == "relink_required"
    assert "no longer accepts calsync's access" in status["reason"]
    assert status["missed"] == 1
    assert m.Incident.select().count() == 1
    assert m.Notification.select().count() == 1
    change = m.StatusChange.select().order_by(m.StatusChange.id.desc()).get()
    assert (change.old, change.new) == ("active", "relink_required")
    assert "invalid_grant" in change.provider_answer

    link = actions.issue_relink(grt, connected.conn_id, via=())["url"]
    page.goto(link)
    expect(page.get_by_role("heading", name="Reconnect your calendar")).to_be_visible()
    page.get_by_role("button", name="Sign in with Google").click()
    expect(page.get_by_text(EMAIL).first).to_be_visible()
    page.get_by_role("button", name="Allow").click()
    expect(page.get_by_role("heading", name="Your calendar is connected again")).to_be_visible()
    expect(page.locator(".status")).to_have_text("Active")
    expect(page.get_by_text("1 appointment booked while it was broken was added")).to_be_visible()

    assert connected.status()["status"] == "active"
    assert connected.status()["missed"] == 0
    assert m.Connection.select().count() == 1
    assert m.Incident.get().resolved_at is not None
    assert [e["summary"] for e in connected.events()] == ["Booked meanwhile"]
    # The OAuth callback is one more way back to working: "reconnected" says what it delivered.
    (resolved,) = m.Notification.select().where(m.Notification.event == "incident.resolved")
    assert json.loads(resolved.payload)["delivered"] == 1


# -- broken calendars and rate limits ------------------------------------------------------


def test_a_read_only_calendar_marks_read_only_and_holds_appointments(connected, google):
    connected.sync()
    google.set_access_role(EMAIL, "reader")
    connected.book(soon(), subject="Intro call")
    report = connected.sync()
    assert report["status"] == "read_only", report
    assert "read-only" in connected.status()["reason"]
    assert connected.status()["missed"] == 1
    assert connected.events() == []
    google.set_access_role(EMAIL, "writer")
    report = connected.sync()
    assert report["status"] == "active"
    assert len(connected.events()) == 1


def test_a_write_refused_by_google_marks_read_only(connected, google, monkeypatch):
    """The calendar list still says "writer" but the write is refused (sharing changed meanwhile)."""
    connected.sync()
    connected.book(soon(), subject="Intro call")
    real_probe = GoogleProvider.probe

    def stale_probe(self, state):
        info = real_probe(self, state)
        google.set_access_role(EMAIL, "reader")
        info.writable = True
        return info

    monkeypatch.setattr(GoogleProvider, "probe", stale_probe)
    report = connected.sync()
    assert report["status"] == "read_only", report
    change = m.StatusChange.select().order_by(m.StatusChange.id.desc()).get()
    assert "requiredAccessLevel" in change.provider_answer


def test_a_deleted_destination_calendar_marks_calendar_missing(story, google, grt):
    google.add_calendar("coaching@group.calendar.google.com", "Coaching")
    story.connect()
    actions.set_destination(grt, story.conn_id, "Coaching")
    assert story.sync()["status"] == "active"
    google.delete_calendar("coaching@group.calendar.google.com")
    report = story.sync()
    assert report["status"] == "calendar_missing", report
    assert story.status()["reason"] == "the calendar no longer exists in Google Calendar"


@pytest.mark.parametrize("status, reason", [(429, "rateLimitExceeded"), (403, "rateLimitExceeded"), (403, "userRateLimitExceeded")])
def test_rate_limits_are_transient_and_change_no_status(connected, google, status, reason):
    connected.sync()
    changes = m.StatusChange.select().count()
    google.fail_next(2, status, reason)
    report = connected.sync()
    assert report["outcome"] == "transient", report
    assert "slow down" in report["error"]
    assert connected.status()["status"] == "active"
    assert m.StatusChange.select().count() == changes
    assert m.Incident.select().count() == 0
    google.failures.clear()
    assert connected.sync()["outcome"] == "ok"
