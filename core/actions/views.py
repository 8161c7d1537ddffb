"""Models as the plain data every adapter shows (dicts that serialise to JSON)."""

from __future__ import annotations

import models as m
from core import health
from core.actions.common import _iso
from core.messages import STATUS_ADVICE, meaning


def staff_dict(staff: m.Staff) -> dict:
    return {
        "id": staff.id,
        "email": staff.email,
        "name": staff.name,
        "slack_id": staff.slack_id,
        "timezone": staff.timezone,
        "connections": staff.connections.count(),
    }


def _same_account(conn: m.Connection):
    return m.Connection.select().where(
        m.Connection.provider == conn.provider,
        m.Connection.server_url == conn.server_url,
        m.Connection.account == conn.account,
        m.Connection.status != m.STOPPED,
        m.Connection.id != conn.id,
    )


def connection_flags(conn: m.Connection) -> list[str]:
    flags = []
    others = list(_same_account(conn))
    if any(o.staff_id == conn.staff_id for o in others):
        flags.append("duplicate")
    if any(o.staff_id != conn.staff_id for o in others):
        flags.append("shared")
    return flags


def connection_dict(conn: m.Connection, with_calendars: bool = True, missed: int | None = None) -> dict:
    data = {
        "id": conn.id,
        "staff": conn.staff.email,
        "provider": conn.provider,
        "account": conn.account,
        "status": conn.status,
        "reason": conn.reason or meaning(conn.status),
        "since": _iso(conn.status_since),
        "last_sync_at": _iso(conn.last_sync_at),
        "last_check_at": _iso(conn.last_check_at),
        "missed": health.missed_count(conn) if missed is None else missed,
        "meaning": meaning(conn.status),
        "advice": STATUS_ADVICE.get(conn.status, ""),
        "last_error": conn.last_error,
        "last_success_at": _iso(conn.last_success_at),
        "server": conn.server_url,
        "flags": connection_flags(conn) if with_calendars else [],
    }
    if with_calendars:
        data["calendars"] = [calendar_dict(c) for c in conn.calendars.order_by(m.Calendar.id)]
        data["destination"] = next((c["name"] for c in data["calendars"] if c["destination"]), None)
    return data


def calendar_dict(cal: m.Calendar) -> dict:
    return {
        "id": cal.id,
        "name": cal.name,
        "destination": cal.is_destination,
        "busy_source": cal.is_busy_source,
        "writable": cal.writable,
        "last_synced_at": _iso(cal.last_synced_at),
    }


def appointment_dict(a: m.Appointment) -> dict:
    return {
        "id": a.external_id,
        "staff": a.staff.email,
        "uid": a.uid,
        "start": _iso(a.starts_at),
        "end": _iso(a.ends_at),
        "subject": a.subject,
        "description": a.description,
        "location": a.location,
        "cancelled": a.cancelled,
        "cancel_reason": a.cancel_reason,
        "version": a.version,
    }
