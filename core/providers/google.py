"""Google Calendar API v3 behind the provider contract.

The engine speaks iCalendar and Google speaks JSON events, so this module
translates both ways. Reading, each event becomes a one-VEVENT VCALENDAR whose
UID is the event id (times in UTC, all-day ``date`` events as VALUE=DATE,
``transparency: transparent`` as TRANSP:TRANSPARENT, our private extended
property as X-CALSYNC-APPOINTMENT). Writing, the appointment's ICS becomes an
event with times in UTC, ``extendedProperties.private.calsyncAppointment`` and
``calsyncUid``, and an id derived from the UID.

What the documentation (developers.google.com/calendar/api) asks for, and why:

* guides/sync: a full ``events.list`` ends with ``nextSyncToken``; later runs
  pass only ``syncToken`` (timeMin/timeMax are refused with it, deleted events
  always come back, as ``status: cancelled``); ``410 fullSyncRequired`` means
  list everything again. ``singleEvents=true`` expands recurring series into
  instances, but a sync token reports changes only, so an instance that merely
  moved into the sync window as days passed is never reported: once a day the
  slice between the end listed last time and the new end is listed too (that
  end is kept in the calendar's ``ctag``, which Google's calendarList lacks).
* v3/reference/events/insert: a client may choose the id (base32hex ``a-v0-9``,
  5-1024 characters). Ours is ``cs`` + the UID's SHA-256 in hex, so a retry or
  a crash between the write and the database commit meets ``409 duplicate``
  instead of writing a second copy.
* guides/version-resources: writes carry ``If-Match`` so an edit made in
  Google meanwhile is a ``412``, not overwritten. Updates are PATCHes, so what
  the user added to our event (a Meet link, reminders, colour) survives.
* guides/errors: 401 is an expired or revoked token (refreshed once, then the
  user must sign in again); 403 with a ``usageLimits`` reason and 429 are rate
  limits; other 403s on writes mean the calendar is read-only for this account.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from urllib.parse import quote, unquote, urlsplit

import requests
from icalendar import Calendar as ICalendar

from core import clock
from core.providers.base import (
    AlreadyExists,
    AuthRejected,
    BadData,
    CalendarGone,
    CalendarInfo,
    CalendarState,
    Changes,
    NotFound,
    PreconditionFailed,
    ProviderError,
    RemoteItem,
    SyncTokenInvalid,
    Transient,
    WriteForbidden,
)
from core.providers.google_events import event_to_ics, ics_to_event, rfc3339
from core.providers.oauth_base import OAuthProvider
from core.providers.push_channels import GoogleChannels

PAGE_SIZE = 250
MAX_PAGES = 400  # 100,000 events; a server that keeps sending pages is not followed forever
CONFIRM_GONE_MAX = 100  # GETs that check our own events missing from a full listing
SLICE_AFTER = dt.timedelta(days=1)  # how far the window's end may move before its new slice is listed
LISTED_UNTIL = "listed-until:"

WRITE_ROLES = ("owner", "writer")
RATE_LIMIT_REASONS = ("rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded", "dailyLimitExceeded")
SCOPE_REASONS = ("insufficientPermissions", "ACCESS_TOKEN_SCOPE_INSUFFICIENT")
OWN_EVENT_ID = re.compile(r"^cs[0-9a-f]{40}$")


def event_id(uid: str) -> str:
    """Our stable event id for a UID: hex is a subset of Google's base32hex alphabet."""
    return "cs" + hashlib.sha256(uid.encode()).hexdigest()[:40]


def _answer(response: requests.Response) -> str:
    body = response.text[:600] if response.content else ""
    return f"HTTP {response.status_code} {response.reason} {response.request.method} {response.url}\n{body}".strip()


