"""A local fake of Microsoft's sign-in (identity platform, OAuth 2.0 v2.0 endpoints) and of
Microsoft Graph v1.0's calendar API and change notifications, served on 127.0.0.1 for calsync's tests.

Every JSON body it sends and every request body calsync sends it is held to msgraph-sdk's models of
Graph v1.0 (tests/test_graph_description.py, tests/test_graph_fake_push.py). What those models
cannot show is this fake's reading of the docs below:

* paging: which collections page, by ``$skip`` (calendars, events) or ``$skiptoken`` (delta), at
  ``Prefer: odata.maxpagesize`` / ``$top``; a delta round ends with ``@odata.deltaLink``;
* delta semantics: the window fixed by a round's first request, ``@removed`` for events deleted
  *or* moved out of it, occurrences instead of series masters, an expired token (410);
* which fields come back: ``$select`` keeps ``id`` and ``@odata.etag``; ``$expand`` of one
  extended property; ``transactionId`` only when an app set it (the models have no required fields);
* query semantics: the extended-property ``$filter`` (case-insensitive value), ``Prefer:
  outlook.timezone`` / ``outlook.body-content-type``, a retried POST with the same transactionId;
* status codes, error codes, headers (``ETag``, ``If-Match`` -> 412, ``Retry-After``, 401/403/404);
* push: the validation handshake, that nothing is sent for a deleted, expired or silenced
  subscription, delivery order and timing, lifecycle triggers, the 10080-minute limit. Not modelled:
  Graph's retries (for up to 4 hours), throttling of slow endpoints, re-validation on renewal,
  ``/reauthorize``, the pause of notifications after a revoked grant, resource data in notifications.

It follows these documentation pages. Those marked (read) were read from a stored copy of
microsoftgraph/microsoft-graph-docs-contrib while this was written; the others are from
memory (no network), so only the shapes below are claimed:

* learn.microsoft.com/graph/api/event-delta (read) -- ``GET /me/calendarView/delta?
  startDateTime=&endDateTime=`` (here also ``/me/calendars/{id}/calendarView/delta``); a round of
  pages linked by ``@odata.nextLink`` (``$skiptoken``) ends with ``@odata.deltaLink``
  (``$deltatoken``); the window is fixed by the round's first request; ``$select``,
  ``$expand``, ``$filter``, ``$orderby`` and ``$search`` are not supported; ``@removed``
  (reason ``deleted``) lists deleted events *and* events that changed outside the window;
  ``Prefer: odata.maxpagesize``.
* learn.microsoft.com/graph/api/singlevaluelegacyextendedproperty-get (read) -- an event
  ``?$expand=singleValueExtendedProperties($filter=id eq '{id}')`` and a collection
  ``?$filter=singleValueExtendedProperties/Any(ep: ep/id eq '{id}' and ep/value eq '{v}')``
  (``ne`` too, for string properties) whose answer does not include the property; filtering the
  value is case-insensitive.
* graph/delta-query-overview -- an expired state token: 410 Gone, or a 4xx whose code is
  ``syncStateNotFound`` (``expire_delta_tokens``).
* graph/api/resources/event (read), calendar-post-events, event-get, event-update, event-delete,
  singlevaluelegacyextendedproperty-post-singlevalueextendedproperties -- events with
  ``@odata.etag`` / ``changeKey``, ``showAs``, ``isAllDay``, ``isCancelled``, ``type``,
  ``seriesMasterId``, ``recurrence`` (expanded into occurrences by the calendar view),
  ``transactionId`` ("to avoid redundant POST operations in case of client retries"; only
  returned when an app set it -- that a repeated POST answers with the first event is this
  fake's reading of it); ``If-Match`` on update/delete (412 ``ErrorIrresolvableConflict``).
* graph/api/user-get, user-list-calendars, calendar-get, resources/calendar -- ``/me``
  (``mail``, ``userPrincipalName``), calendars with ``canEdit``, ``isDefaultCalendar``,
  paged by ``@odata.nextLink``.
* graph/errors, graph/throttling -- ``{"error": {"code", "message", "innerError"}}``;
  401 ``InvalidAuthenticationToken``, 403 ``ErrorAccessDenied``, 404 ``ErrorItemNotFound``,
  429 ``TooManyRequests`` / 503 with ``Retry-After`` (``fail_next``).
* graph/api/event-get "Prefer: outlook.timezone" and "outlook.body-content-type" -- times in
  the asked zone (UTC when absent), bodies as text when asked.
* entra/identity-platform/v2-oauth2-auth-code-flow, scopes-oidc -- ``/{tenant}/oauth2/v2.0/
  authorize`` (client_id, response_type=code, redirect_uri, scope, state, code_challenge,
  code_challenge_method=S256, prompt) and the redirect back with ``code`` + ``state`` or
  ``error=access_denied&error_description=AADSTS65004…``; ``/{tenant}/oauth2/v2.0/token``
  for ``authorization_code`` (the PKCE verifier is checked) and ``refresh_token``, client
  authenticated by HTTP Basic or form fields; errors ``{"error", "error_description",
  "error_codes", "timestamp", "trace_id", "correlation_id"}``; ``invalid_grant`` /
  AADSTS50173 once the grant is revoked; ``offline_access`` is never echoed in ``scope``
  while ``openid profile email`` are (as a Microsoft Q&A answer on learn.microsoft.com shows).

* graph/api/subscription-post-subscriptions (read), resources/subscription (read), subscription-update,
  subscription-get, subscription-delete -- ``POST /subscriptions`` (changeType: a
  comma-separated subset of created, updated, deleted; notificationUrl; lifecycleNotificationUrl;
  resource ``me/calendars/{id}/events`` or ``me/events``; expirationDateTime; clientState, at most 128
  characters) answered 201 with the subscription; ``PATCH`` (renew, which also reauthorizes) 200,
  ``GET`` 200, ``DELETE`` 204; "Creating a subscription requires read scope to the resource"
  (Calendars.Read). Graph requires https: this fake also takes ``http://127.0.0.1:…`` and
  ``http://localhost:…`` and never contacts any other host (such a subscription fails validation).
  The stored copy read lists 4230 minutes for Outlook events; the current page lists 10080 minutes
  (under 7 days), which the fake uses. An expiration more than that ahead, or past, is 400
  ``ExtensionError``: that is the service's code for it ("Subscription expiration can only be 4230
  minutes in the future.", quoted in microsoftgraph/microsoft-graph-docs#2988), where
  ``InvalidRequest`` is its code for a malformed request. An unknown id is 404 ``ResourceNotFound``
  "The object was not found." (msgraph-sdk-php#221). An unknown calendar is 404 too. The docs'
  example answer has ``notificationContentType``, which the v1.0 model lacks: not sent.
* graph/change-notifications-delivery-webhooks (read) and its include "notificationUrl validation"
  (read) -- ``POST {url}?validationToken=…`` (``Content-Type: text/plain; charset=utf-8``); the app
  answers within 10 seconds 200, text/plain, the decoded token; otherwise 400 ``ValidationError``
  "Subscription validation request failed. Notification endpoint must respond with 200 OK to
  validation request." (as quoted in splunk/azure-functions-splunk#26; a wrong body: "... Response
  must exactly match validationToken query parameter.", java-spring-webhooks-sample#82). Both URLs
  are validated. A change notification is ``{"value": [{subscriptionId,
  subscriptionExpirationDateTime, changeType, resource, resourceData {@odata.type, @odata.id,
  @odata.etag, id}, clientState, tenantId}]}``; a 2xx (202 expected) means delivered.
* graph/change-notifications-lifecycle-events (read) -- ``reauthorizationRequired`` (also when access
  is revoked: ``revoke_grant``), ``subscriptionRemoved``, ``missed``, sent to the
  lifecycleNotificationUrl as ``{"value": [{subscriptionId, subscriptionExpirationDateTime,
  tenantId, clientState, lifecycleEvent}]}``. Without a lifecycleNotificationUrl they go to the
  notificationUrl, as graph/webhooks-outlook-authz (read) says (the current lifecycle page says none
  are sent then).

The consent page itself is the fake's own (Microsoft's is not an API): it names the account
and the permissions and has "Accept" and "Cancel" buttons. Test hooks are plain methods:
``add_event``, ``edit_event``, ``delete_event``, ``add_calendar``, ``set_can_edit``,
``delete_calendar``, ``revoke_grant``, ``expire_access_tokens``, ``fail_next``,
``expire_delta_tokens``, ``grant_only``; for push ``subscriptions``, ``push_deliveries``,
``wait_for_deliveries``, ``wait_for_push_idle``, ``silence_push``, ``expire_subscription``,
``notify``, ``send_lifecycle`` (and the attributes ``now``, ``validation_timeout``,
``delivery_timeout``). Deliveries and lifecycle notifications go out from one background thread,
in order, never under the fake's lock or inside the request that caused them; ``stop`` ends it.
``calls`` records every Graph request with its JSON bodies.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import html
import json
import queue
import re
import secrets
import threading
import time
import uuid
import zoneinfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

import requests

__all__ = ["SCOPE_TEXT", "Call", "GraphFake", "PushDelivery", "weekly"]

UTC = dt.UTC
GRAPH = "/v1.0"
ACCESS_TOKEN_LIFETIME = 3599
DEFAULT_PAGE_SIZE = 10
OIDC_SCOPES = ("openid", "profile", "email")

CHANGE_TYPES = ("created", "updated", "deleted")
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
# graph/api/resources/subscription, "Maximum length of subscription per resource type": Outlook
# event, 10080 minutes (under 7 days) on the current page (4230 in older copies).
MAX_SUBSCRIPTION_MINUTES = 10080
VALIDATION_SECONDS = 10.0  # change-notifications-delivery-webhooks: "respond ... within 10 seconds"
DELIVERY_SECONDS = 5.0
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")

SCOPE_TEXT = {
    "offline_access": "Maintain access to data you have given it access to",
    "Calendars.ReadWrite": "Have full access to your calendars",
    "Calendars.Read": "Read your calendars",
    "User.Read": "Sign you in and read your profile",
}

# A few Windows zone names, as Outlook stores them (Graph also accepts IANA names).
WINDOWS_ZONES = {
    "UTC": "UTC",
    "W. Europe Standard Time": "Europe/Berlin",
    "GMT Standard Time": "Europe/London",
    "Pacific Standard Time": "America/Los_Angeles",
    "Eastern Standard Time": "America/New_York",
}


def _zone(name: str) -> dt.tzinfo:
    name = (name or "UTC").strip()
    if name in WINDOWS_ZONES:
        return zoneinfo.ZoneInfo(WINDOWS_ZONES[name])
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise _GraphError(400, "ErrorTimeZoneNotSupported", f"The time zone '{name}' is not supported.") from None


def _graph_id(prefix: str = "AAMkAG") -> str:
    """An id shaped like Graph's: opaque base64url ending in '='."""
    return prefix + base64.urlsafe_b64encode(secrets.token_bytes(24)).decode().rstrip("=") + "AAA="


