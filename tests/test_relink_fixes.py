"""The relink page fixes what broke, whatever broke, seen from outside.

Each test is one story: something breaks on a real CalDAV server (Radicale,
Xandikos), calsync notices on a sync, Ada opens the link from the alert and
uses the page (plain HTTP against calsync's real waitress server, or real
headless Chromium), and afterwards we check what she would notice: the words
on the page, the status, and the events on the CalDAV server.

=================  =========================================================
status             what the page must offer, and what must happen
=================  =========================================================
relink_required    the new password; a wrong one says why and keeps the link
calendar_missing   a picker of writable calendars, no password
read_only          what to change, a picker (or "no other calendar"), a test
unreachable        "nothing to do, calsync keeps trying", and a test
=================  =========================================================
"""

from __future__ import annotations

import datetime as dt
import html
import re
import threading
import time

import pytest
import requests
from conftest import CHROMIUM_ARGS, Story, chromium_path, running_web, soon, started, web_env

from core import actions, clock

NEW_PASSWORD = "new-pass-1"
LONG_NAME = "Coaching sessions with clients (shared with the Berlin team)"
# Some providers name a calendar by an address: one long word that must wrap, not push the page sideways.
ADDRESS_NAME = "ada.lovelace.coaching-and-mentoring@berlin-office.example-company.com"


# --------------------------------------------------------------------------- the web server


@pytest.fixture
def web_rt(tmp_path):
    """A runtime whose links point at the port its own web server listens on."""
    with started(web_env(tmp_path)) as rt:
        yield rt


@pytest.fixture
def web(web_rt):
    with running_web(web_rt) as server:
        yield server


@pytest.fixture
def ada(web_rt, caldav, web):
    """Ada with one working CalDAV connection (primary calendar "Work"), synced once."""
    story = Story(web_rt, caldav)
    story.sync()
    assert story.status()["status"] == "active"
    return story


# --------------------------------------------------------------------------- a visitor


def words(answer: requests.Response) -> str:
    """The page as a person reads it: no tags, entities decoded, whitespace collapsed."""
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", answer.text, flags=re.DOTALL)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


class Visitor:
    """Ada's browser, in plain HTTP: one cookie jar, forms sent with the token of the page they came from."""

    def __init__(self, url: str):
        self.url = url
        self.http = requests.Session()
        self.http.trust_env = False  # loopback only, never a proxy
        self.last: requests.Response | None = None
        self.sent: tuple[str, dict] | None = None

    def open(self) -> requests.Response:
        self.last = self.http.get(self.url, timeout=30, allow_redirects=False)
        return self.last

    def send(self, action: str = "", **fields) -> requests.Response:
        """Submit the form of the page open now whose action ends in ``action``."""
        assert self.last is not None, "open the page first"
        form = self.form(action)
        found = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert found is not None, form
        token = found.group(1)
        self.sent = (action, {"csrf_token": token, **fields})
        return self.resend()

    def resend(self) -> requests.Response:
        """The last form once more, as Reload on the result page does ("Resubmit the form?")."""
        assert self.sent is not None, "send a form first"
        action, data = self.sent
        self.last = self.http.post(self.url + action, data=data, timeout=60, allow_redirects=False)
        return self.last

    def page(self) -> requests.Response:
        """The page open now."""
        if self.last is None:
            raise RuntimeError("open the page first")  # not an AssertionError, which has_form reads as "no such form"
        return self.last

    def form(self, action: str = "") -> str:
        path = self.url.split("://", 1)[1].split("/", 1)[1]
        page = self.page()
        for form in re.findall(r"<form\b.*?</form>", page.text, flags=re.DOTALL):
            if f'action="/{path}{action}"' in form:
                return form
        raise AssertionError(f"the page has no form for /relink/…{action}:\n{words(page)}")

    def has_form(self, action: str = "") -> bool:
        try:
            self.form(action)
        except AssertionError:
            return False
        return True

    def calendars_offered(self) -> dict[str, str]:
        """Label -> value of the calendar radio buttons on the page open now."""
        text = self.page().text
        radios = dict(re.findall(r'<input type="radio" id="(calendar-\d+)" name="calendar" value="(\d+)"', text))
        labels = dict(re.findall(r'<label for="(calendar-\d+)">([^<]*)</label>', text))
        return {html.unescape(labels[rid]): value for rid, value in radios.items()}


