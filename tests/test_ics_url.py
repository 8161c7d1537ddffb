"""The read-only iCalendar URL busy source ("ics" provider) against a real HTTP server.

A small ThreadingHTTPServer on 127.0.0.1 plays the calendar service that
publishes a staff member's subscription link: each test sets what the link
answers (body, content type, status, headers, streamed or not) and reads back
the requests calsync made, so conditional GETs, redirects and refusals are
checked on the wire.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import http.server
import re
import threading
import time

import pytest
from conftest import make_env, soon

import models as m
from core import actions, clock, netguard, runtime
from core import http as core_http
from core.config import load_settings

STAFF = "ada@example.com"
SECRET = "s3cr3t-t0ken-4f9a71"
FEED_PATH = f"/private-{SECRET}/basic.ics"
CAL_NAME = "Ada's busy times"
UTC = dt.UTC


# -- the calendar service ------------------------------------------------------------


@dataclasses.dataclass
class Reply:
    body: bytes = b""
    status: int = 200
    content_type: str = "text/calendar; charset=utf-8"
    headers: dict = dataclasses.field(default_factory=dict)
    chunked: bool = False  # no Content-Length: the body is streamed in chunks


@dataclasses.dataclass
class Seen:
    method: str
    path: str
    headers: dict
    status: int = 0


class _FeedHTTPServer(http.server.ThreadingHTTPServer):
    feed: FeedServer  # set by FeedServer once it is made


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _FeedHTTPServer
    protocol_version = "HTTP/1.1"  # needed for chunked transfer encoding

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self.server.feed.answer(self)


class FeedServer:
    """Serves a mutable reply per path and records every request it receives."""

    def __init__(self, host: str = "127.0.0.1"):
        self.routes: dict[str, Reply] = {}
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self.httpd = _FeedHTTPServer((host, 0), _Handler)
        self.httpd.feed = self
        self.port = self.httpd.server_address[1]
        self.base = f"http://{host}:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def start(self) -> FeedServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)

    def url(self, path: str = FEED_PATH) -> str:
        return self.base + path

    def serve(self, body: str | bytes, path: str = FEED_PATH, **reply) -> None:
        """What ``path`` answers from now on."""
        self.routes[path] = Reply(body=body.encode() if isinstance(body, str) else body, **reply)

    def requests(self) -> list[Seen]:
        with self._lock:
            return list(self.seen)

    def forget_requests(self) -> None:
        with self._lock:
            self.seen.clear()

    # the server side of one request
    def answer(self, handler: _Handler) -> None:
        seen = Seen(handler.command, handler.path, dict(handler.headers.items()))
        with self._lock:
            self.seen.append(seen)
        reply = self.routes.get(handler.path) or Reply(b"not found", 404, "text/plain")
        etag = reply.headers.get("ETag")
        last_modified = reply.headers.get("Last-Modified")
        if_none_match = handler.headers.get("If-None-Match")
        if_modified_since = handler.headers.get("If-Modified-Since")
        not_modified = reply.status == 200 and (
            (etag is not None and if_none_match == etag)
            or (if_none_match is None and last_modified is not None and if_modified_since == last_modified)
        )
        seen.status = 304 if not_modified else reply.status
        handler.close_connection = True
        try:
            handler.send_response(seen.status)
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            handler.send_header("Connection", "close")
            if not_modified:
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
            handler.send_header("Content-Type", reply.content_type)
            if reply.chunked:
                handler.send_header("Transfer-Encoding", "chunked")
                handler.end_headers()
                for i in range(0, len(reply.body), 16 * 1024):
                    piece = reply.body[i : i + 16 * 1024]
                    handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                handler.wfile.write(b"0\r\n\r\n")
            else:
                handler.send_header("Content-Length", str(len(reply.body)))
                handler.end_headers()
                handler.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # calsync stopped reading (an oversized body): that is its right


@pytest.fixture
def feed():
    server = FeedServer().start()
    yield server
    server.stop()


@pytest.fixture
def runtime_with(tmp_path):
    """A runtime with extra settings, for tests that cannot use the default ``rt``."""
    started = []

    def start(**extra):
        assert not started, "one runtime per test: the database binding is global"
        started.append(runtime.start(load_settings(make_env(tmp_path, **extra), read_dotenv=False)))
        return started[0]

    yield start
    for rt_ in started:
        rt_.close()
    clock.set_now(None)


# -- building feeds --------------------------------------------------------------------


def _utc(value: dt.datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def event(uid: str, summary: str, start: dt.datetime | None = None, hours: float = 1, *, lines: str = "", times: str = "") -> str:
    """One VEVENT; ``times`` replaces the DTSTART/DTEND lines (zones, all-day dates)."""
    if not times:
        assert start is not None, "an event needs a start or its times"
        times = f"DTSTART:{_utc(start)}\r\nDTEND:{_utc(start + dt.timedelta(hours=hours))}\r\n"
    return f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\n{times}SUMMARY:{summary}\r\n{lines}END:VEVENT\r\n"


def calendar(*events: str, name: str | None = CAL_NAME) -> str:
    head = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Example Calendar Service//EN\r\n"
    if name:
        head += f"X-WR-CALNAME:{name}\r\n"
    return head + "".join(events) + "END:VCALENDAR\r\n"


def iso(value: dt.datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


# -- the user's side ---------------------------------------------------------------------


class Subscription:
    """A staff member who pasted the feed's subscription link into calsync."""

    def __init__(self, rt, server: FeedServer, body: str | bytes, path: str = FEED_PATH, timezone: str = "Europe/Berlin", **reply):
        self.rt = rt
        self.server = server
        server.serve(body, path, **reply)
        actions.add_staff(rt, STAFF, "Ada Lovelace", timezone=timezone)
        self.conn = actions.connect(rt, STAFF, "ics", url=server.url(path))
        self.conn_id = self.conn["id"]

    def publish(self, body: str | bytes, path: str = FEED_PATH, **reply) -> None:
        self.server.serve(body, path, **reply)

    def sync(self) -> dict:
        (report,) = actions.sync_now(self.rt, self.conn_id)
        assert not report["error"].startswith("internal error"), report
        return report

    def status(self) -> dict:
        return actions.get_connection(self.rt, self.conn_id)

    def entries(self) -> list[dict]:
        return actions.list_entries(self.rt, self.conn_id)

    def by_subject(self) -> dict[str, dict]:
        return {e["subject"]: e for e in self.entries()}

    def assert_secret_never_shown(self) -> None:
        status = self.status()
        host = self.server.base.split("://", 1)[1]
        assert status["account"].startswith(f"{host} · ") and re.search(r" #[0-9a-f]{4}$", status["account"])
        assert status["server"] == self.server.base
        assert SECRET not in repr(status)
        assert SECRET not in repr(self.entries())


