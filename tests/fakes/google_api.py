"""A local stand-in for Google's OAuth 2.0 endpoints and the Calendar API v3.

Held to Google's machine-readable description of the API, the discovery
document ``calendar.v3.json`` that google-api-python-client ships
(tests/test_google_description.py checks every request calsync sends and every
answer this fake gives against it). What the description cannot show, and this
fake therefore takes from the guides or assumes:

* Order: a listing is in the order events were created (the description says
  only "an unspecified, stable order"). Page sizes come from the parameters'
  prose: events 250 by default, at most 2500; calendarList 100, at most 250.
* A cancelled event in a listing carries only ``kind``, ``id``, ``etag``,
  ``status``, ``updated`` (and, for instances, ``recurringEventId``,
  ``originalStartTime``); read by id it is answered 200 the same way, a second
  delete is 410 ``deleted``; a ``freeBusyReader`` sees times only (assumed).
* What ``syncToken`` refuses with it and 410 ``fullSyncRequired`` come from the
  parameter's prose and guides/sync; ``If-Match`` and 412 from
  guides/version-resources.
* Every error body and reason (guides/errors: the discovery document describes
  no error shape); a wrongly typed parameter is 400 ``invalid`` (wording assumed).
* Ignored: unknown query parameters (assumed to be what Google does), and, not
  modelled, ``q``, ``orderBy``, ``iCalUID``, ``updatedMin``, ``timeZone``,
  ``eventTypes``, the ``*ExtendedProperty`` filters, calendarList's
  ``minAccessRole``, ``showHidden``, ``showDeleted`` and ``syncToken``. Methods
  the fake does not serve answer 404 or 405.
* Push (guides/push; not in the description beyond the ``Channel`` schema): a
  notification is headers only, with an empty body; ``sync`` first (number 1),
  then ``exists`` for each change (several changes send several: Google does not
  reliably coalesce them), ``not_exists`` when the calendar is deleted; numbers
  increase per channel. The fake sends ``sync`` after the watch answer (Google
  may send it before). Assumed: the 400 reasons ``channelIdNotUnique`` and
  ``push.webhookUrlNotHttps``, a 30-day limit on a channel's life, a
  ``resourceUri`` naming the canonical calendar id, a channel that stays live
  after its calendar's ``not_exists`` (until stopped or expired). Not modelled: Google's
  retries when the receiver answers 5xx; dropped notifications are what
  ``silence_push`` is for.

Written from these documentation pages (no network access while it was
written, so only what they say is claimed; details beyond them are marked
"assumed"):

* developers.google.com/identity/protocols/oauth2/web-server -- the consent URL
  (``response_type=code``, ``client_id``, ``redirect_uri``, ``scope``, ``state``,
  ``access_type=offline`` for a refresh token, ``prompt``,
  ``include_granted_scopes``, ``code_challenge`` + ``code_challenge_method=S256``);
  the redirect back with ``code``/``state``/``scope`` or ``error=access_denied``;
  the token endpoint's ``authorization_code`` and ``refresh_token`` grants
  (``access_token``, ``expires_in``, ``refresh_token``, ``scope``, ``token_type``;
  ``{"error": "invalid_grant", "error_description": "Token has been expired or
  revoked."}`` once the user removed the app's access); granular consent: the
  user may untick a scope, and ``scope`` then lists only what was granted.
* RFC 7636 §4.6 -- S256: ``BASE64URL(SHA256(code_verifier)) == code_challenge``.
* developers.google.com/calendar/api/v3/reference/calendarList/list and /get --
  entries with ``id``, ``summary``, ``summaryOverride``, ``accessRole``
  (freeBusyReader, reader, writer, owner), ``primary``; the ``primary`` alias.
* .../v3/reference/events/list -- ``singleEvents`` (instances of recurring
  events, ``recurringEventId``, ``originalStartTime``), ``showDeleted``,
  ``timeMin`` (exclusive bound on an event's end) / ``timeMax`` (exclusive bound
  on its start), ``maxResults`` (default 250, at most 2500), ``pageToken`` /
  ``nextPageToken``, ``syncToken`` / ``nextSyncToken`` (on the last page only).
* .../calendar/api/guides/sync -- with ``syncToken``, ``timeMin``/``timeMax``/
  ``updatedMin``/``q``/``orderBy``/``iCalUID``/``privateExtendedProperty``/
  ``sharedExtendedProperty`` are refused, deleted events always
  come back (``status: cancelled``), an invalidated token gives ``410``.
* .../v3/reference/events/insert, get, update, patch, delete -- a client-chosen
  ``id`` (base32hex ``a-v0-9``, 5-1024 chars, unique per calendar; deleted
  events keep theirs); ``extendedProperties.private``; ``transparency``.
* .../calendar/api/guides/version-resources -- ``If-Match`` → ``412`` when the
  ETag no longer matches.
* .../calendar/api/guides/errors -- the error body shape
  ``{"error": {"errors": [{"domain", "reason", "message"[, "locationType",
  "location"]}], "code", "message"}}``; 400 ``calendar``/``timeRangeEmpty``
  (at ``timeMax``); 401 ``authError`` "Invalid Credentials" (at the
  ``Authorization`` header); 403 ``usageLimits`` / ``rateLimitExceeded`` /
  ``userRateLimitExceeded``; 403 ``requiredAccessLevel`` "You need to have
  writer access to this calendar."; 404 ``notFound``; 409 ``duplicate`` "The
  requested identifier already exists."; 410 ``calendar``/``fullSyncRequired``
  (at ``syncToken``) / ``deleted``; 412 ``conditionNotMet`` (at ``If-Match``);
  429 ``rateLimitExceeded``.
* .../calendar/api/guides/push, v3/reference/events/watch, channels/stop -- a
  ``Channel`` (``id`` at most 64 characters, ``type`` ``web_hook``, an HTTPS
  ``address``, ``token`` at most 256 characters, ``expiration`` in ms,
  ``params.ttl`` in s) answered with ``kind: api#channel``, ``resourceId``,
  ``resourceUri``, ``expiration`` (int64: a JSON string); the notification
  headers ``X-Goog-Channel-ID``, ``-Channel-Token``, ``-Channel-Expiration``
  (RFC 1123), ``-Resource-ID``, ``-Resource-URI``, ``-Resource-State``,
  ``-Message-Number``, user agent ``APIs-Google``; ``channels.stop`` by ``id``
  and ``resourceId``, 204. The fake also accepts ``http://127.0.0.1:…`` and
  ``http://localhost:…`` addresses (test receivers), and delivers only to
  loopback addresses; a channel lives ``params.ttl``, else 604800 s.

Assumed: a deleted event read by id is answered 200 with ``status: cancelled``
(a second delete is 410 ``deleted``); a cancelled event in a listing carries
only ``id``, ``etag``, ``status``, ``updated`` (and, for instances,
``recurringEventId``/``originalStartTime``); a ``freeBusyReader`` listing shows
times only. Recurrence: RRULE with FREQ=DAILY/WEEKLY, INTERVAL, COUNT, UNTIL
(the "simple weekly RRULE" the tests need); an open-ended rule is expanded for
two years.

Test hooks: ``add_event``, ``edit_event``, ``delete_event`` (changes "from
outside"), ``add_calendar``, ``set_access_role``, ``delete_calendar``,
``revoke_grant``, ``expire_access_tokens``, ``invalidate_sync_tokens``,
``fail_next``, ``withhold_scopes``; ``calls`` records every Calendar API request
with the answer it got. Push: ``channels(calendar_id=None)``,
``push_deliveries``, ``wait_for_deliveries(count, timeout=5.0)``,
``silence_push(on=True)``, ``expire_channel(channel_id)``,
``notify(calendar_id, state="exists", count=1)``. Notifications go out on one
delivery thread (each POST with a 5 s timeout), never inside the request that
caused them or while the fake holds its lock; ``stop()`` ends the thread.
Channels outlive ``revoke_grant()``: calsync finds out on its next API call.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime as dt
import email.utils
import hashlib
import html
import http.client
import json
import queue
import re
import secrets
import ssl
import threading
import time
import zoneinfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import NamedTuple
from urllib.parse import parse_qs, parse_qsl, quote, unquote, urlencode, urlsplit

CALENDAR_SCOPE = "https://www.googleapis.com/auth/calendar"
SCOPE_TEXT = {
    CALENDAR_SCOPE: "See, edit, share, and permanently delete all the calendars you can access using Google Calendar",
    "openid": "Associate you with your personal info on Google",
    "https://www.googleapis.com/auth/userinfo.email": "See your primary Google Account email address",
}
READ_SCOPES = (
    CALENDAR_SCOPE,
    "https://www.googleapis.com/auth/calendar.readonly",
    "https://www.googleapis.com/auth/calendar.events",
    "https://www.googleapis.com/auth/calendar.events.readonly",
)
WRITE_SCOPES = (CALENDAR_SCOPE, "https://www.googleapis.com/auth/calendar.events")
EVENT_ID = re.compile(r"^[a-v0-9]{5,1024}$")
# events.list's syncToken: "There are several query parameters that cannot be specified together with nextSyncToken".
SYNC_REFUSES = ("iCalUID", "orderBy", "privateExtendedProperty", "q", "sharedExtendedProperty", "timeMin", "timeMax", "updatedMin")
API_PREFIX = "/calendar/v3"
UTC = dt.UTC

# Push (guides/push, events.watch, channels.stop).
PUSH_TTL_DEFAULT = 604800  # seconds, when the watch asks for neither params.ttl nor an expiration
# The guide: the expiration is "determined either by your request or by any Google Calendar API
# internal limits or defaults (the more restrictive value is used)" and names no limit for
# events; the fake's limit is 30 days (assumed), so a client must take the expiration it is given.
PUSH_TTL_MAX = 30 * 86400
PUSH_TIMEOUT = 5.0  # seconds for each notification POST
CHANNEL_ID_MAX, CHANNEL_TOKEN_MAX = 64, 256  # "Maximum length: 64 characters" / "256 characters"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
PUSH_USER_AGENT = "APIs-Google (+https://developers.google.com/webmasters/APIs-Google.html)"


class ApiError(Exception):
    """An error answer in the shape of guides/errors; ``location`` names the header or parameter at fault."""

    def __init__(
        self,
        code: int,
        reason: str,
        message: str,
        domain: str = "global",
        headers: dict | None = None,
        location: str = "",
        location_type: str = "",
    ):
        super().__init__(message)
        self.code, self.reason, self.message, self.domain = code, reason, message, domain
        self.headers = headers or {}
        self.location, self.location_type = location, location_type

    def body(self) -> dict:
        item = {"domain": self.domain, "reason": self.reason, "message": self.message}
        if self.location:
            item.update(locationType=self.location_type, location=self.location)
        return {"error": {"errors": [item], "code": self.code, "message": self.message}}


def _invalid_parameter(name: str, message: str) -> ApiError:
    # Assumed reason and wording: the description only types the parameter.
    return ApiError(400, "invalid", message, location=name, location_type="parameter")


def _int_param(query: dict, name: str, default: int, most: int) -> int:
    """An integer parameter with the description's ``minimum: 1``; above ``most`` (the prose's cap) it is capped."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"-?\d+", raw) or int(raw) < 1:
        raise _invalid_parameter(name, f"Invalid value '{raw}'. Values must be within the range: [1, {most}]")
    return min(int(raw), most)


