"""The host API (`/api/v1`) as the host scheduling product sees it: over HTTP, through Flask's test client.

tests/test_hostapi_core.py covers busy-time merging at the core level; here it is the
HTTP contract: bearer keys, status codes, JSON errors, "bad input changes nothing",
and the signed webhook the host receives when an appointment is edited outside.
"""

from __future__ import annotations

import datetime as dt
import http.server
import json
import threading

import pytest
from conftest import Story, make_env, soon, vevent

import models as m
from core import actions, clock, outbox, runtime, webhook
from core.config import load_settings
from web.app import create_app

ADA = "ada@example.com"


# -- helpers -----------------------------------------------------------------------------


class Host:
    """The host product's side of the API: a test client and a bearer key."""

    def __init__(self, rt, key: str | None = None):
        self.client = create_app(rt).test_client()
        self.key = key if key is not None else actions.apikey_create(rt, "host")["key"]

    def headers(self, key: str | None = None) -> dict:
        return {"Authorization": f"Bearer {self.key if key is None else key}"}

    def put(self, appointment_id: str, body=None, *, data=None, **kw):
        if data is None:
            return self.client.put(f"/api/v1/appointments/{appointment_id}", json=body, headers=self.headers(), **kw)
        return self.client.put(
            f"/api/v1/appointments/{appointment_id}", data=data, headers=self.headers(), content_type="application/json", **kw
        )

    def get(self, path: str, **kw):
        return self.client.get(f"/api/v1{path}", headers=self.headers(), **kw)

    def delete(self, path: str):
        return self.client.delete(f"/api/v1{path}", headers=self.headers())


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def appointment_body(start: dt.datetime, hours: float = 1, **changes) -> dict:
    body = {
        "staff": ADA,
        "start": iso(start),
        "end": iso(start + dt.timedelta(hours=hours)),
        "subject": "Coaching session",
        "description": "Bring the quarterly numbers",
        "location": "Room 4",
    }
    body.update(changes)
    return body


def assert_json_error(answer, status: int, code: str | None = None) -> dict:
    assert answer.status_code == status, answer.get_data(as_text=True)
    assert answer.is_json, answer.headers.get("Content-Type")
    body = answer.get_json()
    assert set(body) == {"error", "message"}
    assert isinstance(body["message"], str) and body["message"].strip()
    assert "Traceback" not in body["message"] and "<html" not in body["message"].lower()
    if code is not None:
        assert body["error"] == code
    return body


def snapshot() -> dict:
    """Every appointment with every field, and the links: what "nothing changed" means."""
    return {
        "appointments": [a.__data__.copy() for a in m.Appointment.select().order_by(m.Appointment.id)],
        "links": [
            (link.appointment_id, link.calendar_id, link.state, link.updated_at)
            for link in m.AppointmentLink.select().order_by(m.AppointmentLink.id)
        ],
    }


@pytest.fixture
def ada(rt):
    actions.add_staff(rt, ADA, "Ada Lovelace", timezone="Europe/Berlin")
    return m.Staff.get(m.Staff.email == ADA)


@pytest.fixture
def host(rt):
    return Host(rt)


# -- authentication ------------------------------------------------------------------------


def test_no_key_is_a_json_401_with_www_authenticate(rt, ada, host):
    for answer in (
        host.client.get("/api/v1/staff/ada@example.com/connections"),
        host.client.put("/api/v1/appointments/A-1", json=appointment_body(soon())),
        host.client.get("/api/v1/staff/ada@example.com/connections", headers={"Authorization": "Basic YWRhOnB3"}),
        host.client.get("/api/v1/staff/ada@example.com/connections", headers={"Authorization": "Bearer "}),
    ):
        body = assert_json_error(answer, 401, "unauthorized")
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
        assert "Authorization: Bearer" in body["message"]
    assert m.Appointment.select().count() == 0


def test_a_wrong_key_is_401_and_changes_nothing(rt, ada, host):
    for wrong in ("csk_" + "x" * 43, host.key[:-1] + ("A" if host.key[-1] != "A" else "B"), "not-even-a-key", "csk_" + "a" * 300):
        answer = host.client.put("/api/v1/appointments/A-1", json=appointment_body(soon()), headers=host.headers(wrong))
        body = assert_json_error(answer, 401, "unauthorized")
        assert "unknown or revoked" in body["message"]
        assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert m.Appointment.select().count() == 0