def _error_details(response: requests.Response) -> tuple[str, str]:
    """(reason, message) from Google's error body ``{"error": {"errors": [{"reason": …}], "message": …}}``."""
    try:
        error = response.json().get("error") or {}
    except ValueError:
        return "", ""
    if not isinstance(error, dict):  # the OAuth endpoints answer {"error": "invalid_grant"}
        return str(error), ""
    errors = error.get("errors") or [{}]
    reason = str((errors[0] or {}).get("reason", "")) if isinstance(errors, list) else ""
    return reason, str(error.get("message", ""))


def _listed_until(ctag: str) -> dt.datetime | None:
    if not ctag.startswith(LISTED_UNTIL):
        return None
    try:
        return dt.datetime.fromisoformat(ctag[len(LISTED_UNTIL) :])
    except ValueError:
        return None


class _Listing:
    """What one ``events.list`` walk (all its pages) found."""

    def __init__(self):
        self.items: dict[str, RemoteItem] = {}
        self.cancelled: dict[str, None] = {}  # ordered set
        self.listed: set[str] = set()
        self.sync_token = ""


class GoogleProvider(GoogleChannels, OAuthProvider):
    name = "google"

    # -- plumbing ---------------------------------------------------------------

    @property
    def base(self) -> str:
        return str(self.params["server_url"]).rstrip("/")

    def _calendar_url(self, calendar_id: str) -> str:
        return f"{self.base}/calendars/{quote(calendar_id, safe='@')}"

    def _event_url(self, calendar_id: str, eid: str) -> str:
        return f"{self._calendar_url(calendar_id)}/events/{quote(eid, safe='')}"

    def _call(self, method: str, url: str, *, write: bool = False, calendar: bool = False, expect=(200,), **kwargs):
        """One API call; statuses outside ``expect`` become the typed errors (see ``_error``).

        ``calendar``: the URL names a calendar, so a 404 means the calendar is gone.
        """
        response = self.api(method, url, **kwargs)
        if response.status_code == 401:
            # The access token was revoked or expired early: one refresh, then one more try.
            # When the grant itself is gone the refresh says so (invalid_grant → AuthRejected).
            self.secrets = {**self.secrets, "expires_at": 0}
            response = self.api(method, url, **kwargs)
        if response.status_code in expect:
            return response
        raise self._error(response, write=write, calendar=calendar)

    def _error(self, response: requests.Response, *, write: bool, calendar: bool) -> ProviderError:
        """Every Google failure mapped in one place."""
        status = response.status_code
        reason, message = _error_details(response)
        answer = _answer(response)
        if status == 401:
            return AuthRejected(
                "Google rejected calsync's access to this account even after a fresh sign-in token "
                "(the permission was revoked or has expired): sign in with Google again",
                answer,
            )
        if status == 429 or (status == 403 and reason in RATE_LIMIT_REASONS):
            return Transient(f"Google Calendar asked calsync to slow down ({reason or 'HTTP 429'}); the sync is retried later", answer)
        if status >= 500:
            return Transient(f"Google Calendar is having trouble (HTTP {status})", answer)
        if status == 403:
            if reason in SCOPE_REASONS:
                return AuthRejected(
                    "the permission calsync holds for Google Calendar does not cover this: sign in with Google again "
                    "and allow calsync to see and edit your calendars",
                    answer,
                )
            if write:
                return WriteForbidden(
                    "Google Calendar lets this account read the calendar but not add or change events (it is read-only for calsync)",
                    answer,
                )
            return AuthRejected("Google Calendar refused this account access to the calendar", answer)
        if status == 404 and calendar:
            return CalendarGone("the calendar no longer exists in Google Calendar", answer)
        if status in (404, 410):
            return NotFound("the event is no longer in Google Calendar", answer)
        if status == 412:
            return PreconditionFailed("the event was changed in Google Calendar meanwhile", answer)
        detail = f": {message}" if message else ""
        return ProviderError(f"Google Calendar refused the request (HTTP {status}{detail})", answer)

    @staticmethod
    def _json(response: requests.Response) -> dict:
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise BadData("Google Calendar sent an answer that is not a JSON object", _answer(response))
        return body

    # -- the account and its calendars -------------------------------------------------

    def account_id(self) -> str:
        """The account's e-mail: the id of its primary calendar."""
        entry = self._json(self._call("GET", f"{self.base}/users/me/calendarList/primary"))
        if not entry.get("id"):
            raise BadData("Google Calendar did not name the account's primary calendar")
        return str(entry["id"])

    @staticmethod
    def _info(entry: dict) -> CalendarInfo:
        return CalendarInfo(
            remote_id=str(entry["id"]),
            name=str(entry.get("summaryOverride") or entry.get("summary") or entry["id"]),
            # freeBusyReader and reader calendars stay: they are busy sources calsync cannot write to.
            writable=entry.get("accessRole") in WRITE_ROLES,
            privileges_known=True,
            # Only "owner" is the account's own; a colleague's calendar it may edit is "writer".
            owned=entry.get("accessRole") == "owner",
        )

    def discover(self) -> list[CalendarInfo]:
        entries: list[dict] = []
        params: dict = {"maxResults": PAGE_SIZE}
        for _ in range(MAX_PAGES):
            body = self._json(self._call("GET", f"{self.base}/users/me/calendarList", params=params))
            entries += [e for e in body.get("items") or [] if isinstance(e, dict) and e.get("id") and not e.get("deleted")]
            if not body.get("nextPageToken"):
                break
            params["pageToken"] = body["nextPageToken"]
        # The primary calendar first: the engine makes the first writable calendar the destination.
        entries.sort(key=lambda e: not e.get("primary"))
        return [self._info(e) for e in entries]

    def probe(self, state: CalendarState) -> CalendarInfo:
        url = f"{self.base}/users/me/calendarList/{quote(state.remote_id, safe='@')}"
        # Keep the id calsync stored (Google may answer "primary" with the calendar's e-mail).
        return self._info({**self._json(self._call("GET", url, calendar=True)), "id": state.remote_id})

    # -- reading ---------------------------------------------------------------------

    def _window(self) -> tuple[dt.datetime, dt.datetime]:
        now = clock.now()
        past = getattr(self.settings, "sync_past_days", 7)
        future = getattr(self.settings, "sync_future_days", 90)
        return now - dt.timedelta(days=past), now + dt.timedelta(days=future)

    def changes(self, state: CalendarState) -> Changes:
        listed_until = _listed_until(state.ctag)
        if not state.sync_token or listed_until is None:
            return self._full(state)
        try:
            found = self._list(state, sync_token=state.sync_token)
        except SyncTokenInvalid:
            return self._full(state)
        changes = Changes(items=list(found.items.values()), deleted=list(found.cancelled), sync_token=found.sync_token, ctag=state.ctag)
        window_end = self._window()[1]
        if window_end - listed_until >= SLICE_AFTER:
            # Not skipped when known: an instance read earlier, while it lay beyond the window,
            # was recorded as outside it and must be read again now that it is inside.
            extra = self._list(state, time_min=listed_until, time_max=window_end, skip_known=False)
            items = {item.href: item for item in changes.items}
            items.update(extra.items)
            changes.items = list(items.values())
            changes.deleted = sorted((set(changes.deleted) | set(extra.cancelled)) - set(items))
            changes.ctag = LISTED_UNTIL + window_end.isoformat()
        return changes

    def _full(self, state: CalendarState) -> Changes:
        start, end = self._window()
        found = self._list(state, time_min=start, time_max=end)
        missing = [href for href in state.known if href not in found.listed]
        return Changes(
            items=list(found.items.values()),
            deleted=sorted(set(found.cancelled) | set(self._gone(missing))),
            complete=True,
            sync_token=found.sync_token,
            ctag=LISTED_UNTIL + end.isoformat(),
        )

    def _gone(self, missing: list[str]) -> list[str]:
        """Which known events missing from a window listing are really gone.

        Other people's events outside the window simply stop being read. Our own
        event missing may be an appointment that has moved out of the window; the
        engine would cancel an appointment reported deleted, so ours are asked for.
        """
        gone, asked = [], 0
        for href in missing:
            if not OWN_EVENT_ID.match(unquote(urlsplit(href).path.rsplit("/", 1)[-1])):
                gone.append(href)
                continue
            if asked >= CONFIRM_GONE_MAX:
                continue  # not reported: kept until a later listing can tell
            asked += 1
            try:
                item = self.get(href)
            except NotFound:
                gone.append(href)
                continue
            if "STATUS:CANCELLED" in item.data:
                gone.append(href)
        return gone

    def _list(self, state: CalendarState, *, sync_token: str = "", time_min=None, time_max=None, skip_known: bool = True) -> _Listing:
        params: dict = {"singleEvents": "true", "showDeleted": "true", "maxResults": PAGE_SIZE}
        if sync_token:
            params["syncToken"] = sync_token
        else:
            params["timeMin"], params["timeMax"] = rfc3339(time_min), rfc3339(time_max)
        url = f"{self._calendar_url(state.remote_id)}/events"
        found = _Listing()
        for _ in range(MAX_PAGES):
            response = self._call("GET", url, calendar=True, expect=(200, 410), params=params)
            if response.status_code == 410:
                if sync_token:
                    raise SyncTokenInvalid("Google no longer accepts the stored sync token", _answer(response))
                raise Transient("Google Calendar asked for a full sync in the middle of one", _answer(response))
            body = self._json(response)
            for event in body.get("items") or []:
                if not isinstance(event, dict) or not event.get("id"):
                    continue
                href = self._event_url(state.remote_id, str(event["id"]))
                found.listed.add(href)
                if event.get("status") == "cancelled":
                    found.items.pop(href, None)
                    found.cancelled[href] = None
                    continue
                found.cancelled.pop(href, None)
                etag = str(event.get("etag") or "")
                if skip_known and etag and state.known.get(href) == etag:
                    continue
                found.items[href] = RemoteItem(href=href, etag=etag, data=event_to_ics(event))
            if not body.get("nextPageToken"):
                found.sync_token = str(body.get("nextSyncToken") or "")
                return found
            params = {**params, "pageToken": body["nextPageToken"]}
        raise BadData(f"Google Calendar kept sending more pages of events (over {MAX_PAGES * PAGE_SIZE} events)")

    def get(self, href: str) -> RemoteItem:
        response = self._call("GET", href)
        event = self._json(response)
        return RemoteItem(href=href, etag=str(event.get("etag") or response.headers.get("ETag", "")), data=event_to_ics(event))

    # -- writing ---------------------------------------------------------------------

    def _create(self, calendar_id: str, uid: str, data: str) -> tuple[str, str]:
        eid = event_id(uid)
        body = {"id": eid, **ics_to_event(data, uid)}
        response = self._call("POST", f"{self._calendar_url(calendar_id)}/events", write=True, calendar=True, expect=(200, 409), json=body)
        href = self._event_url(calendar_id, eid)
        if response.status_code == 409:
            raise AlreadyExists("an event with this appointment's id is already in the Google calendar", _answer(response), href=href)
        event = self._json(response)
        return self._event_url(calendar_id, str(event.get("id") or eid)), str(event.get("etag") or "")

    def _update(self, href: str, data: str, etag: str) -> str:
        uid = self._uid(data)
        response = self._call("PATCH", href, write=True, json=ics_to_event(data, uid), headers={"If-Match": etag} if etag else {})
        return str(self._json(response).get("etag") or response.headers.get("ETag", ""))

    def _delete(self, href: str, etag: str) -> None:
        self._call("DELETE", href, write=True, expect=(200, 204, 404, 410), headers={"If-Match": etag} if etag else {})

    @staticmethod
    def _uid(data: str) -> str:
        try:
            vevent = next(c for c in ICalendar.from_ical(data).walk("VEVENT"))
            return str(vevent.get("UID", "") or "")
        except Exception:  # noqa: BLE001 — icalendar raises many types; StopIteration when there is no VEVENT
            raise BadData("calsync could not read the event it was about to write") from None