def _bool_param(query: dict, name: str) -> bool | None:
    """A ``type: boolean`` parameter; None when absent."""
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if raw.lower() not in ("true", "false"):
        raise _invalid_parameter(name, f"Invalid boolean value: '{raw}'.")
    return raw.lower() == "true"


@dataclasses.dataclass
class Grant:
    refresh_token: str
    scopes: list[str]
    revoked: bool = False


@dataclasses.dataclass
class AccessToken:
    grant: Grant
    scopes: list[str]
    expires_at: float


@dataclasses.dataclass
class Call:
    """One Calendar API request and the answer the fake gave it."""

    method: str
    path: str  # as sent, percent-encoded
    query: dict
    headers: dict
    body: dict | None = None
    query_pairs: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # repeats kept
    status: int | None = None
    response: dict | None = None  # the JSON body answered (None: empty)


@dataclasses.dataclass
class WatchChannel:
    """A notification channel made by events.watch."""

    id: str
    resource_id: str
    resource_uri: str
    address: str
    token: str | None
    expires_at: float  # seconds since the epoch
    calendar_id: str
    messages: int = 0  # the last X-Goog-Message-Number sent
    stopped: bool = False

    def live(self, now: float) -> bool:
        return not self.stopped and self.expires_at > now

    def as_dict(self) -> dict:
        return {
            "id": self.id,
            "resourceId": self.resource_id,
            "resourceUri": self.resource_uri,
            "address": self.address,
            "token": self.token,
            "expiration": dt.datetime.fromtimestamp(self.expires_at, UTC),
            "calendar_id": self.calendar_id,
            "messages": self.messages,
        }


class PushDelivery(NamedTuple):
    """One notification POST the fake made: read by attribute (``d.state``) or by key (``d["state"]``)."""

    channel_id: str
    state: str  # X-Goog-Resource-State: sync, exists, not_exists
    message_number: int
    status: int | None  # the receiver's HTTP status; None when the POST did not get an answer
    error: str = ""  # why there was no answer

    def __getitem__(self, key):
        return getattr(self, key) if isinstance(key, str) else tuple.__getitem__(self, key)


def _resource_id(calendar_id: str) -> str:
    """An opaque id for a calendar's events collection, the same for every channel on it."""
    return hashlib.sha256(("events:" + calendar_id).encode()).hexdigest()[:19]