def two_meetings() -> str:
    return calendar(
        event("standup-1", "Standup", soon(1, 9)),
        event("review-1", "Design review", soon(2, 14), hours=2),
    )


def assert_entries_kept(sub: Subscription, before: list[dict]) -> None:
    after = sub.entries()
    assert [(e["uid"], e["starts_at"], e["loaded"]) for e in after] == [(e["uid"], e["starts_at"], e["loaded"]) for e in before]


# -- 1. connecting and the first sync -----------------------------------------------------


def test_feed_is_named_from_its_calendar_name_and_busy_events_block_time(rt, feed):
    dentist = soon(2, 14)
    holiday = soon(4).date()
    far = soon(730, 10)
    body = calendar(
        event("dentist-1", "Dentist", dentist),
        event("focus-1", "Focus time", soon(3, 9), 2, lines="TRANSP:TRANSPARENT\r\n"),
        event("lunch-1", "Lunch with Bob", soon(3, 12), lines="STATUS:CANCELLED\r\n"),
        event(
            "holiday-1",
            "Public holiday",
            times=f"DTSTART;VALUE=DATE:{holiday:%Y%m%d}\r\nDTEND;VALUE=DATE:{holiday + dt.timedelta(days=1):%Y%m%d}\r\n",
        ),
        event("conf-1", "Conference in two years", far),
    )
    sub = Subscription(rt, feed, body)

    assert sub.conn["status"] == "pending"
    (cal,) = sub.conn["calendars"]
    assert cal["name"] == CAL_NAME
    assert cal["destination"] is False and cal["busy_source"] is True and cal["writable"] is False

    report = sub.sync()
    assert report["outcome"] == "ok", report
    assert sub.status()["status"] == "active"

    entries = sub.by_subject()
    assert set(entries) == {"Dentist", "Focus time", "Lunch with Bob", "Public holiday", "Conference in two years"}
    assert entries["Dentist"]["loaded"] is True
    assert entries["Dentist"]["starts_at"] == iso(dentist)
    assert entries["Dentist"]["ends_at"] == iso(dentist + dt.timedelta(hours=1))
    assert entries["Dentist"]["calendar"] == CAL_NAME
    expected_not_loaded = {
        "Focus time": "marked free/available",
        "Lunch with Bob": "cancelled",
        "Public holiday": "all-day event ignored by policy",
        "Conference in two years": "outside the sync window",
    }
    for subject, info in expected_not_loaded.items():
        assert entries[subject]["loaded"] is False, subject
        assert entries[subject]["info"] == info, subject
    not_loaded = actions.list_entries(rt, sub.conn_id, not_loaded_only=True)
    assert {e["subject"] for e in not_loaded} == set(expected_not_loaded)


