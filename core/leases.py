"""Who syncs which connection now: leases, so one connection is never synced twice at once.

Any number of schedulers (and the CLI's `sync`) claim a connection before
syncing it and release it after; a claim is a conditional UPDATE, atomic on
SQLite and PostgreSQL alike. On PostgreSQL the due connections are picked
with ``FOR UPDATE SKIP LOCKED`` so schedulers do not queue behind each other.

A lease names its owner (``role@host:pid``). While its owner lives, a
:class:`Keeper` thread renews it, so a long sync never loses it; when the
owner is a process of this host that is gone (``kill -9``), the lease is
taken at once; an owner on another host that died loses it when it expires
(``CALSYNC_LEASE_TTL``, 10 minutes).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import socket
import threading
import time
from pathlib import Path
from typing import Self

import peewee as pw

import models as m
from core import clock, prepared

log = logging.getLogger("calsync.leases")

LEASE_TTL = dt.timedelta(minutes=10)  # default; CALSYNC_LEASE_TTL sets it (configure() at start-up)
FIRST_RETRY = 60  # seconds; doubled per failure in a row, up to the sync interval

# Set when a sync is asked for in this process (a push notification, a repair): a scheduler
# loop in the same process claims it as soon as the requests settle, not at its next tick.
_asked = threading.Event()
# A push notification's sync is due SETTLE seconds after the first of a burst at the latest
# (lifecycle.request_sync); the scheduler of the same process starts it once QUIET seconds
# pass without another: a burst of 100 notifications is one sync, a lone one waits QUIET.
SETTLE = 2.0
QUIET = 0.3


def nudge() -> None:
    _asked.set()


def wait_for_nudge(timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for :func:`nudge`; True (and reset) when it came."""
    if _asked.wait(timeout):
        _asked.clear()
        return True
    return False


def configure(settings) -> None:
    """Take the lease length from the settings (a killed worker's connections wait this long)."""
    global LEASE_TTL
    LEASE_TTL = dt.timedelta(seconds=settings.lease_ttl)


def owner_id(role: str = "scheduler") -> str:
    """``role@host:pid+start``. The start time tells a restarted process from the one before it under
    the same pid and host name: a container's process is pid 1 after every restart."""
    pid = os.getpid()
    start = _started(pid)
    return f"{role}@{socket.gethostname()}:{pid}" + (f"+{start}" if start else "")


def _started(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot, field 22 of /proc/<pid>/stat); '' where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    fields = stat.rpartition(")")[2].split()  # after the command name, which may hold spaces: field 3 on
    return fields[19] if len(fields) > 19 and fields[19].isdigit() else ""


def _free(now: dt.datetime):
    return (m.Connection.lease_expires_at.is_null()) | (m.Connection.lease_expires_at < now)


def owner_alive(owner: str | None) -> bool:
    """False only when ``owner`` is a process of this host that no longer exists."""
    if not owner:
        return False
    _, _, place = owner.rpartition("@")
    host, _, process = place.rpartition(":")
    pid, _, start = process.partition("+")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's: only its lease's expiry tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, under another user
    return not start or _started(int(pid)) in (start, "")  # the same pid, but a later process: the owner is gone


def claim(conn_id: int, owner: str) -> bool:
    now = clock.now()
    claimed = (
        m.Connection.update(lease_owner=owner, lease_expires_at=now + LEASE_TTL).where(m.Connection.id == conn_id, _free(now)).execute()
    )
    if claimed == 1:
        return True
    holder = m.Connection.select(m.Connection.lease_owner).where(m.Connection.id == conn_id).scalar()
    if holder and holder != owner and not owner_alive(holder):
        log.warning("connection %s: the lease of %s, a process that is gone, is taken over", conn_id, holder)
        claimed = (
            m.Connection.update(lease_owner=owner, lease_expires_at=now + LEASE_TTL)
            .where(m.Connection.id == conn_id, m.Connection.lease_owner == holder)
            .execute()
        )
        if claimed == 1:
            _interrupted([conn_id])
    return claimed == 1


def _interrupted(conn_ids) -> None:
    """The runs a dead process left "running" say what happened to them."""
    (
        m.SyncRun.update(
            outcome="failed", finished_at=clock.now(), error="interrupted: the process running this sync ended before it finished"
        )
        .where(m.SyncRun.connection.in_(conn_ids), m.SyncRun.outcome == "running")
        .execute()
    )