def relink_link(story) -> str:
    """The link of the alert, as the staff member gets it."""
    url = actions.issue_relink(story.rt, story.conn_id, via=("email",))["url"]
    assert url.startswith(story.rt.settings.base_url + "/relink/")
    return url


def summaries(server, calendar_url: str) -> list[str]:
    """The SUMMARY of every event on a calendar of the CalDAV server."""
    found = []
    for ics in server.list_events(calendar_url).values():
        found += re.findall(r"^SUMMARY:(.*?)\r?$", ics.replace("\r\n ", ""), flags=re.MULTILINE)
    return sorted(found)


def assert_private(answer: requests.Response) -> None:
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert answer.headers["Cache-Control"] == "no-store"


def assert_connected_again(answer: requests.Response, delivered: int) -> None:
    assert answer.status_code == 200, words(answer)
    assert_private(answer)
    text = words(answer)
    assert "Your calendar is connected again" in text
    assert "Status: Active" in text
    if delivered == 1:
        assert "1 appointment booked while it was broken was added to your calendar" in text
    else:
        assert f"{delivered} appointments booked while it was broken were added to your calendar" in text
    assert "the link you used no longer works" in text


def assert_spent(visitor: Visitor) -> None:
    """The link is used up: opening it again, or reloading the result page, says so and does nothing."""
    reloaded = visitor.resend()
    assert reloaded.status_code == 410
    assert "already used" in words(reloaded)
    again = visitor.open()
    assert again.status_code == 410
    assert "already used" in words(again)


# --------------------------------------------------------------------------- relink_required


def test_a_changed_password_is_asked_for_tested_and_fixes_the_connection(ada):
    ada.server.set_password(NEW_PASSWORD)
    ada.book(soon(), subject="Booked meanwhile")
    ada.sync()
    assert ada.status()["status"] == "relink_required"

    visitor = Visitor(relink_link(ada))
    page = visitor.open()
    assert page.status_code == 200
    assert_private(page)
    text = words(page)
    assert "Hello Ada Lovelace" in text and ada.server.username in text
    assert "Status Needs reconnecting" in text
    assert "rejected the username or password" in text
    assert "1 appointment booked meanwhile will be added" in text
    assert "Enter the new password" in text and 'type="password"' in page.text
    assert not visitor.has_form("/calendar")

    wrong = visitor.send(password="still-wrong")
    assert wrong.status_code == 422
    assert_private(wrong)
    text = words(wrong)
    assert "That did not work. The new credentials do not work" in text
    assert "Nothing was changed" in text
    assert 'type="password"' in wrong.text  # the form is there to try again
    assert ada.status()["status"] == "relink_required"
    assert visitor.open().status_code == 200  # the link still works

    assert_connected_again(visitor.send(password=NEW_PASSWORD), delivered=1)
    assert ada.status()["status"] == "active"
    assert summaries(ada.server, ada.calendar_url) == ["Booked meanwhile"]
    assert_spent(visitor)


# --------------------------------------------------------------------------- calendar_missing


