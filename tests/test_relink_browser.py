"""The relink story end to end, in real headless Chromium against the real waitress server.

Ada's CalDAV password changes, an appointment is booked meanwhile, the sync
fails, she gets an e-mail through SMTP, opens its link, types the new
password, and sees "Active"; the appointment booked meanwhile is then on her
calendar exactly once and the link is spent.
"""

from __future__ import annotations

import re

import pytest
from conftest import CHROMIUM_ARGS, Story, chromium_path, running_web, soon

import models as m
from core import outbox

NEW_PASSWORD = "new-pass-1"


@pytest.fixture
def web_rt(mail_web_rt):
    return mail_web_rt


@pytest.fixture
def web_server(web_rt):
    with running_web(web_rt) as server:
        yield server


def test_a_changed_password_is_fixed_from_the_e_mailed_link_in_a_browser(web_rt, caldav, mailbox, web_server, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    story = Story(web_rt, caldav)
    story.sync()
    assert story.status()["status"] == "active"
    caldav.set_password(NEW_PASSWORD)
    story.book(soon(), subject="Booked meanwhile")
    story.sync()
    assert story.status()["status"] == "relink_required"
    (incident,) = m.Incident.select()
    outbox.deliver_pending(web_rt)
    (mail,) = mailbox.wait_for(1)
    link = re.search(r"http://127\.0\.0\.1:\d+/relink/\S+", mail.get_body(("plain",)).get_content()).group(0)

    problems: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
            page.goto(link)
            header = page.locator("header.site").evaluate("e => getComputedStyle(e).backgroundColor")
            assert header == "rgb(27, 31, 36)", "the stylesheet did not load"
            expect(page.get_by_role("heading", name="Reconnect your calendar")).to_be_visible()
            expect(page.get_by_text("rejected the username or password")).to_be_visible()
            expect(page.locator("dd", has_text=caldav.username).first).to_be_visible()
            expect(page.get_by_text("1 appointment booked meanwhile")).to_be_visible()

            page.get_by_label("New password or app password").fill(NEW_PASSWORD)
            page.get_by_role("button", name="Test and reconnect").click()
            expect(page.get_by_role("heading", name="Your calendar is connected again")).to_be_visible()
            expect(page.locator(".status")).to_have_text("Active")
            expect(page.get_by_text("1 appointment booked while it was broken was added")).to_be_visible()
            page.screenshot(path=str(tmp_path / "relink-confirmed.png"), full_page=True)

            assert story.status()["status"] == "active"
            incident = m.Incident.get_by_id(incident.id)
            assert incident.resolved_at is not None
            subjects = [ics for ics in story.events().values() if "Booked meanwhile" in ics]
            assert len(subjects) == 1

            spent = page.goto(link)
            assert spent.status == 410
            expect(page.get_by_text("already used")).to_be_visible()
        finally:
            browser.close()
    # A 404 favicon and the 410 of the spent link are answers, not faults; a CSP block would be.
    assert [p for p in problems if not p.startswith("Failed to load resource")] == []
