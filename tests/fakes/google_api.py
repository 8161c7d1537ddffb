"""A local stand-in for Google's OAuth 2.0 endpoints and the Calendar API v3.

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
  ``updatedMin``/``q``/``orderBy``/``iCalUID`` are refused, deleted events always
  come back (``status: cancelled``), an invalidated token gives ``410``.
* .../v3/reference/events/insert, get, update, patch, delete -- a client-chosen
  ``id`` (base32hex ``a-v0-9``, 5-1024 chars, unique per calendar; deleted
  events keep theirs); ``extendedProperties.private``; ``transparency``.
* .../calendar/api/guides/version-resources -- ``If-Match`` → ``412`` when the
  ETag no longer matches.
* .../calendar/api/guides/errors -- the error body shape
  ``{"error": {"errors": [{"domain", "reason", "message"}], "code", "message"}}``;
  401 ``authError`` "Invalid Credentials"; 403 ``usageLimits`` /
  ``rateLimitExceeded`` / ``userRateLimitExceeded``; 403 ``requiredAccessLevel``
  "You need to have writer access to this calendar."; 404 ``notFound``;
  409 ``duplicate`` "The requested identifier already exists."; 410
  ``fullSyncRequired`` / ``deleted``; 412 ``conditionNotMet``; 429
  ``rateLimitExceeded``.

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
``fail_next``, ``withhold_scopes``; ``calls`` records every Calendar API request.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import datetime as dt
import hashlib
import html
import json
import re
import secrets
import threading
import time
import zoneinfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, parse_qsl, unquote, urlencode, urlsplit

CALENDAR_SCOPE = "https://www.googleapis.com/auth/calendar"
SCOPE_TEXT = {
    CALENDAR_SCOPE: "See, edit, share, and permanently delete all the calendars you can access using Google Calendar",
    "openid": "Associate you with your personal info on Google",
    "https://www.googleapis.com/auth/userinfo.email": "See your primary Google Account email address",
}
READ_SCOPES = (CALENDAR_SCOPE, "https://www.googleapis.com/auth/calendar.readonly",
               "https://www.googleapis.com/auth/calendar.events", "https://www.googleapis.com/auth/calendar.events.readonly")
WRITE_SCOPES = (CALENDAR_SCOPE, "https://www.googleapis.com/auth/calendar.events")
EVENT_ID = re.compile(r"^[a-v0-9]{5,1024}$")
API_PREFIX = "/calendar/v3"
UTC = dt.timezone.utc


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, domain: str = "global", headers: dict | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.domain = code, reason, message, domain
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"errors": [{"domain": self.domain, "reason": self.reason, "message": self.message}],
                          "code": self.code, "message": self.message}}


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
    method: str
    path: str
    query: dict
    headers: dict
    body: dict | None = None


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

    def __init__(self, email: str = "ada@example.com", client_id: str = "cid", client_secret: str = "csecret",
                 time_zone: str = "Europe/Berlin"):
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
        self.add_calendar(email, email, role="owner", primary=True)
        self.server: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> "FakeGoogle":
        fake = self

        class Handler(_Handler):
            google = fake

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-google", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
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

    def add_calendar(self, calendar_id: str, summary: str, role: str = "owner", primary: bool = False,
                     summary_override: str = "") -> str:
        with self.lock:
            entry = {"kind": "calendar#calendarListEntry", "id": calendar_id, "summary": summary,
                     "timeZone": self.time_zone, "accessRole": role, "selected": True, "backgroundColor": "#9fe1e7"}
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

    def add_event(self, calendar_id: str, summary: str, start: dt.datetime, end: dt.datetime, *,
                  transparent: bool = False, recurrence: list[str] | None = None, description: str = "",
                  all_day: bool = False, private: dict | None = None) -> str:
        body = {"summary": summary, "start": self._when(start, all_day), "end": self._when(end, all_day)}
        if description:
            body["description"] = description
        if transparent:
            body["transparency"] = "transparent"
        if recurrence:
            body["recurrence"] = list(recurrence)
        if private:
            body["extendedProperties"] = {"private": dict(private)}
        with self.lock:
            return self._insert(calendar_id, body)["id"]

    def edit_event(self, calendar_id: str, event_id: str, *, start: dt.datetime | None = None,
                   end: dt.datetime | None = None, **fields) -> dict:
        with self.lock:
            event = self.calendars[calendar_id]["events"][event_id]
            if start is not None:
                event["start"] = self._when(start, False)
            if end is not None:
                event["end"] = self._when(end, False)
            event.update(fields)
            return copy.deepcopy(self._bump(calendar_id, event))

    def delete_event(self, calendar_id: str, event_id: str) -> None:
        with self.lock:
            event = self.calendars[calendar_id]["events"][event_id]
            event["status"] = "cancelled"
            self._bump(calendar_id, event)

    def events(self, calendar_id: str, include_deleted: bool = False) -> list[dict]:
        with self.lock:
            return [copy.deepcopy(e) for e in self.calendars[calendar_id]["events"].values()
                    if include_deleted or e.get("status") != "cancelled"]

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

    # -- events, stored in Google's shape ----------------------------------------------

    def _when(self, moment: dt.datetime, all_day: bool) -> dict:
        if all_day:
            return {"date": moment.date().isoformat()}
        zone = zoneinfo.ZoneInfo(self.time_zone)
        return {"dateTime": moment.astimezone(zone).isoformat(), "timeZone": self.time_zone}

    def _touch_entry(self, calendar_id: str) -> None:
        self.calendars[calendar_id]["entry"]["etag"] = f'"{int(time.time() * 1000)}{secrets.randbelow(1000):03d}"'

    def _bump(self, calendar_id: str, event: dict) -> dict:
        self.seq += 1
        event["etag"] = f'"{3400000000000000 + self.seq * 1000}"'
        event["updated"] = _stamp()
        event["sequence"] = event.get("sequence", -1) + 1
        self.calendars[calendar_id]["seq"][event["id"]] = self.seq
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
        for field in ("description", "location", "recurrence", "extendedProperties"):
            if body.get(field):
                event[field] = copy.deepcopy(body[field])
        if body.get("transparency") == "transparent":
            event["transparency"] = "transparent"
        cal["events"][eid] = event
        return self._bump(calendar_id, event)

    def _rule_starts(self, event: dict) -> list[dt.datetime | dt.date]:
        rule = next((r[len("RRULE:"):] for r in event.get("recurrence", []) if r.startswith("RRULE:")), "")
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
        starts, current = [], first
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
            instance["etag"] = '"%s"' % hashlib.sha256((event["etag"] + suffix).encode()).hexdigest()[:16]
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
            keep = ("kind", "etag", "id", "status", "updated", "recurringEventId", "originalStartTime")
            return {k: copy.deepcopy(v) for k, v in event.items() if k in keep}
        if role == "freeBusyReader":
            keep = ("kind", "etag", "id", "status", "updated", "start", "end", "transparency",
                    "recurringEventId", "originalStartTime")
            return {k: copy.deepcopy(v) for k, v in event.items() if k in keep}
        return copy.deepcopy(event)

    # -- sync tokens and pages ---------------------------------------------------------

    def _sync_token(self, calendar_id: str, single: bool) -> str:
        raw = json.dumps({"c": calendar_id, "s": self.seq, "e": self.token_epoch, "single": single})
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    def _read_sync_token(self, token: str, calendar_id: str) -> dict:
        try:
            data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        except Exception:
            data = None
        if not isinstance(data, dict) or data.get("c") != calendar_id or data.get("e") != self.token_epoch:
            raise ApiError(410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required.")
        return data

    # -- the Calendar API --------------------------------------------------------------

    def authorise(self, headers, need_write: bool) -> AccessToken:
        auth = headers.get("Authorization", "")
        token = self.access_tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
        if token is None or token.grant.revoked or token.expires_at <= time.time():
            raise ApiError(401, "authError", "Invalid Credentials",
                           headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'})
        if not set(token.scopes) & set(WRITE_SCOPES if need_write else READ_SCOPES):
            raise ApiError(403, "insufficientPermissions", "Request had insufficient authentication scopes.")
        return token

    def api(self, method: str, path: str, query: dict, headers, body) -> tuple[int, dict | None, dict]:
        """(status, JSON body, extra headers) for one Calendar API request."""
        with self.lock:
            self.calls.append(Call(method, path, query, dict(headers), body))
            self.authorise(headers, need_write=method != "GET")
            if self.failures:
                status, reason = self.failures.pop(0)
                message = "Rate Limit Exceeded" if reason == "rateLimitExceeded" else "User Rate Limit Exceeded"
                raise ApiError(status, reason, message, domain="usageLimits")
            parts = [unquote(p) for p in path[len(API_PREFIX):].strip("/").split("/")]
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
        return self._paged("calendar#calendarList", entries, query, "")

    def _paged(self, kind: str, items: list, query: dict, sync_token: str) -> dict:
        if query.get("pageToken"):
            saved = self.pages.pop(query["pageToken"], None)
            if saved is None:
                raise ApiError(400, "invalid", "Invalid page token value.")
            items, sync_token = saved
        size = max(1, min(int(query.get("maxResults") or 250), 2500))
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
        single = query.get("singleEvents") == "true"
        sync = query.get("syncToken")
        if sync:
            refused = [p for p in ("timeMin", "timeMax", "updatedMin", "q", "orderBy", "iCalUID") if p in query]
            if refused:
                raise ApiError(400, "invalid", f"Sync token cannot be used with {', '.join(refused)}.")
            if query.get("showDeleted") == "false":
                raise ApiError(400, "invalid", "showDeleted cannot be false with a sync token.")
            since = self._read_sync_token(sync, calendar_id)["s"]
            events = [e for eid, e in cal["events"].items() if cal["seq"][eid] > since]
            low = high = None
        else:
            show_deleted = query.get("showDeleted") == "true"
            events = [e for e in cal["events"].values() if show_deleted or e.get("status") != "cancelled"]
            low = _parse_rfc3339(query["timeMin"], "timeMin") if query.get("timeMin") else None
            high = _parse_rfc3339(query["timeMax"], "timeMax") if query.get("timeMax") else None
            if low and high and low >= high:
                raise ApiError(400, "timeRangeEmpty", "The specified time range is empty.", domain="calendar")
        listed = []
        for event in events:
            for item in (self._instances(event) if single else [event]):
                if event.get("status") == "cancelled":
                    item = {**item, "status": "cancelled"}
                if item.get("status") != "cancelled" and (low or high):
                    start, end = self._moment(item["start"]), self._moment(item["end"])
                    if (low and end <= low) or (high and start >= high):
                        continue
                listed.append(self._as_listed(item, role))
        answer = self._paged("calendar#events", listed, query, self._sync_token(calendar_id, single))
        answer.update({"summary": cal["entry"]["summary"], "timeZone": self.time_zone, "accessRole": role,
                       "updated": _stamp()})
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
            raise ApiError(412, "conditionNotMet", "Precondition Failed", headers={"ETag": master["etag"]})
        if method == "DELETE":
            if master.get("status") == "cancelled":
                raise ApiError(410, "deleted", "Resource has been deleted")
            master["status"] = "cancelled"
            self._bump(calendar_id, master)
            return 204, None, {}
        if method not in ("PUT", "PATCH"):
            raise ApiError(405, "methodNotAllowed", "Method Not Allowed")
        body = self._body(body)
        if method == "PUT":
            keep = {k: master[k] for k in ("kind", "id", "htmlLink", "created", "creator", "organizer", "iCalUID",
                                           "etag", "sequence", "eventType")}
            master.clear()
            master.update(keep)
            master["reminders"] = {"useDefault": True}
        for field, value in body.items():
            if field in ("id", "etag", "kind", "created", "updated", "htmlLink", "iCalUID"):
                continue
            if field in ("start", "end"):
                master[field] = self._normalise_time(value, field)
            elif field == "extendedProperties" and method == "PATCH":
                props = master.setdefault("extendedProperties", {})
                for scope, values in (value or {}).items():
                    props.setdefault(scope, {}).update(values or {})
            else:
                master[field] = copy.deepcopy(value)
        if "start" not in master or "end" not in master:
            raise ApiError(400, "required", "Missing end time.")
        # Writing a deleted event again brings it back (its id is kept by the tombstone).
        was = master.get("status", "confirmed")
        master["status"] = body.get("status") or ("confirmed" if was == "cancelled" else was)
        self._bump(calendar_id, master)
        return 200, copy.deepcopy(master), {"ETag": master["etag"]}

    # -- OAuth -------------------------------------------------------------------------

    def consent_page(self, query: dict) -> tuple[int, str]:
        if query.get("client_id") != self.client_id:
            return 401, _page("Access blocked: Authorization Error",
                              "<p>Error 401: invalid_client</p><p>The OAuth client was not found.</p>")
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
            f'{html.escape(SCOPE_TEXT.get(s, s))} <code>{html.escape(s)}</code></label></li>'
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
                grant = self.grants.get(form.get("refresh_token", ""))
                if grant is None or grant.revoked:
                    return 400, {"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
                return 200, self._access(grant)
            return 400, {"error": "unsupported_grant_type", "error_description": "Invalid grant_type: " + str(grant_type)}

    def _access(self, grant: Grant) -> dict:
        value = "ya29." + secrets.token_urlsafe(32)
        self.access_tokens[value] = AccessToken(grant, list(grant.scopes), time.time() + self.token_lifetime)
        return {"access_token": value, "expires_in": self.token_lifetime, "scope": " ".join(grant.scopes),
                "token_type": "Bearer"}

    def current_access_tokens(self) -> list[str]:
        with self.lock:
            return [v for v, t in self.access_tokens.items() if t.expires_at > time.time() and not t.grant.revoked]


def _with_query(url: str, params: dict) -> str:
    return url + ("&" if "?" in url else "?") + urlencode(params)


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}</title></head>"
            f"<body><h1>{html.escape(title)}</h1>{body}</body></html>")


class _Handler(BaseHTTPRequestHandler):
    google: FakeGoogle
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _read(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", content_type: str = "application/json; charset=UTF-8",
              headers: dict | None = None) -> None:
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
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
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
                status, payload, headers = g.api(self.command, parts.path, query, self.headers, body)
                return self._json(status, payload, headers)
            raise ApiError(404, "notFound", "Not Found")
        except ApiError as exc:
            return self._json(exc.code, exc.body(), exc.headers)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


__all__ = ["CALENDAR_SCOPE", "FakeGoogle"]
