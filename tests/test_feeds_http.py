"""The private feed, one-off downloads and the connect page as a calendar app and a browser see them (HTTP).

tests/test_feeds.py covers rendering and validators at the core level; here it is
what goes over the wire: headers, conditional requests, bad tokens, single use.
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlsplit

import icalendar
import pytest
import vobject
from conftest import soon

import models as m
from core import actions, clock
from web.app import create_app

ADA = "ada@example.com"


@pytest.fixture
def ada(rt):
    actions.add_staff(rt, ADA, "Ada Lovelace", timezone="Europe/Berlin")
    return m.Staff.get(m.Staff.email == ADA)


@pytest.fixture
def client(rt):
    return create_app(rt).test_client()


def path_of(url: str) -> str:
    return urlsplit(url).path


def feed_path(rt, email: str = ADA) -> str:
    return path_of(actions.feed_url(rt, email)["url"])


def book(rt, external_id: str, start: dt.datetime, subject: str = "Session", email: str = ADA, **kw) -> dict:
    return actions.upsert_appointment(rt, external_id, email, start, start + dt.timedelta(hours=1), subject, **kw)


def later(**delta) -> dt.datetime:
    moment = clock.now() + dt.timedelta(**delta)
    clock.set_now(lambda: moment)
    return moment


def summaries(data: bytes) -> list[str]:
    return sorted(str(e["SUMMARY"]) for e in icalendar.Calendar.from_ical(data).walk("VEVENT"))


# -- the feed --------------------------------------------------------------------------------------


def test_the_feed_is_served_as_private_icalendar_that_two_parsers_read(rt, ada, client):
    start = clock.now().replace(microsecond=0) + dt.timedelta(days=1)
    book(rt, "A-1", start, "Intro, with a comma; and semicolon", description="Line one\nLine two", location="Room 4")
    book(rt, "A-2", start + dt.timedelta(days=3), "Review")
    path = feed_path(rt)
    assert re.fullmatch(r"/feeds/[A-Za-z0-9_-]{40,}\.ics", path)

    answer = client.get(path)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert "private" in answer.headers["Cache-Control"] and "public" not in answer.headers["Cache-Control"]
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert re.fullmatch(r'"[0-9a-f]{32}"', answer.headers["ETag"])
    assert answer.headers["Last-Modified"].endswith(" GMT")
    assert "Set-Cookie" not in answer.headers

    first = icalendar.Calendar.from_ical(answer.data)
    second = vobject.readOne(answer.data.decode("utf-8"))
    events = first.walk("VEVENT")
    assert sorted(str(e["SUMMARY"]) for e in events) == ["Intro, with a comma; and semicolon", "Review"]
    assert sorted(e.summary.value for e in second.vevent_list) == ["Intro, with a comma; and semicolon", "Review"]
    assert {str(e["UID"]) for e in events} == {e.uid.value for e in second.vevent_list} == {"calsync-A-1@calsync", "calsync-A-2@calsync"}
    intro = next(e for e in second.vevent_list if e.uid.value == "calsync-A-1@calsync")
    assert intro.dtstart.value == start and intro.dtstart.value.utcoffset() == dt.timedelta(0)
    assert intro.description.value == "Line one\nLine two" and intro.location.value == "Room 4"
    assert b"\r\n" in answer.data and b"VALARM" not in answer.data


def test_a_refresh_with_nothing_new_is_a_304_without_a_body(rt, ada, client):
    book(rt, "A-1", soon())
    path = feed_path(rt)
    full = client.get(path)
    etag, modified = full.headers["ETag"], full.headers["Last-Modified"]

    by_etag = client.get(path, headers={"If-None-Match": etag})
    assert by_etag.status_code == 304 and by_etag.data == b""
    assert by_etag.headers["ETag"] == etag and "private" in by_etag.headers["Cache-Control"]
    by_date = client.get(path, headers={"If-Modified-Since": modified})
    assert by_date.status_code == 304 and by_date.data == b""
    listed = client.get(path, headers={"If-None-Match": f'"0000", {etag}'})
    assert listed.status_code == 304
    # behind a proxy that compresses, the ETag comes back weak: If-None-Match compares weakly (RFC 9110)
    weak = client.get(path, headers={"If-None-Match": f"W/{etag}"})
    assert weak.status_code == 304
    # an ETag that does not match wins over a date that would
    other = client.get(path, headers={"If-None-Match": '"0000"', "If-Modified-Since": modified})
    assert other.status_code == 200 and summaries(other.data) == summaries(full.data)


def test_a_new_a_changed_and_a_cancelled_appointment_each_give_a_new_etag(rt, ada, client):
    book(rt, "A-1", soon(2), "First")
    path = feed_path(rt)
    first = client.get(path)

    later(seconds=2)
    book(rt, "A-2", soon(3), "Second")
    second = client.get(path, headers={"If-None-Match": first.headers["ETag"]})
    assert second.status_code == 200 and second.headers["ETag"] != first.headers["ETag"]
    assert summaries(second.data) == ["First", "Second"]
    assert client.get(path, headers={"If-Modified-Since": first.headers["Last-Modified"]}).status_code == 200

    later(seconds=2)
    book(rt, "A-2", soon(3), "Second, renamed")  # same count, newer change
    third = client.get(path, headers={"If-None-Match": second.headers["ETag"]})
    assert third.status_code == 200 and third.headers["ETag"] != second.headers["ETag"]
    assert summaries(third.data) == ["First", "Second, renamed"]

    later(seconds=2)
    actions.cancel_appointment(rt, "A-1")
    fourth = client.get(path, headers={"If-None-Match": third.headers["ETag"]})
    assert fourth.status_code == 200 and fourth.headers["ETag"] != third.headers["ETag"]
    assert summaries(fourth.data) == ["Second, renamed"]  # cancelled appointments are absent
    assert client.get(path, headers={"If-None-Match": fourth.headers["ETag"]}).status_code == 304


def test_appointments_entering_the_window_reach_a_client_that_only_sends_if_modified_since(rt, ada, client):
    book(rt, "far", clock.now().replace(microsecond=0) + dt.timedelta(days=70), "Booked long ahead")
    path = feed_path(rt)
    before = client.get(path)
    assert summaries(before.data) == []
    later(days=15)  # nothing changed, but the appointment is 55 days ahead now
    by_date = client.get(path, headers={"If-Modified-Since": before.headers["Last-Modified"]})
    assert by_date.status_code == 200
    assert summaries(by_date.data) == ["Booked long ahead"]
    by_etag = client.get(path, headers={"If-None-Match": before.headers["ETag"]})
    assert by_etag.status_code == 200
    assert client.get(path, headers={"If-Modified-Since": by_date.headers["Last-Modified"]}).status_code == 304


def test_head_answers_like_get_without_a_body(rt, ada, client):
    book(rt, "A-1", soon())
    path = feed_path(rt)
    full = client.get(path)
    head = client.head(path)
    assert head.status_code == 200 and head.data == b""
    for name in ("Content-Type", "ETag", "Last-Modified", "Cache-Control", "Referrer-Policy"):
        assert head.headers[name] == full.headers[name]
    assert client.head(path, headers={"If-None-Match": full.headers["ETag"]}).status_code == 304


def test_no_alarms_no_cancelled_and_only_the_owners_appointments(rt, ada, client):
    actions.add_staff(rt, "bob@example.com", "Bob", timezone="UTC")
    book(rt, "A-1", soon(1), "Ada's")
    book(rt, "A-2", soon(2), "Ada's cancelled")
    actions.cancel_appointment(rt, "A-2")
    book(rt, "B-1", soon(1), "Bob's", email="bob@example.com")
    ada_feed = client.get(feed_path(rt)).data
    bob_feed = client.get(feed_path(rt, "bob@example.com")).data
    assert summaries(ada_feed) == ["Ada's"] and summaries(bob_feed) == ["Bob's"]
    for data in (ada_feed, bob_feed):
        cal = icalendar.Calendar.from_ical(data)
        assert not list(cal.walk("VALARM")) and b"BEGIN:VALARM" not in data
        assert all(str(e.get("STATUS", "")) != "CANCELLED" for e in cal.walk("VEVENT"))


def test_every_bad_token_gets_the_same_404(rt, ada, client):
    book(rt, "A-1", soon())
    good = feed_path(rt)[len("/feeds/") : -len(".ics")]
    changed = good[:10] + ("A" if good[10] != "A" else "B") + good[11:]
    answers = {
        "unknown": client.get("/feeds/" + "x" * len(good) + ".ics"),
        "one character changed": client.get(f"/feeds/{changed}.ics"),
        "truncated": client.get(f"/feeds/{good[:-1]}.ics"),
        "empty": client.get("/feeds/.ics"),
        "very long": client.get("/feeds/" + good * 200 + ".ics"),
        "head": client.head(f"/feeds/{changed}.ics"),
    }
    bodies = set()
    for name, answer in answers.items():
        assert answer.status_code == 404, name
        assert answer.headers["Cache-Control"] == "no-store", name
        assert answer.mimetype == "text/plain", name
        assert "ETag" not in answer.headers, name
        if name != "head":
            bodies.add(answer.data)
    assert bodies == {b"Not found\n"}
    assert client.get(f"/feeds/{good}.ics").status_code == 200


def test_reset_revokes_the_old_url_at_once(rt, ada, client):
    book(rt, "A-1", soon())
    old = feed_path(rt)
    old_answer = client.get(old)
    assert old_answer.status_code == 200
    new = path_of(actions.feed_reset(rt, ADA)["url"])
    assert new != old
    gone = client.get(old, headers={"If-None-Match": old_answer.headers["ETag"]})
    assert gone.status_code == 404 and gone.data == b"Not found\n"
    fresh = client.get(new, headers={"If-None-Match": old_answer.headers["ETag"]})
    assert fresh.status_code == 200 and summaries(fresh.data) == ["Session"]
    assert feed_path(rt) == new  # shown again, unchanged


# -- one-off downloads of missed appointments -----------------------------------------------------


def test_a_download_link_gives_the_missed_appointments_once(story):
    client = create_app(story.rt).test_client()
    story.sync()
    story.server.set_password("x-1")
    story.sync()
    story.book(soon(2, 10), subject="Missed one")
    story.book(soon(3, 11), subject="Missed two")
    story.sync()
    link = actions.download_link(story.rt, story.conn_id)
    assert link["count"] == 2
    path = path_of(link["url"])
    assert re.fullmatch(r"/download/[A-Za-z0-9_-]{40,}\.ics", path)

    answer = client.get(path)
    assert answer.status_code == 200
    assert answer.mimetype == "text/calendar"
    assert answer.headers["Content-Disposition"] == f'attachment; filename="calsync-missed-{story.conn_id}.ics"'
    assert answer.headers["Cache-Control"] == "no-store" and answer.headers["Referrer-Policy"] == "no-referrer"
    cal = icalendar.Calendar.from_ical(answer.data)
    events = cal.walk("VEVENT")
    assert sorted(str(e["SUMMARY"]) for e in events) == ["Missed one", "Missed two"]
    for event in events:
        assert "this file will not update" in str(event["DESCRIPTION"])
    assert not list(cal.walk("VALARM"))
    assert {e.summary.value for e in vobject.readOne(answer.data.decode("utf-8")).vevent_list} == {"Missed one", "Missed two"}

    again = client.get(path)
    assert again.status_code == 410 and "works once" in again.text
    unknown = client.get("/download/" + "x" * 43 + ".ics")
    assert unknown.status_code == 410 and unknown.data == again.data


def test_an_expired_download_link_is_410(story):
    client = create_app(story.rt).test_client()
    path = path_of(actions.download_link(story.rt, story.conn_id)["url"])
    later(hours=25)
    assert client.get(path).status_code == 410


# -- the connect page ---------------------------------------------------------------------------


def csrf_token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


def test_the_connect_page_tests_the_password_before_saving(rt, ada, caldav, client):
    caldav.make_calendar("work", "Work")
    path = path_of(actions.connect_link(rt, ADA)["url"])
    page = client.get(path)
    assert page.status_code == 200
    assert "Ada Lovelace" in page.text and 'name="password"' in page.text
    assert page.headers["Cache-Control"] == "no-store" and page.headers["Referrer-Policy"] == "no-referrer"
    form = {"csrf_token": csrf_token(page.text), "provider": "caldav", "url": caldav.base_url, "username": caldav.username}

    wrong = client.post(path, data={**form, "password": "not-the-password"})
    assert wrong.status_code == 422
    assert "That did not work" in wrong.text and "Nothing was saved" in wrong.text
    assert "not-the-password" not in wrong.text
    assert m.Connection.select().count() == 0
    assert client.get(path).status_code == 200  # the link still works

    no_csrf = client.post(path, data={**form, "csrf_token": "", "password": caldav.password})
    assert no_csrf.status_code == 400 and m.Connection.select().count() == 0

    right = client.post(path, data={**form, "password": caldav.password})
    assert right.status_code == 200, right.text
    assert "Calendar connected" in right.text and "Active" in right.text
    (conn,) = m.Connection.select()
    assert conn.staff.email == ADA and conn.provider == "caldav" and conn.status == m.ACTIVE
    assert caldav.password not in right.text

    assert client.get(path).status_code == 410
    assert client.post(path, data={**form, "password": caldav.password}).status_code == 410
    assert m.Connection.select().count() == 1