def test_feed_link_secret_is_never_shown_only_its_host_and_a_hint(rt, feed):
    sub = Subscription(rt, feed, two_meetings())
    # Host, the feed's own name, and a tag from the keyed fingerprint: never the secret path.
    assert re.fullmatch(rf"127\.0\.0\.1:{feed.port} · {re.escape(CAL_NAME)} #[0-9a-f]{{4}}", sub.conn["account"])
    assert SECRET not in repr(sub.conn)
    sub.sync()
    sub.assert_secret_never_shown()
    feed.serve(b"", status=404, content_type="text/plain")
    sub.sync()
    sub.assert_secret_never_shown()
    assert SECRET not in repr([(c.new, c.provider_answer) for c in m.StatusChange.select()])


def test_feed_without_a_calendar_name_is_named_after_its_host(rt, feed):
    sub = Subscription(rt, feed, calendar(event("a", "A", soon()), name=None))
    assert [c["name"] for c in sub.conn["calendars"]] == [feed.base]


# -- 2. conditional GET -----------------------------------------------------------------------


def test_unchanged_feed_costs_one_small_request_and_keeps_the_entries(rt, feed):
    validators = {"ETag": '"v1"', "Last-Modified": "Wed, 25 Nov 2026 10:00:00 GMT"}
    sub = Subscription(rt, feed, two_meetings(), headers=validators)
    sub.sync()
    before = sub.entries()
    assert len(before) == 2

    feed.forget_requests()
    report = sub.sync()

    assert report["outcome"] == "ok", report
    assert report["requests"] == 1
    (request,) = feed.requests()
    assert request.headers.get("If-None-Match") == '"v1"'
    assert request.headers.get("If-Modified-Since") == "Wed, 25 Nov 2026 10:00:00 GMT"
    assert request.status == 304
    assert sub.entries() == before
    assert sub.status()["status"] == "active"


def test_feed_with_only_last_modified_is_also_fetched_conditionally(rt, feed):
    sub = Subscription(rt, feed, two_meetings(), headers={"Last-Modified": "Tue, 24 Nov 2026 08:00:00 GMT"})
    sub.sync()
    before = sub.entries()
    feed.forget_requests()
    report = sub.sync()
    (request,) = feed.requests()
    assert "If-None-Match" not in request.headers
    assert request.headers.get("If-Modified-Since") == "Tue, 24 Nov 2026 08:00:00 GMT"
    assert request.status == 304
    assert report["requests"] == 1
    assert sub.entries() == before


# -- 3. the feed changes -------------------------------------------------------------------------


