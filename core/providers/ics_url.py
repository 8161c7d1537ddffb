"""A read-only iCalendar URL as a busy source.

Fetched with a conditional GET (the stored ETag and Last-Modified), so an
unchanged feed costs one small 304. The body is capped in size and must be
iCalendar: a web page (a login or error page) or garbage is refused with a
reason, and the entries read before stay as they were. The URL itself often
carries a secret token, so it lives in the encrypted credentials; the
connection shows only its host.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections import OrderedDict
from urllib.parse import urlsplit

import requests
from icalendar import Calendar as ICalendar

from core import http, ics
from core.http import URLNotAllowed
from core.providers.base import (
    AuthRejected,
    BadData,
    CalendarInfo,
    CalendarState,
    Changes,
    NotFound,
    Provider,
    ProviderError,
    RemoteItem,
    Transient,
    transport_error,
)


class FeedGone(ProviderError):
    """The feed URL answers 404/410: the connection's one calendar is gone.

    Not a CalendarGone: the sync engine takes a CalendarGone busy source for one
    vanished calendar of a larger account, drops its entries and reports the run
    as ok. An iCalendar URL connection *is* that one calendar, so the user must
    see calendar_missing (and the entries read before stay, as for bad data).
    """

    status = "calendar_missing"


ACCEPT = "text/calendar, application/ics;q=0.9, text/plain;q=0.5, */*;q=0.1"
UID_PREFIX = "uid:"


def feed_label(url: str) -> str:
    """What the user sees of a feed URL: scheme and host, never the secret path."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


MAX_FEED_EVENTS = 20_000  # events (UIDs) one feed may hold
# Counted in the raw text before parsing: a feed far past the cap is refused without building it
# (an event's moved occurrences share its UID, hence the margin before the exact count decides).
_VEVENT = re.compile(rb"^begin:vevent\s*$", re.IGNORECASE | re.MULTILINE)
RAW_VEVENT_CAP = 2 * MAX_FEED_EVENTS


def _tzid(event) -> str:
    prop = event.get("DTSTART")
    return str(prop.params.get("TZID", "")) if prop is not None and hasattr(prop, "params") else ""