def test_a_deleted_calendar_is_replaced_by_picking_another_without_a_password(ada):
    personal = ada.server.make_calendar("personal", "Personal")
    ada.book(soon(3), subject="Booked before")
    ada.sync()
    assert summaries(ada.server, ada.calendar_url) == ["Booked before"]
    ada.server.delete_calendar(ada.calendar_url)
    ada.sync()
    assert ada.status()["status"] == "calendar_missing"
    ada.book(soon(), subject="Booked meanwhile")

    visitor = Visitor(relink_link(ada))
    page = visitor.open()
    assert page.status_code == 200
    assert_private(page)
    text = words(page)
    assert "Status Calendar missing" in text
    assert "no longer exists" in text
    assert "Choose a new calendar for your appointments" in text
    assert "Your password is fine" in text
    assert 'type="password"' not in page.text and "New password" not in text
    offered = visitor.calendars_offered()
    assert list(offered) == ["Personal"]  # the deleted "Work" is not offered
    # Both appointments are off her calendars now: the one booked meanwhile, and the one that went with "Work".
    assert "2 appointments booked meanwhile will be added" in text

    done = visitor.send("/calendar", calendar=offered["Personal"])
    assert_connected_again(done, delivered=2)
    assert ada.status()["status"] == "active"
    assert summaries(ada.server, personal) == ["Booked before", "Booked meanwhile"]
    assert_spent(visitor)


def test_a_calendar_that_cannot_be_used_is_refused_and_the_link_kept(ada):
    ada.server.make_calendar("personal", "Personal")
    ada.server.delete_calendar(ada.calendar_url)
    ada.sync()
    assert ada.status()["status"] == "calendar_missing"

    visitor = Visitor(relink_link(ada))
    visitor.open()
    refused = visitor.send("/calendar", calendar="999999")
    assert refused.status_code == 422
    text = words(refused)
    assert "That did not work" in text and "Nothing was changed" in text
    assert list(visitor.calendars_offered()) == ["Personal"]  # the picker is there to choose again
    assert ada.status()["status"] == "calendar_missing"
    assert visitor.open().status_code == 200


def test_the_relink_page_also_says_which_calendars_block_time_and_which_others_are_written(ada):
    """Issue 18 on the relink page: the role boxes under the picker go with the new primary, all checked
    first (a wrong box changes nothing)."""
    personal = ada.server.make_calendar("personal", "Personal")
    team = ada.server.make_calendar("team", "Team")
    ada.server.delete_calendar(ada.calendar_url)
    ada.sync()
    ada.book(soon(), subject="Booked meanwhile")
    visitor = Visitor(relink_link(ada))
    page = visitor.open()
    boxes = dict(re.findall(r'<input type="checkbox" id="(busy|write)-(\d+)"', page.text))
    assert set(boxes) == {"busy", "write"}, "both kinds of role box are offered"
    offered = visitor.calendars_offered()

    refused = visitor.send("/calendar", calendar=offered["Personal"], roles="1", busy=["999999"])
    assert refused.status_code == 422 and "Nothing was changed" in words(refused)
    assert ada.status()["status"] == "calendar_missing"

    visitor.open()
    done = visitor.send("/calendar", calendar=offered["Personal"], roles="1", busy=[offered["Personal"]], write=[offered["Team"]])
    assert_connected_again(done, delivered=1)
    roles = {r["name"]: (r["primary"], r["busy"], r["write"]) for r in actions.calendar_roles(ada.rt, ada.conn_id)}
    assert roles == {"Personal": (True, True, True), "Team": (False, False, True)}
    assert summaries(ada.server, personal) == ["Booked meanwhile"]
    ada.sync()
    assert summaries(ada.server, team) == ["Booked meanwhile"], "the extra write calendar gets it too"


def test_a_calendar_created_after_reading_the_page_is_offered_on_test_again(ada):
    """No other calendar yet: the page says to create one and test again, and that works."""
    ada.server.delete_calendar(ada.calendar_url)
    ada.sync()
    ada.book(soon(), subject="Booked meanwhile")

    visitor = Visitor(relink_link(ada))
    text = words(visitor.open())
    assert visitor.calendars_offered() == {}
    assert "This account has no other calendar calsync may write to" in text
    assert "Create one at your calendar provider" in text and "then test again" in text

    created = ada.server.make_calendar("new", "New calendar")
    still = visitor.send("/test")
    assert still.status_code == 200
    text = words(still)
    assert "The calendar is not working yet" in text and "Status: Calendar missing" in text
    offered = visitor.calendars_offered()
    assert list(offered) == ["New calendar"]
    assert_connected_again(visitor.send("/calendar", calendar=offered["New calendar"]), delivered=1)
    assert summaries(ada.server, created) == ["Booked meanwhile"]
    assert_spent(visitor)


