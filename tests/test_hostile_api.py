"""Hostile input to the host API, through calsync's real web server (waitress on 127.0.0.1), a real
SQLite database and a real CalDAV server (Radicale).

Every bad request gets a clear JSON error and changes nothing: the appointment does not exist, the
staff member's feed still answers valid iCalendar, a sync still succeeds, and no one else notices.
A locked database is a 503 with Retry-After for writes and no obstacle for reads.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
import subprocess
import sys
import time
import types
from urllib.parse import quote

import icalendar
import pytest
import requests
import vobject
from conftest import ROOT, Story, running_web, soon, started, web_env
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from servers import start_server

import models as m
from core import actions, clock, feeds, ics, waiting

ADA = "ada@example.com"
GRACE = "grace@example.com"


# -- the site: server, database, CalDAV, a host with a key ------------------------------------


class Api:
    """The host product over real HTTP."""

    def __init__(self, base: str, key: str):
        self.base, self.session = base, requests.Session()
        self.session.headers["Authorization"] = f"Bearer {key}"

    def put(self, appointment_id: str, body=None, *, data: bytes | None = None):
        raw = json.dumps(body).encode() if data is None else data
        return self.session.put(
            f"{self.base}/api/v1/appointments/{url_id(appointment_id)}", data=raw, headers={"Content-Type": "application/json"}, timeout=30
        )

    def get(self, path: str, **params):
        return self.session.get(f"{self.base}/api/v1{path}", params=params, timeout=30)

    def delete(self, path: str):
        return self.session.delete(f"{self.base}/api/v1{path}", timeout=30)


def url_id(appointment_id: str) -> str:
    # Dots too: a client would otherwise fold "." and ".." away before they reach the server.
    return quote(appointment_id, safe="").replace(".", "%2E")


@pytest.fixture
def site(tmp_path):
    server = start_server("radicale", tmp_path / "radicale")
    try:
        with started(web_env(tmp_path)) as rt:
            story = Story(rt, server)
            actions.add_staff(rt, GRACE, "Grace Hopper", timezone="Europe/London")
            actions.upsert_appointment(rt, "G-1", GRACE, soon(3).isoformat(), soon(3, 11).isoformat(), "Grace's session")
            for email in (ADA, GRACE):
                actions.feed_url(rt, email)  # made now: a test that locks the database only reads it
            with running_web(rt):
                yield types.SimpleNamespace(rt=rt, story=story, api=Api(rt.settings.base_url, actions.apikey_create(rt, "host")["key"]))
    finally:
        server.stop()


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def good_body(**changes) -> dict:
    start = soon(4, 9)
    return {"staff": ADA, "start": iso(start), "end": iso(start + dt.timedelta(hours=1)), "subject": "Coaching", **changes}


def json_error(answer, status: int, code: str | None = None) -> dict:
    assert answer.status_code == status, (answer.status_code, answer.text[:300])
    assert answer.headers["Content-Type"].startswith("application/json"), answer.headers["Content-Type"]
    body = answer.json()
    assert set(body) == {"error", "message"} and body["message"].strip()
    assert "Traceback" not in body["message"] and "<html" not in body["message"].lower()
    if code is not None:
        assert body["error"] == code, body
    return body


def appointments() -> list[tuple]:
    return [
        (a.external_id, a.staff_id, a.starts_at, a.ends_at, a.subject, a.version, a.cancelled)
        for a in m.Appointment.select().order_by(m.Appointment.id)
    ]


def feed_events(rt, email: str) -> list:
    """The staff member's feed over HTTP: 200, and valid iCalendar to two independent parsers."""
    url = actions.feed_url(rt, email)["url"]
    answer = requests.get(url, timeout=30)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/calendar"), answer.text[:300]
    text = answer.content.decode("utf-8")
    assert not [c for c in text if ord(c) < 0x20 and c not in "\r\n\t"], "a control character in the feed"
    list(vobject.readComponents(text))  # raises on anything malformed
    events = icalendar.Calendar.from_ical(text).walk("VEVENT")
    assert all(str(vevent.get("UID", "")).strip() for vevent in events)
    return events


