"""The connection lifecycle: every way back to working delivers what waited, every break reaches
the person, and only ``core/lifecycle.py`` changes a connection's status.

The repairs and breaks run against real CalDAV servers (Radicale, Xandikos) with e-mail through
a real SMTP server (aiosmtpd); the CLI is run as a user runs it, in a subprocess.
"""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, Story, make_env, soon
from icalendar import Calendar
from servers import start_server
from test_scheduler import feeds_server  # noqa: F401 (fixture)

import models as m
from core import actions, clock, health, leases, outbox, runtime
from core.config import load_settings

NEW_PASSWORD = "changed-pw-1"

# -- 1. one owner of the status ---------------------------------------------------------------

OWNER = Path("core/lifecycle.py")
SOURCES = ("core", "bot", "console", "web", "scripts", "bench", "models.py", "run_bot.py", "run_console.py")


def status_assignments(source: str) -> list[int]:
    """Lines that assign a connection's status outside an ``update`` of something else.

    Caught: ``x.status = ...`` (and in tuple targets), ``Connection.update(status=...)``,
    ``Connection.update({Connection.status: ...})``, ``Connection(status=...)``,
    ``Connection.create/insert(status=...)`` and raw ``UPDATE connection SET status``.
    A report's or an object's own field (``report.status``, ``self.status``) is not a connection's.
    """
    tree = ast.parse(source)
    found: list[int] = []

    def is_connection(node) -> bool:
        return (isinstance(node, ast.Name) and node.id == "Connection") or (isinstance(node, ast.Attribute) and node.attr == "Connection")

    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            flat = []
            for target in targets:
                flat += target.elts if isinstance(target, ast.Tuple) else [target]
            for target in flat:
                if isinstance(target, ast.Attribute) and target.attr == "status":
                    base = target.value
                    owner = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
                    if owner not in ("report", "r", "self"):
                        found.append(node.lineno)
        elif isinstance(node, ast.Call):
            func = node.func
            kinds = {"update", "create", "insert", "insert_many", "get_or_create"}
            on_connection = is_connection(func) or (isinstance(func, ast.Attribute) and func.attr in kinds and is_connection(func.value))
            if on_connection:
                if any(k.arg == "status" for k in node.keywords):
                    found.append(node.lineno)
                for arg in node.args:
                    if isinstance(arg, ast.Dict) and any(
                        isinstance(k, ast.Attribute) and k.attr == "status" for k in arg.keys if k is not None
                    ):
                        found.append(node.lineno)
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and re.search(r"update\s+\"?connection\"?\s+set\s+[^;]*\bstatus\s*=", node.value, re.IGNORECASE)
        ):
            found.append(node.lineno)
    return found


def test_the_status_checker_catches_every_way_of_assigning_a_status():
    for line in (
        'conn.status = "active"',
        "c.status, c.reason = 'x', 'y'",
        'm.Connection.update(status="active").execute()',
        'Connection.create(staff=s, status="x")',
        'm.Connection.update({m.Connection.status: "x"}).execute()',
        'db.execute_sql("UPDATE connection SET status = %s", ("x",))',
    ):
        assert status_assignments(line), line
    for line in (
        "self.report.status = conn.status",
        "x = conn.status",
        'm.Delivery.update(state="sent")',
        'self.status, self.code = 404, "not_found"',
    ):
        assert not status_assignments(line), line


def test_only_the_lifecycle_assigns_a_connection_status():
    offenders = []
    for top in SOURCES:
        path = ROOT / top
        files = [path] if path.is_file() else sorted(path.rglob("*.py"))
        for file in files:
            if file.relative_to(ROOT) == OWNER:
                continue
            for line in status_assignments(file.read_text()):
                offenders.append(f"{file.relative_to(ROOT)}:{line}")
    assert offenders == [], "only core/lifecycle.py may assign a connection's status"
    assert status_assignments((ROOT / OWNER).read_text()), "the owner itself must be seen by the checker"


# -- 2. every way back to working ------------------------------------------------------------------


def break_it(story: Story, how: str) -> None:
    server = story.server
    if how == "password":
        server.set_password(NEW_PASSWORD)
    elif how == "calendar":
        story.calendar_url, gone = server.make_calendar("other", "Other"), story.calendar_url
        server.delete_calendar(gone)
    elif how == "read_only":
        server.set_read_only(True)