def test_the_deleted_calendar_restored_at_the_provider_is_found_by_test_again(ada):
    ada.book(soon(3), subject="Booked before")
    ada.sync()
    ada.server.delete_calendar(ada.calendar_url)
    ada.sync()
    assert ada.status()["status"] == "calendar_missing"
    ada.book(soon(), subject="Booked meanwhile")

    visitor = Visitor(relink_link(ada))
    visitor.open()
    ada.server.make_calendar("work", "Work")  # restored from the provider's trash: empty, same address
    assert_connected_again(visitor.send("/test"), delivered=2)
    assert ada.status()["status"] == "active"
    assert summaries(ada.server, ada.calendar_url) == ["Booked before", "Booked meanwhile"]
    assert_spent(visitor)


def test_sending_the_choice_again_while_the_first_is_still_writing_does_not_say_it_failed(ada):
    """Ada chooses a calendar; with many appointments to write the page takes a moment, so she
    presses Reload ("Resubmit the form?"). The page she then sees must tell the truth."""
    personal = ada.server.make_calendar("personal", "Personal")
    ada.server.delete_calendar(ada.calendar_url)
    ada.sync()
    booked = [f"Booked meanwhile {i:02d}" for i in range(24)]
    for i, subject in enumerate(booked):
        ada.book(soon(2 + i // 8, 8 + i % 8), subject=subject)

    visitor = Visitor(relink_link(ada))
    visitor.open()
    choice = {"calendar": visitor.calendars_offered()["Personal"]}
    answers: dict[str, requests.Response] = {}
    first = threading.Thread(target=lambda: answers.setdefault("first", visitor.send("/calendar", **choice)))
    first.start()
    try:
        deadline = time.monotonic() + 30
        while not ada.server.list_hrefs(personal):  # the first appointments reach her new calendar
            assert time.monotonic() < deadline and first.is_alive(), "the first choice wrote nothing"
            time.sleep(0.02)
        assert ada.status()["status"] == "calendar_missing", "the first choice finished before the reload"
        second = visitor.resend()
    finally:
        first.join(timeout=60)
    assert_connected_again(answers["first"], delivered=len(booked))

    text = words(second)
    if second.status_code == 410:
        assert "already used" in text  # fine: the first one fixed it
    else:
        # What she sees now is what she believes: not "Calendar missing" on a calendar that works.
        assert second.status_code == 200 and "Your calendar is connected again" in text, text
    assert ada.status()["status"] == "active"
    assert summaries(ada.server, personal) == booked  # each one exactly once


# --------------------------------------------------------------------------- read_only


def test_a_read_only_calendar_says_what_to_change_and_test_again_fixes_it(ada):
    ada.server.set_read_only(True)
    ada.book(soon(), subject="Booked meanwhile")
    ada.sync()
    assert ada.status()["status"] == "read_only"

    visitor = Visitor(relink_link(ada))
    page = visitor.open()
    assert page.status_code == 200
    assert_private(page)
    text = words(page)
    assert "Status Read only" in text
    assert "Let calsync write again" in text
    assert "may not add events to it" in text and "permission to edit events" in text
    assert 'type="password"' not in page.text
    assert visitor.has_form("/test") and "Test again" in text
    # In the servers' read-only mode every calendar of the account is read-only: nothing to pick.
    assert visitor.calendars_offered() == {}
    assert "This account has no other calendar calsync may write to" in text
    assert "1 appointment booked meanwhile will be added" in text

    still = visitor.send("/test")
    assert still.status_code == 200
    assert_private(still)
    text = words(still)
    assert "The calendar is not working yet" in text
    assert "Status: Read only" in text
    assert "read-only for this account" in text
    assert "ask your calendar administrator for write access" in text
    assert "try again below with this same link" in text
    assert ada.status()["status"] == "read_only"
    assert summaries(ada.server, ada.calendar_url) == []
    assert visitor.open().status_code == 200

    ada.server.set_read_only(False)
    assert_connected_again(visitor.send("/test"), delivered=1)
    assert ada.status()["status"] == "active"
    assert summaries(ada.server, ada.calendar_url) == ["Booked meanwhile"]
    assert_spent(visitor)


def test_a_read_only_primary_can_be_swapped_for_a_writable_calendar(ada):
    """The picker on a read_only page offers her other writable calendars (never the broken primary),
    and choosing one fixes the connection without waiting for the permission."""
    own = ada.server.make_calendar("own", "Own calendar")
    ada.sync()
    ada.server.set_read_only(True)
    ada.sync()
    assert ada.status()["status"] == "read_only"
    ada.server.set_read_only(False)
    ada.book(soon(), subject="Booked meanwhile")

    visitor = Visitor(relink_link(ada))
    visitor.open()
    offered = visitor.calendars_offered()
    assert list(offered) == ["Own calendar"]  # the read-only primary is not offered
    assert_connected_again(visitor.send("/calendar", calendar=offered["Own calendar"]), delivered=1)
    assert summaries(ada.server, own) == ["Booked meanwhile"]
    assert summaries(ada.server, ada.calendar_url) == []
    assert_spent(visitor)


# --------------------------------------------------------------------------- unreachable


def test_an_unreachable_server_needs_nothing_and_a_test_fixes_it_once_back(ada):
    ada.server.stop()
    ada.book(soon(), subject="Booked meanwhile")
    ada.sync()
    assert ada.status()["status"] == "active"  # one failure is not an outage yet
    later = clock.now() + dt.timedelta(hours=7)
    clock.set_now(lambda: later)
    ada.sync()
    assert ada.status()["status"] == "unreachable"

    visitor = Visitor(relink_link(ada))
    page = visitor.open()
    assert page.status_code == 200
    assert_private(page)
    text = words(page)
    assert "Status Unreachable" in text
    assert "Nothing to do on your side" in text
    assert "Calsync keeps trying" in text
    assert "1 appointment booked meanwhile will be added" in text
    assert 'type="password"' not in page.text and visitor.calendars_offered() == {}
    assert visitor.has_form("/test") and "Test again" in text

    still = visitor.send("/test")
    assert still.status_code == 200
    text = words(still)
    assert "The calendar is not working yet" in text and "Status: Unreachable" in text
    assert "try again below with this same link" in text
    assert ada.status()["status"] == "unreachable"
    assert visitor.open().status_code == 200

    ada.server.start()
    assert_connected_again(visitor.send("/test"), delivered=1)
    assert ada.status()["status"] == "active"
    assert summaries(ada.server, ada.calendar_url) == ["Booked meanwhile"]
    assert_spent(visitor)


def test_a_link_opened_after_the_outage_ended_says_there_is_nothing_to_do(ada):
    ada.server.stop()
    ada.sync()
    later = clock.now() + dt.timedelta(hours=7)
    clock.set_now(lambda: later)
    ada.sync()
    assert ada.status()["status"] == "unreachable"
    visitor = Visitor(relink_link(ada))
    ada.server.start()
    ada.sync()  # the scheduler's next try works before Ada reads her mail

    page = visitor.open()
    assert page.status_code == 200
    text = words(page)
    assert "your calendar connection works" in text and "Status Active" in text
    assert "Nothing to do" in text and "You can close this page" in text
    assert "cannot sync your calendar" not in text
    assert not visitor.has_form("") and not visitor.has_form("/test") and not visitor.has_form("/calendar")


# --------------------------------------------------------------------------- forged forms


def test_forms_sent_without_the_page_token_change_nothing(ada):
    ada.server.make_calendar("personal", "Personal")
    ada.server.delete_calendar(ada.calendar_url)
    ada.sync()
    visitor = Visitor(relink_link(ada))
    offered = (visitor.open(), visitor.calendars_offered())[1]
    for action, fields in (("/calendar", {"calendar": offered["Personal"]}), ("/test", {})):
        forged = visitor.http.post(visitor.url + action, data=fields, timeout=30, allow_redirects=False)
        assert forged.status_code == 400, action
        assert "This form expired or was not sent from this page" in words(forged)
    assert ada.status()["status"] == "calendar_missing"
    assert visitor.open().status_code == 200


# --------------------------------------------------------------------------- phone and desktop


@pytest.mark.parametrize("width,height", [(390, 844), (1280, 800)], ids=["phone", "desktop"])
def test_the_calendar_picker_works_on_a_phone_and_a_desktop(ada, width, height, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    personal = ada.server.make_calendar("personal", "Personal")
    calendars = {
        LONG_NAME: ada.server.make_calendar("coaching", LONG_NAME),
        ADDRESS_NAME: ada.server.make_calendar("address", ADDRESS_NAME),
    }
    ada.server.delete_calendar(ada.calendar_url)
    ada.sync()
    assert ada.status()["status"] == "calendar_missing"
    ada.book(soon(), subject="Booked meanwhile")
    link = relink_link(ada)

    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
            page.goto(link)
            expect(page.get_by_role("heading", name="Choose a new calendar for your appointments")).to_be_visible()
            expect(page.get_by_label("New password or app password")).to_have_count(0)
            radios = page.get_by_role("radio")
            expect(radios).to_have_count(3)
            picker = page.get_by_role("group", name="Calendars of this account you can write to")
            expect(picker.locator("label")).to_have_count(3)
            for name in ("Personal", LONG_NAME, ADDRESS_NAME):
                for label in page.locator("label", has_text=name).all():  # the picker's and the role boxes'
                    expect(label).to_be_visible()
                    box = label.bounding_box()
                    assert box["x"] >= 0 and box["x"] + box["width"] <= width, (name, box)
                    clipped = label.evaluate("e => e.scrollWidth > e.clientWidth")
                    assert not clipped, f"the label {name!r} is cut off"
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "the page scrolls sideways"
            page.screenshot(path=str(tmp_path / f"picker-{width}.png"), full_page=True)

            expect(page.get_by_role("radio", checked=True)).to_have_count(1)  # one is chosen already
            chosen = next(n for n in (LONG_NAME, ADDRESS_NAME) if not page.get_by_role("radio", name=n).is_checked())
            picker.get_by_text(chosen, exact=True).click()  # a tap on the words chooses the calendar
            expect(page.get_by_role("radio", name=chosen)).to_be_checked()
            button = page.get_by_role("button", name="Use this calendar")
            expect(button).to_be_visible()
            button.click()

            expect(page.get_by_role("heading", name="Your calendar is connected again")).to_be_visible()
            expect(page.locator(".status")).to_have_text("Active")
            expect(page.get_by_text("1 appointment booked while it was broken was added")).to_be_visible()
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
            page.screenshot(path=str(tmp_path / f"done-{width}.png"), full_page=True)
        finally:
            browser.close()
    assert ada.status()["status"] == "active"
    assert summaries(ada.server, calendars[chosen]) == ["Booked meanwhile"]
    others = [personal] + [url for name, url in calendars.items() if name != chosen]
    assert [summaries(ada.server, url) for url in others] == [[], []]
    assert [p for p in problems if not p.startswith("Failed to load resource")] == []
