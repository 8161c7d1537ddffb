"""An extra write calendar's trouble (issue 18), owned here: the one place its ``problem`` is set or
cleared by what the provider answered, and so the one place its staff member is told.

An extra write calendar that is deleted or turns read-only does not break the connection (the primary
syncs on), so no incident opens; but what it was to get waits as missed, and the staff member hears
of it at once ("calendar.trouble", on e-mail and Slack like an incident) and again when it takes
appointments again ("calendar.recovered", with how many were written). Told once per change: a run
that sees the same problem again says nothing.
"""

from __future__ import annotations

import logging

import models as m
from core import clock, outbox, wording

log = logging.getLogger("calsync.sync")

PROBLEM_WORDS = {
    m.CALENDAR_MISSING: "was deleted (or can no longer be found)",
    m.READ_ONLY: "became read-only for this account",
}


def _missed_here(cal: m.Calendar) -> int:
    return m.AppointmentLink.select().where(m.AppointmentLink.calendar == cal, m.AppointmentLink.state == m.LINK_MISSED).count()


def broke(rt, cal: m.Calendar, problem: str) -> int:
    """The extra write calendar is gone or read-only: what it was about to get waits as missed, and when
    it is gone the upcoming appointments that were on it wait too (gone with it). Returns how many."""
    now = clock.now()
    before = cal.problem
    cal.problem = problem
    cal.save()
    held = (
        m.AppointmentLink.update(state=m.LINK_MISSED, updated_at=now)
        .where(m.AppointmentLink.calendar == cal, m.AppointmentLink.state == m.LINK_PENDING)
        .execute()
    )
    if problem == m.CALENDAR_MISSING:
        upcoming = m.Appointment.select(m.Appointment.id).where(m.Appointment.cancelled == False, m.Appointment.ends_at >= now)
        held += (
            m.AppointmentLink.update(state=m.LINK_MISSED, href="", etag="", pushed_version=0, updated_at=now)
            .where(m.AppointmentLink.calendar == cal, m.AppointmentLink.state == m.LINK_SYNCED, m.AppointmentLink.appointment.in_(upcoming))
            .execute()
        )
    if before != problem:
        log.warning("extra calendar %s of connection %s: %s; its appointments wait", cal.id, cal.connection_id, problem)
        _tell(rt, cal, "calendar.trouble", problem=problem)
    return held


def fixed(rt, cal: m.Calendar) -> int:
    """The extra write calendar answers and takes writes again: what waited on it is written by this run
    (the staff member is told how many it was)."""
    if not cal.problem:
        return 0
    before = cal.problem
    cal.problem = ""
    cal.save()
    released = (
        m.AppointmentLink.update(state=m.LINK_PENDING, updated_at=clock.now())
        .where(m.AppointmentLink.calendar == cal, m.AppointmentLink.state == m.LINK_MISSED)
        .execute()
    )
    _tell(rt, cal, "calendar.recovered", problem=before, released=released)
    return released


def _tell(rt, cal: m.Calendar, event: str, *, problem: str, released: int = 0) -> None:
    conn = cal.connection
    missed = _missed_here(cal)
    name = cal.name or "a calendar"
    if event == "calendar.trouble":
        waits = f" — {wording.waiting_phrase(missed)}" if missed else ""
        headline = f"Your calendar {name!r} cannot take appointments{waits}"
        words = (
            f"Your calendar {name!r} {PROBLEM_WORDS.get(problem, problem)}. Your other calendars sync as before; "
            f"the appointments for {name!r} wait and are added as soon as it works again."
        )
        todo = (
            "Restore it (or give this account write access again) at your calendar provider, or stop writing "
            "appointments to it: /calsync calendars in Slack, or support's console."
        )
    else:
        headline = f"Your calendar {name!r} takes appointments again"
        words = f"Your calendar {name!r} works again" + (
            f": the {released} appointment(s) that waited for it are being added now." if released else "."
        )
        todo = ""
    payload = outbox.payload_for(
        rt,
        conn,
        calendar=name,
        calendar_id=cal.id,
        calendar_problem=problem,
        headline=headline,
        problem=words,
        todo=todo,
        since=clock.now().isoformat(),
        missed=missed,
        released=released,
    )
    if event == "calendar.recovered":
        payload["waiting"] = []
    outbox.notify(rt, event, f"{event}:{cal.id}:{clock.now().isoformat()}", payload, connection=conn, staff=conn.staff)
