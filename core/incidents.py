"""Incidents: one per break of a connection, never one per failed run.

Entering a broken status opens an incident and writes an ``incident.opened``
notification (with a fresh relink link when new credentials are the fix);
more failures of the same break only update it; ``active`` resolves it with
the count of missed appointments delivered. ``check`` (run by the scheduler)
sends reminders at most once per ``CALSYNC_REMINDER_INTERVAL``, escalates
incidents open longer than ``CALSYNC_ESCALATE_AFTER`` and connections pending
longer than ``CALSYNC_PENDING_ESCALATE_AFTER`` to support.
"""

from __future__ import annotations

import datetime as dt
import logging

import models as m
from core import clock, outbox, relink

log = logging.getLogger("calsync.incidents")

PENDING_KIND = "pending"


def open_incident(conn: m.Connection) -> m.Incident | None:
    return (
        m.Incident.select()
        .where(m.Incident.connection == conn, m.Incident.resolved_at.is_null())
        .order_by(m.Incident.id.desc())
        .first()
    )


def _notify_open(rt, conn: m.Connection, incident: m.Incident, event: str, key: str) -> None:
    relink_url, extra = "", {}
    if incident.kind == m.RELINK_REQUIRED:
        relink_url, link = relink.issue(rt, conn, issued_by="calsync", via="notification")
        extra["link_expires_at"] = link.expires_at.isoformat()
    payload = outbox.payload_for(rt, conn, incident=incident.id, opened_at=incident.opened_at.isoformat(), **extra)
    outbox.notify(rt, event, key, payload, incident=incident, connection=conn, staff=conn.staff, relink_url=relink_url)


def on_status(rt, conn: m.Connection, old: str, new: str, reason: str, answer: str, delivered: int = 0) -> None:
    """Called by health.set_status on every status change."""
    now = clock.now()
    current = open_incident(conn)
    if new in m.BROKEN_STATUSES:
        if current is not None and current.kind == new:
            return
        if current is not None:
            _resolve(current, f"became {new}")
        incident = m.Incident.create(connection=conn, kind=new, reason=reason, provider_answer=answer[:4000], opened_at=now, last_seen_at=now)
        log.info("incident %s opened: connection=%s kind=%s", incident.id, conn.id, new)
        _notify_open(rt, conn, incident, "incident.opened", f"incident:{incident.id}:opened")
        return
    if current is None:
        return
    if new == m.ACTIVE and current.kind != PENDING_KIND:
        _resolve(current, "reconnected", delivered)
        payload = outbox.payload_for(rt, conn, incident=current.id, delivered=delivered, resolved_at=now.isoformat(),
                                     broken_status=current.kind)
        outbox.notify(rt, "incident.resolved", f"incident:{current.id}:resolved", payload,
                      incident=current, connection=conn, staff=conn.staff)
        log.info("incident %s resolved: connection=%s delivered=%d", current.id, conn.id, delivered)
    else:
        _resolve(current, "sync stopped" if new == m.STOPPED else f"became {new}", delivered)


def on_repeat(conn: m.Connection, reason: str) -> None:
    """The same break seen again: the open incident is updated, nobody is told twice."""
    m.Incident.update(last_seen_at=clock.now(), failures=m.Incident.failures + 1, reason=reason).where(
        m.Incident.connection == conn, m.Incident.resolved_at.is_null()
    ).execute()


def _resolve(incident: m.Incident, resolution: str, delivered: int = 0) -> None:
    incident.resolved_at = clock.now()
    incident.resolution = resolution
    incident.missed_delivered = delivered
    incident.save()


def check(rt) -> dict:
    """Reminders and escalations that are due; returns what was written."""
    s = rt.settings
    now = clock.now()
    reminded = escalated = 0
    for incident in m.Incident.select().where(m.Incident.resolved_at.is_null(), m.Incident.kind != PENDING_KIND):
        conn = incident.connection
        last = incident.last_reminded_at or incident.opened_at
        if (now - last).total_seconds() >= s.reminder_interval:
            incident.reminders += 1
            incident.last_reminded_at = now
            incident.save()
            _notify_open(rt, conn, incident, "incident.reminder", f"incident:{incident.id}:reminder:{incident.reminders}")
            reminded += 1
        if incident.escalated_at is None and (now - incident.opened_at).total_seconds() >= s.escalate_after:
            incident.escalated_at = now
            incident.save()
            outbox.notify(rt, "incident.escalated", f"incident:{incident.id}:escalated",
                          outbox.payload_for(rt, conn, incident=incident.id, opened_at=incident.opened_at.isoformat()),
                          incident=incident, connection=conn, staff=conn.staff)
            escalated += 1
    stale = m.Connection.select().where(
        m.Connection.status == m.PENDING,
        m.Connection.status_since <= now - dt.timedelta(seconds=s.pending_escalate_after),
    )
    for conn in stale:
        if m.Incident.select().where(m.Incident.connection == conn, m.Incident.kind == PENDING_KIND).exists():
            continue
        incident = m.Incident.create(connection=conn, kind=PENDING_KIND, reason="the first sync has not finished",
                                     opened_at=now, last_seen_at=now, escalated_at=now)
        outbox.notify(rt, "incident.escalated", f"incident:{incident.id}:escalated",
                      outbox.payload_for(rt, conn, incident=incident.id, pending_since=conn.status_since.isoformat()),
                      incident=incident, connection=conn, staff=conn.staff)
        escalated += 1
    return {"reminders": reminded, "escalations": escalated}
