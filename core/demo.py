"""Demo data: one staff member with a few appointments (and a CalDAV connection when given)."""

from __future__ import annotations

import datetime as dt

import models as m
from core import actions, clock

DEMO_EMAIL = "ada@example.com"
DEMO_APPOINTMENTS = [
    ("demo-intro", 1, 10, 1.0, "Intro call with Grace", "First coaching session."),
    ("demo-review", 2, 14, 1.5, "Quarterly review with Alan", "Bring the goals sheet."),
    ("demo-followup", 5, 9, 0.5, "Follow-up with Katherine", ""),
]


def seed(rt, caldav_url: str | None = None, username: str = "", password: str = "", actor: str = "demo") -> dict:
    log: list[str] = []
    if m.Staff.get_or_none(m.Staff.email == DEMO_EMAIL) is None:
        actions.add_staff(rt, DEMO_EMAIL, "Ada Lovelace", timezone="Europe/Berlin", actor=actor)
        log.append(f"Added staff member Ada Lovelace <{DEMO_EMAIL}> (Europe/Berlin).")
    else:
        log.append(f"Staff member {DEMO_EMAIL} exists already.")
    today = clock.now().astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    for external_id, days, hour, hours, subject, description in DEMO_APPOINTMENTS:
        start = (today + dt.timedelta(days=days)).replace(hour=hour)
        result = actions.upsert_appointment(
            rt, external_id, DEMO_EMAIL, start, start + dt.timedelta(hours=hours), subject, description, source="demo", actor=actor
        )
        log.append(f"Appointment {external_id}: {subject} ({result['change']}).")
    connection = None
    if caldav_url:
        existing = m.Connection.get_or_none(
            (m.Connection.server_url == caldav_url) & (m.Connection.account == username) & (m.Connection.status != m.STOPPED)
        )
        if existing is None:
            connection = actions.connect(rt, DEMO_EMAIL, "caldav", url=caldav_url, username=username, password=password, actor=actor)
            log.append(
                f"Connected CalDAV account {username} at {caldav_url} as connection {connection['id']} (pending until the first sync)."
            )
        else:
            connection = actions.get_connection(rt, existing.id)
            log.append(f"Connection {existing.id} to {caldav_url} exists already.")
    return {"staff": DEMO_EMAIL, "appointments": len(DEMO_APPOINTMENTS), "connection": connection, "log": log}
