"""The scheduler: leases, backoff, a pool that slow providers cannot stall, one scheduler per SQLite."""

from __future__ import annotations

import datetime as dt
import http.server
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from typing import ClassVar

import pytest
from conftest import ROOT, make_env, soon, vevent

import models as m
from core import actions, clock, leases, lifecycle, metrics, scheduler
from core.providers.base import Transient

FEED = (
    b"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:e1\r\nDTSTAMP:20260101T000000Z\r\n"
    b"DTSTART:20261201T100000Z\r\nDTEND:20261201T110000Z\r\nSUMMARY:Busy\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


class _Feeds(http.server.BaseHTTPRequestHandler):
    delay: ClassVar[dict] = {}

    def do_GET(self):
        time.sleep(self.delay.get(self.path, 0))
        self.send_response(200)
        self.send_header("Content-Type", "text/calendar")
        self.send_header("Content-Length", str(len(FEED)))
        self.end_headers()
        self.wfile.write(FEED)

    def log_message(self, *args):
        pass


@pytest.fixture
def feeds_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Feeds)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Feeds.delay = {}
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def _ics_connections(rt, base: str, count: int) -> list[int]:
    actions.add_staff(rt, "ada@example.com", "Ada")
    return [actions.connect(rt, "ada@example.com", "ics", url=f"{base}/feed{i}.ics")["id"] for i in range(count)]


def test_a_leased_connection_is_not_claimed_twice_and_an_expired_lease_is_taken_over(rt, feeds_server):
    (cid,) = _ics_connections(rt, feeds_server, 1)
    assert leases.claim(cid, "a") is True
    assert leases.claim(cid, "b") is False
    assert leases.claim_due("b", 10) == []
    later = clock.now() + leases.LEASE_TTL + dt.timedelta(seconds=1)  # the holder died
    clock.set_now(lambda: later)
    assert leases.claim_due("b", 10) == [cid]


def test_a_restarted_process_under_the_same_pid_frees_its_predecessors_leases(rt, feeds_server):
    """In a container the scheduler is pid 1 after every restart, on the same host name: the
    process start time in the owner tells the two apart, so the dead one's leases are freed at once."""
    mine, gone, other_host = _ics_connections(rt, feeds_server, 3)
    me = leases.owner_id()
    assert "+" in me, "the owner names when this process started"
    predecessor = me.rpartition("+")[0] + "+1"  # this pid and host, started at another time
    assert leases.claim(mine, me) and leases.claim(gone, predecessor) and leases.claim(other_host, "scheduler@elsewhere:1+1")
    assert leases.owner_alive(me) and not leases.owner_alive(predecessor)
    assert leases.reap_dead() == 1
    held = {c.id: c.lease_owner for c in m.Connection.select()}
    assert held == {mine: me, gone: None, other_host: "scheduler@elsewhere:1+1"}


def test_sync_now_reports_busy_instead_of_syncing_twice(rt, feeds_server):
    (cid,) = _ics_connections(rt, feeds_server, 1)
    leases.claim(cid, "scheduler@elsewhere:1")
    (report,) = actions.sync_now(rt, cid)
    assert report["outcome"] == "busy" and "scheduler@elsewhere:1" in report["error"]
    assert m.SyncRun.select().count() == 0


def test_next_sync_is_jittered_and_failures_back_off_up_to_the_interval(rt, feeds_server):
    (cid,) = _ics_connections(rt, feeds_server, 1)
    interval = rt.settings.sync_interval
    leases.claim(cid, "a")
    leases.release(rt, cid, "a", ok=True)
    wait = (m.Connection.get_by_id(cid).next_sync_at - clock.now()).total_seconds()
    assert 0.89 * interval <= wait <= 1.11 * interval
    waits = []
    for _ in range(6):
        leases.claim(cid, "a")
        # What a failed run reports (core.lifecycle counts the failures in a row; the lease backs off).
        lifecycle.failed(rt, m.Connection.get_by_id(cid), Transient("HTTP 503"), "sync")
        leases.release(rt, cid, "a", ok=False)
        waits.append((m.Connection.get_by_id(cid).next_sync_at - clock.now()).total_seconds())
    assert waits[0] <= 61 and waits[1] <= 121 and waits[1] > waits[0]
    assert max(waits) <= interval
    assert m.Connection.get_by_id(cid).failures_in_row == 6