def mails_about(mailbox, words: str) -> list:
    return [mail for mail in mailbox.messages if words in mail["Subject"]]


REPAIRS = {
    # repair name: (how it broke, the status it broke into)
    "sync once the old password works again": ("password", "relink_required"),
    "test once the old password works again": ("password", "relink_required"),
    "the health sweep once the old password works again": ("password", "relink_required"),
    "the relink page with the new password": ("password", "relink_required"),
    "a new primary calendar": ("calendar", "calendar_missing"),
    "the relink page's calendar picker": ("calendar", "calendar_missing"),
    "test once write permission is back": ("read_only", "read_only"),
}


def repair(story: Story, name: str, good_password: str) -> None:
    rt, server = story.rt, story.server
    if "old password works again" in name:
        server.set_password(good_password)
    if name.startswith("sync"):
        story.sync()
    elif name.startswith("test"):
        if "write permission" in name:
            server.set_read_only(False)
        assert actions.test_connection(rt, story.conn_id)["ok"]
    elif name.startswith("the health sweep"):
        later = clock.now() + dt.timedelta(seconds=rt.settings.sweep_interval + 1)
        clock.set_now(lambda: later)
        assert health.sweep(rt)["resynced"] == 1
    elif name == "the relink page with the new password":
        token = actions.issue_relink(rt, story.conn_id, via=("email",))["url"].rsplit("/", 1)[1]
        assert actions.complete_relink(rt, token, password=NEW_PASSWORD)["ok"]
    elif name == "a new primary calendar":
        actions.set_destination(rt, story.conn_id, "Other")
    elif name == "the relink page's calendar picker":
        token = actions.issue_relink(rt, story.conn_id, via=("email",))["url"].rsplit("/", 1)[1]
        page = actions.relink_page(rt, token)
        assert page["fix"] == "calendar" and [c["name"] for c in page["calendars"]] == ["Other"]
        assert actions.relink_choose_calendar(rt, token, page["calendars"][0]["id"])["ok"]


@pytest.mark.parametrize("name", list(REPAIRS))
def test_every_way_back_to_working_delivers_what_waited_and_says_so(mail_rt, caldav, mailbox, name):
    how, broken_status = REPAIRS[name]
    story = Story(mail_rt, caldav)
    story.book(soon(1), subject="Before the break")
    story.sync()
    good = caldav.password
    break_it(story, how)
    story.book(soon(2), subject="Booked meanwhile 1")
    story.book(soon(3), subject="Booked meanwhile 2")
    story.sync()
    status = story.status()
    assert status["status"] == broken_status
    waiting = 3 if how == "calendar" else 2  # the deleted calendar took the first one with it
    assert status["missed"] == waiting, "appointments count as missed as soon as they wait"
    outbox.deliver_pending(mail_rt)
    assert len(mails_about(mailbox, f"{waiting} appointments are waiting")) == 1, "the subject says what waits"

    repair(story, name, good)

    status = story.status()
    assert status["status"] == "active" and status["missed"] == 0 and not status["failing"]
    calendar = caldav.list_events(story.calendar_url)  # after a new primary: the new one
    for subject in ("Before the break", "Booked meanwhile 1", "Booked meanwhile 2"):
        assert sum(subject in data for data in calendar.values()) == 1, f"{subject!r} is on the calendar once"
    (incident,) = m.Incident.select()
    assert incident.resolved_at is not None and incident.missed_delivered == waiting
    (resolved,) = m.Notification.select().where(m.Notification.event == "incident.resolved")
    assert json.loads(resolved.payload)["delivered"] == waiting
    assert {d.channel for d in resolved.deliveries} == {"log", "email"}
    outbox.deliver_pending(mail_rt)
    (mail,) = mails_about(mailbox, "connected again")
    assert f"{waiting} appointment(s) booked while it was broken are now on your calendar" in mail.get_body(("plain",)).get_content()


