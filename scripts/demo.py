#!/usr/bin/env python3
"""`make demo`: the whole calsync story on this machine, no hand steps.

A local Radicale CalDAV server and the calsync service (scheduler + web
server) run on 127.0.0.1 with the embedded default (SQLite in var/demo/data).
Staff are connected, appointments are booked and synced; then one password
is changed on the server, the next pass raises the incident and sends the
alert, the relink link is used the way a browser does, and the connection
is Active again with the missed appointment delivered.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from servers import start_server

DEMO_DIR = ROOT / "var" / "demo"
DATA_DIR = DEMO_DIR / "data"


def say(text: str) -> None:
    print("\n" + textwrap.fill(text, 100), flush=True)


class SecretAddress:
    """A calendar's private iCalendar address, as Google or Fastmail give one: an unguessable path,
    no login. Here it answers with the Radicale collection's iCalendar (read with the account's
    password on the server side, where the provider keeps it)."""

    def __init__(self, collection: str, auth: tuple[str, str]):
        import http.server
        import secrets
        import threading

        self.path = f"/ical/{secrets.token_urlsafe(16)}/basic.ics"
        address = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path != address.path:
                    self.send_error(404)
                    return
                answer = requests.get(collection, auth=auth, timeout=10)
                self.send_response(answer.status_code)
                self.send_header("Content-Type", "text/calendar; charset=utf-8")
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}{self.path}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ics(uid: str, start: dt.datetime, minutes: int, summary: str, extra: str = "") -> str:
    fmt = "%Y%m%dT%H%M%SZ"
    end = start + dt.timedelta(minutes=minutes)
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//demo//outside//EN\r\nBEGIN:VEVENT\r\n"
        f"UID:{uid}\r\nDTSTAMP:{start.strftime(fmt)}\r\nDTSTART:{start.strftime(fmt)}\r\nDTEND:{end.strftime(fmt)}\r\n"
        f"SUMMARY:{summary}\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


class Demo:
    def __init__(self, env: dict):
        self.env = env

    def cli(self, title: str, *argv: str, show: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess:
        if show:
            print(f"\n$ python run_console.py {' '.join(argv)}\n# {title}", flush=True)
        result = subprocess.run(
            [sys.executable, str(ROOT / "run_console.py"), *argv],
            cwd=ROOT,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if show:
            print(result.stdout.rstrip() or result.stderr.rstrip(), flush=True)
        if result.returncode == 2:
            raise SystemExit(f"demo step failed (bad usage): {result.stderr}")
        return result

    def status(self) -> list[dict]:
        return json.loads(self.cli("", "status", "--json", show=False).stdout)

    def wait_for(self, what: str, predicate, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate(self.status()):
                return
            time.sleep(1)
        raise SystemExit(f"demo: timed out waiting for {what}")


def main() -> int:
    shutil.rmtree(DEMO_DIR, ignore_errors=True)
    DEMO_DIR.mkdir(parents=True)
    server = start_server("radicale", DEMO_DIR / "radicale")
    service = None
    secret_address = None
    try:
        work = server.make_calendar("work", "Work")
        holidays = server.make_calendar("team-holidays", "Team holidays")
        now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
        server.put_event(work, "dentist.ics", ics("dentist", now + dt.timedelta(days=1, hours=3), 60, "Dentist"))
        server.put_event(work, "focus.ics", ics("focus", now + dt.timedelta(days=2), 120, "Focus time", "TRANSP:TRANSPARENT\r\n"))
        server.put_event(
            work, "standup.ics", ics("standup", now + dt.timedelta(days=1), 15, "Team standup", "RRULE:FREQ=WEEKLY;COUNT=3\r\n")
        )
        server.put_event(holidays, "offsite.ics", ics("offsite", now + dt.timedelta(days=4), 480, "Team offsite"))
        port = free_port()
        env = {
            **os.environ,
            "CALSYNC_DATA_DIR": str(DATA_DIR),
            "CALSYNC_ALLOW_PRIVATE_URLS": "1",
            "CALSYNC_HTTP_PORT": str(port),
            "CALSYNC_BASE_URL": f"http://127.0.0.1:{port}",
            "CALSYNC_SYNC_INTERVAL": "30",
            "CALSYNC_SWEEP_INTERVAL": "30",
            "CALSYNC_HTTP_RETRIES": "0",
            "CALSYNC_MAIL_FROM": "Calsync <calsync@example.com>",
        }
        env.pop("SLACK_BOT_TOKEN", None)
        demo = Demo(env)
        say(
            f"A local CalDAV server (Radicale) runs at {server.base_url}: user '{server.username}' has a 'Work' "
            "calendar with a dentist appointment, a 'free' focus block and a weekly stand-up, and a 'Team holidays' "
            "calendar whose iCalendar address another staff member subscribes to."
        )

        demo.cli(
            "Ada, a coach in Berlin, is a staff member",
            "staff",
            "add",
            "ada@example.com",
            "--name",
            "Ada Lovelace",
            "--timezone",
            "Europe/Berlin",
        )
        demo.cli("Grace too", "staff", "add", "grace@example.com", "--name", "Grace Hopper")
        demo.cli(
            "Ada connects her CalDAV account (the password is read from stdin, never from the command line)",
            "connect",
            "caldav",
            "--staff",
            "ada@example.com",
            "--url",
            server.base_url,
            "--username",
            server.username,
            "--calendar",
            "Work",
            "--no-sync",
            stdin=server.password + "\n",
        )
        secret_address = SecretAddress(holidays, (server.username, server.password))
        feed_url = secret_address.url  # the URL is the secret: calsync stores it encrypted, never shows it whole
        demo.cli(
            "Grace subscribes to the team-holidays calendar as a read-only busy source (URL from stdin)",
            "connect",
            "ics",
            "--staff",
            "grace@example.com",
            "--url",
            "-",
            "--no-sync",
            stdin=feed_url + "\n",
        )

        say(
            "Now the calsync service starts: the scheduler (syncs every 30 s here, 15 min by default; a health sweep; "
            "incidents; the notification outbox) and the web server with the relink pages. Slack is not configured, "
            "so alerts go to the service log and the database."
        )
        log_path = DEMO_DIR / "service.log"
        service = subprocess.Popen(
            [sys.executable, str(ROOT / "run_bot.py")],
            cwd=ROOT,
            env=env,
            stdout=open(log_path, "w"),  # noqa: SIM115 — the service writes to it until the demo stops it
            stderr=subprocess.STDOUT,
        )
        demo.wait_for("the first syncs", lambda rows: all(r["status"] == "active" for r in rows))
        demo.cli("both connections were synced at once: pending → active", "status")

        start = now + dt.timedelta(days=1, hours=1)
        demo.cli(
            "the host product books an appointment for Ada (the CLI creates it exactly as the host API would)",
            "book",
            "ada@example.com",
            "--start",
            start.isoformat(),
            "--end",
            (start + dt.timedelta(hours=1)).isoformat(),
            "--subject",
            "Intro call with Katherine",
        )
        demo.cli("sync now instead of waiting for the next pass", "sync", "1")
        demo.cli("Ada's sync feed: what was read from her calendar, loaded or not, and why", "entries", "1")
        print(
            f"\nThe 'Work' calendar on the server now holds {len(server.list_events(work))} events "
            "(3 external + the appointment calsync wrote)."
        )

        say("Ada changes her password at her calendar provider. Calsync still has the old one.")
        server.set_password("ada-new-password-2026")
        start2 = now + dt.timedelta(days=3, hours=2)
        demo.cli(
            "meanwhile a client books another appointment with Ada",
            "book",
            "ada@example.com",
            "--start",
            start2.isoformat(),
            "--end",
            (start2 + dt.timedelta(hours=1)).isoformat(),
            "--subject",
            "Booked during the outage",
        )
        demo.cli("the next pass (here: sync now) meets the provider's refusal", "sync", "1")
        time.sleep(12)  # the outbox delivers every 10 s
        alerts = [line for line in log_path.read_text().splitlines() if "notification event=" in line]
        print("\n# the alert, as the service log shows it (with Slack configured it is a DM with a Relink button):")
        for line in alerts[-2:]:
            print("  " + line.split(" WARNING ", 1)[-1])
        demo.cli("status says what broke in plain words, and that 1 appointment waits", "status")
        demo.cli("support can read the provider's own answer", "test", "1")

        result = demo.cli(
            "support reissues the relink link (it would be e-mailed/sent in Slack when configured)",
            "relink",
            "1",
            "--via",
            "email",
            "--json",
            show=False,
        )
        link = json.loads(result.stdout)["url"]
        print(f"\n$ python run_console.py relink 1 --via email\n# a new single-use link: {link[:60]}…")
        say("Ada opens the link in her browser, sees what broke and enters her new password:")
        session = requests.Session()
        page = session.get(link, timeout=10)
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        if csrf is None:
            raise SystemExit(f"demo step failed: the relink page (HTTP {page.status_code}) has no form to enter the password")
        token_field = csrf.group(1)
        print(
            f"  GET  the relink page → {page.status_code}; it names the account: "
            f"{'yes' if server.username in page.text else 'no'}; it says why: "
            f"{'yes' if 'rejected' in page.text else 'no'}"
        )
        answer = session.post(link, data={"csrf_token": token_field, "password": "ada-new-password-2026"}, timeout=60)
        print(f"  POST the new password → {answer.status_code}: {'Active' if 'Active' in answer.text else 'not active'}")
        demo.cli("Ada's connection is Active again; the appointment booked meanwhile was delivered", "status")
        events = server.list_events(work)
        outage = [d for d in events.values() if "Booked during the outage" in d]
        print(f"\nOn the server: {len(events)} events in 'Work'; 'Booked during the outage' is there {len(outage)} time(s).")
        demo.cli("the audit trail", "audit", "--limit", "8")
        say(
            f"Open the support console on the same data with:  CALSYNC_DATA_DIR={DATA_DIR} .venv/bin/python run_console.py "
            f"— the service log is in {log_path}."
        )
    finally:
        if service is not None:
            service.send_signal(signal.SIGTERM)
            try:
                service.wait(timeout=35)
            except subprocess.TimeoutExpired:
                service.kill()
        if secret_address is not None:
            secret_address.stop()
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
