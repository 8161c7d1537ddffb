"""Sync now, and the sync feed: what was read from a connection's calendars."""

from __future__ import annotations

import concurrent.futures
import logging

import models as m
from core.actions.common import ActionError, _connection, _iso, audit, audited
from core.sync import SyncReport, sync_connection

log = logging.getLogger("calsync.actions")


@audited("connection.sync")
def sync_now(rt, conn_id=None, actor: str = "", progress=None) -> list[dict]:
    """Sync one connection, or every connection that is not stopped, now.

    A connection that another process is syncing at this moment is not synced
    twice: its report says so (outcome ``busy``).
    """
    if conn_id is not None:
        conns = [_connection(conn_id)]
        if conns[0].status == m.STOPPED:
            raise ActionError("the connection is stopped: connect again to sync it")
    else:
        conns = list(m.Connection.select().where(m.Connection.status != m.STOPPED).order_by(m.Connection.id))
    from core import leases

    owner = leases.owner_id("sync-now")
    claimed = [c.id for c in conns if leases.claim(c.id, owner)]
    reports = {r.connection_id: r for r in run_claimed(rt, claimed, owner, progress)}
    for conn in conns:
        if conn.id not in reports:
            holder = m.Connection.get_by_id(conn.id).lease_owner or "another process"
            reports[conn.id] = SyncReport(connection_id=conn.id, outcome="busy", status=conn.status, reason=conn.reason,
                                          error=f"already being synced by {holder}")
    if actor:
        audit(actor, "connection.sync", conn_id if conn_id is not None else "all")
    return [reports[c.id].to_dict() for c in conns]


def sync_due(rt, progress=None, owner: str | None = None) -> list[dict]:
    """One pass of the scheduler: claim every connection whose turn it is and sync it."""
    from core import leases

    owner = owner or leases.owner_id()
    claimed: list[int] = []
    for _ in range(10_000):  # batches of claims; bounded
        batch = leases.claim_due(owner, 500)
        if not batch:
            break
        claimed += batch
    return [r.to_dict() for r in run_claimed(rt, claimed, owner, progress)]


def sync_claimed(rt, conn_id: int, owner: str) -> SyncReport:
    """Sync one connection this process holds the lease of, then release it."""
    from core import leases

    with m.db.connection_context():
        report = None
        try:
            conn = m.Connection.get_by_id(conn_id)
            report = sync_connection(rt, conn)
        except Exception as exc:
            log.exception("sync of connection %s failed internally", conn_id)
            report = SyncReport(connection_id=conn_id, outcome="failed", error=f"internal error: {exc}")
        finally:
            leases.release(rt, conn_id, owner, ok=report is not None and report.outcome == "ok")
        return report


def run_claimed(rt, conn_ids: list[int], owner: str, progress=None) -> list[SyncReport]:
    if not conn_ids:
        return []
    reports: dict[int, SyncReport] = {}
    workers = max(1, min(rt.settings.workers, len(conn_ids)))
    if workers == 1:
        for done, cid in enumerate(conn_ids, 1):
            reports[cid] = sync_claimed(rt, cid, owner)
            if progress:
                progress(done, len(conn_ids), reports[cid])
    else:
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="sync") as pool:
            futures = {pool.submit(sync_claimed, rt, cid, owner): cid for cid in conn_ids}
            for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
                report = future.result()
                reports[futures[future]] = report
                if progress:
                    progress(done, len(conn_ids), report)
    return [reports[c] for c in conn_ids]


def list_entries(rt, conn_id, not_loaded_only: bool = False) -> list[dict]:
    conn = _connection(conn_id)
    query = (
        m.FeedEntry.select(m.FeedEntry, m.Calendar)
        .join(m.Calendar)
        .where(m.Calendar.connection == conn)
        .order_by(m.FeedEntry.starts_at.asc(nulls="LAST"), m.FeedEntry.id)
    )
    if not_loaded_only:
        query = query.where(m.FeedEntry.loaded == False)  # noqa: E712
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
