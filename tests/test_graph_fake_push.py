"""The Graph fake's change notifications: subscriptions, the validation handshake, deliveries and
lifecycle notifications, against a small webhook receiver on 127.0.0.1.

What the fake promises here is what calsync's push code (``POST /push/microsoft``) relies on:
learn.microsoft.com graph/api/subscription-post-subscriptions, subscription-update,
subscription-delete, graph/change-notifications-delivery-webhooks and
graph/change-notifications-lifecycle-events. Every payload is also parsed with msgraph-sdk's models
(``Subscription``, ``ODataError``, the change notification collection) by the strict checker of
tests/test_graph_description.py.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import pytest
import requests
from conftest import soon
from fakes.microsoft_graph import GraphFake
from msgraph.generated.models.o_data_errors.o_data_error import ODataError
from msgraph.generated.models.subscription import Subscription
from test_graph_description import ChangeNotificationCollection, exchange_problems, problems_in

HOUR = dt.timedelta(hours=1)
CLIENT_STATE = "calsync-7f3a"
REDIRECT = "http://127.0.0.1:9/callback"


# -- a webhook receiver --------------------------------------------------------------------------


class Receiver:
    """An app's webhook endpoint on 127.0.0.1. It answers the validation handshake as ``handshake``
    says (echo, refuse, slow, encoded, html) and answers notifications with ``status``."""

    def __init__(self) -> None:
        self.handshake = "echo"
        self.slow_seconds = 1.5
        self.status = 202
        self.notification_delay = 0.0
        self.gate = threading.Event()  # a notification is answered once the gate is open (or after 5 s)
        self.gate.set()
        self.validations: list[dict] = []
        self.notifications: list[dict] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                receiver._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="push-receiver", daemon=True)
        self._thread.start()

    def url(self, path: str = "/push/microsoft") -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(request.path)
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        query = parse_qs(parts.query)
        if "validationToken" in query:
            token = query["validationToken"][0]  # parse_qs decodes it, as an app must
            with self._lock:
                self.validations.append(
                    {"path": parts.path, "token": token, "body": body, "content_type": request.headers.get("Content-Type", "")}
                )
            answer, kind, status = token, "text/plain", 200
            if self.handshake == "refuse":
                answer, status = "no", 500
            elif self.handshake == "slow":
                time.sleep(self.slow_seconds)
            elif self.handshake == "encoded":
                answer = quote(token)
            elif self.handshake == "html":
                kind = "text/html"
            self._answer(request, status, kind, answer.encode())
            return
        with self._lock:
            self.notifications.append(
                {"path": parts.path, "body": json.loads(body), "content_type": request.headers.get("Content-Type", "")}
            )
        time.sleep(self.notification_delay)
        self.gate.wait(timeout=5)
        self._answer(request, self.status, "text/plain", b"")

    @staticmethod
    def _answer(request: BaseHTTPRequestHandler, status: int, content_type: str, body: bytes) -> None:
        try:
            request.send_response(status)
            request.send_header("Content-Type", content_type)
            request.send_header("Content-Length", str(len(body)))
            request.end_headers()
            request.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the fake gave up waiting (the slow handshake): nobody reads the answer

    def received(self, path: str = "/push/microsoft") -> list[dict]:
        """The notifications (each one ``value`` item) POSTed to ``path``, oldest first."""
        with self._lock:
            return [item for n in self.notifications if n["path"] == path for item in n["body"]["value"]]


class Api:
    """Graph as an app calls it, signed in through the fake's consent page."""

    def __init__(self, graph: GraphFake, scopes: str = "offline_access User.Read Calendars.ReadWrite"):
        self.graph = graph
        authorize = (
            graph.authorize_url
            + "?"
            + urlencode({"client_id": graph.client_id, "response_type": "code", "redirect_uri": REDIRECT, "scope": scopes, "state": "s"})
        )
        code = parse_qs(urlsplit(graph.consent_redirect(authorize)).query)["code"][0]
        token = requests.post(
            graph.token_url,
            timeout=10,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "client_id": graph.client_id,
                "client_secret": graph.client_secret,
            },
        ).json()
        self.headers = {"Authorization": f"Bearer {token['access_token']}"}

    def call(self, method: str, path: str, body: dict | None = None) -> requests.Response:
        return requests.request(method, self.graph.api_url + path, json=body, headers=self.headers, timeout=30)