def _stamp(value: dt.datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond:06d}0Z"


def _parse_local(value: str) -> dt.datetime:
    match = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d)?)(\.\d+)?", (value or "").strip())
    if not match:
        raise _GraphError(400, "ErrorInvalidRequest", f"Cannot convert the literal '{value}' to the expected type 'Edm.DateTime'.")
    return dt.datetime.fromisoformat(match.group(1))


def _parse_range(value: str, name: str) -> dt.datetime:
    if not value:
        raise _GraphError(
            400,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters StartDateTime and EndDateTime.",
        )
    text = value.strip().replace("Z", "+00:00").replace(" ", "+")
    try:
        parsed = dt.datetime.fromisoformat(re.sub(r"(\.\d{6})\d+", r"\1", text))
    except ValueError:
        raise _GraphError(400, "ErrorInvalidParameter", f"The value of {name} is not a valid date and time.") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _odata_unquote(text: str) -> str:
    return text.replace("''", "'")


def _html_to_text(content: str) -> str:
    text = re.sub(r"(?is)<(script|style)[^>]*>.*?</\1>", "", content)
    text = re.sub(r"(?i)<br\s*/?>|</p>|</div>", "\n", text)
    text = re.sub(r"<[^>]+>", "", text)
    return html.unescape(text).strip()


class _GraphError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


@dataclasses.dataclass
class FakeCalendar:
    id: str
    name: str
    can_edit: bool = True
    is_default: bool = False
    deleted: bool = False
    # Graph's ``owner``: the mailbox for its own calendars, the colleague for one shared with it ("" = the mailbox).
    owner: str = ""
    change_key: str = dataclasses.field(default_factory=lambda: secrets.token_hex(8))


@dataclasses.dataclass
class FakeEvent:
    """One stored event: a single instance or a series master (its occurrences are computed)."""

    id: str
    calendar_id: str
    subject: str
    start: dt.datetime  # aware UTC (for all-day: midnight UTC of the day)
    end: dt.datetime
    start_zone: str = "UTC"
    end_zone: str = "UTC"
    is_all_day: bool = False
    show_as: str = "busy"
    is_cancelled: bool = False
    response: str = "organizer"  # the mailbox owner's answer (responseStatus.response)
    body: str = ""
    body_type: str = "text"
    location: str = ""
    recurrence: dict | None = None
    transaction_id: str | None = None
    properties: dict = dataclasses.field(default_factory=dict)  # extended property id -> value
    created: dt.datetime = dataclasses.field(default_factory=lambda: dt.datetime.now(UTC))
    modified: dt.datetime = dataclasses.field(default_factory=lambda: dt.datetime.now(UTC))
    change_key: str = dataclasses.field(default_factory=lambda: base64.b64encode(secrets.token_bytes(12)).decode())
    seq: int = 0
    deleted: bool = False
    ical_uid: str = dataclasses.field(default_factory=lambda: "040000008200E00074C5B7101A82E008" + secrets.token_hex(24).upper())

    @property
    def etag(self) -> str:
        return f'W/"{self.change_key}"'

    def touch(self, seq: int) -> None:
        self.seq = seq
        self.modified = dt.datetime.now(UTC)
        self.change_key = base64.b64encode(secrets.token_bytes(12)).decode()


@dataclasses.dataclass
class Call:
    """One Graph request and the answer the fake gave it."""

    method: str
    path: str  # decoded, without the query
    query_text: str  # the decoded query string ('' when none)
    status: int
    body: dict | list | None = None  # the JSON request body (None: none, or not JSON)
    response: dict | list | None = None  # the JSON answer (None: empty, or not JSON)


class PushDelivery(NamedTuple):
    """One POST the fake made to an app's endpoint: read by attribute (``d.kind``) or key (``d["kind"]``)."""

    subscription_id: str
    kind: str  # "validation", "change" or "lifecycle"
    changeType: str | None  # of a change notification
    lifecycleEvent: str | None  # of a lifecycle notification
    status: int | None  # the HTTP status the endpoint answered; None when it did not
    error: str = ""  # why nothing usable came back (a failed handshake: what was wrong)
    ok: bool = False  # a 2xx; for a validation: the handshake passed
    url: str = ""
    body: dict | None = None  # the JSON sent (None for a validation: it has no body)

    def __getitem__(self, key):
        return getattr(self, key) if isinstance(key, str) else tuple.__getitem__(self, key)


@dataclasses.dataclass
class FakeSubscription:
    """One change-notification subscription on a calendar's events."""

    id: str
    resource: str  # as the app sent it
    calendar_id: str
    change_type: str  # as sent, e.g. "created,updated"
    notification_url: str
    lifecycle_url: str | None
    expiration: dt.datetime  # aware UTC
    client_state: str | None
    tls_version: str = "v1_2"
    deleted: bool = False

    def covers(self, change_type: str) -> bool:
        return change_type in {c.strip() for c in self.change_type.split(",")}


@dataclasses.dataclass
class _Instance:
    """What a calendar view lists: a single event, or one occurrence of a series."""

    id: str
    event: FakeEvent
    start: dt.datetime
    end: dt.datetime
    kind: str = "singleInstance"


@dataclasses.dataclass
class _DeltaState:
    calendar_id: str
    start: dt.datetime
    end: dt.datetime
    seq: int
    valid: bool = True