def test_a_valid_key_works_until_it_is_revoked(rt, ada, host):
    assert host.get("/staff/ada@example.com/connections").status_code == 200
    assert m.ApiKey.get(m.ApiKey.name == "host").last_used_at is not None
    actions.apikey_revoke(rt, "host")
    answer = host.put("A-1", appointment_body(soon()))
    assert_json_error(answer, 401, "unauthorized")
    assert_json_error(host.get("/staff/ada@example.com/connections"), 401)
    assert m.Appointment.select().count() == 0
    # a new key for the same host works at once
    other = Host(rt, actions.apikey_create(rt, "host-2")["key"])
    assert other.put("A-1", appointment_body(soon())).status_code == 201


# -- upsert, read, cancel -------------------------------------------------------------------


def test_put_creates_then_is_idempotent_then_updates(rt, ada, host):
    start = soon(3, 10)
    created = host.put("A-1", appointment_body(start))
    assert created.status_code == 201
    body = created.get_json()
    assert body["change"] == "created"
    assert body["id"] == "A-1" and body["staff"] == ADA and body["uid"] == "calsync-A-1@calsync"
    assert body["start"] == iso(start) and body["end"] == iso(start + dt.timedelta(hours=1))
    assert body["subject"] == "Coaching session" and body["description"] == "Bring the quarterly numbers"
    assert body["location"] == "Room 4" and body["cancelled"] is False and body["version"] == 1

    before = snapshot()
    audits = m.AuditEntry.select().count()
    again = host.put("A-1", appointment_body(start))
    assert again.status_code == 200
    assert again.get_json()["change"] == "unchanged" and again.get_json()["version"] == 1
    assert snapshot() == before  # not even updated_at moved
    assert m.AuditEntry.select().count() == audits  # an unchanged upsert is not an event

    # the same instant written with another offset is the same appointment
    same = appointment_body(start)
    same["start"] = start.astimezone(dt.timezone(dt.timedelta(hours=5, minutes=30))).isoformat()
    assert host.put("A-1", same).get_json()["change"] == "unchanged"

    changed = host.put("A-1", appointment_body(start, subject="Coaching session (2nd part)"))
    assert changed.status_code == 200
    assert changed.get_json()["change"] == "updated" and changed.get_json()["version"] == 2
    assert m.Appointment.get().subject == "Coaching session (2nd part)"

    shown = host.get("/appointments/A-1")
    assert shown.status_code == 200
    shown = shown.get_json()
    assert shown["subject"] == "Coaching session (2nd part)" and shown["version"] == 2 and shown["calendars"] == []
    assert m.Appointment.select().count() == 1


def test_delete_cancels_once_and_a_second_delete_is_unchanged(rt, ada, host):
    host.put("A-1", appointment_body(soon()))
    cancelled = host.delete("/appointments/A-1")
    assert cancelled.status_code == 200
    assert cancelled.get_json()["change"] == "cancelled" and cancelled.get_json()["cancelled"] is True
    assert cancelled.get_json()["version"] == 2
    before = snapshot()
    again = host.delete("/appointments/A-1")
    assert again.status_code == 200 and again.get_json()["change"] == "unchanged" and again.get_json()["version"] == 2
    assert snapshot() == before
    shown = host.get("/appointments/A-1").get_json()
    assert shown["cancelled"] is True and shown["cancel_reason"] == "cancelled by the host"
    audit = [(a.actor, a.action) for a in m.AuditEntry.select().where(m.AuditEntry.target == "A-1")]
    assert audit == [("api:host", "appointment.created"), ("api:host", "appointment.cancel")]


def test_unknown_appointments_are_json_404s(rt, ada, host):
    assert_json_error(host.get("/appointments/nope"), 404, "not_found")
    assert_json_error(host.delete("/appointments/nope"), 404, "not_found")
    # no route, or a method a route does not take: still JSON for the host, with or without a key
    assert_json_error(host.client.get("/api/v1/no-such-route", headers=host.headers()), 404, "not_found")
    assert_json_error(host.client.get("/api/v1/appointments/"), 404, "not_found")
    answer = host.client.post("/api/v1/appointments/A-1", json=appointment_body(soon()), headers=host.headers())
    assert_json_error(answer, 405, "method_not_allowed")
    assert {"PUT", "DELETE", "GET"} <= set(answer.headers["Allow"].replace(" ", "").split(","))
    assert m.Appointment.select().count() == 0
    # the rest of the site keeps its pages
    page = host.client.get("/no-such-page")
    assert page.status_code == 404 and page.mimetype == "text/html"


