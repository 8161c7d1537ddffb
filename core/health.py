"""Connection status from results: every sync, test and sweep is a health signal.

A typed provider error with a status (auth rejected, write forbidden,
calendar gone) changes the status at once and is recorded with the
provider's answer. Transient failures change nothing on their own; only a
failure that has lasted ``unreachable_after`` seconds makes the connection
``unreachable``.
"""

from __future__ import annotations

import logging

import models as m
from core import clock
from core.messages import meaning
from core.providers.base import ProviderError

log = logging.getLogger("calsync.health")


def set_status(conn: m.Connection, new: str, reason: str, cause: str, answer: str = "") -> bool:
    """Move ``conn`` to ``new``; returns True when the status changed."""
    old = conn.status
    changed = old != new
    now = clock.now()
    if changed:
        m.StatusChange.create(connection=conn, at=now, old=old, new=new, cause=cause, provider_answer=answer[:4000])
        conn.status_since = now
        log.info("status connection=%s %s -> %s cause=%s reason=%r", conn.id, old, new, cause, reason)
    conn.status = new
    conn.reason = reason
    conn.save()
    if new in m.BROKEN_STATUSES:
        hold_pending_links(conn)
    return changed


def hold_pending_links(conn: m.Connection) -> int:
    """Appointments waiting for a broken connection become ``missed``."""
    calendars = m.Calendar.select(m.Calendar.id).where(m.Calendar.connection == conn)
    return (
        m.AppointmentLink.update(state=m.LINK_MISSED, updated_at=clock.now())
        .where(m.AppointmentLink.calendar.in_(calendars), m.AppointmentLink.state == m.LINK_PENDING)
        .execute()
    )


def record_success(conn: m.Connection, cause: str) -> bool:
    now = clock.now()
    conn.failing_since = None
    conn.last_error = ""
    conn.last_success_at = now
    if conn.status != m.ACTIVE:
        return set_status(conn, m.ACTIVE, meaning(m.ACTIVE), cause)
    conn.save()
    return False


def record_failure(conn: m.Connection, exc: ProviderError, cause: str, settings) -> bool:
    """Apply a failed sync/test/sweep; returns True when the status changed."""
    now = clock.now()
    conn.last_error = exc.reason
    if exc.status:
        conn.failing_since = None
        return set_status(conn, exc.status, exc.reason, cause, exc.answer)
    if conn.failing_since is None:
        conn.failing_since = now
    failing_for = (now - conn.failing_since).total_seconds()
    if failing_for >= settings.unreachable_after and conn.status not in (m.UNREACHABLE, m.STOPPED):
        hours = failing_for / 3600
        reason = f"the provider has failed for {hours:.1f} hours: {exc.reason}"
        return set_status(conn, m.UNREACHABLE, reason, cause, exc.answer)
    conn.save()
    log.info("transient failure connection=%s failing_for=%ds reason=%r", conn.id, failing_for, exc.reason)
    return False


def missed_count(conn: m.Connection) -> int:
    return (
        m.AppointmentLink.select()
        .join(m.Calendar)
        .where(m.Calendar.connection == conn, m.AppointmentLink.state == m.LINK_MISSED)
        .count()
    )