def reap_dead(host: str | None = None) -> int:
    """Free every lease held by a process of this host that is gone; returns how many."""
    host = host or socket.gethostname()
    owners = [
        o
        for (o,) in m.tuples(
            m.Connection.select(m.Connection.lease_owner)
            .distinct()
            .where(
                m.Connection.lease_owner.is_null(False),  # the partial index of held leases (schema 7)
                m.Connection.lease_owner.contains(f"@{host}:"),
            )
        )
    ]
    dead = [o for o in owners if not owner_alive(o)]
    if not dead:
        return 0
    _interrupted(m.Connection.select(m.Connection.id).where(m.Connection.lease_owner.in_(dead)))
    freed = m.Connection.update(lease_owner=None, lease_expires_at=None).where(m.Connection.lease_owner.in_(dead)).execute()
    log.warning("freed %d lease(s) of %d process(es) of this host that are gone", freed, len(dead))
    return freed


def renew(owner: str, only=None) -> int:
    """What ``owner`` holds (or only the connections ``only``) is held for another LEASE_TTL."""
    query = m.Connection.update(lease_expires_at=clock.now() + LEASE_TTL).where(m.Connection.lease_owner == owner)
    if only is not None:
        query = query.where(m.Connection.id.in_(list(only)))
    return query.execute()


class Keeper:
    """Renews an owner's leases every third of LEASE_TTL while it runs (a thread of its own).

    ``alive`` (a callable giving the connection ids whose run is still within its budget) or
    ``until`` (a ``time.monotonic()`` moment) stop the renewal of a run that is stuck: its lease
    then expires and another process may take the connection.
    """

    def __init__(self, owner: str, alive=None, until: float | None = None):
        self.owner = owner
        self.alive = alive
        self.until = until
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"lease-keeper {owner}", daemon=True)

    def _run(self) -> None:
        interval = max(LEASE_TTL.total_seconds() / 3, 1.0)
        while not self.stop.wait(interval):
            if self.until is not None and time.monotonic() > self.until:
                return
            try:
                with m.db.connection_context():
                    only = self.alive() if self.alive is not None else None
                    if only is None or only:
                        renew(self.owner, only)
            except Exception:  # the next round tries again; the lease outlives one miss
                log.exception("renewing the leases of %s failed", self.owner)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def claim_due(owner: str, limit: int, *, due_by: dt.datetime | None = None, reap: bool = True) -> list[int]:
    """Claim up to ``limit`` connections whose sync is due (by ``due_by``, default now: a pass
    takes what was due when it began, not what became due while it ran); returns their ids.
    ``reap``: first free the leases of dead processes of this host (once per pass is enough)."""
    if limit <= 0:
        return []
    if reap:
        reap_dead()
    now = clock.now()
    due_by = now if due_by is None or due_by > now else due_by
    database = m.db.obj
    if isinstance(database, pw.PostgresqlDatabase):
        cursor = database.execute_sql(
            """
            UPDATE connection SET lease_owner = %s, lease_expires_at = %s
            WHERE id IN (
                SELECT id FROM connection
                WHERE status <> 'stopped'
                  AND (next_sync_at IS NULL OR next_sync_at <= %s)
                  AND (lease_expires_at IS NULL OR lease_expires_at < %s)
                ORDER BY next_sync_at NULLS FIRST, id
                LIMIT %s
                FOR UPDATE SKIP LOCKED)
            RETURNING id
            """,
            (owner, clock.naive_utc(now + LEASE_TTL), clock.naive_utc(due_by), clock.naive_utc(now), limit),
        )
        return [row[0] for row in cursor.fetchall()]
    # SQLite: one writer at a time, so one UPDATE of the first due ones is the whole claim.
    return sorted(row[0] for row in _CLAIM.rows(owner=owner, until=now + LEASE_TTL, due_by=due_by, now=now, limit=limit))


def _claim(owner, until, due_by, now, limit):
    C = m.Connection
    due = (
        C.select(C.id)
        .where(C.status != m.STOPPED, (C.next_sync_at.is_null()) | (C.next_sync_at <= due_by), _free(now))
        .order_by(C.next_sync_at.asc(nulls="FIRST"), C.id)
        .limit(limit)
    )
    return C.update(lease_owner=owner, lease_expires_at=until).where(C.id.in_(due)).returning(C.id).tuples()


# Built once (core.prepared): peewee wrote the claim anew each time and, to see whether the
# subquery was empty, ran it first — ~1 ms and a statement more for every claim.
_CLAIM = prepared.Prepared(_claim)


