"""Hostile use of the links people follow, through calsync's real web server, CLI and SMTP.

- A connect link makes one connection, whatever arrives at once (SQLite and PostgreSQL);
  a refused attempt (wrong password, a user name with a line break) keeps it usable.
- /relink/request never revokes a live link: it mails the same one again, at most once per
  address per few minutes, a few times per client per minute, and answers the same, in the
  same time, for a known, an unknown and a broken address.
- Names with control characters are refused where they enter; one already stored (an old
  database) neither adds a mail header or recipient nor makes a mail retry forever.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
import uuid

import pytest
import requests
from conftest import ROOT, Story, make_env, running_web, started, web_env

import models as m
from core import actions, clock, outbox
from core.actions import relinking

NEW_PASSWORD = "new-pass-1"
CRLF_NAME = "alice\r\nBcc: eve@evil.example"


# --------------------------------------------------------------------------- servers


@pytest.fixture
def smtp(mailbox):
    return mailbox


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def web_rt(request, tmp_path, smtp):
    """A runtime (SQLite or PostgreSQL) whose links name its own web server and whose mail goes to ``smtp``."""
    extra = {"CALSYNC_SMTP_URL": smtp.url, "CALSYNC_MAIL_FROM": "Calsync <calsync@example.com>"}
    if request.param == "postgres":
        name = f"t_hostile_links_{uuid.uuid4().hex[:10]}"
        extra["CALSYNC_DATABASE_URL"] = request.getfixturevalue("postgres").create_database(name)
    with started(web_env(tmp_path, **extra)) as rt:
        yield rt


@pytest.fixture
def sqlite_rt(mail_web_rt):
    return mail_web_rt


@pytest.fixture
def web(web_rt):
    with running_web(web_rt) as server:
        yield server


@pytest.fixture
def sqlite_web(sqlite_rt):
    with running_web(sqlite_rt) as server:
        yield server


# --------------------------------------------------------------------------- a visitor


def browser() -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # loopback only, never a proxy
    return session


def csrf_token(text: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', text)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


def open_form(session: requests.Session, url: str) -> str:
    page = session.get(url, timeout=30)
    assert page.status_code == 200, page.text
    return csrf_token(page.text)


def connect_form(server, password: str, username: str | None = None) -> dict:
    return {
        "provider": "caldav",
        "url": server.base_url,
        "username": server.username if username is None else username,
        "password": password,
    }


def connect_link(rt, server) -> str:
    """A connect link for Ada, whose CalDAV account has one calendar."""
    server.make_calendar("work", "Work")
    actions.add_staff(rt, "ada@example.com", "Ada Lovelace", timezone="Europe/Berlin")
    return actions.connect_link(rt, "ada@example.com")["url"]


# --------------------------------------------------------------------------- connect links


def test_four_connect_posts_at_once_make_exactly_one_connection(web_rt, web, radicale):
    url = connect_link(web_rt, radicale)
    sessions = [browser() for _ in range(4)]
    tokens = [open_form(s, url) for s in sessions]
    start = threading.Barrier(len(sessions))
    answers: list[requests.Response] = []

    def post(session, token):
        start.wait()
        answers.append(session.post(url, data={"csrf_token": token, **connect_form(radicale, radicale.password)}, timeout=60))

    threads = [threading.Thread(target=post, args=pair) for pair in zip(sessions, tokens)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)

    assert m.Connection.select().count() == 1
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 410, 410, 410], [a.text for a in answers]
    assert "Calendar connected" in next(a.text for a in answers if a.status_code == 200)
    for lost in (a for a in answers if a.status_code == 410):
        assert "already used" in lost.text or "Connect links work once" in lost.text
    assert browser().get(url, timeout=30).status_code == 410


def test_a_refused_password_gives_the_link_back_and_the_right_one_connects(sqlite_rt, sqlite_web, radicale):
    url = connect_link(sqlite_rt, radicale)
    session = browser()
    wrong = session.post(url, data={"csrf_token": open_form(session, url), **connect_form(radicale, "wrong")}, timeout=60)
    assert wrong.status_code == 422 and "Nothing was saved" in wrong.text
    assert m.Connection.select().count() == 0
    right = session.post(url, data={"csrf_token": open_form(session, url), **connect_form(radicale, radicale.password)}, timeout=60)
    assert right.status_code == 200 and "Calendar connected" in right.text
    again = session.post(url, data={"csrf_token": csrf_token(wrong.text), **connect_form(radicale, radicale.password)}, timeout=60)
    assert again.status_code == 410
    assert m.Connection.select().count() == 1


def test_a_user_name_with_a_line_break_is_refused_on_the_page_and_the_link_kept(sqlite_rt, sqlite_web, radicale):
    url = connect_link(sqlite_rt, radicale)
    session = browser()
    answer = session.post(
        url, data={"csrf_token": open_form(session, url), **connect_form(radicale, radicale.password, username=CRLF_NAME)}, timeout=60
    )
    assert answer.status_code == 422
    assert "may not contain control characters" in answer.text and "U+000D" in answer.text
    assert m.Connection.select().count() == 0 and m.Calendar.select().count() == 0
    assert session.get(url, timeout=30).status_code == 200  # the link still works


@pytest.fixture
def cli(tmp_path):
    env = {**os.environ, **make_env(tmp_path / "cli")}
    env.pop("CALSYNC_CONNECT_PASSWORD", None)

    def run(*args, stdin: str = ""):
        return subprocess.run(
            [sys.executable, str(ROOT / "run_console.py"), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    return run


def test_the_cli_refuses_control_characters_in_names_and_stores_nothing(cli, radicale):
    for name in ("Ada\x1b[31m Lovelace", "Ada\r\nX-Injected: 1", "Ada \u202eecalevoL"):
        refused = cli("staff", "add", "ada@example.com", "--name", name)
        assert refused.returncode == 2 and "may not contain control characters" in refused.stderr
    assert cli("staff", "add", "ada\u202e@example.com", "--name", "Ada").returncode == 2
    assert cli("staff", "add", "ada@example.com", "--name", "Ada Lovelace").returncode == 0
    refused = cli(
        "connect",
        "caldav",
        "--staff",
        "ada@example.com",
        "--url",
        radicale.base_url,
        "--username",
        CRLF_NAME,
        stdin=radicale.password + "\n",
    )
    assert refused.returncode == 2, refused.stderr
    assert "the user name may not contain control characters" in refused.stderr
    assert json.loads(cli("status", "--json").stdout) == []
    staff = json.loads(cli("staff", "list", "--json").stdout)
    assert [s["name"] for s in staff] == ["Ada Lovelace"]


# --------------------------------------------------------------------------- /relink/request


def broken_ada(rt, server) -> Story:
    """Ada's CalDAV password changed: the connection is relink_required and the alert is in the outbox."""
    story = Story(rt, server)
    story.sync()
    server.set_password(NEW_PASSWORD)
    story.sync()
    assert story.status()["status"] == "relink_required"
    return story


