"""The record of sync runs: one SyncRun row per run that did something, one per stretch of
no-change runs.

A connection polled every 15 minutes and never changed would write 96 rows a day; at a
million connections that is the first thing the database cannot keep up with. So a
no-change run only counts itself into the connection's open stretch (``quiet_runs``,
``quiet_since``, ``quiet_requests``, ``quiet_ms``, in the one UPDATE its success already
writes: :func:`core.lifecycle.succeeded_quietly`), and the next run that reads, writes or
fails first closes the stretch into one row with ``runs`` = its count (:func:`open_run`).
Every view of the runs shows the open stretch first (:func:`open_stretch`).
"""

from __future__ import annotations

import peewee as pw

import models as m


def stretch_columns(run_started, requests, duration_ms) -> dict:
    """What a no-change run begun at ``run_started`` adds to its connection's open stretch
    (columns for an UPDATE)."""
    C = m.Connection
    return {
        C.quiet_runs: C.quiet_runs + 1,
        C.quiet_since: pw.fn.COALESCE(C.quiet_since, C.quiet_since.db_value(run_started)),
        C.quiet_requests: C.quiet_requests + requests,
        C.quiet_ms: C.quiet_ms + duration_ms,
    }


def _stretch(conn_id: int) -> dict | None:
    """The connection's open stretch of no-change runs, or None."""
    C = m.Connection
    row = (
        C.select(C.quiet_runs, C.quiet_since, C.quiet_at, C.quiet_requests, C.quiet_ms)
        .where(C.id == conn_id, C.quiet_runs > 0)
        .tuples()
        .first()
    )
    if row is None:
        return None
    runs, since, until, requests, ms = row
    return {"started_at": since or until, "finished_at": until, "duration_ms": ms, "requests": requests, "runs": runs}


def close_stretch(conn_id: int) -> int:
    """Write the connection's open stretch of no-change runs as one SyncRun row and empty it;
    returns how many runs it held (0: there was none)."""
    with m.db.atomic():
        stretch = _stretch(conn_id)
        if stretch is None:
            return 0
        m.SyncRun.insert(connection=conn_id, outcome="ok", **stretch).execute()
        m.Connection.update(quiet_runs=0, quiet_since=None, quiet_requests=0, quiet_ms=0).where(m.Connection.id == conn_id).execute()
    return stretch["runs"]


def open_run(conn: m.Connection, started_at) -> m.SyncRun:
    """The row of a run that reads, writes or fails; the open stretch before it is written first,
    so the rows stay in the order the runs happened."""
    close_stretch(conn.id)
    return m.SyncRun.create(connection=conn, started_at=started_at)


def open_stretch(conn: m.Connection) -> dict | None:
    """The open stretch as a run of the views (``runs`` no-change runs, outcome ok), or None."""
    stretch = _stretch(conn.id)
    return (
        None
        if stretch is None
        else {"created": 0, "updated": 0, "deleted": 0, "entries_read": 0, "applied_back": 0, "outcome": "ok", "error": "", **stretch}
    )


def counted_runs() -> dict[str, int]:
    """Runs by outcome, a stretch counted as its runs (the open ones too): the metrics' counter."""
    R = m.SyncRun
    counts: dict[str, int] = dict(m.tuples(R.select(R.outcome, pw.fn.SUM(R.runs)).group_by(R.outcome)))
    open_quiet = m.Connection.select(pw.fn.SUM(m.Connection.quiet_runs)).scalar() or 0
    if open_quiet:
        counts["ok"] = counts.get("ok", 0) + open_quiet
    return {outcome: int(count or 0) for outcome, count in counts.items()}
