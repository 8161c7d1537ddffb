"""The pages a staff member finishes on a phone, in real headless Chromium at 390 and 1280 px.

Ada's password changed while twelve appointments were booked: her relink page lists the
first ten with times in her zone ("+2 more"), offers them as an .ics download, and after a
wrong password the error is what she sees, not the top of the page. Her connect page fills
in the server address of the provider she taps, says which password to use, asks which
calendar her appointments go to, and offers her feed as a webcal:// subscription. No page
scrolls sideways. One browser for the module: Chromium is slow to start.
"""

from __future__ import annotations

import pytest
from conftest import (
    CHROMIUM_ARGS,
    Story,
    chromium_path,
    running_web,
    soon,
    started,
    web_env,
)

import models as m
from core import actions, wording

NEW_PASSWORD = "new-pass-1"
WIDTHS = [(390, 844), (1280, 800)]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def web_rt(tmp_path):
    with started(web_env(tmp_path)) as rt, running_web(rt):
        yield rt


def open_page(browser, width: int, height: int, problems: list):
    page = browser.new_context(viewport={"width": width, "height": height}, accept_downloads=True).new_page()
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    return page


def assert_fits(page, what: str) -> None:
    assert page.evaluate("document.scrollingElement.scrollWidth <= window.innerWidth"), f"{what} scrolls sideways"


def assert_error_in_view(page) -> None:
    from playwright.sync_api import expect

    error = page.locator("#error")
    expect(error).to_be_visible()
    expect(error).to_have_attribute("role", "alert")
    expect(error).to_be_in_viewport()
    assert page.evaluate("document.activeElement && document.activeElement.id") == "error"