def test_an_unchanged_put_leaves_the_calendar_link_alone(story):
    host = Host(story.rt)
    body = appointment_body(soon(2, 11))
    assert host.put("A-1", body).status_code == 201
    first = story.sync()
    assert first["created"] == 1
    link = m.AppointmentLink.get()
    assert link.state == m.LINK_SYNCED
    before = snapshot()
    again = host.put("A-1", body)
    assert again.status_code == 200 and again.get_json()["change"] == "unchanged"
    assert snapshot() == before  # the link was not set back to pending
    report = story.sync()
    assert report["created"] == report["updated"] == report["deleted"] == 0
    (data,) = story.events().values()
    assert "SEQUENCE:0" in data
    shown = host.get("/appointments/A-1").get_json()
    assert shown["calendars"] == [{"calendar": "Work", "connection": story.conn_id, "state": "synced"}]


# -- validation: the right status, a plain JSON message, and nothing changed ------------------------


def _bad_bodies():
    start = dt.datetime(2026, 12, 3, 10, tzinfo=dt.UTC)
    good = appointment_body(start)
    without_subject = dict(good)
    del without_subject["subject"]
    return [
        ("end before start", 422, "invalid", dict(good, end=iso(start - dt.timedelta(hours=1))), "end after it starts"),
        ("end equals start", 422, "invalid", dict(good, end=good["start"]), "end after it starts"),
        ("unknown staff", 404, "not_found", dict(good, staff="nobody@example.com"), "nobody@example.com"),
        (
            "bad time zone",
            422,
            "invalid",
            dict(good, start="2026-12-03T10:00:00", end="2026-12-03T11:00:00", timezone="Mars/Olympus"),
            "Mars/Olympus",
        ),
        ("not a time", 422, "invalid", dict(good, start="next tuesday"), "ISO 8601"),
        ("unknown field", 422, "invalid", dict(good, colour="red"), "colour"),
        ("missing subject", 422, "invalid", without_subject, "subject"),
        ("blank subject", 422, "invalid", dict(good, subject="   "), "subject"),
        ("non-string subject", 422, "invalid", dict(good, subject=123), "subject"),
        ("null staff", 422, "invalid", dict(good, staff=None), "staff"),
        ("non-string description", 422, "invalid", dict(good, description=["a"]), "description"),
        ("non-string timezone", 422, "invalid", dict(good, timezone=5), "timezone"),
        ("too long", 422, "invalid", dict(good, end=iso(start + dt.timedelta(days=40))), "31 days"),
        ("oversized", 413, "too_large", dict(good, description="x" * 40_000), "32768 bytes"),
    ]


@pytest.mark.parametrize("case", _bad_bodies(), ids=lambda case: case[0])
def test_bad_input_is_refused_with_a_json_error_and_changes_nothing(rt, ada, host, case):
    _name, status, code, body, words = case
    assert host.put("A-1", appointment_body(soon(4, 9))).status_code == 201
    before, count = snapshot(), m.Appointment.select().count()
    for target in ("A-1", "A-2"):  # an existing appointment and a new one
        answer = host.put(target, body)
        error = assert_json_error(answer, status, code)
        assert words in error["message"], error
    assert m.Appointment.select().count() == count == 1
    assert snapshot() == before