def test_removed_moved_and_added_events_follow_the_feed(rt, feed):
    standup, review = soon(1, 9), soon(2, 14)
    sub = Subscription(
        rt,
        feed,
        calendar(event("standup-1", "Standup", standup), event("review-1", "Design review", review)),
        headers={"ETag": '"v1"'},
    )
    sub.sync()
    assert set(sub.by_subject()) == {"Standup", "Design review"}

    moved = review + dt.timedelta(hours=2)
    sub.publish(
        calendar(event("review-1", "Design review", moved), event("offsite-1", "Team offsite", soon(5, 10), 8)),
        headers={"ETag": '"v2"'},
    )
    report = sub.sync()

    assert report["outcome"] == "ok", report
    entries = sub.by_subject()
    assert set(entries) == {"Design review", "Team offsite"}
    assert entries["Design review"]["starts_at"] == iso(moved)
    assert entries["Team offsite"]["loaded"] is True
    assert feed.requests()[-1].status == 200


# -- 4./5. bodies that are not a calendar ------------------------------------------------------------


@pytest.mark.parametrize(
    "body, content_type",
    [
        (bytes(range(256)) * 16, "application/octet-stream"),
        (b"hello world", "text/calendar"),
        (b"", "text/calendar"),
    ],
    ids=["random-bytes", "hello-world", "empty"],
)
def test_garbage_instead_of_a_calendar_is_refused_and_nothing_is_lost(rt, feed, body, content_type):
    sub = Subscription(rt, feed, two_meetings())
    sub.sync()
    before = sub.entries()
    assert len(before) == 2

    sub.publish(body, content_type=content_type)
    report = sub.sync()

    assert report["outcome"] != "ok", report
    status = sub.status()
    assert "did not return an iCalendar file" in status["last_error"]
    assert report["error"] == status["last_error"]
    assert status["status"] == "active"
    assert_entries_kept(sub, before)


@pytest.mark.parametrize(
    "body, content_type",
    [
        (b"<html>login</html>", "text/html"),
        (b"<html>login</html>", "text/html; charset=utf-8"),
        (b"\n  <!DOCTYPE html><html><body>Please sign in</body></html>", "text/calendar"),
    ],
    ids=["text-html", "text-html-charset", "html-mislabelled-as-calendar"],
)
def test_a_login_web_page_is_refused_with_a_clear_reason(rt, feed, body, content_type):
    sub = Subscription(rt, feed, two_meetings())
    sub.sync()
    before = sub.entries()

    sub.publish(body, content_type=content_type)
    report = sub.sync()

    assert report["outcome"] != "ok", report
    status = sub.status()
    assert "web page" in status["last_error"]
    assert "not an iCalendar file" in status["last_error"]
    assert status["status"] == "active"
    assert_entries_kept(sub, before)


# -- 6. oversized bodies ----------------------------------------------------------------------------------


def big_calendar(size: int = 1024 * 1024) -> bytes:
    filler = "X" * 60
    parts, total, i = [], 0, 0
    while total < size:
        piece = event(f"filler-{i}", f"Meeting {i}", soon(1, 9), lines=f"DESCRIPTION:{filler}\r\n")
        parts.append(piece)
        total += len(piece)
        i += 1
    return calendar(*parts).encode()


@pytest.mark.parametrize("chunked", [False, True], ids=["with-content-length", "streamed-without-length"])
def test_a_feed_over_the_size_limit_is_refused_and_nothing_is_lost(runtime_with, feed, chunked):
    rt = runtime_with(CALSYNC_ICS_MAX_BYTES=2048)
    sub = Subscription(rt, feed, two_meetings())
    sub.sync()
    before = sub.entries()
    assert len(before) == 2

    big = big_calendar()
    sub.publish(big, chunked=chunked)
    started = time.monotonic()
    report = sub.sync()

    assert time.monotonic() - started < 5
    assert report["outcome"] != "ok", report
    status = sub.status()
    assert "larger than the 2048 bytes limit" in status["last_error"]
    # With a Content-Length the feed is refused on its headers, before the body is read.
    assert (f"({len(big)} bytes)" in status["last_error"]) is not chunked
    assert status["status"] == "active"
    assert_entries_kept(sub, before)


def test_connecting_to_a_feed_over_the_size_limit_says_so(runtime_with, feed):
    rt = runtime_with(CALSYNC_ICS_MAX_BYTES=2048)
    actions.add_staff(rt, STAFF, "Ada Lovelace")
    feed.serve(big_calendar(), chunked=True)
    with pytest.raises(actions.ActionError, match="2048 bytes limit"):
        actions.connect(rt, STAFF, "ics", url=feed.url())
    assert m.Connection.select().count() == 0