def test_a_repair_while_another_process_syncs_is_delivered_by_the_next_pass(story):
    """``test`` finds the connection working while a scheduler holds it: the next pass writes what waited."""
    story.sync()
    good = story.server.password
    story.server.set_password(NEW_PASSWORD)
    story.book(soon(2), subject="Booked meanwhile")
    story.sync()
    story.server.set_password(good)
    assert leases.claim(story.conn_id, "scheduler@elsewhere:1")
    result = actions.test_connection(story.rt, story.conn_id)
    assert result["ok"] and result["status"] == "active"
    assert not m.Notification.select().where(m.Notification.event == "incident.resolved").exists(), (
        "'reconnected' waits until what waited is written"
    )
    leases.release(story.rt, story.conn_id, "scheduler@elsewhere:1", ok=True)
    conn = m.Connection.get_by_id(story.conn_id)
    assert conn.next_sync_at <= clock.now(), "the next pass takes it at once"
    from core import scheduler

    scheduler.run_once(story.rt)
    assert sum("Booked meanwhile" in d for d in story.events().values()) == 1
    (resolved,) = m.Notification.select().where(m.Notification.event == "incident.resolved")
    assert json.loads(resolved.payload)["delivered"] == 1


def test_every_break_opens_one_incident_and_alerts_every_configured_channel_once(mail_rt, caldav):
    story = Story(mail_rt, caldav)
    story.sync()
    caldav.set_password(NEW_PASSWORD)
    for finder in (story.sync, lambda: actions.test_connection(mail_rt, story.conn_id), story.sync):
        finder()
    later = clock.now() + dt.timedelta(seconds=mail_rt.settings.sweep_interval + 1)
    clock.set_now(lambda: later)
    health.sweep(mail_rt)
    assert m.Incident.select().count() == 1
    (opened,) = m.Notification.select().where(m.Notification.event == "incident.opened")
    assert sorted(d.channel for d in opened.deliveries) == ["email", "log"]
    # Stopping is a way out of the break too: the incident ends, nobody is told "reconnected".
    actions.stop_sync(mail_rt, story.conn_id, force=True, actor="sam")
    (incident,) = m.Incident.select()
    assert incident.resolved_at is not None and incident.resolution == "sync stopped"
    assert not m.Notification.select().where(m.Notification.event == "incident.resolved").exists()
    change = m.StatusChange.select().order_by(m.StatusChange.id.desc()).get()
    assert (change.old, change.new, change.cause) == ("relink_required", "stopped", "stop")


# -- 3. from the outside: the CLI ----------------------------------------------------------------


