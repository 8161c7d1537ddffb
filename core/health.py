"""The health sweep: the cheap check between syncs, so a break is known within minutes.

One request per connection whose check is due (``CALSYNC_SWEEP_INTERVAL``):
a broken credential, a vanished or read-only primary calendar is found and
reported to :mod:`core.lifecycle`. A connection that answers again while it
is broken, failing or holding missed appointments gets a full sync at once,
which resolves its incident and writes what waited.
"""

from __future__ import annotations

import datetime as dt

import models as m
from core import clock, lifecycle, runner, waiting
from core.providers.base import CalendarState, ProviderError, WriteForbidden

READ_ONLY_REASON = "the primary calendar is read-only for this account: calsync can read it but not add events"


def sweep(rt, limit: int = 1000) -> dict:
    now = clock.now()
    due_before = now - dt.timedelta(seconds=rt.settings.sweep_interval)
    query = (
        m.Connection.select()
        .where(
            m.Connection.status.not_in([m.STOPPED, m.PENDING]),
            (m.Connection.last_check_at.is_null()) | (m.Connection.last_check_at <= due_before),
            (m.Connection.last_sync_at.is_null()) | (m.Connection.last_sync_at <= due_before),
        )
        .order_by(m.Connection.last_check_at.asc(nulls="FIRST"))
        .limit(limit)
    )
    checked = changed = resynced = 0
    for conn in query:
        checked += 1
        m.Connection.update(last_check_at=now).where(m.Connection.id == conn.id).execute()
        calendar = conn.calendars.order_by(m.Calendar.is_destination.desc(), m.Calendar.id).first()
        if calendar is None:
            continue
        if conn.provider == "ics":
            # A feed's only cheap check is its conditional GET, and that is the sync itself.
            resynced += _sweep_sync(rt, conn)
            continue
        try:
            info = rt.provider_for(conn).probe(CalendarState(remote_id=calendar.remote_id))
            if calendar.is_destination and not info.writable:
                raise WriteForbidden(READ_ONLY_REASON)
        except ProviderError as exc:
            changed += lifecycle.failed(rt, conn, exc, "sweep")
            continue
        if conn.status != m.ACTIVE or waiting.is_failing(conn) or waiting.missed_count(conn):
            resynced += _sweep_sync(rt, conn)
        else:
            lifecycle.succeeded(rt, conn, "sweep")
    return {"checked": checked, "status_changes": changed, "resynced": resynced}


def _sweep_sync(rt, conn: m.Connection) -> int:
    try:
        runner.sync_with_lease(rt, conn, "sweep", wait=0)
        return 1
    except runner.Busy:
        return 0  # a scheduler is syncing it right now: that is the check