def assert_unharmed(site, before: list[tuple]) -> None:
    """Nothing stored changed, both feeds answer valid iCalendar, and a sync succeeds."""
    assert appointments() == before
    feed_events(site.rt, ADA)
    assert [str(e["SUMMARY"]) for e in feed_events(site.rt, GRACE)] == ["Grace's session"]
    report = site.story.sync()
    assert report["outcome"] == "ok", report


# -- 1. appointment ids ---------------------------------------------------------------------


BAD_IDS = [
    "bad\nid",
    "bad\rid",
    "tab\tid",
    "nul\x00id",
    "space id",
    "semi;colon",
    "comma,id",
    "back\\slash",
    'quote"id',
    "<script>",
    "é-accent",
    "\u202eevil",
    "zero\u200bwidth",
    ".",
    "..",
    "per%cent",
    "hash#id",
]


@pytest.mark.parametrize("bad", BAD_IDS, ids=repr)
def test_an_id_outside_the_set_is_400_bad_id_for_every_method_and_changes_nothing(site, bad):
    before = appointments()
    for answer in (
        site.api.put(bad, good_body()),
        site.api.get(f"/appointments/{url_id(bad)}"),
        site.api.delete(f"/appointments/{url_id(bad)}"),
    ):
        error = json_error(answer, 400, "bad_id")
        assert "A-Z a-z 0-9 . _ : @ ~ + = -" in error["message"]
    assert_unharmed(site, before)


def test_every_character_of_the_documented_set_is_accepted_and_rendered_plainly(site):
    weird_but_valid = "Aa0._:@~+=-" + "z" * 189  # 200 characters
    created = site.api.put(weird_but_valid, good_body(subject="émoji 🎉 ﷺ right-to-left\ttab \"'`"))
    assert created.status_code == 201, created.text
    assert site.api.get(f"/appointments/{url_id(weird_but_valid)}").json()["id"] == weird_but_valid
    [event] = feed_events(site.rt, ADA)
    assert str(event["UID"]) == f"calsync-{weird_but_valid}@calsync"
    assert site.story.sync()["outcome"] == "ok"
    assert len(site.story.events()) == 1


def test_an_overlong_id_is_400_and_the_core_names_the_rule(site):
    before = appointments()
    assert "1 to 200 characters" in json_error(site.api.put("A" * 201, good_body()), 400, "bad_id")["message"]
    with pytest.raises(actions.InvalidInput, match="A-Z a-z 0-9"):
        actions.upsert_appointment(site.rt, "bad\nid", ADA, soon(2).isoformat(), soon(2, 11).isoformat(), "x")
    assert appointments() == before


def test_a_bad_id_stored_before_the_check_breaks_neither_feed_nor_sync(site):
    """Defence in depth: a database from before ids were checked may hold one."""
    staff = m.Staff.get(m.Staff.email == ADA)
    legacy = "bad\nid\x00\x1b[31m"
    row = m.Appointment.create(
        external_id=legacy, staff=staff, uid=f"calsync-{legacy}@calsync", starts_at=soon(2), ends_at=soon(2, 11), subject="Legacy"
    )
    waiting.after_appointment_change(row)  # queued for the calendar, as the old upsert did
    actions.upsert_appointment(site.rt, "A-1", ADA, soon(3).isoformat(), soon(3, 11).isoformat(), "Fresh")
    events = feed_events(site.rt, ADA)
    assert sorted(str(e["SUMMARY"]) for e in events) == ["Fresh", "Legacy"]
    assert str(events[0]["UID"]) == ics.appointment_uid(legacy) and "\n" not in str(events[0]["UID"])
    assert site.story.sync()["outcome"] == "ok"
    assert len(site.story.events()) == 2
    assert site.story.sync()["outcome"] == "ok"  # reading its own copies back does not trip either
    # The host can still cancel it (by its exact id) and so clean up.
    assert actions.cancel_appointment(site.rt, legacy)["change"] == "cancelled"


def test_one_unrenderable_row_costs_its_own_event_not_the_feed(site, monkeypatch):
    actions.upsert_appointment(site.rt, "A-1", ADA, soon(2).isoformat(), soon(2, 11).isoformat(), "Fine")
    actions.upsert_appointment(site.rt, "A-2", ADA, soon(3).isoformat(), soon(3, 11).isoformat(), "Broken")
    real = ics.feed_event

    def feed_event(appointment, stamp):
        event = real(appointment, stamp)
        if appointment.external_id == "A-2":
            event.add("X-RAW", "line\nbreak")  # unescaped, as the id marker was before
        return event

    monkeypatch.setattr(ics, "feed_event", feed_event)
    feeds._RENDERED.clear()
    assert [str(e["SUMMARY"]) for e in feed_events(site.rt, ADA)] == ["Fine"]


