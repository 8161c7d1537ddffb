"""Push in the Google fake (events.watch, channels.stop, notifications), seen from a webhook receiver.

developers.google.com/calendar/api/guides/push: a watch answers a Channel and sends a ``sync``
message; each change sends ``exists`` with the channel's headers and a larger message number;
``channels.stop`` ends it. The receiver is a small http.server on 127.0.0.1, stopped by each test.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from fakes.google_api import API_PREFIX, PUSH_TTL_DEFAULT, PUSH_TTL_MAX, FakeGoogle
from test_google_description import signed_in, traffic_problems

EMAIL = "ada@example.com"
OTHER = "team@group.calendar.google.com"


class Receiver:
    """A webhook on 127.0.0.1 keeping each POST (path, headers, body); ``during`` runs inside each one."""

    def __init__(self, status: int = 200, during=None):
        self.status = status
        self.during = during
        self.received: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                extra = receiver.during() if receiver.during else None
                with receiver.lock:
                    receiver.received.append({"path": self.path, "headers": dict(self.headers), "body": body, "during": extra})
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="push-receiver", daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/push/google"

    def messages(self, channel_id: str | None = None) -> list[dict]:
        with self.lock:
            return [r["headers"] for r in self.received if channel_id is None or r["headers"].get("X-Goog-Channel-ID") == channel_id]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def google():
    fake = FakeGoogle(EMAIL).start()
    fake.add_calendar(OTHER, "Team")
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def receiver():
    webhook = Receiver()
    try:
        yield webhook
    finally:
        webhook.stop()


@pytest.fixture
def api(google):
    return signed_in(google)


def watch(api, google, channel_id: str, address: str, calendar: str = EMAIL, **fields) -> requests.Response:
    body = {"id": channel_id, "type": "web_hook", "address": address, **fields}
    return api.post(f"{google.url}{API_PREFIX}/calendars/{calendar}/events/watch", json=body, timeout=5)


def stop(api, google, channel_id: str, resource_id: str) -> requests.Response:
    return api.post(f"{google.url}{API_PREFIX}/channels/stop", json={"id": channel_id, "resourceId": resource_id}, timeout=5)


def soon(hours: int) -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=hours)


def test_a_watch_answers_the_channel_and_its_sync_message_follows(google, receiver, api):
    answer = watch(api, google, "chan-1", receiver.url, token="connection=7", params={"ttl": "3600"})
    assert answer.status_code == 200, answer.text
    channel = answer.json()
    assert set(channel) == {"kind", "id", "resourceId", "resourceUri", "token", "expiration"}
    assert (channel["kind"], channel["id"], channel["token"]) == ("api#channel", "chan-1", "connection=7")
    assert channel["resourceUri"] == f"{google.url}{API_PREFIX}/calendars/{EMAIL}/events"
    assert isinstance(channel["expiration"], str)  # int64, sent as a JSON string
    expires = dt.datetime.fromtimestamp(int(channel["expiration"]) / 1000, dt.UTC)
    assert abs(expires - (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3600))) < dt.timedelta(seconds=10)

    assert google.wait_for_deliveries(1)
    (sync,) = receiver.messages()
    assert sync["X-Goog-Channel-ID"] == "chan-1" and sync["X-Goog-Channel-Token"] == "connection=7"
    assert (sync["X-Goog-Resource-State"], sync["X-Goog-Message-Number"]) == ("sync", "1")
    assert sync["X-Goog-Resource-ID"] == channel["resourceId"] and sync["X-Goog-Resource-URI"] == channel["resourceUri"]
    assert email.utils.parsedate_to_datetime(sync["X-Goog-Channel-Expiration"]) == expires.replace(microsecond=0)
    assert sync["User-Agent"].startswith("APIs-Google") and receiver.received[0]["body"] == b""
    assert receiver.received[0]["path"] == "/push/google"
    (listed,) = google.channels(EMAIL)
    assert listed == {
        "id": "chan-1",
        "resourceId": channel["resourceId"],
        "resourceUri": channel["resourceUri"],
        "address": receiver.url,
        "token": "connection=7",
        "expiration": expires,
        "calendar_id": EMAIL,
        "messages": 1,
    }
    assert google.channels("primary") == [listed] and google.channels(OTHER) == []
    (delivery,) = google.push_deliveries
    assert (delivery.channel_id, delivery.state, delivery.message_number, delivery.status) == ("chan-1", "sync", 1, 200)
    assert delivery["status"] == 200 and delivery.error == ""
    assert traffic_problems(google.calls) == []


def test_every_change_sends_exists_on_each_channel_of_that_calendar_with_rising_numbers(google, receiver, api):
    first = watch(api, google, "chan-a", receiver.url, token="t-a").json()
    second = watch(api, google, "chan-b", receiver.url).json()  # no token
    watch(api, google, "chan-other", receiver.url, calendar=OTHER)
    assert first["resourceId"] == second["resourceId"]  # one resource: the calendar's events
    assert google.wait_for_deliveries(3)

    events = f"{google.url}{API_PREFIX}/calendars/{EMAIL}/events"
    inserted = api.post(
        events, json={"summary": "Via API", "start": {"dateTime": soon(2).isoformat()}, "end": {"dateTime": soon(3).isoformat()}}, timeout=5
    ).json()
    api.patch(f"{events}/{inserted['id']}", json={"summary": "Patched"}, timeout=5)
    api.put(f"{events}/{inserted['id']}", json={"summary": "Put", "start": inserted["start"], "end": inserted["end"]}, timeout=5)
    api.delete(f"{events}/{inserted['id']}", timeout=5)
    outside = google.add_event(EMAIL, "From outside", soon(4), soon(5))
    google.edit_event(EMAIL, outside, summary="Edited outside")
    google.delete_event(EMAIL, outside)
    assert google.wait_for_deliveries(3 + 2 * 7)
    time.sleep(0.2)  # nothing more is coming: the other calendar did not change

    for channel_id, token in (("chan-a", "t-a"), ("chan-b", None)):
        messages = receiver.messages(channel_id)
        assert [m["X-Goog-Resource-State"] for m in messages] == ["sync"] + ["exists"] * 7
        numbers = [int(m["X-Goog-Message-Number"]) for m in messages]
        assert numbers == sorted(set(numbers)) and numbers[0] == 1
        assert all(m.get("X-Goog-Channel-Token") == token for m in messages)
        assert all(m["X-Goog-Resource-ID"] == first["resourceId"] for m in messages)
    assert [m["X-Goog-Resource-State"] for m in receiver.messages("chan-other")] == ["sync"]
    assert {c["id"]: c["messages"] for c in google.channels()} == {"chan-a": 8, "chan-b": 8, "chan-other": 1}
    assert traffic_problems(google.calls) == []


def test_a_stopped_channel_sends_nothing_more_and_cannot_be_stopped_twice(google, receiver, api):
    stopped = watch(api, google, "chan-stop", receiver.url).json()
    watch(api, google, "chan-live", receiver.url)  # still live: shows when the change was delivered
    assert google.wait_for_deliveries(2)
    assert stop(api, google, "chan-stop", "not-its-resource").status_code == 404
    answer = stop(api, google, "chan-stop", stopped["resourceId"])
    assert (answer.status_code, answer.content) == (204, b"")
    google.add_event(EMAIL, "After the stop", soon(2), soon(3))
    assert google.wait_for_deliveries(3)
    assert [d.channel_id for d in google.push_deliveries][2:] == ["chan-live"]
    assert [m["X-Goog-Resource-State"] for m in receiver.messages("chan-stop")] == ["sync"]
    again = stop(api, google, "chan-stop", stopped["resourceId"])
    assert again.status_code == 404 and again.json()["error"]["errors"][0]["reason"] == "notFound"
    assert [c["id"] for c in google.channels()] == ["chan-live"]
    assert watch(api, google, "chan-stop", receiver.url).status_code == 200  # a dead channel's id may be used again
    assert traffic_problems(google.calls) == []


def test_an_expired_or_silenced_channel_delivers_nothing(google, receiver, api):
    expired = watch(api, google, "chan-expired", receiver.url).json()
    watch(api, google, "chan-quiet", receiver.url, calendar=OTHER)
    assert google.wait_for_deliveries(2)
    google.expire_channel("chan-expired")
    assert [c["id"] for c in google.channels()] == ["chan-quiet"]
    google.add_event(EMAIL, "Nobody hears this", soon(2), soon(3))
    google.silence_push()
    assert [c["id"] for c in google.channels()] == ["chan-quiet"]  # silenced, yet live
    google.add_event(OTHER, "Nor this", soon(2), soon(3))
    google.silence_push(False)
    google.add_event(OTHER, "But this", soon(4), soon(5))
    assert google.wait_for_deliveries(3)
    time.sleep(0.2)
    third = google.push_deliveries[2:]
    assert [(d.channel_id, d.state, d.message_number) for d in third] == [("chan-quiet", "exists", 2)]
    assert stop(api, google, "chan-expired", expired["resourceId"]).status_code == 404  # no longer live


def test_deleting_the_calendar_sends_not_exists(google, receiver, api):
    watch(api, google, "chan-gone", receiver.url, calendar=OTHER)
    assert google.wait_for_deliveries(1)
    google.delete_calendar(OTHER)
    assert google.wait_for_deliveries(2)
    assert [m["X-Goog-Resource-State"] for m in receiver.messages()] == ["sync", "not_exists"]


def test_notify_sends_a_burst_without_a_change_and_channels_outlive_a_revoked_grant(google, receiver, api):
    watch(api, google, "chan-burst", receiver.url)
    assert google.wait_for_deliveries(1)
    google.revoke_grant()
    google.notify("primary", count=5)
    assert google.wait_for_deliveries(6)
    assert [m["X-Goog-Message-Number"] for m in receiver.messages()] == ["1", "2", "3", "4", "5", "6"]
    assert (
        api.post(f"{google.url}{API_PREFIX}/channels/stop", json={"id": "chan-burst", "resourceId": "x"}, timeout=5).status_code == 401
    )  # calsync finds out on its next call
    assert watch(api, google, "chan-new", receiver.url).status_code == 401


def test_the_watch_refuses_what_google_refuses(google, receiver, api):
    def reason(answer: requests.Response) -> tuple[int, str]:
        return answer.status_code, answer.json()["error"]["errors"][0]["reason"]

    url = f"{google.url}{API_PREFIX}/calendars/{EMAIL}/events/watch"
    assert reason(api.post(url, json={"type": "web_hook", "address": receiver.url}, timeout=5)) == (400, "required")
    assert reason(api.post(url, json={"id": "c", "address": receiver.url}, timeout=5)) == (400, "required")
    assert reason(api.post(url, json={"id": "c", "type": "web_hook"}, timeout=5)) == (400, "required")
    assert reason(watch(api, google, "c", receiver.url, type="email")) == (400, "invalid")
    assert reason(watch(api, google, "c" * 65, receiver.url)) == (400, "invalid")
    assert reason(watch(api, google, "c", receiver.url, params={"ttl": "soon"})) == (400, "invalid")
    assert reason(watch(api, google, "c", "http://calsync.example.com/push/google")) == (400, "push.webhookUrlNotHttps")
    assert reason(watch(api, google, "c", receiver.url, calendar="nobody@example.com")) == (404, "notFound")
    assert watch(api, google, "c", receiver.url).status_code == 200
    assert reason(watch(api, google, "c", receiver.url)) == (400, "channelIdNotUnique")
    assert watch(api, google, "c-webhook", receiver.url, type="webhook").status_code == 200  # Channel.type allows both
    read_only = signed_in(google, scope="https://www.googleapis.com/auth/calendar.readonly")
    assert watch(read_only, google, "c-read", receiver.url).status_code == 200  # a read, as far as scopes go
    assert traffic_problems(google.calls) == []


def test_the_channel_lifetime_is_the_most_restrictive_of_ttl_expiration_and_the_limit(google, receiver, api):
    now = time.time()

    def lifetime(channel_id: str, **fields) -> float:
        answer = watch(api, google, channel_id, receiver.url, **fields)
        assert answer.status_code == 200, answer.text
        return int(answer.json()["expiration"]) / 1000 - now

    assert lifetime("default") == pytest.approx(PUSH_TTL_DEFAULT, abs=10)
    assert lifetime("short", params={"ttl": "60"}) == pytest.approx(60, abs=10)
    assert lifetime("capped", params={"ttl": str(10 * PUSH_TTL_MAX)}) == pytest.approx(PUSH_TTL_MAX, abs=10)
    in_an_hour = str(int((now + 3600) * 1000))
    assert lifetime("until", expiration=in_an_hour, params={"ttl": "7200"}) == pytest.approx(3600, abs=10)


def test_a_slow_receiver_holds_up_neither_the_api_nor_the_lock(google, api):
    """Deliveries run on their own thread, after the answer and outside the fake's lock: a receiver
    that calls the API while it is notified (as calsync's webhook may) is answered."""
    events = f"{google.url}{API_PREFIX}/calendars/{EMAIL}/events"

    def list_then_linger():
        status = api.get(events, timeout=5).status_code
        time.sleep(0.5)
        return status

    slow = Receiver(during=list_then_linger)
    try:
        watch(api, google, "chan-slow", slow.url)
        started = time.monotonic()
        for hour in range(3):
            google.add_event(EMAIL, f"Change {hour}", soon(hour + 2), soon(hour + 3))
        assert time.monotonic() - started < 1.0  # three changes, none waited for a delivery (each takes 0.5 s)
        assert google.wait_for_deliveries(4, timeout=10)
        assert [r["during"] for r in slow.received] == [200] * 4
    finally:
        slow.stop()


def test_failed_deliveries_are_recorded_and_the_delivery_thread_ends_with_the_fake():
    fake = FakeGoogle(EMAIL).start()
    try:
        api = signed_in(fake)
        refusing = Receiver(status=500)
        try:
            watch(api, fake, "chan-500", refusing.url)
            assert fake.wait_for_deliveries(1)
        finally:
            refusing.stop()
        watch(api, fake, "chan-dead", refusing.url)  # nothing listens there any more
        assert fake.wait_for_deliveries(2, timeout=10)
        failed, dead = fake.push_deliveries
        assert (failed.status, failed.error) == (500, "")
        assert dead.status is None and dead.error
    finally:
        fake.stop()
    assert not [t for t in threading.enumerate() if t.name == "fake-google-push" and t.is_alive()]
