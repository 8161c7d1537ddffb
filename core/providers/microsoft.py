"""Microsoft 365 / Outlook calendars through Microsoft Graph v1.0, translated to iCalendar.

The engine speaks iCalendar and Graph speaks JSON events, so this module
translates both ways. Reading, each event of a calendar view becomes one small
VCALENDAR whose UID is the Graph event id; every call sends
``Prefer: outlook.timezone="UTC", outlook.body-content-type="text"`` so times
arrive in UTC and bodies as text. Writing, the appointment's iCalendar object
becomes a Graph event carrying two single-value extended properties: the
appointment id (read back as ``X-CALSYNC-APPOINTMENT``) and calsync's UID.

Quirks of Graph handled here, each from its documentation
(learn.microsoft.com/graph/api/event-delta, graph/delta-query-overview,
graph/api/singlevaluelegacyextendedproperty-get, graph/api/resources/event):

* Changes come from the calendarView delta function. A round's time window is
  fixed by its first request, so the stored token carries the window it was
  made for (the engine's, widened to last a week) and a new round, a full
  listing, starts when the window moves; an expired token (410 Gone, or
  ``syncStateNotFound`` / ``resyncRequired``) also means a new round: a full
  resync, not an error.
* Delta takes no ``$expand``, so our extended property never comes with a
  delta page. Events calsync creates carry a ``transactionId`` starting with
  ``calsync-`` (Graph returns it whenever an app set it); only those are read
  again with the property expanded.
* A window hides what lies outside it: ``@removed`` also lists events that
  merely moved out of it, and a full listing does not name calsync's own
  appointments before or beyond it. Someone else's event that left the window
  is forgotten (it blocks no time there); one of calsync's is reported deleted
  only when Graph no longer has it, since a deletion cancels the appointment.
* Graph assigns event ids, so a create cannot be made idempotent by its name
  as in CalDAV: before POSTing we look for an event with our UID property
  (``AlreadyExists`` when found), and the ``transactionId`` makes a POST that
  is retried after a lost answer return the same event instead of a second one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from urllib.parse import quote, urlsplit

import requests

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
from core.providers.graph_events import (
    APPOINTMENT_PROPERTY,
    UID_PROPERTY,
    etag_of,
    event_to_ics,
    ics_to_event,
    marker_of,
    moment_of,
)
from core.providers.oauth_base import OAuthProvider
from core.providers.push_channels import GraphSubscriptions

TRANSACTION_PREFIX = "calsync-"
PREFER = 'outlook.timezone="UTC", outlook.body-content-type="text"'
SYNC_STATE_CODES = {"syncstatenotfound", "syncstateinvalid", "resyncrequired"}
MAX_PAGES = 10_000
# A new delta round (a full listing) starts when the window moves: once every ROUND_DAYS.
ROUND_DAYS = 7
ROUND_EPOCH = dt.date(2024, 1, 1)
NAME = "Microsoft 365"


def _answer(response: requests.Response) -> str:
    """The provider's raw answer for the status history (the path only: a delta token is not for logs)."""
    body = response.text[:600] if response.content else ""
    request = response.request
    return f"HTTP {response.status_code} {response.reason} {request.method} {urlsplit(request.url or '').path}\n{body}".strip()


def _error_code(response: requests.Response) -> str:
    try:
        error = response.json().get("error")
    except ValueError:
        return ""
    if isinstance(error, dict):
        return str(error.get("code") or "")
    return str(error or "")


def _odata(text: str) -> str:
    """A string literal for an OData $filter (single quotes doubled)."""
    return "'" + text.replace("'", "''") + "'"


def _query(params: dict[str, str]) -> str:
    # Graph's system query options keep their '$'; spaces and quotes inside values are encoded.
    return "?" + "&".join(f"{name}={quote(value, safe='$(),/:=')}" for name, value in params.items())


def _expand_marker() -> str:
    return _query({"$expand": f"singleValueExtendedProperties($filter=id eq {_odata(APPOINTMENT_PROPERTY)})"})


# -- the stored sync token ---------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Window:
    start: dt.datetime
    end: dt.datetime

    def text(self) -> str:
        return f"{self.start:%Y-%m-%dT%H:%M:%SZ}/{self.end:%Y-%m-%dT%H:%M:%SZ}"

    def holds(self, event: dict) -> bool:
        """Whether a Graph event overlaps the window (an unreadable time counts as inside)."""
        start, zone = moment_of(event.get("start"))
        end, end_zone = moment_of(event.get("end"))
        if start is None or end is None or zone or end_zone:
            return True
        return start < self.end and end > self.start


def _split_token(token: str) -> tuple[str, str]:
    """``"<window> <deltaLink>"`` -> (window text, deltaLink); anything else is no token."""
    window, _, link = (token or "").partition(" ")
    return (window, link) if link.startswith(("http://", "https://")) else ("", "")


