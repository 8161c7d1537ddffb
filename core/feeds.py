"""Private iCalendar feeds: one unguessable URL per staff member, for calendar apps.

The token is an HMAC of the staff member and a generation under the feed
secret, so it can be shown again (``feed url``) while the database holds only
its SHA-256; ``reset`` bumps the generation and the old URL answers 404 at
once. The feed is RFC 5545 with UTC times, no alarms, stable UIDs and the
window of CALSYNC_FEED_PAST_DAYS / CALSYNC_FEED_FUTURE_DAYS; its ETag and
Last-Modified come from one cheap query, so a refresh with nothing new is a
304 without rendering anything.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import logging
import threading
from collections import OrderedDict

import peewee as pw

import models as m
from core import clock, ics, prepared

log = logging.getLogger("calsync.feeds")


def _derive(rt, staff: m.Staff, generation: int) -> str:
    digest = hmac.new(rt.feed_key, f"calsync-feed:{staff.id}:{generation}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def url_for(rt, token: str) -> str:
    return f"{rt.settings.base_url}/feeds/{token}.ics"


def ensure_token(rt, staff: m.Staff) -> str:
    """The staff member's current feed token (made on first use)."""
    if staff.feed_generation == 0 or not staff.feed_token_hash:
        staff.feed_generation = max(staff.feed_generation, 1)
        staff.feed_token_hash = token_hash(_derive(rt, staff, staff.feed_generation))
        staff.save()
    return _derive(rt, staff, staff.feed_generation)


def reset(rt, staff: m.Staff) -> str:
    """A new token; the old URL stops working at once."""
    staff.feed_generation += 1
    staff.feed_token_hash = token_hash(_derive(rt, staff, staff.feed_generation))
    staff.save()
    return _derive(rt, staff, staff.feed_generation)


_BY_TOKEN = prepared.Prepared(lambda digest: m.Staff.select().where(m.Staff.feed_token_hash == digest).limit(1))


def lookup(token: str) -> m.Staff | None:
    if not token or len(token) > 100:
        return None
    found = _BY_TOKEN.fetch(digest=token_hash(token))
    return found[0] if found else None


def window(rt) -> tuple[dt.datetime, dt.datetime]:
    """Whole UTC days: from the first midnight after CALSYNC_FEED_PAST_DAYS ago to the last one
    before CALSYNC_FEED_FUTURE_DAYS ahead. What falls inside moves only when the day does, so
    the validators need not look at the window at all (the day is part of the ETag)."""
    now = clock.now()
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    start = today - dt.timedelta(days=rt.settings.feed_past_days)
    if start < now - dt.timedelta(days=rt.settings.feed_past_days):
        start += dt.timedelta(days=1)
    return start, today + dt.timedelta(days=rt.settings.feed_future_days)


def _appointments(rt, staff: m.Staff):
    start, end = window(rt)
    return m.Appointment.select().where(
        m.Appointment.staff == staff,
        m.Appointment.cancelled == False,
        m.Appointment.ends_at > start,
        m.Appointment.starts_at < end,
    )


@dataclasses.dataclass
class Validators:
    etag: str
    last_modified: dt.datetime


def _newest(staff_id):
    A = m.Appointment
    return A.select(pw.fn.MAX(A.updated_at), pw.fn.COUNT(A.id), pw.fn.SUM(A.version)).where(A.staff == staff_id).tuples()


_NEWEST = prepared.Prepared(_newest)  # every feed request asks it: built once


def validators(rt, staff: m.Staff) -> Validators:
    """ETag and Last-Modified without rendering, from one index (staff, updated_at, version): every
    change of an appointment raises its version (the sum moves whatever the clocks say), a new one
    the count, and the window (whole days) moves with the day, which is part of the ETag."""
    newest, count, versions = _NEWEST.fetch(staff_id=staff.id)[0]
    if isinstance(newest, str):  # some drivers hand aggregates back as text
        newest = dt.datetime.fromisoformat(newest)
    newest = clock.utc(newest) if isinstance(newest, dt.datetime) else clock.utc(staff.created_at)
    day = clock.now().strftime("%Y%m%d")  # the window moves once a day
    raw = f"{staff.id}:{staff.feed_generation}:{newest.isoformat()}:{count}:{versions or 0}:{day}:{staff.name}"
    # Last-Modified moves with the window too (at the start of each UTC day), or a client that
    # sends only If-Modified-Since would never see an appointment booked long ahead enter the window.
    today = clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
    return Validators(
        etag='"' + hashlib.sha256(raw.encode()).hexdigest()[:32] + '"', last_modified=max(newest, today).replace(microsecond=0)
    )


