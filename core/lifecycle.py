"""The connection lifecycle: the one place a connection's status changes, with all its effects.

Whatever found it out — a sync, ``test``, the health sweep, the relink page,
an OAuth callback, a new primary calendar, stop, a support action — the
adapters and the engine report a *result* here (:func:`succeeded`,
:func:`failed`, :func:`stopped`, :func:`begin`), and this module decides the
status and does what the SPEC ties to it:

- every change is recorded (time, cause, the provider's raw answer);
- a failure of any kind holds what was about to be written as ``missed``
  (counted at once, transient failures included), and the connection shows it
  is failing (``failing_since``, ``failures_in_row``, ``last_error``) before
  it is ``unreachable``;
- entering a broken status opens one incident and alerts every configured
  channel (:mod:`core.incidents`, :mod:`core.outbox`);
- any success releases what waited (this run writes it, or the next pass does
  at once: :func:`request_sync`); back to ``active`` resolves the incident,
  and "reconnected — N delivered" is sent once those appointments are written.

No other module assigns ``Connection.status``; a test reads the source to hold
that line.
"""

from __future__ import annotations

import datetime as dt
import logging

import peewee as pw

import models as m
from core import clock, incidents, leases, prepared, sync_runs, waiting, wording
from core.messages import meaning

log = logging.getLogger("calsync.lifecycle")

MAX_ANSWER = 4000


def begin(conn: m.Connection, cause: str = "connect") -> None:
    """A connection just made (or saved for the first time): ``pending`` until its first sync."""
    now = clock.now()
    with m.db.atomic():
        conn.status, conn.reason, conn.status_since = m.PENDING, meaning(m.PENDING), now
        conn.next_sync_at = now
        conn.save()
        m.StatusChange.create(connection=conn, at=now, old="", new=m.PENDING, cause=cause)


def _incident_id(conn: m.Connection) -> int | None:
    incident = incidents.open_incident(conn)
    return incident.id if incident is not None and incident.kind != incidents.PENDING_KIND else None


def before_push(rt, conn: m.Connection) -> int:
    """A run read every calendar without a failure: what waited is written by this run."""
    return waiting.release(conn, _incident_id(conn))


def succeeded(rt, conn: m.Connection, cause: str) -> bool:
    """A run, test or check worked; returns True when the status changed (to ``active``)."""
    if conn.status == m.STOPPED:
        return False
    with m.db.atomic():
        released = waiting.release(conn, _incident_id(conn))
        conn.failing_since = None
        conn.last_error = ""
        conn.last_success_at = clock.now()
        conn.failures_in_row = 0
        changed = False
        if conn.status != m.ACTIVE:
            changed = _move(rt, conn, m.ACTIVE, meaning(m.ACTIVE), cause)
        else:
            conn.save()
        if released:
            request_sync(conn)  # not written by this call: the next pass writes them at once
        incidents.settle(rt, conn)
    return changed


def _quiet_success(conn_id, run_started, now, owner, next_at, requests, duration_ms):
    C = m.Connection
    columns = {
        **sync_runs.stretch_columns(run_started, requests, duration_ms),
        C.last_sync_at: run_started,
        C.last_success_at: now,
        C.quiet_at: now,
        # A sync asked for after the run began stays asked for.
        C.sync_requested_at: pw.Case(None, [(C.sync_requested_at <= C.sync_requested_at.db_value(run_started), None)], C.sync_requested_at),
    }
    if owner is not None:
        columns.update(leases.giving_back(owner, now, next_at))
    return C.update(columns).where(C.id == conn_id)


_QUIET_SUCCESS = prepared.Prepared(_quiet_success)


