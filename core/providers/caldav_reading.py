"""Reading a CalDAV calendar: what changed (RFC 6578 sync-collection, or a getetag listing where a
server lacks it), a calendar never read in one calendar-query, objects in calendar-multiget batches.

A mixin of :class:`core.providers.caldav.CalDAVProvider`, which owns the requests and the parsing
of multistatus answers; this module is what the reads ask and how their answers become items.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET  # the parsed answers' type (parsed by caldav_xml.parse)
from collections.abc import Callable

import requests

from core.providers.base import AnswerTooLarge, CalendarState, Changes, NotFound, ProviderError, RemoteItem, SyncTokenInvalid
from core.providers.caldav_xml import (
    CALENDAR_DATA,
    DAV,
    GETETAG,
    HREF,
    NS,
    RESPONSE,
    child,
    child_text,
    everything,
    multiget,
    ok_props,
    sync_collection,
)

# calendar-multiget asks for up to MULTIGET_BATCH events at once (a first sync of 1,000 events is one
# request, as vdirsyncer's); an answer past the size cap (or a 413/507) is asked again in quarters,
# down to MULTIGET_MIN, so large events still fit under CALSYNC_HTTP_MAX_BYTES.
MULTIGET_BATCH = 1000
MULTIGET_MIN = 25


def _answer(response: requests.Response) -> str:
    body = response.text[:600] if response.content else ""
    return f"HTTP {response.status_code} {response.reason} {response.request.method} {response.url}\n{body}".strip()


class _NoSyncCollection(Exception):
    """The server does not do RFC 6578 for this calendar: use the listing fallback."""


class Reading:
    """The reads of a CalDAV provider (its requests and answers are the provider's own)."""

    _request: Callable[..., requests.Response]
    _multistatus: Callable[[requests.Response], list[ET.Element]]
    _multistatus_root: Callable[[requests.Response], ET.Element]
    _href: Callable[[str, ET.Element | None], str]
    _ok_props: Callable[[ET.Element], ET.Element | None]
    _propfind: Callable[..., list[ET.Element]]

    def _report(self, url: str, body: bytes, passthrough=()) -> requests.Response:
        """A REPORT of ``body`` on the calendar at ``url`` (Depth 1: its objects)."""
        return self._request(
            "REPORT",
            url,
            collection=True,
            passthrough=passthrough,
            data=body,
            headers={"Content-Type": "application/xml; charset=utf-8", "Depth": "1"},
        )

    def changes(self, state: CalendarState) -> Changes:
        if not state.sync_token and not state.known:
            first = self._everything(state)
            if first is not None:
                return first
        try:
            return self._sync_collection(state, state.sync_token)
        except SyncTokenInvalid:
            return self._sync_collection(state, "")
        except _NoSyncCollection:
            return self._listing(state)

    def _sync_collection(self, state: CalendarState, token: str) -> Changes:
        response = self._report(state.remote_id, sync_collection(token), passthrough=(400, 403, 409, 412, 422))
        if response.status_code in (400, 403, 409, 412, 422):
            # RFC 6578 §3.2: an expired token is refused with DAV:valid-sync-token.
            if token and (b"valid-sync-token" in response.content or response.status_code != 400):
                raise SyncTokenInvalid("the stored sync token expired", _answer(response))
            raise _NoSyncCollection()
        if response.status_code in (405, 501):
            raise _NoSyncCollection()
        root_el = self._multistatus_root(response)  # parsed once: the responses and the new token
        responses = [r for r in root_el if r.tag == RESPONSE]
        new_token = (root_el.findtext("d:sync-token", default="", namespaces=NS) or "").strip()
        changed: dict[str, str] = {}
        deleted: list[str] = []
        listed: set[str] = set()
        own = state.remote_id.rstrip("/")
        for r in responses:
            href = self._href(state.remote_id, r.find("d:href", NS))
            if not href or href.rstrip("/") == own:
                continue
            listed.add(href)
            status = r.findtext("d:status", default="", namespaces=NS)
            if " 404 " in status + " ":
                deleted.append(href)
                continue
            props = self._ok_props(r)
            etag = (props.findtext("d:getetag", default="", namespaces=NS) if props is not None else "") or ""
            if etag and state.known.get(href) == etag:
                continue
            changed[href] = etag
        if not token:
            # A full enumeration: whatever we knew and was not listed is gone.
            deleted = sorted(set(state.known) - (listed - set(deleted)))
        items = self._multiget(state.remote_id, list(changed)) if changed else []
        return Changes(items=items, deleted=deleted, complete=not token, sync_token=new_token)

    # A server that will not answer the whole calendar in one calendar-query: too large for
    # CALSYNC_HTTP_MAX_BYTES, refused, or not implemented. The read goes on by sync-collection.
    _EVERYTHING_REFUSED = (400, 403, 405, 409, 412, 413, 415, 422, 501, 507)

    def _everything(self, state: CalendarState) -> Changes | None:
        """A calendar with nothing known read in one calendar-query: with the probe, two requests, as
        vdirsyncer's listing + multiget (sync-collection + multiget is one more, and ~40 % more of
        Radicale's time). The token is the one the probe saw before the read. None: read it another way."""
        try:
            response = self._report(state.remote_id, everything(), passthrough=self._EVERYTHING_REFUSED)
        except AnswerTooLarge:
            return None
        if response.status_code != 207:
            return None
        own = state.remote_id.rstrip("/")
        items = [item for item in self._items(state.remote_id, response) if item.href.rstrip("/") != own]
        return Changes(items=items, complete=True, sync_token=state.probed_token)

    def _listing(self, state: CalendarState) -> Changes:
        responses = self._propfind(state.remote_id, "1", (DAV, "getetag"), (DAV, "resourcetype"), collection=True)
        present: dict[str, str] = {}
        own = state.remote_id.rstrip("/")
        for r in responses:
            href = self._href(state.remote_id, r.find("d:href", NS))
            props = self._ok_props(r)
            if not href or href.rstrip("/") == own or props is None:
                continue
            present[href] = (props.findtext("d:getetag", default="", namespaces=NS) or "").strip()
        changed = [h for h, e in present.items() if state.known.get(h) != e or not e]
        items = self._multiget(state.remote_id, changed) if changed else []
        return Changes(items=items, deleted=sorted(set(state.known) - set(present)), complete=True)

    def _multiget(self, calendar_url: str, hrefs: list[str]) -> list[RemoteItem]:
        items: list[RemoteItem] = []
        size, start = MULTIGET_BATCH, 0
        while start < len(hrefs):  # each turn moves on by a batch or makes the batch smaller: bounded
            batch = hrefs[start : start + size]
            try:
                response = self._report(calendar_url, multiget(batch))
            except AnswerTooLarge:
                if len(batch) <= MULTIGET_MIN:
                    raise
                size = max(MULTIGET_MIN, len(batch) // 4)
                continue
            if response.status_code in (413, 507) and len(batch) > MULTIGET_MIN:
                size = max(MULTIGET_MIN, len(batch) // 4)
                continue
            items.extend(self._items(calendar_url, response))
            start += len(batch)
        return items

    def _items(self, calendar_url: str, response: requests.Response) -> list[RemoteItem]:
        """The objects of a calendar-multiget or calendar-query answer, with their etags and data."""
        items = []
        for r in self._multistatus(response):
            href = self._href(calendar_url, child(r, HREF))
            props = ok_props(r)
            if not href or props is None:
                continue
            items.append(RemoteItem(href=href, etag=child_text(props, GETETAG).strip(), data=child_text(props, CALENDAR_DATA)))
        return items

    def get(self, href: str) -> RemoteItem:
        response = self._request("GET", href)
        if response.status_code == 404:
            raise NotFound("the event is no longer on the CalDAV server", _answer(response))
        if response.status_code != 200:
            raise ProviderError(f"reading the event failed (HTTP {response.status_code})", _answer(response))
        return RemoteItem(href=href, etag=response.headers.get("ETag", ""), data=response.text)