def ask(rt, email: str, session: requests.Session | None = None) -> requests.Response:
    session = session or browser()
    url = f"{rt.settings.base_url}/relink/request"
    return session.post(url, data={"csrf_token": open_form(session, url), "email": email}, timeout=30)


def later(**delta) -> None:
    moment = clock.now() + dt.timedelta(**delta)
    clock.set_now(lambda: moment)


def link_in(message) -> str:
    text = message.get_body(("plain",)).get_content()
    found = re.search(r"(http://\S+/relink/\S+)", text)
    assert found is not None, text
    return found.group(1)


def test_asking_for_a_link_mails_the_live_one_again_and_the_alert_button_keeps_working(sqlite_rt, sqlite_web, radicale, smtp):
    broken_ada(sqlite_rt, radicale)
    outbox.deliver_pending(sqlite_rt)
    (alert,) = smtp.wait_for(1)
    button = link_in(alert)
    links = [(link.id, link.token_hash) for link in m.RelinkLink.select()]
    later(minutes=6)
    assert ask(sqlite_rt, "ada@example.com").status_code == 200
    assert outbox.deliver_pending(sqlite_rt)["sent"] >= 1
    (_, resent) = smtp.wait_for(2)
    assert link_in(resent) == button
    assert [(link.id, link.token_hash) for link in m.RelinkLink.select()] == links
    assert m.RelinkLink.get().revoked_at is None
    page = browser().get(button, timeout=30)
    assert page.status_code == 200 and "Enter the new password" in page.text