def test_a_hanging_provider_does_not_stall_the_others(tmp_path, feeds_server):
    from core import runtime
    from core.config import load_settings

    rt = runtime.start(load_settings(make_env(tmp_path, CALSYNC_WORKERS=2, CALSYNC_HTTP_TIMEOUT=10), read_dotenv=False))
    try:
        ids = _ics_connections(rt, feeds_server, 4)
        _Feeds.delay = {"/feed0.ics": 4}
        dispatcher = scheduler.Dispatcher(rt, "scheduler@test:1")
        started = time.monotonic()
        dispatcher.tick()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            dispatcher.tick()
            done = {r.connection_id for r in m.SyncRun.select() if r.outcome == "ok"}
            if set(ids[1:]) <= done:
                break
            time.sleep(0.05)
        fast_done = time.monotonic() - started
        assert set(ids[1:]) <= {r.connection_id for r in m.SyncRun.select() if r.outcome == "ok"}
        assert fast_done < 3.5, "the other connections waited for the slow one"
        dispatcher.shutdown(grace=10)
        assert m.Connection.select().where(m.Connection.lease_owner.is_null(False)).count() == 0
    finally:
        rt.close()


def test_one_pass_syncs_each_due_connection_once(rt, feeds_server):
    _ics_connections(rt, feeds_server, 5)
    result = scheduler.run_once(rt)
    assert len(result["syncs"]) == 5 and all(r["outcome"] == "ok" for r in result["syncs"])
    assert scheduler.run_once(rt)["syncs"] == []


def test_a_second_scheduler_on_sqlite_refuses_to_start(tmp_path):
    env = {**os.environ, **make_env(tmp_path)}
    first = subprocess.Popen(
        [sys.executable, str(ROOT / "run_bot.py"), "--role", "scheduler"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "var" / "scheduler.lock").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        second = subprocess.run(
            [sys.executable, str(ROOT / "run_bot.py"), "--role", "scheduler"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert second.returncode == 2
        assert "another scheduler already runs on this SQLite database" in second.stderr
    finally:
        started = time.monotonic()
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=35)
    assert first.returncode == 0 and time.monotonic() - started < 30


def test_cleanup_keeps_history_and_drops_old_runs(story):
    story.sync()
    later = clock.now() + dt.timedelta(days=31)
    clock.set_now(lambda: later)
    story.sync()
    assert scheduler.cleanup(story.rt)["sync_runs"] == 1
    assert m.SyncRun.select().count() == 0 and m.StatusChange.select().count() == 2
    # The second run found nothing to do: it is the connection's open stretch, still shown.
    runs = actions.connection_detail(story.rt, story.conn_id)["sync_runs"]
    assert [(r["outcome"], r["runs"]) for r in runs] == [("ok", 1)]


def test_no_change_runs_are_one_stretch_closed_by_the_next_run_that_does_something(story):
    """Quiet runs add no rows; the run that reads something first writes them as one, in order."""
    story.sync()
    for _ in range(3):
        story.sync()
    assert m.SyncRun.select().count() == 1
    runs = actions.connection_detail(story.rt, story.conn_id)["sync_runs"]
    assert [(r["outcome"], r["runs"]) for r in runs] == [("ok", 3), ("ok", 1)]
    assert runs[0]["requests"] >= 3

    start = soon()
    story.server.put_event(
        story.calendar_url,
        "outside-1.ics",  # a change: the next run reads it
        vevent("outside-1", start, start + dt.timedelta(hours=1), "Dentist"),
    )
    story.sync()
    rows = list(m.SyncRun.select().order_by(m.SyncRun.id))
    assert [r.runs for r in rows] == [1, 3, 1]
    assert rows[1].finished_at <= rows[2].started_at
    assert m.Connection.get_by_id(story.conn_id).quiet_runs == 0
    runs = actions.connection_detail(story.rt, story.conn_id)["sync_runs"]
    assert [r["runs"] for r in runs] == [1, 3, 1]  # newest first
    story.sync()  # quiet again: a new open stretch, counted by the metrics as its runs
    assert 'calsync_sync_runs_total{outcome="ok"} 6.0' in metrics.render().decode()


@pytest.mark.postgres
def test_three_schedulers_on_postgresql_sync_each_connection_exactly_once(postgres, tmp_path, feeds_server):
    from core import runtime
    from core.config import load_settings

    url = postgres.create_database("t_three_schedulers")
    env = make_env(tmp_path, CALSYNC_DATABASE_URL=url, CALSYNC_SYNC_INTERVAL=3600, CALSYNC_WORKERS=4)
    rt = runtime.start(load_settings(env, read_dotenv=False))
    try:
        ids = _ics_connections(rt, feeds_server, 60)
    finally:
        rt.close()
    procs = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "run_bot.py"), "--role", "scheduler", "--log-level", "WARNING"],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    rt = runtime.start(load_settings(env, read_dotenv=False))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if m.SyncRun.select().where(m.SyncRun.outcome == "ok").count() >= len(ids):
                break
            time.sleep(0.3)
        time.sleep(1.5)  # would any connection be synced a second time?
        runs = list(m.SyncRun.select())
        per_connection = {}
        for run in runs:
            per_connection.setdefault(run.connection_id, []).append(run)
        assert sorted(per_connection) == sorted(ids)
        assert all(len(r) == 1 for r in per_connection.values()), "a connection was synced twice in one interval"
        owners = {b.owner for b in m.SchedulerBeat.select()}
        assert len(owners) == 3
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            p.communicate(timeout=35)
        rt.close()
    assert all(p.returncode == 0 for p in procs)


