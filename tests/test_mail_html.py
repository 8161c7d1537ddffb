"""Mails a person can act on: plain text and HTML with a button, through real SMTP and real Chromium.

- An alert and a relink mail arrive as multipart/alternative: the plain text core.notices
  wrote (byte for byte what it was before), then HTML with the link as a button and the
  sending address in the footer, so staff can allow-list it.
- Names, reasons and subjects with markup, quotes, ``&`` and CR/LF are text in the HTML, add
  no header, and a relink URL that is not http(s) is never a link.
- Headless Chromium renders the HTML without JavaScript: the button is visible, large enough,
  readable on its colour and points at the link; nothing is fetched, and with JavaScript on
  no hostile value runs either.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest
from conftest import CHROMIUM_ARGS, Story, chromium_path, soon

import models as m
from core import actions, mail_html, notices, outbox
from core.mail import EmailSender

SENDER = "calsync@example.com"
HOSTILE_NAME = 'Ada <script>document.title="pwned"</script> & "Co"\r\nX-Injected: yes'
HOSTILE_SUBJECT = '<img src="http://127.0.0.1:9/pixel.png" onerror="document.title=\'pwned\'"> & "x"\r\nBcc: eve@evil.example'
HOSTILE_REASON = (
    'denied <b>bold</b> "quoted" & <a href="https://evil.example/phish">here</a>\n--\n'
    "javascript:alert(1)\r\nhttps://evil.example/phish\x1b]52;c;cHduZWQ=\x07\x00 \u202egnp.exe \x85"
)
HEADERS = {"From", "To", "Subject", "Message-ID", "Auto-Submitted", "MIME-Version", "Content-Type"}
PART_HEADERS = {"Content-Type", "Content-Transfer-Encoding", "MIME-Version"}


class Anchors(HTMLParser):
    """Every element of an HTML document, and each link with its href and its text."""

    def __init__(self, document: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.links: list[dict] = []
        self.in_link = False
        self.feed(document)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "a":
            self.links.append({"href": dict(attrs).get("href"), "text": ""})
            self.in_link = True

    def handle_endtag(self, tag):
        self.in_link = self.in_link and tag != "a"

    def handle_data(self, data):
        if self.in_link:
            self.links[-1]["text"] += data


@pytest.fixture
def written(monkeypatch):
    """The (subject, text) core.notices wrote for each delivery the outbox sent."""
    seen: list[tuple[str, str]] = []
    render = notices.render

    def recording(event, payload, relink_url=""):
        seen.append(render(event, payload, relink_url))
        return seen[-1]

    monkeypatch.setattr(notices, "render", recording)
    return seen


def parts(mail) -> tuple[str, str]:
    """(plain, html) of a mail that must be multipart/alternative, plain first, with lines ending
    in a bare LF (SMTP carries CRLF): a CR left is one a value brought."""
    assert mail.get_content_type() == "multipart/alternative"
    plain, html = mail.iter_parts()
    assert [plain.get_content_type(), html.get_content_type()] == ["text/plain", "text/html"]
    assert plain.get_content_charset() == html.get_content_charset() == "utf-8"
    assert set(plain.keys()) <= PART_HEADERS and set(html.keys()) <= PART_HEADERS
    return plain.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")


def broken_with_a_waiting_appointment(rt, server, subject: str = "Booked meanwhile") -> Story:
    story = Story(rt, server)
    story.sync()
    story.book(soon(), subject=subject)
    server.set_password("changed-1")
    story.sync()
    assert story.status()["status"] == "relink_required"
    return story


def assert_allow_listable(mail, html: str) -> None:
    assert mail["From"] == f"Calsync <{SENDER}>" and mail["Auto-Submitted"] == "auto-generated"
    assert mail["List-Unsubscribe"] is None  # there is nothing to unsubscribe from
    assert f"This is an automatic message from Calsync, sent from <strong>{SENDER}</strong>" in html
    assert "allow-list" in html


def test_an_alert_mail_is_the_same_plain_text_then_html_with_the_relink_button(mail_rt, radicale, mailbox, written):
    broken_with_a_waiting_appointment(mail_rt, radicale)
    assert outbox.deliver_pending(mail_rt) == {"sent": 2, "failed": 0}  # the log and the e-mail
    (mail,) = mailbox.wait_for(1)
    plain, html = parts(mail)
    ((subject, text),) = set(written)  # once for the log, once for the mail: the same words
    assert plain == text + "\n" and mail["Subject"] == subject  # what plain-text clients got before
    found = re.search(r"^(http://\S+/relink/\S+)$", plain, re.MULTILINE)
    assert found is not None, plain
    link = found.group(1)
    page = Anchors(html)
    assert page.links == [{"href": link, "text": "Reconnect here"}]  # one link: the button
    assert html.count(f">{link}</p>") == 1  # and the URL as text below it
    assert html.startswith('<!DOCTYPE html>\n<html lang="en"')
    assert not {"script", "img", "link", "style", "iframe", "object", "embed", "form"} & set(page.tags)
    assert "Booked meanwhile" in html and "<li" in html  # what waits, as in the text
    assert "Your CalDAV calendar needs your new password" in html
    assert "This message comes from calsync" not in html  # the text's signature is the HTML's footer
    assert_allow_listable(mail, html)
    assert set(mail.keys()) == HEADERS


def test_a_relink_mail_carries_the_new_link_as_its_button(mail_rt, radicale, mailbox, written):
    story = broken_with_a_waiting_appointment(mail_rt, radicale)
    outbox.deliver_pending(mail_rt)
    mailbox.wait_for(1)
    issued = actions.issue_relink(mail_rt, story.conn_id, via=("email",), actor="sam")
    assert outbox.deliver_pending(mail_rt)["sent"] == 2
    mail = mailbox.wait_for(2)[1]
    plain, html = parts(mail)
    assert plain == written[-1][1] + "\n" and written[-1] == written[-2]
    assert mail["Subject"] == f"Your link to reconnect your CalDAV account {radicale.username}"
    assert issued["url"] in plain.splitlines()
    assert Anchors(html).links == [{"href": issued["url"], "text": "Reconnect here"}]
    assert_allow_listable(mail, html)


def test_the_sender_is_called_calsync_unless_the_setting_names_it(mailbox):
    url = "https://calsync.example/relink/t"
    outgoing = SimpleNamespace(
        delivery=SimpleNamespace(recipient="ada@example.com"),
        subject="Your link",
        text=f"Hello Ada,\n\nReconnect here:\n{url}",
        relink_url=url,
    )
    EmailSender(mailbox.url, "alerts@example.org").send(outgoing)
    EmailSender(mailbox.url, "Calendar desk <desk@example.org>").send(outgoing)
    first, second = mailbox.wait_for(2)
    assert first["From"] == "Calsync <alerts@example.org>" and second["From"] == "Calendar desk <desk@example.org>"
    assert "sent from <strong>alerts@example.org</strong>" in parts(first)[1]
    assert "sent from <strong>desk@example.org</strong>" in parts(second)[1]


def hostile_alert(rt, server, mailbox) -> tuple[object, str, str]:
    """Ada's alert after an old database stored markup, quotes, ``&`` and CR/LF in her name and her
    waiting appointment, and the provider answered with markup, a signature line and URLs."""
    story = Story(rt, server)
    story.sync()
    story.book(soon(), subject="placeholder")
    m.Appointment.update(subject=HOSTILE_SUBJECT).execute()
    m.Staff.update(name=HOSTILE_NAME).execute()
    server.set_password("changed-1")
    story.sync()
    (notification,) = m.Notification.select()
    payload = json.loads(notification.payload)
    payload["reason"] = HOSTILE_REASON
    m.Notification.update(payload=json.dumps(payload)).execute()
    assert outbox.deliver_pending(rt) == {"sent": 2, "failed": 0}
    (mail,) = mailbox.wait_for(1)
    plain, html = parts(mail)
    found = re.search(r"^(http://\S+/relink/\S+)$", plain, re.MULTILINE)
    assert found is not None, plain
    link = found.group(1)
    return mail, html, link


def test_hostile_names_reasons_and_subjects_are_text_in_the_html_and_add_no_header(mail_rt, radicale, mailbox):
    mail, html, link = hostile_alert(mail_rt, radicale, mailbox)
    assert set(mail.keys()) == HEADERS and mailbox.envelopes == [["ada@example.com"]]
    assert mail["X-Injected"] is None and mail["Bcc"] is None
    page = Anchors(html)
    assert page.links == [{"href": link, "text": "Reconnect here"}]  # a URL in the reason is not a link
    assert not {"script", "img", "b"} & set(page.tags)
    assert "Hello Ada &lt;script&gt;document.title=&quot;pwned&quot;&lt;/script&gt; &amp; &quot;Co&quot; X-Injected: yes," in html
    assert "&lt;img src=&quot;http://127.0.0.1:9/pixel.png&quot; onerror=&quot;document.title=&#x27;pwned&#x27;&quot;&gt;" in html
    assert "denied &lt;b&gt;bold&lt;/b&gt; &quot;quoted&quot; &amp; &lt;a href=&quot;https://evil.example/phish&quot;&gt;" in html
    assert "phish\\x00" in html and "cHduZWQ=" not in html  # a NUL shown, a clipboard-write escape dropped
    assert "\\u202egnp.exe \\x85" in html  # a bidi override and a C1 control shown, not obeyed
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", html)
    assert f"sent from <strong>{SENDER}</strong>" in html  # the reason's "--" did not end the mail early
    assert "javascript:alert(1)" in html and 'href="javascript' not in html.lower()


def test_a_relink_url_that_is_not_http_is_shown_as_text_never_as_a_link(mailbox):
    for url in ("javascript:alert(document.domain)", 'https://calsync.example/r"onmouseover="alert(1)', "data:text/html,x"):
        text = f"Hello Ada,\n\nReconnect here (the link works until it is used):\n{url}\n\n--\nfooter"
        outgoing = SimpleNamespace(delivery=SimpleNamespace(recipient="ada@example.com"), subject="Your link", text=text, relink_url=url)
        EmailSender(mailbox.url, SENDER).send(outgoing)
    for mail in mailbox.wait_for(3):
        _plain, html = parts(mail)
        assert Anchors(html).links == [] and "href" not in html
    assert "javascript:alert(document.domain)" in parts(mailbox.messages[0])[1]
    assert "https://calsync.example/r&quot;onmouseover=&quot;alert(1)" in parts(mailbox.messages[1])[1]


def _luminance(css_colour: str) -> float:
    red, green, blue = (int(v) / 255 for v in re.findall(r"\d+", css_colour)[:3])
    linear = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in (red, green, blue)]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(foreground: str, background: str) -> float:
    lighter, darker = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def test_chromium_shows_the_button_and_runs_and_fetches_nothing(mail_rt, radicale, mailbox):
    from playwright.sync_api import sync_playwright

    mail, html, link = hostile_alert(mail_rt, radicale, mailbox)
    requested: list[str] = []

    def refuse(route):
        requested.append(route.request.url)
        route.abort()

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS)
        try:
            for javascript in (False, True):  # as mail clients show it; and with scripts allowed, to prove none is there
                context = browser.new_context(java_script_enabled=javascript, viewport={"width": 360, "height": 740})
                page = context.new_page()
                page.route("**/*", refuse)
                page.on("request", lambda request: requested.append(request.url))
                page.set_content(html, wait_until="load")
                button = page.get_by_role("link", name="Reconnect here")
                assert button.count() == 1 and button.is_visible()
                assert button.get_attribute("href") == link
                box = button.bounding_box()
                assert box["height"] >= 40 and box["width"] >= 120 and box["x"] >= 0 and box["x"] + box["width"] <= 360
                style = button.evaluate("a => { const s = getComputedStyle(a); return [s.fontSize, s.color, s.backgroundColor] }")
                assert float(style[0].removesuffix("px")) >= 16
                assert contrast(style[1], style[2]) >= 4.5
                assert page.get_by_text(link, exact=True).is_visible()  # the URL as text, below
                assert page.get_by_text(f"sent from {SENDER}").is_visible()
                assert page.evaluate("document.documentElement.lang") == "en"
                assert page.evaluate("document.documentElement.scrollWidth") <= 360  # a phone's width, no sideways scroll
                assert page.evaluate("document.scripts.length + document.images.length") == 0
                assert page.title() == mail["Subject"]  # not "pwned": no hostile value ran
                assert page.evaluate("document.querySelectorAll('a').length") == 1
                context.close()
        finally:
            browser.close()
    assert requested == []


@pytest.mark.parametrize(
    "url, linked",
    [
        ("https://calsync.example/relink/t", True),
        ("HTTP://calsync.example:8080/r?a=1&b=2", True),
        ("javascript:alert(1)", False),
        ("JavaScript:alert(1)", False),
        ("data:text/html,x", False),
        ("vbscript:x", False),
        ("//calsync.example/r", False),
        ("https:///r", False),
        ("ftp://calsync.example/r", False),
        (" https://calsync.example/r", False),
        ("https://calsync.example/a b", False),
        ("https://calsync.example/\x00", False),
        ('https://calsync.example/"x', False),
        ("https://calsync.example/<x>", False),
        ("http://[::1", False),
    ],
)
def test_only_an_http_url_is_made_a_link(url, linked):
    assert mail_html.linkable(url) is linked
    document = mail_html.render(f"Hello,\n\nReconnect here:\n{url}", subject="s", sender=SENDER, links=(url,))
    assert [link["href"] for link in Anchors(document).links] == ([url] if linked else [])
