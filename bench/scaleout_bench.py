"""Benchmark: N scheduler processes sharing one PostgreSQL, a no-change pass over 10,000 connections.

Run from the project root::

    .venv/bin/python bench/scaleout_bench.py [--connections N] [--schedulers 1,2,4] [--grow ROWS] [--quick] [--strict]

The parent process

1. starts one real PostgreSQL (``tests/pg.py``: initdb + pg_ctl, listening on 127.0.0.1 only, stopped
   by its postmaster PID at the end) and binds calsync to a fresh database of it
   (``CALSYNC_DATABASE_URL``, as ``tests/test_scheduler.py`` does);
2. starts a **CalDAV stand-in**: a tiny threaded server on 127.0.0.1 that answers every
   ``PROPFIND`` (the probe of ``CalDAVProvider.probe``) with the same canned 207 from memory:
   a calendar, writable (``DAV:write`` in ``current-user-privilege-set``), VEVENT, with a fixed
   ``getctag`` and ``sync-token``. Any other request is counted and answered 405 (a sanity failure);
3. seeds N connections (default 10,000; ``--quick`` 1,000) with ``insert_many``: N staff members,
   N active CalDAV connections, each with one calendar (destination and busy source) already synced
   with the stand-in's ctag and sync-token and ``last_synced_at`` set, so a sync is calsync's pure
   no-change path (one PROPFIND, and one UPDATE: the connection's success, with the run counted into
   its open stretch of no-change runs, ``core.sync_runs``);
4. for each S in ``--schedulers`` (1, 2, 4): makes every connection due, starts S **child processes**
   (this script with ``--child``; each its own runtime, ``CALSYNC_WORKERS`` and the HTTP settings
   left at the product defaults), waits until all of them are ready, then tells them to go at once;
   each runs ``core.runner.sync_due`` (the scheduler's pass: each free worker claims the next
   ``CALSYNC_WORKERS`` due connections with ``FOR UPDATE SKIP LOCKED``, so the schedulers share the
   pass by how fast each syncs) with its own lease owner id.
   Measured: wall time of the pass (the go to the last child done), syncs per second in total and per
   scheduler. Checked (exit 1 when not): every connection counted exactly one no-change run in the
   pass (``quiet_runs`` = 1) and no SyncRun row was written, every report is ``ok`` with one request, the stand-in saw N PROPFINDs and nothing
   else, no lease is left, every connection is still active;
5. grows the ``connection`` table to ``--grow`` rows (default 100,000; one ``INSERT ... SELECT``
   over ``generate_series``, the extra rows not due: spread over the next sync interval, 5 % stopped)
   and runs ``EXPLAIN (ANALYZE, BUFFERS)`` on every statement ``leases.claim_due`` sends (captured from
   peewee's query log: the ``reap_dead`` look-up and the claim ``UPDATE ... FOR UPDATE SKIP LOCKED``),
   each inside a transaction that is rolled back, in two states: the seeded connections due
   (limit 500, a large claim) and nothing due (limit 8, a ``sync_due`` or ``Dispatcher`` claim with 8 free
   workers). It prints each plan, its execution time (median of 5), whether it uses an index, then
   creates candidate indexes **in the bench database only** and measures again.

Results go to ``bench/results/latest.json`` (``--quick``: ``latest-quick.json``) via
``merge_results``: ``scaleout_syncs_per_s_1``, ``_2``, ``_4``, ``scaleout_claim_ms_100k``, details
under ``"scaleout"``. Exit status 1 when the benchmark fails (a sanity check); with ``--strict``
also when a target is missed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import re
import resource
import select
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from common import add_result_options, merge_results, render_table, results_path  # bench/common.py

CTAG = '"scaleout-ctag-1"'
SYNC_TOKEN = "http://calsync.bench/ns/sync/1"
READY_TIMEOUT = 120.0  # seconds for every child to start (imports, runtime, migrations check)
EXPLAIN_REPEAT = 5
# Targets set by this benchmark (issue 15 names none for scale-out).
SCALE_TARGET = 1.5  # N schedulers: total syncs/s at least 1.5 x one scheduler's, where the cores allow it
SHARE_TARGET = 0.8  # N schedulers on a machine one already fills: total syncs/s at least 0.8 x one's
TICK_MS_TARGET = 10.0  # a whole claim_due call with nothing (or little) due, on the grown table: one tick

# Candidate indexes for the claim (created in the bench database only, never in models.py).
CANDIDATE_INDEXES = [
    ("connection_due_claim", "CREATE INDEX connection_due_claim ON connection (next_sync_at NULLS FIRST, id) WHERE status <> 'stopped'"),
    ("connection_leased", "CREATE INDEX connection_leased ON connection (lease_owner) WHERE lease_owner IS NOT NULL"),
]


class BenchFailure(Exception):
    """The benchmark cannot give a valid result; ``str()`` says why."""


# == the CalDAV stand-in ============================================================================

PROBE_BODY = f"""<?xml version="1.0" encoding="utf-8"?>
<d:multistatus xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:caldav" xmlns:cs="http://calendarserver.org/ns/">
 <d:response>
  <d:href>/cal/</d:href>
  <d:propstat>
   <d:prop>
    <d:resourcetype><d:collection/><c:calendar/></d:resourcetype>
    <d:displayname>Scale-out calendar</d:displayname>
    <d:current-user-privilege-set><d:privilege><d:read/></d:privilege><d:privilege><d:write/></d:privilege></d:current-user-privilege-set>
    <cs:getctag>{CTAG}</cs:getctag>
    <d:sync-token>{SYNC_TOKEN}</d:sync-token>
    <c:supported-calendar-component-set><c:comp name="VEVENT"/></c:supported-calendar-component-set>
   </d:prop>
   <d:status>HTTP/1.1 200 OK</d:status>
  </d:propstat>
 </d:response>