@pytest.fixture
def cli(tmp_path):
    env = {**os.environ, **make_env(tmp_path)}
    env.pop("CALSYNC_CONNECT_PASSWORD", None)

    def run(*args, stdin: str = "", script: str = "run_console.py", extra_env: dict | None = None):
        return subprocess.run(
            [sys.executable, str(ROOT / script), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env={**env, **(extra_env or {})},
            timeout=90,
            check=False,
        )

    run.env = env
    return run


def connect_ada(cli, server) -> None:
    assert cli("staff", "add", "ada@example.com", "--name", "Ada").returncode == 0
    result = cli(
        "connect",
        "caldav",
        "--staff",
        "ada@example.com",
        "--url",
        server.base_url,
        "--username",
        server.username,
        stdin=server.password + "\n",
    )
    assert result.returncode == 0, result.stderr


def book(cli, day: int, subject: str) -> None:
    start = soon(day)
    result = cli(
        "book", "ada@example.com", "--start", start.isoformat(), "--end", (start + dt.timedelta(hours=1)).isoformat(), "--subject", subject
    )
    assert result.returncode == 0, result.stderr


def status_row(cli, conn_id: int = 1) -> dict:
    return next(r for r in json.loads(cli("status", "--json").stdout) if r["id"] == conn_id)


def test_cli_test_after_the_password_works_again_delivers_what_waited(cli, caldav):
    work = caldav.make_calendar("work", "Work")
    connect_ada(cli, caldav)
    good = caldav.password
    caldav.set_password(NEW_PASSWORD)
    book(cli, 2, "Booked meanwhile")
    assert cli("sync", "1").returncode == 1
    assert status_row(cli)["missed"] == 1
    caldav.set_password(good)
    result = cli("test", "1")
    assert result.returncode == 0, result.stderr
    assert "1 appointment(s) written" in result.stdout
    row = status_row(cli)
    assert row["status"] == "active" and row["missed"] == 0
    assert sum("Booked meanwhile" in d for d in caldav.list_events(work).values()) == 1
    again = cli("sync", "1", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)[0]["created"] == 0


def test_cli_importing_the_download_is_adopted_not_a_jam(cli, caldav, tmp_path):
    work = caldav.make_calendar("work", "Work")
    connect_ada(cli, caldav)
    caldav.set_password(NEW_PASSWORD)
    book(cli, 2, "Booked meanwhile")
    book(cli, 3, "Booked meanwhile too")
    cli("sync", "1")
    out = tmp_path / "missed.ics"
    download = cli("download", "1", "-o", str(out))
    assert download.returncode == 0 and "Safe to import" in download.stdout
    # What the alert suggests: import the file into the same calendar. A calendar app stores each
    # event as an object of its own, under a name it picks.
    for number, event in enumerate(Calendar.from_ical(out.read_bytes()).walk("VEVENT")):
        single = Calendar()
        single.add("prodid", "-//Some calendar app//EN")
        single.add("version", "2.0")
        single.add_component(event)
        caldav.put_event(work, f"4F1A-{number}-imported-by-app.ics", single.to_ical().decode())
    relink = json.loads(cli("relink", "1", "--via", "email", "--json").stdout)
    token = relink["url"].rsplit("/", 1)[1]
    code = (
        "import sys; sys.path.insert(0, '.'); from core import actions, runtime; rt = runtime.start(); "
        f"print(actions.complete_relink(rt, {token!r}, password={NEW_PASSWORD!r})['status'])"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=cli.env, capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.strip() == "active", done.stderr
    events = caldav.list_events(work)
    for subject in ("Booked meanwhile", "Booked meanwhile too"):
        assert sum(f"SUMMARY:{subject}\r\n" in d for d in events.values()) == 1, "adopted, never duplicated"
    sync = cli("sync", "1", "--json")
    assert sync.returncode == 0 and json.loads(sync.stdout)[0]["outcome"] == "ok"
    row = status_row(cli)
    assert row["status"] == "active" and row["missed"] == 0 and row["errors"] == 0
    assert any(a["action"] == "appointment.adopted" for a in json.loads(cli("audit", "--json").stdout))


def test_cli_a_connection_failing_quietly_says_so_and_counts_what_waits(cli, tmp_path):
    server = start_server("radicale", tmp_path / "radicale")
    try:
        server.make_calendar("work", "Work")
        connect_ada(cli, server)
        server.stop()
        book(cli, 2, "Booked while the server is down")
        assert cli("sync", "1").returncode == 1
        assert cli("sync", "1").returncode == 1
        row = status_row(cli)
        assert row["status"] == "active" and row["failing"] is True
        assert row["consecutive_failures"] == 2 and row["failing_since"]
        assert row["reason"].startswith("failing since") and "the last 2 attempts failed" in row["reason"]
        assert row["missed"] == 1, "waiting through a transient outage is counted"
        assert "active (failing)" in cli("status").stdout
        server.start()
        assert cli("sync", "1").returncode == 0
        row = status_row(cli)
        assert row["failing"] is False and row["missed"] == 0 and row["consecutive_failures"] == 0
    finally:
        server.stop()


def test_quiet_failures_open_no_incident_before_the_threshold(story):
    story.sync()
    story.server.stop()
    for _ in range(3):
        story.sync()
    assert m.Incident.select().count() == 0 and m.Notification.select().count() == 0
    row = story.status()
    assert row["failing"] and row["consecutive_failures"] == 3


def test_cli_stop_on_a_broken_connection_never_drops_what_waits(cli, caldav, tmp_path):
    caldav.make_calendar("work", "Work")
    connect_ada(cli, caldav)
    caldav.set_password(NEW_PASSWORD)
    book(cli, 2, "Waiting one")
    book(cli, 3, "Waiting two")
    cli("sync", "1")
    refused = cli("--as", "sam", "stop", "1", "--yes")
    assert refused.returncode == 1
    assert "2 appointment(s) still waiting to be written" in refused.stderr and "--force" in refused.stderr
    assert status_row(cli)["status"] == "relink_required"
    forced = cli("--as", "sam", "stop", "1", "--yes", "--force", "--json")
    assert forced.returncode == 0, forced.stderr
    result = json.loads(forced.stdout)
    assert sorted(a["subject"] for a in result["waiting_orphaned"]) == ["Waiting one", "Waiting two"]
    row = status_row(cli)
    assert row["status"] == "stopped" and row["orphaned"] == 2 and row["missed"] == 2
    assert row["reason"] == "sync stopped by support (sam)"
    out = tmp_path / "left.ics"
    assert cli("download", "1", "-o", str(out)).returncode == 0
    assert out.read_text().count("BEGIN:VEVENT") == 2
    refusal, stop = sorted(
        (a for a in json.loads(cli("audit", "--json").stdout) if a["action"] == "connection.stop"), key=lambda a: a["result"]
    )
    assert refusal["result"] == "failed" and "2 appointment(s) still waiting" in refusal["detail"]
    assert (
        stop["result"] == "ok"
        and stop["actor"] == "sam"
        and "stopped by support (sam)" in stop["detail"]
        and "never delivered" in stop["detail"]
    )


def test_cli_a_killed_sync_does_not_hold_its_connection(cli, caldav):
    caldav.make_calendar("work", "Work")
    connect_ada(cli, caldav)
    # A `sync` that took the lease and was killed with SIGKILL before it released it.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import sys, time; sys.path.insert(0, '.'); from core import leases, runtime; rt = runtime.start(); "
                "assert leases.claim(1, leases.owner_id('sync-now')); print('held', flush=True); time.sleep(60)"
            ),
        ],
        cwd=ROOT,
        env=cli.env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        busy = cli("sync", "1", "--wait", "1")
        assert busy.returncode == 1 and "already being synced by sync-now@" in busy.stderr
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
        started = time.monotonic()
        done = cli("sync", "1", "--json")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)[0]["outcome"] == "ok" and time.monotonic() - started < 20
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(10)


