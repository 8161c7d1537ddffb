"""Sync now, and the sync feed: what was read from a connection's calendars."""

from __future__ import annotations

import models as m
from core import leases, runner
from core.actions.common import ActionError, _connection, _iso, audit, audited
from core.sync import SyncReport


@audited("connection.sync")
def sync_now(rt, conn_id=None, actor: str = "", progress=None, wait: float = runner.BUSY_WAIT) -> list[dict]:
    """Sync one connection, or every connection that is not stopped, now.

    A connection that another process is syncing at this moment is not synced
    twice: ``sync N`` waits up to ``wait`` seconds for that run to end, then its
    report says so (outcome ``busy``, naming who holds it).
    """
    if conn_id is not None:
        conns = [_connection(conn_id)]
        if conns[0].status == m.STOPPED:
            raise ActionError("the connection is stopped: connect again to sync it")
    else:
        conns = list(m.Connection.select().where(m.Connection.status != m.STOPPED).order_by(m.Connection.id))
    owner = leases.owner_id("sync-now")
    if conn_id is not None:
        claimed = [conns[0].id] if runner.claim_waiting(conns[0].id, owner, wait) else []
    else:
        claimed = [c.id for c in conns if leases.claim(c.id, owner)]
    reports = {r.connection_id: r for r in runner.run_claimed(rt, claimed, owner, progress)}
    for conn in conns:
        if conn.id not in reports:
            reports[conn.id] = SyncReport(
                connection_id=conn.id,
                outcome="busy",
                status=conn.status,
                reason=conn.reason,
                error=f"already being synced by {runner.holder(conn.id)}",
            )
    done = [reports[c.id].to_dict() for c in conns]
    if actor:
        detail, failed = sync_summary(done)
        audit(actor, "connection.sync", conn_id if conn_id is not None else "all", detail, result="failed" if failed else "ok")
    return done


def sync_summary(reports: list[dict]) -> tuple[str, int]:
    """('3 synced, 1 failed, 1 busy', how many did not sync cleanly) for a list of sync reports.

    One connection: the failure itself ('failed: the CalDAV server rejected the password')."""
    counts: dict[str, int] = {}
    for r in reports:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    not_clean = sum(n for outcome, n in counts.items() if outcome != "ok")
    if len(reports) == 1:
        r = reports[0]
        if r["outcome"] == "ok":
            return "synced", 0
        return f"{r['outcome']}: {r.get('error') or r.get('reason') or r.get('status')}", not_clean
    words = {"ok": "synced"}
    parts = [f"{counts[o]} {words.get(o, o)}" for o in ("ok", *sorted(set(counts) - {"ok"})) if counts.get(o)]
    return ", ".join(parts) or "nothing to sync", not_clean


def list_entries(rt, conn_id, not_loaded_only: bool = False) -> list[dict]:
    conn = _connection(conn_id)
    query = (
        m.FeedEntry.select(m.FeedEntry, m.Calendar)
        .join(m.Calendar)
        .where(m.Calendar.connection == conn)
        .order_by(m.FeedEntry.starts_at.asc(nulls="LAST"), m.FeedEntry.id)
    )
    if not_loaded_only:
        query = query.where(m.FeedEntry.loaded == False)
    return [
        {
            "id": e.id,
            "calendar": e.calendar.name,
            "starts_at": _iso(e.starts_at),
            "ends_at": _iso(e.ends_at),
            "subject": e.subject,
            "loaded": e.loaded,
            "info": e.info,
            "uid": e.uid,
        }
        for e in query
    ]