def claim_requested(owner: str, limit: int, within: float = SETTLE) -> list[int]:
    """Claim up to ``limit`` connections whose sync was asked for (lifecycle.request_sync) and is
    due within ``within`` seconds: what a settled burst of notifications asked for, now."""
    if limit <= 0:
        return []
    now = clock.now()
    C = m.Connection
    asked = (
        C.select(C.id)
        .where(C.status != m.STOPPED, C.sync_requested_at.is_null(False), C.next_sync_at <= now + dt.timedelta(seconds=within), _free(now))
        .order_by(C.next_sync_at, C.id)
        .limit(limit)
    )
    # The lease condition again on the UPDATE itself: PostgreSQL re-checks it on a row another
    # scheduler claimed meanwhile, so none is claimed twice.
    query = C.update(lease_owner=owner, lease_expires_at=now + LEASE_TTL).where(C.id.in_(asked), _free(now)).returning(C.id).tuples()
    return sorted(row[0] for row in query.execute())


def settle() -> None:
    """After a nudge: wait until QUIET seconds pass without another one, SETTLE seconds at most."""
    deadline = time.monotonic() + SETTLE
    while time.monotonic() < deadline and wait_for_nudge(min(QUIET, max(0.0, deadline - time.monotonic()))):
        pass


def next_due(rt, ok: bool, failures: int = 0) -> dt.datetime:
    """When a connection is due again after a run: one interval later (jittered, so 1,000
    connections do not all fire at once), or backing off after ``failures`` runs in a row failed."""
    interval = rt.settings.sync_interval
    if ok:
        delay = interval * random.uniform(0.9, 1.1)
    else:
        delay = min(interval, FIRST_RETRY * 2 ** min(max(failures, 1) - 1, 16)) * random.uniform(0.9, 1.0)
    return clock.now() + dt.timedelta(seconds=delay)


def giving_back(owner: str, now: dt.datetime, next_at: dt.datetime) -> dict:
    """The columns of an UPDATE that gives the connection back, if ``owner`` holds it, due at
    ``next_at`` (or at ``now`` when a sync was asked for during the run). For :func:`release`,
    and for a run's own last write, which then needs no statement of its own."""
    C = m.Connection
    mine = C.lease_owner == owner
    due = pw.Case(None, [(C.sync_requested_at.is_null(False), C.next_sync_at.db_value(now))], C.next_sync_at.db_value(next_at))
    return {
        C.lease_owner: pw.Case(None, [(mine, None)], C.lease_owner),
        C.lease_expires_at: pw.Case(None, [(mine, None)], C.lease_expires_at),
        C.next_sync_at: pw.Case(None, [(mine, due)], C.next_sync_at),
    }


def release(rt, conn_id: int, owner: str, ok: bool) -> None:
    """Give the connection back and say when it is due again (jittered; failures back off;
    a sync asked for during the run is due at once)."""
    C = m.Connection
    failures = 0
    if not ok:
        failures = C.select(C.failures_in_row).where(C.id == conn_id).scalar()
        if failures is None:
            return
    C.update(giving_back(owner, clock.now(), next_due(rt, ok, failures))).where(C.id == conn_id, C.lease_owner == owner).execute()


def release_check(conn_id: int, owner: str) -> None:
    """Give the connection back after a health check: its next sync stays when it was."""
    (
        m.Connection.update(lease_owner=None, lease_expires_at=None)
        .where(m.Connection.id == conn_id, m.Connection.lease_owner == owner)
        .execute()
    )


def release_all(owner: str, keep=()) -> int:
    """On shutdown: what this process still holds is free for others at once, except ``keep`` (runs
    still going: their leases expire, so nobody syncs those connections twice at once)."""
    query = m.Connection.update(lease_owner=None, lease_expires_at=None).where(m.Connection.lease_owner == owner)
    if keep:
        query = query.where(m.Connection.id.not_in(list(keep)))
    return query.execute()


def beat(owner: str, running: int) -> None:
    now = clock.now()
    (
        m.SchedulerBeat.insert(owner=owner, started_at=now, beat_at=now, running=running)
        .on_conflict(conflict_target=[m.SchedulerBeat.owner], update={m.SchedulerBeat.beat_at: now, m.SchedulerBeat.running: running})
        .execute()
    )


def forget(owner: str) -> None:
    m.SchedulerBeat.delete().where(m.SchedulerBeat.owner == owner).execute()