</d:multistatus>
""".encode()
PROBE_ANSWER = (
    b"HTTP/1.1 207 Multi-Status\r\nContent-Type: application/xml; charset=utf-8\r\n"
    b"DAV: 1, 2, 3, calendar-access\r\nContent-Length: " + str(len(PROBE_BODY)).encode() + b"\r\n\r\n" + PROBE_BODY
)
OTHER_ANSWER = b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n"
MAX_REQUESTS_PER_CONNECTION = 10_000  # keep-alive bound
MAX_HEADER_LINES = 100


class _StandIn(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # 4 schedulers x 8 workers connect at once; the default 5 drops SYNs

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _StandInHandler)
        self.lock = threading.Lock()
        self.methods: dict[str, int] = {}
        self.tcp_connections = 0
        self.idle_timeouts = 0

    def count(self, method: str) -> None:
        with self.lock:
            self.methods[method] = self.methods.get(method, 0) + 1

    def take_counts(self) -> dict:
        with self.lock:
            methods, self.methods = self.methods, {}
            tcp, self.tcp_connections = self.tcp_connections, 0
            idle, self.idle_timeouts = self.idle_timeouts, 0
        return {"methods": methods, "requests": sum(methods.values()), "tcp_connections": tcp, "idle_connections_timed_out": idle}


class _StandInHandler(socketserver.StreamRequestHandler):
    """HTTP/1.1 with keep-alive, just enough for calsync's probe: no parsing beyond the request line,
    Content-Length and Connection."""

    timeout = 30  # seconds a keep-alive connection may stay idle
    server: _StandIn

    def handle(self) -> None:
        server = self.server
        with server.lock:
            server.tcp_connections += 1
        try:
            self._serve()
        except OSError:  # a client's idle keep-alive connection timed out or was reset: nothing to answer
            with server.lock:
                server.idle_timeouts += 1

    def _serve(self) -> None:
        server = self.server
        for _ in range(MAX_REQUESTS_PER_CONNECTION):
            line = self.rfile.readline(65537)
            if not line.strip():
                return
            method = line.split(b" ", 1)[0].decode("ascii", "replace")
            length, close = 0, False
            for _ in range(MAX_HEADER_LINES):
                header = self.rfile.readline(65537)
                if header in (b"\r\n", b"\n", b""):
                    break
                name, _, value = header.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value.strip() or 0)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            if length:
                self.rfile.read(length)
            server.count(method)
            self.wfile.write(PROBE_ANSWER if method == "PROPFIND" else OTHER_ANSWER)
            self.wfile.flush()
            if close:
                return


# == the child: one scheduler process ===============================================================


def child_main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    import models as m  # noqa: F401  (imports before "ready": not part of the pass)
    from core import leases, runner, runtime
    from core.config import load_settings

    rt = runtime.start(load_settings(dict(os.environ), read_dotenv=False))
    owner = leases.owner_id("scaleout")
    print("READY", flush=True)
    readable, _, _ = select.select([sys.stdin], [], [], READY_TIMEOUT * 2)
    if not readable or sys.stdin.readline().strip() != "GO":
        print("RESULT " + json.dumps({"error": "no GO from the parent"}), flush=True)
        return 1
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.time()
    try:
        reports = runner.sync_due(rt, owner=owner)
    finally:
        finished = time.time()
        rt.close()
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    outcomes: dict[str, int] = {}
    for r in reports:
        outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
    bad = [{"connection_id": r.connection_id, "outcome": r.outcome, "error": r.error} for r in reports if r.outcome != "ok"][:10]
    durations = sorted(r.duration_ms for r in reports) or [0]
    print(
        "RESULT "
        + json.dumps(
            {
                "owner": owner,
                "pid": os.getpid(),
                "workers": rt.settings.workers,
                "started": started,
                "finished": finished,
                "syncs": len(reports),
                "outcomes": outcomes,
                "bad": bad,
                "connection_ids": [r.connection_id for r in reports],
                "requests": sum(r.requests for r in reports),
                "not_one_request": sum(1 for r in reports if r.requests != 1),
                "writes": sum(r.created + r.updated + r.deleted + r.entries_read for r in reports),
                "cpu_seconds": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
                "sync_ms_median": statistics.median(durations),
                "sync_ms_p95": durations[min(len(durations) - 1, round(0.95 * (len(durations) - 1)))],
            }
        ),
        flush=True,
    )
    return 0


# == the parent =====================================================================================


def _cpu_of(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None  # utime + stime + cutime + cstime: the postmaster's reaped backends included


def _pipe(stream: IO[str] | None) -> IO[str]:
    """A scheduler process's stdin or stdout: each is started with both as pipes."""
    if stream is None:  # pragma: no cover - Popen(stdin=PIPE, stdout=PIPE) sets both
        raise BenchFailure("a scheduler process was started without its pipes")
    return stream


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def seed(rt, n: int, url: str) -> list[int]:
    """N staff, N active CalDAV connections, one already-synced calendar each (insert_many, 1,000 a go)."""
    import models as m
    from core import accounts, clock
    from core.messages import meaning

    now = clock.now()
    due = now - dt.timedelta(seconds=1)
    credentials = rt.vault.encrypt({"password": "bench"})  # the same ciphertext for every row: one encryption
    batch = 1000
    with m.db.atomic():
        for start in range(0, n, batch):
            m.Staff.insert_many(
                [
                    {"email": f"scale-{i:06d}@example.com", "name": f"Scale Staff {i}", "timezone": "UTC"}
                    for i in range(start, min(n, start + batch))
                ]
            ).execute()
        staff_ids = [s for (s,) in m.tuples(m.Staff.select(m.Staff.id).order_by(m.Staff.email))]
        for start in range(0, n, batch):
            m.Connection.insert_many(
                [
                    {
                        "staff": staff_ids[i],
                        "provider": "caldav",
                        "account": f"user{i}",
                        "server_url": url,
                        "credentials": credentials,
                        "status": m.ACTIVE,
                        "reason": meaning(m.ACTIVE),
                        "status_since": now,
                        "next_sync_at": due,
                        "created_at": now,
                        "last_sync_at": now,
                        "last_success_at": now,
                        "account_key": accounts.fingerprint(rt, "caldav", url, f"user{i}"),
                    }
                    for i in range(start, min(n, start + batch))
                ]
            ).execute()
        by_staff: dict[int, int] = dict(m.tuples(m.Connection.select(m.Connection.staff, m.Connection.id)))
        conn_ids = [by_staff[staff_ids[i]] for i in range(n)]
        for start in range(0, n, batch):
            m.Calendar.insert_many(
                [
                    {
                        "connection": conn_ids[i],
                        "remote_id": f"{url}cal/{i}/",
                        "name": f"Scale calendar {i}",
                        "is_destination": True,
                        "is_primary": True,
                        "is_busy_source": True,
                        "writable": True,
                        "sync_token": SYNC_TOKEN,
                        "ctag": CTAG,
                        "last_synced_at": now,
                    }
                    for i in range(start, min(n, start + batch))
                ]
            ).execute()
    return conn_ids


