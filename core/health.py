"""Connection status from results: every sync, test and sweep is a health signal.

A typed provider error with a status (auth rejected, write forbidden,
calendar gone) changes the status at once and is recorded with the
provider's answer. Transient failures change nothing on their own; only a
failure that has lasted ``unreachable_after`` seconds makes the connection
``unreachable``. Status changes drive incidents (core.incidents).
"""

from __future__ import annotations

import datetime as dt
import logging

import models as m
from core import clock, incidents
from core.messages import meaning
from core.providers.base import CalendarState, ProviderError, WriteForbidden

log = logging.getLogger("calsync.health")


def set_status(rt, conn: m.Connection, new: str, reason: str, cause: str, answer: str = "", delivered: int = 0) -> bool:
    """Move ``conn`` to ``new``; returns True when the status changed."""
    old = conn.status
    changed = old != new
    now = clock.now()
    with m.db.atomic():
        if changed:
            m.StatusChange.create(connection=conn, at=now, old=old, new=new, cause=cause, provider_answer=answer[:4000])
            conn.status_since = now
            log.info("status connection=%s %s -> %s cause=%s reason=%r", conn.id, old, new, cause, reason)
        conn.status = new
        conn.reason = reason
        conn.save()
        if new in m.BROKEN_STATUSES:
            hold_pending_links(conn)
        if changed:
            incidents.on_status(rt, conn, old, new, reason, answer, delivered)
        elif new in m.BROKEN_STATUSES:
            incidents.on_repeat(conn, reason)
    return changed


def hold_pending_links(conn: m.Connection) -> int:
    """Appointments waiting for a broken connection become ``missed``."""
    calendars = m.Calendar.select(m.Calendar.id).where(m.Calendar.connection == conn)
    return (
        m.AppointmentLink.update(state=m.LINK_MISSED, updated_at=clock.now())
        .where(m.AppointmentLink.calendar.in_(calendars), m.AppointmentLink.state == m.LINK_PENDING)
        .execute()
    )


def record_success(rt, conn: m.Connection, cause: str, delivered: int = 0) -> bool:
    now = clock.now()
    conn.failing_since = None
    conn.last_error = ""
    conn.last_success_at = now
    if conn.status != m.ACTIVE:
        return set_status(rt, conn, m.ACTIVE, meaning(m.ACTIVE), cause, delivered=delivered)
    conn.save()
    return False


def record_failure(rt, conn: m.Connection, exc: ProviderError, cause: str) -> bool:
    """Apply a failed sync/test/sweep; returns True when the status changed."""
    now = clock.now()
    conn.last_error = exc.reason
    if exc.status:
        conn.failing_since = None
        return set_status(rt, conn, exc.status, exc.reason, cause, exc.answer)
    if conn.failing_since is None:
        conn.failing_since = now
    failing_for = (now - conn.failing_since).total_seconds()
    if failing_for >= rt.settings.unreachable_after and conn.status not in (m.UNREACHABLE, m.STOPPED):
        hours = failing_for / 3600
        reason = f"the provider has failed for {hours:.1f} hours: {exc.reason}"
        return set_status(rt, conn, m.UNREACHABLE, reason, cause, exc.answer)
    conn.save()
    if conn.status == m.UNREACHABLE:
        incidents.on_repeat(conn, conn.reason)
    log.info("transient failure connection=%s failing_for=%ds reason=%r", conn.id, failing_for, exc.reason)
    return False


def missed_count(conn: m.Connection) -> int:
    return (
        m.AppointmentLink.select()
        .join(m.Calendar)
        .where(m.Calendar.connection == conn, m.AppointmentLink.state == m.LINK_MISSED)
        .count()
    )


def sweep(rt, limit: int = 1000) -> dict:
    """The cheap check between syncs: one request per connection whose check is due.

    A broken credential, a vanished or read-only primary calendar is found
    within ``CALSYNC_SWEEP_INTERVAL``; a broken connection that answers again
    gets a full sync at once, which resolves its incident and delivers what
    it missed.
    """
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
        conn.last_check_at = now
        conn.save()
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
                raise WriteForbidden("the primary calendar is read-only for this account: calsync can read it but not add events")
        except ProviderError as exc:
            changed += record_failure(rt, conn, exc, "sweep")
            continue
        if conn.status != m.ACTIVE:
            resynced += _sweep_sync(rt, conn)
        else:
            record_success(rt, conn, "sweep")
    return {"checked": checked, "status_changes": changed, "resynced": resynced}


def _sweep_sync(rt, conn: m.Connection) -> int:
    from core import leases

    try:
        leases.sync_with_lease(rt, conn, "sweep", wait=0)
        return 1
    except leases.Busy:
        return 0  # a scheduler is syncing it right now: that is the check