class GraphFake:
    """The fake, started on a free loopback port: ``url`` is its origin."""

    def __init__(
        self,
        *,
        client_id: str = "cid",
        client_secret: str = "csecret",
        mail: str | None = "ada.lovelace@contoso.example",
        user_principal_name: str = "ada.lovelace@contoso.example",
        display_name: str = "Ada Lovelace",
    ):
        self.client_id = client_id
        self.client_secret = client_secret
        self.mail = mail
        self.user_principal_name = user_principal_name
        self.display_name = display_name
        self.user_id = str(uuid.uuid4())
        self.tenant_id = str(uuid.uuid4())
        self.lock = threading.RLock()
        self.page_size = DEFAULT_PAGE_SIZE
        self.calendars: dict[str, FakeCalendar] = {}
        self.events: dict[str, FakeEvent] = {}
        self.seq = 0
        self.granted_scopes: set[str] | None = None  # None: whatever was asked
        self.grant_revoked = False
        self._consents: dict[str, dict] = {}
        self._codes: dict[str, dict] = {}
        self._refresh_tokens: dict[str, dict] = {}
        self._access_tokens: dict[str, dict] = {}
        self._deltas: dict[str, _DeltaState] = {}
        self._skips: dict[str, tuple[list[dict], str]] = {}  # skip token -> (rows still to send, delta token)
        self._occurrence_ids: dict[str, set[str]] = {}  # series master id -> occurrence ids ever listed
        self._failures: list[tuple[int, str]] = []
        self.requests: list[tuple[str, str]] = []  # (method, decoded path?query) of every Graph request
        self.answers: list[tuple[str, str, int]] = []  # (method, path, status)
        self.calls: list[Call] = []  # every Graph request, with its JSON bodies
        self.token_requests: list[str] = []  # grant types asked at the token endpoint
        # Push. ``now`` is the fake's clock for subscription expiry (a test may hand it core.clock.now).
        self.now = lambda: dt.datetime.now(UTC)
        self.validation_timeout = VALIDATION_SECONDS
        self.delivery_timeout = DELIVERY_SECONDS
        self._subscriptions: dict[str, FakeSubscription] = {}
        self._silenced = False
        self._outbox: queue.Queue = queue.Queue()  # deliveries, sent by one thread outside the lock
        self._pushed = threading.Condition()  # guards _push_log; notified on each record
        self._push_log: list[PushDelivery] = []
        self._courier: threading.Thread | None = None
        self._stopping = threading.Event()
        self.default_calendar_id = self.add_calendar("Calendar", is_default=True)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle -------------------------------------------------------------

    def start(self) -> GraphFake:
        fake = self

        class Handler(_Handler):
            pass

        Handler.fake = fake
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A short poll interval: stop() (serve_forever's shutdown) then takes 50 ms, not 500.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="graph-fake", daemon=True)
        self._thread.start()
        self._stopping.clear()
        self._courier = threading.Thread(target=self._deliver_until_stopped, name="graph-fake-push", daemon=True)
        self._courier.start()
        return self

    def stop(self) -> None:
        if self._courier is not None:
            self._stopping.set()  # what is still queued is dropped, not sent
            self._outbox.put(None)
            self._courier.join(timeout=self.delivery_timeout + 1)
            self._courier = None
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def url(self) -> str:
        assert self._server is not None, "the fake is not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def authorize_url(self) -> str:
        return self.url + "/common/oauth2/v2.0/authorize"

    @property
    def token_url(self) -> str:
        return self.url + "/common/oauth2/v2.0/token"

    @property
    def api_url(self) -> str:
        return self.url + GRAPH

    # -- test hooks: the account ---------------------------------------------------

    def add_calendar(self, name: str, *, can_edit: bool = True, is_default: bool = False, owner: str = "") -> str:
        with self.lock:
            calendar = FakeCalendar(id=_graph_id("AAMkAGCal"), name=name, can_edit=can_edit, is_default=is_default, owner=owner)
            self.calendars[calendar.id] = calendar
            return calendar.id

    def set_can_edit(self, value: bool, calendar_id: str | None = None) -> None:
        with self.lock:
            self.calendars[calendar_id or self.default_calendar_id].can_edit = value

    def delete_calendar(self, calendar_id: str | None = None) -> None:
        with self.lock:
            self.calendars[calendar_id or self.default_calendar_id].deleted = True

    def grant_only(self, *scopes: str) -> None:
        """The next consents grant only these scopes (what a user or a tenant policy allowed)."""
        self.granted_scopes = set(scopes)

    def revoke_grant(self) -> None:
        """The user removed calsync's access (or changed the password): every token stops working,
        and every live subscription is told ``reauthorizationRequired``.

        graph/change-notifications-lifecycle-events: reauthorizationRequired is sent "when an
        administrator has revoked your app's permissions to read a resource" (also when the access
        token or the subscription is about to expire), "before any of these conditions become true";
        change notifications "may continue for a while" and then pause until the app reauthorizes
        (POST /subscriptions/{id}/reauthorize) or renews (PATCH), which needs a token that works --
        here, a new sign-in. The fake keeps delivering changes meanwhile (the pause is not modelled).
        For a password reset or a revoked account graph/webhooks-outlook-authz says Outlook removes
        the subscription instead (``subscriptionRemoved``): a test sends that with ``send_lifecycle``.
        """
        with self.lock:
            self.grant_revoked = True
            for token in self._access_tokens.values():
                token["revoked"] = True
            for token in self._refresh_tokens.values():
                token["revoked"] = True
            self.send_lifecycle("reauthorizationRequired")

    def expire_access_tokens(self) -> None:
        """Access tokens issued so far expire now (before the time they announced)."""
        with self.lock:
            for token in self._access_tokens.values():
                token["expires_at"] = 0.0

    def fail_next(self, count: int = 1, status: int = 429, retry_after: str = "1") -> None:
        """The next ``count`` Graph requests fail with ``status`` (and ``Retry-After``)."""
        with self.lock:
            self._failures.extend([(status, retry_after)] * count)

    def expire_delta_tokens(self) -> None:
        with self.lock:
            for state in self._deltas.values():
                state.valid = False
            self._skips.clear()

    @property
    def access_tokens(self) -> list[str]:
        with self.lock:
            return list(self._access_tokens)

    # -- test hooks: push ------------------------------------------------------------------

    def subscriptions(self) -> list[dict]:
        """The live subscriptions (not deleted, not expired)."""
        with self.lock:
            return [
                {
                    "id": sub.id,
                    "resource": sub.resource,
                    "calendar_id": sub.calendar_id,
                    "clientState": sub.client_state,
                    "notificationUrl": sub.notification_url,
                    "lifecycleNotificationUrl": sub.lifecycle_url,
                    "expiration": sub.expiration,
                    "changeType": sub.change_type,
                }
                for sub in self._live_subscriptions()
            ]

    @property
    def push_deliveries(self) -> list[PushDelivery]:
        """Every POST the fake made to an app's endpoint (handshakes, changes, lifecycle), oldest first."""
        with self._pushed:
            return list(self._push_log)

    def wait_for_deliveries(self, count: int, timeout: float = 5.0) -> bool:
        """True once ``push_deliveries`` holds at least ``count`` records (validations included)."""
        with self._pushed:
            return self._pushed.wait_for(lambda: len(self._push_log) >= count, timeout=timeout)

    def wait_for_push_idle(self, timeout: float = 5.0) -> bool:
        """True once every queued delivery has been sent (or dropped): for "nothing more came" tests."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._outbox.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return self._outbox.unfinished_tasks == 0

    def silence_push(self, on: bool = True) -> None:
        """While silenced nothing is delivered (as when Graph drops notifications); subscriptions stay."""
        with self.lock:
            self._silenced = on

    def expire_subscription(self, subscription_id: str) -> None:
        """The subscription reaches its expirationDateTime now (Graph then deletes it)."""
        with self.lock:
            self._subscriptions[subscription_id].expiration = self.now() - dt.timedelta(seconds=1)

    def notify(self, calendar_id: str | None = None, change_type: str = "updated", count: int = 1) -> int:
        """``count`` change notifications (one POST each) to every live subscription of the calendar whose
        changeType covers ``change_type``, without any change (bursts, duplicates); returns how many."""
        if change_type not in CHANGE_TYPES:
            raise ValueError(f"change_type must be one of {CHANGE_TYPES}")
        with self.lock:
            wanted = calendar_id or self.default_calendar_id
            events = sorted((e for e in self.events.values() if e.calendar_id == wanted and not e.deleted), key=lambda e: e.seq)
            event = events[-1] if events else FakeEvent(id=_graph_id(), calendar_id=wanted, subject="", start=self.now(), end=self.now())
            queued = 0
            for _ in range(count):
                queued += self._notify_change(event, change_type)
            return queued

    def send_lifecycle(self, event: str, subscription_id: str | None = None) -> int:
        """A lifecycle notification (``reauthorizationRequired``, ``subscriptionRemoved``, ``missed``) to one
        live subscription, or to each; ``subscriptionRemoved`` also deletes it. Returns how many were queued."""
        if event not in LIFECYCLE_EVENTS:
            raise ValueError(f"event must be one of {LIFECYCLE_EVENTS}")
        with self.lock:
            live = self._live_subscriptions()
            targets = live if subscription_id is None else [s for s in live if s.id == subscription_id]
            if subscription_id is not None and not targets:
                raise KeyError(f"no live subscription {subscription_id}")
            queued = 0
            for sub in targets:
                notification = {
                    "subscriptionId": sub.id,
                    "subscriptionExpirationDateTime": _stamp(sub.expiration),
                    "tenantId": self.tenant_id,
                }
                if sub.client_state is not None:
                    notification["clientState"] = sub.client_state
                notification["lifecycleEvent"] = event
                # Without a lifecycleNotificationUrl: "subscriptionRemoved and missed notifications will be
                # delivered to the existing notificationUrl" (graph/webhooks-outlook-authz); the current
                # change-notifications-lifecycle-events says such subscriptions get none. The fake does the former.
                queued += self._queue_push(
                    "lifecycle", sub, sub.lifecycle_url or sub.notification_url, {"value": [notification]}, lifecycleEvent=event
                )
                if event == "subscriptionRemoved":
                    sub.deleted = True
            return queued

    # -- test hooks: events, as a user or another app changes them ------------------------

    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def add_event(
        self,
        subject: str,
        start: dt.datetime,
        end: dt.datetime,
        *,
        calendar_id: str | None = None,
        show_as: str = "busy",
        all_day: bool = False,
        cancelled: bool = False,
        body: str = "",
        location: str = "",
        recurrence: dict | None = None,
        zone: str = "UTC",
        response: str = "organizer",
    ) -> str:
        with self.lock:
            if all_day:
                start = dt.datetime.combine(start.date(), dt.time(), UTC)
                end = dt.datetime.combine(end.date(), dt.time(), UTC)
            event = FakeEvent(
                id=_graph_id(),
                calendar_id=calendar_id or self.default_calendar_id,
                subject=subject,
                start=start.astimezone(UTC),
                end=end.astimezone(UTC),
                start_zone=zone,
                end_zone=zone,
                is_all_day=all_day,
                show_as=show_as,
                is_cancelled=cancelled,
                body=body,
                location=location,
                recurrence=recurrence,
                response=response,
            )
            event.seq = self._next_seq()
            self.events[event.id] = event
            self._notify_change(event, "created")
            return event.id

    def edit_event(self, event_id: str, **changes) -> None:
        """Change an event the way Outlook does: the body becomes HTML, the change key moves."""
        with self.lock:
            event = self.events[event_id]
            for name, value in changes.items():
                if name in ("start", "end"):
                    value = value.astimezone(UTC)
                if name == "body":
                    event.body, event.body_type = f"<html><body><p>{html.escape(value)}</p></body></html>", "html"
                    continue
                if not hasattr(event, name):
                    raise AttributeError(name)
                setattr(event, name, value)
            if "body" not in changes and event.body_type == "text" and event.body:
                event.body, event.body_type = f"<html><body><p>{html.escape(event.body)}</p></body></html>", "html"
            event.touch(self._next_seq())
            self._notify_change(event, "updated")

    def delete_event(self, event_id: str) -> None:
        with self.lock:
            event = self.events[event_id]
            event.deleted = True
            event.touch(self._next_seq())
            self._notify_change(event, "deleted")

    def live_events(self, calendar_id: str | None = None) -> list[FakeEvent]:
        """The events (single instances and series masters) on a calendar now."""
        with self.lock:
            wanted = calendar_id or self.default_calendar_id
            return [e for e in self.events.values() if e.calendar_id == wanted and not e.deleted]

    # -- the consent, driven without a browser ------------------------------------

    def consent_redirect(self, authorize_url: str, accept: bool = True) -> str:
        """Open the consent page and press Accept (or Cancel); returns where it redirects to."""
        page = requests.get(authorize_url, timeout=10)
        page.raise_for_status()
        found = re.search(r'name="request" value="([^"]+)"', page.text)
        assert found is not None, "no consent request on the page"
        request_id = found.group(1)
        answer = requests.post(
            self.url + "/common/oauth2/v2.0/consent",
            data={"request": request_id, "decision": "accept" if accept else "cancel"},
            allow_redirects=False,
            timeout=10,
        )
        assert answer.status_code == 302, answer.text
        return answer.headers["Location"]

    # -- OAuth ------------------------------------------------------------------------

    def _authorize(self, query: dict) -> tuple[int, dict, bytes]:
        def arg(name: str) -> str:
            return query.get(name, [""])[0]

        if arg("client_id") != self.client_id:
            return _page(
                400,
                "Sign in",
                f"<p>AADSTS700016: Application with identifier '{html.escape(arg('client_id'))}' was not found in the directory.</p>",
            )
        redirect_uri = arg("redirect_uri")
        if not redirect_uri.startswith(("http://", "https://")):
            return _page(400, "Sign in", "<p>AADSTS50011: The redirect URI specified in the request does not match.</p>")
        if arg("response_type") != "code":
            return _redirect_error(
                redirect_uri,
                arg("state"),
                "unsupported_response_type",
                "AADSTS70005: response_type 'token' is not enabled for the application.",
            )
        if arg("code_challenge") and arg("code_challenge_method") != "S256":
            return _redirect_error(redirect_uri, arg("state"), "invalid_request", "AADSTS501491: Invalid code_challenge_method.")
        asked = [s for s in arg("scope").split() if s]
        request_id = secrets.token_urlsafe(16)
        with self.lock:
            self._consents[request_id] = {
                "redirect_uri": redirect_uri,
                "state": arg("state"),
                "challenge": arg("code_challenge"),
                "scopes": asked,
            }
        items = "".join(f"<li>{html.escape(SCOPE_TEXT.get(s, s))} <code>{html.escape(s)}</code></li>" for s in asked)
        body = (
            f"<p class=account>{html.escape(self.display_name)} &lt;{html.escape(self.mail or self.user_principal_name)}&gt;</p>"
            "<h1>Permissions requested</h1>"
            "<p>calsync (unverified) wants to:</p>"
            f"<ul>{items}</ul>"
            '<form method="post" action="/common/oauth2/v2.0/consent">'
            f'<input type="hidden" name="request" value="{request_id}">'
            '<button type="submit" name="decision" value="cancel">Cancel</button> '
            '<button type="submit" name="decision" value="accept">Accept</button>'
            "</form>"
        )
        return _page(200, "Permissions requested", body)

    def _consent(self, form: dict) -> tuple[int, dict, bytes]:
        with self.lock:
            consent = self._consents.pop(form.get("request", [""])[0], None)
        if consent is None:
            return _page(400, "Sign in", "<p>AADSTS90014: This sign-in request is no longer valid.</p>")
        if form.get("decision", [""])[0] != "accept":
            return _redirect_error(
                consent["redirect_uri"], consent["state"], "access_denied", "AADSTS65004: User declined to consent to access the app."
            )
        granted = [s for s in consent["scopes"] if self.granted_scopes is None or s in self.granted_scopes]
        code = "0.A" + secrets.token_urlsafe(48)
        with self.lock:
            self.grant_revoked = False
            self._codes[code] = {**consent, "scopes": granted, "used": False, "issued": time.time()}
        query = urlencode({"code": code, "state": consent["state"], "session_state": str(uuid.uuid4())})
        return 302, {"Location": _with_query(consent["redirect_uri"], query)}, b""

    def _token(self, headers, form: dict) -> tuple[int, dict, bytes]:
        def arg(name: str) -> str:
            return form.get(name, [""])[0]

        client_id, client_secret = arg("client_id"), arg("client_secret")
        auth = headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                client_id, client_secret = unquote(user), unquote(password)
            except ValueError:  # not base64 or not UTF-8: no client credentials, refused below
                pass
        grant_type = arg("grant_type")
        with self.lock:
            self.token_requests.append(grant_type)
        if client_id != self.client_id:
            return _oauth_error(
                400,
                "unauthorized_client",
                700016,
                f"AADSTS700016: Application with identifier '{client_id}' was not found in the directory.",
            )
        if client_secret != self.client_secret:
            return _oauth_error(401, "invalid_client", 7000215, "AADSTS7000215: Invalid client secret provided.")
        with self.lock:
            if grant_type == "authorization_code":
                grant = self._codes.get(arg("code"))
                if grant is None or grant["used"] or time.time() - grant["issued"] > 600:
                    return _oauth_error(
                        400,
                        "invalid_grant",
                        70008,
                        "AADSTS70008: The provided authorization code or refresh token has expired due to "
                        "inactivity. Send a new interactive authorization request for this user and resource.",
                    )
                if arg("redirect_uri") != grant["redirect_uri"]:
                    return _oauth_error(
                        400,
                        "invalid_grant",
                        50011,
                        "AADSTS50011: The redirect URI specified in the request does not match the redirect "
                        "URI used to get the authorization code.",
                    )
                if grant["challenge"]:
                    verifier = arg("code_verifier")
                    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
                    if not verifier or digest != grant["challenge"]:
                        return _oauth_error(
                            400,
                            "invalid_grant",
                            501481,
                            "AADSTS501481: The Code_Verifier does not match the code_challenge supplied in the authorization request.",
                        )
                grant["used"] = True
                return self._issue(grant["scopes"])
            if grant_type == "refresh_token":
                grant = self._refresh_tokens.get(arg("refresh_token"))
                if grant is None:
                    return _oauth_error(400, "invalid_grant", 9002313, "AADSTS9002313: Invalid request. Request is malformed or invalid.")
                if grant["revoked"]:
                    return _oauth_error(
                        400,
                        "invalid_grant",
                        50173,
                        "AADSTS50173: The provided grant has expired due to it being revoked, a fresh auth "
                        "token is needed. The user might have changed or reset their password.",
                    )
                return self._issue(grant["scopes"])
        return _oauth_error(400, "unsupported_grant_type", 70003, "AADSTS70003: The app requested an unsupported grant type.")

    def _issue(self, scopes: list[str]) -> tuple[int, dict, bytes]:
        access = "eyJ0eXAiOiJKV1QiLCJub25jZSI6" + secrets.token_urlsafe(40)
        self._access_tokens[access] = {"scopes": set(scopes), "expires_at": time.time() + ACCESS_TOKEN_LIFETIME, "revoked": False}
        shown = [s for s in scopes if s != "offline_access"] + list(OIDC_SCOPES)
        token = {
            "token_type": "Bearer",
            "scope": " ".join(shown),
            "expires_in": ACCESS_TOKEN_LIFETIME,
            "ext_expires_in": ACCESS_TOKEN_LIFETIME,
            "access_token": access,
        }
        if "offline_access" in scopes:
            refresh = "1.AQ" + secrets.token_urlsafe(60)
            self._refresh_tokens[refresh] = {"scopes": list(scopes), "revoked": False}
            token["refresh_token"] = refresh
        return 200, {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store"}, json.dumps(token).encode()

    # -- Graph ---------------------------------------------------------------------------

    def _graph(self, method: str, raw: str, query: dict, headers, body: bytes, origin: str) -> tuple[int, dict, bytes]:
        path = urlsplit(raw).path
        with self.lock:
            self.requests.append((method, unquote(raw)))
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            status, retry_after = failure
            code = "TooManyRequests" if status == 429 else "ServiceNotAvailable"
            message = (
                "Application is over its MailboxConcurrency limit."
                if status == 429
                else "The service is temporarily unavailable. Please retry later."
            )
            raise _GraphError(status, code, message, {"Retry-After": retry_after} if retry_after else {})
        scopes = self._authenticate(headers)
        prefer = _prefer(headers)
        ctx = _Context(self, scopes, prefer, origin, query, headers)
        segments = [unquote(s) for s in path[len(GRAPH) :].strip("/").split("/")]
        if segments[:1] == ["subscriptions"]:
            return self._subscriptions_route(method, segments[1:], ctx, body)  # locks itself: it calls the app
        with self.lock:
            return self._route(method, segments, ctx, body)

    def _authenticate(self, headers) -> set[str]:
        auth = headers.get("Authorization", "")
        unauthenticated = _GraphError(
            401,
            "InvalidAuthenticationToken",
            "Access token is empty." if not auth else "Access token has expired or is not yet valid.",
            {"WWW-Authenticate": 'Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize"'},
        )
        if not auth.startswith("Bearer "):
            raise unauthenticated
        with self.lock:
            token = self._access_tokens.get(auth[7:].strip())
            if token is None or token["revoked"] or token["expires_at"] <= time.time():
                raise unauthenticated
            return set(token["scopes"])

    def _route(self, method: str, seg: list[str], ctx: _Context, body: bytes) -> tuple[int, dict, bytes]:
        if seg[:1] != ["me"]:
            raise _GraphError(400, "BadRequest", f"Resource not found for the segment '{seg[0] if seg else ''}'.")
        rest = seg[1:]
        if rest == [] and method == "GET":
            ctx.need("User.Read")
            return ctx.json(
                {
                    "@odata.context": ctx.origin + GRAPH + "/$metadata#users/$entity",
                    "id": self.user_id,
                    "displayName": self.display_name,
                    "mail": self.mail,
                    "userPrincipalName": self.user_principal_name,
                }
            )
        if rest == ["calendars"] and method == "GET":
            ctx.need_read()
            calendars = [self._calendar_json(c) for c in self.calendars.values() if not c.deleted]
            return ctx.page(calendars, GRAPH + "/me/calendars")
        if rest[:1] == ["calendars"] and len(rest) >= 2:
            calendar = self._calendar(rest[1])
            tail = rest[2:]
            if tail == [] and method == "GET":
                ctx.need_read()
                return ctx.json({"@odata.context": ctx.origin + GRAPH + "/$metadata#me/calendars/$entity", **self._calendar_json(calendar)})
            return self._events_route(method, calendar, tail, ctx, body)
        if rest[:1] in (["events"], ["calendarView"], ["calendar"]):
            tail = rest[1:] if rest[0] == "calendar" else rest
            return self._events_route(method, self.calendars[self.default_calendar_id], tail, ctx, body)
        raise _GraphError(400, "BadRequest", f"Resource not found for the segment '{rest[0] if rest else 'me'}'.")

    def _events_route(self, method: str, calendar: FakeCalendar, tail: list[str], ctx: _Context, body: bytes):
        if tail == ["calendarView", "delta"] and method == "GET":
            ctx.need_read()
            return self._delta(calendar, ctx)
        if tail == ["events"] and method == "GET":
            ctx.need_read()
            return self._list_events(calendar, ctx)
        if tail == ["events"] and method == "POST":
            ctx.need_write(calendar)
            return self._create_event(calendar, ctx, body)
        if len(tail) == 2 and tail[0] == "events":
            instance = self._instance(tail[1], calendar)
            if method == "GET":
                ctx.need_read()
                return ctx.json(self._event_json(instance, ctx), etag=instance.event.etag)
            if method == "PATCH":
                ctx.need_write(calendar)
                return self._update_event(instance, ctx, body)
            if method == "DELETE":
                ctx.need_write(calendar)
                ctx.check_if_match(instance.event)
                instance.event.deleted = True
                instance.event.touch(self._next_seq())
                self._notify_change(instance.event, "deleted")
                return 204, {}, b""
        raise _GraphError(
            405 if tail and tail[0] == "events" else 400, "BadRequest", f"The request is not supported: {method} {'/'.join(tail)}"
        )

    # -- Graph: calendars and events ------------------------------------------------------

    def _calendar(self, calendar_id: str) -> FakeCalendar:
        calendar = self.calendars.get(calendar_id)
        if calendar is None or calendar.deleted:
            raise _GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return calendar

    def _calendar_json(self, c: FakeCalendar) -> dict:
        owner = {"name": self.display_name, "address": self.mail or self.user_principal_name}
        if c.owner:
            owner = {"name": c.owner.split("@")[0].title(), "address": c.owner}
        return {
            "id": c.id,
            "name": c.name,
            "color": "auto",
            "hexColor": "",
            "isDefaultCalendar": c.is_default,
            "changeKey": c.change_key,
            "canShare": c.can_edit,
            "canViewPrivateItems": True,
            "canEdit": c.can_edit,
            "allowedOnlineMeetingProviders": ["teamsForBusiness"],
            "defaultOnlineMeetingProvider": "teamsForBusiness",
            "isTallyingResponses": True,
            "isRemovable": not c.is_default,
            "owner": owner,
        }

    def _instances(self, event: FakeEvent) -> list[_Instance]:
        """A single event is itself; a series master is its occurrences (bounded)."""
        if not event.recurrence:
            return [_Instance(event.id, event, event.start, event.end)]
        pattern = event.recurrence.get("pattern", {})
        span = event.recurrence.get("range", {})
        step = dt.timedelta(days=int(pattern.get("interval", 1)) * (7 if pattern.get("type") == "weekly" else 1))
        count = int(span.get("numberOfOccurrences") or 0) if span.get("type") == "numbered" else 0
        until = None
        if span.get("type") == "endDate" and span.get("endDate"):
            until = dt.datetime.combine(dt.date.fromisoformat(span["endDate"]), dt.time(23, 59, 59), UTC)
        limit = count or 800  # "noEnd": far enough for any test window
        out = []
        for index in range(limit):
            start = event.start + index * step
            if until is not None and start > until:
                break
            occurrence_id = event.id[:-4] + base64.urlsafe_b64encode(start.strftime("%Y%m%d").encode()).decode().rstrip("=") + "AAA="
            out.append(_Instance(occurrence_id, event, start, event.end + index * step, "occurrence"))
        self._occurrence_ids.setdefault(event.id, set()).update(i.id for i in out)
        return out

    def _instance(self, event_id: str, calendar: FakeCalendar) -> _Instance:
        event = self.events.get(event_id)
        if event is not None and not event.deleted and event.calendar_id == calendar.id:
            return _Instance(event.id, event, event.start, event.end, "seriesMaster" if event.recurrence else "singleInstance")
        for master in self.events.values():
            if master.recurrence and not master.deleted and master.calendar_id == calendar.id:
                for instance in self._instances(master):
                    if instance.id == event_id:
                        return instance
        raise _GraphError(404, "ErrorItemNotFound", "The specified object was not found in the store.")

    def _event_json(self, instance: _Instance, ctx: _Context, *, expand: bool = True) -> dict:
        e = instance.event
        zone = _zone(ctx.prefer.get("outlook.timezone", "UTC"))
        zone_name = ctx.prefer.get("outlook.timezone", "UTC")

        def when(value: dt.datetime) -> dict:
            local = value.astimezone(zone)
            if e.is_all_day:
                local = dt.datetime.combine(value.astimezone(UTC).date(), dt.time())
            return {"dateTime": local.strftime("%Y-%m-%dT%H:%M:%S.0000000"), "timeZone": zone_name}

        content, content_type = e.body, e.body_type
        if ctx.prefer.get("outlook.body-content-type") == "text" and content_type == "html":
            content, content_type = _html_to_text(content), "text"
        data = {
            "@odata.etag": e.etag,
            "id": instance.id,
            "createdDateTime": _stamp(e.created),
            "lastModifiedDateTime": _stamp(e.modified),
            "changeKey": e.change_key,
            "categories": [],
            "transactionId": e.transaction_id,
            "originalStartTimeZone": e.start_zone,
            "originalEndTimeZone": e.end_zone,
            "iCalUId": e.ical_uid,
            "reminderMinutesBeforeStart": 15,
            "isReminderOn": True,
            "hasAttachments": False,
            "subject": e.subject,
            "bodyPreview": _html_to_text(e.body)[:255],
            "importance": "normal",
            "sensitivity": "normal",
            "isAllDay": e.is_all_day,
            "isCancelled": e.is_cancelled,
            "isOrganizer": True,
            "responseRequested": True,
            "seriesMasterId": e.id if instance.kind == "occurrence" else None,
            "showAs": e.show_as,
            "type": instance.kind,
            "webLink": "https://outlook.office365.com/owa/?itemid=" + quote(instance.id, safe="") + "&exvsurl=1&path=/calendar/item",
            "onlineMeetingUrl": None,
            "isOnlineMeeting": False,
            "responseStatus": {"response": e.response, "time": "0001-01-01T00:00:00Z"},
            "body": {"contentType": content_type, "content": content},
            "start": when(instance.start),
            "end": when(instance.end),
            "location": {"displayName": e.location, "locationType": "default", "uniqueIdType": "unknown", "address": {}, "coordinates": {}},
            "locations": [{"displayName": e.location}] if e.location else [],
            "recurrence": e.recurrence if instance.kind == "seriesMaster" else None,
            "attendees": [],
            "organizer": {"emailAddress": {"name": self.display_name, "address": self.mail or self.user_principal_name}},
        }
        if data["transactionId"] is None:
            del data["transactionId"]  # "only returned in a response payload if an app has set it"
        if expand:
            wanted = ctx.expanded_properties()
            if wanted is not None:
                data["singleValueExtendedProperties"] = [
                    {"id": pid, "value": value} for pid, value in e.properties.items() if _same_property(pid, wanted)
                ]
        return data

    def _parse_event(self, payload: dict, *, partial: bool) -> dict:
        """The writable fields of an event body, checked the way Graph checks them."""
        fields: dict = {}
        for name in ("start", "end"):
            if name in payload:
                value = payload[name] or {}
                if not isinstance(value, dict) or "dateTime" not in value:
                    raise _GraphError(400, "ErrorInvalidRequest", f"The property '{name}' must contain dateTime and timeZone.")
                zone_name = value.get("timeZone") or "UTC"
                local = _parse_local(value["dateTime"])
                fields[name] = local.replace(tzinfo=_zone(zone_name)).astimezone(UTC)
                fields[name + "_zone"] = zone_name
            elif not partial:
                raise _GraphError(400, "ErrorPropertyValidationFailure", f"At least one property failed validation: {name}.")
        if "subject" in payload:
            fields["subject"] = str(payload.get("subject") or "")
        if "body" in payload:
            body = payload.get("body") or {}
            kind = str(body.get("contentType", "text")).lower()
            if kind not in ("text", "html"):
                raise _GraphError(400, "ErrorInvalidRequest", "Requested value 'markdown' was not found.")
            fields["body"], fields["body_type"] = str(body.get("content") or ""), kind
        if "location" in payload:
            fields["location"] = str((payload.get("location") or {}).get("displayName") or "")
        if "showAs" in payload:
            if payload["showAs"] not in ("free", "tentative", "busy", "oof", "workingElsewhere", "unknown"):
                raise _GraphError(400, "ErrorInvalidRequest", f"Requested value '{payload['showAs']}' was not found.")
            fields["show_as"] = payload["showAs"]
        if "isAllDay" in payload:
            fields["is_all_day"] = bool(payload["isAllDay"])
        for prop in payload.get("singleValueExtendedProperties") or []:
            if not isinstance(prop, dict) or not str(prop.get("id", "")).startswith("String "):
                raise _GraphError(400, "ErrorInvalidProperty", "The extended property id is not valid.")
            fields.setdefault("properties", {})[prop["id"]] = str(prop.get("value", ""))
        if fields.get("is_all_day"):
            for name in ("start", "end"):
                if name in fields and fields[name].time() != dt.time():
                    raise _GraphError(
                        400,
                        "ErrorInvalidRequest",
                        "Your request can't be completed. If the event is an all-day event, start and end must be midnight.",
                    )
        return fields

    def _create_event(self, calendar: FakeCalendar, ctx: _Context, body: bytes):
        payload = ctx.payload(body)
        transaction_id = payload.get("transactionId")
        if transaction_id:
            for existing in self.events.values():
                if existing.transaction_id == transaction_id and not existing.deleted:
                    # A client retry of a create it already made: the same event, not a second one.
                    instance = _Instance(existing.id, existing, existing.start, existing.end)
                    return ctx.json(self._event_json(instance, ctx, expand=False), status=201, etag=existing.etag)
        fields = self._parse_event(payload, partial=False)
        event = FakeEvent(
            id=_graph_id(),
            calendar_id=calendar.id,
            subject=fields.get("subject", ""),
            start=fields["start"],
            end=fields["end"],
            transaction_id=transaction_id,
        )
        self._apply(event, fields)
        if event.end < event.start:
            raise _GraphError(400, "ErrorInvalidRequest", "The end time of the event must be after the start time.")
        event.seq = self._next_seq()
        self.events[event.id] = event
        self._notify_change(event, "created")
        instance = _Instance(event.id, event, event.start, event.end)
        return ctx.json(
            {
                "@odata.context": ctx.origin + GRAPH + "/$metadata#me/calendars('x')/events/$entity",
                **self._event_json(instance, ctx, expand=False),
            },
            status=201,
            etag=event.etag,
        )

    @staticmethod
    def _apply(event: FakeEvent, fields: dict) -> None:
        for name, value in fields.items():
            if name == "properties":
                event.properties.update(value)
            else:
                setattr(event, name, value)

    def _update_event(self, instance: _Instance, ctx: _Context, body: bytes):
        ctx.check_if_match(instance.event)
        payload = ctx.payload(body)
        if "transactionId" in payload and payload["transactionId"] != instance.event.transaction_id:
            raise _GraphError(400, "ErrorInvalidRequest", "The transactionId of an event cannot be changed.")
        fields = self._parse_event(payload, partial=True)
        self._apply(instance.event, fields)
        instance.event.touch(self._next_seq())
        self._notify_change(instance.event, "updated")
        fresh = _Instance(instance.id, instance.event, instance.event.start, instance.event.end, instance.kind)
        return ctx.json(self._event_json(fresh, ctx, expand=False), etag=instance.event.etag)

    def _list_events(self, calendar: FakeCalendar, ctx: _Context):
        wanted = ctx.property_filter()
        rows = []
        for event in self.events.values():
            if event.calendar_id != calendar.id or event.deleted:
                continue
            if wanted is not None:
                pid, operator, value = wanted
                # "Filtering the value property of an extended property is case-insensitive."
                if not any(
                    _same_property(k, pid) and (v.lower() == value.lower()) == (operator == "eq") for k, v in event.properties.items()
                ):
                    continue
            instance = _Instance(event.id, event, event.start, event.end, "seriesMaster" if event.recurrence else "singleInstance")
            rows.append(ctx.select(self._event_json(instance, ctx)))
        return ctx.page(rows, GRAPH + f"/me/calendars/{quote(calendar.id, safe='')}/events")

    # -- Graph: subscriptions (change notifications) --------------------------------------

    def _subscriptions_route(self, method: str, rest: list[str], ctx: _Context, body: bytes):
        # subscription-post-subscriptions: "Creating a subscription requires read scope to the
        # resource" (Calendars.Read for events); the same account reads, renews and deletes it.
        ctx.need_read()
        if rest == [] and method == "POST":
            return self._subscribe(ctx, body)
        if rest == [] and method == "GET":
            with self.lock:
                rows = [self._subscription_json(sub, ctx, context=False) for sub in self._live_subscriptions()]
            return ctx.json({"@odata.context": ctx.origin + GRAPH + "/$metadata#subscriptions", "value": rows})
        if len(rest) == 1 and method in ("GET", "PATCH", "DELETE"):
            with self.lock:
                sub = self._subscription(rest[0])
                if method == "DELETE":
                    sub.deleted = True
                    return 204, {}, b""
                if method == "PATCH":
                    payload = ctx.payload(body)
                    if "expirationDateTime" not in payload:
                        raise _GraphError(
                            400,
                            "InvalidRequest",
                            "Subscription must contain either the 'expirationDateTime' or 'notificationUrl' property and its value.",
                        )
                    if set(payload) - {"expirationDateTime", "@odata.type"}:
                        raise _GraphError(400, "InvalidRequest", "This fake renews a subscription's expirationDateTime only.")
                    # subscription-update: renewing also reauthorizes (change-notifications-lifecycle-events).
                    sub.expiration = self._expiration(payload["expirationDateTime"])
                return ctx.json(self._subscription_json(sub, ctx))
        raise _GraphError(405 if rest else 400, "BadRequest", f"The request is not supported: {method} subscriptions")

    def _subscribe(self, ctx: _Context, body: bytes):
        payload = ctx.payload(body)
        for name in ("changeType", "notificationUrl", "resource"):
            if not isinstance(payload.get(name), str) or not payload[name].strip():
                raise _GraphError(400, "InvalidRequest", f"{name} is a required property for subscription creation.")
        if "expirationDateTime" not in payload:
            raise _GraphError(400, "InvalidRequest", "expirationDateTime must be provided with the subscription.")
        change_type = payload["changeType"]
        kinds = [c.strip() for c in change_type.split(",")]
        if not set(kinds) <= set(CHANGE_TYPES) or len(kinds) != len(set(kinds)):
            raise _GraphError(
                400,
                "InvalidRequest",
                f"'{change_type}' is not a valid changeType; use a comma-separated list of created, updated, deleted.",
            )
        client_state = payload.get("clientState")
        if client_state is not None and (not isinstance(client_state, str) or len(client_state) > 128):
            raise _GraphError(400, "InvalidRequest", "clientState must be a string of at most 128 characters.")
        urls = [("notificationUrl", payload["notificationUrl"])]
        if payload.get("lifecycleNotificationUrl"):
            urls.append(("lifecycleNotificationUrl", payload["lifecycleNotificationUrl"]))
        for name, url in urls:
            _check_hook_url(name, url)
        tls_version = payload.get("latestSupportedTlsVersion") or "v1_2"  # "defaults the property to v1_2"
        if tls_version not in ("v1_0", "v1_1", "v1_2", "v1_3"):
            raise _GraphError(400, "InvalidRequest", f"'{tls_version}' is not a valid latestSupportedTlsVersion.")
        expiration = self._expiration(payload["expirationDateTime"])
        with self.lock:
            calendar_id = self._subscribed_calendar(payload["resource"])
        sub = FakeSubscription(
            id=str(uuid.uuid4()),
            resource=payload["resource"],
            calendar_id=calendar_id,
            change_type=change_type,
            notification_url=payload["notificationUrl"],
            lifecycle_url=payload.get("lifecycleNotificationUrl") or None,
            expiration=expiration,
            client_state=client_state,
            tls_version=tls_version,
        )
        for _, url in urls:  # outside the lock: the app's endpoint may well call Graph meanwhile
            self._validate_endpoint(sub.id, url)
        with self.lock:
            self._subscriptions[sub.id] = sub
            return ctx.json(self._subscription_json(sub, ctx), status=201)

    def _subscribed_calendar(self, resource: str) -> str:
        """The calendar whose events ``resource`` names: ``me/calendars/{id}/events`` or ``me/events``."""
        path = resource.strip().lstrip("/")
        if path.lower() in ("me/events", "me/calendar/events"):
            return self.default_calendar_id
        match = re.fullmatch(r"me/calendars/([^/]+)/events", path, flags=re.IGNORECASE)
        if match is None:
            raise _GraphError(
                400,
                "InvalidRequest",
                f"The resource '{resource}' is not supported by this fake; subscribe to me/calendars/{{id}}/events or me/events.",
            )
        calendar_id = unquote(match.group(1).strip("'()"))
        calendar = self.calendars.get(calendar_id)
        if calendar is None or calendar.deleted:
            # The subscription service wraps the mailbox's answer (as in its "Operation: Update;
            # Exception: [Status Code: Unauthorized; ...]" errors seen in the wild).
            raise _GraphError(
                404,
                "ExtensionError",
                "Operation: Create; Exception: [Status Code: NotFound; Reason: The specified object was not found in the store.]",
            )
        return calendar.id

    def _expiration(self, value) -> dt.datetime:
        if not isinstance(value, str):
            raise _GraphError(400, "InvalidRequest", "expirationDateTime must be provided with the subscription.")
        try:
            expiration = _parse_range(value, "expirationDateTime")
        except _GraphError:
            raise _GraphError(400, "InvalidRequest", f"'{value}' is not a valid expirationDateTime.") from None
        now = self.now()
        # ExtensionError is the subscription service's answer to an expiration out of range ("Subscription
        # expiration can only be 4230 minutes in the future.", microsoftgraph/microsoft-graph-docs#2988).
        if expiration - now > dt.timedelta(minutes=MAX_SUBSCRIPTION_MINUTES):
            raise _GraphError(
                400, "ExtensionError", f"Subscription expiration can only be {MAX_SUBSCRIPTION_MINUTES} minutes in the future."
            )
        if expiration <= now:
            raise _GraphError(400, "ExtensionError", "Subscription expiration can only be in the future.")
        return expiration

    def _subscription(self, subscription_id: str) -> FakeSubscription:
        sub = self._subscriptions.get(subscription_id)
        if sub is None or not self._is_live(sub):
            raise _GraphError(404, "ResourceNotFound", "The object was not found.")
        return sub

    def _is_live(self, sub: FakeSubscription) -> bool:
        return not sub.deleted and sub.expiration > self.now()

    def _live_subscriptions(self) -> list[FakeSubscription]:
        return [sub for sub in self._subscriptions.values() if self._is_live(sub)]

    def _subscription_json(self, sub: FakeSubscription, ctx: _Context, *, context: bool = True) -> dict:
        data = {
            "id": sub.id,
            "resource": sub.resource,
            "applicationId": self.client_id,
            "changeType": sub.change_type,
            "clientState": sub.client_state,
            "notificationUrl": sub.notification_url,
            "notificationQueryOptions": None,
            "lifecycleNotificationUrl": sub.lifecycle_url,
            "expirationDateTime": _stamp(sub.expiration),
            "creatorId": self.user_id,
            "includeResourceData": False,
            "latestSupportedTlsVersion": sub.tls_version,
            "encryptionCertificate": None,
            "encryptionCertificateId": None,
            "notificationUrlAppId": None,
        }
        if context:
            data = {"@odata.context": ctx.origin + GRAPH + "/$metadata#subscriptions/$entity", **data}
        return data

    # -- push: the validation handshake and the deliveries ----------------------------------

    def _validate_endpoint(self, subscription_id: str, url: str) -> None:
        """change-notifications-delivery-webhooks, "notificationUrl validation": POST
        ``{url}?validationToken=...`` (text/plain, no body); the app must answer 200, text/plain, with
        the decoded token, within 10 seconds. Raises the 400 Graph answers otherwise."""
        token = f"Validation: Testing client application reachability for subscription Request-Id: {uuid.uuid4()}"
        record = {"subscription_id": subscription_id, "kind": "validation", "url": url}
        failed = "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request."
        if urlsplit(url).hostname not in LOOPBACK_HOSTS:
            self._record(record, None, "not contacted: this fake reaches only 127.0.0.1 and localhost", False)
            raise _GraphError(400, "ValidationError", failed)
        try:
            status, content_type, text = _post(
                _with_query(url, "validationToken=" + quote(token, safe="")), b"", "text/plain; charset=utf-8", self.validation_timeout
            )
        except requests.Timeout:
            self._record(record, None, f"no answer within {self.validation_timeout:g} s", False)
            # A real timeout was answered {"code": "InvalidRequest", "message": "Subscription validation request
            # timed out."} (microsoftgraph/nodejs-webhooks-sample#350); one code here for every failed handshake.
            raise _GraphError(400, "ValidationError", "Subscription validation request timed out.") from None
        except requests.RequestException as exc:
            self._record(record, None, f"{type(exc).__name__}: {exc}", False)
            raise _GraphError(400, "ValidationError", failed) from None
        if status != 200:
            self._record(record, status, f"HTTP {status}", False)
            raise _GraphError(400, "ValidationError", failed)
        if content_type.split(";")[0].strip().lower() != "text/plain":
            self._record(record, status, f"Content-Type {content_type!r}, not text/plain", False)
            raise _GraphError(
                400, "ValidationError", "Subscription validation request failed. The response must have Content-Type text/plain."
            )
        if text != token.encode():
            self._record(record, status, "the body is not the decoded validationToken", False)
            raise _GraphError(
                400,
                "ValidationError",
                "Subscription validation request failed. Response must exactly match validationToken query parameter.",
            )
        self._record(record, status, "", True)

    def _notify_change(self, event: FakeEvent, change_type: str) -> int:
        """Queue a change notification for each live subscription of the event's calendar that wants it."""
        resource = f"Users/{self.user_id}/Events/{event.id}"
        queued = 0
        for sub in self._live_subscriptions():
            if sub.calendar_id != event.calendar_id or not sub.covers(change_type):
                continue
            notification = {
                "subscriptionId": sub.id,
                "subscriptionExpirationDateTime": _stamp(sub.expiration),
                "changeType": change_type,
                "resource": resource,
                "resourceData": {"@odata.type": "#Microsoft.Graph.Event", "@odata.id": resource, "@odata.etag": event.etag, "id": event.id},
            }
            if sub.client_state is not None:
                notification["clientState"] = sub.client_state
            notification["tenantId"] = self.tenant_id
            queued += self._queue_push("change", sub, sub.notification_url, {"value": [notification]}, changeType=change_type)
        return queued

    def _queue_push(self, kind: str, sub: FakeSubscription, url: str, payload: dict, **what) -> int:
        if self._silenced:
            return 0
        self._outbox.put({"subscription_id": sub.id, "kind": kind, "url": url, "body": payload, **what})
        return 1

    def _deliver_until_stopped(self) -> None:
        """The courier: one delivery at a time, in order, until ``stop`` queues None."""
        for job in iter(self._outbox.get, None):
            try:
                self._deliver(job)
            finally:
                self._outbox.task_done()
        self._outbox.task_done()  # the None

    def _deliver(self, job: dict) -> None:
        # Whether a subscription hears of a change is decided when the change happens (_notify_change):
        # once queued, a notification is in flight, whatever happens to the subscription next.
        # Silencing drops what is in flight too.
        with self.lock:
            if self._silenced or self._stopping.is_set():
                return
        try:
            status, _, _ = _post(job["url"], json.dumps(job["body"]).encode(), "application/json", self.delivery_timeout)
        except requests.RequestException as exc:
            self._record(job, None, f"{type(exc).__name__}: {exc}", False)
            return
        self._record(job, status, "", 200 <= status < 300)

    def _record(self, what: dict, status: int | None, error: str, ok: bool) -> None:
        record = PushDelivery(**{"changeType": None, "lifecycleEvent": None, **what}, status=status, error=error, ok=ok)
        with self._pushed:
            self._push_log.append(record)
            self._pushed.notify_all()

    # -- Graph: the calendar view delta -----------------------------------------------

    def _delta(self, calendar: FakeCalendar, ctx: _Context):
        q = ctx.query
        for unsupported in ("$select", "$expand", "$filter", "$orderby", "$search"):
            if unsupported in q:
                raise _GraphError(
                    400,
                    "ErrorInvalidUrlQuery",
                    f"The query parameter '{unsupported}' is not supported with change tracking over the 'CalendarView' resource.",
                )
        base = ctx.origin + GRAPH + f"/me/calendars/{quote(calendar.id, safe='=')}/calendarView/delta"
        if "$skiptoken" in q:
            skip = self._skips.pop(q["$skiptoken"][0], None)
            if skip is None:
                raise _GraphError(410, "syncStateNotFound", "The sync state generation is not found; start a new sync.")
            rows, delta_token = skip
            return self._delta_page(rows, delta_token, base, ctx)
        if "$deltatoken" in q:
            state = self._deltas.get(q["$deltatoken"][0])
            if state is None or not state.valid or state.calendar_id != calendar.id:
                raise _GraphError(410, "syncStateNotFound", "The sync state generation is not found; start a new sync.")
            rows = self._changed_since(calendar, state, ctx)
            new = _DeltaState(calendar.id, state.start, state.end, self.seq)
        else:
            start = _parse_range(q.get("startDateTime", q.get("startdatetime", [""]))[0], "startDateTime")
            end = _parse_range(q.get("endDateTime", q.get("enddatetime", [""]))[0], "endDateTime")
            new = _DeltaState(calendar.id, start, end, self.seq)
            rows = [self._event_json(i, ctx, expand=False) for i in self._in_window(calendar, start, end)]
        token = secrets.token_urlsafe(24)
        self._deltas[token] = new
        return self._delta_page(rows, token, base, ctx)

    def _delta_page(self, rows: list[dict], delta_token: str, base: str, ctx: _Context):
        size = ctx.page_size(self.page_size)
        page, rest = rows[:size], rows[size:]
        data: dict = {"@odata.context": ctx.origin + GRAPH + "/$metadata#Collection(event)", "value": page}
        if rest:
            skip = secrets.token_urlsafe(24)
            self._skips[skip] = (rest, delta_token)
            data["@odata.nextLink"] = base + "?$skiptoken=" + skip
        else:
            data["@odata.deltaLink"] = base + "?$deltatoken=" + delta_token
        return ctx.json(data)

    def _in_window(self, calendar: FakeCalendar, start: dt.datetime, end: dt.datetime) -> list[_Instance]:
        found = []
        for event in self.events.values():
            if event.calendar_id != calendar.id or event.deleted:
                continue
            for instance in self._instances(event):
                if instance.start < end and (instance.end > start or (instance.end == instance.start == start)):
                    found.append(instance)
        found.sort(key=lambda i: (i.start, i.id))
        return found

    def _changed_since(self, calendar: FakeCalendar, state: _DeltaState, ctx: _Context) -> list[dict]:
        rows = []
        for event in sorted(self.events.values(), key=lambda e: e.seq):
            if event.seq <= state.seq or event.calendar_id != calendar.id:
                continue
            known_ids = set(self._occurrence_ids.get(event.id, set())) if event.recurrence else {event.id}
            current = [] if event.deleted else [i for i in self._instances(event) if i.start < state.end and i.end > state.start]
            for instance in current:
                rows.append(self._event_json(instance, ctx, expand=False))
            for gone in sorted(known_ids - {i.id for i in current}):
                rows.append({"@odata.type": "#microsoft.graph.event", "id": gone, "@removed": {"reason": "deleted"}})
        return rows


def _same_property(a: str, b: str) -> bool:
    """Extended property ids compare case-insensitively except for the Name part."""

    def norm(pid: str) -> tuple[str, str]:
        head, _, name = pid.partition(" Name ")
        return head.lower(), name

    return norm(a) == norm(b)


def _check_hook_url(name: str, url: str) -> None:
    """Graph requires https; this fake also takes plain http to 127.0.0.1 / localhost, where tests listen."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS):
        return
    raise _GraphError(400, "InvalidRequest", f"The {name} must use the HTTPS protocol.")


def _post(url: str, body: bytes, content_type: str, timeout: float) -> tuple[int, str, bytes]:
    """One POST to an app's endpoint: (status, Content-Type, at most 64 KiB of body), within ``timeout`` in all."""
    deadline = time.monotonic() + timeout
    with requests.Session() as session:
        session.trust_env = False  # never through a proxy: the endpoint is on this machine
        with session.post(
            url, data=body, headers={"Content-Type": content_type}, timeout=timeout, allow_redirects=False, stream=True
        ) as response:
            text = b""
            for chunk in response.iter_content(4096):
                text += chunk
                if len(text) > 65536 or time.monotonic() > deadline:
                    break
            if time.monotonic() > deadline:
                raise requests.Timeout(f"no complete answer within {timeout:g} s")
            return response.status_code, response.headers.get("Content-Type", ""), text


def _json_or_none(content_type: str | None, body: bytes):
    """A JSON body as data (for ``calls``); anything else as None."""
    if not body or "json" not in (content_type or ""):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _with_query(url: str, query: str) -> str:
    return url + ("&" if "?" in url else "?") + query


def _page(status: int, title: str, body: str) -> tuple[int, dict, bytes]:
    document = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)}</title></head><body><main>"
        "<p>Microsoft (local fake)</p>"
        f"{body}</main></body></html>"
    )
    return status, {"Content-Type": "text/html; charset=utf-8"}, document.encode()


