"""The scheduler's work, as one pass and as periodic jobs (the `schedule` package).

One pass = the syncs that are due, the health sweep, incident reminders and
escalations, and the outbox. ``run_bot.py --once`` runs one pass; the
service runs each job on its own cadence.
"""

from __future__ import annotations

import logging

import schedule

from core import actions, health, incidents, outbox

log = logging.getLogger("calsync.scheduler")

TICK = 30  # seconds between looks for due syncs and sweeps
OUTBOX_TICK = 10


def run_once(rt) -> dict:
    """All due work, once; returns what was done."""
    reports = actions.sync_due(rt)
    return {
        "syncs": reports,
        "sweep": health.sweep(rt),
        "incidents": incidents.check(rt),
        "outbox": outbox.deliver_pending(rt),
    }


def _guarded(name, fn, rt):
    def job():
        try:
            fn(rt)
        except Exception:  # one failed job must not stop the heartbeat
            log.exception("scheduled job %s failed", name)

    return job


def build(rt) -> schedule.Scheduler:
    scheduler = schedule.Scheduler()
    scheduler.every(TICK).seconds.do(_guarded("sync", actions.sync_due, rt))
    scheduler.every(TICK).seconds.do(_guarded("sweep", health.sweep, rt))
    scheduler.every(60).seconds.do(_guarded("incidents", incidents.check, rt))
    scheduler.every(OUTBOX_TICK).seconds.do(_guarded("outbox", outbox.deliver_pending, rt))
    return scheduler
