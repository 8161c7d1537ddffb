"""Benchmark: one scheduler pass over 1,000 (or 10,000) CalDAV connections where nothing changed.

Run from the project root::

    .venv/bin/python bench/sweep_bench.py [--connections N] [--events M] [--workers W] [--repeat R]
                                          [--seed files|put] [--quick]

The parent process seeds N calendars (default 1,000; ``--quick`` 100) of M events each
(default 20) for the server's one user by **writing them into Radicale's filesystem storage
before it starts** (``--seed files``, the default: ``collection-root/<user>/cal-<i>/`` with its
``.Radicale.props`` and one ``.ics`` per event, byte for byte what a whole-collection PUT makes
Radicale write; ~1.6 ms per calendar of 20 events), then starts one Radicale on 127.0.0.1 in
a temporary directory and one **child process** (this script with ``--child``), which

1. builds its own runtime (SQLite in the temporary directory, ``CALSYNC_WORKERS=W``,
   the product's HTTP defaults: timeout 20 s, 2 retries, backoff 0.5 s);
2. checks the first and last calendar (PROPFIND depth 0: a calendar, its display name); with
   ``--seed put`` it seeds them itself first, one whole-collection ``PUT`` per calendar (~35 ms
   each; N x MKCALENDAR + N x M event PUTs took ~10 ms per PUT);
3. creates N staff members and N CalDAV connections directly in the database
   (``insert_many``, credentials from ``rt.vault.encrypt``, status pending, due now),
   each with exactly one calendar, its own, as destination and busy source -
   the rows ``actions.connect(..., calendar=...)`` would write, without its
   discovery (which lists all N calendars for every connection);
4. runs a first ``core.scheduler.run_once`` (reads N x M busy events; timed, but not
   the measurement; with file seeding Radicale also builds its item cache here);
5. makes every connection due again (``next_sync_at`` = now) and runs **settling passes** with
   nothing changed (timed and reported, not the measurement) until every calendar's ctag is
   recorded (two: after a read a probe asks for the sync token alone; once a quiet run came after
   the read, for the token with the ctag, and the ctag the token vouched for is recorded, one
   write per calendar); from then on a no-change probe asks for the ctag alone (the steady state);
6. makes them due again and times ``core.scheduler.run_once`` with nothing changed, R times
   (default 3, ``--quick`` 1).

Reported: seconds of the no-change pass (median; min-max), requests per connection
(calsync's own count, cross-checked with the requests Radicale logged), Radicale's
own time for them, the CPU seconds of the child and of Radicale, SQL statements per
connection, and memory: the child's peak RSS over its whole life (``ru_maxrss``, and
VmHWM before the timed passes; the first pass included), the peak during the timed passes
only (VmHWM, reset through ``/proc/self/clear_refs``) and the RSS before and after.

Results go to ``bench/results/latest.json`` (``--quick``: ``latest-quick.json``),
merged with what the other benchmarks wrote: keys ``sweep_<N>_*`` (``sweep_1000_*``,
``sweep_10000_*``), details under ``"sweep"`` for N = 1,000 and ``"sweep_<N>"`` otherwise.
Exit status 1 when the benchmark fails (a sync report not ok, a sanity check); with
``--strict`` also when a target is missed (N <= 1,000: pass under 6 s; N > 1,000: calsync CPU
under 6 ms x N per pass, i.e. 60 s for 10,000; always: under 300 MB, 1 request, 2 ms CPU and
4 SQL statements per connection).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import itertools
import json
import logging
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from common import add_result_options, merge_results, render_table, results_path

SECONDS_TARGET = 6.0  # issue 15 (was 15)
RSS_TARGET_MB = 300.0
CPU_MS_TARGET = 2.0  # calsync CPU per no-change sync
SQL_TARGET = 4.0  # SQL statements per no-change sync
SPREAD_DAYS = 30
CPU_MS_PASS_TARGET = 6.0  # issue 15, 10,000 connections: <= 60 s of calsync CPU per pass
MAX_CONNECTIONS = 20000
CHILD_TIMEOUT = 3600.0  # the whole child: seeding, first sync, timed passes
SETTLE_PASSES_MAX = 3  # no-change passes before the timed ones, until every ctag is recorded (two)


class BenchFailure(Exception):
    """The benchmark cannot give a valid result; ``str()`` says why."""


# == the child ====================================================================================


def _status_kb(field: str) -> int:
    """A field (VmRSS, VmHWM) of /proc/self/status in KiB; 0 when unavailable."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_seconds_self() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_seconds_of(pid: int) -> float | None:
    """User + system CPU seconds of another process (Radicale), from /proc/PID/stat."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


REQUEST_LINE = re.compile(r"\] \[INFO\] (\w+) request for ")
RESPONSE_LINE = re.compile(r"\] \[INFO\] \w+ response status for .* in ([0-9.]+) seconds")


def _radicale_log_position(log_path: Path) -> int:
    return log_path.stat().st_size


def _radicale_log_since(log_path: Path, position: int) -> dict:
    """Requests Radicale logged since ``position``, and the seconds it says it spent on them."""
    with open(log_path, "rb") as fh:
        fh.seek(position)
        text = fh.read().decode("utf-8", "replace")
    methods: dict[str, int] = {}
    seconds = 0.0
    for line in text.splitlines():
        found = REQUEST_LINE.search(line)
        if found:
            methods[found.group(1)] = methods.get(found.group(1), 0) + 1
            continue
        found = RESPONSE_LINE.search(line)
        if found:
            seconds += float(found.group(1))
    return {"requests": sum(methods.values()), "methods": methods, "server_seconds": seconds}


def _seed_base() -> dt.datetime:
    """Where the events start: the next full hour (UTC)."""
    return dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)


def _event_times(j: int, events: int, base: dt.datetime) -> tuple[str, str]:
    """DTSTART and DTEND (UTC, iCalendar form) of event ``j`` of ``events``, spread over SPREAD_DAYS."""
    fmt = "%Y%m%dT%H%M%SZ"
    start = (base + dt.timedelta(days=SPREAD_DAYS) / events * (j + 0.5)).replace(second=0, microsecond=0)
    return start.strftime(fmt), (start + dt.timedelta(minutes=30)).strftime(fmt)


def _calendar_body(i: int, events: int, base: dt.datetime) -> bytes:
    parts = ["BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calsync bench//sweep//EN\r\n", f"X-WR-CALNAME:Sweep calendar {i:04d}\r\n"]
    for j in range(events):
        start, end = _event_times(j, events, base)
        parts.append(
            f"BEGIN:VEVENT\r\nUID:sweep-{i}-{j}\r\nDTSTAMP:20260101T000000Z\r\n"
            f"DTSTART:{start}\r\nDTEND:{end}\r\n"
            f"SUMMARY:Busy {i}/{j}\r\nEND:VEVENT\r\n"
        )
    parts.append("END:VCALENDAR\r\n")
    return "".join(parts).encode("utf-8")


def seed_files(collections: Path, username: str, n: int, events: int, base: dt.datetime) -> int:
    """Write N calendars of M events straight into Radicale's filesystem storage, before it starts.

    The same files a whole-collection PUT of ``_calendar_body`` makes Radicale write (checked
    against Radicale 3.9.0): ``collection-root/<user>/cal-<i>/.Radicale.props`` (JSON, sorted keys:
    ``D:displayname`` from X-WR-CALNAME, ``tag`` VCALENDAR) and one ``<uid>.ics`` per event,
    serialized the way Radicale stores it (its PRODID, properties in vobject's order), so the
    ETags are the same. Radicale's item cache (``.Radicale.cache``) is not written: Radicale
    builds it on the first read of each item, i.e. in the first pass. Returns the files written.
    """
    from importlib.metadata import version

    prodid = f"-//Radicale//NONSGML Version {version('radicale')}//EN"
    home = collections / "collection-root" / username
    home.mkdir(parents=True, exist_ok=True)  # the principal: a plain collection, no props
    written = 0
    for i in range(n):
        cal = home / f"cal-{i}"
        cal.mkdir()
        (cal / ".Radicale.props").write_text(
            json.dumps({"D:displayname": f"Sweep calendar {i:04d}", "tag": "VCALENDAR"}, sort_keys=True), encoding="utf-8"
        )
        for j in range(events):
            start, end = _event_times(j, events, base)
            uid = f"sweep-{i}-{j}"
            with open(cal / f"{uid}.ics", "xb") as fh:
                fh.write(
                    f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:{prodid}\r\nBEGIN:VEVENT\r\n"
                    f"UID:{uid}\r\nDTSTART:{start}\r\nDTEND:{end}\r\nDTSTAMP:20260101T000000Z\r\n"
                    f"SUMMARY:Busy {i}/{j}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n".encode()
                )
        written += 1 + events
    return written


def check_seeded(cfg: dict, urls: list[str]) -> None:
    """The first and the last seeded calendar are calendars with their display name (PROPFIND depth 0)."""
    from xml.etree import ElementTree as ET

    import requests

    body = (
        b'<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:displayname/></D:prop></D:propfind>'
    )
    for i in sorted({0, len(urls) - 1}):
        resp = requests.request(
            "PROPFIND",
            urls[i],
            data=body,
            timeout=60,
            auth=(cfg["admin_username"], cfg["admin_password"]),
            headers={"Depth": "0", "Content-Type": "application/xml; charset=utf-8"},
        )
        if resp.status_code != 207:
            raise BenchFailure(f"seeding: PROPFIND {urls[i]} -> HTTP {resp.status_code}: {resp.text[:300]}")
        tree = ET.fromstring(resp.content)
        if (
            tree.find(".//{DAV:}resourcetype/{urn:ietf:params:xml:ns:caldav}calendar") is None
            or tree.findtext(".//{DAV:}displayname") != f"Sweep calendar {i:04d}"
        ):
            raise BenchFailure(f"seeding: {urls[i]} is not the calendar 'Sweep calendar {i:04d}': {resp.text[:300]}")


def seed(cfg: dict) -> list[str]:
    """N calendars of M events, one whole-collection PUT each (as the admin); returns their URLs."""
    import requests

    base = _seed_base()
    urls = []
    with requests.Session() as session:
        session.auth = (cfg["admin_username"], cfg["admin_password"])
        for i in range(cfg["connections"]):
            url = f"{cfg['calendar_home_url']}cal-{i}/"
            resp = session.put(
                url, data=_calendar_body(i, cfg["events"], base), timeout=60, headers={"Content-Type": "text/calendar; charset=utf-8"}
            )
            if resp.status_code not in (200, 201, 204):
                raise BenchFailure(f"seeding: PUT {url} -> HTTP {resp.status_code}: {resp.text[:300]}")
            urls.append(url)
    return urls


def create_connections(rt, cfg: dict, urls: list[str]) -> list[int]:
    """The rows actions.connect() writes (staff, connection, its one calendar, a status change), in bulk."""
    import models as m
    from core import clock
    from core.messages import meaning

    now = clock.now()
    n = cfg["connections"]
    with m.db.atomic():
        for start in range(0, n, 100):
            m.Staff.insert_many(
                [
                    {"email": f"sweep-{i:04d}@example.com", "name": f"Sweep Staff {i}", "timezone": "UTC"}
                    for i in range(start, min(n, start + 100))
                ]
            ).execute()
        staff_ids = [s.id for s in m.Staff.select(m.Staff.id).order_by(m.Staff.email)]
        for start in range(0, n, 100):
            m.Connection.insert_many(
                [
                    {
                        "staff": staff_ids[i],
                        "provider": "caldav",
                        "account": cfg["username"],
                        "server_url": cfg["base_url"],
                        "credentials": rt.vault.encrypt({"password": cfg["password"]}),
                        "status": m.PENDING,
                        "reason": meaning(m.PENDING),
                        "status_since": now,
                        "next_sync_at": now,
                        "created_at": now,
                    }
                    for i in range(start, min(n, start + 100))
                ]
            ).execute()
        by_staff = {c.staff_id: c.id for c in m.Connection.select(m.Connection.id, m.Connection.staff)}
        conn_ids = [by_staff[staff_ids[i]] for i in range(n)]
        for start in range(0, n, 100):
            rows = range(start, min(n, start + 100))
            m.Calendar.insert_many(
                [
                    {
                        "connection": conn_ids[i],
                        "remote_id": urls[i],
                        "name": f"Sweep calendar {i:04d}",
                        "is_destination": True,
                        "is_primary": True,
                        "is_busy_source": True,
                        "writable": True,
                    }
                    for i in rows
                ]
            ).execute()
            m.StatusChange.insert_many(
                [{"connection": conn_ids[i], "at": now, "old": "", "new": m.PENDING, "cause": "connect"} for i in rows]
            ).execute()
    for conn_id, url in zip(conn_ids, urls):
        cals = list(m.Calendar.select().where(m.Calendar.connection == conn_id))
        if len(cals) != 1 or cals[0].remote_id != url or not cals[0].is_destination:
            raise BenchFailure(f"connection {conn_id}: expected exactly its own calendar {url}")
    return conn_ids


def check_reports(what: str, reports: list[dict], conn_ids: list[int], entries_each: int | None) -> None:
    if sorted(r["connection_id"] for r in reports) != sorted(conn_ids):
        raise BenchFailure(f"{what}: {len(reports)} sync report(s) for {len(conn_ids)} due connections")
    bad = [r for r in reports if r["outcome"] != "ok"]
    if bad:
        sample = "\n".join(f"  connection {r['connection_id']}: {r['outcome']} {r['error']!r}" for r in bad[:10])
        raise BenchFailure(f"{what}: {len(bad)} of {len(reports)} sync report(s) are not ok:\n{sample}")
    writes = sum(r["created"] + r["updated"] + r["deleted"] for r in reports)
    if writes:
        raise BenchFailure(f"{what}: wrote {writes} event(s) to the server, expected none")
    if entries_each is not None:
        wrong = [r for r in reports if r["entries_read"] != entries_each]
        if wrong:
            raise BenchFailure(
                f"{what}: {len(wrong)} connection(s) read other than {entries_each} events, "
                f"e.g. {wrong[0]['connection_id']}: {wrong[0]['entries_read']}"
            )


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))] if values else 0.0


def child(cfg: dict) -> dict:
    from conftest import make_env  # tests/conftest.py: how a runtime is built

    import models as m
    from core import clock, runtime, scheduler
    from core.config import load_settings

    log_path = Path(cfg["log_path"])
    n, events = cfg["connections"], cfg["events"]
    env = make_env(
        Path(cfg["work"]), CALSYNC_WORKERS=cfg["workers"], CALSYNC_HTTP_TIMEOUT=20, CALSYNC_HTTP_RETRIES=2, CALSYNC_HTTP_BACKOFF=0.5
    )
    rt = runtime.start(load_settings(env, read_dotenv=False))
    out: dict = {"rss_mb_after_start": _status_kb("VmRSS") / 1024}
    try:
        if cfg["seed"] == "files":  # written by the parent before Radicale started
            urls = [f"{cfg['calendar_home_url']}cal-{i}/" for i in range(n)]
            out["seed_seconds"] = cfg["seed_seconds"]
        else:
            started = time.perf_counter()
            urls = seed(cfg)
            out["seed_seconds"] = time.perf_counter() - started
            print(f"  seeded {n} calendars x {events} events (whole-collection PUTs) in {out['seed_seconds']:.1f}s", flush=True)
        check_seeded(cfg, urls)

        started = time.perf_counter()
        conn_ids = create_connections(rt, cfg, urls)
        out["create_seconds"] = time.perf_counter() - started

        position = _radicale_log_position(log_path)
        started = time.perf_counter()
        first = scheduler.run_once(rt)
        out["first_pass_seconds"] = time.perf_counter() - started
        check_reports("first pass", first["syncs"], conn_ids, events)
        out["first_pass_requests"] = sum(r["requests"] for r in first["syncs"])
        out["first_pass_radicale"] = _radicale_log_since(log_path, position)
        out["rss_mb_after_first_pass"] = _status_kb("VmRSS") / 1024
        print(f"  first pass: {n} connections, {out['first_pass_requests']} requests in {out['first_pass_seconds']:.1f}s", flush=True)
        if m.Connection.select().where(m.Connection.status != m.ACTIVE).count():
            raise BenchFailure("after the first pass not every connection is active")

        # After a read, a no-change probe asks for the sync token alone; once a quiet run came after
        # the read, for the token with the ctag, and the ctag the token vouches for is recorded
        # (core.sync): the steady state, what every later pass does, starts after those two passes.
        out["settle_passes"] = []
        for _ in range(SETTLE_PASSES_MAX):
            m.Connection.update(next_sync_at=clock.now() - dt.timedelta(seconds=1)).execute()
            started = time.perf_counter()
            settle = scheduler.run_once(rt)
            seconds = time.perf_counter() - started
            check_reports("settling pass", settle["syncs"], conn_ids, 0)
            requests = sum(r["requests"] for r in settle["syncs"])
            out["settle_passes"].append({"seconds": seconds, "requests": requests})
            print(f"  settling pass {len(out['settle_passes'])}: {n} connections, {requests} requests in {seconds:.1f}s", flush=True)
            if not m.Calendar.select().where(m.Calendar.ctag == "").count():
                break
        else:
            raise BenchFailure(f"after {SETTLE_PASSES_MAX} settling passes some calendars still have no ctag recorded")

        # The peak so far (seeding, first pass): the counters below are reset for each timed pass.
        out["peak_rss_mb_before_passes"] = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, _status_kb("VmHWM")) / 1024
        passes = []
        peak_reset = False
        for k in range(cfg["repeat"]):
            m.Connection.update(next_sync_at=clock.now() - dt.timedelta(seconds=1)).execute()
            rss_before = _status_kb("VmRSS") / 1024
            peak_reset = _reset_peak_rss() or peak_reset
            position = _radicale_log_position(log_path)
            cpu_self, cpu_server = _cpu_seconds_self(), _cpu_seconds_of(cfg["radicale_pid"])
            counter = _StatementCounter()
            profiler = cProfile.Profile() if cfg.get("profile") else None
            started = time.perf_counter()
            with counter:
                if profiler:
                    profiler.enable()
                result = scheduler.run_once(rt)
                if profiler:
                    profiler.disable()
                    profiler.dump_stats(cfg["profile"])
            seconds = time.perf_counter() - started
            cpu_self = _cpu_seconds_self() - cpu_self
            after = _cpu_seconds_of(cfg["radicale_pid"])
            cpu_server = after - cpu_server if after is not None and cpu_server is not None else None
            reports = result["syncs"]
            check_reports(f"no-change pass {k + 1}", reports, conn_ids, 0)
            durations = [r["duration_ms"] for r in reports]
            passes.append(
                {
                    "seconds": seconds,
                    "requests": sum(r["requests"] for r in reports),
                    "radicale": _radicale_log_since(log_path, position),
                    "cpu_seconds_calsync": cpu_self,
                    "cpu_seconds_radicale": cpu_server,
                    "sync_ms_median": statistics.median(durations),
                    "sync_ms_p95": _pct(durations, 0.95),
                    "sync_ms_max": max(durations),
                    "sweep_checked": result["sweep"]["checked"],
                    "sql_statements": counter.count,
                    "rss_mb_before": rss_before,
                    "rss_mb_after": _status_kb("VmRSS") / 1024,
                    "peak_rss_mb_during": _status_kb("VmHWM") / 1024 if peak_reset else None,
                }
            )
            print(f"  no-change pass {k + 1}: {seconds:.2f}s, {passes[-1]['requests']} requests", flush=True)
        out["passes"] = passes
        out["radicale_items"] = n * events
    finally:
        rt.close()
    out["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    out["peak_rss_mb"] = max(
        [out["ru_maxrss_mb"], out.get("peak_rss_mb_before_passes", 0.0)] + [p["peak_rss_mb_during"] or 0.0 for p in out.get("passes", [])]
    )
    return out


# == the parent ===================================================================================


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=1000, help="connections = calendars (default 1000)")
    parser.add_argument("--events", type=int, default=20, help="events per calendar (default 20)")
    parser.add_argument("--workers", type=int, default=8, help="CALSYNC_WORKERS (default 8)")
    parser.add_argument("--repeat", type=int, default=3, help="timed no-change passes (default 3)")
    parser.add_argument(
        "--seed",
        choices=("files", "put"),
        default="files",
        help="files (default): write Radicale's storage files before it starts; put: one whole-collection PUT per calendar",
    )
    add_result_options(parser, "smoke run: --connections 100 --repeat 1")
    parser.add_argument(
        "--profile", type=Path, help="write a cProfile of the timed passes to this file (the scheduler's thread only: use with --workers 1)"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.connections, args.repeat = 100, 1
    if not 1 <= args.connections <= MAX_CONNECTIONS:
        parser.error(f"--connections must be between 1 and {MAX_CONNECTIONS}")
    if not 1 <= args.events <= 1000:
        parser.error("--events must be between 1 and 1000")
    if not 1 <= args.workers <= 256:
        parser.error("--workers must be between 1 and 256")
    if not 1 <= args.repeat <= 20:
        parser.error("--repeat must be between 1 and 20")
    args.output = results_path(args)
    return args


class _StatementCounter:
    """Counts the SQL statements run (every one goes through ``Database.execute_sql``).

    A wrapper, not peewee's DEBUG log: a log record per statement (made, locked, handled) cost
    ~0.1 ms of CPU a connection, counted into the very CPU figure it sits beside."""

    def __init__(self):
        self._calls = itertools.count()
        self.count = 0

    def __enter__(self):
        import peewee

        self._real = peewee.Database.execute_sql
        real, calls = self._real, self._calls

        def counted(db, sql, params=None, *args, **kwargs):
            next(calls)  # atomic under the GIL: the workers share the counter without a lock
            return real(db, sql, params, *args, **kwargs)

        peewee.Database.execute_sql = counted
        return self

    def __exit__(self, *exc):
        import peewee

        peewee.Database.execute_sql = self._real
        self.count = next(self._calls)


def run_child(cfg: dict, result_path: Path) -> dict:
    proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--child"], stdin=subprocess.PIPE, cwd=cfg["work"], text=True)
    try:
        proc.communicate(json.dumps({**cfg, "result_path": str(result_path)}), timeout=CHILD_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
        raise BenchFailure(f"the child process did not finish within {CHILD_TIMEOUT:.0f}s (killed)") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    data = json.loads(result_path.read_text()) if result_path.exists() else {}
    if proc.returncode != 0 or "error" in data:
        raise BenchFailure(data.get("error") or f"the child process exited with status {proc.returncode}")
    return data


def report(args, data: dict) -> tuple[str, dict]:
    n = args.connections
    passes = data["passes"]
    secs = [p["seconds"] for p in passes]
    median = statistics.median(secs)
    reqs = statistics.median([p["requests"] for p in passes]) / n
    server_reqs = statistics.median([p["radicale"]["requests"] for p in passes]) / n
    server_secs = statistics.median([p["radicale"]["server_seconds"] for p in passes])
    peaks = [p["peak_rss_mb_during"] for p in passes if p["peak_rss_mb_during"] is not None]
    rng = f" ({min(secs):.2f}-{max(secs):.2f})" if len(secs) > 1 else ""
    rows = [
        (
            "seed: " + ("files written before Radicale started" if args.seed == "files" else "whole-collection PUTs") + " (not measured)",
            f"{data['seed_seconds']:.1f} s",
        ),
        (
            "first pass: reads all busy events (not the target)",
            f"{data['first_pass_seconds']:.1f} s, {data['first_pass_requests'] / n:.1f} requests/connection",
        ),
        (
            "settling passes: the token alone, then the token vouching for the ctag (not the target)",
            " + ".join(f"{p['seconds']:.1f}" for p in data["settle_passes"]) + " s",
        ),
        (f"no-change pass, run_once, median of {len(secs)}", f"{median:.2f} s{rng}"),
        ("  per connection", f"{median / n * 1000:.1f} ms"),
        (
            "  sync duration per connection (median / p95)",
            (
                f"{statistics.median([p['sync_ms_median'] for p in passes]):.0f} / "
                f"{statistics.median([p['sync_ms_p95'] for p in passes]):.0f} ms"
            ),
        ),
        ("  requests per connection (calsync's count)", f"{reqs:.2f}"),
        ("  requests per connection (Radicale's log)", f"{server_reqs:.2f}"),
        ("  Radicale's own time for them (summed over its threads)", f"{server_secs:.1f} s"),
        (
            "  CPU seconds: calsync child / Radicale",
            f"{statistics.median([p['cpu_seconds_calsync'] for p in passes]):.1f} / "
            + (
                f"{statistics.median([p['cpu_seconds_radicale'] for p in passes]):.1f} s"
                if all(p["cpu_seconds_radicale"] is not None for p in passes)
                else "n/a"
            ),
        ),
        ("peak RSS of the child, whole life (ru_maxrss / VmHWM)", f"{data['peak_rss_mb']:.0f} MB"),
        ("  of it before the timed passes (seeding, first pass)", f"{data['peak_rss_mb_before_passes']:.0f} MB"),
        ("  during the no-change passes only (VmHWM after a reset)", f"{max(peaks):.0f} MB" if peaks else "n/a"),
        (
            "RSS after start / after first pass / after last pass",
            f"{data['rss_mb_after_start']:.0f} / {data['rss_mb_after_first_pass']:.0f} / {passes[-1]['rss_mb_after']:.0f} MB",
        ),
    ]
    cpu_ms = statistics.median([p["cpu_seconds_calsync"] for p in passes]) / n * 1000
    sql = statistics.median([p["sql_statements"] for p in passes]) / n
    rows.append(("  calsync CPU per connection", f"{cpu_ms:.2f} ms"))
    rows.append(("  SQL statements per connection (the whole pass, claims and sweep included)", f"{sql:.1f}"))
    cpu_pass = statistics.median([p["cpu_seconds_calsync"] for p in passes])
    rows.append(("  calsync CPU per pass", f"{cpu_pass:.1f} s"))
    keys = {  # named after the connection count: sweep_1000_*, sweep_10000_*, ...
        f"sweep_{n}_seconds": median,
        f"sweep_{n}_peak_rss_mb": data["peak_rss_mb"],
        f"sweep_{n}_requests_per_connection": reqs,
        f"sweep_{n}_cpu_ms_per_connection": round(cpu_ms, 2),
        f"sweep_{n}_sql_per_connection": round(sql, 2),
    }
    if n <= 1000:  # the wall-time target is the 1,000-connection one
        first_target = ("no-change pass seconds", median, f"<= {SECONDS_TARGET:g}", median <= SECONDS_TARGET)
    else:  # issue 15 for 10,000: <= 60 s of calsync CPU per pass (6 ms per connection)
        limit = CPU_MS_PASS_TARGET * n / 1000
        first_target = ("calsync CPU seconds per pass", cpu_pass, f"<= {limit:g}", cpu_pass <= limit)
    targets = [
        first_target,
        ("peak RSS MB", data["peak_rss_mb"], f"<= {RSS_TARGET_MB:g}", data["peak_rss_mb"] <= RSS_TARGET_MB),
        ("requests per connection", reqs, "<= 1", reqs <= 1),
        ("calsync CPU ms per connection", cpu_ms, f"<= {CPU_MS_TARGET:g}", cpu_ms <= CPU_MS_TARGET),
        ("SQL statements per connection", sql, f"<= {SQL_TARGET:g}", sql <= SQL_TARGET),
    ]
    text = "\n".join(
        [
            render_table((f"{n} connections x {args.events} events, {args.workers} workers", "measured"), rows),
            "",
            render_table(
                ("target", "measured", "target", "verdict"), [(t, f"{v:.4g}", lim, "OK" if ok else "MISSED") for t, v, lim, ok in targets]
            ),
        ]
    )
    keys["_missed"] = [t for t, _, _, ok in targets if not ok]
    return text, keys


def bench(args) -> int:
    from servers import CalDAVServer, RadicaleServer, start_server

    wall_started = time.perf_counter()
    load_before = list(os.getloadavg())
    print(
        f"calsync scheduler pass: {args.connections} CalDAV connections x {args.events} events, nothing changed, "
        f"CALSYNC_WORKERS={args.workers}, 1 Radicale on 127.0.0.1"
    )
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}, load average {load_before[0]:.2f}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="calsync-sweep-") as tmp:
        tmp_path = Path(tmp)
        server: CalDAVServer | None = None
        seed_seconds = None
        try:
            if args.seed == "files":
                # What start_server does, with the calendars written into the storage in between.
                server = RadicaleServer(tmp_path / "radicale")
                started = time.perf_counter()
                files = seed_files(server.root / "collections", server.username, args.connections, args.events, _seed_base())
                seed_seconds = time.perf_counter() - started
                print(
                    f"  seeded {args.connections} calendars x {args.events} events as {files} files in "
                    f"Radicale's storage in {seed_seconds:.1f}s",
                    flush=True,
                )
                server.start()
            else:
                server = start_server("radicale", tmp_path / "radicale")
            (tmp_path / "child").mkdir()
            cfg = {
                "work": str(tmp_path / "child"),
                "connections": args.connections,
                "events": args.events,
                "workers": args.workers,
                "repeat": args.repeat,
                "base_url": server.base_url,
                "calendar_home_url": server.calendar_home_url,
                "username": server.username,
                "password": server.password,
                "admin_username": server.admin_username,
                "admin_password": server.admin_password,
                "log_path": str(server.log_path),
                "radicale_pid": server.pid,
                "seed": args.seed,
                "seed_seconds": seed_seconds,
                "profile": str(args.profile.resolve()) if args.profile else None,
            }
            data = run_child(cfg, tmp_path / "result.json")
        finally:
            if server is not None:
                server.stop()
    text, keys = report(args, data)
    print()
    print(text)
    missed = keys.pop("_missed")
    details = {
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "connections": args.connections,
        "events": args.events,
        "workers": args.workers,
        "quick": args.quick,
        "seed": args.seed,
        "wall_seconds": time.perf_counter() - wall_started,
        "load_average_before": load_before,
        "load_average_after": list(os.getloadavg()),
        "targets_missed": missed,
        **data,
    }
    # 1,000 connections keep the section "sweep"; other counts get their own, e.g. "sweep_10000".
    merge_results(args.output, "sweep" if args.connections == 1000 else f"sweep_{args.connections}", keys, details)
    print(
        f"\nrun time end to end: {details['wall_seconds']:.0f} s (seeding {data['seed_seconds']:.0f} s, "
        f"first pass {data['first_pass_seconds']:.0f} s, settling {sum(p['seconds'] for p in data['settle_passes']):.0f} s, "
        f"{len(data['passes'])} timed pass(es) "
        f"{sum(p['seconds'] for p in data['passes']):.0f} s)"
    )
    print(f"wrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")
    return 1 if args.strict and missed else 0


def child_main() -> int:

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    cfg = json.loads(sys.stdin.read())
    result_path = Path(cfg["result_path"])
    try:
        data = child(cfg)
        code = 0
    except BenchFailure as exc:
        data, code = {"error": str(exc)}, 1
    result_path.write_text(json.dumps(data, indent=2))
    return code


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        return child_main()
    try:
        return bench(args)
    except BenchFailure as exc:
        print(f"\nBENCHMARK FAILED: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