def test_a_link_is_mailed_at_most_once_per_address_per_five_minutes(sqlite_rt, sqlite_web, radicale, smtp):
    broken_ada(sqlite_rt, radicale)
    outbox.deliver_pending(sqlite_rt)
    smtp.wait_for(1)
    assert ask(sqlite_rt, "ada@example.com").status_code == 200  # the alert went out a moment ago
    outbox.deliver_pending(sqlite_rt)
    later(minutes=6)
    for _ in range(3):
        assert ask(sqlite_rt, "ada@example.com").status_code == 200
    outbox.deliver_pending(sqlite_rt)
    time.sleep(0.5)
    assert len(smtp.messages) == 2  # the alert, and one answer to the four requests


def test_a_client_may_ask_a_few_times_a_minute(sqlite_rt, sqlite_web):
    session = browser()
    answers = [ask(sqlite_rt, f"someone-{i}@example.com", session) for i in range(relinking.REQUESTS_PER_CLIENT + 1)]
    assert [a.status_code for a in answers] == [200] * relinking.REQUESTS_PER_CLIENT + [429]
    assert "Try again in a minute" in answers[-1].text and answers[-1].headers["Retry-After"] == "60"
    later(seconds=61)
    assert ask(sqlite_rt, "someone@example.com", session).status_code == 200


def test_requests_at_once_for_one_address_send_one_message_and_issue_no_link(web_rt, web, radicale):
    broken_ada(web_rt, radicale)
    later(minutes=6)
    links = m.RelinkLink.select().count()
    start = threading.Barrier(4)
    answers: list[int] = []
    forms = []
    for _ in range(4):
        session = browser()
        forms.append((session, open_form(session, f"{web_rt.settings.base_url}/relink/request")))

    def post(session, token):
        start.wait()
        answers.append(
            session.post(
                f"{web_rt.settings.base_url}/relink/request", data={"csrf_token": token, "email": "ada@example.com"}, timeout=30
            ).status_code
        )

    threads = [threading.Thread(target=post, args=form) for form in forms]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert answers == [200] * 4
    assert m.Notification.select().where(m.Notification.event == "relink.link").count() == 1
    assert m.RelinkLink.select().count() == links
    assert m.RelinkLink.select().where(m.RelinkLink.revoked_at.is_null(False)).count() == 0


def test_the_answer_is_the_same_in_words_status_and_time_for_any_address(sqlite_rt, sqlite_web, radicale, monkeypatch):
    broken_ada(sqlite_rt, radicale)
    actions.add_staff(sqlite_rt, "bob@example.com", "Bob")
    # Measured with the real work on every request: no client limit, no per-address throttle.
    monkeypatch.setattr(relinking, "REQUESTS_PER_CLIENT", 10_000)
    monkeypatch.setattr(relinking, "REQUEST_THROTTLE_MINUTES", 0)
    addresses = {
        "broken": "ada@example.com",
        "healthy": "bob@example.com",
        "unknown": "nobody@example.com",
        "malformed": "ada@example.com\r\nBcc: eve@evil.example",
    }
    session = browser()
    url = f"{sqlite_rt.settings.base_url}/relink/request"
    token = open_form(session, url)
    seen: dict[str, list] = {kind: [] for kind in addresses}
    for _ in range(15):
        for kind, email in addresses.items():
            began = time.perf_counter()
            answer = session.post(url, data={"csrf_token": token, "email": email}, timeout=30)
            seen[kind].append((time.perf_counter() - began, answer.status_code, answer.text))
    assert m.Notification.select().where(m.Notification.event == "relink.link").count() == 15  # the real work was done
    assert {(status, text) for kind in seen for _, status, text in seen[kind]} == {(200, seen["unknown"][0][2])}
    medians = {kind: statistics.median(t for t, _, _ in answers) for kind, answers in seen.items()}
    assert max(medians.values()) - min(medians.values()) < 0.05, medians