class ICSURLProvider(Provider):
    name = "ics"
    read_only = True

    @property
    def url(self) -> str:
        return self.secrets.get("url", "")

    def _fetch(self, state: CalendarState | None) -> requests.Response | None:
        headers = {"Accept": ACCEPT}
        if state is not None and state.ctag:
            headers["If-None-Match"] = state.ctag
        if state is not None and state.sync_token:
            headers["If-Modified-Since"] = state.sync_token
        host = feed_label(self.url)
        cap = self.params.get("max_bytes", 10 * 1024 * 1024)
        try:
            response = self.http.request("GET", self.url, headers=headers, max_bytes=cap)
        except http.AnswerTooLarge as exc:
            limit = f"{cap / (1024 * 1024):.1f} MB" if cap >= 1024 * 1024 else f"{cap} bytes"
            size = f" ({exc.declared} bytes)" if exc.declared else ""
            raise BadData(f"the calendar at this URL is larger than the {limit} limit{size}") from None
        except (URLNotAllowed, requests.RequestException) as exc:
            error = transport_error(exc, f"the calendar URL at {host}")
            if error.__class__ is Transient and "could not connect" in error.reason:
                error = Transient(f"could not fetch the calendar URL at {host}", exc.__class__.__name__)
            raise error from None
        status = response.status_code
        answer = f"HTTP {status} {response.reason} from {host}"
        if status == 304:
            response.close()
            return None
        if status in (401, 403):
            response.close()
            raise AuthRejected("the calendar URL now refuses access (it may have been reset or made private)", answer)
        if status in (404, 410):
            response.close()
            raise FeedGone("the calendar URL no longer exists (it may have been reset or deleted)", answer)
        if status == 429 or status >= 500:
            response.close()
            raise Transient(f"the calendar URL's server is having trouble (HTTP {status})", answer)
        if status != 200:
            response.close()
            raise ProviderError(f"the calendar URL answered HTTP {status} instead of a calendar", answer)
        return response

    def _parse(self, response: requests.Response, body: bytes) -> ICalendar:
        content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
        head = body.lstrip()[:200].lower()
        if content_type in ("text/html", "application/xhtml+xml") or head.startswith((b"<!doctype", b"<html", b"<?xml", b"<")):
            raise BadData(
                f"the URL returned a web page ({content_type or 'HTML'}), not an iCalendar file; "
                "check that it is the calendar's export/subscription link"
            )
        if not head.startswith(b"begin:vcalendar"):
            raise BadData("the URL did not return an iCalendar file (it does not start with BEGIN:VCALENDAR)")
        raw_events = sum(1 for _ in itertools.islice(_VEVENT.finditer(body), RAW_VEVENT_CAP + 1))
        if raw_events > RAW_VEVENT_CAP:
            raise BadData(
                f"the feed holds more than {RAW_VEVENT_CAP:,} event entries, more than the {MAX_FEED_EVENTS:,} "
                "events calsync reads of one feed; subscribe to a smaller calendar"
            )
        try:
            return ics.parse(body.decode("utf-8", errors="replace"))  # with the limits on hostile input
        except ics.InvalidData as exc:
            raise BadData(f"the iCalendar file at this URL {exc}") from None

    def discover(self) -> list[CalendarInfo]:
        response = self._fetch(None)
        assert response is not None
        calendar = self._parse(response, response.content)
        name = str(calendar.get("X-WR-CALNAME", "") or "") or feed_label(self.url)
        return [CalendarInfo(remote_id=feed_label(self.url), name=name, writable=False, privileges_known=True)]

    def probe(self, state: CalendarState) -> CalendarInfo:
        # The conditional GET in changes() is the cheap check: a probe would only repeat it.
        return CalendarInfo(remote_id=state.remote_id, name="", writable=False, privileges_known=True, ctag="")

    def changes(self, state: CalendarState) -> Changes:
        response = self._fetch(state)
        if response is None:
            return Changes(unchanged=True, ctag=state.ctag, sync_token=state.sync_token)
        calendar = self._parse(response, response.content)
        timezones = {str(c.get("TZID", "")): c for c in calendar.subcomponents if c.name == "VTIMEZONE"}
        by_uid: OrderedDict[str, list] = OrderedDict()
        for index, component in enumerate(calendar.subcomponents):
            if component.name != "VEVENT":
                continue
            uid = str(component.get("UID", "") or f"no-uid-{index}")
            by_uid.setdefault(uid, []).append(component)
        if len(by_uid) > MAX_FEED_EVENTS:
            raise BadData(
                f"the feed holds {len(by_uid):,} events, more than the {MAX_FEED_EVENTS:,} calsync reads of one "
                "feed; subscribe to a smaller calendar"
            )
        items = []
        for uid, components in by_uid.items():
            piece = ICalendar()
            piece.add("prodid", "-//calsync//ics-url//EN")
            piece.add("version", "2.0")
            for tzid in sorted({_tzid(c) for c in components} - {""}):  # only the zones this event uses
                if tzid in timezones:
                    piece.add_component(timezones[tzid])
            for component in components:
                piece.add_component(component)
            data = piece.to_ical().decode("utf-8")
            items.append(RemoteItem(UID_PREFIX + uid, hashlib.sha256(data.encode()).hexdigest()[:32], data))
        present = {item.href for item in items}
        changed = [item for item in items if state.known.get(item.href) != item.etag]
        return Changes(
            items=changed,
            deleted=sorted(set(state.known) - present),
            complete=True,
            ctag=response.headers.get("ETag", ""),
            sync_token=response.headers.get("Last-Modified", ""),
        )

    def get(self, href: str) -> RemoteItem:
        raise NotFound("single events cannot be fetched from an iCalendar URL")
