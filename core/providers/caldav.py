"""CalDAV (RFC 4791) on requests: discovery, incremental fetch, conditional writes.

Discovery follows RFC 6764 §6: the user's URL (or its /.well-known/caldav) →
DAV:current-user-principal → CALDAV:calendar-home-set → the calendars, with
DAV:current-user-privilege-set (RFC 3744) so a read-only calendar is known
before a write fails. Reading (sync-collection, calendar-query, multiget) is
:mod:`core.providers.caldav_reading`; objects are written with If-None-Match / If-Match.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET  # the parsed answers' type (parsed by caldav_xml.parse)
from urllib.parse import quote, unquote, urljoin, urlsplit

import requests

from core.http import URLNotAllowed
from core.providers.base import (
    AlreadyExists,
    AuthRejected,
    BadData,
    CalendarGone,
    CalendarInfo,
    CalendarState,
    NotFound,
    PreconditionFailed,
    Provider,
    ProviderError,
    SourceRefused,
    Transient,
    UrlRefused,
    WriteForbidden,
    transport_error,
)
from core.providers.caldav_reading import Reading, _answer
from core.providers.caldav_xml import CAL, CS, DAV, NS, RESPONSE, join, ok_props, propfind, uid_query
from core.providers.caldav_xml import parse as parse_xml

WRITE_PRIVILEGES = {"write", "write-content", "all", "bind"}
NOT_CALDAV = "this address is not a CalDAV server (check the server address)"
# PROPFIND is what every WebDAV server answers (RFC 4918 §9.1): "not implemented", "method not
# allowed" or a plain page (2xx without a multistatus) come from a web server that is not one.
NOT_DAV_STATUSES = (405, 501)


def object_name(uid: str) -> str:
    """A stable, URL-safe object name for a UID (the same UID always maps to the same href)."""
    return hashlib.sha256(uid.encode()).hexdigest()[:40] + ".ics"


class CalDAVProvider(Reading, Provider):
    name = "caldav"

    # -- plumbing -------------------------------------------------------------

    def _request(self, method: str, url: str, *, write: bool = False, collection: bool = False, passthrough=(), **kwargs):
        headers = kwargs.pop("headers", {})
        auth = (self.params.get("account", ""), self.secrets.get("password", ""))
        try:
            response = self.http.request(method, url, headers=headers, auth=auth, **kwargs)
        except (URLNotAllowed, requests.RequestException) as exc:
            raise transport_error(exc, f"the CalDAV server at {urlsplit(url).netloc}") from None
        except ValueError as exc:  # urllib's word on an address that does not parse (a port past 65535)
            raise UrlRefused(f"the CalDAV server address is not a valid URL ({exc})") from None
        status = response.status_code
        if status in passthrough:
            return response
        if status == 401:
            raise AuthRejected(
                "the CalDAV server rejected the username or password (it may have been changed or revoked)",
                _answer(response),
            )
        if status in (429,) or status >= 500:
            raise Transient(f"the CalDAV server is having trouble (HTTP {status})", _answer(response))
        if status == 403:
            if write:
                raise WriteForbidden("the CalDAV server does not let this account create or change events", _answer(response))
            raise AuthRejected("the CalDAV server refused this account access to the calendar", _answer(response))
        if status == 404 and collection:
            raise CalendarGone("the calendar no longer exists on the CalDAV server", _answer(response))
        return response

    def _multistatus(self, response: requests.Response) -> list[ET.Element]:
        return [r for r in self._multistatus_root(response) if r.tag == RESPONSE]

    def _multistatus_root(self, response: requests.Response) -> ET.Element:
        if response.status_code != 207:
            raise ProviderError(f"the CalDAV server gave an unexpected answer (HTTP {response.status_code})", _answer(response))
        try:
            return parse_xml(response.content)
        except Exception as exc:  # noqa: BLE001 — expat and the guard raise several types for hostile or broken XML
            raise BadData(f"the CalDAV server sent XML that cannot be read: {exc.__class__.__name__}", _answer(response)) from None

    def _href(self, base: str, element: ET.Element | None) -> str:
        text = (element.text or "").strip() if element is not None else ""
        return join(base, text) if text else ""

    _ok_props = staticmethod(ok_props)

    def _propfind(self, url: str, depth: str, *props, collection: bool = False) -> list[ET.Element]:
        response = self._request(
            "PROPFIND",
            url,
            collection=collection,
            passthrough=NOT_DAV_STATUSES,
            data=propfind(*props),
            headers={"Depth": depth, "Content-Type": "application/xml; charset=utf-8"},
        )
        status = response.status_code
        if status == 404:
            raise NotFound(f"{url} does not exist on the CalDAV server", _answer(response))
        if status in NOT_DAV_STATUSES or (200 <= status < 300 and status != 207):
            raise NotCalDAV(NOT_CALDAV, _answer(response))
        return self._multistatus(response)

    # -- discovery --------------------------------------------------------------

    def _principal(self) -> str:
        base = self.params["server_url"]
        candidates = [base]
        well_known = urljoin(base, "/.well-known/caldav")
        if well_known.rstrip("/") != base.rstrip("/"):
            candidates.append(well_known)
        not_caldav = None
        for url in candidates:
            try:
                responses = self._propfind(url, "0", (DAV, "current-user-principal"))
            except NotCalDAV as exc:
                not_caldav = not_caldav or exc
                continue
            except (NotFound, ProviderError) as exc:
                if isinstance(exc, (AuthRejected, Transient, UrlRefused, SourceRefused)):
                    raise
                continue
            for r in responses:
                props = self._ok_props(r)
                if props is not None:
                    href = self._href(url, props.find("d:current-user-principal/d:href", NS))
                    if href:
                        return href
        if not_caldav is not None:  # and /.well-known/caldav led nowhere either
            raise not_caldav
        raise BadData(
            "no CalDAV account was found at this URL (no current-user-principal); check the server URL",
        )

    def _home(self, principal: str) -> str:
        for r in self._propfind(principal, "0", (CAL, "calendar-home-set")):
            props = self._ok_props(r)
            if props is not None:
                href = self._href(principal, props.find("c:calendar-home-set/d:href", NS))
                if href:
                    return href
        raise BadData("the CalDAV account has no calendar home (calendar-home-set)")

    _CALENDAR_PROPS = (
        (DAV, "resourcetype"),
        (DAV, "displayname"),
        (DAV, "current-user-privilege-set"),
        (CS, "getctag"),
        (DAV, "sync-token"),
        (CAL, "supported-calendar-component-set"),
    )

    def _calendar_info(self, url: str, props: ET.Element) -> CalendarInfo | None:
        resourcetype = props.find("d:resourcetype", NS)
        if resourcetype is None or resourcetype.find("c:calendar", NS) is None:
            return None
        components = props.find("c:supported-calendar-component-set", NS)
        if components is not None and len(components):
            names = {c.get("name", "").upper() for c in components.findall("c:comp", NS)}
            if "VEVENT" not in names:
                return None
        privileges = props.find("d:current-user-privilege-set", NS)
        known = privileges is not None and len(privileges) > 0
        writable = True
        if privileges is not None and known:
            granted = {child.tag.split("}")[-1] for p in privileges.findall("d:privilege", NS) for child in p}
            writable = bool(granted & WRITE_PRIVILEGES)
        name = (props.findtext("d:displayname", default="", namespaces=NS) or "").strip()
        if not name:
            name = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
        # Shared with this account by someone else (CalendarServer sharing: <CS:shared/>), or read-only
        # (a subscription): not the account's own calendar.
        shared = resourcetype.find("cs:shared", NS) is not None
        return CalendarInfo(
            remote_id=url,
            name=name,
            writable=writable,
            privileges_known=known,
            owned=writable and not shared,
            ctag=(props.findtext("cs:getctag", default="", namespaces=NS) or "").strip(),
            sync_token=(props.findtext("d:sync-token", default="", namespaces=NS) or "").strip(),
        )

    def discover(self) -> list[CalendarInfo]:
        home = self._home(self._principal())
        calendars = []
        for r in self._propfind(home, "1", *self._CALENDAR_PROPS):
            props = self._ok_props(r)
            url = self._href(home, r.find("d:href", NS))
            if props is None or not url:
                continue
            info = self._calendar_info(url, props)
            if info is not None:
                calendars.append(info)
        return calendars

    # What the probe asks for says whether the calendar moved, at the least cost to the server: servers
    # that compute the markers from every object (Radicale) pay for each one asked (on a 20-event
    # calendar ~15 % of its time for the ctag, ~25 % for the sync token, which also updates its
    # history; on a 1,000-event one both ~150 ms, the token ~90 ms, the ctag ~60, neither ~3 ms).
    # - a stored ctag: only the ctag (the cheaper one, equal as long as nothing moved);
    # - a stored token and no ctag (after every read): the token alone, or, once the calendar was
    #   seen unchanged since the read (``learn_ctag``), the token with the ctag, so that the ctag of
    #   an answer whose token equals the stored one is known to describe what was read (core.sync).
    #   A calendar that changes at every run never pays for a ctag it would not use;
    # - a calendar never read: only the token to start from (no ctag can be trusted before a read);
    # - a check (is it there, may we write?): neither.
    _PROBE_PROPS_CTAG = tuple(p for p in _CALENDAR_PROPS if p != (DAV, "sync-token"))
    _PROBE_PROPS_WITH_TOKEN = tuple(p for p in _CALENDAR_PROPS if p != (CS, "getctag"))
    _CHECK_PROPS = tuple(p for p in _CALENDAR_PROPS if p not in ((CS, "getctag"), (DAV, "sync-token")))

    def probe(self, state: CalendarState) -> CalendarInfo:
        if state.check:
            props = self._CHECK_PROPS
        elif state.ctag and not state.first_read:
            props = self._PROBE_PROPS_CTAG
        elif state.first_read or (state.sync_token and not state.learn_ctag):
            props = self._PROBE_PROPS_WITH_TOKEN
        else:
            props = self._CALENDAR_PROPS
        try:
            responses = self._propfind(state.remote_id, "0", *props, collection=True)
        except NotFound as exc:
            raise CalendarGone("the calendar no longer exists on the CalDAV server", exc.answer) from None
        for r in responses:
            found = self._ok_props(r)
            if found is not None:
                info = self._calendar_info(state.remote_id, found)
                if info is not None:
                    return info
        # Some servers (Xandikos) answer a vanished collection with a 207 whose only status is 404.
        raise CalendarGone("the calendar no longer exists on the CalDAV server (or is no longer a calendar)")

    # -- writing ------------------------------------------------------------------

    def _put(self, href: str, data: str, headers: dict) -> requests.Response:
        headers = {"Content-Type": "text/calendar; charset=utf-8", **headers}
        response = self._request("PUT", href, write=True, data=data.encode("utf-8"), headers=headers)
        if response.status_code in (409, 412) and b"uid-conflict" in response.content:
            raise _UidConflict(
                "the calendar holds another copy of this event under a different name; remove the duplicate",
                _answer(response),
            )
        if response.status_code == 409:
            # RFC 4791 §5.3.2: a PUT into a collection that does not exist is a conflict.
            raise CalendarGone("the calendar no longer exists on the CalDAV server", _answer(response))
        return response

    def find_uid(self, calendar_url: str, uid: str) -> str:
        """The href of the object with this UID in the calendar ('' if none), by calendar-query."""
        response = self._report(calendar_url, uid_query(uid))
        for r in self._multistatus(response):
            href, props = self._href(calendar_url, r.find("d:href", NS)), self._ok_props(r)
            data = props.findtext("c:calendar-data", default="", namespaces=NS) if props is not None else ""
            if href and f"UID:{uid}" in data.replace("\r\n ", "").replace("\n ", ""):
                return href
        return ""

    def _create(self, calendar_id: str, uid: str, data: str) -> tuple[str, str]:
        href = urljoin(calendar_id if calendar_id.endswith("/") else calendar_id + "/", quote(object_name(uid)))
        try:
            response = self._put(href, data, {"If-None-Match": "*"})
        except _UidConflict as conflict:
            # RFC 4791 5.3.2.1: an object with this UID exists under another name (an imported copy,
            # a second client). It is this appointment: found by its UID and taken over in place.
            existing = self.find_uid(calendar_id, uid)
            if not existing:
                raise ProviderError(conflict.reason, conflict.answer) from None
            raise AlreadyExists(
                "an event with this UID is already on the calendar under another name", conflict.answer, href=existing
            ) from None
        if response.status_code == 412:
            raise AlreadyExists("an event with this UID is already on the calendar", _answer(response), href=href)
        if response.status_code == 404:
            raise CalendarGone("the calendar no longer exists on the CalDAV server", _answer(response))
        if response.status_code not in (200, 201, 204):
            raise ProviderError(f"the CalDAV server did not store the event (HTTP {response.status_code})", _answer(response))
        return href, response.headers.get("ETag", "")

    def _update(self, href: str, data: str, etag: str) -> str:
        response = self._put(href, data, {"If-Match": etag} if etag else {})
        if response.status_code == 412:
            raise PreconditionFailed("the event was changed on the calendar meanwhile", _answer(response))
        if response.status_code == 404:
            raise NotFound("the event is no longer on the calendar", _answer(response))
        if response.status_code not in (200, 201, 204):
            raise ProviderError(f"the CalDAV server did not update the event (HTTP {response.status_code})", _answer(response))
        return response.headers.get("ETag", "")

    def _delete(self, href: str, etag: str) -> None:
        response = self._request("DELETE", href, write=True, headers={"If-Match": etag} if etag else {})
        if response.status_code == 412:
            raise PreconditionFailed("the event was changed on the calendar meanwhile", _answer(response))
        if response.status_code in (200, 204, 404, 410):
            return
        raise ProviderError(f"the CalDAV server did not delete the event (HTTP {response.status_code})", _answer(response))


class NotCalDAV(BadData):
    """The address answers HTTP but not WebDAV: a web site, a proxy's page, the wrong port."""


class _UidConflict(ProviderError):
    """PUT refused: another object of the calendar has this UID (precondition no-uid-conflict)."""
