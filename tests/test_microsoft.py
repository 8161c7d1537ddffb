"""Microsoft 365 end to end: calsync against a local fake of Microsoft's sign-in and Graph v1.0.

Ada connects her Outlook calendar by signing in (in real headless Chromium where the
story is a browser's: connecting and relinking), her busy time is read through the
calendar-view delta, her appointments are written as Graph events carrying calsync's
extended properties, and every break (revoked grant, read-only calendar, deleted
calendar, expired delta token, throttling) ends in the status the SPEC names.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
import time
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import requests
from conftest import CHROMIUM_ARGS, chromium_path, running_web, soon, started, web_env
from fakes.microsoft_graph import GraphFake, weekly

import models as m
from core import actions, busy, clock
from core.providers.base import CalendarState
from core.providers.microsoft import APPOINTMENT_PROPERTY, UID_PROPERTY, MicrosoftProvider

EMAIL = "ada@example.com"
ACCOUNT = "ada.lovelace@contoso.example"
HOUR = dt.timedelta(hours=1)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def ms_rt(tmp_path, graph):
    """A runtime signed in to the fake, linking to its own web server's port."""
    with started(
        web_env(
            tmp_path,
            CALSYNC_MICROSOFT_CLIENT_ID="cid",
            CALSYNC_MICROSOFT_CLIENT_SECRET="csecret",
            CALSYNC_MICROSOFT_AUTH_URL=graph.authorize_url,
            CALSYNC_MICROSOFT_TOKEN_URL=graph.token_url,
            CALSYNC_MICROSOFT_API_URL=graph.api_url,
        )
    ) as rt:
        actions.add_staff(rt, EMAIL, "Ada Lovelace", timezone="Europe/Berlin")
        yield rt


@pytest.fixture
def web(ms_rt):
    """calsync's real web server (waitress) on the port its links name."""
    with running_web(ms_rt):
        yield ms_rt.settings.base_url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    chromium = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
    try:
        yield chromium
    finally:
        chromium.close()
        pw.stop()


@pytest.fixture
def page(browser):
    """A fresh browser tab; ``page.console_errors`` collects what its pages logged as errors."""
    context = browser.new_context()
    tab = context.new_page()
    tab.console_errors = []
    tab.on("console", lambda msg: tab.console_errors.append(msg.text) if msg.type == "error" else None)
    try:
        yield tab
    finally:
        context.close()


def console_errors(tab) -> list[str]:
    # A 404 favicon is an answer, not a fault; a CSP block would be.
    return [p for p in tab.console_errors if not p.startswith("Failed to load resource")]


class Ada:
    """Ada and her Microsoft 365 calendar, the way she uses calsync."""

    def __init__(self, rt, graph: GraphFake):
        self.rt = rt
        self.graph = graph
        self.conn_id = None

    def connect(self) -> dict:
        """Sign in through the consent page without a browser (HTTP), then calsync's callback."""
        url = actions.oauth_connect_url(self.rt, EMAIL, "microsoft")["url"]
        back = parse_qs(urlsplit(self.graph.consent_redirect(url)).query)
        result = actions.oauth_callback(self.rt, "microsoft", back.get("code", [""])[0], back["state"][0], back.get("error", [""])[0])
        self.conn_id = result["id"]
        return result

    def sync(self) -> dict:
        return actions.sync_now(self.rt, self.conn_id)[0]

    def status(self) -> dict:
        return actions.get_connection(self.rt, self.conn_id)

    def entries(self) -> list[dict]:
        return actions.list_entries(self.rt, self.conn_id)

    def book(self, start: dt.datetime, subject: str = "Coaching session", **extra) -> dict:
        return actions.book(self.rt, EMAIL, start.isoformat(), (start + HOUR).isoformat(), subject, **extra)

    def credentials(self) -> tuple[str, dict]:
        raw = m.Connection.get_by_id(self.conn_id).credentials
        return raw, self.rt.vault.decrypt(raw)


@pytest.fixture
def ada(ms_rt, graph):
    return Ada(ms_rt, graph)


@pytest.fixture
def connected(ada):
    ada.connect()
    return ada