def test_a_live_sync_keeps_its_lease_renewed(rt):
    """A run longer than the lease does not lose it while its process lives."""
    actions.add_staff(rt, "ada@example.com", "Ada")
    conn = m.Connection.create(staff=m.Staff.get(), provider="ics", account="x", account_key="k")
    owner = leases.owner_id("sync-now")
    assert leases.claim(conn.id, owner)
    before = m.Connection.get_by_id(conn.id).lease_expires_at
    later = clock.now() + dt.timedelta(minutes=5)
    clock.set_now(lambda: later)
    assert leases.renew(owner) == 1
    assert m.Connection.get_by_id(conn.id).lease_expires_at > before
    assert not leases.claim(conn.id, "scheduler@elsewhere:7"), "a live owner's lease is not taken"


# -- 4. conflicts and failing writes ------------------------------------------------------------


def calendar_edit(story: Story, old: str, new: str) -> None:
    ((href, data),) = story.events().items()
    story.server.put_event(story.calendar_url, href.rsplit("/", 1)[1], data.replace(old, new))


def test_a_conflict_is_decided_by_the_policy_and_never_jams(story):
    appointment = story.book(soon(2), subject="Coaching")
    story.sync()
    # The host moves it (host API PUT) while the staff member renames it in their calendar app.
    actions.upsert_appointment(
        story.rt,
        appointment["id"],
        "ada@example.com",
        soon(4).isoformat(),
        (soon(4) + dt.timedelta(hours=1)).isoformat(),
        "Coaching (moved by the host)",
    )
    calendar_edit(story, "SUMMARY:Coaching", "SUMMARY:Renamed in my calendar app")
    report = story.sync()
    assert report["outcome"] == "ok" and report["conflicts"] == 1
    (data,) = story.events().values()
    assert "Coaching (moved by the host)" in data, "the host wins by default"
    assert actions.get_appointment(story.rt, appointment["id"])["subject"] == "Coaching (moved by the host)"
    (audit,) = [a for a in actions.audit_log(story.rt) if a["action"] == "appointment.conflict"]
    assert "the host's version was written" in audit["detail"] and "subject" in audit["detail"]
    assert any("conflict" in e["info"] for e in story.entries()), "the feed entry says what happened"
    (report_to_host,) = m.Notification.select().where(m.Notification.event == "appointment.conflict")
    assert json.loads(report_to_host.payload)["calendar"]["subject"] == "Renamed in my calendar app"
    # Later edits on the calendar are applied back again: nothing is stuck.
    calendar_edit(story, "Coaching (moved by the host)", "Coaching later renamed")
    assert story.sync()["applied_back"] == 1
    assert actions.get_appointment(story.rt, appointment["id"])["subject"] == "Coaching later renamed"