def succeeded_quietly(
    rt, conn: m.Connection, run_started, lease_owner: str | None = None, *, requests: int = 0, duration_ms: int = 0
) -> None:
    """A run of an active, healthy connection that found nothing to do (:func:`waiting.nothing_to_do`):
    what :func:`succeeded` would write, in one statement: the time every calendar was last seen
    unchanged (``quiet_at``), the run counted into the open stretch of no-change runs
    (:mod:`core.sync_runs`: no SyncRun row of its own) and, when the run holds the lease as
    ``lease_owner``, the lease given back (:func:`leases.giving_back`)."""
    now = clock.now()
    next_at = leases.next_due(rt, ok=True) if lease_owner is not None else None
    _QUIET_SUCCESS.execute(
        conn_id=conn.id, run_started=run_started, now=now, owner=lease_owner, next_at=next_at, requests=requests, duration_ms=duration_ms
    )
    conn.last_sync_at, conn.last_success_at, conn.quiet_at = run_started, now, now


def failed(rt, conn: m.Connection, exc, cause: str) -> bool:
    """A run, test or check failed with a provider error; returns True when the status changed."""
    if conn.status == m.STOPPED:
        return False
    now = clock.now()
    with m.db.atomic():
        conn.last_error = exc.reason[:MAX_ANSWER]
        conn.failures_in_row += 1
        if conn.failing_since is None:
            conn.failing_since = now
        waiting.hold(conn)
        if exc.status:
            return _move(rt, conn, exc.status, exc.reason, cause, exc.answer)
        failing_for = (now - conn.failing_since).total_seconds()
        # A connection already broken in a way the staff member can fix stays so: that is what they must do.
        if failing_for >= rt.settings.unreachable_after and conn.status in (m.ACTIVE, m.PENDING):
            reason = f"the provider has not answered for {wording.duration(failing_for)}: {exc.reason}"
            return _move(rt, conn, m.UNREACHABLE, reason, cause, exc.answer)
        conn.save()
        if conn.status in m.BROKEN_STATUSES:
            incidents.repeat(conn, conn.reason)
    log.info("transient failure connection=%s failing_for=%ds reason=%r", conn.id, failing_for, exc.reason)
    return False


def stopped(rt, conn: m.Connection, by: str) -> None:
    """Sync stopped (credentials forgotten by the caller); ``by`` says who, in words."""
    conn.failing_since = None
    _move(rt, conn, m.STOPPED, f"sync stopped by {by}", "stop")


def request_sync(conn: m.Connection, settle: bool = False) -> None:
    """Sync this connection on the next pass, even if a run holds it right now. ``settle``: one
    of a burst (push notifications): due leases.SETTLE seconds after the first at the latest,
    and started by this process's scheduler once the burst is over (leases.settle)."""
    now = clock.now()
    C = m.Connection
    due: dt.datetime | pw.Case = now
    if settle:
        latest = now + dt.timedelta(seconds=leases.SETTLE)
        due = pw.Case(None, [((C.next_sync_at.is_null()) | (C.next_sync_at > latest), C.next_sync_at.db_value(latest))], C.next_sync_at)
    C.update({C.sync_requested_at: now, C.next_sync_at: due}).where(C.id == conn.id).execute()
    leases.nudge()


def _move(rt, conn: m.Connection, new: str, reason: str, cause: str, answer: str = "") -> bool:
    """The only assignment of a connection's status, and every effect of a change."""
    old = conn.status
    changed = old != new
    now = clock.now()
    with m.db.atomic():
        if changed:
            m.StatusChange.create(connection=conn, at=now, old=old, new=new, cause=cause, provider_answer=answer[:MAX_ANSWER])
            conn.status_since = now
            log.info("status connection=%s %s -> %s cause=%s reason=%r", conn.id, old, new, cause, reason)
        conn.status = new
        conn.reason = reason
        conn.save()
        if new in m.BROKEN_STATUSES:
            waiting.hold(conn)
            if new == m.CALENDAR_MISSING:
                waiting.hold_lost(conn)
            if changed:
                incidents.opened(rt, conn, new, reason, answer)
            else:
                incidents.repeat(conn, reason)
        elif changed and new == m.ACTIVE:
            incidents.resolved(rt, conn, "reconnected")
        elif changed and new == m.STOPPED:
            incidents.resolved(rt, conn, "sync stopped")
    return changed
