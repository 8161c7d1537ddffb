"""Smoke test for tests/servers.py: both real CalDAV servers behave as the
admin helpers promise (discovery, calendars, events, password change,
read-only, calendar deletion)."""

from __future__ import annotations

import urllib.parse
from xml.etree import ElementTree as ET

import pytest
import requests
from servers import CalDAVServer, start_server

DAV = "{DAV:}"
CALDAV = "{urn:ietf:params:xml:ns:caldav}"
XML = {"Content-Type": "application/xml; charset=utf-8"}

ICS = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync//smoke//EN\r\n"
    "BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20240101T000000Z\r\n"
    "DTSTART:20240102T100000Z\r\nDTEND:20240102T110000Z\r\n"
    "SUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


@pytest.fixture(params=["radicale", "xandikos"])
def server(request, tmp_path):
    srv = start_server(request.param, tmp_path / request.param)
    try:
        yield srv
    finally:
        pid = srv.pid
        srv.stop()
        assert srv.pid is None and not srv.running, f"server pid {pid} still running"


def propfind(url: str, auth, props: str, depth: str = "0") -> requests.Response:
    body = (
        f'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:" '
        f'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop>{props}</D:prop></D:propfind>'
    )
    return requests.request("PROPFIND", url, auth=auth, data=body.encode(), headers={**XML, "Depth": depth}, timeout=5)


def href_of(resp: requests.Response, prop: str) -> str:
    el = ET.fromstring(resp.content).find(f".//{prop}/{DAV}href")
    assert el is not None and el.text is not None, resp.text
    return urllib.parse.urljoin(resp.url, el.text.strip())


def gone(resp: requests.Response) -> bool:
    """PROPFIND on a missing resource: Radicale answers a plain 404; Xandikos
    answers 207 with one <response> whose own <status> is 404."""
    if resp.status_code == 404:
        return True
    if resp.status_code != 207:
        return False
    responses = list(ET.fromstring(resp.content).iter(f"{DAV}response"))
    return len(responses) == 1 and " 404 " in (responses[0].findtext(f"{DAV}status") or "")


def discover_calendars(srv: CalDAVServer) -> list[str]:
    """What a client does with base_url: well-known -> principal -> home -> calendars."""
    auth = srv.user_auth
    r = requests.get(srv.base_url + ".well-known/caldav", auth=auth, allow_redirects=False, timeout=5)
    assert r.status_code in (301, 302, 303, 307, 308), r.status_code
    start = urllib.parse.urljoin(srv.base_url, r.headers["Location"])
    r = propfind(start, auth, "<D:current-user-principal/>")
    assert r.status_code == 207, r.text
    principal = href_of(r, f"{DAV}current-user-principal")
    assert principal == srv.principal_url
    r = propfind(principal, auth, "<C:calendar-home-set/>")
    assert r.status_code == 207, r.text
    home = href_of(r, f"{CALDAV}calendar-home-set")
    assert home == srv.calendar_home_url
    r = propfind(home, auth, "<D:resourcetype/>", depth="1")
    assert r.status_code == 207, r.text
    out = []
    for resp in ET.fromstring(r.content).iter(f"{DAV}response"):
        if resp.find(f".//{DAV}resourcetype/{CALDAV}calendar") is not None:
            href = resp.findtext(f"{DAV}href")
            assert href is not None, r.text
            out.append(urllib.parse.urljoin(home, href.strip()))
    return out


def test_server_lifecycle(server: CalDAVServer):
    srv = server
    assert srv.running and srv.pid
    assert discover_calendars(srv) == []  # home starts empty

    cal = srv.make_calendar("work", display_name="Work")
    assert cal.endswith("/work/") and cal.startswith(srv.base_url)
    assert discover_calendars(srv) == [cal]

    href = srv.put_event(cal, "e1.ics", ICS.format(uid="e1@calsync", summary="Hello"))
    events = srv.list_events(cal)
    assert list(events) == [href]
    assert "SUMMARY:Hello" in events[href]

    # the user can read it with their own credentials
    r = requests.get(href, auth=srv.user_auth, timeout=5)
    assert r.status_code == 200

    # password change: old one 401, new one works
    old = srv.password
    srv.set_password("new-" + old)
    r = propfind(cal, (srv.username, old), "<D:getetag/>")
    assert r.status_code == 401
    assert r.headers.get("WWW-Authenticate", "").lower().startswith("basic")
    r = propfind(cal, srv.user_auth, "<D:getetag/>")
    assert r.status_code == 207

    # read-only: reads work, writes are refused with 403
    srv.set_read_only(True)
    assert srv.running
    r = requests.get(href, auth=srv.user_auth, timeout=5)
    assert r.status_code == 200
    r = requests.put(
        cal + "e2.ics",
        auth=srv.user_auth,
        timeout=5,
        data=ICS.format(uid="e2@calsync", summary="Nope").encode(),
        headers={"Content-Type": "text/calendar; charset=utf-8"},
    )
    assert r.status_code == 403, (r.status_code, r.text)
    r = requests.delete(href, auth=srv.user_auth, timeout=5)
    assert r.status_code == 403, (r.status_code, r.text)
    r = propfind(cal, srv.user_auth, "<D:current-user-privilege-set/>")
    privilege_set = ET.fromstring(r.content).find(f".//{DAV}current-user-privilege-set")
    assert privilege_set is not None, r.text
    privs = {p.tag for p in privilege_set.iter() if p.tag != f"{DAV}privilege"}
    assert f"{DAV}read" in privs and not privs & {f"{DAV}all", f"{DAV}write", f"{DAV}write-content"}
    # the world (admin helpers) can still edit
    srv.put_event(cal, "e3.ics", ICS.format(uid="e3@calsync", summary="External"))
    assert len(srv.list_events(cal)) == 2
    srv.set_read_only(False)
    r = requests.put(
        cal + "e2.ics",
        auth=srv.user_auth,
        timeout=5,
        data=ICS.format(uid="e2@calsync", summary="Yes").encode(),
        headers={"Content-Type": "text/calendar; charset=utf-8"},
    )
    assert r.status_code in (201, 204), (r.status_code, r.text)

    srv.delete_event(href)
    assert href not in srv.list_events(cal)

    # calendar deletion
    srv.delete_calendar(cal)
    r = propfind(cal, srv.user_auth, "<D:resourcetype/>")
    assert gone(r), (r.status_code, r.text)
    assert discover_calendars(srv) == []

    # restart keeps port and data
    port = srv.port
    other = srv.make_calendar("other")
    srv.restart()
    assert srv.port == port and srv.running
    assert discover_calendars(srv) == [other]