def test_with_the_calendar_policy_the_calendar_edit_wins_a_conflict(tmp_path, caldav):
    rt = runtime.start(load_settings(make_env(tmp_path, CALSYNC_EXTERNAL_EDIT_POLICY="calendar"), read_dotenv=False))
    try:
        story = Story(rt, caldav)
        appointment = story.book(soon(2), subject="Coaching")
        story.sync()
        actions.upsert_appointment(
            rt, appointment["id"], "ada@example.com", soon(2).isoformat(), (soon(2) + dt.timedelta(hours=1)).isoformat(), "Host title"
        )
        calendar_edit(story, "SUMMARY:Coaching", "SUMMARY:Calendar title")
        assert story.sync()["conflicts"] == 1
        (data,) = story.events().values()
        assert "Calendar title" in data
        assert actions.get_appointment(rt, appointment["id"])["subject"] == "Calendar title"
    finally:
        rt.close()


def test_an_appointment_the_server_refuses_is_a_visible_error_never_ok(cli, tmp_path):
    server = start_server("radicale", tmp_path / "radicale", max_content_length=4000)
    try:
        work = server.make_calendar("work", "Work")
        connect_ada(cli, server)
        book(cli, 2, "A normal appointment")
        start = soon(3)
        assert (
            cli(
                "book",
                "ada@example.com",
                "--start",
                start.isoformat(),
                "--end",
                (start + dt.timedelta(hours=1)).isoformat(),
                "--subject",
                "Too big",
                "--description",
                "x" * 6000,
            ).returncode
            == 0
        )
        for _ in range(2):
            sync = cli("sync", "1", "--json")
            assert sync.returncode == 1
            report = json.loads(sync.stdout)[0]
            assert report["outcome"] == "partial" and report["errors"] == 1
        assert sum("A normal appointment" in d for d in server.list_events(work).values()) == 1
        row = status_row(cli)
        assert row["status"] == "active" and row["errors"] == 1
        assert "could not be written" in cli("status").stdout
        detail = json.loads(
            subprocess.run(
                [
                    sys.executable,
                    "-c",
                    (
                        "import sys, json; sys.path.insert(0, '.'); from core import actions, runtime; "
                        "print(json.dumps(actions.connection_detail(runtime.start(), 1)['write_errors']))"
                    ),
                ],
                cwd=ROOT,
                env=cli.env,
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            ).stdout
        )
        (error,) = detail
        assert error["subject"] == "Too big" and error["failures"] == 2 and "413" in error["error"]
    finally:
        server.stop()


# -- 5. ICS identity ------------------------------------------------------------------------------


def test_ics_feeds_on_one_host_are_told_apart_by_their_whole_url(rt, feeds_server):
    base = f"{feeds_server}/calendar/ical"
    host = feeds_server.split("://", 1)[1]
    actions.add_staff(rt, "ada@example.com", "Ada")
    actions.add_staff(rt, "bob@example.com", "Bob")
    a1 = actions.connect(rt, "ada@example.com", "ics", url=f"{base}/ada%40example.com/private-1f2e3d4c5b6a79880011/basic.ics")
    a2 = actions.connect(rt, "ada@example.com", "ics", url=f"{base}/team%40example.com/private-99aa88bb77cc66dd5544/basic.ics")
    b1 = actions.connect(rt, "bob@example.com", "ics", url=f"{base}/bob%40example.com/private-0a0b0c0d0e0f01020304/basic.ics")
    rows = {r["id"]: r for r in actions.list_statuses(rt)}
    assert all(rows[c["id"]]["flags"] == [] for c in (a1, a2, b1)), "one host is not one account"
    assert len({rows[c["id"]]["account"] for c in (a1, a2, b1)}) == 3, "support can tell the feeds apart"
    for row in rows.values():
        assert "private-" not in row["account"] + row["server"] and "%40" not in row["account"]
        assert re.fullmatch(rf"{re.escape(host)} · …/basic\.ics #[0-9a-f]{{4}}", row["account"]), row["account"]
    again = actions.connect(rt, "ada@example.com", "ics", url=f"{base}/ada%40example.com/private-1f2e3d4c5b6a79880011/basic.ics")
    assert "duplicate" in again["flags"]
    shared = actions.connect(
        rt, "bob@example.com", "ics", url=f"{base.replace('http://', 'HTTP://')}/team%40example.com/private-99aa88bb77cc66dd5544/basic.ics"
    )
    assert "shared" in shared["flags"]
    plan = actions.stop_plan(rt, shared["id"], for_support=False)
    assert "ada@example.com" not in json.dumps(plan) and "1 other staff member" in plan["warning"]
    assert actions.stop_plan(rt, shared["id"])["shared_with"] == ["ada@example.com"]  # support sees who