# -- 7. HTTP errors ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "http_status, new_status, words",
    [
        (404, "calendar_missing", "no longer exists"),
        (410, "calendar_missing", "no longer exists"),
        (401, "relink_required", "refuses access"),
        (403, "relink_required", "refuses access"),
    ],
)
def test_a_feed_link_that_was_reset_or_deleted_changes_the_status(rt, feed, http_status, new_status, words):
    sub = Subscription(rt, feed, two_meetings())
    sub.sync()
    before = sub.entries()
    assert sub.status()["status"] == "active"

    sub.publish(b"nope", status=http_status, content_type="text/plain")
    report = sub.sync()

    assert report["outcome"] == "failed", report
    status = sub.status()
    assert status["status"] == new_status
    assert words in status["last_error"]
    assert words in status["reason"]
    change = m.StatusChange.select().order_by(m.StatusChange.id.desc()).first()
    assert (change.old, change.new) == ("active", new_status)
    assert f"HTTP {http_status}" in change.provider_answer
    assert_entries_kept(sub, before)  # busy times keep blocking until the link is fixed


@pytest.mark.parametrize("http_status", [503, 500, 429])
def test_a_server_hiccup_is_transient_and_changes_nothing(rt, feed, http_status):
    sub = Subscription(rt, feed, two_meetings())
    sub.sync()
    before = sub.entries()

    sub.publish(b"down for maintenance", status=http_status, content_type="text/plain")
    feed.forget_requests()
    report = sub.sync()

    assert report["outcome"] == "transient", report
    status = sub.status()
    assert status["status"] == "active"
    assert f"HTTP {http_status}" in status["last_error"]
    assert_entries_kept(sub, before)
    assert len(feed.requests()) == 2  # CALSYNC_HTTP_RETRIES=1: one retry
    assert report["requests"] == 2

    sub.publish(two_meetings())
    assert sub.sync()["outcome"] == "ok"
    assert sub.status()["last_error"] == ""


def test_an_unreachable_server_is_transient(rt, feed):
    sub = Subscription(rt, feed, two_meetings())
    sub.sync()
    before = sub.entries()
    feed.stop()
    report = sub.sync()
    assert report["outcome"] == "transient", report
    assert sub.status()["status"] == "active"
    assert "could not fetch the calendar URL" in sub.status()["last_error"]
    assert_entries_kept(sub, before)


# -- 8. connecting to something that is not a feed -------------------------------------------------------------


@pytest.mark.parametrize(
    "body, reply, words",
    [
        (b"hello world", {}, "did not return an iCalendar file"),
        (b"<html>login</html>", {"content_type": "text/html"}, "web page"),
        (b"gone", {"status": 404, "content_type": "text/plain"}, "no longer exists"),
        (b"who are you", {"status": 401, "content_type": "text/plain"}, "refuses access"),
    ],
    ids=["garbage", "web-page", "404", "401"],
)
def test_connecting_to_something_that_is_not_a_feed_creates_no_connection(rt, feed, body, reply, words):
    actions.add_staff(rt, STAFF, "Ada Lovelace")
    feed.serve(body, **reply)
    with pytest.raises(actions.ActionError) as caught:
        actions.connect(rt, STAFF, "ics", url=feed.url())
    message = str(caught.value)
    assert message.startswith("could not connect: ")
    assert words in message
    assert SECRET not in message
    assert m.Connection.select().count() == 0
    assert actions.list_statuses(rt) == []


# -- 9. the private-network guard ---------------------------------------------------------------------------------


def test_a_loopback_feed_url_is_refused_when_private_urls_are_off(runtime_with, feed):
    rt = runtime_with(CALSYNC_ALLOW_PRIVATE_URLS="0")
    actions.add_staff(rt, STAFF, "Ada Lovelace")
    feed.serve(two_meetings())
    with pytest.raises(actions.InvalidInput) as caught:
        actions.connect(rt, STAFF, "ics", url=feed.url())
    message = str(caught.value)
    assert "private or loopback" in message
    assert "CALSYNC_ALLOW_PRIVATE_URLS" in message
    assert feed.requests() == []  # refused before anything was fetched
    assert m.Connection.select().count() == 0


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://10.0.0.1/x",
        "http://192.168.1.20/x",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/x",
        "ftp://example.com/x",
        "file:///etc/passwd",
        "http:///no-host",
    ],
)
def test_check_url_refuses_private_addresses_and_other_schemes(url):
    with pytest.raises(core_http.URLNotAllowed):
        core_http.check_url(url, False)


