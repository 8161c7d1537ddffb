"""Benchmark: calsync's sync of N staff x M events against one local Radicale.

Run from the project root (``make bench``)::

    .venv/bin/python bench/sync_bench.py [--staff N] [--events M] [--workers W] [--quick]

One Radicale is started on 127.0.0.1 in a temporary directory (and stopped by
its PID at the end). Every staff member gets a calendar of their own on it and
one CalDAV connection whose only calendar is that one (all connections log in
as the server's one user). Each calendar gets M//2 busy events written
directly by the server admin ("the world"), and each staff member gets the
other M - M//2 as appointments booked with ``actions.book``; everything lies
within the next 30 days (staff time zone UTC).

Then ``actions.sync_now`` runs over all connections three times and the table
shows, per run: wall time, HTTP requests, created/updated/deleted, entries read.

* initial sync     - pulls the busy events, pushes the appointments
* settle           - the second run (state after our own writes)
* no-change resync - the third run; nothing changed anywhere

Exit status: 0 when every sync report says outcome "ok" and the sanity
checks pass, 1 otherwise (with a message saying what went wrong).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
import common
from conftest import make_env, vevent
from servers import start_server

import models as m
from core import actions, clock, runtime
from core.config import load_settings

SPREAD_DAYS = 30
NO_CHANGE_TARGET = 2  # requests per connection per calendar for a run where nothing changed
PHASES = ("initial sync", "settle", "no-change resync")


class BenchFailure(Exception):
    """The benchmark cannot give a valid result; ``str()`` says why."""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--staff", type=int, default=20, help="staff members = connections = calendars (default 20)")
    parser.add_argument("--events", type=int, default=50, help="events per staff member: half busy events, half appointments (default 50)")
    parser.add_argument("--workers", type=int, default=8, help="CALSYNC_WORKERS, sync threads (default 8)")
    parser.add_argument("--quick", action="store_true", help="smoke run: --staff 3 --events 10")
    args = parser.parse_args(argv)
    if args.quick:
        args.staff, args.events = 3, 10
    if not 1 <= args.staff <= 1000:
        parser.error("--staff must be between 1 and 1000")
    if not 2 <= args.events <= 10000:
        parser.error("--events must be between 2 and 10000")
    if not 1 <= args.workers <= 256:
        parser.error("--workers must be between 1 and 256")
    return args


# -- setup --------------------------------------------------------------------------


def spread(count: int, base: dt.datetime, shift: float) -> list[dt.datetime]:
    """``count`` start times spread evenly over the next SPREAD_DAYS days."""
    step = dt.timedelta(days=SPREAD_DAYS) / max(count, 1)
    return [(base + step * (j + shift)).replace(second=0, microsecond=0) for j in range(count)]


def populate(rt, server, staff: int, events: int) -> list[int]:
    """Calendars, busy events, staff, connections and appointments; returns the connection ids."""
    busy_count = events // 2
    appt_count = events - busy_count
    base = clock.now().replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    conn_ids = []
    for i in range(staff):
        name = f"Bench calendar {i:03d}"
        url = server.make_calendar(f"cal-{i}", name)
        for j, start in enumerate(spread(busy_count, base, 0.5)):
            uid = f"bench-busy-{i}-{j}"
            server.put_event(url, f"{uid}.ics", vevent(uid, start, start + dt.timedelta(minutes=30), f"Busy {i}/{j}"))
        email = f"staff-{i:03d}@example.com"
        actions.add_staff(rt, email, f"Bench Staff {i}", timezone="UTC")
        conn = actions.connect(rt, email, "caldav", url=server.base_url, username=server.username, password=server.password, calendar=name)
        conn_id = conn["id"]
        # connect() adds every calendar of the account as a busy source; keep only this
        # staff member's own calendar, so each connection reads exactly one calendar.
        m.Calendar.delete().where(m.Calendar.connection == conn_id, m.Calendar.is_destination == False).execute()
        kept = list(m.Calendar.select().where(m.Calendar.connection == conn_id))
        if len(kept) != 1 or kept[0].remote_id.rstrip("/") != url.rstrip("/"):
            raise BenchFailure(f"connection {conn_id}: expected its destination to be {url}, got {[c.remote_id for c in kept]}")
        for start in spread(appt_count, base, 0.0):
            actions.book(rt, email, start.isoformat(), (start + dt.timedelta(hours=1)).isoformat(), f"Appointment {i}")
        conn_ids.append(conn_id)
    return conn_ids


# -- measuring -----------------------------------------------------------------------


def run_phase(rt, phase: str, conn_ids: list[int]) -> dict:
    started = time.perf_counter()
    try:
        reports = actions.sync_now(rt)
    except Exception as exc:
        raise BenchFailure(f"{phase}: actions.sync_now raised {exc.__class__.__name__}: {exc}\n{traceback.format_exc()}") from exc
    wall = time.perf_counter() - started
    bad = [r for r in reports if r.get("outcome") != "ok"]
    if bad:
        lines = [
            f"  connection {r['connection_id']}: outcome={r.get('outcome')!r} status={r.get('status')!r} error={r.get('error')!r}"
            for r in bad
        ]
        raise BenchFailure(f"{phase}: {len(bad)} of {len(reports)} sync report(s) are not ok:\n" + "\n".join(lines))
    if sorted(r["connection_id"] for r in reports) != sorted(conn_ids):
        raise BenchFailure(
            f"{phase}: expected one report per connection {sorted(conn_ids)}, got {sorted(r['connection_id'] for r in reports)}"
        )
    total = {k: sum(r[k] for r in reports) for k in ("requests", "created", "updated", "deleted", "entries_read")}
    return {"phase": phase, "wall": wall, "reports": reports, **total}


def phase_table(rows: list[dict], connections: int) -> str:
    header = ("phase", "wall time (s)", "HTTP requests", "requests/connection", "created/updated/deleted", "entries read")
    body = [
        (
            r["phase"],
            f"{r['wall']:.2f}",
            str(r["requests"]),
            f"{r['requests'] / connections:.1f}",
            f"{r['created']}/{r['updated']}/{r['deleted']}",
            str(r["entries_read"]),
        )
        for r in rows
    ]
    return common.render_table(header, body)


def check_results(server, rows: dict, staff: int, events: int) -> list[str]:
    """Sanity checks on what the runs did; returns the problems found."""
    busy_count, appt_count = events // 2, events - events // 2
    problems = []
    initial, no_change = rows["initial sync"], rows["no-change resync"]
    if initial["created"] != staff * appt_count:
        problems.append(f"initial sync created {initial['created']} events, expected {staff * appt_count}")
    if initial["entries_read"] < staff * busy_count:
        problems.append(f"initial sync read {initial['entries_read']} entries, expected at least {staff * busy_count}")
    if no_change["created"] or no_change["updated"] or no_change["deleted"]:
        problems.append(f"the no-change resync wrote to the server ({no_change['created']}/{no_change['updated']}/{no_change['deleted']})")
    for i in range(staff):
        url = f"{server.calendar_home_url}cal-{i}/"
        found = len(server.list_hrefs(url))
        if found != events:
            problems.append(f"calendar cal-{i} holds {found} events on the server, expected {events}")
    for conn in m.Connection.select():
        if conn.status != m.ACTIVE:
            problems.append(f"connection {conn.id} is {conn.status!r} after the runs, expected 'active'")
    return problems


# -- main ----------------------------------------------------------------------------


def bench(args) -> int:
    staff, events, workers = args.staff, args.events, args.workers
    print(
        f"calsync sync benchmark: {staff} staff x {events} events "
        f"({events // 2} busy + {events - events // 2} appointments each), CALSYNC_WORKERS={workers}, "
        f"1 Radicale on 127.0.0.1"
    )
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}")
    with tempfile.TemporaryDirectory(prefix="calsync-bench-") as tmp:
        tmp_path = Path(tmp)
        server = None
        rt = None
        try:
            server = start_server("radicale", tmp_path / "radicale")
            env = make_env(tmp_path, CALSYNC_WORKERS=workers)
            rt = runtime.start(load_settings(env, read_dotenv=False))

            started = time.perf_counter()
            conn_ids = populate(rt, server, staff, events)
            print(
                f"setup: {len(conn_ids)} connections, {staff * events} events in "
                f"{time.perf_counter() - started:.1f}s (not measured below)\n"
            )

            rows = {}
            for phase in PHASES:
                rows[phase] = run_phase(rt, phase, conn_ids)
            calendars = m.Calendar.select().count()
            per_conn_calendars = calendars / len(conn_ids)

            print(phase_table([rows[p] for p in PHASES], len(conn_ids)))
            print()
            initial, no_change = rows["initial sync"], rows["no-change resync"]
            ratio = no_change["wall"] / initial["wall"] if initial["wall"] > 0 else float("nan")
            per_cal = no_change["requests"] / len(conn_ids) / per_conn_calendars
            verdict = "OK" if per_cal <= NO_CHANGE_TARGET else "ABOVE TARGET"
            print(f"no-change time / initial time: {ratio:.3f}")
            print(f"no-change requests per connection per calendar: {per_cal:.2f} (target <= {NO_CHANGE_TARGET}): {verdict}")

            problems = check_results(server, rows, staff, events)
            if problems:
                raise BenchFailure("sanity checks failed:\n" + "\n".join(f"  {p}" for p in problems))
            return 0
        finally:
            if rt is not None:
                rt.close()
            if server is not None:
                server.stop()


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return bench(args)
    except BenchFailure as exc:
        print(f"\nBENCHMARK FAILED: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