# --------------------------------------------------------------------------- names already stored


def test_a_stored_name_with_line_breaks_adds_no_header_and_is_sent_once(sqlite_rt, radicale, smtp):
    story = Story(sqlite_rt, radicale)
    story.sync()
    # An old database: written before names were checked.
    m.Connection.update(account=CRLF_NAME).where(m.Connection.id == story.conn_id).execute()
    m.Staff.update(name="Ada\r\nX-Injected: yes").execute()
    radicale.set_password(NEW_PASSWORD)
    story.sync()
    assert outbox.deliver_pending(sqlite_rt) == {"sent": 2, "failed": 0}  # the log and the e-mail
    (mail,) = smtp.wait_for(1)
    assert smtp.envelopes == [["ada@example.com"]]
    assert mail["To"] == "ada@example.com" and mail["Bcc"] is None and mail["X-Injected"] is None
    assert "\n" not in mail["Subject"] and mail["Subject"].startswith("Your CalDAV calendar needs your new password")
    assert not [line for line in mail.get_body(("plain",)).get_content().splitlines() if line.startswith(("Bcc:", "X-Injected:"))]
    assert m.Delivery.get(m.Delivery.channel == "email").state == m.DELIVERY_SENT
    assert outbox.deliver_pending(sqlite_rt) == {"sent": 0, "failed": 0}


def alert_mail_after_a_day_of_retries(rt, radicale, before_the_break) -> tuple[Story, m.Delivery]:
    """Ada is synced, ``before_the_break()`` runs, her password changes, and the outbox tries her
    alert mail ten times, two hours apart."""
    story = Story(rt, radicale)
    story.sync()
    before_the_break()
    radicale.set_password(NEW_PASSWORD)
    story.sync()
    for _ in range(10):
        outbox.deliver_pending(rt)
        later(hours=2)
    return story, m.Delivery.get(m.Delivery.channel == "email")


def test_a_mail_that_can_never_be_sent_ends_failed_after_a_few_attempts(sqlite_rt, radicale, smtp):
    def bad_address():
        m.Staff.update(email="ada@example.com\r\nBcc: eve@evil.example").execute()

    _, delivery = alert_mail_after_a_day_of_retries(sqlite_rt, radicale, bad_address)
    assert delivery.state == "failed" and delivery.attempts == outbox.PERMANENT_ATTEMPTS
    assert "is not a valid e-mail address" in delivery.last_error and "\n" not in delivery.last_error
    assert smtp.messages == []
    assert m.Notification.get().secret == ""  # nothing will send the link: it is not kept


def test_a_mailbox_the_server_says_does_not_exist_ends_failed_and_a_server_outage_does_not(sqlite_rt, radicale, smtp):
    def unknown_mailbox():
        smtp.unknown = {"ada@example.com"}

    story, delivery = alert_mail_after_a_day_of_retries(sqlite_rt, radicale, unknown_mailbox)
    assert delivery.state == "failed" and delivery.attempts == outbox.PERMANENT_ATTEMPTS
    assert "refused the recipient" in delivery.last_error and "550" in delivery.last_error
    # A server that does not answer at all is not the recipient's fault: that is retried, however long.
    smtp.unknown = set()
    smtp.stop()
    actions.issue_relink(sqlite_rt, story.conn_id, via=("email",))
    for _ in range(10):
        outbox.deliver_pending(sqlite_rt)
        later(hours=2)
    retried = m.Delivery.select().where(m.Delivery.channel == "email").order_by(m.Delivery.id.desc()).get()
    assert retried.state == "pending" and retried.attempts == 10