def _redirect_error(redirect_uri: str, state: str, error: str, description: str) -> tuple[int, dict, bytes]:
    query = urlencode({"error": error, "error_description": description, "state": state})
    return 302, {"Location": _with_query(redirect_uri, query)}, b""


def _oauth_error(status: int, error: str, code: int, description: str) -> tuple[int, dict, bytes]:
    trace, correlation = str(uuid.uuid4()), str(uuid.uuid4())
    now = dt.datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    body = {
        "error": error,
        "error_description": f"{description}\r\nTrace ID: {trace}\r\nCorrelation ID: {correlation}\r\nTimestamp: {now}",
        "error_codes": [code],
        "timestamp": now,
        "trace_id": trace,
        "correlation_id": correlation,
    }
    return status, {"Content-Type": "application/json; charset=utf-8"}, json.dumps(body).encode()


def _prefer(headers) -> dict:
    prefs: dict[str, str] = {}
    for value in headers.get_all("Prefer") or []:
        for part in value.split(","):
            name, _, arg = part.strip().partition("=")
            if name:
                prefs[name.strip().lower()] = arg.strip().strip('"')
    return prefs


class _Context:
    """What one Graph request carries: its scopes, preferences, query and origin."""

    def __init__(self, fake: GraphFake, scopes: set[str], prefer: dict, origin: str, query: dict, headers):
        self.fake, self.scopes, self.prefer, self.origin, self.query, self.headers = fake, scopes, prefer, origin, query, headers

    def need(self, scope: str) -> None:
        if scope not in self.scopes:
            raise _GraphError(403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation.")

    def need_read(self) -> None:
        if not self.scopes & {"Calendars.Read", "Calendars.ReadWrite"}:
            raise _GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")

    def need_write(self, calendar: FakeCalendar) -> None:
        if "Calendars.ReadWrite" not in self.scopes or not calendar.can_edit:
            raise _GraphError(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")

    def check_if_match(self, event: FakeEvent) -> None:
        wanted = self.headers.get("If-Match")
        if wanted and wanted.strip() not in ("*", event.etag, event.change_key):
            raise _GraphError(
                412,
                "ErrorIrresolvableConflict",
                "The send or update operation could not be performed because the change key passed in the request does "
                "not match the current change key for the item.",
            )

    def payload(self, body: bytes) -> dict:
        if "json" not in (self.headers.get("Content-Type") or ""):
            raise _GraphError(415, "UnsupportedMediaType", "The content type is not supported; use application/json.")
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            raise _GraphError(400, "BadRequest", "Unable to read JSON request payload.") from None
        if not isinstance(data, dict):
            raise _GraphError(400, "BadRequest", "The request payload must be a JSON object.")
        return data

    def page_size(self, default: int) -> int:
        size = self.prefer.get("odata.maxpagesize")
        if "$top" in self.query:
            size = self.query["$top"][0]
        try:
            return max(1, int(size)) if size else default
        except ValueError:
            return default

    def page(self, rows: list[dict], path: str):
        """A collection, paged by $skip the way Graph pages calendars and event lists."""
        size = self.page_size(self.fake.page_size)
        skip = int(self.query.get("$skip", ["0"])[0] or 0)
        data: dict = {"@odata.context": self.origin + GRAPH + "/$metadata#Collection", "value": rows[skip : skip + size]}
        if skip + size < len(rows):
            params = {k: v[0] for k, v in self.query.items() if k != "$skip"}
            params["$skip"] = str(skip + size)
            data["@odata.nextLink"] = self.origin + path + "?" + urlencode(params, safe="$'(),/:= ")
        return self.json(data)

    def select(self, data: dict) -> dict:
        fields = self.query.get("$select", [""])[0]
        if not fields:
            return data
        keep = {f.strip() for f in fields.split(",")} | {"id", "@odata.etag"}
        return {k: v for k, v in data.items() if k in keep or k == "singleValueExtendedProperties"}

    def expanded_properties(self) -> str | None:
        value = self.query.get("$expand", [""])[0]
        if not value:
            return None
        match = re.fullmatch(r"singleValueExtendedProperties\(\$filter=id eq '(.+)'\)", value.strip())
        if not match:
            raise _GraphError(400, "BadRequest", f"Parsing OData Select and Expand failed: {value}")
        return _odata_unquote(match.group(1))

    def property_filter(self) -> tuple[str, str, str] | None:
        """(property id, eq|ne, value) of a documented extended-property filter on events."""
        value = self.query.get("$filter", [""])[0]
        if not value:
            return None
        match = re.fullmatch(
            r"singleValueExtendedProperties/Any\(ep:\s*ep/id eq '((?:[^']|'')+)' and ep/value (eq|ne) '((?:[^']|'')*)'\)",
            value.strip(),
        )
        if not match:
            raise _GraphError(400, "ErrorInvalidUrlQueryFilter", f"The $filter is not supported by this fake: {value}")
        return _odata_unquote(match.group(1)), match.group(2), _odata_unquote(match.group(3))

    def json(self, data: dict, status: int = 200, etag: str | None = None):
        headers = {"Content-Type": "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8"}
        if etag:
            headers["ETag"] = etag
        if "outlook.timezone" in self.prefer:
            headers["Preference-Applied"] = f'outlook.timezone="{self.prefer["outlook.timezone"]}"'
        return status, headers, json.dumps(data).encode()


class _Handler(BaseHTTPRequestHandler):
    fake: GraphFake
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _reply(self, status: int, headers: dict, body: bytes) -> None:
        self.send_response(status)
        headers = {"request-id": str(uuid.uuid4()), "client-request-id": str(uuid.uuid4()), **headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        query = parse_qs(parts.query, keep_blank_values=True)
        path = parts.path
        origin = f"http://{self.headers.get('Host') or '127.0.0.1'}"
        fake = self.fake
        try:
            oauth = re.fullmatch(r"/[^/]+/oauth2/v2\.0/(authorize|consent|token)", path)
            if oauth and oauth.group(1) == "authorize" and self.command == "GET":
                result = fake._authorize(query)
            elif oauth and oauth.group(1) == "consent" and self.command == "POST":
                result = fake._consent(parse_qs(body.decode("utf-8", "replace")))
            elif oauth and oauth.group(1) == "token" and self.command == "POST":
                result = fake._token(self.headers, parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True))
            elif path == GRAPH or path.startswith(GRAPH + "/"):
                result = fake._graph(self.command, self.path, query, self.headers, body, origin)
            else:
                result = _page(404, "Not found", "<p>Not found.</p>")
        except _GraphError as exc:
            error = {
                "error": {
                    "code": exc.code,
                    "message": exc.message,
                    "innerError": {
                        "date": dt.datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
                        "request-id": str(uuid.uuid4()),
                        "client-request-id": str(uuid.uuid4()),
                    },
                }
            }
            result = (exc.status, {"Content-Type": "application/json; charset=utf-8", **exc.headers}, json.dumps(error).encode())
        if path.startswith(GRAPH):
            with fake.lock:
                fake.answers.append((self.command, path, result[0]))
                fake.calls.append(
                    Call(
                        self.command,
                        unquote(path),
                        unquote(parts.query),
                        result[0],
                        _json_or_none(self.headers.get("Content-Type"), body),
                        _json_or_none(result[1].get("Content-Type"), result[2]),
                    )
                )
        self._reply(*result)

    do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _handle


def weekly(count: int) -> dict:
    """A ``patternedRecurrence`` for ``count`` weekly occurrences (for ``add_event``)."""
    return {"pattern": {"type": "weekly", "interval": 1}, "range": {"type": "numbered", "numberOfOccurrences": count}}