class MicrosoftProvider(GraphSubscriptions, OAuthProvider):
    name = "microsoft"

    # -- plumbing -------------------------------------------------------------------

    @property
    def base(self) -> str:
        return self.params["server_url"].rstrip("/")

    def _calendar_url(self, calendar_id: str) -> str:
        return f"{self.base}/me/calendars/{quote(calendar_id, safe='=')}"

    def _href(self, calendar_id: str, event_id: str) -> str:
        return f"{self._calendar_url(calendar_id)}/events/{quote(event_id, safe='=')}"

    def _call(
        self, method: str, url: str, *, doing: str, write: bool = False, calendar: bool = False, passthrough: tuple[int, ...] = (), **kwargs
    ) -> requests.Response:
        """One Graph request; every wire failure becomes a typed provider error here."""
        headers = {"Prefer": PREFER, **kwargs.pop("headers", {})}
        response = self.api(method, url, headers=headers, **kwargs)
        if response.status_code == 401:
            # The access token can die before its announced expiry (revoked sessions, key
            # rollover): renew it once; a second 401 is the user's to fix.
            self.secrets = {**self.secrets, "expires_at": 0}
            response = self.api(method, url, headers=headers, **kwargs)
        status = response.status_code
        if status < 400 or status in passthrough:
            return response
        code = _error_code(response)
        answer = _answer(response)
        if status == 401:
            raise AuthRejected(f"{NAME} rejected calsync's sign-in even after renewing it ({code or 'HTTP 401'})", answer)
        if status == 429:
            wait = response.headers.get("Retry-After")
            raise Transient(f"{NAME} is throttling calsync (HTTP 429{f', retry after {wait} s' if wait else ''})", answer)
        if status >= 500:
            raise Transient(f"{NAME} is having trouble (HTTP {status} {code})".strip(), answer)
        if status == 403:
            if write:
                raise WriteForbidden(f"{NAME} does not let this account create or change events in this calendar", answer)
            raise AuthRejected(
                f"{NAME} refused calsync access to the calendar ({code or 'HTTP 403'}); sign in again "
                "and allow calsync to use your calendars",
                answer,
            )
        if status == 404 and calendar:
            raise CalendarGone(f"the calendar no longer exists in {NAME}", answer)
        if status == 404:
            raise NotFound(f"the event is no longer on the {NAME} calendar", answer)
        if status == 412:
            raise PreconditionFailed(f"the event was changed on the {NAME} calendar meanwhile", answer)
        raise ProviderError(f"{NAME} refused {doing} (HTTP {status} {code})".strip(), answer)

    def _json(self, response: requests.Response) -> dict:
        try:
            data = response.json()
        except ValueError:
            raise BadData(f"{NAME} answered with something that is not JSON", _answer(response)) from None
        if not isinstance(data, dict):
            raise BadData(f"{NAME} answered with unexpected JSON", _answer(response))
        return data

    def _follow(self, link: str) -> str:
        """A next/delta link from an answer, but only to where the API lives: it gets our bearer token."""
        if link and not self._ours(link):
            raise BadData(f"{NAME} sent a paging link to another host ({urlsplit(link).netloc}); calsync did not follow it")
        return link

    def _ours(self, url: str) -> bool:
        return urlsplit(url)[:2] == urlsplit(self.base)[:2]

    def _pages(self, url: str, doing: str, **kwargs):
        """Every item of a collection, following ``@odata.nextLink``."""
        for _ in range(MAX_PAGES):
            page = self._json(self._call("GET", url, doing=doing, **kwargs))
            yield from page.get("value") or []
            url = self._follow(page.get("@odata.nextLink") or "")
            if not url:
                return
        raise BadData(f"{NAME} kept sending more pages while {doing}")

    # -- the account and its calendars -------------------------------------------------

    def account_id(self) -> str:
        me = self._json(
            self._call("GET", f"{self.base}/me" + _query({"$select": "mail,userPrincipalName"}), doing="reading the signed-in account")
        )
        account = me.get("mail") or me.get("userPrincipalName")
        if not account:
            raise BadData(f"{NAME} did not say which account signed in")
        self.params["account"] = str(account)  # discover() tells the mailbox's own calendars by it
        return str(account)

    def discover(self) -> list[CalendarInfo]:
        rows = list(self._pages(f"{self.base}/me/calendars", "listing the calendars"))
        # The mailbox's default calendar first: the engine makes the first writable one the destination.
        rows.sort(key=lambda c: not c.get("isDefaultCalendar"))
        return [
            CalendarInfo(
                remote_id=str(c["id"]),
                name=str(c.get("name") or "Calendar"),
                writable=bool(c.get("canEdit")),
                privileges_known=True,
                owned=self._owned(c),
            )
            for c in rows
            if c.get("id")
        ]

    def _owned(self, calendar: dict) -> bool:
        """The mailbox's own calendar: one it can edit whose ``owner`` is the mailbox (a colleague's shared
        calendar names the colleague; holidays and birthdays cannot be edited)."""
        owner = calendar.get("owner")
        owner = owner if isinstance(owner, dict) else {}
        address = str(owner.get("address") or "").strip().lower()
        me = str(self.params.get("account") or "").strip().lower()
        return bool(calendar.get("canEdit")) and (not address or not me or address == me)

    def probe(self, state: CalendarState) -> CalendarInfo:
        response = self._call("GET", self._calendar_url(state.remote_id), doing="reading the calendar", calendar=True, passthrough=(400,))
        if response.status_code == 400:
            if _error_code(response).lower() in ("errorinvalididmalformed", "erroritemnotfound"):
                raise CalendarGone(f"the calendar no longer exists in {NAME}", _answer(response))
            raise ProviderError(f"{NAME} refused reading the calendar (HTTP 400 {_error_code(response)})", _answer(response))
        c = self._json(response)
        return CalendarInfo(
            remote_id=state.remote_id, name=str(c.get("name") or ""), writable=bool(c.get("canEdit")), privileges_known=True
        )

    # -- reading ---------------------------------------------------------------------------

    def _window(self) -> _Window:
        """The engine's sync window, widened so that one window (one delta round) lasts ROUND_DAYS."""
        today = clock.now().astimezone(dt.UTC).date()
        anchor = today - dt.timedelta(days=(today - ROUND_EPOCH).days % ROUND_DAYS)
        start = dt.datetime.combine(anchor, dt.time(), dt.UTC)
        return _Window(
            start - dt.timedelta(days=self.settings.sync_past_days),
            start + dt.timedelta(days=ROUND_DAYS + self.settings.sync_future_days + 1),
        )

    def changes(self, state: CalendarState) -> Changes:
        window = self._window()
        stored_window, link = _split_token(state.sync_token)
        if link and stored_window == window.text() and self._ours(link):
            try:
                return self._round(state, link, window, incremental=True)
            except SyncTokenInvalid:
                pass  # a full round below
        first = f"{self._calendar_url(state.remote_id)}/calendarView/delta" + _query(
            {"startDateTime": f"{window.start:%Y-%m-%dT%H:%M:%SZ}", "endDateTime": f"{window.end:%Y-%m-%dT%H:%M:%SZ}"}
        )
        return self._round(state, first, window, incremental=False)

    def _round(self, state: CalendarState, url: str, window: _Window, incremental: bool) -> Changes:
        listed, removed, delta_link = self._listing(url, incremental)
        items: list[RemoteItem] = []
        hrefs: set[str] = set()
        for event_id, row in listed.items():
            href = self._href(state.remote_id, event_id)
            hrefs.add(href)
            if state.known.get(href) and state.known[href] == etag_of(row):
                continue
            items.append(self._item(href, row))
        if incremental:
            vanished = {self._href(state.remote_id, i) for i in removed} & set(state.known)
            deleted = self._settle_removed(state, sorted(vanished), window, items)
        else:
            deleted = self._settle_unlisted(state, sorted(set(state.known) - hrefs), items)
        return Changes(items=items, deleted=deleted, complete=not incremental, sync_token=f"{window.text()} {delta_link}")

    def _settle_removed(self, state: CalendarState, hrefs: list[str], window: _Window, items: list) -> list[str]:
        """Known events a delta listed as removed: deleted, or merely moved outside the window?"""
        deleted = []
        for href in hrefs:
            try:
                current = self._get_event(href)
            except NotFound:
                deleted.append(href)
                continue
            if not marker_of(current) and not window.holds(current):
                deleted.append(href)  # someone else's event that left the window blocks no time: forgotten
            elif etag_of(current) != state.known.get(href):
                items.append(RemoteItem(href=href, etag=etag_of(current), data=event_to_ics(current)))
        return deleted

    def _settle_unlisted(self, state: CalendarState, hrefs: list[str], items: list) -> list[str]:
        """Known events a full listing did not name. Someone else's are gone or outside the window,
        and are forgotten either way; calsync's own are deleted only if Graph no longer has them,
        as an appointment beyond (or before) the window must not be cancelled. One listing of
        calsync's events answers for all of them, however many past appointments pile up."""
        if not hrefs:
            return []
        ours = self._our_events(state.remote_id)
        deleted = []
        for href in hrefs:
            if href not in ours:
                deleted.append(href)
                continue
            if ours[href] != state.known.get(href):
                try:
                    items.append(self.get(href))
                except NotFound:
                    deleted.append(href)
        return deleted

    def _our_events(self, calendar_id: str) -> dict[str, str]:
        """href -> etag of every event of the calendar that carries calsync's UID property."""
        url = f"{self._calendar_url(calendar_id)}/events" + _query(
            {
                "$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq {_odata(UID_PROPERTY)} and ep/value ne '')",
                "$select": "id",
                "$top": "1000",
            }
        )
        return {
            self._href(calendar_id, str(e["id"])): etag_of(e)
            for e in self._pages(url, "listing calsync's events", calendar=True)
            if e.get("id")
        }

    def _listing(self, url: str, incremental: bool) -> tuple[dict[str, dict], set[str], str]:
        """The pages of one delta call: events by id, removed ids, and the delta link that ends it."""
        listed: dict[str, dict] = {}
        removed: set[str] = set()
        for _ in range(MAX_PAGES):
            response = self._call("GET", url, doing="reading the calendar's changes", calendar=True, passthrough=(400, 410))
            if response.status_code in (400, 410):
                if response.status_code == 410 or _error_code(response).lower() in SYNC_STATE_CODES:
                    if incremental:
                        raise SyncTokenInvalid(f"{NAME} no longer knows the stored delta token", _answer(response))
                    raise Transient(f"{NAME} lost the change listing while sending it; the next run starts again", _answer(response))
                raise ProviderError(f"{NAME} refused reading the calendar's changes (HTTP 400 {_error_code(response)})", _answer(response))
            page = self._json(response)
            for row in page.get("value") or []:
                event_id = str(row.get("id") or "")
                if not event_id:
                    continue
                if "@removed" in row:
                    listed.pop(event_id, None)
                    removed.add(event_id)
                else:
                    listed[event_id] = row
                    removed.discard(event_id)
            url = self._follow(page.get("@odata.nextLink") or "")
            if url:
                continue
            delta_link = self._follow(page.get("@odata.deltaLink") or "")
            if not delta_link:
                raise BadData(f"{NAME} ended the change listing without a delta link", _answer(response))
            return listed, removed, delta_link
        raise BadData(f"{NAME} kept sending more pages of changes")

    def _item(self, href: str, row: dict) -> RemoteItem:
        if str(row.get("transactionId") or "").startswith(TRANSACTION_PREFIX) and "singleValueExtendedProperties" not in row:
            # One of ours (we set that transactionId): read it with the appointment property.
            try:
                row = self._get_event(href)
            except NotFound:
                pass  # deleted since the listing: the next round reports it
        return RemoteItem(href=href, etag=etag_of(row), data=event_to_ics(row))

    def _get_event(self, href: str) -> dict:
        return self._json(self._call("GET", href + _expand_marker(), doing="reading the event"))

    def get(self, href: str) -> RemoteItem:
        event = self._get_event(href)
        return RemoteItem(href=href, etag=etag_of(event), data=event_to_ics(event))

    # -- writing ------------------------------------------------------------------------------

    def _find_by_uid(self, calendar_id: str, uid: str) -> str:
        """The href of the event that already carries ``uid`` in our property, or ''."""
        url = f"{self._calendar_url(calendar_id)}/events" + _query(
            {
                "$filter": f"singleValueExtendedProperties/Any(ep: ep/id eq {_odata(UID_PROPERTY)} and ep/value eq {_odata(uid)})",
                "$select": "id",
            }
        )
        for event in self._pages(url, "looking for the event", calendar=True):
            if event.get("id"):
                return self._href(calendar_id, str(event["id"]))
        return ""

    def _create(self, calendar_id: str, uid: str, data: str) -> tuple[str, str]:
        event = ics_to_event(data, uid)
        existing = self._find_by_uid(calendar_id, uid)
        if existing:
            raise AlreadyExists(f"an event with this UID is already on the {NAME} calendar", href=existing)
        # Fresh for each create, the same for urllib3's retries of this one POST.
        event["transactionId"] = TRANSACTION_PREFIX + uuid.uuid4().hex
        response = self._call(
            "POST", f"{self._calendar_url(calendar_id)}/events", doing="creating the event", write=True, calendar=True, json=event
        )
        created = self._json(response)
        if not created.get("id"):
            raise BadData(f"{NAME} did not say which event it created", _answer(response))
        return self._href(calendar_id, str(created["id"])), etag_of(created)

    def _update(self, href: str, data: str, etag: str) -> str:
        response = self._call(
            "PATCH", href, doing="updating the event", write=True, json=ics_to_event(data), headers={"If-Match": etag} if etag else {}
        )
        return etag_of(self._json(response))

    def _delete(self, href: str, etag: str) -> None:
        try:
            self._call("DELETE", href, doing="deleting the event", write=True, headers={"If-Match": etag} if etag else {})
        except NotFound:
            return