def _expires(delta: dt.timedelta = dt.timedelta(days=2)) -> str:
    return (dt.datetime.now(dt.UTC) + delta).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def _subscription(graph: GraphFake, receiver: Receiver, **changes) -> dict:
    body = {
        "changeType": "created,updated,deleted",
        "notificationUrl": receiver.url("/push/microsoft"),
        "lifecycleNotificationUrl": receiver.url("/push/microsoft/lifecycle"),
        "resource": f"me/calendars/{graph.default_calendar_id}/events",
        "expirationDateTime": _expires(),
        "clientState": CLIENT_STATE,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


@pytest.fixture
def receiver():
    endpoint = Receiver()
    try:
        yield endpoint
    finally:
        endpoint.stop()


@pytest.fixture
def api(graph):
    return Api(graph)


@pytest.fixture
def subscribed(graph, receiver, api) -> dict:
    answer = api.call("POST", "/subscriptions", _subscription(graph, receiver))
    assert answer.status_code == 201, answer.text
    return answer.json()


def _settled(graph: GraphFake) -> None:
    assert graph.wait_for_push_idle(5), "the fake's deliveries did not drain"


def _error(answer: requests.Response) -> tuple[int, str]:
    assert problems_in(answer.json(), ODataError) == []
    return answer.status_code, answer.json()["error"]["code"]


# -- subscribing -----------------------------------------------------------------------------------


def test_subscribing_validates_both_endpoints_then_answers_201_with_the_subscription(graph, receiver, api):
    body = _subscription(graph, receiver)
    answer = api.call("POST", "/subscriptions", body)
    assert answer.status_code == 201, answer.text
    sub = answer.json()
    assert problems_in(sub, Subscription) == []
    assert {k: sub[k] for k in ("resource", "changeType", "clientState", "notificationUrl", "lifecycleNotificationUrl")} == {
        k: body[k] for k in ("resource", "changeType", "clientState", "notificationUrl", "lifecycleNotificationUrl")
    }
    assert sub["@odata.context"].endswith("/v1.0/$metadata#subscriptions/$entity")
    assert (sub["applicationId"], sub["creatorId"], sub["includeResourceData"], sub["latestSupportedTlsVersion"]) == (
        graph.client_id,
        graph.user_id,
        False,
        "v1_2",
    )
    assert dt.datetime.fromisoformat(sub["expirationDateTime"]) == dt.datetime.fromisoformat(body["expirationDateTime"])

    # Each URL got the handshake: a POST with the token in the query, text/plain, no body.
    assert [v["path"] for v in receiver.validations] == ["/push/microsoft", "/push/microsoft/lifecycle"]
    for validation in receiver.validations:
        assert validation["token"].startswith("Validation: ") and " " in validation["token"]
        assert validation["content_type"].startswith("text/plain") and validation["body"] == b""
    assert [(d["kind"], d["subscription_id"], d["status"], d["ok"]) for d in graph.push_deliveries] == [
        ("validation", sub["id"], 200, True)
    ] * 2

    (live,) = graph.subscriptions()
    assert live == {
        "id": sub["id"],
        "resource": body["resource"],
        "calendar_id": graph.default_calendar_id,
        "clientState": CLIENT_STATE,
        "notificationUrl": body["notificationUrl"],
        "lifecycleNotificationUrl": body["lifecycleNotificationUrl"],
        "expiration": live["expiration"],
        "changeType": "created,updated,deleted",
    }
    assert live["expiration"].tzinfo is not None
    assert api.call("GET", f"/subscriptions/{sub['id']}").json()["id"] == sub["id"]
    listed = api.call("GET", "/subscriptions").json()
    assert [s["id"] for s in listed["value"]] == [sub["id"]]


@pytest.mark.parametrize(
    "handshake, message",
    [
        ("refuse", "Notification endpoint must respond with 200 OK to validation request."),
        ("slow", "Subscription validation request timed out."),
        ("encoded", "Response must exactly match validationToken query parameter."),
        ("html", "text/plain"),
    ],
)
def test_a_failed_handshake_answers_400_and_creates_nothing(graph, receiver, api, handshake, message):
    graph.validation_timeout, receiver.slow_seconds = 0.5, 1.5
    receiver.handshake = handshake
    answer = api.call("POST", "/subscriptions", _subscription(graph, receiver))
    assert _error(answer) == (400, "ValidationError")
    assert message in answer.json()["error"]["message"]
    assert graph.subscriptions() == []
    (validation,) = graph.push_deliveries  # the notification URL failed: the lifecycle URL was not tried
    assert (validation["kind"], validation["ok"]) == ("validation", False)
    assert validation["status"] is not None or validation["error"]


def test_an_endpoint_off_this_machine_is_never_contacted(graph, receiver, api):
    answer = api.call("POST", "/subscriptions", _subscription(graph, receiver, notificationUrl="https://hooks.example.com/x"))
    assert _error(answer) == (400, "ValidationError")
    assert graph.push_deliveries[0]["error"].startswith("not contacted")
    plain = api.call("POST", "/subscriptions", _subscription(graph, receiver, notificationUrl="http://hooks.example.com/x"))
    assert _error(plain) == (400, "InvalidRequest") and "HTTPS" in plain.json()["error"]["message"]
    assert graph.subscriptions() == [] and receiver.validations == []


@pytest.mark.parametrize(
    "changes, status, code",
    [
        ({"resource": "me/calendars/AAMkAGCalNoSuchCalendarAAA=/events"}, 404, "ExtensionError"),
        ({"resource": "me/messages"}, 400, "InvalidRequest"),
        ({"resource": None}, 400, "InvalidRequest"),
        ({"expirationDateTime": dt.timedelta(minutes=10080, seconds=30)}, 400, "ExtensionError"),
        ({"expirationDateTime": dt.timedelta(minutes=-5)}, 400, "ExtensionError"),
        ({"expirationDateTime": "next week"}, 400, "InvalidRequest"),
        ({"expirationDateTime": None}, 400, "InvalidRequest"),
        ({"changeType": "created,modified"}, 400, "InvalidRequest"),
        ({"changeType": ""}, 400, "InvalidRequest"),
        ({"clientState": "x" * 129}, 400, "InvalidRequest"),
    ],
)
def test_a_bad_subscription_is_refused_before_any_handshake(graph, receiver, api, changes, status, code):
    changes = {k: _expires(v) if isinstance(v, dt.timedelta) else v for k, v in changes.items()}
    answer = api.call("POST", "/subscriptions", _subscription(graph, receiver, **changes))
    assert _error(answer) == (status, code)
    assert receiver.validations == [] and graph.subscriptions() == []


def test_the_longest_subscription_is_just_under_seven_days(graph, receiver, api):
    body = _subscription(graph, receiver, expirationDateTime=_expires(dt.timedelta(minutes=10079)))
    assert api.call("POST", "/subscriptions", body).status_code == 201


def test_subscribing_needs_a_calendar_read_scope(graph, receiver):
    reader = Api(graph, scopes="offline_access User.Read Calendars.Read")
    assert reader.call("POST", "/subscriptions", _subscription(graph, receiver)).status_code == 201
    stranger = Api(graph, scopes="offline_access User.Read")
    assert _error(stranger.call("POST", "/subscriptions", _subscription(graph, receiver))) == (403, "ErrorAccessDenied")


@pytest.mark.parametrize("resource", ["/ME/Events", "me/events", "/Me/Calendars/{id}/Events"])
def test_me_events_and_a_calendars_events_may_be_written_in_any_case(graph, receiver, api, resource):
    resource = resource.replace("{id}", graph.default_calendar_id)
    answer = api.call("POST", "/subscriptions", _subscription(graph, receiver, resource=resource))
    assert answer.status_code == 201, answer.text
    assert answer.json()["resource"] == resource
    assert graph.subscriptions()[0]["calendar_id"] == graph.default_calendar_id


# -- change notifications ----------------------------------------------------------------------------


def test_each_change_is_notified_with_the_client_state(graph, receiver, api, subscribed):
    start = soon(2, 10)
    dentist = graph.add_event("Dentist", start, start + HOUR)
    graph.edit_event(dentist, subject="Dentist (moved)")
    created = api.call(
        "POST",
        f"/me/calendars/{graph.default_calendar_id}/events",
        {
            "subject": "Intro call",
            "start": {"dateTime": "2030-01-02T10:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2030-01-02T11:00:00", "timeZone": "UTC"},
        },
    ).json()
    graph.delete_event(dentist)
    assert graph.wait_for_deliveries(2 + 4)
    _settled(graph)

    notes = receiver.received()
    assert [(n["changeType"], n["resourceData"]["id"]) for n in notes] == [
        ("created", dentist),
        ("updated", dentist),
        ("created", created["id"]),
        ("deleted", dentist),
    ]
    first = notes[0]
    assert first["resource"] == first["resourceData"]["@odata.id"] == f"Users/{graph.user_id}/Events/{dentist}"
    assert first["resourceData"]["@odata.type"] == "#Microsoft.Graph.Event"
    assert first["resourceData"]["@odata.etag"].startswith('W/"')
    assert (first["subscriptionId"], first["clientState"], first["tenantId"]) == (subscribed["id"], CLIENT_STATE, graph.tenant_id)
    assert first["subscriptionExpirationDateTime"] == subscribed["expirationDateTime"]
    assert all(n["content_type"].startswith("application/json") for n in receiver.notifications)
    changes = [d for d in graph.push_deliveries if d["kind"] == "change"]
    assert [(d["changeType"], d["status"], d["ok"]) for d in changes] == [
        ("created", 202, True),
        ("updated", 202, True),
        ("created", 202, True),
        ("deleted", 202, True),
    ]
    for n in receiver.notifications:
        assert problems_in(n["body"], ChangeNotificationCollection) == []


def test_without_a_client_state_none_is_sent(graph, receiver, api):
    assert api.call("POST", "/subscriptions", _subscription(graph, receiver, clientState=None)).status_code == 201
    graph.add_event("Dentist", soon(), soon() + HOUR)
    _settled(graph)
    (note,) = receiver.received()
    assert "clientState" not in note


def test_only_the_change_types_asked_for_are_notified(graph, receiver, api):
    assert api.call("POST", "/subscriptions", _subscription(graph, receiver, changeType="deleted")).status_code == 201
    dentist = graph.add_event("Dentist", soon(), soon() + HOUR)
    graph.edit_event(dentist, subject="Dentist (moved)")
    graph.delete_event(dentist)
    _settled(graph)
    assert [n["changeType"] for n in receiver.received()] == ["deleted"]


def test_changes_in_another_calendar_are_not_notified(graph, receiver, subscribed):
    team = graph.add_calendar("Team")
    graph.add_event("Offsite", soon(), soon() + HOUR, calendar_id=team)
    _settled(graph)
    assert receiver.received() == []


def test_a_notification_is_sent_after_the_request_that_caused_it_has_been_answered(graph, receiver, api, subscribed):
    receiver.gate.clear()  # the receiver holds the notification until the API answer is in
    answer = api.call(
        "POST",
        f"/me/calendars/{graph.default_calendar_id}/events",
        {
            "subject": "Intro call",
            "start": {"dateTime": "2030-01-02T10:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2030-01-02T11:00:00", "timeZone": "UTC"},
        },
    )
    assert answer.status_code == 201
    assert [d["kind"] for d in graph.push_deliveries] == ["validation"] * 2  # not delivered yet
    receiver.gate.set()
    assert graph.wait_for_deliveries(3)
    assert graph.push_deliveries[-1]["changeType"] == "created"


def test_a_burst_of_notifications_without_a_change(graph, receiver, subscribed):
    assert graph.notify(count=5) == 5  # an empty calendar: about an event nobody can read
    dentist = graph.add_event("Dentist", soon(), soon() + HOUR)
    assert graph.notify(change_type="updated", count=3) == 3
    _settled(graph)
    notes = receiver.received()
    assert len(notes) == 5 + 1 + 3 and len(receiver.notifications) == 9  # one POST each
    assert {n["resourceData"]["id"] for n in notes[-3:]} == {dentist}
    assert graph.notify(calendar_id=graph.add_calendar("Empty")) == 0


def test_a_failing_endpoint_is_recorded_and_not_retried(graph, receiver, subscribed):
    receiver.status = 500
    graph.add_event("Dentist", soon(), soon() + HOUR)
    _settled(graph)
    last = graph.push_deliveries[-1]
    assert (last.kind, last.status, last.ok, last.error) == ("change", 500, False, "")
    receiver.stop()
    graph.add_event("Lunch", soon(), soon() + HOUR)
    _settled(graph)
    last = graph.push_deliveries[-1]
    assert last["status"] is None and last["ok"] is False and "Connection" in last["error"]
    assert len(receiver.received()) == 1


# -- renewing, deleting, expiring, silencing ----------------------------------------------------------


def test_renewing_moves_the_expiration_and_the_next_notification_says_so(graph, receiver, api, subscribed):
    later = _expires(dt.timedelta(days=6))
    renewed = api.call("PATCH", f"/subscriptions/{subscribed['id']}", {"expirationDateTime": later})
    assert renewed.status_code == 200, renewed.text
    assert problems_in(renewed.json(), Subscription) == []
    assert dt.datetime.fromisoformat(renewed.json()["expirationDateTime"]) == dt.datetime.fromisoformat(later)
    assert graph.subscriptions()[0]["expiration"] == dt.datetime.fromisoformat(later)
    assert api.call("GET", f"/subscriptions/{subscribed['id']}").json()["expirationDateTime"] == renewed.json()["expirationDateTime"]
    graph.add_event("Dentist", soon(), soon() + HOUR)
    _settled(graph)
    assert receiver.received()[-1]["subscriptionExpirationDateTime"] == renewed.json()["expirationDateTime"]

    too_far = api.call("PATCH", f"/subscriptions/{subscribed['id']}", {"expirationDateTime": _expires(dt.timedelta(days=8))})
    assert _error(too_far) == (400, "ExtensionError")
    assert _error(api.call("PATCH", f"/subscriptions/{subscribed['id']}", {"clientState": "x"})) == (400, "InvalidRequest")
    assert graph.subscriptions()[0]["expiration"] == dt.datetime.fromisoformat(later)


def test_a_deleted_subscription_gets_nothing_more(graph, receiver, api, subscribed):
    assert api.call("DELETE", f"/subscriptions/{subscribed['id']}").status_code == 204
    assert graph.subscriptions() == []
    for method, body in (("GET", None), ("PATCH", {"expirationDateTime": _expires()}), ("DELETE", None)):
        assert _error(api.call(method, f"/subscriptions/{subscribed['id']}", body)) == (404, "ResourceNotFound")
    graph.add_event("Dentist", soon(), soon() + HOUR)
    graph.notify()
    _settled(graph)
    assert receiver.received() == [] and [d["kind"] for d in graph.push_deliveries] == ["validation"] * 2
    assert _error(api.call("GET", "/subscriptions/00000000-0000-0000-0000-000000000000")) == (404, "ResourceNotFound")


def test_an_expired_subscription_gets_nothing_and_is_gone(graph, receiver, api, subscribed):
    graph.expire_subscription(subscribed["id"])
    assert graph.subscriptions() == []
    assert _error(api.call("GET", f"/subscriptions/{subscribed['id']}")) == (404, "ResourceNotFound")
    graph.add_event("Dentist", soon(), soon() + HOUR)
    _settled(graph)
    assert receiver.received() == []
    with pytest.raises(KeyError):
        graph.send_lifecycle("missed", subscribed["id"])


def test_a_subscription_expires_by_the_fakes_clock(graph, receiver, api, subscribed):
    graph.now = lambda: dt.datetime.now(dt.UTC) + dt.timedelta(days=3)
    assert graph.subscriptions() == []
    graph.now = lambda: dt.datetime.now(dt.UTC)
    assert [s["id"] for s in graph.subscriptions()] == [subscribed["id"]]


def test_a_silenced_fake_delivers_nothing_but_keeps_the_subscription(graph, receiver, subscribed):
    graph.silence_push()
    graph.add_event("Dentist", soon(), soon() + HOUR)
    graph.send_lifecycle("missed")
    _settled(graph)
    assert receiver.notifications == []
    assert [s["id"] for s in graph.subscriptions()] == [subscribed["id"]]
    graph.silence_push(False)
    graph.add_event("Lunch", soon(), soon() + HOUR)
    _settled(graph)
    assert [n["changeType"] for n in receiver.received()] == ["created"]


# -- lifecycle notifications ---------------------------------------------------------------------------


@pytest.mark.parametrize("event", ["reauthorizationRequired", "subscriptionRemoved", "missed"])
def test_each_lifecycle_event_goes_to_the_lifecycle_url(graph, receiver, api, subscribed, event):
    assert graph.send_lifecycle(event, subscribed["id"]) == 1
    _settled(graph)
    assert receiver.received() == []
    (note,) = receiver.received("/push/microsoft/lifecycle")
    assert note == {
        "subscriptionId": subscribed["id"],
        "subscriptionExpirationDateTime": subscribed["expirationDateTime"],
        "tenantId": graph.tenant_id,
        "clientState": CLIENT_STATE,
        "lifecycleEvent": event,
    }
    assert problems_in(receiver.notifications[-1]["body"], ChangeNotificationCollection) == []
    last = graph.push_deliveries[-1]
    assert (last["kind"], last["lifecycleEvent"], last["changeType"], last["status"]) == ("lifecycle", event, None, 202)
    removed = event == "subscriptionRemoved"
    assert (graph.subscriptions() == []) is removed
    assert api.call("GET", f"/subscriptions/{subscribed['id']}").status_code == (404 if removed else 200)


def test_without_a_lifecycle_url_lifecycle_notifications_use_the_notification_url(graph, receiver, api):
    sub = api.call("POST", "/subscriptions", _subscription(graph, receiver, lifecycleNotificationUrl=None)).json()
    assert sub["lifecycleNotificationUrl"] is None
    assert len(receiver.validations) == 1
    graph.send_lifecycle("missed")
    _settled(graph)
    assert [n["lifecycleEvent"] for n in receiver.received()] == ["missed"]


def test_revoking_the_grant_asks_every_subscription_to_reauthorize(graph, receiver, api, subscribed):
    other = api.call("POST", "/subscriptions", _subscription(graph, receiver, resource="me/events")).json()
    graph.revoke_grant()
    _settled(graph)
    notes = receiver.received("/push/microsoft/lifecycle")
    assert sorted((n["subscriptionId"], n["lifecycleEvent"]) for n in notes) == sorted(
        [(subscribed["id"], "reauthorizationRequired"), (other["id"], "reauthorizationRequired")]
    )
    # Renewing (which would reauthorize) needs a token that works: a new sign-in.
    renew = api.call("PATCH", f"/subscriptions/{subscribed['id']}", {"expirationDateTime": _expires()})
    assert _error(renew) == (401, "InvalidAuthenticationToken")
    assert len(graph.subscriptions()) == 2


def test_a_lifecycle_event_must_be_one_graph_sends(graph, subscribed):
    with pytest.raises(ValueError):
        graph.send_lifecycle("expired")
    with pytest.raises(ValueError):
        graph.notify(change_type="modified")


# -- the whole conversation against Graph's models, and stopping ---------------------------------------


def test_every_request_answer_and_notification_fits_graphs_models(graph, receiver, api, subscribed):
    api.call("GET", f"/subscriptions/{subscribed['id']}")
    api.call("GET", "/subscriptions")
    api.call("PATCH", f"/subscriptions/{subscribed['id']}", {"expirationDateTime": _expires(dt.timedelta(days=3))})
    api.call(
        "POST", "/subscriptions", _subscription(graph, receiver, changeType="updated", expirationDateTime=_expires(dt.timedelta(days=30)))
    )
    graph.add_event("Dentist", soon(), soon() + HOUR)
    graph.notify(count=2)
    for event in ("missed", "reauthorizationRequired", "subscriptionRemoved"):
        graph.send_lifecycle(event)
    api.call("DELETE", f"/subscriptions/{subscribed['id']}")
    _settled(graph)
    assert exchange_problems(graph.calls) == []
    kinds = {(c.method, c.path.split("/")[2], c.status) for c in graph.calls}
    assert {
        ("POST", "subscriptions", 201),
        ("POST", "subscriptions", 400),
        ("GET", "subscriptions", 200),
        ("PATCH", "subscriptions", 200),
        ("DELETE", "subscriptions", 404),
    } <= kinds
    bodies = [d.body for d in graph.push_deliveries if d.kind != "validation"]
    assert len(bodies) == 1 + 2 + 3
    for body in bodies:
        assert problems_in(body, ChangeNotificationCollection) == []


def test_stop_ends_the_delivery_thread_and_drops_what_is_still_queued(receiver):
    before = set(threading.enumerate())
    fake = GraphFake().start()
    try:
        (courier,) = [t for t in threading.enumerate() if t not in before and t.name == "graph-fake-push"]
        assert Api(fake).call("POST", "/subscriptions", _subscription(fake, receiver)).status_code == 201
        receiver.notification_delay = 0.5
        for day in range(1, 6):
            fake.add_event(f"Meeting {day}", soon(day), soon(day) + HOUR)
        assert fake.wait_for_deliveries(2 + 1)
    finally:
        started = time.monotonic()
        fake.stop()
    assert not courier.is_alive() and time.monotonic() - started < 3
    assert len(receiver.received()) < 5