# -- 2. times ---------------------------------------------------------------------------------


BAD_TIMES = [
    "9999-12-31T23:00:00-05:00",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:30:00",
    "10000-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "2200-01-01T00:00:01Z",
    "2026-12-01T10:00:00+23:59",
    "2026-12-01T10:00:00-18:00",
    "2026-12-01T10:00:00+99:00",
    "9999-12-31T23:59:59.999999",
    "x" * 5000,
    "",
    "2026-13-01T00:00:00Z",
]


@pytest.mark.parametrize("bad", BAD_TIMES, ids=lambda t: t[:30])
def test_a_time_out_of_range_is_422_in_put_and_busy_and_changes_nothing(site, bad):
    before = appointments()
    for field in ("start", "end"):
        body = good_body(**{field: bad}) if bad else good_body(**{field: " "})
        json_error(site.api.put("A-1", body), 422, "invalid")
        json_error(site.api.put("NY-1", dict(body, timezone="America/New_York")), 422, "invalid")
    if bad:
        json_error(site.api.get(f"/staff/{ADA}/busy", **{"from": bad, "to": iso(soon(5))}), 422, "invalid")
        json_error(site.api.get(f"/staff/{ADA}/busy", **{"from": iso(soon(1)), "to": bad}), 422, "invalid")
    assert_unharmed(site, before)


def test_the_range_edges_are_accepted(site):
    assert site.api.put("EDGE-1", good_body(start="1970-01-01T00:00:00Z", end="1970-01-01T01:00:00Z")).status_code == 201
    assert site.api.put("EDGE-2", good_body(start="2199-12-31T23:00:00Z", end="2200-01-01T00:00:00Z")).status_code == 201
    answer = site.api.get(f"/staff/{ADA}/busy", **{"from": "2199-06-01T00:00:00Z", "to": "2200-01-01T00:00:00+00:00"})
    assert answer.status_code == 200 and answer.json()["busy"] == [{"start": "2199-12-31T23:00:00Z", "end": "2200-01-01T00:00:00Z"}]


def test_book_says_one_line_for_a_time_out_of_range(site):
    env = {**os.environ, "CALSYNC_DATA_DIR": str(site.rt.settings.data_dir)}
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "run_console.py"),
            "book",
            ADA,
            "--start",
            "9999-12-31T23:00:00-05:00",
            "--end",
            "9999-12-31T23:30:00-05:00",
            "--subject",
            "Far",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "outside the supported range 1970-01-01 to 2200-01-01" in result.stderr


# -- 3. malformed JSON ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, words",
    [
        (b"[" * 15_000 + b"]" * 15_000, "levels deep"),  # under the 32 KiB limit: a parser's recursion, not a size
        (b'{"a":' * 5_000 + b"1" + b"}" * 5_000, "levels deep"),
        (b'{"staff": ' + b"[" * 12_000, "levels deep"),  # not even closed
        (b'{"staff": "' + b"[" * 10_000 + b'"}', "'start' is required"),  # brackets inside a string are text
        (b'{"staff": "ada@example.com", "subject": "\xff\xfe"}', "not UTF-8"),
        ('{"subject": "x"}'.encode("utf-16"), "not UTF-8"),
        (b'{"start": NaN}', "NaN"),
        (b'{"start": Infinity}', "Infinity"),
        (b'{"start": -Infinity}', "-Infinity"),
        (b'{"subject": "a", "subject": "b"}', "appears twice"),
        (b'{"subject": "\\ud800"}', "unpaired surrogate"),
        (b'{"subject": ["\\udfff"]}', "unpaired surrogate"),
    ],
    ids=[
        "15000-deep-arrays",
        "5000-deep-objects",
        "unclosed",
        "brackets-in-string",
        "not-utf8",
        "utf16",
        "nan",
        "inf",
        "-inf",
        "dup",
        "surrogate",
        "surrogate-in-list",
    ],
)
def test_malformed_json_is_400_and_changes_nothing(site, raw, words):
    before = appointments()
    body = json_error(site.api.put("A-1", data=raw), 422 if "required" in words else 400)
    assert words in body["message"], body
    assert_unharmed(site, before)


