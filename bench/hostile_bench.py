"""Benchmark: the memory and time a hostile provider answer costs calsync, against a stated ceiling.

Run from the project root (``make bench``)::

    .venv/bin/python bench/hostile_bench.py [--quick] [--ceiling-mb 400]

Each case runs in a fresh child process (``--case NAME``) through calsync's real code: its HTTP
client and providers against servers on 127.0.0.1 (the ones tests/test_hostile_http.py and
tests/test_ics_url.py use), the iCalendar URL sync with its expansion workers. The parent samples
the resident memory of the child *and all its descendants* (the expansion pool's workers) every
20 ms from /proc and records the peak, with the wall time:

* gzip_bomb        - 1 GiB of zeros gzip-compressed (~1 MB on the wire) answering a CalDAV PROPFIND
* huge_propfind    - a 512 MB chunked PROPFIND answer
* huge_401         - a 401 whose body claims and sends 256 MB
* rdate_flood      - an iCalendar feed with one event of 500,000 RDATE dates (~9 MB), plus a normal event
* timezone_bomb    - 20 events in a VTIMEZONE whose rules repeat every second since 1601
* too_many_events  - a feed of 60,000 plain events

Every case must end with the expected refusal (the child exits 0 only then) and its peak must stay
under the ceiling (default 256 MB for the whole process tree; a fresh calsync child with its
imports is ~70 MB). Results go to ``bench/results/latest.json``: ``hostile_<case>_peak_rss_mb``,
``hostile_<case>_seconds``, ``hostile_peak_rss_mb`` (the worst case) and ``hostile_ceiling_mb``.
Exit status 1 when a case failed or went over the ceiling.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
from common import merge_results, render_table

RESULTS = ROOT / "bench" / "results" / "latest.json"
CASES = ("gzip_bomb", "huge_propfind", "huge_401", "rdate_flood", "timezone_bomb", "too_many_events")
PAGE = os.sysconf("SC_PAGE_SIZE")


# -- the cases (run in the child) ------------------------------------------------------------------


def _gzip_stream(total: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * (1024 * 1024)
    return b"".join(packer.compress(block) for _ in range(total // len(block))) + packer.flush()


def _provider_case(name: str) -> str:
    from test_hostile_http import RawServer

    from core.http import HttpClient
    from core.providers.base import AuthRejected, BadData, Transient
    from core.providers.caldav import CalDAVProvider

    if name == "gzip_bomb":
        body = _gzip_stream(1024 * 1024 * 1024)

        def behave(server, conn, head):
            conn.sendall(
                b"HTTP/1.1 207 Multi-Status\r\nContent-Type: application/xml\r\nContent-Encoding: gzip\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body) + body
            )
    elif name == "huge_propfind":
        piece = b"<d:response><d:href>/x</d:href></d:response>" * 1000

        def behave(server, conn, head):
            conn.sendall(b"HTTP/1.1 207 Multi-Status\r\nContent-Type: application/xml\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(512 * 1024 * 1024 // len(piece)):
                conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
    else:

        def behave(server, conn, head):
            conn.sendall(b"HTTP/1.1 401 Unauthorized\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % (256 * 1024 * 1024))
            for _ in range(4096):
                conn.sendall(b"x" * 65536)

    server = RawServer(behave)
    try:
        client = HttpClient(timeout=20, retries=0, allow_private=True, deadline=120)
        provider = CalDAVProvider({"server_url": server.url + "/", "account": "ada"}, {"password": "pw"}, client)
        try:
            provider.discover()
        except (BadData, Transient, AuthRejected) as exc:
            return f"{exc.__class__.__name__}: {exc}"
        raise SystemExit(f"{name}: discover() succeeded on a hostile answer")
    finally:
        server.stop()


def _feed_case(name: str) -> str:
    from conftest import make_env, soon
    from test_ics_url import FeedServer, Subscription, calendar, event

    import models as m
    from core import clock, runtime
    from core.config import load_settings

    base = soon(1, 9)
    if name == "rdate_flood":
        dates = ",".join((base + dt.timedelta(minutes=i)).strftime("%Y%m%dT%H%M%SZ") for i in range(500_000))
        body = calendar(event("flood-1", "Flood", base, lines=f"RDATE:{dates}\r\n"), event("dentist-1", "Dentist", soon(2, 14)))
    elif name == "timezone_bomb":
        zone = (
            "BEGIN:VTIMEZONE\r\nTZID:Custom/Bomb\r\nBEGIN:STANDARD\r\nDTSTART:16010101T000000\r\n"
            "RRULE:FREQ=SECONDLY\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0000\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
        )
        stamp = base.replace(tzinfo=None)
        events = "".join(
            f"BEGIN:VEVENT\r\nUID:zoned-{i}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID=Custom/Bomb:{stamp:%Y%m%dT%H%M%S}\r\n"
            f"DURATION:PT1H\r\nSUMMARY:Zoned {i}\r\nEND:VEVENT\r\n"
            for i in range(20)
        )
        body = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\n" + zone + events + "END:VCALENDAR\r\n"
    else:
        body = calendar(*(event(f"e-{i}", "Busy", base) for i in range(60_000)))
    with tempfile.TemporaryDirectory(prefix="calsync-hostile-") as tmp:
        rt = runtime.start(load_settings(make_env(Path(tmp), CALSYNC_ICS_MAX_BYTES=32 * 1024 * 1024), read_dotenv=False))
        server = FeedServer().start()
        try:
            sub = Subscription(rt, server, calendar(event("first-1", "First", base)))  # connected while it was small
            server.serve(body)
            report = sub.sync()
            running = m.SyncRun.select().where(m.SyncRun.outcome == "running").count()
            if running:
                raise SystemExit(f"{name}: a sync row was left running")
            if name == "too_many_events":
                if report["outcome"] != "failed" or "more than the 20,000" not in report["error"]:
                    raise SystemExit(f"{name}: expected a refusal, got {report}")
                return report["error"]
            if report["outcome"] != "ok":
                raise SystemExit(f"{name}: expected the rest of the feed to be read, got {report}")
            bad = [e["info"] for e in sub.entries() if e["info"].startswith("invalid data") or "unknown time zone" in e["info"]]
            if not bad:
                raise SystemExit(f"{name}: no entry says what was wrong")
            return bad[0][:120]
        finally:
            server.stop()
            rt.close()
            clock.set_now(None)


def run_case(name: str) -> None:
    said = _provider_case(name) if name in ("gzip_bomb", "huge_propfind", "huge_401") else _feed_case(name)
    print(said[:200])


# -- measuring (the parent) --------------------------------------------------------------------------


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and every descendant (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            pass
        todo.extend(children.get(pid, ()))
    return total


def measure(name: str, timeout: float) -> dict:
    started = time.monotonic()
    child = subprocess.Popen(
        [sys.executable, __file__, "--case", name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    peak = 0
    while child.poll() is None and time.monotonic() - started < timeout:
        peak = max(peak, _tree_rss(child.pid))
        time.sleep(0.02)
    if child.poll() is None:
        child.kill()
    out, err = child.communicate(timeout=30)
    said = out.decode(errors="replace").strip() if child.returncode == 0 else err.decode(errors="replace").strip()[-400:]
    return {
        "case": name,
        "ok": child.returncode == 0,
        "seconds": round(time.monotonic() - started, 2),
        "peak_rss_mb": round(peak / 1024 / 1024, 1),
        "said": said,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="smoke run: the three provider cases only")
    parser.add_argument("--ceiling-mb", type=float, default=256.0, help="peak memory allowed per case (MB, whole process tree)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds a case may take before it counts as hung")
    args = parser.parse_args(argv)
    if args.case:
        run_case(args.case)
        return 0
    cases = CASES[:3] if args.quick else CASES
    rows = [measure(name, args.timeout) for name in cases]
    print(
        render_table(
            ("case", "ended as expected", "seconds", "peak RSS MB", "what calsync said"),
            [(r["case"], "yes" if r["ok"] else "NO", r["seconds"], r["peak_rss_mb"], r["said"][:70]) for r in rows],
        )
    )
    worst = max(r["peak_rss_mb"] for r in rows)
    over = [r["case"] for r in rows if r["peak_rss_mb"] > args.ceiling_mb]
    failed = [r["case"] for r in rows if not r["ok"]]
    print(f"\nworst peak {worst} MB; ceiling {args.ceiling_mb:g} MB: {'OK' if not over else 'OVER: ' + ', '.join(over)}")
    keys = {f"hostile_{r['case']}_peak_rss_mb": r["peak_rss_mb"] for r in rows}
    keys.update({f"hostile_{r['case']}_seconds": r["seconds"] for r in rows})
    keys.update({"hostile_peak_rss_mb": worst, "hostile_ceiling_mb": args.ceiling_mb})
    merge_results(RESULTS, "hostile", keys, {"rows": rows, "quick": args.quick})
    for name in failed:
        print(f"hostile_bench: {name} did not end as expected", file=sys.stderr)
    return 1 if failed or over else 0


if __name__ == "__main__":
    sys.exit(main())
