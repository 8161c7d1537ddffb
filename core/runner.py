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
import threading
import time

import models as m
from core import clock, leases, prepared, waiting
from core.sync import ConnectionSync, SyncReport, sync_connection
from core.sync import window as sync_window

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


def _load_query(conn_id, since):
    C, S, K = m.Connection, m.Staff, m.Calendar
    return (
        K.select(K, C, S, waiting.waits_on(since).alias("waits"))
        .join(C)
        .join(S)
        .where(K.connection == conn_id)
        .order_by(K.is_primary.desc(), K.is_destination.desc(), K.id)
    )


_LOAD = prepared.Prepared(_load_query)


def _load(rt, conn_id: int) -> tuple[m.Connection, list[m.Calendar] | None, bool | None]:
    """The connection, its staff member, its calendars (destination first) and whether anything
    waits on them (:func:`waiting.waits_on`), in one query."""
    rows = _LOAD.fetch(conn_id=conn_id, since=sync_window(rt.settings)[0])
    if not rows:
        return _with_staff(conn_id), None, None
    conn = rows[0].connection
    for cal in rows:
        cal.connection = conn  # one connection object for all of them
    return conn, rows, not any(cal.waits for cal in rows)


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
        report = job = None
        try:
            read_at = clock.now()
            conn, calendars, nothing_waits = _load(rt, conn_id)
            job = ConnectionSync(rt, conn, calendars=calendars, nothing_waits=nothing_waits, lease_owner=owner, read_at=read_at)
            report = job.run()
        except Exception as exc:
            log.exception("sync of connection %s failed internally", conn_id)
            # An internal fault is not the provider's: the status stays, and the report says which it is.
            status, reason = m.Connection.select(m.Connection.status, m.Connection.reason).where(
                m.Connection.id == conn_id
            ).tuples().first() or ("", "")
            report = SyncReport(connection_id=conn_id, outcome="failed", status=status, reason=reason, error=f"internal error: {exc}")
        finally:
            if job is None or not job.lease_released:
                leases.release(rt, conn_id, owner, ok=report is not None and report.outcome == "ok")
        return report


class _Fixed:
    """Connections already claimed by the caller, handed out one at a time."""

    def __init__(self, conn_ids: list[int]):
        self.todo = list(conn_ids)
        self.lock = threading.Lock()
        self.total: int | None = len(self.todo)

    def next(self) -> int | None:
        with self.lock:
            return self.todo.pop(0) if self.todo else None

    def held(self) -> list[int]:
        with self.lock:
            return list(self.todo)


class _Claiming:
    """Due connections claimed as workers become free, a few at a time (``batch``): several
    schedulers then share one pass by how fast each syncs, not by who claimed everything first."""

    def __init__(self, owner: str, batch: int, limit: int):
        self.owner, self.batch, self.left = owner, max(1, batch), limit
        self.todo: list[int] = []
        self.lock = threading.Lock()
        self.reaped = False
        self.began = clock.now()  # the pass takes what was due when it began (each connection once)
        self.total: int | None = None  # not known before the pass ends

    def next(self) -> int | None:
        with self.lock:
            if not self.todo and self.left > 0:
                # Leases of dead processes of this host are freed once per pass, not per claim.
                self.todo = leases.claim_due(self.owner, min(self.batch, self.left), due_by=self.began, reap=not self.reaped)
                self.reaped = True
                self.left -= len(self.todo)
                if not self.todo:
                    self.left = 0  # nothing is due: this pass is done
            return self.todo.pop(0) if self.todo else None

    def held(self) -> list[int]:
        with self.lock:
            return list(self.todo)


def _run(rt, feed, owner: str, progress=None) -> list[SyncReport]:
    """Sync what ``feed`` hands out on CALSYNC_WORKERS threads; each worker keeps one database
    connection for all its syncs (one per sync cost PostgreSQL ~12 ms of CPU a sync). Leases
    are renewed for the runs within their budget and for what is claimed and not yet started."""
    reports: list[SyncReport] = []
    workers = max(1, rt.settings.workers if feed.total is None else min(rt.settings.workers, feed.total))
    running: dict[int, float] = {}
    lock = threading.Lock()
    limit = rt.settings.sync_budget + 60

    def alive() -> list[int]:
        now = time.monotonic()
        with lock:
            mine = [cid for cid, began in running.items() if now - began < limit]
        return mine + feed.held()

    def record(report: SyncReport) -> None:  # on the calling thread only
        reports.append(report)
        if progress:
            progress(len(reports), feed.total, report)

    def work(done) -> None:
        with _connected():
            while True:
                cid = feed.next()
                if cid is None:
                    return
                with lock:
                    running[cid] = time.monotonic()
                try:
                    report = sync_claimed(rt, cid, owner)
                finally:
                    with lock:
                        running.pop(cid, None)
                done(report)

    with leases.Keeper(owner, alive=alive):
        if workers == 1:
            work(record)
            return reports
        finished: queue.SimpleQueue = queue.SimpleQueue()
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="sync") as pool:
            threads = [pool.submit(work, finished.put) for _ in range(workers)]
            while True:
                try:
                    record(finished.get(timeout=1.0))
                    continue
                except queue.Empty:
                    pass
                failed = next((error for f in threads if f.done() and (error := f.exception()) is not None), None)
                if failed is not None:
                    raise failed
                if all(f.done() for f in threads):
                    while not finished.empty():
                        record(finished.get_nowait())
                    break
    return reports


def run_claimed(rt, conn_ids: list[int], owner: str, progress=None) -> list[SyncReport]:
    """Sync connections this process claimed, on CALSYNC_WORKERS threads, renewing the leases;
    the reports in the order of ``conn_ids``."""
    if not conn_ids:
        return []
    by_id = {r.connection_id: r for r in _run(rt, _Fixed(conn_ids), owner, progress)}
    missing = [c for c in conn_ids if c not in by_id]
    if missing:
        raise RuntimeError(f"the sync workers ended with connections left unsynced: {missing[:10]}")
    return [by_id[c] for c in conn_ids]


def sync_due(rt, progress=None, owner: str | None = None, limit: int = 5_000_000) -> list[SyncReport]:
    """One pass of the scheduler: every connection whose turn it is, each claimed by a worker
    when it is free (at most ``limit``: bounded)."""
    owner = owner or leases.owner_id()
    return _run(rt, _Claiming(owner, rt.settings.workers, limit), owner, progress)
