"""The host scheduling product's side: API keys, busy times, connections.

Appointments come in through :func:`core.actions.upsert_appointment` and
:func:`core.actions.cancel_appointment`, exactly as `book` creates them.
``busy`` merges the loaded busy entries of every busy source with calsync's
own appointments, and says plainly which sources could not be taken into
account (broken or stale), so availability never silently ignores them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import secrets

import peewee as pw

import models as m
from core import clock, waiting
from core.messages import meaning

log = logging.getLogger("calsync.hostapi")

KEY_PREFIX = "csk_"
MAX_RANGE = dt.timedelta(days=366)
USE_RECORDED_EVERY = dt.timedelta(minutes=10)  # last_used_at is this precise, so most requests write nothing


def _iso(value):
    return clock.utc(value).isoformat().replace("+00:00", "Z") if value else None


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(name: str, created_by: str = "") -> tuple[str, m.ApiKey]:
    name = (name or "").strip()
    if not name or len(name) > 100:
        raise ValueError("an API key needs a name of 1 to 100 characters")
    if m.ApiKey.select().where(m.ApiKey.name == name).exists():
        raise KeyError(f"an API key named {name!r} exists already; revoke it or choose another name")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = m.ApiKey.create(name=name, key_hash=key_hash(key), prefix=key[:10], created_by=created_by)
    return key, row


def verify_key(key: str) -> m.ApiKey | None:
    if not key or not key.startswith(KEY_PREFIX) or len(key) > 200:
        return None
    row = m.ApiKey.get_or_none(m.ApiKey.key_hash == key_hash(key), m.ApiKey.revoked_at.is_null())
    if row is not None:
        _record_use(row)
    return row


def _record_use(row: m.ApiKey) -> None:
    """Note when the key was last used, at most once per USE_RECORDED_EVERY, and never at the
    cost of the request: a read must not wait for, or fail on, another process's write lock."""
    now = clock.now()
    cutoff = now - USE_RECORDED_EVERY
    if row.last_used_at is not None and row.last_used_at > cutoff:
        return
    try:
        with _without_waiting():
            m.ApiKey.update(last_used_at=now).where(
                m.ApiKey.id == row.id, m.ApiKey.last_used_at.is_null() | (m.ApiKey.last_used_at <= cutoff)
            ).execute()
    except pw.OperationalError as exc:
        if not m.is_busy(exc):
            raise
        log.debug("API key %s: last use not recorded, the database is busy", row.prefix)


@contextlib.contextmanager
def _without_waiting():
    """Statements inside fail at once instead of waiting out the busy timeout (SQLite) or a row lock (PostgreSQL)."""
    database = m.db.obj
    if isinstance(database, pw.SqliteDatabase):
        previous = database.execute_sql("PRAGMA busy_timeout").fetchone()[0]
        database.execute_sql("PRAGMA busy_timeout = 0")
        try:
            yield
        finally:
            database.execute_sql(f"PRAGMA busy_timeout = {int(previous)}")
    else:
        with database.atomic():
            database.execute_sql("SET LOCAL lock_timeout = '200ms'")
            yield


def merge(blocks: list[tuple[dt.datetime, dt.datetime]]) -> list[tuple[dt.datetime, dt.datetime]]:
    """Overlapping or touching blocks become one."""
    merged: list[list[dt.datetime]] = []
    for start, end in sorted(blocks):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return [(a, b) for a, b in merged]


def _source(conn: m.Connection, cal: m.Calendar, state: str) -> dict:
    return {
        "calendar": cal.name,
        "connection": conn.id,
        "provider": conn.provider,
        "account": conn.account,
        "status": conn.status,
        "state": state,
        "counted": cal.is_busy_source,
        "last_successful_sync": _iso(conn.last_success_at),
    }


def busy(rt, staff: m.Staff, start: dt.datetime, end: dt.datetime) -> dict:
    """Merged busy blocks in [start, end) and the state of every calendar: ``counted`` says whether its
    busy events are in the blocks (its busy role, core.actions.roles)."""
    now = clock.now()
    stale_before = now - dt.timedelta(seconds=rt.settings.stale_after)
    sources, warnings, usable = [], [], []
    connections = m.Connection.select().where(m.Connection.staff == staff, m.Connection.status != m.STOPPED)
    for conn in connections:
        for cal in conn.calendars.order_by(m.Calendar.id):
            if not cal.is_busy_source:
                sources.append(_source(conn, cal, "not_counted"))
                continue
            broken = conn.status in m.BROKEN_STATUSES
            never = conn.last_success_at is None
            stale = not never and conn.last_success_at < stale_before
            if broken:
                state = "broken"
                warnings.append(
                    f"{cal.name} ({conn.account}) could not be taken into account: the connection is "
                    f"{conn.status} ({conn.reason or meaning(conn.status)}); busy times from before "
                    f"{_iso(conn.last_success_at) or 'ever'} are used as last known"
                )
            elif never:
                state = "not_synced_yet"
                warnings.append(f"{cal.name} ({conn.account}) has not been synced yet: its busy times are unknown")
            elif stale:
                state = "stale"
                warnings.append(
                    f"{cal.name} ({conn.account}) was last synced at {_iso(conn.last_success_at)}: its busy times may be out of date"
                )
            else:
                state = "ok"
            usable.append(cal.id)
            sources.append(_source(conn, cal, state))
    blocks: list[tuple[dt.datetime, dt.datetime]] = []
    if usable:
        for entry in m.FeedEntry.select().where(
            m.FeedEntry.calendar.in_(usable),
            m.FeedEntry.loaded == True,
            m.FeedEntry.starts_at < end,
            m.FeedEntry.ends_at > start,
            m.FeedEntry.ends_at > m.FeedEntry.starts_at,  # an event of no length blocks no time
        ):
            blocks.append((max(entry.starts_at, start), min(entry.ends_at, end)))
    for appointment in m.Appointment.select().where(
        m.Appointment.staff == staff,
        m.Appointment.cancelled == False,
        m.Appointment.starts_at < end,
        m.Appointment.ends_at > start,
    ):
        blocks.append((max(appointment.starts_at, start), min(appointment.ends_at, end)))
    return {
        "staff": staff.email,
        "from": _iso(start),
        "to": _iso(end),
        "busy": [{"start": _iso(a), "end": _iso(b)} for a, b in merge(blocks)],
        "sources": sources,
        "complete": not warnings,
        "warnings": warnings,
    }


def connections(staff: m.Staff) -> list[dict]:
    rows = []
    for conn in m.Connection.select().where(m.Connection.staff == staff).order_by(m.Connection.id):
        rows.append(
            {
                "id": conn.id,
                "provider": conn.provider,
                "account": conn.account,
                "status": conn.status,
                "meaning": meaning(conn.status),
                "reason": conn.reason or meaning(conn.status),
                "since": _iso(conn.status_since),
                "last_sync_at": _iso(conn.last_sync_at),
                "last_successful_sync": _iso(conn.last_success_at),
                "missed": waiting.missed_count(conn),
                "failing_since": _iso(conn.failing_since),
                "consecutive_failures": conn.failures_in_row if conn.failing_since else 0,
            }
        )
    return rows
