"""Running syncs under leases: the scheduler's pass, `sync` now, and syncs started by a repair.

Whoever syncs a connection claims its lease first (:mod:`core.leases`), keeps
it renewed while the run lasts, and releases it after, so one connection is
never synced twice at once, whichever process asks.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import queue
import time

import models as m
from core import leases
from core.sync import SyncReport, sync_connection

log = logging.getLogger("calsync.runner")

BUSY_WAIT = 10.0  # seconds `sync N` waits for another process's run of the same connection


class Busy(Exception):
    """Another process is syncing this connection right now."""


def holder(conn_id: int) -> str:
    return m.Connection.select(m.Connection.lease_owner).where(m.Connection.id == conn_id).scalar() or "another process"


def claim_waiting(conn_id: int, owner: str, wait: float) -> bool:
    """Claim, waiting up to ``wait`` seconds for a run that holds it to end."""
    deadline = time.monotonic() + wait
    while not leases.claim(conn_id, owner):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


def sync_with_lease(rt, conn: m.Connection, cause: str, wait: float = 15.0) -> SyncReport:
    """Sync outside the scheduler (relink, test, sweep, a new primary) without racing a scheduler."""
    owner = leases.owner_id(cause)
    if not claim_waiting(conn.id, owner, wait):
        raise Busy(f"connection {conn.id} is being synced by {holder(conn.id)}")
    report = None
    try:
        with leases.Keeper(owner, until=time.monotonic() + rt.settings.sync_budget + 60):
            report = sync_connection(rt, _with_staff(conn.id), cause=cause)
        return report
    finally:
        leases.release(rt, conn.id, owner, ok=report is not None and report.outcome == "ok")


def _with_staff(conn_id: int) -> m.Connection:
    """The connection and its staff member in one query (a sync needs the staff member's zone)."""
    return m.Connection.select(m.Connection, m.Staff).join(m.Staff).where(m.Connection.id == conn_id).get()


def _load(conn_id: int) -> tuple[m.Connection, list[m.Calendar] | None]:
    """The connection, its staff member and its calendars (destination first) in one query."""
    C, S, K = m.Connection, m.Staff, m.Calendar
    rows = list(K.select(K, C, S).join(C).join(S).where(K.connection == conn_id).order_by(K.is_destination.desc(), K.id))
    if not rows:
        return _with_staff(conn_id), None
    conn = rows[0].connection
    for cal in rows:
        cal.connection = conn  # one connection object for all of them
    return conn, rows


@contextlib.contextmanager
def _connected():
    """This thread's database connection for the work inside: opened if it is not, and closed
    afterwards only by whoever opened it (a worker keeps one for all its syncs)."""
    opened = m.db.is_closed()
    if opened:
        m.db.connect()
    try:
        yield
    finally:
        if opened and not m.db.is_closed():
            m.db.close()


def sync_claimed(rt, conn_id: int, owner: str) -> SyncReport:
    """Sync one connection this process holds the lease of, then release it."""
    with _connected():
        report = None
        try:
            conn, calendars = _load(conn_id)
            report = sync_connection(rt, conn, calendars=calendars)
        except Exception as exc:
            log.exception("sync of connection %s failed internally", conn_id)
            # An internal fault is not the provider's: the status stays, and the report says which it is.
            status, reason = (m.Connection.select(m.Connection.status, m.Connection.reason)
                              .where(m.Connection.id == conn_id).tuples().first() or ("", ""))
            report = SyncReport(connection_id=conn_id, outcome="failed", status=status, reason=reason,
                                error=f"internal error: {exc}")
        finally:
            leases.release(rt, conn_id, owner, ok=report is not None and report.outcome == "ok")
        return report


def run_claimed(rt, conn_ids: list[int], owner: str, progress=None) -> list[SyncReport]:
    """Sync connections this process claimed, on CALSYNC_WORKERS threads, renewing the leases."""
    if not conn_ids:
        return []
    reports: dict[int, SyncReport] = {}
    workers = max(1, min(rt.settings.workers, len(conn_ids)))
    rounds = -(-len(conn_ids) // workers)
    with leases.Keeper(owner, until=time.monotonic() + rounds * rt.settings.sync_budget + 60):
        if workers == 1:
            for done, cid in enumerate(conn_ids, 1):
                reports[cid] = sync_claimed(rt, cid, owner)
                if progress:
                    progress(done, len(conn_ids), reports[cid])
        else:
            # Each worker takes the next connection from one queue and keeps one database connection
            # for all of them: opening one per sync cost PostgreSQL ~12 ms of CPU a sync.
            todo: queue.SimpleQueue = queue.SimpleQueue()
            for cid in conn_ids:
                todo.put(cid)
            finished: queue.SimpleQueue = queue.SimpleQueue()

            def work() -> None:
                with _connected():
                    while True:
                        try:
                            cid = todo.get_nowait()
                        except queue.Empty:
                            return
                        finished.put((cid, sync_claimed(rt, cid, owner)))

            with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="sync") as pool:
                running = [pool.submit(work) for _ in range(workers)]
                for done in range(1, len(conn_ids) + 1):
                    while True:
                        try:
                            cid, report = finished.get(timeout=1.0)
                            break
                        except queue.Empty:
                            failed = next((f for f in running if f.done() and f.exception() is not None), None)
                            if failed is not None:
                                raise failed.exception()
                            if all(f.done() for f in running) and finished.empty():
                                raise RuntimeError("the sync workers ended with connections left unsynced")
                    reports[cid] = report
                    if progress:
                        progress(done, len(conn_ids), report)
    return [reports[c] for c in conn_ids]


def sync_due(rt, progress=None, owner: str | None = None) -> list[SyncReport]:
    """One pass of the scheduler: claim every connection whose turn it is and sync it."""
    owner = owner or leases.owner_id()
    claimed: list[int] = []
    for _ in range(10_000):  # batches of claims; bounded
        batch = leases.claim_due(owner, 500)
        if not batch:
            break
        claimed += batch
    return run_claimed(rt, claimed, owner, progress)