_RENDERED: OrderedDict[tuple[int, str], bytes] = OrderedDict()
_RENDERED_LOCK = threading.Lock()
CACHE_ENTRIES = 256


def render_cached(rt, staff: m.Staff, etag: str) -> bytes:
    """The feed for ``etag``: rendering 2,000 events costs ~0.6 s of icalendar work, so one
    render serves every client until the data (and so the ETag) changes."""
    key = (staff.id, etag)
    with _RENDERED_LOCK:
        body = _RENDERED.get(key)
        if body is not None:
            _RENDERED.move_to_end(key)
            return body
    body = render(rt, staff)
    with _RENDERED_LOCK:
        _RENDERED[key] = body
        while len(_RENDERED) > CACHE_ENTRIES:
            _RENDERED.popitem(last=False)
    return body


# Each event's bytes, by (appointment, version, last change): a feed renders only what changed
# since it was last rendered (icalendar writes ~2,000 events a second), the rest is reused.
_EVENTS: OrderedDict[tuple, bytes] = OrderedDict()
_EVENTS_LOCK = threading.Lock()
EVENT_CACHE_ENTRIES = 50_000  # ~0.5 KB each: a bounded ~25 MB


def forget_rendered() -> None:
    """Empty both render caches (a runtime bound to another database must not reuse them)."""
    with _RENDERED_LOCK:
        _RENDERED.clear()
    with _EVENTS_LOCK:
        _EVENTS.clear()


def render(rt, staff: m.Staff) -> bytes:
    """The whole feed: the calendar's head by icalendar, each event's lines rendered once per change.

    DTSTAMP is the appointment's last change (RFC 5545 §3.8.7.2: without a METHOD it is the
    LAST-MODIFIED of the information), so the same data gives the same bytes, the ETag's promise.
    """
    A = m.Appointment
    keys = list(_appointments(rt, staff).select(A.id, A.version, A.updated_at).order_by(A.starts_at, A.id).tuples())
    with _EVENTS_LOCK:
        parts = {key: _EVENTS.get(key) for key in keys}
    missing = [key[0] for key, body in parts.items() if body is None]
    fresh = {}
    for start in range(0, len(missing), 500):
        for appointment in A.select().where(A.id.in_(missing[start : start + 500])):
            body = _event_bytes(appointment)
            if body is not None:
                fresh[(appointment.id, appointment.version, appointment.updated_at)] = body
    if fresh:
        with _EVENTS_LOCK:
            _EVENTS.update(fresh)
            while len(_EVENTS) > EVENT_CACHE_ENTRIES:
                _EVENTS.popitem(last=False)
    head = _calendar(staff).to_ical()
    end = b"END:VCALENDAR\r\n"
    body = b"".join(parts[key] or fresh.get(key, b"") for key in keys)
    return head[: -len(end)] + body + end


def _event_bytes(appointment) -> bytes | None:
    """One appointment's VEVENT lines; None (logged, left out of the feed) when it cannot be written,
    so one bad row costs its own event and not the staff member's whole feed."""
    try:
        return ics.feed_event(appointment, clock.utc(appointment.updated_at)).to_ical()
    except Exception as exc:  # noqa: BLE001 — a row stored before today's checks
        log.error(
            "feed: appointment %s cannot be written as iCalendar (%s); it is left out of the feed", appointment.id, type(exc).__name__
        )
        return None


def _calendar(staff: m.Staff):
    cal = ics.new_calendar(f"Calsync — {staff.name}")
    cal.add("x-wr-caldesc", "Your appointments from calsync (read-only; times in UTC)")
    cal.add("x-published-ttl", "PT1H")
    cal.add("refresh-interval", dt.timedelta(hours=1), parameters={"VALUE": "DURATION"})
    return cal
