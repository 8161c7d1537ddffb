"""The relink pages through Flask's test client: what the page says, what it refuses, what it changes."""

from __future__ import annotations

import datetime as dt
import logging
import re

import pytest

import models as m
from core import actions, clock
from web.app import create_app

NEW_PASSWORD = "new-pass-1"


@pytest.fixture
def broken(story):
    """Ada's CalDAV password was changed on the server: the connection needs relinking."""
    story.sync()
    story.server.set_password(NEW_PASSWORD)
    story.sync()
    assert story.status()["status"] == "relink_required"
    return story


@pytest.fixture
def client(rt):
    return create_app(rt).test_client()


def issue_token(story) -> str:
    return actions.issue_relink(story.rt, story.conn_id, via=("email",))["url"].rsplit("/", 1)[-1]


def words(page) -> str:
    """The page as a person reads it: no tags, entities decoded, whitespace collapsed."""
    import html

    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.text)).split())


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


def submit(client, token: str, **form):
    page = client.get(f"/relink/{token}")
    return client.post(f"/relink/{token}", data={"csrf_token": csrf_token(page.text), **form})


def test_healthz_reports_the_database_and_schema(client):
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json == {
        "status": "ok",
        "database": "ok",
        "schema_version": m.SCHEMA_VERSION,
        "outbox_backlog": 0,
        "scheduler": {"state": "none", "last_beat": None, "schedulers": 0},
    }


def test_healthz_reports_scheduler_liveness_and_the_outbox_backlog(client, broken):
    from core import leases

    leases.beat("scheduler@test:1", 0)
    answer = client.get("/healthz").json
    assert answer["scheduler"]["state"] == "alive" and answer["scheduler"]["schedulers"] == 1
    assert answer["outbox_backlog"] == 1  # the incident's log line, not delivered yet
    later = clock.now() + dt.timedelta(minutes=5)
    clock.set_now(lambda: later)
    assert client.get("/healthz").json["scheduler"]["state"] == "stale"


def test_metrics_are_prometheus_text(client, broken):
    text = client.get("/metrics").text
    assert 'calsync_connections{status="relink_required"} 1.0' in text
    assert 'calsync_sync_runs_total{outcome="failed"} 1.0' in text
    assert "calsync_sync_duration_seconds_bucket" in text and "calsync_outbox_backlog 1.0" in text


def test_healthz_says_503_when_the_database_fails(client, monkeypatch):
    import peewee

    def broken_sql(*args, **kwargs):
        raise peewee.OperationalError("disk I/O error")

    monkeypatch.setattr(m.db.obj, "execute_sql", broken_sql)
    answer = client.get("/healthz")
    assert answer.status_code == 503
    assert answer.json["database"] == "error: OperationalError"


def test_the_relink_page_names_the_account_and_what_broke(broken, client):
    token = issue_token(broken)
    page = client.get(f"/relink/{token}")
    assert page.status_code == 200
    text = page.text
    assert "Ada Lovelace" in text and "CalDAV" in text and broken.server.username in text
    # What broke, said once in plain words (core.wording), then the server's own words as details.
    assert "Your CalDAV calendar needs your new password" in text
    assert "rejected the username or password" in text and "rejected our credentials" not in text
    # The title, the heading and the badge say the same thing.
    assert "<title>Reconnect your calendar · Calsync</title>" in text and "Needs reconnecting" in text
    # Times are in Ada's zone, labelled.
    assert "(Europe/Berlin)" in text and "UTC" not in text
    assert 'name="password"' in text and "New password or app password" in text
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert "HttpOnly" in page.headers["Set-Cookie"] and "SameSite=Lax" in page.headers["Set-Cookie"]


def test_the_page_counts_the_appointments_waiting(broken, client):
    from conftest import soon

    broken.book(soon(), subject="Booked meanwhile")
    broken.sync()
    assert "1 appointment booked meanwhile" in client.get(f"/relink/{issue_token(broken)}").text


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(broken, client):
    token = issue_token(broken)
    answer = client.post(f"/relink/{token}", data={"password": NEW_PASSWORD})
    assert answer.status_code == 400
    assert "This form expired or was not sent from this page" in answer.text
    assert broken.status()["status"] == "relink_required"
    assert client.get(f"/relink/{token}").status_code == 200