def _utc(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


# -- connecting -------------------------------------------------------------------------------


def test_connecting_in_a_browser_goes_pending_then_active(ada, graph, web, page):
    from playwright.sync_api import expect

    start = soon(3, 14)
    graph.add_event("Dentist", start, start + HOUR)
    page.goto(actions.oauth_connect_url(ada.rt, EMAIL, "microsoft")["url"])
    expect(page.get_by_role("heading", name="Permissions requested")).to_be_visible()
    expect(page.get_by_text(ACCOUNT)).to_be_visible()
    expect(page.get_by_text("Calendars.ReadWrite")).to_be_visible()
    page.get_by_role("button", name="Accept").click()

    expect(page.get_by_role("heading", name="Calendar connected")).to_be_visible()
    expect(page.get_by_text(f"Microsoft 365 account {ACCOUNT} is connected")).to_be_visible()
    expect(page.locator(".status")).to_have_text("Active")
    assert page.url.startswith(web + "/oauth/microsoft/callback")

    conn = m.Connection.get()
    ada.conn_id = conn.id
    assert (conn.provider, conn.account, conn.status) == ("microsoft", ACCOUNT, "active")
    assert [(c.old, c.new) for c in m.StatusChange.select().order_by(m.StatusChange.id)] == [("", "pending"), ("pending", "active")]
    assert [(c["name"], c["destination"], c["writable"]) for c in ada.status()["calendars"]] == [("Calendar", True, True)]
    raw, secrets = ada.credentials()
    assert secrets["refresh_token"] and secrets["refresh_token"] not in raw and secrets["access_token"] not in raw
    (entry,) = ada.entries()
    assert (entry["subject"], entry["loaded"]) == ("Dentist", True)
    assert console_errors(page) == []


def test_discovery_reads_every_page_of_calendars_and_writes_to_the_default_one(ada, graph):
    graph.page_size = 1
    graph.add_calendar("Team (shared with me)", can_edit=False)
    graph.add_calendar("Birthdays", can_edit=False)
    result = ada.connect()
    assert result["status"] == "active", result
    assert sorted((c["name"], c["destination"], c["writable"]) for c in result["calendars"]) == [
        ("Birthdays", False, False),
        ("Calendar", True, True),
        ("Team (shared with me)", False, False),
    ]
    assert any("$skip=" in path for _, path in graph.requests)


def test_a_new_connection_counts_only_the_mailbox_s_own_calendars_as_busy(ada, graph):
    """Issue 18: busy = every calendar the account owns; Graph's ``owner`` names who shared a calendar, and
    holidays or birthdays cannot be edited. Those block nothing until turned on."""
    side = graph.add_calendar("Side project")
    team = graph.add_calendar("Grace's calendar", owner="grace@example.com")
    holidays = graph.add_calendar("United States holidays", can_edit=False)
    graph.add_event("Side work", soon(2, 10), soon(2, 10) + HOUR, calendar_id=side)
    graph.add_event("Grace busy", soon(2, 15), soon(2, 15) + HOUR, calendar_id=team)
    graph.add_event("Holiday", soon(3), soon(4), calendar_id=holidays, all_day=True)
    ada.connect()
    ada.sync()
    roles = {r["name"]: r for r in actions.calendar_roles(ada.rt, ada.conn_id)}
    assert {n for n, r in roles.items() if r["busy"]} == {"Calendar", "Side project"}
    assert {n for n, r in roles.items() if r["writable"]} == {"Calendar", "Side project", "Grace's calendar"}
    assert {e["subject"] for e in ada.entries()} == {"Side work"}

    actions.set_calendar_roles(ada.rt, ada.conn_id, "Grace's calendar", busy=True)
    ada.sync()
    assert {e["subject"] for e in ada.entries() if e["loaded"]} == {"Side work", "Grace busy"}


def test_connecting_an_account_with_two_writable_calendars_asks_which_one_from_the_signed_in_browser_only(ada, graph, web):
    from core.actions.links import CHOICE_MINUTES

    coaching = graph.add_calendar("Coaching")
    ada.book(soon(), "Intro call")
    browser = requests.Session()  # the connect page, "Sign in with Microsoft 365", consent, back to calsync
    link = actions.connect_link(ada.rt, EMAIL)["url"]
    form = browser.get(link, timeout=10).text
    action = re.search(r'<form method="post" action="([^"]+/oauth/microsoft)"', form).group(1)
    consent = browser.post(urljoin(link, action), data={"csrf_token": _csrf(form)}, allow_redirects=False, timeout=10)
    assert consent.status_code == 303
    step = browser.get(graph.consent_redirect(consent.headers["Location"]), timeout=10)
    assert step.status_code == 200 and "Choose the calendar for your appointments" in step.text
    assert "If you close this page, your appointments go to" in step.text
    conn = m.Connection.get()
    ada.conn_id = conn.id
    assert conn.status == m.PENDING and conn.last_sync_at is None
    assert conn.next_sync_at >= clock.now() + dt.timedelta(minutes=CHOICE_MINUTES - 1)
    offered = {name: key for key, name in re.findall(r'<label for="calendar-(\d+)">([^<]*)</label>', step.text)}
    assert set(offered) == {"Calendar", "Coaching"}
    choose = urljoin(web, re.search(r'<form method="post" action="([^"]+)"', step.text).group(1))
    choice = {"csrf_token": _csrf(step.text), "connection": str(conn.id), "calendar": offered["Coaching"]}

    with requests.Session() as stranger:  # no sign-in in this browser: refused, nothing changes
        other = stranger.get(actions.connect_link(ada.rt, EMAIL)["url"], timeout=10).text
        refused = stranger.post(choose, data={**choice, "csrf_token": _csrf(other)}, timeout=10)
    assert refused.status_code == 410 and "Nothing was changed" in refused.text
    assert [c["name"] for c in ada.status()["calendars"] if c["destination"]] == ["Calendar"]
    assert graph.live_events() == [] and graph.live_events(coaching) == []

    done = browser.post(choose, data=choice, timeout=10)
    assert done.status_code == 200 and "Calendar connected" in done.text
    assert 'Your appointments go to the calendar <strong class="wrap">Coaching</strong>' in done.text
    assert ada.status()["status"] == "active"
    assert [e.subject for e in graph.live_events(coaching)] == ["Intro call"]
    assert graph.live_events() == []

    # Signing in again (a relink) keeps the calendar chosen: no choose step.
    graph.revoke_grant()
    assert ada.sync()["status"] == "relink_required"
    relinked = _relink_over_http(browser, actions.issue_relink(ada.rt, ada.conn_id, via=())["url"], graph)
    assert relinked.status_code == 200 and "Your calendar is connected again" in relinked.text
    assert "Choose the calendar" not in relinked.text
    assert [c["name"] for c in ada.status()["calendars"] if c["destination"]] == ["Coaching"]


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


def test_an_account_without_a_mail_address_is_named_by_its_user_principal_name(ada, graph):
    graph.mail = None
    graph.user_principal_name = "ada_example.com#EXT#@contoso.onmicrosoft.com"
    assert ada.connect()["account"] == "ada_example.com#EXT#@contoso.onmicrosoft.com"


def test_a_consent_without_calendar_write_access_connects_nothing_and_says_why(ada, graph, web):
    graph.grant_only("offline_access", "User.Read", "Calendars.Read")
    url = actions.oauth_connect_url(ada.rt, EMAIL, "microsoft")["url"]
    answer = requests.get(graph.consent_redirect(url), timeout=10)
    assert answer.status_code == 400
    assert "Sign-in did not work" in answer.text
    assert "missing a permission calsync needs (Calendars.ReadWrite)" in answer.text
    assert "Nothing was changed." in answer.text
    assert m.Connection.select().count() == 0


def test_cancelling_the_consent_connects_nothing_and_says_so(ada, graph, web):
    url = actions.oauth_connect_url(ada.rt, EMAIL, "microsoft")["url"]
    answer = requests.get(graph.consent_redirect(url, accept=False), timeout=10)
    assert answer.status_code == 400
    assert "You did not allow calsync to use your calendar, so nothing was connected" in answer.text
    assert m.Connection.select().count() == 0


def test_the_connect_page_lets_its_microsoft_button_reach_the_sign_in_page(ada, graph, web):
    answer = requests.get(actions.connect_link(ada.rt, EMAIL)["url"], timeout=10)
    assert "Sign in with Microsoft 365" in answer.text
    form_action = next(p.strip() for p in answer.headers["Content-Security-Policy"].split(";") if p.strip().startswith("form-action"))
    assert graph.url in form_action


# -- reading busy time ---------------------------------------------------------------------


def test_first_sync_loads_busy_events_and_says_why_others_are_not(ada, graph):
    start = soon(3, 14)
    graph.add_event("Dentist", start, start + HOUR, location="Main street 1")
    graph.add_event("Focus time", start + 2 * HOUR, start + 4 * HOUR, show_as="free")
    graph.add_event("Conference", soon(4, 0), soon(5, 0), all_day=True)
    graph.add_event("Lunch (cancelled)", start + 5 * HOUR, start + 6 * HOUR, cancelled=True)
    ada.connect()
    entries = {e["subject"]: e for e in ada.entries()}
    dentist = entries["Dentist"]
    assert dentist["loaded"] is True and dentist["info"].startswith("last updated")
    assert (dentist["starts_at"], dentist["ends_at"]) == (_utc(start), _utc(start + HOUR))
    assert (entries["Focus time"]["loaded"], entries["Focus time"]["info"]) == (False, "marked free/available")
    assert (entries["Conference"]["loaded"], entries["Conference"]["info"]) == (False, "all-day event ignored by policy")
    assert (entries["Lunch (cancelled)"]["loaded"], entries["Lunch (cancelled)"]["info"]) == (False, "cancelled")


def test_show_as_and_the_owner_s_answer_decide_what_blocks_time(ada, graph):
    """Graph's showAs: free and workingElsewhere leave the time free; tentative, oof and busy block it.
    responseStatus.response is the mailbox owner's answer: declined leaves the time free."""
    start = soon(3, 8)
    cases = {
        "Working from the Berlin office": ("workingElsewhere", "organizer", False, busy.INFO_ELSEWHERE),
        "Holiday": ("oof", "organizer", True, "out of office; last updated"),
        "Maybe": ("tentative", "organizer", True, "tentative, counted as busy; last updated"),
        "Declined review": ("busy", "declined", False, busy.INFO_DECLINED),
        "Tentatively accepted": ("tentative", "tentativelyAccepted", True, "tentative, counted as busy; accepted tentatively"),
        "Not answered": ("busy", "notResponded", True, "invitation not answered yet, counted as busy; last updated"),
        "Accepted": ("busy", "accepted", True, "last updated"),
    }
    for n, (subject, (show_as, response, _, _)) in enumerate(cases.items()):
        graph.add_event(subject, start + n * HOUR, start + (n + 1) * HOUR, show_as=show_as, response=response)
    ada.connect()
    entries = {e["subject"]: e for e in ada.entries()}
    for subject, (_, _, loaded, info) in cases.items():
        assert entries[subject]["loaded"] is loaded and entries[subject]["info"].startswith(info), entries[subject]
    answer = actions.busy_times(ada.rt, EMAIL, start.isoformat(), (start + len(cases) * HOUR).isoformat())
    blocking = [n for n, (_, _, loaded, _) in enumerate(cases.values()) if loaded]
    assert [(b["start"], b["end"]) for b in answer["busy"]] == [
        (_utc(start + 1 * HOUR), _utc(start + 3 * HOUR)),
        (_utc(start + 4 * HOUR), _utc(start + 7 * HOUR)),
    ], blocking


def test_incremental_sync_follows_the_delta_link_and_a_quiet_rerun_costs_two_requests(connected, graph):
    start = soon(2, 15)
    graph.add_event("Dentist", start, start + HOUR)
    report = connected.sync()
    assert report["outcome"] == "ok"
    assert [e["subject"] for e in connected.entries()] == ["Dentist"]
    assert "$deltatoken=" in [path for _, path in graph.requests if "/calendarView/delta" in path][-1]
    report = connected.sync()
    assert report["requests"] <= 2, report
    assert report["created"] == report["updated"] == report["deleted"] == 0


def test_a_long_first_listing_is_read_page_by_page(ada, graph):
    graph.page_size = 2
    for day in range(1, 6):
        graph.add_event(f"Meeting {day}", soon(day, 9), soon(day, 10))
    ada.connect()
    assert [e["subject"] for e in ada.entries()] == [f"Meeting {d}" for d in range(1, 6)]
    assert sum("$skiptoken=" in path for _, path in graph.requests) == 2


def test_a_weekly_series_is_read_as_its_occurrences(connected, graph):
    start = soon(1, 8)
    graph.add_event("Team standup", start, start + dt.timedelta(minutes=30), recurrence=weekly(4))
    connected.sync()
    entries = connected.entries()
    assert [e["subject"] for e in entries] == ["Team standup"] * 4
    assert all(e["loaded"] for e in entries)
    starts = [dt.datetime.fromisoformat(e["starts_at"]) for e in entries]
    assert [b - a for a, b in itertools.pairwise(starts)] == [dt.timedelta(days=7)] * 3


def test_an_outside_delete_removes_the_busy_entry(connected, graph):
    start = soon(2, 15)
    dentist = graph.add_event("Dentist", start, start + HOUR)
    connected.sync()
    graph.delete_event(dentist)
    connected.sync()
    assert connected.entries() == []


def test_an_outside_event_moved_beyond_the_window_stops_blocking_time(connected, graph):
    start = soon(2, 15)
    dentist = graph.add_event("Dentist", start, start + HOUR)
    connected.sync()
    graph.edit_event(dentist, start=soon(200, 15), end=soon(200, 16))
    connected.sync()
    assert connected.entries() == []


def test_a_new_round_starts_when_the_sync_window_moves(connected, graph):
    far = soon(99, 9)  # beyond this week's window (the engine's 90 days, rounded up to a week)
    graph.add_event("Far away", far, far + HOUR)
    connected.sync()
    assert connected.entries() == []
    later = clock.now() + dt.timedelta(days=10)
    clock.set_now(lambda: later)
    connected.sync()
    (entry,) = connected.entries()
    assert (entry["subject"], entry["loaded"]) == ("Far away", True)


def test_an_expired_delta_token_means_a_full_resync_not_an_error(connected, graph):
    start = soon(2, 15)
    graph.add_event("First", start, start + HOUR)
    second = graph.add_event("Second", start + 2 * HOUR, start + 3 * HOUR)
    connected.sync()
    graph.expire_delta_tokens()
    graph.delete_event(second)
    graph.add_event("Third", start + 4 * HOUR, start + 5 * HOUR)
    report = connected.sync()
    assert report["outcome"] == "ok", report
    assert report["status"] == "active"
    assert [e["subject"] for e in connected.entries()] == ["First", "Third"]
    assert any(status == 410 and path.endswith("/delta") for _, path, status in graph.answers)


# -- writing appointments ---------------------------------------------------------------------


def test_a_booked_appointment_is_written_once_with_calsyncs_properties(connected, graph):
    start = soon(2, 10)
    booked = connected.book(start, "Intro call", description="Bring the contract", location="Room 4")
    report = connected.sync()
    assert report["created"] == 1, report
    (event,) = graph.live_events()
    assert (event.subject, event.body, event.body_type, event.location, event.show_as) == (
        "Intro call",
        "Bring the contract",
        "text",
        "Room 4",
        "busy",
    )
    assert (event.start, event.end) == (start.astimezone(dt.UTC), (start + HOUR).astimezone(dt.UTC))
    assert event.properties == {APPOINTMENT_PROPERTY: booked["id"], UID_PROPERTY: booked["uid"]}
    assert event.transaction_id.startswith("calsync-")
    report = connected.sync()
    assert report["created"] == report["updated"] == 0
    assert len(graph.live_events()) == 1


def test_calsyncs_own_event_read_back_is_an_echo_not_busy_time(connected, graph):
    booked = connected.book(soon(), "Intro call")
    connected.sync()
    # The same event seen again by a fresh full read (as after a resync).
    m.Calendar.update(ctag="", sync_token="").execute()
    m.RemoteObject.delete().execute()
    connected.sync()
    (entry,) = connected.entries()
    assert (entry["subject"], entry["loaded"], entry["info"]) == ("Intro call", False, "calsync appointment (echo)")
    # Any reader of the calendar, even one without calsync's records, sees the appointment property.
    provider = connected.rt.provider_for(m.Connection.get_by_id(connected.conn_id))
    (item,) = provider.changes(CalendarState(remote_id=graph.default_calendar_id)).items
    assert f"X-CALSYNC-APPOINTMENT:{booked['id']}" in item.data


class _CrashAfterPost(Exception):
    pass


def test_a_crash_after_the_post_still_leaves_one_event(connected, graph, monkeypatch):
    connected.book(soon(), "Intro call")
    real_create = MicrosoftProvider._create

    def create_then_crash(self, *args, **kwargs):
        real_create(self, *args, **kwargs)
        raise _CrashAfterPost("process killed after the POST")

    monkeypatch.setattr(MicrosoftProvider, "_create", create_then_crash)
    report = connected.sync()
    assert report["outcome"] == "failed" and "internal error" in report["error"]
    assert len(graph.live_events()) == 1
    monkeypatch.setattr(MicrosoftProvider, "_create", real_create)
    report = connected.sync()
    assert report["outcome"] == "ok", report
    assert (report["created"], report["updated"]) == (0, 1)
    assert len(graph.live_events()) == 1
    assert m.AppointmentLink.get().state == "synced"
    (entry,) = connected.entries()
    assert entry["info"] == "calsync appointment (echo)"


def test_an_external_time_edit_is_applied_back_to_the_appointment(connected, graph):
    start = soon(2, 10)
    booked = connected.book(start, "Intro call", description="Agenda: pricing")
    connected.sync()
    (event,) = graph.live_events()
    new_start = start + 3 * HOUR
    graph.edit_event(event.id, start=new_start, end=new_start + HOUR)  # Outlook also turns the body into HTML
    report = connected.sync()
    assert report["applied_back"] == 1, report
    appointment = m.Appointment.get(m.Appointment.external_id == booked["id"])
    assert appointment.starts_at == new_start.astimezone(dt.UTC)
    assert appointment.description == "Agenda: pricing"
    assert appointment.version == 2
    assert m.AuditEntry.select().where(m.AuditEntry.action == "appointment.external_edit").count() == 1
    # Applying it back writes nothing more to the calendar.
    assert connected.sync()["updated"] == 0


def test_moving_an_appointment_beyond_the_sync_window_is_an_edit_not_a_deletion(connected, graph):
    booked = connected.book(soon(), "Intro call")
    connected.sync()
    (event,) = graph.live_events()
    far = soon(200, 10)
    graph.edit_event(event.id, start=far, end=far + HOUR)
    report = connected.sync()
    assert report["applied_back"] == 1, report
    appointment = m.Appointment.get(m.Appointment.external_id == booked["id"])
    assert appointment.cancelled is False
    assert appointment.starts_at == far.astimezone(dt.UTC)


def test_a_full_round_keeps_appointments_outside_the_window(connected, graph):
    booked = connected.book(soon(120, 10), "Far appointment")  # pushed whatever its date, read only inside the window
    connected.sync()
    assert len(graph.live_events()) == 1
    graph.expire_delta_tokens()
    report = connected.sync()  # a full listing, which does not name the far appointment
    assert report["outcome"] == "ok", report
    assert m.Appointment.get(m.Appointment.external_id == booked["id"]).cancelled is False
    assert m.AppointmentLink.get().state == "synced"
    assert len(graph.live_events()) == 1
    # One listing of calsync's own events answered for it, not a request per event.
    assert any("ep/value ne ''" in path for _, path in graph.requests)


def test_an_external_delete_cancels_the_appointment(connected, graph):
    booked = connected.book(soon(), "Intro call")
    connected.sync()
    (event,) = graph.live_events()
    graph.delete_event(event.id)
    connected.sync()
    appointment = m.Appointment.get(m.Appointment.external_id == booked["id"])
    assert appointment.cancelled is True
    assert "deleted in the external calendar" in appointment.cancel_reason
    assert graph.live_events() == []
    assert connected.sync()["created"] == 0


def test_writes_are_conditional_and_say_what_went_wrong(connected, graph):
    from core.providers.base import NotFound, PreconditionFailed, WriteForbidden

    booked = connected.book(soon(), "Intro call")
    connected.sync()
    link = m.AppointmentLink.get()
    provider = connected.rt.provider_for(m.Connection.get_by_id(connected.conn_id))
    current = provider.get(link.href)
    assert current.etag == link.etag and f"X-CALSYNC-APPOINTMENT:{booked['id']}" in current.data
    data = current.data.replace("SUMMARY:Intro call", "SUMMARY:Intro call (moved)")
    with pytest.raises(PreconditionFailed):
        provider.update(link.href, data, 'W/"an-older-version"')
    with pytest.raises(PreconditionFailed):
        provider.delete(link.href, 'W/"an-older-version"')
    new_etag = provider.update(link.href, data, link.etag)
    assert new_etag != link.etag and [e.subject for e in graph.live_events()] == ["Intro call (moved)"]
    provider.delete(link.href, new_etag)
    provider.delete(link.href, new_etag)  # already gone: not an error
    with pytest.raises(NotFound):
        provider.get(link.href)
    with pytest.raises(NotFound):
        provider.update(link.href, data, "")
    graph.set_can_edit(False)
    with pytest.raises(WriteForbidden):
        provider.create(graph.default_calendar_id, "calsync-x@calsync", data)


def test_stopping_the_sync_removes_calsyncs_events(connected, graph):
    connected.book(soon(), "Intro call")
    connected.sync()
    assert len(graph.live_events()) == 1
    actions.stop_sync(connected.rt, connected.conn_id)
    assert graph.live_events() == []


# -- tokens and breaks --------------------------------------------------------------------------


def test_an_expired_access_token_is_renewed_and_stored_encrypted(connected, graph):
    _, before = connected.credentials()
    graph.expire_access_tokens()
    report = connected.sync()
    assert report["outcome"] == "ok", report
    raw, after = connected.credentials()
    assert after["access_token"] != before["access_token"] and after["access_token"] in graph.access_tokens
    assert after["access_token"] not in raw and after["refresh_token"] not in raw
    assert graph.token_requests == ["authorization_code", "refresh_token"]
    assert [status for _, _, status in graph.answers].count(401) == 1


def test_a_token_about_to_expire_is_renewed_before_it_is_used(connected, graph):
    _, secrets = connected.credentials()
    secrets["expires_at"] = time.time() + 30
    m.Connection.update(credentials=connected.rt.vault.encrypt(secrets)).where(m.Connection.id == connected.conn_id).execute()
    assert connected.sync()["outcome"] == "ok"
    assert graph.token_requests == ["authorization_code", "refresh_token"]
    assert 401 not in [status for _, _, status in graph.answers]


def _break_by_revoking(ada: Ada, graph: GraphFake) -> None:
    ada.sync()
    graph.revoke_grant()
    ada.book(soon(), "Booked meanwhile")
    assert ada.sync()["status"] == "relink_required"


def _relink_over_http(session: requests.Session, link: str, graph: GraphFake) -> requests.Response:
    form = session.get(link, timeout=10)
    assert "Sign in with Microsoft 365" in form.text
    action_found = re.search(r'<form method="post" action="([^"]+/oauth)"', form.text)
    csrf_found = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert action_found is not None and csrf_found is not None, form.text
    action, csrf = action_found.group(1), csrf_found.group(1)
    consent = session.post(urljoin(link, action), data={"csrf_token": csrf}, allow_redirects=False, timeout=10)
    assert consent.status_code == 303 and consent.headers["Location"].startswith(graph.authorize_url)
    return session.get(graph.consent_redirect(consent.headers["Location"]), timeout=10)


def test_a_revoked_grant_needs_relink_with_one_incident_and_one_notification(connected, graph, web):
    _break_by_revoking(connected, graph)
    assert "no longer accepts calsync's access" in connected.status()["reason"]
    change = m.StatusChange.select().order_by(m.StatusChange.id.desc()).get()
    assert (change.old, change.new) == ("active", "relink_required")
    assert "invalid_grant" in change.provider_answer and "AADSTS50173" in change.provider_answer
    connected.sync()  # the same break again: nobody is told twice
    assert m.Incident.select().count() == 1
    assert m.Notification.select().where(m.Notification.event == "incident.opened").count() == 1
    assert connected.status()["missed"] == 1

    # The relink link, followed over plain HTTP: page -> "Sign in" -> consent -> callback.
    link = actions.issue_relink(connected.rt, connected.conn_id, via=())["url"]
    with requests.Session() as session:
        done = _relink_over_http(session, link, graph)
        assert session.get(link, timeout=10).status_code == 410  # the link is spent
    assert done.status_code == 200, done.text
    assert "Your calendar is connected again" in done.text
    assert "1 appointment booked while it was broken was added" in done.text

    status = connected.status()
    assert (status["status"], status["id"], status["missed"]) == ("active", connected.conn_id, 0)
    assert m.Incident.get().resolved_at is not None
    assert [e.subject for e in graph.live_events()] == ["Booked meanwhile"]


def test_relinking_in_a_browser_after_a_revoked_grant_delivers_the_missed(connected, graph, web, page):
    from playwright.sync_api import expect

    _break_by_revoking(connected, graph)
    page.goto(actions.issue_relink(connected.rt, connected.conn_id, via=())["url"])
    expect(page.get_by_role("heading", name="Reconnect your calendar")).to_be_visible()
    page.get_by_role("button", name="Sign in with Microsoft 365").click()
    expect(page.get_by_role("heading", name="Permissions requested")).to_be_visible(timeout=3000)
    page.get_by_role("button", name="Accept").click()
    expect(page.get_by_role("heading", name="Your calendar is connected again")).to_be_visible()
    expect(page.locator(".status")).to_have_text("Active")
    expect(page.get_by_text("1 appointment booked while it was broken was added")).to_be_visible()
    assert connected.status()["status"] == "active"
    assert [e.subject for e in graph.live_events()] == ["Booked meanwhile"]
    assert console_errors(page) == []


def test_a_calendar_made_read_only_marks_read_only_and_holds_writes(connected, graph):
    graph.set_can_edit(False)
    connected.book(soon(), "Intro call")
    report = connected.sync()
    assert report["status"] == "read_only", report
    assert connected.status()["missed"] == 1
    assert graph.live_events() == []
    test = actions.test_connection(connected.rt, connected.conn_id)
    assert test["ok"] is False and test["status"] == "read_only"
    assert {c["check"]: c["ok"] for c in test["checks"]}["write"] is False
    graph.set_can_edit(True)
    report = connected.sync()
    assert report["status"] == "active", report
    assert len(graph.live_events()) == 1
    assert actions.test_connection(connected.rt, connected.conn_id)["ok"] is True


def test_a_deleted_destination_calendar_marks_calendar_missing(connected, graph):
    graph.delete_calendar()
    report = connected.sync()
    assert report["status"] == "calendar_missing", report
    assert "no longer exists" in connected.status()["reason"]


def test_throttling_is_retried_after_the_time_graph_asks_for(connected, graph):
    graph.fail_next(1, 429, retry_after="1")
    started = time.monotonic()
    report = connected.sync()
    assert time.monotonic() - started >= 1.0
    assert report["outcome"] == "ok", report
    assert [status for _, _, status in graph.answers].count(429) == 1


def test_an_outage_that_outlasts_the_retries_is_transient_and_changes_no_status(connected, graph):
    graph.fail_next(2, 503, retry_after="0")  # CALSYNC_HTTP_RETRIES=1: two tries, both fail
    report = connected.sync()
    assert report["outcome"] == "transient", report
    status = connected.status()
    assert status["status"] == "active"
    assert "Microsoft 365 is having trouble (HTTP 503" in status["last_error"]
    assert m.StatusChange.select().count() == 2
    assert connected.sync()["outcome"] == "ok"
