"""Who syncs which connection now: leases, so one connection is never synced twice at once.

Any number of schedulers (and the CLI's `sync`) claim a connection before
syncing it and release it after; a claim is a conditional UPDATE, atomic on
SQLite and PostgreSQL alike. On PostgreSQL the due connections are picked
with ``FOR UPDATE SKIP LOCKED`` so schedulers do not queue behind each other.
A killed worker's lease simply expires and the connection is taken again.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import socket

import peewee as pw

import models as m
from core import clock

LEASE_TTL = dt.timedelta(minutes=10)  # default; CALSYNC_LEASE_TTL sets it (configure() at start-up)
FIRST_RETRY = 60  # seconds; doubled per failure in a row, up to the sync interval


def configure(settings) -> None:
    """Take the lease length from the settings (a killed worker's connections wait this long)."""
    global LEASE_TTL
    LEASE_TTL = dt.timedelta(seconds=settings.lease_ttl)


def owner_id(role: str = "scheduler") -> str:
    return f"{role}@{socket.gethostname()}:{os.getpid()}"


def _free(now: dt.datetime):
    return (m.Connection.lease_expires_at.is_null()) | (m.Connection.lease_expires_at < now)


def claim(conn_id: int, owner: str) -> bool:
    now = clock.now()
    claimed = (
        m.Connection.update(lease_owner=owner, lease_expires_at=now + LEASE_TTL)
        .where(m.Connection.id == conn_id, _free(now))
        .execute()
    )
    return claimed == 1


def claim_due(owner: str, limit: int) -> list[int]:
    """Claim up to ``limit`` connections whose sync is due; returns their ids."""
    if limit <= 0:
        return []
    now = clock.now()
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
            (owner, clock.naive_utc(now + LEASE_TTL), clock.naive_utc(now), clock.naive_utc(now), limit),
        )
        return [row[0] for row in cursor.fetchall()]
    candidates = (
        m.Connection.select(m.Connection.id)
        .where(
            m.Connection.status != m.STOPPED,
            (m.Connection.next_sync_at.is_null()) | (m.Connection.next_sync_at <= now),
            _free(now),
        )
        .order_by(m.Connection.next_sync_at.asc(nulls="FIRST"), m.Connection.id)
        .limit(limit)
    )
    return [c.id for c in candidates if claim(c.id, owner)]


def release(rt, conn_id: int, owner: str, ok: bool) -> None:
    """Give the connection back and say when it is due again (jittered; failures back off)."""
    conn = m.Connection.get_or_none(m.Connection.id == conn_id)
    if conn is None:
        return
    interval = rt.settings.sync_interval
    failures = 0 if ok else conn.failures_in_row + 1
    if ok:
        delay = interval * random.uniform(0.9, 1.1)  # 1,000 connections must not all fire at once
    else:
        delay = min(interval, FIRST_RETRY * 2 ** min(failures - 1, 16)) * random.uniform(0.9, 1.0)
    (
        m.Connection.update(
            lease_owner=None,
            lease_expires_at=None,
            failures_in_row=failures,
            next_sync_at=clock.now() + dt.timedelta(seconds=delay),
        )
        .where(m.Connection.id == conn_id, m.Connection.lease_owner == owner)
        .execute()
    )


def release_all(owner: str) -> int:
    """On shutdown: what this process still holds is free for others at once."""
    return (
        m.Connection.update(lease_owner=None, lease_expires_at=None)
        .where(m.Connection.lease_owner == owner)
        .execute()
    )


def beat(owner: str, running: int) -> None:
    now = clock.now()
    (
        m.SchedulerBeat.insert(owner=owner, started_at=now, beat_at=now, running=running)
        .on_conflict(conflict_target=[m.SchedulerBeat.owner], update={m.SchedulerBeat.beat_at: now, m.SchedulerBeat.running: running})
        .execute()
    )


def forget(owner: str) -> None:
    m.SchedulerBeat.delete().where(m.SchedulerBeat.owner == owner).execute()


class Busy(Exception):
    """Another process is syncing this connection right now."""


def sync_with_lease(rt, conn: m.Connection, cause: str, wait: float = 15.0):
    """Sync outside the scheduler (relink, sweep) without racing a scheduler on the same connection."""
    import time

    from core.sync import sync_connection

    owner = owner_id(cause)
    deadline = time.monotonic() + wait
    while not claim(conn.id, owner):
        if time.monotonic() >= deadline:
            raise Busy(f"connection {conn.id} is being synced by {m.Connection.get_by_id(conn.id).lease_owner}")
        time.sleep(0.2)
    report = None
    try:
        report = sync_connection(rt, m.Connection.get_by_id(conn.id), cause=cause)
        return report
    finally:
        release(rt, conn.id, owner, ok=report is not None and report.outcome == "ok")