def test_a_wrong_password_shows_the_form_again_and_keeps_the_link(broken, client):
    token = issue_token(broken)
    answer = submit(client, token, password="still-wrong")
    assert answer.status_code == 422
    assert "That did not work" in answer.text and "The new credentials do not work" in answer.text
    assert 'name="password"' in answer.text and 'aria-invalid="true"' in answer.text
    assert broken.status()["status"] == "relink_required"
    assert client.get(f"/relink/{token}").status_code == 200


def test_the_right_password_makes_it_active_and_spends_the_link(broken, client):
    token = issue_token(broken)
    answer = submit(client, token, password=NEW_PASSWORD)
    assert answer.status_code == 200
    assert "Your calendar is connected again" in answer.text and "Active" in answer.text
    assert answer.headers["Cache-Control"] == "no-store"
    assert broken.status()["status"] == "active"
    again = client.get(f"/relink/{token}")
    assert again.status_code == 410
    assert "already used" in again.text and "may already be connected" in again.text


def test_an_unknown_link_gets_a_clear_404_and_says_support_sends_links_when_nothing_can(client):
    answer = client.get("/relink/not-a-real-token")
    assert answer.status_code == 404
    assert "This link is not valid" in answer.text
    # No e-mail and no Slack here: no form that would send nothing, but who can help.
    assert 'name="email"' not in answer.text and "Ask your support team" in answer.text
    assert "Traceback" not in answer.text


def test_an_unknown_link_offers_the_new_link_form_and_says_how_it_arrives(mail_rt):
    answer = create_app(mail_rt).test_client().get("/relink/not-a-real-token")
    assert answer.status_code == 404
    assert 'action="/relink/request"' in answer.text and 'name="email"' in answer.text
    assert "sends you a new link by e-mail" in answer.text and "Slack" not in answer.text


def test_an_expired_link_says_so(broken, client):
    token = issue_token(broken)
    later = clock.now() + dt.timedelta(days=8)
    clock.set_now(lambda: later)
    answer = client.get(f"/relink/{token}")
    assert answer.status_code == 410 and "expired" in answer.text


def test_a_reissued_link_replaces_the_older_one(broken, client):
    old = issue_token(broken)
    new = issue_token(broken)
    answer = client.get(f"/relink/{old}")
    assert answer.status_code == 410 and "only the newest link works" in answer.text
    assert client.get(f"/relink/{new}").status_code == 200


@pytest.fixture
def mail_broken(mail_rt, caldav):
    """Ada's password changed, in an installation that sends e-mail."""
    from conftest import Story

    story = Story(mail_rt, caldav)
    story.sync()
    caldav.set_password(NEW_PASSWORD)
    story.sync()
    return story


def test_asking_for_a_new_link_answers_the_same_for_any_address_and_says_how_it_arrives(mail_broken):
    client = create_app(mail_broken.rt).test_client()

    def ask(email):
        form = client.get("/relink/request")
        return client.post("/relink/request", data={"csrf_token": csrf_token(form.text), "email": email})

    later = clock.now() + dt.timedelta(minutes=6)  # past the throttle after the incident's own link
    clock.set_now(lambda: later)
    links_before = m.RelinkLink.select().count()
    known, unknown = ask("ada@example.com"), ask("nobody@example.com")
    assert known.status_code == unknown.status_code == 200
    assert known.text == unknown.text
    assert "a new link is on its way by e-mail" in known.text and "Check your inbox" in known.text
    assert "<title>Check your e-mail · Calsync</title>" in known.text and "Slack" not in known.text
    # Ada's live link is mailed again (never revoked, never replaced); nobody@ gets nothing.
    assert m.RelinkLink.select().count() == links_before
    assert m.Notification.select().where(m.Notification.event == "relink.link").count() == 1
    again = ask("ada@example.com")
    assert again.text == known.text
    assert m.RelinkLink.select().count() == links_before  # asking again at once revokes nothing


def test_asking_for_a_new_link_where_nothing_can_send_it_says_support_must(broken, client):
    page = client.get("/relink/request")
    assert 'name="email"' not in page.text and "Ask your support team" in page.text
    from core.actions import relinking

    answer = relinking.request_new_link(broken.rt, "ada@example.com")
    assert "nothing was sent" in answer["message"] and answer["channels"] == []


