"""Outgoing HTTP: retries with backoff on 5xx/429, timeouts, and redirects through the guard."""

from __future__ import annotations

import http.server
import threading
import time
from typing import ClassVar

import pytest
import requests

from core.http import HttpClient, URLNotAllowed, check_url
from core.providers.base import CalendarState, Transient
from core.providers.caldav import CalDAVProvider


class _Handler(http.server.BaseHTTPRequestHandler):
    script: ClassVar[list] = []  # (status, headers, body, delay) answered in order, the last one repeats
    seen: ClassVar[list] = []
    heard: ClassVar[list] = []  # the request headers of each request, in order

    def _answer(self):
        self.seen.append((self.command, self.path))
        self.heard.append(dict(self.headers))
        status, headers, body, delay = self.script[min(len(self.seen) - 1, len(self.script) - 1)]
        if delay:
            time.sleep(delay)
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PROPFIND = do_PUT = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def local():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Handler.seen = []
    _Handler.heard = []
    try:
        yield f"http://127.0.0.1:{server.server_port}", _Handler
    finally:
        server.shutdown()
        server.server_close()


def test_a_503_is_retried_and_the_second_answer_is_used(local):
    base, handler = local
    handler.script = [(503, {"Retry-After": "0"}, b"busy", 0), (200, {}, b"ok", 0)]
    client = HttpClient(retries=2, backoff=0, allow_private=True)
    response = client.request("GET", base + "/x")
    assert response.status_code == 200 and response.text == "ok"
    assert client.requests_made == 2


def test_a_cookie_set_by_an_answer_goes_back_with_the_clients_next_requests_and_no_other_clients(local):
    base, handler = local
    handler.script = [(200, {"Set-Cookie": "session=abc; Path=/"}, b"first", 0), (200, {}, b"next", 0)]
    client = HttpClient(retries=0, allow_private=True)
    client.request("GET", base + "/a")
    client.request("PROPFIND", base + "/b", headers={"Depth": "0"}, data=b"<x/>")
    HttpClient(retries=0, allow_private=True).request("GET", base + "/c")
    first, second, other = handler.heard
    assert "Cookie" not in first and second.get("Cookie") == "session=abc" and "Cookie" not in other
    assert second["Depth"] == "0" and second["Content-Length"] == "4"
    assert all(h["User-Agent"].startswith("calsync/") for h in handler.heard)


def test_a_request_takes_no_arguments_it_would_silently_ignore():
    with pytest.raises(TypeError, match="allow_redirects"):
        HttpClient(allow_private=True).request("GET", "http://127.0.0.1:9/", allow_redirects=True)


def test_persistent_429_becomes_transient_for_the_provider_after_the_retries(local):
    base, handler = local
    handler.script = [(429, {"Retry-After": "0"}, b"slow down", 0)]
    provider = CalDAVProvider(
        {"server_url": base + "/", "account": "a"}, {"password": "p"}, HttpClient(retries=2, backoff=0, allow_private=True)
    )
    with pytest.raises(Transient, match="HTTP 429"):
        provider.probe(CalendarState(remote_id=base + "/cal/"))
    assert len(handler.seen) == 3


def test_a_server_that_hangs_is_a_transient_timeout(local):
    base, handler = local
    handler.script = [(200, {}, b"late", 2)]
    provider = CalDAVProvider(
        {"server_url": base + "/", "account": "a"}, {"password": "p"}, HttpClient(timeout=0.3, retries=0, allow_private=True)
    )
    started = time.monotonic()
    with pytest.raises(Transient, match="did not answer in time"):
        provider.probe(CalendarState(remote_id=base + "/cal/"))
    assert time.monotonic() - started < 1.5


def test_redirects_are_followed_hop_by_hop_and_bounded(local):
    base, handler = local
    handler.script = [(302, {"Location": "/next"}, b"", 0)]
    client = HttpClient(retries=0, allow_private=True)
    with pytest.raises(requests.TooManyRedirects):
        client.request("GET", base + "/start")
    assert len(handler.seen) == 6


def test_a_redirect_to_a_private_address_is_refused_when_private_urls_are_off():
    with pytest.raises(URLNotAllowed, match="private or loopback"):
        check_url("http://127.0.0.1:9/feed.ics", allow_private=False)
    with pytest.raises(URLNotAllowed, match="private or loopback"):
        check_url("http://192.168.1.10/feed.ics", allow_private=False)
    with pytest.raises(URLNotAllowed, match="http:// and https://"):
        check_url("file:///etc/passwd", allow_private=False)


def test_one_process_has_at_most_per_host_requests_in_flight_to_a_host_however_many_threads_ask(local):
    base, handler = local
    handler.script = [(200, {}, b"slow", 0)]
    in_flight, most = [0], [0]
    lock = threading.Lock()
    real_answer = handler._answer

    def counting(self):
        # In flight from its arrival until its answer starts (the client's slot is held longer).
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.05)
        with lock:
            in_flight[0] -= 1
        real_answer(self)

    handler.do_GET = counting
    try:
        clients = [HttpClient(retries=0, allow_private=True, per_host=2) for _ in range(8)]
        threads = [threading.Thread(target=lambda c=c: [c.request("GET", base + "/x") for _ in range(3)]) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    finally:
        handler.do_GET = real_answer
    assert len(handler.seen) == 24, "every request was answered"
    assert most[0] == 2, f"{most[0]} requests were in flight at once"


def test_a_request_that_cannot_get_a_slot_within_its_deadline_fails_without_reaching_the_server(local):
    from core.http import DeadlineExceeded

    base, handler = local
    handler.script = [(200, {}, b"slow", 1.0)]
    holder = HttpClient(retries=0, allow_private=True, per_host=1)
    busy = threading.Thread(target=lambda: holder.request("GET", base + "/held"))
    busy.start()
    deadline_passed = time.monotonic() + 5
    while not handler.seen and time.monotonic() < deadline_passed:
        time.sleep(0.01)
    waiter = HttpClient(retries=0, allow_private=True, per_host=1, deadline=0.2)
    with pytest.raises(DeadlineExceeded, match="waiting for one of the 1 requests in flight to 127.0.0.1"):
        waiter.request("GET", base + "/waits")
    busy.join(10)
    assert [path for _, path in handler.seen] == ["/held"]


def test_the_slots_of_hosts_nobody_is_talking_to_are_not_kept(local):
    import gc

    from core import http as http_module

    base, handler = local
    handler.script = [(200, {}, b"ok", 0)]
    client = HttpClient(retries=0, allow_private=True, per_host=3)
    client.request("GET", base + "/x")
    gc.collect()
    assert not [key for key in http_module._SLOTS if key[2] == 3], "no request in flight: nothing kept for the host"
