"""The scheduler: the product's heartbeat.

Every tick it claims the connections whose sync is due (leases, so several
schedulers on PostgreSQL share the work and none syncs a connection twice
at once) and hands them to a bounded pool of CALSYNC_WORKERS threads without
waiting for the slow ones; the health sweep, incident reminders and
escalations, the outbox and a daily cleanup run on their own cadences
(the ``schedule`` package). ``run_once`` is one pass of all of it.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import fcntl
import logging
import threading
import time
from pathlib import Path

import peewee as pw
import schedule

import models as m
from core import clock, health, incidents, leases, outbox, runner

log = logging.getLogger("calsync.scheduler")

TICK = 1  # seconds between looks for due syncs: a push notification's sync starts within one
# (one claim statement, ~1 ms at 100,000 connections: bench/README "Scale-out")
SWEEP_TICK = 30
OUTBOX_TICK = 10
BEAT_TICK = 15
SHUTDOWN_GRACE = 25  # seconds to let running syncs finish on SIGTERM (exit within 30)
KEEP_RUNS = dt.timedelta(days=30)
KEEP_DELIVERED = dt.timedelta(days=90)


class SchedulerLocked(Exception):
    """Another scheduler already runs on this SQLite database."""


def run_once(rt) -> dict:
    """All due work, once; returns what was done."""
    owner = leases.owner_id("once")
    return {
        "syncs": [r.to_dict() for r in runner.sync_due(rt, owner=owner)],
        "sweep": health.sweep(rt),
        "incidents": incidents.check(rt),
        "outbox": outbox.deliver_pending(rt),
    }


def cleanup(rt) -> dict:
    """Old sync runs, delivered notifications and dead links go; history and incidents stay."""
    now = clock.now()
    # By when a run ended: a stretch of no-change runs may have begun long before.
    ended = pw.fn.COALESCE(m.SyncRun.finished_at, m.SyncRun.started_at)
    runs = m.SyncRun.delete().where(ended < m.SyncRun.finished_at.db_value(now - KEEP_RUNS)).execute()
    delivered = (
        m.Notification.delete()
        .where(
            m.Notification.created_at < now - KEEP_DELIVERED,
            ~pw.fn.EXISTS(
                m.Delivery.select().where(m.Delivery.notification == m.Notification.id, m.Delivery.state.not_in(list(m.DELIVERY_DONE)))
            ),
        )
        .execute()
    )
    links = m.RelinkLink.delete().where(m.RelinkLink.expires_at < now - dt.timedelta(days=30)).execute()
    links += m.DownloadLink.delete().where(m.DownloadLink.expires_at < now - dt.timedelta(days=1)).execute()
    links += m.ConnectLink.delete().where(m.ConnectLink.expires_at < now - dt.timedelta(days=1)).execute()
    stale = m.SchedulerBeat.delete().where(m.SchedulerBeat.beat_at < now - dt.timedelta(days=1)).execute()
    return {"sync_runs": runs, "notifications": delivered, "links": links, "beats": stale}


class Dispatcher:
    """Claims due syncs and health checks and keeps the worker pool busy, never waiting for a slow one.

    Nothing that talks to a provider runs on the scheduler's own thread: a provider that does not
    answer holds one worker until its deadline, and the heartbeat, the outbox and every other
    connection go on.
    """

    def __init__(self, rt, owner: str):
        self.rt = rt
        self.owner = owner
        self.pool = concurrent.futures.ThreadPoolExecutor(rt.settings.workers, thread_name_prefix="sync")
        self.running: dict[int, concurrent.futures.Future] = {}
        self.started: dict[int, float] = {}  # when each running job began (time.monotonic)
        self.lock = threading.Lock()
        self.accepting = True

    def _free(self) -> int:
        with self.lock:
            return self.rt.settings.workers - len(self.running)

    def _submit(self, conn_id: int, work) -> None:
        future = self.pool.submit(work, self.rt, conn_id, self.owner)
        with self.lock:
            self.running[conn_id] = future
            self.started[conn_id] = time.monotonic()
        future.add_done_callback(lambda _f: self._done(conn_id))

    def _sync(self, claim) -> int:
        """What ``claim(owner, free workers)`` claimed, synced on free workers."""
        if not self.accepting:
            return 0
        claimed = claim(self.owner, self._free())
        for conn_id in claimed:
            self._submit(conn_id, runner.sync_claimed)
        return len(claimed)

    def tick(self) -> int:
        """Due syncs into free workers."""
        return self._sync(leases.claim_due)

    def tick_asked(self) -> int:
        """Syncs asked for (a settled burst of push notifications) into free workers, now."""
        return self._sync(leases.claim_requested)

    def sweep_tick(self) -> int:
        """Due health checks into free workers (a connection being synced is skipped: that is its check)."""
        if not self.accepting:
            return 0
        with self.lock:
            busy = list(self.running)
        taken = 0
        for conn_id in health.due(self.rt, self._free(), exclude=busy):
            if leases.claim(conn_id, self.owner):
                self._submit(conn_id, health.check_claimed)
                taken += 1
        return taken

    def _done(self, conn_id: int) -> None:
        with self.lock:
            self.running.pop(conn_id, None)
            self.started.pop(conn_id, None)

    def alive(self) -> list[int]:
        """The running jobs still within their budget: only their leases are renewed (a stuck one's expires)."""
        limit = self.rt.settings.sync_budget + 60
        now = time.monotonic()
        with self.lock:
            return [cid for cid, began in self.started.items() if now - began < limit]

    def shutdown(self, grace: float = SHUTDOWN_GRACE) -> int:
        """Stop taking work, let what runs finish for ``grace`` seconds, free the rest."""
        self.accepting = False
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            with self.lock:
                if not self.running:
                    break
            time.sleep(0.2)
        with self.lock:
            stuck = list(self.running)
        self.pool.shutdown(wait=False, cancel_futures=True)
        released = leases.release_all(self.owner, keep=stuck)
        if stuck:
            log.warning(
                "shutdown: %d sync(s) still running after %ss are abandoned; their leases expire (connections %s)",
                len(stuck),
                grace,
                ", ".join(map(str, stuck)),
            )
        return released

    @property
    def abandoned(self) -> int:
        with self.lock:
            return len(self.running)


def _guarded(name, fn, *args):
    def job():
        try:
            with m.db.connection_context():
                fn(*args)
        except Exception:  # one failed job must not stop the heartbeat
            log.exception("scheduled job %s failed", name)

    return job


def build(rt, dispatcher: Dispatcher) -> schedule.Scheduler:
    jobs = schedule.Scheduler()
    jobs.every(TICK).seconds.do(_guarded("sync", dispatcher.tick))
    jobs.every(SWEEP_TICK).seconds.do(_guarded("sweep", dispatcher.sweep_tick))
    jobs.every(60).seconds.do(_guarded("incidents", incidents.check, rt))
    jobs.every(OUTBOX_TICK).seconds.do(_guarded("outbox", outbox.deliver_pending, rt))
    jobs.every(BEAT_TICK).seconds.do(_guarded("heartbeat", lambda: leases.beat(dispatcher.owner, len(dispatcher.running))))
    jobs.every(6).hours.do(_guarded("cleanup", cleanup, rt))
    return jobs


def single_scheduler_lock(rt):
    """On SQLite only one scheduler may run: hold a lock file in the data dir for the process's life."""
    if isinstance(m.db.obj, pw.PostgresqlDatabase):
        return None
    path = Path(rt.settings.data_dir) / "scheduler.lock"
    handle = open(path, "a+")  # noqa: SIM115 — held open (and so locked) for the life of the process
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise SchedulerLocked(
            f"another scheduler already runs on this SQLite database ({path} is locked); "
            "run one scheduler per SQLite database, or use PostgreSQL (CALSYNC_DATABASE_URL) for several"
        ) from None
    return handle


def run_forever(rt, stop: threading.Event) -> int:
    """Run until ``stop`` is set; returns how many workers were still busy (abandoned) at the end."""
    owner = leases.owner_id()
    dispatcher = Dispatcher(rt, owner)
    jobs = build(rt, dispatcher)
    leases.beat(owner, 0)
    log.info(
        "scheduler %s started: sync every %ss, sweep every %ss, %d worker(s)",
        owner,
        rt.settings.sync_interval,
        rt.settings.sweep_interval,
        rt.settings.workers,
    )
    jobs.run_all()
    claim_asked = _guarded("asked syncs", dispatcher.tick_asked)
    with leases.Keeper(owner, alive=dispatcher.alive):  # a long sync keeps its lease while it is within budget
        while not stop.is_set():
            jobs.run_pending()
            if leases.wait_for_nudge(1):  # a sync asked for in this process (a push notification)
                leases.settle()
                claim_asked()
    log.info("scheduler stopping: no new work; waiting up to %ss for running syncs", SHUTDOWN_GRACE)
    with m.db.connection_context():
        dispatcher.shutdown()
        leases.forget(owner)
    return dispatcher.abandoned