@pytest.mark.parametrize("field", ["subject", "location", "description"])
def test_control_characters_in_texts_are_422(site, field):
    before = appointments()
    body = json_error(site.api.put("A-1", good_body(**{field: "Hi\x00\x1b[2Jthere"})), 422, "invalid")
    assert "control characters" in body["message"] and "U+0000" in body["message"]
    assert_unharmed(site, before)
    assert site.api.put("A-2", good_body(description="two\r\nlines\tand a tab", subject="Tab\there")).status_code == 201


# -- 4. every API error is JSON ---------------------------------------------------------------


def test_an_unexpected_error_is_json_500_without_internals_and_pages_keep_html(site, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("secret internals /srv/calsync/models.py line 42")

    monkeypatch.setattr(actions, "get_appointment", explode)
    body = json_error(site.api.get("/appointments/A-1"), 500, "internal")
    assert "secret" not in body["message"] and "models.py" not in body["message"]
    monkeypatch.setattr(actions, "relink_page", explode)
    page = requests.get(f"{site.rt.settings.base_url}/relink/{'x' * 43}", timeout=30)
    assert page.status_code == 500 and page.headers["Content-Type"].startswith("text/html")
    assert "secret" not in page.text and "nothing was changed" in page.text
    # Failing before any route is chosen (opening the database), on a known or an unknown endpoint: JSON all the same.
    # Each server thread keeps its connection open between requests: say none is open, so every request
    # opens one (whichever thread serves it), and opening it fails.
    monkeypatch.setattr(m.db.obj, "is_closed", lambda: True)
    monkeypatch.setattr(m.db.obj, "connect", explode)
    for path in ("/appointments/A-1", "/no/such/endpoint"):
        assert "secret" not in json_error(site.api.get(path), 500, "internal")["message"]


# -- 5./6. a locked database ------------------------------------------------------------------


@pytest.fixture
def quick_busy(monkeypatch):
    monkeypatch.setenv(m.BUSY_TIMEOUT_ENV, "1")  # read when the runtime opens the database (15 s by default)
    yield
    m.set_busy_timeout(m.DEFAULT_BUSY_WAIT_SECONDS)


@pytest.fixture
def locked(site):
    """Another process's write transaction on the same file, held until the test ends."""
    url = site.rt.settings.database_url
    assert url.startswith("sqlite:///")
    other = sqlite3.connect(url[len("sqlite:///") :], isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    yield other
    other.execute("ROLLBACK")
    other.close()


def test_reads_succeed_while_another_process_holds_the_write_lock(quick_busy, site, locked):
    assert m.ApiKey.get(m.ApiKey.name == "host").last_used_at is None  # its first use wants to write it
    started_at = time.monotonic()
    for answer in (
        site.api.get(f"/staff/{ADA}/connections"),
        site.api.get("/appointments/G-1"),
        site.api.get(f"/staff/{ADA}/busy", **{"from": iso(soon(1)), "to": iso(soon(6))}),
    ):
        assert answer.status_code == 200, answer.text
    assert time.monotonic() - started_at < 0.9  # not one wait for the lock (1 s here, 15 s in production)
    feed_events(site.rt, GRACE)


def test_a_write_under_the_lock_is_503_with_retry_after_and_stores_nothing(quick_busy, site, locked):
    before = appointments()
    started_at = time.monotonic()
    answer = site.api.put("A-1", good_body())
    assert 0.9 < time.monotonic() - started_at < 5  # waited out the busy timeout, then said so
    assert json_error(answer, 503, "busy")["message"] == m.BUSY_MESSAGE
    assert answer.headers["Retry-After"] == "5"
    json_error(site.api.delete("/appointments/G-1"), 503, "busy")
    locked.execute("ROLLBACK")
    locked.execute("BEGIN")  # released: the retry goes through
    assert appointments() == before
    assert site.api.put("A-1", good_body()).status_code == 201
    assert m.AuditEntry.select().where(m.AuditEntry.target == "A-1").count() == 1


def test_an_html_page_under_the_lock_is_a_503_page(quick_busy, site, locked, monkeypatch):
    def write(*args, **kwargs):
        m.AuditEntry.create(actor="t", action="page.write")

    monkeypatch.setattr(actions, "relink_page", write)
    page = requests.get(f"{site.rt.settings.base_url}/relink/{'x' * 43}", timeout=30)
    assert page.status_code == 503 and page.headers["Content-Type"].startswith("text/html")
    assert page.headers["Retry-After"] == "5" and "try again" in page.text


def test_last_used_is_recorded_once_per_interval_not_per_request(site):
    def used() -> dt.datetime | None:
        site.api.get("/appointments/G-1")
        return m.ApiKey.get(m.ApiKey.name == "host").last_used_at

    first = used()
    assert first is not None and used() == first
    later = clock.now() + dt.timedelta(minutes=11)
    clock.set_now(lambda: later)
    assert used() > first


# -- 7. whatever is thrown at PUT --------------------------------------------------------------


plain_ids = st.text(alphabet="ABCxyz019._:@~+=-", min_size=1, max_size=12)
offsets = st.sampled_from([dt.UTC, dt.timezone(dt.timedelta(hours=-5)), dt.timezone(dt.timedelta(hours=23, minutes=59))])
times = st.one_of(
    st.datetimes(dt.datetime(1, 1, 2), dt.datetime(9999, 12, 30), timezones=offsets).map(dt.datetime.isoformat),
    st.datetimes(dt.datetime(2026, 1, 1), dt.datetime(2027, 1, 1)).map(dt.datetime.isoformat),
    st.text(max_size=40),
    st.integers(),
    st.none(),
)
texts = st.one_of(st.text(max_size=60), st.integers(), st.none(), st.lists(st.text(max_size=3), max_size=2))
bodies = st.fixed_dictionaries(
    {},
    optional={
        "staff": st.sampled_from([ADA, ADA.upper(), "nobody@example.com", "", GRACE]),
        "start": times,
        "end": times,
        "subject": texts,
        "description": texts,
        "location": texts,
        "timezone": st.one_of(st.sampled_from(["Europe/Berlin", "America/New_York", "Mars/Base", "../../etc/passwd"]), texts),
        "extra": texts,
    },
)


def printable(**size):
    """Any text a host may send and calsync stores: everything but controls and lone surrogates (and sometimes those)."""
    return st.one_of(st.text(st.characters(blacklist_categories=("Cc", "Cs")), **size), st.text(**size))


# A good body with a field or two replaced: most of these are stored, so the feed has hostile-but-valid text to carry.
nearly_good = st.builds(
    lambda body, changes: {**good_body(), **body, **changes},
    st.fixed_dictionaries(
        {},
        optional={"subject": printable(min_size=1, max_size=40), "location": printable(max_size=40), "description": printable(max_size=80)},
    ),
    st.one_of(st.just({}), bodies.map(lambda b: dict(list(b.items())[:1]))),
)
encoded = st.one_of(nearly_good, nearly_good, bodies).map(lambda body: json.dumps(body).encode())
raw_bodies = st.one_of(encoded, st.binary(max_size=200), st.integers(1, 3000).map(lambda n: b"[" * n + b"]" * n))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(appointment_id=st.one_of(plain_ids, plain_ids, st.text(min_size=1, max_size=30)), raw=raw_bodies)
def test_nothing_thrown_at_put_is_a_5xx_or_breaks_the_feed(site, appointment_id, raw):
    before = appointments()
    answer = site.api.put(appointment_id, data=raw)
    event(f"status {answer.status_code}")
    assert answer.status_code < 500, answer.text[:300]
    if answer.status_code >= 400:
        body = answer.json()
        assert body["error"] and body["message"]
        assert appointments() == before
    else:
        assert m.Appointment.get(m.Appointment.external_id == appointment_id).staff.email in (ADA, GRACE)
        report = site.story.sync()  # what was stored also reaches the calendar
        assert report["outcome"] == "ok", report
    feed_events(site.rt, ADA)
    assert "Grace's session" in [str(e["SUMMARY"]) for e in feed_events(site.rt, GRACE)]