def test_the_relink_page_lists_what_waits_offers_it_and_shows_a_wrong_password_in_view(browser, web_rt, radicale):
    from playwright.sync_api import expect

    story = Story(web_rt, radicale)
    story.sync()
    radicale.set_password(NEW_PASSWORD)
    for i in range(12):
        story.book(soon(2 + i // 6, 8 + i % 6), subject=f"Session {i + 1:02d}")
    story.sync()
    assert story.status()["status"] == "relink_required"
    first = m.Appointment.select().order_by(m.Appointment.starts_at).first()
    first_time = wording.local_time(first.starts_at, "Europe/Berlin", label=False)
    link = actions.issue_relink(web_rt, story.conn_id, via=("email",))["url"]

    problems: list[str] = []
    for width, height in WIDTHS:
        page = open_page(browser, width, height, problems)
        page.goto(link)
        expect(page).to_have_title("Reconnect your calendar · Calsync")
        expect(page.locator(".status").first).to_have_text("Needs reconnecting")
        expect(page.get_by_text("Your CalDAV calendar needs your new password")).to_be_visible()
        items = page.locator("ul.waiting-list li")
        expect(items).to_have_count(10)
        expect(items.first).to_contain_text(first_time)
        expect(items.first).to_contain_text("Session 01")
        expect(page.get_by_text("+2 more")).to_be_visible()
        expect(page.get_by_text("Times in Europe/Berlin")).to_be_visible()
        with page.expect_download() as download:
            page.get_by_role("link", name="Download them as a calendar file (.ics)").click()
        data = download.value.path().read_bytes()
        assert data.count(b"BEGIN:VEVENT") == 12 and b"Session 12" in data
        assert_fits(page, f"the relink page at {width} px")

        page.get_by_label("New password or app password").fill("still-wrong")
        page.get_by_role("button", name="Test and reconnect").click()
        assert_error_in_view(page)
        expect(page.locator("#error")).to_contain_text("That did not work")
        assert_fits(page, f"the refused relink page at {width} px")
        page.context.close()
    assert story.status()["status"] == "relink_required"
    assert [p for p in problems if not p.startswith("Failed to load resource")] == []


def test_the_connect_page_fills_in_the_provider_and_asks_which_calendar(browser, web_rt, radicale):
    from playwright.sync_api import expect

    radicale.make_calendar("work", "Work")
    radicale.make_calendar("personal", "Personal")
    actions.add_staff(web_rt, "ada@example.com", "Ada Lovelace", timezone="Europe/Berlin")
    feed = actions.feed_url(web_rt, "ada@example.com")["url"]

    problems: list[str] = []
    for width, height in WIDTHS:
        url = actions.connect_link(web_rt, "ada@example.com")["url"]
        page = open_page(browser, width, height, problems)
        page.goto(url)
        server = page.get_by_label("Server address")
        expect(server).to_have_value("")
        page.get_by_role("link", name="iCloud", exact=True).click()
        expect(server).to_have_value("https://caldav.icloud.com/")
        expect(page.get_by_text("app-specific password", exact=False).first).to_be_visible()
        expect(page.get_by_role("link", name="How to create an app password at iCloud")).to_be_visible()
        page.get_by_role("link", name="Fastmail", exact=True).click()
        expect(server).to_have_value("https://caldav.fastmail.com/")
        subscribe = page.get_by_role("link", name="Subscribe in your calendar app")
        expect(subscribe).to_have_attribute("href", wording.webcal(feed))
        expect(page.get_by_role("textbox", name="Feed address")).to_have_value(feed)
        # The one thing each form is for is filled; the read-only feed is the quieter choice.
        connect = page.get_by_role("button", name="Test and connect")
        assert connect.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(11, 87, 208)"
        feed_button = page.get_by_role("button", name="Test and add the feed")
        assert feed_button.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(255, 255, 255)"
        assert_fits(page, f"the connect page at {width} px")

        page.get_by_role("link", name="Other CalDAV server", exact=True).click()
        server.fill(radicale.base_url)
        page.get_by_label("User name").fill(radicale.username)
        page.get_by_label("Password or app password").fill("wrong")
        connect.click()
        assert_error_in_view(page)
        assert_fits(page, f"the refused connect page at {width} px")

        page.get_by_label("Password or app password").fill(radicale.password)
        page.get_by_role("button", name="Test and connect").click()
        expect(page.get_by_role("heading", name="Choose the calendar for your appointments")).to_be_visible()
        expect(page.get_by_role("radio")).to_have_count(2)
        picker = page.get_by_role("group", name="Calendars of this account you can write to")
        picker.get_by_text("Personal", exact=True).click()
        page.get_by_role("button", name="Use this calendar").click()
        expect(page.get_by_role("heading", name="Calendar connected")).to_be_visible()
        expect(page.get_by_text("Your appointments go to the calendar Personal")).to_be_visible()
        expect(page.locator(".status")).to_have_text("Active")
        assert_fits(page, f"the connected page at {width} px")
        page.context.close()
    destinations = [c.name for c in m.Calendar.select().where(m.Calendar.is_destination == True)]
    assert destinations == ["Personal", "Personal"]
    assert [p for p in problems if not p.startswith("Failed to load resource")] == []


def test_the_connect_page_asks_which_calendars_block_time_and_which_others_get_the_appointments(browser, web_rt, radicale):
    """Issue 18, in the browser: under the primary picker, the role boxes (every calendar the account owns
    ticked as busy; no extra write calendar) say what choose_calendars does with them."""
    from playwright.sync_api import expect

    work, team = radicale.make_calendar("work", "Work"), radicale.make_calendar("team", "Team")
    actions.add_staff(web_rt, "ada@example.com", "Ada Lovelace", timezone="Europe/Berlin")
    booked = actions.book(web_rt, "ada@example.com", soon(2, 10).isoformat(), soon(2, 11).isoformat(), "Intro call")
    problems: list[str] = []
    page = open_page(browser, 390, 844, problems)
    page.goto(actions.connect_link(web_rt, "ada@example.com")["url"])
    page.get_by_role("link", name="Other CalDAV server", exact=True).click()
    page.get_by_label("Server address").fill(radicale.base_url)
    page.get_by_label("User name").fill(radicale.username)
    page.get_by_label("Password or app password").fill(radicale.password)
    page.get_by_role("button", name="Test and connect").click()

    busy = page.get_by_role("group", name="Calendars that block your time")
    also = page.get_by_role("group", name="Also add your appointments to")
    expect(busy.get_by_role("checkbox", checked=True)).to_have_count(2)  # both are the account's own
    expect(also.get_by_role("checkbox", checked=True)).to_have_count(0)
    assert_fits(page, "the calendar choice with its role boxes")
    page.get_by_role("group", name="Calendars of this account you can write to").get_by_text("Team", exact=True).click()
    busy.get_by_text("Work", exact=True).click()  # Work stops blocking time
    also.get_by_text("Work", exact=True).click()  # and still gets every appointment
    page.get_by_role("button", name="Use this calendar").click()
    expect(page.get_by_role("heading", name="Calendar connected")).to_be_visible()
    expect(page.get_by_text("Your appointments go to the calendar Team")).to_be_visible()
    page.context.close()

    (conn,) = m.Connection.select()
    roles = {r["name"]: (r["primary"], r["busy"], r["write"]) for r in actions.calendar_roles(web_rt, conn.id)}
    assert roles == {"Team": (True, True, True), "Work": (False, False, True)}
    actions.sync_now(web_rt, conn.id)
    for url in (work, team):
        assert [booked["uid"] in body for body in radicale.list_events(url).values()] == [True]
    assert [p for p in problems if not p.startswith("Failed to load resource")] == []