def _post_notification(address: str, headers: dict) -> tuple[int | None, str]:
    """(status, error) of one notification POST, an empty body as Google sends."""
    parts = urlsplit(address)
    if parts.hostname not in LOOPBACK:
        # Tests never leave the machine: an https address elsewhere is accepted by watch
        # (as Google accepts it) but nothing is sent there.
        return None, f"not delivered: the fake delivers only to loopback addresses, not {parts.hostname}"
    if parts.scheme == "https":
        # Google refuses self-signed certificates too (guides/push), so verification stays on.
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=PUSH_TIMEOUT, context=ssl.create_default_context()
        )
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=PUSH_TIMEOUT)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("POST", target, body=b"", headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, ""
    except (OSError, http.client.HTTPException) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    finally:
        connection.close()


def _stamp(moment: dt.datetime | None = None) -> str:
    moment = moment or dt.datetime.now(UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse_rfc3339(value: str, name: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(value)
    except (TypeError, ValueError):
        moment = None
    if moment is None or moment.tzinfo is None:
        # The reference: "Must be an RFC3339 timestamp with mandatory time zone offset".
        raise ApiError(400, "badRequest", f"Bad Request: {name} must be an RFC3339 timestamp with a time zone offset")
    return moment.astimezone(UTC)


class FakeGoogle:
    """One Google account (``email``) with calendars, one OAuth client, on 127.0.0.1."""

    def __init__(
        self, email: str = "ada@example.com", client_id: str = "cid", client_secret: str = "csecret", time_zone: str = "Europe/Berlin"
    ):
        self.email = email
        self.client_id = client_id
        self.client_secret = client_secret
        self.time_zone = time_zone
        self.token_lifetime = 3599
        self.lock = threading.RLock()
        self.calendars: dict[str, dict] = {}  # id -> {"entry": {...}, "events": {id: event}, "seq": {id: n}}
        self.seq = 0  # every change to any event takes the next number; sync tokens remember it
        self.token_epoch = 1
        self.grants: dict[str, Grant] = {}
        self.access_tokens: dict[str, AccessToken] = {}
        self.codes: dict[str, dict] = {}
        self.auth_requests: dict[str, dict] = {}
        self.pages: dict[str, tuple[list, str]] = {}
        self.failures: list[tuple[int, str]] = []
        self.withheld: set[str] = set()
        # Scopes an earlier "Sign in with Google" granted; include_granted_scopes=true adds them.
        self.granted_before = ["openid", "https://www.googleapis.com/auth/userinfo.email"]
        self.calls: list[Call] = []
        self.token_requests: list[dict] = []
        # Push: channels by id; notifications a request or hook caused wait in ``_held`` (per
        # thread) until it has answered or let go of the lock, then go through ``_outbox`` to
        # the one delivery thread.
        self._channels: dict[str, WatchChannel] = {}
        self._silenced = False
        self._held = threading.local()
        self._outbox: queue.Queue = queue.Queue()
        self._halt = threading.Event()
        self._delivery_thread: threading.Thread | None = None
        self._delivered = threading.Condition()
        self._deliveries: list[PushDelivery] = []
        self.add_calendar(email, email, role="owner", primary=True)
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> FakeGoogle:
        fake = self

        class Handler(_Handler):
            google = fake

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-google", daemon=True)
        self.thread.start()
        self._halt.clear()
        self._delivery_thread = threading.Thread(target=self._deliver_until_halted, name="fake-google-push", daemon=True)
        self._delivery_thread.start()
        return self

    def stop(self) -> None:
        """Stops the server and the delivery thread; notifications not yet sent are dropped."""
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
        self._halt.set()
        if self._delivery_thread is not None:
            self._delivery_thread.join(timeout=PUSH_TIMEOUT + 2)
            self._delivery_thread = None

    @property
    def url(self) -> str:
        assert self.server is not None, "the fake is not started"
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def env(self) -> dict:
        """The calsync settings that point at this fake."""
        return {
            "CALSYNC_GOOGLE_CLIENT_ID": self.client_id,
            "CALSYNC_GOOGLE_CLIENT_SECRET": self.client_secret,
            "CALSYNC_GOOGLE_AUTH_URL": self.url + "/o/oauth2/v2/auth",
            "CALSYNC_GOOGLE_TOKEN_URL": self.url + "/token",
            "CALSYNC_GOOGLE_API_URL": self.url + API_PREFIX,
        }

    # -- test hooks -------------------------------------------------------------------

    def add_calendar(self, calendar_id: str, summary: str, role: str = "owner", primary: bool = False, summary_override: str = "") -> str:
        with self.lock:
            entry = {
                "kind": "calendar#calendarListEntry",
                "id": calendar_id,
                "summary": summary,
                "timeZone": self.time_zone,
                "accessRole": role,
                "selected": True,
                "backgroundColor": "#9fe1e7",
            }
            if primary:
                entry["primary"] = True
            if summary_override:
                entry["summaryOverride"] = summary_override
            self.calendars[calendar_id] = {"entry": entry, "events": {}, "seq": {}}
            self._touch_entry(calendar_id)
        return calendar_id

    def set_access_role(self, calendar_id: str, role: str) -> None:
        with self.lock:
            self.calendars[calendar_id]["entry"]["accessRole"] = role
            self._touch_entry(calendar_id)

    def delete_calendar(self, calendar_id: str) -> None:
        with self.lock:
            del self.calendars[calendar_id]
            self._hold(calendar_id, "not_exists")
        self._release()

    def add_event(
        self,
        calendar_id: str,
        summary: str,
        start: dt.datetime,
        end: dt.datetime,
        *,
        transparent: bool = False,
        recurrence: list[str] | None = None,
        description: str = "",
        all_day: bool = False,
        private: dict | None = None,
        attendees: list[dict] | None = None,
        status: str = "",
    ) -> str:
        body: dict = {"summary": summary, "start": self._when(start, all_day), "end": self._when(end, all_day)}
        if attendees:
            body["attendees"] = [dict(a) for a in attendees]
        if status:
            body["status"] = status
        if description:
            body["description"] = description
        if transparent:
            body["transparency"] = "transparent"
        if recurrence:
            body["recurrence"] = list(recurrence)
        if private:
            body["extendedProperties"] = {"private": dict(private)}
        with self.lock:
            event_id = self._insert(calendar_id, body)["id"]
        self._release()
        return event_id

    def edit_event(
        self, calendar_id: str, event_id: str, *, start: dt.datetime | None = None, end: dt.datetime | None = None, **fields
    ) -> dict:
        with self.lock:
            event = self.calendars[calendar_id]["events"][event_id]
            if start is not None:
                event["start"] = self._when(start, False)
            if end is not None:
                event["end"] = self._when(end, False)
            event.update(fields)
            edited = copy.deepcopy(self._bump(calendar_id, event))
        self._release()
        return edited

    def delete_event(self, calendar_id: str, event_id: str) -> None:
        with self.lock:
            event = self.calendars[calendar_id]["events"][event_id]
            event["status"] = "cancelled"
            self._bump(calendar_id, event)
        self._release()

    def events(self, calendar_id: str, include_deleted: bool = False) -> list[dict]:
        with self.lock:
            return [
                copy.deepcopy(e)
                for e in self.calendars[calendar_id]["events"].values()
                if include_deleted or e.get("status") != "cancelled"
            ]

    def revoke_grant(self) -> None:
        """The user removed calsync's access (myaccount.google.com/permissions)."""
        with self.lock:
            for grant in self.grants.values():
                grant.revoked = True

    def expire_access_tokens(self) -> None:
        with self.lock:
            for token in self.access_tokens.values():
                token.expires_at = 0

    def invalidate_sync_tokens(self) -> None:
        with self.lock:
            self.token_epoch += 1

    def fail_next(self, count: int, status: int = 429, reason: str = "rateLimitExceeded") -> None:
        """The next ``count`` Calendar API calls fail like Google's rate limiting."""
        with self.lock:
            self.failures += [(status, reason)] * count

    def withhold_scopes(self, *scopes: str) -> None:
        """The consent grants everything but these (as a user unticking them would)."""
        self.withheld = set(scopes)

    def api_calls(self, method: str | None = None, path_contains: str = "") -> list[Call]:
        return [c for c in self.calls if (method is None or c.method == method) and path_contains in c.path]

    # -- push: test hooks ----------------------------------------------------------------

    def channels(self, calendar_id: str | None = None) -> list[dict]:
        """The live channels (not stopped, not expired), of one calendar or all: ``id``, ``resourceId``,
        ``resourceUri``, ``address``, ``token`` (None without one), ``expiration`` (an aware datetime),
        ``calendar_id``, ``messages`` (how many were sent)."""
        with self.lock:
            wanted = self.email if calendar_id == "primary" else calendar_id
            now = time.time()
            return [c.as_dict() for c in self._channels.values() if c.live(now) and (wanted is None or c.calendar_id == wanted)]

    @property
    def push_deliveries(self) -> list[PushDelivery]:
        """Every notification POST made so far, in order."""
        with self._delivered:
            return list(self._deliveries)

    def wait_for_deliveries(self, count: int, timeout: float = 5.0) -> bool:
        """True once ``count`` notifications were POSTed (answered or failed), False after ``timeout`` s."""
        with self._delivered:
            return self._delivered.wait_for(lambda: len(self._deliveries) >= count, timeout=timeout)

    def silence_push(self, on: bool = True) -> None:
        """Channels stay live but changes meanwhile are never delivered (a channel that stopped working)."""
        with self.lock:
            self._silenced = on

    def expire_channel(self, channel_id: str) -> None:
        """The channel's expiration is now in the past: it delivers nothing more."""
        with self.lock:
            self._channels[channel_id].expires_at = time.time() - 1

    def notify(self, calendar_id: str, state: str = "exists", count: int = 1) -> None:
        """``count`` notifications on each live channel of the calendar, without any change (bursts)."""
        with self.lock:
            self._hold(self.email if calendar_id == "primary" else calendar_id, state, count)
        self._release()

    # -- push: delivery ------------------------------------------------------------------

    def _hold(self, calendar_id: str, state: str, count: int = 1) -> None:
        """Notifications for each live channel of the calendar, sent once ``_release`` runs (lock held)."""
        if self._silenced:
            return
        now = time.time()
        channels = [c.id for c in self._channels.values() if c.calendar_id == calendar_id and c.live(now)]
        self._hold_for(channels, state, count)

    def _hold_for(self, channel_ids: list[str], state: str, count: int = 1) -> None:
        held = self._held.__dict__.setdefault("jobs", [])
        for _ in range(count):
            held += [(channel_id, state) for channel_id in channel_ids]

    def _release(self) -> None:
        """Hands what this thread held to the delivery thread: after the answer, outside the lock."""
        jobs, self._held.jobs = getattr(self._held, "jobs", []), []
        for job in jobs:
            self._outbox.put(job)

    def _deliver_until_halted(self) -> None:
        while not self._halt.is_set():
            try:
                channel_id, state = self._outbox.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                delivery = self._deliver(channel_id, state)
            except Exception as exc:  # noqa: BLE001 — a fake bug must not end delivery for the rest of the test
                delivery = PushDelivery(channel_id, state, 0, None, f"fake error: {exc!r}")
            if delivery is not None:
                with self._delivered:
                    self._deliveries.append(delivery)
                    self._delivered.notify_all()

    def _deliver(self, channel_id: str, state: str) -> PushDelivery | None:
        with self.lock:
            channel = self._channels.get(channel_id)
            if channel is None or not channel.live(time.time()):
                return None  # stopped or expired since the change
            channel.messages += 1
            number = channel.messages
            headers = {
                "Content-Type": "application/json; utf-8",
                "User-Agent": PUSH_USER_AGENT,
                "X-Goog-Channel-ID": channel.id,
                "X-Goog-Channel-Expiration": email.utils.formatdate(channel.expires_at, usegmt=True),
                "X-Goog-Resource-ID": channel.resource_id,
                "X-Goog-Resource-URI": channel.resource_uri,
                "X-Goog-Resource-State": state,
                "X-Goog-Message-Number": str(number),
            }
            if channel.token is not None:
                headers["X-Goog-Channel-Token"] = channel.token
            address = channel.address
        status, error = _post_notification(address, headers)
        return PushDelivery(channel_id, state, number, status, error)

    # -- events, stored in Google's shape ----------------------------------------------

    def _when(self, moment: dt.datetime, all_day: bool) -> dict:
        if all_day:
            return {"date": moment.date().isoformat()}
        zone = zoneinfo.ZoneInfo(self.time_zone)
        return {"dateTime": moment.astimezone(zone).isoformat(), "timeZone": self.time_zone}

    def _touch_entry(self, calendar_id: str) -> None:
        self.calendars[calendar_id]["entry"]["etag"] = f'"{int(time.time() * 1000)}{secrets.randbelow(1000):03d}"'

    def _bump(self, calendar_id: str, event: dict) -> dict:
        """Every change to an event: a new etag and sync position, and a notification on each channel."""
        self.seq += 1
        event["etag"] = f'"{3400000000000000 + self.seq * 1000}"'
        event["updated"] = _stamp()
        event["sequence"] = event.get("sequence", -1) + 1
        self.calendars[calendar_id]["seq"][event["id"]] = self.seq
        self._hold(calendar_id, "exists")
        return event

    def _normalise_time(self, value, field: str) -> dict:
        if not isinstance(value, dict) or not (value.get("dateTime") or value.get("date")):
            raise ApiError(400, "required", f"Missing {field} time.")
        if value.get("date"):
            try:
                return {"date": dt.date.fromisoformat(value["date"]).isoformat()}
            except ValueError:
                raise ApiError(400, "invalid", f"Invalid {field} time.") from None
        try:
            moment = dt.datetime.fromisoformat(value["dateTime"])
        except ValueError:
            raise ApiError(400, "invalid", f"Invalid {field} time.") from None
        zone_name = value.get("timeZone") or self.time_zone
        try:
            zone = zoneinfo.ZoneInfo(zone_name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ApiError(400, "timeZoneInvalid", "Invalid time zone definition for start time.") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
        # Google answers dateTime in the event's time zone (UTC renders as ...Z).
        text = moment.astimezone(zone).isoformat()
        if zone_name in ("UTC", "Etc/UTC"):
            text = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"dateTime": text, "timeZone": zone_name}

    def _insert(self, calendar_id: str, body: dict) -> dict:
        cal = self.calendars[calendar_id]
        eid = body.get("id") or secrets.token_hex(13)  # hex is valid base32hex
        if not EVENT_ID.match(eid):
            raise ApiError(400, "invalid", "Invalid resource id value.")
        if eid in cal["events"]:
            raise ApiError(409, "duplicate", "The requested identifier already exists.")
        event = {
            "kind": "calendar#event",
            "id": eid,
            "status": body.get("status") or "confirmed",
            "htmlLink": f"https://www.google.com/calendar/event?eid={eid}",
            "created": _stamp(),
            "summary": body.get("summary", ""),
            "creator": {"email": self.email, "self": True},
            "organizer": {"email": calendar_id, "self": True},
            "start": self._normalise_time(body.get("start"), "start"),
            "end": self._normalise_time(body.get("end"), "end"),
            "iCalUID": f"{eid}@google.com",
            "reminders": {"useDefault": True},
            "eventType": "default",
        }
        for field in ("description", "location", "recurrence", "extendedProperties", "attendees"):
            if body.get(field):
                event[field] = copy.deepcopy(body[field])
        for attendee in event.get("attendees", []):
            # Read-only in Google's description: the attendee that is this calendar.
            attendee.pop("self", None)
            if str(attendee.get("email", "")).lower() == calendar_id.lower():
                attendee["self"] = True
            attendee.setdefault("responseStatus", "needsAction")
        if body.get("transparency") == "transparent":
            event["transparency"] = "transparent"
        cal["events"][eid] = event
        return self._bump(calendar_id, event)

    def _rule_starts(self, event: dict) -> list[dt.datetime]:
        rule = next((r[len("RRULE:") :] for r in event.get("recurrence", []) if r.startswith("RRULE:")), "")
        parts = dict(p.split("=", 1) for p in rule.split(";") if "=" in p)
        freq = {"DAILY": dt.timedelta(days=1), "WEEKLY": dt.timedelta(weeks=1)}.get(parts.get("FREQ", ""))
        if freq is None:
            raise ApiError(400, "invalid", "Invalid recurrence rule.")
        step = freq * int(parts.get("INTERVAL", "1"))
        count = int(parts["COUNT"]) if "COUNT" in parts else None
        until = None
        if "UNTIL" in parts:
            raw = parts["UNTIL"].rstrip("Z")
            until = dt.datetime.strptime(raw, "%Y%m%dT%H%M%S" if "T" in raw else "%Y%m%d").replace(tzinfo=UTC)
        first = self._moment(event["start"])
        horizon = first + dt.timedelta(days=730)
        starts: list[dt.datetime] = []
        current = first
        while current < horizon and (count is None or len(starts) < count) and (until is None or current <= until):
            starts.append(current)
            current += step
        return starts

    def _moment(self, when: dict) -> dt.datetime:
        if when.get("date"):
            return dt.datetime.combine(dt.date.fromisoformat(when["date"]), dt.time(), UTC)
        return dt.datetime.fromisoformat(when["dateTime"]).astimezone(UTC)

    def _instances(self, event: dict) -> list[dict]:
        """The instances of a recurring event, as singleEvents=true lists them."""
        if not event.get("recurrence"):
            return [event]
        length = self._moment(event["end"]) - self._moment(event["start"])
        all_day = "date" in event["start"]
        zone = event["start"].get("timeZone") or self.time_zone
        out = []
        for start in self._rule_starts(event):
            suffix = start.strftime("%Y%m%d") if all_day else start.strftime("%Y%m%dT%H%M%SZ")
            instance = {k: copy.deepcopy(v) for k, v in event.items() if k != "recurrence"}
            instance["id"] = f"{event['id']}_{suffix}"
            instance["recurringEventId"] = event["id"]
            if all_day:
                instance["start"] = {"date": start.date().isoformat()}
                instance["end"] = {"date": (start + length).date().isoformat()}
            else:
                instance["start"] = self._normalise_time({"dateTime": start.isoformat(), "timeZone": zone}, "start")
                instance["end"] = self._normalise_time({"dateTime": (start + length).isoformat(), "timeZone": zone}, "end")
            instance["originalStartTime"] = dict(instance["start"])
            instance["etag"] = '"{}"'.format(hashlib.sha256((event["etag"] + suffix).encode()).hexdigest()[:16])
            out.append(instance)
        return out

    def _find(self, calendar_id: str, event_id: str) -> tuple[dict, dict | None]:
        """(the stored event, or the master of an instance id; the instance or None)."""
        events = self.calendars[calendar_id]["events"]
        if event_id in events:
            return events[event_id], None
        master_id, _, _ = event_id.partition("_")
        master = events.get(master_id)
        if master is not None and master.get("recurrence"):
            for instance in self._instances(master):
                if instance["id"] == event_id:
                    return master, instance
        raise ApiError(404, "notFound", "Not Found")

    @staticmethod
    def _as_listed(event: dict, role: str) -> dict:
        if event.get("status") == "cancelled":
            keep: tuple[str, ...] = ("kind", "etag", "id", "status", "updated", "recurringEventId", "originalStartTime")
            return {k: copy.deepcopy(v) for k, v in event.items() if k in keep}
        if role == "freeBusyReader":
            keep = ("kind", "etag", "id", "status", "updated", "start", "end", "transparency", "recurringEventId", "originalStartTime")
            return {k: copy.deepcopy(v) for k, v in event.items() if k in keep}
        return copy.deepcopy(event)

    # -- sync tokens and pages ---------------------------------------------------------

    def _sync_token(self, calendar_id: str, single: bool) -> str:
        raw = json.dumps({"c": calendar_id, "s": self.seq, "e": self.token_epoch, "single": single})
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def _read_sync_token(self, token: str, calendar_id: str) -> dict:
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        except ValueError:  # not base64 or not JSON: an unknown token
            data = None
        if not isinstance(data, dict) or data.get("c") != calendar_id or data.get("e") != self.token_epoch:
            raise ApiError(
                410,
                "fullSyncRequired",
                "Sync token is no longer valid, a full sync is required.",
                domain="calendar",
                location="syncToken",
                location_type="parameter",
            )
        return data

    # -- the Calendar API --------------------------------------------------------------

    def authorise(self, headers, need_write: bool) -> AccessToken:
        auth = headers.get("Authorization", "")
        token = self.access_tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
        if token is None or token.grant.revoked or token.expires_at <= time.time():
            raise ApiError(
                401,
                "authError",
                "Invalid Credentials",
                location="Authorization",
                location_type="header",
                headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
            )
        if not set(token.scopes) & set(WRITE_SCOPES if need_write else READ_SCOPES):
            raise ApiError(403, "insufficientPermissions", "Request had insufficient authentication scopes.")
        return token

    def api(
        self, method: str, path: str, query: dict, headers, body, query_pairs: list[tuple[str, str]] | None = None
    ) -> tuple[int, dict | None, dict]:
        """(status, JSON body, extra headers) for one Calendar API request, recorded in ``calls``.

        Notifications it causes are held for the calling thread; the HTTP handler sends them on
        (``_release``) once it has answered.
        """
        with self.lock:
            call = Call(
                method,
                path,
                dict(query),
                dict(headers),
                copy.deepcopy(body),
                list(query_pairs if query_pairs is not None else query.items()),
            )
            self.calls.append(call)
            try:
                status, payload, extra = self._route(method, path, query, headers, body)
            except ApiError as exc:
                call.status, call.response = exc.code, exc.body()
                raise
            call.status, call.response = status, copy.deepcopy(payload)
            return status, payload, extra

    def _route(self, method: str, path: str, query: dict, headers, body) -> tuple[int, dict | None, dict]:
        with self.lock:
            parts = [unquote(p) for p in path[len(API_PREFIX) :].strip("/").split("/")]
            # events.watch and channels.stop take the read scopes (their scopes in the description).
            watching = method == "POST" and (parts == ["channels", "stop"] or parts[2:] == ["events", "watch"])
            self.authorise(headers, need_write=method != "GET" and not watching)
            if self.failures:
                status, reason = self.failures.pop(0)
                message = "Rate Limit Exceeded" if reason == "rateLimitExceeded" else "User Rate Limit Exceeded"
                raise ApiError(status, reason, message, domain="usageLimits")
            if parts == ["channels", "stop"] and method == "POST":
                return self._stop_channel(body)
            if len(parts) == 4 and parts[0] == "calendars" and parts[2:] == ["events", "watch"] and method == "POST":
                cal = self._calendar(parts[1])
                return 200, self._watch(cal["entry"]["id"], body), {}
            if parts[:3] == ["users", "me", "calendarList"]:
                if method != "GET":
                    raise ApiError(405, "methodNotAllowed", "Method Not Allowed")
                if len(parts) == 3:
                    return 200, self._calendar_list(query), {}
                return 200, copy.deepcopy(self._calendar(parts[3])["entry"]), {}
            if len(parts) >= 3 and parts[0] == "calendars" and parts[2] == "events":
                cal = self._calendar(parts[1])
                calendar_id = cal["entry"]["id"]
                if len(parts) == 3:
                    if method == "GET":
                        return 200, self._list_events(calendar_id, query), {}
                    if method == "POST":
                        self._need_writer(cal)
                        return 200, copy.deepcopy(self._insert(calendar_id, self._body(body))), {}
                elif len(parts) == 4:
                    return self._one_event(cal, calendar_id, parts[3], method, headers, body)
            raise ApiError(404, "notFound", "Not Found")

    def _watch(self, calendar_id: str, body) -> dict:
        """events.watch: a channel on the calendar's events, and its ``sync`` message."""
        body = self._body(body)
        for field in ("id", "type", "address"):
            if not body.get(field):
                raise ApiError(400, "required", f"Required channel {field}.")  # wording assumed
        channel_id, address, token = str(body["id"]), str(body["address"]), body.get("token")
        if body["type"] not in ("web_hook", "webhook"):  # Channel.type: "web_hook" (or "webhook")
            raise ApiError(400, "invalid", f"Invalid channel type: {body['type']}.")
        if len(channel_id) > CHANNEL_ID_MAX:
            raise ApiError(400, "invalid", f"The channel id may have at most {CHANNEL_ID_MAX} characters.")
        if token is not None and (not isinstance(token, str) or len(token) > CHANNEL_TOKEN_MAX):
            raise ApiError(400, "invalid", f"The channel token must be a string of at most {CHANNEL_TOKEN_MAX} characters.")
        target = urlsplit(address)
        # Google wants https ("it must use HTTPS"); the fake also takes http on loopback, for test receivers.
        test_receiver = target.scheme == "http" and target.hostname in LOOPBACK
        if not target.hostname or not (target.scheme == "https" or test_receiver):
            raise ApiError(400, "push.webhookUrlNotHttps", f"WebHook callback must be HTTPS: {address}")
        expires_at = self._channel_expiry(body)
        now = time.time()
        if any(c.id == channel_id and c.live(now) for c in self._channels.values()):
            # Assumed: the reason client libraries handle; the guide only says ids must be unique.
            raise ApiError(400, "channelIdNotUnique", f"Channel id {channel_id} not unique")
        channel = WatchChannel(
            id=channel_id,
            resource_id=_resource_id(calendar_id),
            # Assumed: the canonical calendar id, as in the guide's example (never "primary").
            resource_uri=f"{self.url}{API_PREFIX}/calendars/{quote(calendar_id, safe='@')}/events",
            address=address,
            token=token,
            expires_at=expires_at,
            calendar_id=calendar_id,
        )
        self._channels[channel_id] = channel
        # Google may send the sync message even before the watch answer arrives; the fake sends
        # it right after the answer.
        if not self._silenced:
            self._hold_for([channel_id], "sync")
        answer = {
            "kind": "api#channel",
            "id": channel.id,
            "resourceId": channel.resource_id,
            "resourceUri": channel.resource_uri,
            "expiration": str(int(expires_at * 1000)),
        }
        if token is not None:
            answer["token"] = token
        return answer

    @staticmethod
    def _channel_expiry(body: dict) -> float:
        """When the channel ends: the most restrictive of params.ttl, expiration (ms) and the fake's limit."""
        now = time.time()
        ends = [now + PUSH_TTL_MAX]
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise ApiError(400, "invalid", "Invalid channel params.")
        if "ttl" in params:
            ttl = str(params["ttl"])
            if not ttl.isdigit() or int(ttl) < 1:
                raise ApiError(400, "invalid", f"Invalid ttl value: {ttl}.")
            ends.append(now + int(ttl))
        if body.get("expiration") is not None:
            wanted = str(body["expiration"])
            if not wanted.isdigit() or int(wanted) / 1000 <= now:
                raise ApiError(400, "invalid", f"Invalid expiration value: {wanted}.")
            ends.append(int(wanted) / 1000)
        if len(ends) == 1:
            ends.append(now + PUSH_TTL_DEFAULT)
        return int(min(ends) * 1000) / 1000  # whole milliseconds, as the answer says it

    def _stop_channel(self, body) -> tuple[int, None, dict]:
        """channels.stop: 204, or 404 when no live channel has that id and resourceId."""
        body = self._body(body)
        for field in ("id", "resourceId"):
            if not body.get(field):
                raise ApiError(400, "required", f"Required channel {field}.")
        channel = self._channels.get(str(body["id"]))
        if channel is None or channel.resource_id != body["resourceId"] or not channel.live(time.time()):
            raise ApiError(404, "notFound", f"Channel '{body['id']}' not found for project 'calsync-fake'")
        channel.stopped = True
        return 204, None, {}

    def _calendar(self, calendar_id: str) -> dict:
        if calendar_id == "primary":
            calendar_id = self.email
        cal = self.calendars.get(calendar_id)
        if cal is None:
            raise ApiError(404, "notFound", "Not Found")
        return cal

    @staticmethod
    def _need_writer(cal: dict) -> None:
        if cal["entry"]["accessRole"] not in ("owner", "writer"):
            raise ApiError(403, "requiredAccessLevel", "You need to have writer access to this calendar.")

    @staticmethod
    def _body(body) -> dict:
        if not isinstance(body, dict):
            raise ApiError(400, "parseError", "Parse Error")
        return body

    def _calendar_list(self, query: dict) -> dict:
        entries = [copy.deepcopy(c["entry"]) for c in self.calendars.values()]
        return self._paged("calendar#calendarList", entries, query, "", size=_int_param(query, "maxResults", 100, 250))

    def _paged(self, kind: str, items: list, query: dict, sync_token: str, size: int | None = None) -> dict:
        size = size or _int_param(query, "maxResults", 250, 2500)
        if query.get("pageToken"):
            saved = self.pages.pop(query["pageToken"], None)
            if saved is None:
                raise ApiError(400, "invalid", "Invalid page token value.")
            items, sync_token = saved
        page, rest = items[:size], items[size:]
        answer = {"kind": kind, "etag": f'"p{self.seq}"', "items": page}
        if rest:
            token = secrets.token_urlsafe(12)
            self.pages[token] = (rest, sync_token)
            answer["nextPageToken"] = token
        elif sync_token:
            answer["nextSyncToken"] = sync_token
        return answer

    def _list_events(self, calendar_id: str, query: dict) -> dict:
        cal = self.calendars[calendar_id]
        role = cal["entry"]["accessRole"]
        if query.get("pageToken"):
            return self._paged("calendar#events", [], query, "")
        single = bool(_bool_param(query, "singleEvents"))
        show_deleted = _bool_param(query, "showDeleted")
        sync = query.get("syncToken")
        if sync:
            refused = [p for p in SYNC_REFUSES if p in query]
            if refused:
                raise ApiError(400, "invalid", f"Sync token cannot be used with {', '.join(refused)}.")
            if show_deleted is False:
                raise ApiError(400, "invalid", "showDeleted cannot be false with a sync token.")
            since = self._read_sync_token(sync, calendar_id)["s"]
            events = [e for eid, e in cal["events"].items() if cal["seq"][eid] > since]
            low = high = None
        else:
            events = [e for e in cal["events"].values() if show_deleted or e.get("status") != "cancelled"]
            low = _parse_rfc3339(query["timeMin"], "timeMin") if query.get("timeMin") else None
            high = _parse_rfc3339(query["timeMax"], "timeMax") if query.get("timeMax") else None
            if low and high and low >= high:
                raise ApiError(
                    400,
                    "timeRangeEmpty",
                    "The specified time range is empty.",
                    domain="calendar",
                    location="timeMax",
                    location_type="parameter",
                )
        listed = []
        for event in events:
            for item in self._instances(event) if single else [event]:
                if event.get("status") == "cancelled":
                    item = {**item, "status": "cancelled"}
                if item.get("status") != "cancelled" and (low or high):
                    start, end = self._moment(item["start"]), self._moment(item["end"])
                    if (low and end <= low) or (high and start >= high):
                        continue
                listed.append(self._as_listed(item, role))
        answer = self._paged("calendar#events", listed, query, self._sync_token(calendar_id, single))
        answer.update({"summary": cal["entry"]["summary"], "timeZone": self.time_zone, "accessRole": role, "updated": _stamp()})
        return answer

    def _one_event(self, cal: dict, calendar_id: str, event_id: str, method: str, headers, body):
        master, instance = self._find(calendar_id, event_id)
        current = instance or master
        if method == "GET":
            role = cal["entry"]["accessRole"]
            shown = self._as_listed(current, role) if current.get("status") == "cancelled" else copy.deepcopy(current)
            return 200, shown, {"ETag": current["etag"]}
        self._need_writer(cal)
        if instance is not None:
            raise ApiError(400, "invalid", "This fake does not change single instances of a series.")
        wanted = headers.get("If-Match")
        if wanted and wanted != "*" and wanted != master["etag"]:
            raise ApiError(
                412, "conditionNotMet", "Precondition Failed", location="If-Match", location_type="header", headers={"ETag": master["etag"]}
            )
        if method == "DELETE":
            if master.get("status") == "cancelled":
                raise ApiError(410, "deleted", "Resource has been deleted")
            master["status"] = "cancelled"
            self._bump(calendar_id, master)
            return 204, None, {}
        if method not in ("PUT", "PATCH"):
            raise ApiError(405, "methodNotAllowed", "Method Not Allowed")
        body = self._body(body)
        changed = copy.deepcopy(master)
        if method == "PUT":
            keep = ("kind", "id", "htmlLink", "created", "creator", "organizer", "iCalUID", "etag", "sequence", "eventType")
            changed = {k: changed[k] for k in keep if k in changed}
            changed["reminders"] = {"useDefault": True}
        for field, value in body.items():
            if field in ("id", "etag", "kind", "created", "updated", "htmlLink", "iCalUID"):
                continue
            if field in ("start", "end"):
                changed[field] = self._normalise_time(value, field)
            elif field == "extendedProperties" and method == "PATCH":
                props = changed.setdefault("extendedProperties", {})
                for scope, values in (value or {}).items():
                    props.setdefault(scope, {}).update(values or {})
            else:
                changed[field] = copy.deepcopy(value)
        if "start" not in changed or "end" not in changed:
            raise ApiError(400, "required", "Missing end time.")
        # Writing a deleted event again brings it back (its id is kept by the tombstone).
        was = master.get("status", "confirmed")
        changed["status"] = body.get("status") or ("confirmed" if was == "cancelled" else was)
        master.clear()
        master.update(changed)
        self._bump(calendar_id, master)
        return 200, copy.deepcopy(master), {"ETag": master["etag"]}

    # -- OAuth -------------------------------------------------------------------------

    def consent_page(self, query: dict) -> tuple[int, str]:
        if query.get("client_id") != self.client_id:
            return 401, _page(
                "Access blocked: Authorization Error", "<p>Error 401: invalid_client</p><p>The OAuth client was not found.</p>"
            )
        if query.get("response_type") != "code" or not query.get("redirect_uri"):
            return 400, _page("Access blocked: Authorization Error", "<p>Error 400: invalid_request</p>")
        if query.get("code_challenge") and query.get("code_challenge_method") != "S256":
            return 400, _page("Access blocked: Authorization Error", "<p>Error 400: invalid_request (code_challenge_method)</p>")
        request_id = secrets.token_urlsafe(12)
        with self.lock:
            self.auth_requests[request_id] = dict(query)
        scopes = query.get("scope", "").split()
        boxes = "".join(
            f'<li><label><input type="checkbox" name="scope" value="{html.escape(s)}" checked> '
            f"{html.escape(SCOPE_TEXT.get(s, s))} <code>{html.escape(s)}</code></label></li>"
            for s in scopes
        )
        body = (
            f'<p>Signed in as <strong class="account">{html.escape(self.email)}</strong></p>'
            f"<p>calsync wants access to your Google Account</p>"
            f'<form method="post" action="/o/oauth2/v2/approve">'
            f'<input type="hidden" name="request" value="{request_id}">'
            f"<p>Select what calsync can access:</p><ul>{boxes}</ul>"
            f'<button type="submit" name="decision" value="deny">Deny</button> '
            f'<button type="submit" name="decision" value="allow">Allow</button>'
            f"</form>"
        )
        return 200, _page("Sign in - Google Accounts", body)

    def approve(self, form: dict[str, list[str]]) -> str:
        """The Location the consent form's button sends the browser to."""
        with self.lock:
            request = self.auth_requests.pop((form.get("request") or [""])[0], None)
            if request is None:
                raise ApiError(400, "invalid_request", "This consent request is unknown or was already answered.")
            back = {"state": request.get("state", "")}
            if (form.get("decision") or [""])[0] != "allow":
                return _with_query(request["redirect_uri"], {"error": "access_denied", **back})
            requested = request.get("scope", "").split()
            granted = [s for s in requested if s in form.get("scope", []) and s not in self.withheld]
            if request.get("include_granted_scopes") == "true":
                granted += [s for s in self.granted_before if s not in granted]
            if not granted:
                return _with_query(request["redirect_uri"], {"error": "access_denied", **back})
            code = "4/" + secrets.token_urlsafe(24)
            self.codes[code] = {
                "client_id": request["client_id"],
                "redirect_uri": request["redirect_uri"],
                "scopes": granted,
                "challenge": request.get("code_challenge", ""),
                "offline": request.get("access_type") == "offline",
                "expires_at": time.time() + 600,
            }
            return _with_query(request["redirect_uri"], {"code": code, "scope": " ".join(granted), **back})

    def token(self, headers, form: dict[str, str]) -> tuple[int, dict]:
        with self.lock:
            self.token_requests.append({k: v for k, v in form.items() if k in ("grant_type", "redirect_uri")})
            client_id, client_secret = form.get("client_id", ""), form.get("client_secret", "")
            auth = headers.get("Authorization", "")
            if auth.startswith("Basic "):
                decoded = base64.b64decode(auth[6:]).decode()
                client_id, _, client_secret = decoded.partition(":")
                client_id, client_secret = unquote(client_id), unquote(client_secret)
            if client_id != self.client_id or client_secret != self.client_secret:
                return 401, {"error": "invalid_client", "error_description": "Unauthorized"}
            grant_type = form.get("grant_type")
            if grant_type == "authorization_code":
                code = self.codes.pop(form.get("code", ""), None)
                if code is None or code["expires_at"] < time.time() or code["client_id"] != client_id:
                    return 400, {"error": "invalid_grant", "error_description": "Malformed auth code."}
                if form.get("redirect_uri") != code["redirect_uri"]:
                    return 400, {"error": "redirect_uri_mismatch", "error_description": "Bad Request"}
                if code["challenge"]:
                    verifier = form.get("code_verifier", "")
                    if not verifier:
                        return 400, {"error": "invalid_grant", "error_description": "Missing code verifier."}
                    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
                    if digest != code["challenge"]:
                        return 400, {"error": "invalid_grant", "error_description": "Invalid code verifier."}
                grant = Grant(refresh_token="1//" + secrets.token_urlsafe(32), scopes=code["scopes"])
                answer = self._access(grant)
                if code["offline"]:
                    self.grants[grant.refresh_token] = grant
                    answer["refresh_token"] = grant.refresh_token
                return 200, answer
            if grant_type == "refresh_token":
                held = self.grants.get(form.get("refresh_token", ""))
                if held is None or held.revoked:
                    return 400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
                return 200, self._access(held)
            return 400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type: " + str(grant_type)}

    def _access(self, grant: Grant) -> dict:
        value = "ya29." + secrets.token_urlsafe(32)
        self.access_tokens[value] = AccessToken(grant, list(grant.scopes), time.time() + self.token_lifetime)
        return {"access_token": value, "expires_in": self.token_lifetime, "scope": " ".join(grant.scopes), "token_type": "Bearer"}

    def current_access_tokens(self) -> list[str]:
        with self.lock:
            return [v for v, t in self.access_tokens.items() if t.expires_at > time.time() and not t.grant.revoked]


def _with_query(url: str, params: dict) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1>{body}</body></html>"
    )


class _Handler(BaseHTTPRequestHandler):
    google: FakeGoogle
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _read(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self, status: int, body: bytes = b"", content_type: str = "application/json; charset=UTF-8", headers: dict | None = None
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if status != 204:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, no-store, max-age=0, must-revalidate")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, payload, headers: dict | None = None) -> None:
        self._send(status, b"" if payload is None else json.dumps(payload).encode(), headers=headers)

    def _handle(self) -> None:
        parts = urlsplit(self.path)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        query = dict(pairs)
        raw = self._read()
        g = self.google
        try:
            if parts.path == "/o/oauth2/v2/auth" and self.command == "GET":
                status, page = g.consent_page(query)
                return self._send(status, page.encode(), "text/html; charset=utf-8")
            if parts.path == "/o/oauth2/v2/approve" and self.command == "POST":
                location = g.approve(parse_qs(raw.decode(), keep_blank_values=True))
                return self._send(302, b"", "text/html; charset=utf-8", {"Location": location})
            if parts.path == "/token" and self.command == "POST":
                status, payload = g.token(self.headers, dict(parse_qsl(raw.decode(), keep_blank_values=True)))
                return self._json(status, payload, {"Pragma": "no-cache"})
            if parts.path.startswith(API_PREFIX + "/"):
                body = None
                if raw:
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        raise ApiError(400, "parseError", "Parse Error") from None
                status, reply, headers = g.api(self.command, parts.path, query, self.headers, body, pairs)
                return self._json(status, reply, headers)
            raise ApiError(404, "notFound", "Not Found")
        except ApiError as exc:
            return self._json(exc.code, exc.body(), exc.headers)
        finally:
            g._release()  # the notifications this request caused, now that it has been answered

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


__all__ = ["API_PREFIX", "CALENDAR_SCOPE", "Call", "FakeGoogle", "PushDelivery"]