@pytest.mark.postgres
def test_a_killed_scheduler_s_work_is_taken_over_and_nothing_is_written_twice(postgres, tmp_path):
    from servers import start_server

    from core import runtime
    from core.config import load_settings

    caldav = start_server("radicale", tmp_path / "radicale")
    url = postgres.create_database("t_killed_scheduler")
    env = make_env(tmp_path, CALSYNC_DATABASE_URL=url, CALSYNC_SYNC_INTERVAL=3600, CALSYNC_WORKERS=2, CALSYNC_LEASE_TTL=5)
    rt = runtime.start(load_settings(env, read_dotenv=False))
    count = 24
    try:
        for i in range(count):
            caldav.make_calendar(f"cal{i}", f"Cal {i}")
        for i in range(count):
            actions.add_staff(rt, f"s{i}@example.com", f"Staff {i}")
            conn = actions.connect(
                rt,
                f"s{i}@example.com",
                "caldav",
                url=caldav.base_url,
                username=caldav.username,
                password=caldav.password,
                calendar=f"Cal {i}",
            )
            m.Calendar.delete().where(m.Calendar.connection == conn["id"], m.Calendar.is_destination == False).execute()
            actions.book(rt, f"s{i}@example.com", "2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z", f"Session {i}")
    finally:
        rt.close()
    cmd = [sys.executable, str(ROOT / "run_bot.py"), "--role", "scheduler", "--log-level", "WARNING"]
    procs = [
        subprocess.Popen(cmd, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for _ in range(3)
    ]
    rt = runtime.start(load_settings(env, read_dotenv=False))
    try:
        victim = procs[0]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # kill it as soon as it holds work
            if m.Connection.select().where(m.Connection.lease_owner.contains(f":{victim.pid}")).exists():
                break
            time.sleep(0.02)
        victim.kill()
        victim.wait(10)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ok = {r.connection_id for r in m.SyncRun.select().where(m.SyncRun.outcome == "ok")}
            if len(ok) == count:
                break
            time.sleep(0.3)
        assert len({r.connection_id for r in m.SyncRun.select().where(m.SyncRun.outcome == "ok")}) == count
        for conn_id in range(1, count + 1):
            runs = sorted(m.SyncRun.select().where(m.SyncRun.connection == conn_id), key=lambda r: r.started_at)
            for earlier, later in itertools.pairwise(runs):
                assert earlier.finished_at is None or earlier.finished_at <= later.started_at, "synced twice at once"
        for i in range(count):
            events = caldav.list_events(f"{caldav.calendar_home_url}cal{i}/")
            assert len(events) == 1, f"calendar {i} holds {len(events)} events"
    finally:
        for p in procs[1:]:
            p.send_signal(signal.SIGTERM)
        for p in procs[1:]:
            p.communicate(timeout=35)
        rt.close()
        caldav.stop()


def _asked_rows(count: int) -> list[int]:
    staff = m.Staff.create(email="asked@example.com", name="Ada")
    conns = [
        m.Connection.create(
            staff=staff,
            provider="google",
            account=f"a{i}@example.com",
            status=m.ACTIVE,
            next_sync_at=clock.now() + dt.timedelta(minutes=15),
        )
        for i in range(count)
    ]
    return [c.id for c in conns]


def _claims_of_asked_syncs(rt):
    ids = _asked_rows(6)
    quiet = ids[-1]  # nobody asked for this one: its turn is in 15 minutes
    for cid in ids[:-1]:
        lifecycle.request_sync(m.Connection.get_by_id(cid), settle=True)
    assert leases.claim_due("x", 10) == []  # a burst settles: not due at once
    leases.claim(ids[0], "someone-else")  # one is being synced already
    got: list[list[int]] = []
    threads = [threading.Thread(target=lambda o=o: got.append(_claim_in_thread(rt, o))) for o in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    claimed = [cid for batch in got for cid in batch]
    assert sorted(claimed) == sorted(ids[1:-1])  # each asked one exactly once, none held, not the quiet one
    assert quiet not in claimed


def _claim_in_thread(rt, owner: str) -> list[int]:
    with m.db.connection_context():
        return leases.claim_requested(owner, 10)


def test_syncs_asked_for_by_push_are_claimed_once_each_after_the_burst_settles(rt):
    _claims_of_asked_syncs(rt)


@pytest.mark.postgres
def test_syncs_asked_for_by_push_are_claimed_once_each_on_postgresql(pg_rt):
    _claims_of_asked_syncs(pg_rt)
