#!/usr/bin/env python3
"""`make demo`: the calsync story on a local CalDAV server (Radicale on 127.0.0.1).

A staff member is connected, the scheduler's pass syncs appointments out and
busy events in, and `status` / `entries` show what happened; then the
password is changed on the server and the next pass says so in plain words.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from servers import start_server  # noqa: E402  (the same launcher the tests use)

DEMO_DIR = ROOT / "var" / "demo"


def ics(uid: str, start: dt.datetime, minutes: int, summary: str, extra: str = "") -> str:
    fmt = "%Y%m%dT%H%M%SZ"
    end = start + dt.timedelta(minutes=minutes)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//demo//outside//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:{start.strftime(fmt)}\r\nDTSTART:{start.strftime(fmt)}\r\nDTEND:{end.strftime(fmt)}\r\n"
        f"SUMMARY:{summary}\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def step(title: str, *argv: str, stdin: str | None = None, env: dict) -> None:
    print(f"\n$ {' '.join(argv)}\n# {title}", flush=True)
    result = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, input=stdin, text=True)
    if result.returncode not in (0, 1):
        raise SystemExit(f"demo step failed with exit code {result.returncode}: {' '.join(argv)}")


def main() -> int:
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir(parents=True)
    server = start_server("radicale", DEMO_DIR / "radicale")
    try:
        calendar = server.make_calendar("work", "Work")
        now = dt.datetime.now(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
        server.put_event(calendar, "dentist.ics", ics("dentist", now + dt.timedelta(days=1, hours=3), 60, "Dentist"))
        server.put_event(calendar, "focus.ics", ics("focus", now + dt.timedelta(days=2), 120, "Focus time", "TRANSP:TRANSPARENT\r\n"))
        server.put_event(calendar, "standup.ics", ics("standup", now + dt.timedelta(days=1), 15, "Team standup", "RRULE:FREQ=WEEKLY;COUNT=3\r\n"))
        server.put_event(calendar, "offsite.ics", (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//demo//outside//EN\r\nBEGIN:VEVENT\r\nUID:offsite\r\n"
            f"DTSTAMP:{now.strftime('%Y%m%dT%H%M%SZ')}\r\nDTSTART;VALUE=DATE:{(now + dt.timedelta(days=4)).strftime('%Y%m%d')}\r\n"
            "SUMMARY:Team offsite (all day)\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"))
        print(f"A local Radicale CalDAV server runs at {server.base_url} (user {server.username}, calendar 'Work').")
        env = {**os.environ, "CALSYNC_DATA_DIR": str(DEMO_DIR / "data"), "CALSYNC_ALLOW_PRIVATE_URLS": "1",
               "CALSYNC_HTTP_RETRIES": "0", "CALSYNC_CONNECT_PASSWORD": server.password}
        step("seed a staff member, three appointments and the CalDAV connection", "run_console.py", "demo",
             "--caldav-url", server.base_url, "--username", server.username, env=env)
        step("the status right after connecting: pending until the first sync", "run_console.py", "status", env=env)
        step("one pass of the scheduler: appointments go out, busy events come in", "run_bot.py", "--once", "--log-level", "WARNING", env=env)
        step("every connection's health", "run_console.py", "status", env=env)
        step("the sync feed: what was read, loaded or not, and why", "run_console.py", "entries", "1", env=env)
        print(f"\nOn the CalDAV server, the 'Work' calendar now holds {len(server.list_events(calendar))} events.")
        server.set_password("changed-by-the-user")
        print("\n# The user changes their password on the CalDAV server; an appointment is booked meanwhile.")
        step("book a test appointment", "run_console.py", "book", "ada@example.com",
             "--start", (now + dt.timedelta(days=3, hours=2)).isoformat(), "--end", (now + dt.timedelta(days=3, hours=3)).isoformat(),
             "--subject", "Booked during the outage", env=env)
        step("sync now (the scheduler's next pass would do the same)", "run_console.py", "sync", "1", env=env)
        step("the status says what broke, in plain words, and how many appointments wait", "run_console.py", "status", env=env)
        step("test the connection: the provider's own answer", "run_console.py", "test", "1", env=env)
        print(f"\nDemo data is in {DEMO_DIR / 'data'}; try: CALSYNC_DATA_DIR={DEMO_DIR / 'data'} .venv/bin/python run_console.py --help")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
