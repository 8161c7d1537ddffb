"""Prometheus metrics read from the database at scrape time.

Several scheduler processes write the same database, so the numbers come
from it (not from process memory): sync runs by outcome, their duration
histogram, connections by status, the outbox backlog, scheduler liveness.
"""

from __future__ import annotations

import datetime as dt

import peewee as pw
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

import models as m
from core import clock, sync_runs

BUCKETS_MS = (100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000)
ALIVE_WITHIN = dt.timedelta(seconds=60)


def backlog() -> int:
    return m.Delivery.select().where(m.Delivery.state.not_in(list(m.DELIVERY_DONE))).count()


def scheduler_state() -> dict:
    newest = m.SchedulerBeat.select(pw.fn.MAX(m.SchedulerBeat.beat_at)).scalar()
    if newest is None:
        return {"state": "none", "last_beat": None, "schedulers": 0}
    if isinstance(newest, str):
        newest = dt.datetime.fromisoformat(newest)
    newest = clock.utc(newest)
    alive = m.SchedulerBeat.select().where(m.SchedulerBeat.beat_at >= clock.now() - ALIVE_WITHIN).count()
    return {
        "state": "alive" if alive else "stale",
        "last_beat": newest.isoformat().replace("+00:00", "Z"),
        "schedulers": alive,
    }


class DatabaseCollector:
    def collect(self):
        runs = CounterMetricFamily("calsync_sync_runs", "Sync runs recorded (kept 30 days), by outcome", labels=["outcome"])
        for outcome, count in sync_runs.counted_runs().items():
            runs.add_metric([outcome], count)
        yield runs

        # A stretch of no-change runs counts as its runs, each of their mean duration.
        timed = [
            (d / max(n, 1), n)
            for d, n in m.SyncRun.select(m.SyncRun.duration_ms, m.SyncRun.runs).where(m.SyncRun.outcome != "running").tuples()
        ]
        timed += [
            (d / n, n)
            for d, n in m.Connection.select(m.Connection.quiet_ms, m.Connection.quiet_runs).where(m.Connection.quiet_runs > 0).tuples()
        ]
        buckets = []
        for bound in BUCKETS_MS:
            buckets.append((str(bound / 1000), sum(n for d, n in timed if d <= bound)))
        buckets.append(("+Inf", sum(n for _, n in timed)))
        total = sum(d * n for d, n in timed) / 1000
        histogram = HistogramMetricFamily("calsync_sync_duration_seconds", "Duration of sync runs")
        histogram.add_metric([], buckets, total)
        yield histogram

        statuses = GaugeMetricFamily("calsync_connections", "Connections by status", labels=["status"])
        counts = dict(m.Connection.select(m.Connection.status, pw.fn.COUNT(m.Connection.id)).group_by(m.Connection.status).tuples())
        for status in m.STATUSES:
            statuses.add_metric([status], counts.get(status, 0))
        yield statuses

        yield GaugeMetricFamily("calsync_outbox_backlog", "Notification deliveries not yet sent", value=backlog())
        yield GaugeMetricFamily(
            "calsync_open_incidents", "Incidents not resolved", value=m.Incident.select().where(m.Incident.resolved_at.is_null()).count()
        )
        yield GaugeMetricFamily(
            "calsync_schedulers_alive", "Scheduler processes with a heartbeat in the last minute", value=scheduler_state()["schedulers"]
        )


def render() -> bytes:
    registry = CollectorRegistry()
    registry.register(DatabaseCollector())
    return generate_latest(registry)