def test_an_oauth_button_and_callback_say_sign_in_is_not_set_up(broken, client):
    m.Connection.update(provider="google").where(m.Connection.id == broken.conn_id).execute()
    token = issue_token(broken)
    page = client.get(f"/relink/{token}")
    assert "Sign in with Google Calendar" in page.text and 'name="password"' not in page.text
    answer = client.post(f"/relink/{token}/oauth", data={"csrf_token": csrf_token(page.text)})
    assert answer.status_code == 501 and "not configured in this installation" in answer.text
    callback = client.get("/oauth/google/callback?code=abc&state=xyz")
    assert callback.status_code == 400 and "Sign-in with Google Calendar is not set up" in callback.text


def test_an_unexpected_error_shows_a_plain_page_and_logs_no_token(broken, client, monkeypatch, caplog):
    token = issue_token(broken)

    def explode(rt, token):
        raise RuntimeError("database fell over")

    monkeypatch.setattr(actions, "relink_page", explode)
    with caplog.at_level(logging.DEBUG):
        answer = client.get(f"/relink/{token}")
    assert answer.status_code == 500
    assert "nothing was changed" in answer.text and "Traceback" not in answer.text
    assert "relink.page" in caplog.text and "RuntimeError" in caplog.text
    assert token not in caplog.text


def test_no_token_reaches_the_log_during_a_whole_relink(broken, client, caplog):
    with caplog.at_level(logging.DEBUG):
        token = issue_token(broken)
        submit(client, token, password="still-wrong")
        submit(client, token, password=NEW_PASSWORD)
        client.get(f"/relink/{token}")
    assert "relink page: connection" in caplog.text  # the log did capture the flow
    assert token not in caplog.text


def test_waitress_log_lines_lose_the_token_path(rt):
    from web.server import make_server

    server = make_server(rt, "127.0.0.1", 0)
    try:
        record = logging.LogRecord(
            "waitress", logging.INFO, __file__, 1, "Client disconnected while serving %s", ("/relink/s3cret-token",), None
        )
        for f in logging.getLogger("waitress").filters:
            f.filter(record)
        assert record.getMessage() == "Client disconnected while serving /relink/<redacted>"
    finally:
        server.close()


def test_working_credentials_with_something_else_wrong_say_what_and_keep_the_link(broken, client):
    broken.server.delete_calendar(broken.calendar_url)
    token = issue_token(broken)
    answer = submit(client, token, password=NEW_PASSWORD)
    assert answer.status_code == 200
    assert "accepted, but the calendar is not working yet" in answer.text
    status = broken.status()
    assert status["status"] != "active"
    assert status["reason"][1:] in answer.text  # said as a sentence: capitalised
    text = words(answer)
    assert "Status: Calendar missing" in text and "Choose the calendar your appointments should go to" in text
    assert client.get(f"/relink/{token}").status_code == 200  # the same link can try again


def test_a_feed_that_needs_a_new_address_is_not_said_to_reject_credentials(broken, client):
    m.Connection.update(provider="ics", reason="the feed answered HTTP 404 (not found)").where(m.Connection.id == broken.conn_id).execute()
    text = words(client.get(f"/relink/{issue_token(broken)}"))
    assert "Your calendar feed address no longer works" in text
    assert "Details: The feed answered HTTP 404 (not found)." in text
    assert "credentials" not in text and "password" not in text.lower()
    assert "Paste the calendar's current feed address" in text


def test_an_outage_says_how_long_in_words_and_the_reason_once(broken, client):
    began = clock.now() - dt.timedelta(hours=3, minutes=10)
    m.Connection.update(
        status=m.UNREACHABLE, reason="the provider has failed for 0.0 hours: connection refused", failing_since=began
    ).where(m.Connection.id == broken.conn_id).execute()
    text = words(client.get(f"/relink/{issue_token(broken)}"))
    assert "Your calendar is unreachable" in text
    assert "Details: No answer for 3 hours: connection refused." in text
    assert "0.0 hours" not in text and text.count("connection refused") == 1


def test_a_working_connection_is_not_said_to_be_unable_to_sync(broken, client):
    token = issue_token(broken)
    m.Connection.update(status=m.PENDING, reason="").where(m.Connection.id == broken.conn_id).execute()
    pending = client.get(f"/relink/{token}")
    assert "<title>Your calendar is pending its first sync · Calsync</title>" in pending.text
    assert "cannot sync" not in pending.text and "first sync has not finished" in pending.text
    m.Connection.update(status=m.ACTIVE).where(m.Connection.id == broken.conn_id).execute()
    active = words(client.get(f"/relink/{token}"))
    assert "Your calendar is active" in active and "Status Active" in active and "cannot sync" not in active