def _pg_sessions(database) -> int:
    return database.execute_sql("SELECT sessions FROM pg_stat_database WHERE datname = current_database()").fetchone()[0]


def make_due(conn_ids_count: int) -> None:
    import models as m
    from core import clock

    m.SyncRun.delete().execute()
    m.Connection.update(
        next_sync_at=clock.now() - dt.timedelta(seconds=1),
        lease_owner=None,
        lease_expires_at=None,
        quiet_runs=0,
        quiet_since=None,
        quiet_requests=0,
        quiet_ms=0,
    ).execute()
    if m.Connection.select().where(m.Connection.status == m.ACTIVE).count() != conn_ids_count:
        raise BenchFailure("not every seeded connection is active before the pass")


def run_pass(args, env: dict, schedulers: int, conn_ids: list[int], stand_in: _StandIn, pg_pid: int) -> dict:
    import models as m

    make_due(len(conn_ids))
    m.db.close()  # the parent holds no connection during the pass
    stand_in.take_counts()
    procs = []
    try:
        for _ in range(schedulers):
            procs.append(
                subprocess.Popen(
                    [sys.executable, str(Path(__file__).resolve()), "--child"],
                    env=env,
                    cwd=str(ROOT),
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        deadline = time.monotonic() + READY_TIMEOUT
        for p in procs:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchFailure(f"a scheduler process (PID {p.pid}) was not ready within {READY_TIMEOUT:.0f}s")
                out = _pipe(p.stdout)
                readable, _, _ = select.select([out], [], [], left)
                if readable:
                    line = out.readline()
                    if not line:
                        raise BenchFailure(f"scheduler process {p.pid} ended before it was ready (status {p.wait(5)})")
                    if line.strip() == "READY":
                        break
        cpu_pg, cpu_self = _cpu_of(pg_pid), _self_cpu()
        go = time.time()
        for p in procs:
            go_in = _pipe(p.stdin)
            go_in.write("GO\n")
            go_in.flush()
        results = []
        deadline = time.monotonic() + args.pass_timeout
        for p in procs:
            result = None
            while result is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchFailure(f"the pass with {schedulers} scheduler(s) did not end within {args.pass_timeout:.0f}s")
                out = _pipe(p.stdout)
                readable, _, _ = select.select([out], [], [], left)
                if readable:
                    line = out.readline()
                    if not line:
                        raise BenchFailure(f"scheduler process {p.pid} ended without a result (status {p.wait(5)})")
                    if line.startswith("RESULT "):
                        result = json.loads(line[len("RESULT ") :])
            if "error" in result:
                raise BenchFailure(f"scheduler process {p.pid}: {result['error']}")
            results.append(result)
        cpu_self = _self_cpu() - cpu_self
        after_pg = _cpu_of(pg_pid)
        for p in procs:
            p.wait(timeout=30)
            if p.returncode != 0:
                raise BenchFailure(f"scheduler process {p.pid} exited with status {p.returncode}")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()  # by its own PID (Popen.kill)
                p.wait(timeout=30)
    wall = max(r["finished"] for r in results) - go
    served = stand_in.take_counts()
    check_pass(schedulers, conn_ids, results, served)
    n = len(conn_ids)
    return {
        "schedulers": schedulers,
        "wall_seconds": wall,
        "syncs": n,
        "syncs_per_s": n / wall,
        "per_scheduler": [
            {
                "pid": r["pid"],
                "workers": r["workers"],
                "syncs": r["syncs"],
                "seconds": r["finished"] - r["started"],
                "syncs_per_s": r["syncs"] / max(r["finished"] - r["started"], 1e-9),
                "cpu_seconds": r["cpu_seconds"],
                "start_lag_ms": (r["started"] - go) * 1000,
                "sync_ms_median": r["sync_ms_median"],
                "sync_ms_p95": r["sync_ms_p95"],
            }
            for r in results
        ],
        "cpu_seconds_schedulers": sum(r["cpu_seconds"] for r in results),
        "cpu_seconds_postgres": (after_pg - cpu_pg) if after_pg is not None and cpu_pg is not None else None,
        "cpu_seconds_stand_in": cpu_self,
        "stand_in": served,
        "pg_sessions_opened": _pg_sessions(m.db.obj) - args._sessions_before,
    }


def check_pass(schedulers: int, conn_ids: list[int], results: list[dict], served: dict) -> None:
    import models as m

    what = f"pass with {schedulers} scheduler(s)"
    n = len(conn_ids)
    synced = [cid for r in results for cid in r["connection_ids"]]
    if len(synced) != n or set(synced) != set(conn_ids):
        raise BenchFailure(f"{what}: the schedulers synced {len(synced)} connection(s) ({len(set(synced))} distinct) of {n} due")
    for r in results:
        if r["bad"] or set(r["outcomes"]) - {"ok"}:
            sample = "\n".join(f"  connection {b['connection_id']}: {b['outcome']} {b['error']!r}" for b in r["bad"])
            raise BenchFailure(f"{what}: process {r['pid']}: outcomes {r['outcomes']}:\n{sample}")
        if r["not_one_request"] or r["writes"]:
            raise BenchFailure(
                f"{what}: process {r['pid']}: {r['not_one_request']} sync(s) made other than one "
                f"request, {r['writes']} event(s) written or read: not a no-change pass"
            )
    rows = m.SyncRun.select().count()
    if rows:
        raise BenchFailure(f"{what}: {rows} SyncRun row(s) written by a no-change pass (a stretch adds none)")
    C = m.Connection
    per_conn: dict[int, int] = dict(m.tuples(C.select(C.id, C.quiet_runs).where(C.id.in_(list(conn_ids)))))
    twice = {c: k for c, k in per_conn.items() if k != 1}
    if len(per_conn) != n or twice:
        raise BenchFailure(f"{what}: {len(twice)} connection(s) synced other than once, e.g. {list(twice.items())[:5]}")
    if served["methods"] != {"PROPFIND": n}:
        raise BenchFailure(f"{what}: the stand-in served {served['methods']}, expected {{'PROPFIND': {n}}}")
    leased = m.Connection.select().where(m.Connection.lease_owner.is_null(False)).count()
    if leased:
        raise BenchFailure(f"{what}: {leased} lease(s) still held after the pass")
    if m.Connection.select().where(m.Connection.status != m.ACTIVE).count():
        raise BenchFailure(f"{what}: a connection is no longer active after the pass")
    if m.Connection.select().where(m.Connection.next_sync_at <= m.Connection.last_sync_at).count():
        raise BenchFailure(f"{what}: a connection was not given its next sync time")


# -- the claim query on a grown table ---------------------------------------------------------------


def grow(total: int, interval: int) -> int:
    """Extra connection rows up to ``total``: copies of the first seeded row, not due (spread over an
    interval starting 5 minutes from now, so none falls due during the study), 5 % stopped. One INSERT ... SELECT over generate_series."""
    import models as m

    C = m.Connection
    have = C.select().count()
    extra = total - have
    if extra <= 0:
        return 0
    template = C.select(pw_min(C.id)).scalar()
    overrides = {
        "account": "'grown' || g",
        "account_key": "md5('grown' || g)",
        "next_sync_at": f"now() AT TIME ZONE 'UTC' + make_interval(secs => 300 + mod(g, {interval}))",
        "status": "CASE WHEN mod(g, 20) = 0 THEN 'stopped' ELSE status END",
        "last_sync_at": "now() AT TIME ZONE 'UTC'",
    }
    columns = [f.column_name for f in C._meta.sorted_fields if f.column_name != "id"]
    select_list = ", ".join(overrides.get(c, f'"{c}"') for c in columns)
    with m.db.atomic():
        m.db.execute_sql(
            f"INSERT INTO connection ({', '.join(chr(34) + c + chr(34) for c in columns)}) "
            f"SELECT {select_list} FROM connection CROSS JOIN generate_series(1, %s) AS g WHERE id = %s",
            (extra, template),
        )
    m.db.execute_sql("ANALYZE connection")
    return extra


def pw_min(field):
    import peewee as pw

    return pw.fn.MIN(field)


class _Capture(logging.Handler):
    """The (sql, params) peewee logs for each statement."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.statements: list[tuple[str, tuple]] = []

    def emit(self, record):
        if isinstance(record.msg, tuple) and len(record.msg) == 2:
            sql, params = record.msg
            self.statements.append((sql, tuple(params or ())))

    def __enter__(self):
        log = logging.getLogger("peewee")
        self._level, self._propagate = log.level, log.propagate
        log.setLevel(logging.DEBUG)
        log.propagate = False
        log.addHandler(self)
        return self

    def __exit__(self, *exc):
        log = logging.getLogger("peewee")
        log.removeHandler(self)
        log.setLevel(self._level)
        log.propagate = self._propagate


def claim_statements(limit: int) -> tuple[list[tuple[str, tuple]], float, int]:
    """What ``leases.claim_due`` sends, captured from peewee's log, run in a transaction rolled back;
    also the client-side milliseconds of the whole call and how many it claimed."""
    import models as m
    from core import leases

    with _Capture() as capture, m.db.atomic() as txn:
        started = time.perf_counter()
        claimed = leases.claim_due("scaleout-explain@bench:0", limit)
        ms = (time.perf_counter() - started) * 1000
        txn.rollback()
    statements = [
        (sql, params)
        for sql, params in capture.statements
        if not re.match(r"\s*(SAVEPOINT|RELEASE|ROLLBACK|BEGIN|COMMIT)", sql, re.IGNORECASE)
    ]
    return statements, ms, len(claimed)


def claim_call_ms(limit: int) -> float:
    """Median client-side milliseconds of the whole ``claim_due`` call (rolled back each time)."""
    return statistics.median(claim_statements(limit)[1] for _ in range(EXPLAIN_REPEAT))


def explain(sql: str, params: tuple) -> dict:
    """EXPLAIN (ANALYZE, BUFFERS) of one statement, EXPLAIN_REPEAT times, each rolled back."""
    import models as m

    times, plan = [], []
    for _ in range(EXPLAIN_REPEAT):
        with m.db.atomic() as txn:
            plan = [row[0] for row in m.db.execute_sql("EXPLAIN (ANALYZE, BUFFERS) " + sql, params).fetchall()]
            txn.rollback()
        found = [float(x) for line in plan for x in re.findall(r"Execution Time: ([0-9.]+) ms", line)]
        times.append(found[0] if found else float("nan"))
    text = "\n".join(plan)
    indexes = sorted(set(re.findall(r"(?:Index Scan|Index Only Scan|Bitmap Index Scan)(?: Backward)? (?:using|on) (\w+)", text)))
    return {
        "plan": plan,
        "execution_ms": statistics.median(times),
        "execution_ms_all": times,
        "uses_index": bool(indexes),
        "indexes": indexes,
        "seq_scan": bool(re.search(r"Seq Scan on connection", text)),
    }


def _label(sql: str) -> str:
    if "SKIP LOCKED" in sql:
        return "claim UPDATE ... FOR UPDATE SKIP LOCKED"
    if re.search(r"DISTINCT", sql, re.IGNORECASE) and "lease_owner" in sql:
        return "reap_dead: leases held by processes of this host"
    return " ".join(sql.split())[:60]


def set_state(due_ids: list[int], due: bool) -> int:
    """The seeded connections due now (or not), the grown rows as inserted; returns how many are due."""
    import models as m
    from core import clock

    C = m.Connection
    now = clock.now()
    when = now - dt.timedelta(seconds=1) if due else now + dt.timedelta(seconds=600)
    for start in range(0, len(due_ids), 5000):
        C.update(next_sync_at=when, lease_owner=None, lease_expires_at=None).where(C.id.in_(due_ids[start : start + 5000])).execute()
    m.db.execute_sql("ANALYZE connection")
    return C.select().where(C.status != m.STOPPED, C.next_sync_at <= now, C.lease_expires_at.is_null() | (C.lease_expires_at < now)).count()


def claim_study(args, conn_ids: list[int], interval: int) -> dict:
    import models as m

    started = time.perf_counter()
    added = grow(args.grow, interval)
    grow_seconds = time.perf_counter() - started
    rows = m.Connection.select().count()
    states = [("seeded connections due", True, 500), ("nothing due", False, 8)]
    runs = []
    indexes_now: list[str] = []
    for variant in [None, *CANDIDATE_INDEXES]:
        if variant is not None:
            name, ddl = variant
            m.db.execute_sql(ddl)
            m.db.execute_sql("ANALYZE connection")
            indexes_now.append(name)
        for state, due, limit in states:
            due_count = set_state(conn_ids, due)
            statements, _, claimed = claim_statements(limit)
            explained = []
            for sql, params in statements:
                explained.append(
                    {"statement": _label(sql), "sql": " ".join(sql.split()), "params": [str(p) for p in params], **explain(sql, params)}
                )
            runs.append(
                {
                    "extra_indexes": list(indexes_now),
                    "state": state,
                    "due": due_count,
                    "limit": limit,
                    "claimed": claimed,
                    "claim_due_call_ms": claim_call_ms(limit),
                    "statements": explained,
                }
            )
    table_indexes = [
        row[0] for row in m.db.execute_sql("SELECT indexdef FROM pg_indexes WHERE tablename = 'connection' ORDER BY indexname").fetchall()
    ]
    for name, _ in CANDIDATE_INDEXES:
        m.db.execute_sql(f"DROP INDEX IF EXISTS {name}")
    return {
        "rows": rows,
        "added": added,
        "grow_seconds": grow_seconds,
        "runs": runs,
        "indexes_at_end": table_indexes,
        "candidates": [ddl for _, ddl in CANDIDATE_INDEXES],
    }


def _stmt(run: dict, label_start: str) -> dict | None:
    for s in run["statements"]:
        if s["statement"].startswith(label_start):
            return s
    return None


def report(args, passes: list[dict], study: dict, seed_seconds: float) -> tuple[str, dict, list]:
    n = args.connections
    by_s = {p["schedulers"]: p for p in passes}
    rows = []
    for p in passes:
        per = p["per_scheduler"]
        rows.append(
            (
                str(p["schedulers"]),
                f"{p['wall_seconds']:.2f}",
                f"{p['syncs_per_s']:.0f}",
                " / ".join(f"{x['syncs']}" for x in per),
                " / ".join(f"{x['syncs_per_s']:.0f}" for x in per),
                f"{statistics.median([x['sync_ms_median'] for x in per]):.0f} / {max(x['sync_ms_p95'] for x in per):.0f}",
                f"{p['cpu_seconds_schedulers']:.1f}",
                f"{p['cpu_seconds_postgres']:.1f}" if p["cpu_seconds_postgres"] is not None else "n/a",
                f"{p['cpu_seconds_stand_in']:.1f}",
                f"{p['pg_sessions_opened']}",
                f"{cores_busy(p):.2f}",
            )
        )
    pass_table = render_table(
        (
            "schedulers",
            "wall s",
            "syncs/s",
            "syncs per scheduler",
            "syncs/s per scheduler",
            "sync ms med/p95",
            "CPU s sched.",
            "CPU s PG",
            "CPU s stand-in",
            "PG sessions",
            "cores busy",
        ),
        rows,
    )

    base = study["runs"][0:2]  # the table's own indexes
    claim_rows = []
    for run in study["runs"]:
        for s in run["statements"]:
            claim_rows.append(
                (
                    "+ " + ", ".join(run["extra_indexes"]) if run["extra_indexes"] else "models.py indexes",
                    f"{run['state']} ({run['due']:,}), limit {run['limit']}",
                    s["statement"],
                    f"{s['execution_ms']:.2f}",
                    ", ".join(s["indexes"]) or ("Seq Scan" if s["seq_scan"] else "-"),
                )
            )
        claim_rows.append(("", "", "whole claim_due call (client side)", f"{run['claim_due_call_ms']:.2f}", ""))
    claim_table = render_table(("indexes", "state", "statement", "exec ms", "index used"), claim_rows)

    plans = []
    for run in base:
        for s in run["statements"]:
            plans.append(
                f"-- {s['statement']}, {run['state']} ({run['due']:,} due), limit {run['limit']}, "
                f"{study['rows']:,} rows, models.py indexes:\n" + "\n".join("   " + line for line in s["plan"])
            )

    due_claim = _stmt(study["runs"][0], "claim")
    claim_ms = due_claim["execution_ms"] if due_claim else float("nan")
    keys = {f"scaleout_syncs_per_s_{s}": round(p["syncs_per_s"], 1) for s, p in by_s.items()}
    keys["scaleout_claim_ms_100k"] = round(claim_ms, 3)
    targets = scaling_targets(by_s, judged=not args.quick)
    idle_call = study["runs"][1]["claim_due_call_ms"]
    targets.append(
        (
            f"claim_due call, {study['rows']:,} rows, nothing due, limit 8 (ms)",
            idle_call,
            f"<= {TICK_MS_TARGET:g}",
            idle_call <= TICK_MS_TARGET,
        )
    )
    target_table = render_table(
        ("target", "measured", "target", "verdict"),
        [(t, f"{v:.3g}", lim, "OK" if ok else "MISSED" if ok is False else "not judged here") for t, v, lim, ok in targets],
    )
    one = by_s.get(1)
    if one is not None:
        target_table += (
            f"\n(one scheduler's pass kept {cores_busy(one):.2f} of the machine's {usable_cores()} cores busy, "
            f"scheduler + PostgreSQL + stand-in; {SCALE_TARGET:g} x its syncs/s needs "
            f"{SCALE_TARGET * cores_busy(one):.2f}: below that the pass is bound by the cores, and what N "
            "schedulers can show is what sharing the table costs)"
        )
    header = (
        f"{n:,} connections, no-change pass, seeded in {seed_seconds:.1f}s; claim study on {study['rows']:,} "
        f"rows ({study['added']:,} added in {study['grow_seconds']:.1f}s)"
    )
    text = "\n\n".join([header, pass_table, claim_table, *plans, target_table])
    return text, keys, [t for t, _, _, ok in targets if ok is False]


def usable_cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def cores_busy(p: dict) -> float:
    """How many cores a pass kept busy: the CPU seconds of every process in it over its wall time."""
    cpu = p["cpu_seconds_schedulers"] + (p["cpu_seconds_postgres"] or 0.0) + p["cpu_seconds_stand_in"]
    return cpu / p["wall_seconds"] if p["wall_seconds"] > 0 else 0.0


def scaling_targets(by_s: dict, *, judged: bool = True) -> list[tuple[str, float, str, bool | None]]:
    """(what, measured, limit, met) for each N > 1 against one scheduler: ``met`` is None where the
    machine cannot show it. More schedulers can only raise the total syncs/s where cores are left
    over after one scheduler's pass; on a machine that pass already fills (2 cores here, with
    PostgreSQL on them), what N schedulers can show is that sharing the table costs little.
    ``judged=False`` (``--quick``: a pass of a few seconds, start-up and tail a large part of it)
    reports the ratios without a verdict."""
    one = by_s.get(1)
    if not one or not one["syncs_per_s"]:
        return []
    room = usable_cores() / max(cores_busy(one), 1e-9)  # how far the cores let the total grow
    targets: list[tuple[str, float, str, bool | None]] = []
    for s in sorted(k for k in by_s if k > 1):
        r = by_s[s]["syncs_per_s"] / one["syncs_per_s"]
        if not judged:
            targets.append((f"{s} schedulers / 1, total syncs/s (--quick: not judged)", r, f">= {SCALE_TARGET:g}", None))
            continue
        scales = room >= SCALE_TARGET
        targets.append((f"{s} schedulers / 1, total syncs/s", r, f">= {SCALE_TARGET:g}", (r >= SCALE_TARGET) if scales else None))
        if not scales:
            targets.append((f"{s} schedulers / 1, sharing a filled machine", r, f">= {SHARE_TARGET:g}", r >= SHARE_TARGET))
    return targets


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=10_000, help="due connections (default 10000)")
    parser.add_argument("--schedulers", default="1,2,4", help="scheduler process counts, one pass each (default 1,2,4)")
    parser.add_argument("--grow", type=int, default=100_000, help="connection rows for the claim study (default 100000)")
    add_result_options(parser, "smoke run: --connections 1000 (the claim study stays at --grow)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return args
    if args.quick:
        args.connections = 1000
    try:
        args.scheduler_counts = [int(x) for x in args.schedulers.split(",") if x.strip()]
    except ValueError:
        parser.error("--schedulers: comma-separated numbers, e.g. 1,2,4")
    if not args.scheduler_counts or not all(1 <= s <= 16 for s in args.scheduler_counts):
        parser.error("--schedulers: each between 1 and 16")
    if not 1 <= args.connections <= 200_000:
        parser.error("--connections must be between 1 and 200000")
    if not args.connections <= args.grow <= 2_000_000:
        parser.error("--grow must be between --connections and 2000000")
    args.pass_timeout = max(300.0, args.connections * 0.2)  # 5 ms/sync would be 0.005 s: a wide bound
    args.output = results_path(args)
    return args


def bench(args) -> int:
    from conftest import make_env  # tests/conftest.py: how a runtime is built
    from pg import PostgresServer  # tests/pg.py

    import models as m
    from core import runtime
    from core.config import load_settings

    began = time.perf_counter()
    load_before = list(os.getloadavg())
    print(
        f"calsync scale-out: {args.connections:,} CalDAV connections, nothing changed, schedulers "
        f"{args.schedulers}, one PostgreSQL and one CalDAV stand-in on 127.0.0.1"
    )
    print(
        f"machine: {platform.platform()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}, load average {load_before[0]:.2f}",
        flush=True,
    )
    server = stand_in = None
    stand_in_thread = None
    with tempfile.TemporaryDirectory(prefix="calsync-scaleout-") as tmp:
        try:
            started = time.perf_counter()
            server = PostgresServer()
            server.start()
            pg_pid = server.pid
            if pg_pid is None:  # start() reads it from postmaster.pid
                raise BenchFailure("PostgreSQL started, but its PID is not known")
            url = server.create_database("scaleout")
            pg_version = None
            print(f"  PostgreSQL (PID {server.pid}) on 127.0.0.1:{server.port} in {time.perf_counter() - started:.1f}s", flush=True)
            stand_in = _StandIn()
            stand_in_thread = threading.Thread(
                target=stand_in.serve_forever, kwargs={"poll_interval": 0.2}, name="caldav-stand-in", daemon=True
            )
            stand_in_thread.start()
            base_url = f"http://127.0.0.1:{stand_in.server_address[1]}/"

            env = make_env(Path(tmp), CALSYNC_DATABASE_URL=url)
            for product_default in ("CALSYNC_WORKERS", "CALSYNC_HTTP_RETRIES", "CALSYNC_HTTP_BACKOFF", "CALSYNC_HTTP_TIMEOUT"):
                env.pop(product_default, None)
            child_env = {k: v for k, v in os.environ.items() if not k.startswith("CALSYNC_")}
            child_env.update(env)
            rt = runtime.start(load_settings(env, read_dotenv=False))
            settings = rt.settings
            try:
                pg_version = m.db.execute_sql("SHOW server_version").fetchone()[0]
                started = time.perf_counter()
                conn_ids = seed(rt, args.connections, base_url)
                seed_seconds = time.perf_counter() - started
                print(
                    f"  seeded {len(conn_ids):,} connections in {seed_seconds:.1f}s "
                    f"(CALSYNC_WORKERS={settings.workers}, the product default)",
                    flush=True,
                )
                passes = []
                for s in args.scheduler_counts:
                    args._sessions_before = _pg_sessions(m.db.obj)
                    p = run_pass(args, child_env, s, conn_ids, stand_in, pg_pid)
                    passes.append(p)
                    print(
                        f"  {s} scheduler(s): {p['wall_seconds']:.2f}s, {p['syncs_per_s']:.0f} syncs/s "
                        f"({', '.join(str(x['syncs']) for x in p['per_scheduler'])} each); exactly once, all ok",
                        flush=True,
                    )
                started = time.perf_counter()
                study = claim_study(args, conn_ids, settings.sync_interval)
                print(f"  claim study on {study['rows']:,} rows in {time.perf_counter() - started:.1f}s", flush=True)
            finally:
                rt.close()
        finally:
            if stand_in is not None:
                stand_in.shutdown()
                stand_in.server_close()
                if stand_in_thread is not None:
                    stand_in_thread.join(timeout=10)
            if server is not None:
                server.stop()  # SIGINT to the postmaster's PID, waited for; its directory removed
    text, keys, missed = report(args, passes, study, seed_seconds)
    print()
    print(text)
    total = time.perf_counter() - began
    details = {
        "measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(), "postgresql": pg_version},
        "connections": args.connections,
        "quick": args.quick,
        "workers": settings.workers,
        "sync_interval": settings.sync_interval,
        "seed_seconds": seed_seconds,
        "total_seconds": total,
        "load_average_before": load_before,
        "load_average_after": list(os.getloadavg()),
        "passes": passes,
        "claim": study,
        "targets_missed": missed,
    }
    merge_results(args.output, "scaleout", keys, details)
    print(f"\nwhole run {total:.1f}s; wrote {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")
    return 1 if args.strict and missed else 0


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
