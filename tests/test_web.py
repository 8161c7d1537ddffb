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


def csrf_token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def submit(client, token: str, **form):
    page = client.get(f"/relink/{token}")
    return client.post(f"/relink/{token}", data={"csrf_token": csrf_token(page.text), **form})


def test_healthz_reports_the_database_and_schema(client):
    answer = client.get("/healthz")
    assert answer.status_code == 200
    assert answer.json == {"status": "ok", "database": "ok", "schema_version": m.SCHEMA_VERSION, "outbox_backlog": 0,
                           "scheduler": {"state": "none", "last_beat": None, "schedulers": 0}}


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
    assert "rejected our credentials" in text
    assert "Relink required" in text
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


def test_an_unknown_link_gets_a_clear_404_with_the_new_link_form(client):
    answer = client.get("/relink/not-a-real-token")
    assert answer.status_code == 404
    assert "This link is not valid" in answer.text
    assert 'action="/relink/request"' in answer.text and 'name="email"' in answer.text
    assert "Traceback" not in answer.text


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


def test_asking_for_a_new_link_answers_the_same_for_any_address(broken, client):
    def ask(email):
        form = client.get("/relink/request")
        return client.post("/relink/request", data={"csrf_token": csrf_token(form.text), "email": email})

    later = clock.now() + dt.timedelta(minutes=6)  # past the throttle after the incident's own link
    clock.set_now(lambda: later)
    links_before = m.RelinkLink.select().count()
    known, unknown = ask("ada@example.com"), ask("nobody@example.com")
    assert known.status_code == unknown.status_code == 200
    assert known.text == unknown.text
    assert "a new link is on its way" in known.text
    # Ada's live link is mailed again (never revoked, never replaced); nobody@ gets nothing.
    assert m.RelinkLink.select().count() == links_before
    assert m.Notification.select().where(m.Notification.event == "relink.link").count() == 1
    again = ask("ada@example.com")
    assert again.text == known.text
    assert m.RelinkLink.select().count() == links_before  # asking again at once revokes nothing


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
        record = logging.LogRecord("waitress", logging.INFO, __file__, 1,
                                   "Client disconnected while serving %s", ("/relink/s3cret-token",), None)
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
    assert status["reason"] in answer.text
    assert client.get(f"/relink/{token}").status_code == 200  # the same link can try again