def test_a_used_or_unknown_download_link_explains_itself_in_html(broken, client):
    path = "/download/" + actions.download_link(broken.rt, broken.conn_id)["url"].rsplit("/download/", 1)[1]
    assert client.get(path).status_code == 200
    used, unknown = client.get(path), client.get("/download/" + "x" * 43 + ".ics")
    assert used.status_code == unknown.status_code == 410 and used.data == unknown.data
    assert used.mimetype == "text/html"
    text = words(used)
    assert "This download link does not work any more" in text and "already used, or it has expired" in text
    assert "/calsync download" in text  # what to do next
    assert "default-src 'none'" in used.headers["Content-Security-Policy"]


def test_the_request_page_says_how_the_link_arrives_for_each_set_of_channels():
    from core.actions.relinking import request_words

    assert "by e-mail and as a Slack message" in request_words(["email", "slack"])["message"]
    assert "as a Slack message" in request_words(["slack"])["message"]
    assert "e-mail" not in request_words(["slack"])["message"]
    assert request_words(["slack"])["title"] == "Check Slack"
    assert "support team" in request_words([])["message"] and "nothing was sent" in request_words([])["message"]


def test_a_nextcloud_preset_gives_a_pattern_not_an_address_and_the_feed_a_webcal_link(rt, client):
    actions.add_staff(rt, "ada@example.com", "Ada Lovelace", timezone="Europe/Berlin")
    path = "/connect/" + actions.connect_link(rt, "ada@example.com")["url"].rsplit("/connect/", 1)[1]
    page = client.get(path + "?preset=nextcloud")
    assert 'placeholder="https://YOUR-NEXTCLOUD/remote.php/dav/"' in page.text and 'value=""' in page.text
    assert "Devices &amp; sessions" in page.text and 'aria-current="true"' in page.text
    feed = actions.feed_url(rt, "ada@example.com")["url"]
    assert f'href="{feed.replace("http://", "webcal://")}"' in page.text
    assert "(Europe/Berlin)" in page.text and "UTC" not in words(page)
    hostile = client.get(path + "?preset=%3Cscript%3E")
    assert hostile.status_code == 200 and "<script>" not in hostile.text


def test_an_account_with_two_calendars_asks_which_one_and_only_this_browser_may_choose(rt, client, radicale):
    from core.actions.links import CHOICE_MINUTES

    radicale.make_calendar("work", "Work")
    radicale.make_calendar("personal", "Personal")
    actions.add_staff(rt, "ada@example.com", "Ada Lovelace", timezone="Europe/Berlin")
    path = "/connect/" + actions.connect_link(rt, "ada@example.com")["url"].rsplit("/connect/", 1)[1]
    form = {
        "csrf_token": csrf_token(client.get(path).text),
        "provider": "caldav",
        "url": radicale.base_url,
        "username": radicale.username,
        "password": radicale.password,
    }
    step = client.post(path, data=form)
    assert step.status_code == 200 and "Choose the calendar for your appointments" in step.text
    (conn,) = m.Connection.select()
    assert conn.status == m.PENDING and conn.last_sync_at is None  # nothing written before the choice
    assert conn.next_sync_at >= clock.now() + dt.timedelta(minutes=CHOICE_MINUTES - 1)
    value = dict(re.findall(r'<label for="calendar-(\d+)">([^<]*)</label>', step.text))
    chosen = next(k for k, name in value.items() if name == "Personal")
    choice = {"csrf_token": csrf_token(step.text), "connection": str(conn.id), "calendar": chosen}

    stranger = create_app(rt).test_client()  # the same (spent) link, another browser: refused
    other = actions.connect_link(rt, "ada@example.com")["url"].rsplit("/connect/", 1)[1]
    token = csrf_token(stranger.get(f"/connect/{other}").text)
    refused = stranger.post(path + "/calendar", data={**choice, "csrf_token": token})
    assert refused.status_code == 410
    assert m.Calendar.get(m.Calendar.is_destination == True).name == "Work"

    done = client.post(path + "/calendar", data=choice)
    assert done.status_code == 200 and "Calendar connected" in done.text
    assert 'Your appointments go to the calendar <strong class="wrap">Personal</strong>' in done.text
    assert m.Connection.get_by_id(conn.id).status == m.ACTIVE
    assert m.Calendar.get(m.Calendar.is_destination == True).name == "Personal"