@pytest.mark.parametrize(
    "raw, words",
    [
        (b'{"staff": "ada@example.com", "start": ', "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b'[{"staff": "ada@example.com"}]', "must be a JSON object"),
        (b'"just a string"', "must be a JSON object"),
        (b"", "must be a JSON object"),
    ],
    ids=["truncated", "not-utf8", "array", "string", "empty"],
)
def test_malformed_bodies_are_400_and_change_nothing(rt, ada, host, raw, words):
    host.put("A-1", appointment_body(soon(4, 9)))
    before = snapshot()
    for target in ("A-1", "A-2"):
        error = assert_json_error(host.put(target, data=raw), 400, "bad_json")
        assert words in error["message"]
    assert snapshot() == before and m.Appointment.select().count() == 1


def test_a_body_beyond_the_server_limit_is_still_a_json_413(rt, ada, host):
    answer = host.put("A-1", data=b'{"description": "' + b"x" * 100_000 + b'"}')
    assert_json_error(answer, 413, "too_large")
    assert m.Appointment.select().count() == 0


def test_an_overlong_appointment_id_is_400(rt, ada, host):
    error = assert_json_error(host.put("A" * 201, appointment_body(soon())), 400, "bad_id")
    assert "1 to 200 characters" in error["message"]
    assert m.Appointment.select().count() == 0


def test_naive_times_are_read_in_the_given_zone_and_stored_in_utc(rt, ada, host):
    winter = host.put(
        "NY-1",
        {
            "staff": ADA,
            "start": "2026-12-01T09:00:00",
            "end": "2026-12-01T09:45:00",
            "subject": "New York morning",
            "timezone": "America/New_York",
        },
    ).get_json()
    assert (winter["start"], winter["end"]) == ("2026-12-01T14:00:00Z", "2026-12-01T14:45:00Z")  # EST, UTC-5
    summer = host.put(
        "NY-2",
        {
            "staff": ADA,
            "start": "2026-07-01T09:00:00",
            "end": "2026-07-01T10:00:00",
            "subject": "New York summer",
            "timezone": "America/New_York",
        },
    ).get_json()
    assert summer["start"] == "2026-07-01T13:00:00Z"  # EDT, UTC-4
    # without a zone, the staff member's (Europe/Berlin, CET in December)
    berlin = host.put("B-1", {"staff": ADA, "start": "2026-12-01T09:00:00", "end": "2026-12-01T10:00:00", "subject": "Berlin"}).get_json()
    assert berlin["start"] == "2026-12-01T08:00:00Z"
    # an explicit offset wins over the zone
    offset = host.put(
        "O-1",
        {
            "staff": ADA,
            "start": "2026-12-01T09:00:00+01:00",
            "end": "2026-12-01T10:00:00+01:00",
            "subject": "Offset",
            "timezone": "America/New_York",
        },
    ).get_json()
    assert offset["start"] == "2026-12-01T08:00:00Z"
    stored = m.Appointment.get(m.Appointment.external_id == "NY-1")
    assert stored.starts_at == dt.datetime(2026, 12, 1, 14, tzinfo=dt.UTC)


# -- busy times ----------------------------------------------------------------------------------


def test_busy_needs_a_valid_range(rt, ada, host):
    path = "/staff/ada@example.com/busy"
    assert_json_error(host.get(path), 400, "missing_range")
    assert_json_error(host.get(path, query_string={"from": "2026-12-01T00:00:00Z"}), 400, "missing_range")
    error = assert_json_error(host.get(path, query_string={"from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"}), 422)
    assert "'to' must be after 'from'" in error["message"]
    assert_json_error(host.get(path, query_string={"from": "yesterday", "to": "2026-12-01T00:00:00Z"}), 422)
    assert_json_error(host.get(path, query_string={"from": "2026-01-01T00:00:00Z", "to": "2027-06-01T00:00:00Z"}), 422)
    assert_json_error(
        host.get("/staff/nobody@example.com/busy", query_string={"from": "2026-12-01T00:00:00Z", "to": "2026-12-02T00:00:00Z"}), 404
    )
    # offsets must be URL-encoded ('+' would be a space); encoded, they work
    ok = host.get(path, query_string={"from": "2026-12-01T00:00:00+01:00", "to": "2026-12-02T00:00:00+01:00"})
    assert ok.status_code == 200 and ok.get_json()["from"] == "2026-11-30T23:00:00Z"
    assert ok.get_json()["sources"] == [] and ok.get_json()["complete"] is True


def test_busy_merges_the_calendar_with_appointments_and_says_when_a_source_breaks(story):
    host = Host(story.rt)
    start = soon(2, 9)
    story.server.put_event(story.calendar_url, "x.ics", vevent("busy-1", start, start + dt.timedelta(hours=2), "Board meeting"))
    assert host.put("A-1", appointment_body(start + dt.timedelta(hours=1), hours=2)).status_code == 201
    assert host.put("A-2", appointment_body(start + dt.timedelta(hours=5), hours=1)).status_code == 201
    story.sync()
    query = {"from": iso(start - dt.timedelta(hours=1)), "to": iso(start + dt.timedelta(hours=10))}
    answer = host.get("/staff/ada@example.com/busy", query_string=query)
    assert answer.status_code == 200
    busy = answer.get_json()
    assert busy["staff"] == ADA and busy["from"] == query["from"] and busy["to"] == query["to"]
    assert busy["busy"] == [
        {"start": iso(start), "end": iso(start + dt.timedelta(hours=3))},  # the board meeting and A-1, merged
        {"start": iso(start + dt.timedelta(hours=5)), "end": iso(start + dt.timedelta(hours=6))},
    ]
    (source,) = busy["sources"]
    assert source["calendar"] == "Work" and source["provider"] == "caldav" and source["connection"] == story.conn_id
    assert source["status"] == "active" and source["state"] == "ok" and source["last_successful_sync"]
    assert busy["complete"] is True and busy["warnings"] == []
    last_ok = source["last_successful_sync"]

    story.server.set_password("x-1")
    story.sync()
    broken = host.get("/staff/ada@example.com/busy", query_string=query).get_json()
    assert broken["complete"] is False
    (warning,) = broken["warnings"]
    assert "Work" in warning and story.server.username in warning and "relink_required" in warning
    (source,) = broken["sources"]
    assert source["status"] == "relink_required" and source["state"] == "broken"
    assert source["last_successful_sync"] == last_ok
    assert broken["busy"] == busy["busy"]  # the last known busy times are still used


def test_connections_show_status_and_missed_count(story):
    host = Host(story.rt)
    story.sync()
    (conn,) = host.get("/staff/ada@example.com/connections").get_json()["connections"]
    assert conn["id"] == story.conn_id and conn["provider"] == "caldav" and conn["status"] == "active"
    assert conn["account"] and conn["missed"] == 0 and conn["last_successful_sync"]

    story.server.set_password("x-1")
    story.sync()
    host.put("A-1", appointment_body(soon(3)))
    host.put("A-2", appointment_body(soon(4)))
    story.sync()
    answer = host.get("/staff/ADA@example.com/connections")
    assert answer.status_code == 200 and answer.get_json()["staff"] == ADA
    (conn,) = answer.get_json()["connections"]
    assert conn["status"] == "relink_required" and conn["missed"] == 2
    assert conn["reason"] and conn["meaning"] and conn["since"]
    assert_json_error(host.get("/staff/nobody@example.com/connections"), 404, "not_found")


# -- the webhook the host receives -----------------------------------------------------------------


class Recorder(http.server.ThreadingHTTPServer):
    """A host endpoint on 127.0.0.1 that keeps every request it gets."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                recorder.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/calsync"


@pytest.fixture
def recorder():
    server = Recorder()
    server.thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def webhook_rt(tmp_path, recorder):
    env = make_env(tmp_path, CALSYNC_HOST_WEBHOOK_URL=recorder.url, CALSYNC_HOST_WEBHOOK_SECRET="s3cret")
    runtime_ = runtime.start(load_settings(env, read_dotenv=False))
    yield runtime_
    runtime_.close()
    clock.set_now(None)


def test_an_external_edit_is_posted_to_the_host_signed(webhook_rt, caldav, recorder):
    story = Story(webhook_rt, caldav)
    host = Host(webhook_rt)
    start = soon(2, 10)
    assert host.put("A-1", appointment_body(start, subject="Intro call")).status_code == 201
    story.sync()
    ((href, data),) = story.events().items()
    story.server.put_event(story.calendar_url, href.rsplit("/", 1)[-1], data.replace("Intro call", "Intro call (moved by Ada)"))
    story.sync()
    outbox.deliver_pending(webhook_rt)
    outbox.deliver_pending(webhook_rt)  # nothing is sent twice

    posts = [r for r in recorder.requests]
    assert len(posts) == 1, posts
    (post,) = posts
    assert post["path"] == "/hooks/calsync"
    assert post["headers"]["Content-Type"] == "application/json"
    payload = json.loads(post["body"])
    assert payload["event"] == "appointment.external_edit"
    assert payload["appointment"] == "A-1" and payload["staff"] == ADA
    assert payload["subject"] == "Intro call (moved by Ada)" and payload["changed"] == ["subject"]
    assert payload["version"] == 2 and payload["cancelled"] is False

    header = post["headers"]["X-Calsync-Signature"]
    parts = dict(part.split("=", 1) for part in header.split(","))
    assert set(parts) == {"t", "v1"}
    timestamp = int(parts["t"])
    assert abs(timestamp - dt.datetime.now(dt.UTC).timestamp()) < 300
    assert header == webhook.signature("s3cret", timestamp, post["body"])
    assert header != webhook.signature("wrong", timestamp, post["body"])
    assert "s3cret" not in post["body"].decode()

    # the host's own view follows the edit
    shown = host.get("/appointments/A-1").get_json()
    assert shown["subject"] == "Intro call (moved by Ada)" and shown["version"] == 2