# -- 6. the same on PostgreSQL ----------------------------------------------------------------------


@pytest.mark.postgres
def test_repair_by_test_and_forced_stop_on_postgresql(pg_rt, caldav):
    story = Story(pg_rt, caldav)
    story.sync()
    good = caldav.password
    caldav.set_password(NEW_PASSWORD)
    story.book(soon(2), subject="Booked meanwhile")
    story.sync()
    assert story.status()["missed"] == 1
    caldav.set_password(good)
    assert actions.test_connection(pg_rt, story.conn_id)["ok"]
    assert story.status()["missed"] == 0 and story.status()["status"] == "active"
    assert sum("Booked meanwhile" in d for d in story.events().values()) == 1
    (resolved,) = m.Notification.select().where(m.Notification.event == "incident.resolved")
    assert json.loads(resolved.payload)["delivered"] == 1
    caldav.set_password(NEW_PASSWORD)
    story.book(soon(3), subject="Waits at the stop")
    story.sync()
    with pytest.raises(actions.ActionError, match="1 appointment"):
        actions.stop_sync(pg_rt, story.conn_id)
    result = actions.stop_sync(pg_rt, story.conn_id, force=True, actor="sam")
    assert [a["subject"] for a in result["waiting_orphaned"]] == ["Waits at the stop"]
    assert story.status()["orphaned"] == 2  # the event on the calendar and the one that waited


@pytest.mark.postgres
def test_deliveries_follow_the_configuration_not_the_process_on_postgresql(postgres, tmp_path, caldav):
    """The CLI, the console and the web role load no Slack sender; their breaks still go to Slack."""
    url = postgres.create_database(f"t_channels_{os.getpid()}_{caldav.kind}")
    env = make_env(
        tmp_path,
        CALSYNC_DATABASE_URL=url,
        SLACK_BOT_TOKEN="xoxb-test",
        SLACK_SIGNING_SECRET="s",
        CALSYNC_SMTP_URL="smtp://127.0.0.1:9",
        CALSYNC_SUPPORT_CHANNEL="C_SUPPORT",
    )
    cli_rt = runtime.start(load_settings(env, read_dotenv=False))
    try:
        assert {s.channel for s in cli_rt.senders} == {"log", "email"}, "a CLI process has no Slack sender"
        story = Story(cli_rt, caldav)
        story.sync()
        caldav.set_password(NEW_PASSWORD)
        story.sync()
        (opened,) = m.Notification.select().where(m.Notification.event == "incident.opened")
        deliveries = {d.channel: d for d in opened.deliveries}
        assert set(deliveries) == {"log", "email", "slack"}
        assert deliveries["slack"].recipient == "email:ada@example.com"
        cli_rt.senders = [s for s in cli_rt.senders if s.channel == "log"]
        assert outbox.deliver_pending(cli_rt) == {"sent": 1, "failed": 0}
        left = {d.channel: d.state for d in m.Delivery.select()}
        assert left == {"log": "sent", "email": "pending", "slack": "pending"}, "left for the service, not failed"
        assert all(d.attempts == 0 for d in m.Delivery.select().where(m.Delivery.channel != "log"))
    finally:
        cli_rt.close()
