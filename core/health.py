"""The health sweep: the cheap check between syncs, so a break is known within minutes.

One request per connection whose check is due (``CALSYNC_SWEEP_INTERVAL``): a broken
credential, a vanished or read-only primary calendar is found and reported to
:mod:`core.lifecycle`. A connection that answers again while it is broken, failing or holding
missed appointments gets a full sync at once, which resolves its incident and writes what
waited.

A check holds the connection's lease like a sync does (never both at once), and runs where the
syncs run: on the scheduler's worker pool (:func:`check_claimed`), never on the scheduler's own
thread, so a provider that does not answer delays only its own slot. :func:`sweep` is the same
for one pass (``run_bot.py --once``).
"""

from __future__ import annotations

import datetime as dt
import logging

import models as m
from core import clock, leases, lifecycle, waiting
from core.providers.base import CalendarState, ProviderError, WriteForbidden
from core.sync import sync_connection

log = logging.getLogger("calsync.health")

READ_ONLY_REASON = "the primary calendar is read-only for this account: calsync can read it but not add events"


def due(rt, limit: int = 1000, exclude=()) -> list[int]:
    """The connections whose check is due (not synced or checked within the sweep interval)."""
    if limit <= 0:
        return []
    due_before = clock.now() - dt.timedelta(seconds=rt.settings.sweep_interval)
    query = (
        m.Connection.select(m.Connection.id)
        .where(
            m.Connection.status.not_in([m.STOPPED, m.PENDING]),
            (m.Connection.last_check_at.is_null()) | (m.Connection.last_check_at <= due_before),
            (m.Connection.last_sync_at.is_null()) | (m.Connection.last_sync_at <= due_before),
        )
        .order_by(m.Connection.last_check_at.asc(nulls="FIRST"))
        .limit(limit + len(exclude))
    )
    skip = set(exclude)
    return [cid for (cid,) in m.tuples(query) if cid not in skip][:limit]


def check_claimed(rt, conn_id: int, owner: str) -> str:
    """Check one connection whose lease ``owner`` holds, then give it back.

    Returns ``ok``, ``changed`` (the status changed), ``resynced`` (it synced) or ``skipped``.
    """
    with m.db.connection_context():
        outcome, synced = "skipped", False
        try:
            outcome = _check(rt, m.Connection.get_by_id(conn_id))
            synced = outcome == "resynced"
        except Exception:  # one connection's fault must not stop the sweep
            log.exception("health check of connection %s failed internally", conn_id)
        finally:
            if synced:
                leases.release(rt, conn_id, owner, ok=True)
            else:
                leases.release_check(conn_id, owner)
        return outcome


def _check(rt, conn: m.Connection) -> str:
    m.Connection.update(last_check_at=clock.now()).where(m.Connection.id == conn.id).execute()
    calendar = conn.calendars.order_by(m.Calendar.is_primary.desc(), m.Calendar.id).first()
    if calendar is None:
        return "skipped"
    if conn.provider != "ics":  # a feed's only cheap check is its conditional GET: the sync itself
        try:
            info = rt.provider_for(conn).probe(CalendarState(remote_id=calendar.remote_id, check=True))
            if calendar.is_primary and not info.writable:
                raise WriteForbidden(READ_ONLY_REASON)
        except ProviderError as exc:
            return "changed" if lifecycle.failed(rt, conn, exc, "sweep") else "ok"
        if conn.status == m.ACTIVE and not waiting.is_failing(conn) and not waiting.missed_count(conn):
            lifecycle.succeeded(rt, conn, "sweep")
            return "ok"
    sync_connection(rt, conn, cause="sweep")
    return "resynced"


def sweep(rt, limit: int = 1000, owner: str | None = None) -> dict:
    """One pass of checks in this thread (``--once``); a connection being synced is skipped."""
    owner = owner or leases.owner_id("sweep")
    checked = changed = resynced = 0
    for conn_id in due(rt, limit):
        if not leases.claim(conn_id, owner):
            continue  # a sync holds it right now: that is the check
        checked += 1
        outcome = check_claimed(rt, conn_id, owner)
        changed += outcome == "changed"
        resynced += outcome == "resynced"
    return {"checked": checked, "status_changes": changed, "resynced": resynced}