def test_check_url_allows_loopback_only_when_private_urls_are_on():
    core_http.check_url("http://127.0.0.1:8080/x", True)
    with pytest.raises(core_http.URLNotAllowed):
        core_http.check_url("ftp://127.0.0.1/x", True)


def test_a_redirect_to_a_loopback_address_is_refused_before_it_is_contacted(feed, monkeypatch):
    """A "public" server (127.0.0.2 stands in for one) redirects to a loopback service: the guard,
    which checks the address each socket connects to, refuses the second hop."""
    outside = FeedServer(host="127.0.0.2").start()
    try:
        feed.serve(two_meetings())
        outside.serve(b"", path="/public-looking-link.ics", status=302, headers={"Location": feed.url()})
        real = netguard._allowed
        monkeypatch.setattr(netguard, "_allowed", lambda address, allow_private: address == "127.0.0.2" or real(address, allow_private))
        client = core_http.HttpClient(allow_private=False, retries=0, timeout=5)
        try:
            with pytest.raises(core_http.URLNotAllowed, match="private or loopback"):
                client.request("GET", outside.url("/public-looking-link.ics"))
        finally:
            client.close()
        assert [r.path for r in outside.requests()] == ["/public-looking-link.ics"]
        assert feed.requests() == [], "the loopback service was never contacted"
    finally:
        outside.stop()


def test_webcal_links_are_read_as_https(rt):
    url = actions._validate_url(rt, "webcal://127.0.0.1:1/x.ics", "the calendar URL")
    assert url == "https://127.0.0.1:1/x.ics"


# -- 10. redirects ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("redirect_status", [301, 302, 307, 308])
def test_a_feed_link_that_redirects_is_followed(rt, feed, redirect_status):
    old = "/old/calendar.ics"
    feed.serve(b"", path=old, status=redirect_status, headers={"Location": FEED_PATH})
    feed.serve(two_meetings())
    actions.add_staff(rt, STAFF, "Ada Lovelace", timezone="Europe/Berlin")
    conn = actions.connect(rt, STAFF, "ics", url=feed.url(old))
    assert [c["name"] for c in conn["calendars"]] == [CAL_NAME]
    (report,) = actions.sync_now(rt, conn["id"])
    assert report["outcome"] == "ok", report
    assert {e["subject"] for e in actions.list_entries(rt, conn["id"])} == {"Standup", "Design review"}
    assert [r.path for r in feed.requests()][-2:] == [old, FEED_PATH]
    assert report["requests"] == 2


def test_a_redirect_loop_is_refused_with_a_clear_reason(rt, feed):
    feed.serve(b"", path="/loop.ics", status=302, headers={"Location": "/loop.ics"})
    actions.add_staff(rt, STAFF, "Ada Lovelace")
    with pytest.raises(actions.ActionError, match="redirects too many times"):
        actions.connect(rt, STAFF, "ics", url=feed.url("/loop.ics"))
    assert len(feed.requests()) == core_http.MAX_REDIRECTS + 1


# -- 11. an RRULE bomb ------------------------------------------------------------------------------------------------------


def test_an_endless_every_second_series_is_capped_and_says_the_rest_was_not_read(runtime_with, feed):
    rt = runtime_with(CALSYNC_MAX_OCCURRENCES=50)
    bomb_start = soon(1, 10)
    body = calendar(
        event("bomb-1", "Every second", bomb_start, hours=0, lines="RRULE:FREQ=SECONDLY\r\n"),
        event("dentist-1", "Dentist", soon(2, 14)),
    )
    sub = Subscription(rt, feed, body)
    started = time.monotonic()
    report = sub.sync()
    assert time.monotonic() - started < 5
    assert report["outcome"] == "ok", report

    entries = sub.entries()
    bomb = [e for e in entries if e["uid"] == "bomb-1"]
    assert len(bomb) == 50
    assert bomb[0]["starts_at"] == iso(bomb_start)
    assert bomb[-1]["starts_at"] == iso(bomb_start + dt.timedelta(seconds=49))
    assert "the rest were not read" in bomb[-1]["info"]
    assert all("the rest were not read" not in e["info"] for e in bomb[:-1])
    assert all(e["loaded"] for e in bomb)
    (dentist,) = [e for e in entries if e["uid"] == "dentist-1"]
    assert dentist["loaded"] is True


