"""Incidents: one per break of a connection, never one per failed run.

:mod:`core.lifecycle` opens one when a connection enters a broken status
(with an ``incident.opened`` notification carrying the live relink link) and
resolves it when the connection is ``active`` again. The "reconnected"
notification waits until the appointments that waited are written
(:func:`settle`), so "N delivered" is true whatever brought the connection
back. ``check`` (run by the scheduler) sends reminders at most once per
``CALSYNC_REMINDER_INTERVAL`` with the same live link, escalates incidents
open longer than ``CALSYNC_ESCALATE_AFTER`` and connections pending longer
than ``CALSYNC_PENDING_ESCALATE_AFTER`` to support.
"""

from __future__ import annotations

import datetime as dt
import logging

import models as m
from core import clock, outbox, relink

log = logging.getLogger("calsync.incidents")

PENDING_KIND = "pending"


def open_incident(conn: m.Connection) -> m.Incident | None:
    return m.Incident.select().where(m.Incident.connection == conn, m.Incident.resolved_at.is_null()).order_by(m.Incident.id.desc()).first()


def _notify_open(rt, conn: m.Connection, incident: m.Incident, event: str, key: str) -> None:
    # Every broken status has a page that fixes it (new credentials, a new primary
    # calendar, a test), and every message of one incident carries the same link.
    relink_url, link = relink.live_or_new(rt, conn)
    payload = outbox.payload_for(
        rt, conn, incident=incident.id, opened_at=incident.opened_at.isoformat(), link_expires_at=link.expires_at.isoformat()
    )
    outbox.notify(rt, event, key, payload, incident=incident, connection=conn, staff=conn.staff, relink_url=relink_url)


def opened(rt, conn: m.Connection, kind: str, reason: str, answer: str) -> m.Incident | None:
    """The connection entered the broken status ``kind``: one incident, one alert on every channel."""
    current = open_incident(conn)
    if current is not None and current.kind == kind:
        return current
    if current is not None:
        _close(current, f"became {kind}")
    settle(rt, conn, force=True)  # an earlier repair still delivering: say what it delivered before the new alert
    now = clock.now()
    incident = m.Incident.create(connection=conn, kind=kind, reason=reason, provider_answer=answer[:4000], opened_at=now, last_seen_at=now)
    log.info("incident %s opened: connection=%s kind=%s", incident.id, conn.id, kind)
    _notify_open(rt, conn, incident, "incident.opened", f"incident:{incident.id}:opened")
    return incident


def repeat(conn: m.Connection, reason: str) -> None:
    """The same break seen again: the open incident is updated, nobody is told twice."""
    m.Incident.update(last_seen_at=clock.now(), failures=m.Incident.failures + 1, reason=reason).where(
        m.Incident.connection == conn, m.Incident.resolved_at.is_null()
    ).execute()


def resolved(rt, conn: m.Connection, resolution: str) -> m.Incident | None:
    """The break is over; a real break (not a slow first sync) is told "reconnected" by :func:`settle`."""
    current = open_incident(conn)
    if current is None:
        return None
    if current.kind == PENDING_KIND and resolution == "reconnected":
        resolution = "first sync finished"
    _close(current, resolution)
    if resolution == "reconnected" and current.kind != PENDING_KIND:
        current.delivery_open = True
        current.save()
        settle(rt, conn)
    return current


def _close(incident: m.Incident, resolution: str) -> None:
    incident.resolved_at = clock.now()
    incident.resolution = resolution
    incident.save()


def settle(rt, conn: m.Connection, force: bool = False) -> int:
    """Write "reconnected — N delivered" for each repaired incident whose waiting appointments
    are written (or failed on their own); ``force``: now, whatever is still being written."""
    told = 0
    for incident in m.Incident.select().where(m.Incident.connection == conn, m.Incident.delivery_open == True):
        released = m.AppointmentLink.select().where(m.AppointmentLink.released_by == incident.id)
        still_writing = released.where(m.AppointmentLink.state == m.LINK_PENDING, m.AppointmentLink.last_error == "").exists()
        if still_writing and not force:
            continue
        delivered = released.where(m.AppointmentLink.state == m.LINK_SYNCED).count()
        incident.delivery_open = False
        incident.missed_delivered = delivered
        incident.save()
        payload = outbox.payload_for(
            rt, conn, incident=incident.id, delivered=delivered, resolved_at=incident.resolved_at.isoformat(), broken_status=incident.kind
        )
        outbox.notify(
            rt, "incident.resolved", f"incident:{incident.id}:resolved", payload, incident=incident, connection=conn, staff=conn.staff
        )
        log.info("incident %s resolved: connection=%s delivered=%d", incident.id, conn.id, delivered)
        told += 1
    return told


def delivered_since_repair(conn_id: int) -> int:
    """How many appointments that waited through the last break are on the calendar now."""
    incident = (
        m.Incident.select(m.Incident.id)
        .where(m.Incident.connection == conn_id, m.Incident.resolved_at.is_null(False), m.Incident.kind != PENDING_KIND)
        .order_by(m.Incident.id.desc())
        .scalar()
    )
    if incident is None:
        return 0
    # Appointments, not links: one written to the primary and to an extra write calendar is one.
    return (
        m.AppointmentLink.select(m.AppointmentLink.appointment)
        .where(m.AppointmentLink.released_by == incident, m.AppointmentLink.state == m.LINK_SYNCED)
        .distinct()
        .count()
    )


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
            outbox.notify(
                rt,
                "incident.escalated",
                f"incident:{incident.id}:escalated",
                outbox.payload_for(rt, conn, incident=incident.id, opened_at=incident.opened_at.isoformat()),
                incident=incident,
                connection=conn,
                staff=conn.staff,
            )
            escalated += 1
    stale = m.Connection.select().where(
        m.Connection.status == m.PENDING,
        m.Connection.status_since <= now - dt.timedelta(seconds=s.pending_escalate_after),
    )
    for conn in stale:
        if m.Incident.select().where(m.Incident.connection == conn, m.Incident.kind == PENDING_KIND).exists():
            continue
        incident = m.Incident.create(
            connection=conn, kind=PENDING_KIND, reason="the first sync has not finished", opened_at=now, last_seen_at=now, escalated_at=now
        )
        outbox.notify(
            rt,
            "incident.escalated",
            f"incident:{incident.id}:escalated",
            outbox.payload_for(rt, conn, incident=incident.id, pending_since=conn.status_since.isoformat()),
            incident=incident,
            connection=conn,
            staff=conn.staff,
        )
        escalated += 1
    return {"reminders": reminded, "escalations": escalated}