def test_an_every_second_series_that_began_long_ago_is_refused_quickly_with_a_reason(rt, feed):
    long_ago = clock.now().replace(microsecond=0) - dt.timedelta(days=365)
    body = calendar(
        event("bomb-1", "Every second since last year", long_ago, hours=0, lines="RRULE:FREQ=SECONDLY\r\n"),
        event("dentist-1", "Dentist", soon(2, 14)),
    )
    sub = Subscription(rt, feed, body)
    started = time.monotonic()
    report = sub.sync()
    assert time.monotonic() - started < 5
    assert report["outcome"] == "ok", report
    entries = sub.by_subject()
    bomb = entries["Every second since last year"]
    assert bomb["loaded"] is False
    assert bomb["info"].startswith("invalid data: the repeat rule repeats more than")
    assert entries["Dentist"]["loaded"] is True


def test_a_weekly_series_is_expanded_inside_the_sync_window(rt, feed):
    first = soon(1, 8)
    sub = Subscription(rt, feed, calendar(event("weekly-1", "Weekly 1:1", first, lines="RRULE:FREQ=WEEKLY;COUNT=4\r\n")))
    sub.sync()
    starts = [e["starts_at"] for e in sub.entries()]
    assert starts == [iso(first + dt.timedelta(weeks=w)) for w in range(4)]


# -- 12. time zones ---------------------------------------------------------------------------------------------------------


def test_windows_and_unknown_time_zone_names_are_read_sensibly(rt, feed):
    clock.set_now(lambda: dt.datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    body = calendar(
        event(
            "windows-1",
            "Board meeting",
            times="DTSTART;TZID=W. Europe Standard Time:20261210T100000\r\nDTEND;TZID=W. Europe Standard Time:20261210T110000\r\n",
        ),
        event(
            "mars-1",
            "Rover check",
            times="DTSTART;TZID=Mars/Olympus:20261211T100000\r\nDTEND;TZID=Mars/Olympus:20261211T103000\r\n",
        ),
    )
    sub = Subscription(rt, feed, body, timezone="Europe/Berlin")
    assert sub.sync()["outcome"] == "ok"
    entries = sub.by_subject()

    board = entries["Board meeting"]
    assert board["loaded"] is True
    assert (board["starts_at"], board["ends_at"]) == ("2026-12-10T09:00:00Z", "2026-12-10T10:00:00Z")
    assert "unknown time zone" not in board["info"]

    rover = entries["Rover check"]
    assert rover["loaded"] is True
    assert (rover["starts_at"], rover["ends_at"]) == ("2026-12-11T09:00:00Z", "2026-12-11T09:30:00Z")
    assert "unknown time zone 'Mars/Olympus' read as Europe/Berlin" in rover["info"]


def test_an_event_with_its_own_vtimezone_uses_it(rt, feed):
    clock.set_now(lambda: dt.datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    vtimezone = (
        "BEGIN:VTIMEZONE\r\nTZID:Custom/Plus3\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n"
        "TZOFFSETFROM:+0300\r\nTZOFFSETTO:+0300\r\nTZNAME:P3\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
    )
    body = calendar(
        vtimezone
        + event(
            "custom-1",
            "Call with Moscow office",
            times="DTSTART;TZID=Custom/Plus3:20261210T100000\r\nDTEND;TZID=Custom/Plus3:20261210T110000\r\n",
        )
    )
    sub = Subscription(rt, feed, body, timezone="Europe/Berlin")
    assert sub.sync()["outcome"] == "ok"
    (entry,) = sub.entries()
    assert entry["starts_at"] == "2026-12-10T07:00:00Z"
    assert "unknown time zone" not in entry["info"]
