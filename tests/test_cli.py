"""The admin CLI as a user and a script see it: names, flags, --json fields, exit codes."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest
from conftest import ROOT, make_env, soon, vevent


@pytest.fixture
def cli(tmp_path):
    env = {**os.environ, **make_env(tmp_path)}
    env.pop("CALSYNC_CONNECT_PASSWORD", None)

    def run(*args, stdin: str = "", extra_env: dict | None = None):
        return subprocess.run(
            [sys.executable, str(ROOT / "run_console.py"), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env={**env, **(extra_env or {})},
            timeout=60,
            check=False,
        )

    return run


def test_help_names_every_command(cli):
    result = cli("--help")
    assert result.returncode == 0
    for command in ("staff", "connect", "status", "entries", "book", "test", "sync", "download", "stop", "primary", "audit", "demo"):
        assert command in result.stdout


def test_bad_usage_exits_2(cli):
    assert cli("frobnicate").returncode == 2
    assert cli("book", "ada@example.com", "--start", "tomorrow", "--end", "x", "--subject", "s").returncode == 2
    result = cli("staff", "add", "not-an-email", "--name", "X")
    assert result.returncode == 2 and "not an e-mail address" in result.stderr


def test_bad_setting_stops_with_one_line_naming_the_variable(cli):
    result = cli("status", extra_env={"CALSYNC_SYNC_INTERVAL": "soon"})
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "CALSYNC_SYNC_INTERVAL" in result.stderr


def test_unknown_connection_fails_with_exit_1_and_a_reason(cli):
    result = cli("test", "42")
    assert result.returncode == 1
    assert "no connection with id 42" in result.stderr


def test_staff_connect_status_entries_json_story(cli, caldav):
    calendar = caldav.make_calendar("work", "Work")
    start = soon(2, 9)
    caldav.put_event(calendar, "busy.ics", vevent("busy-1", start, start + dt.timedelta(hours=1), "Board meeting"))
    assert cli("staff", "add", "ada@example.com", "--name", "Ada", "--timezone", "Europe/Berlin").returncode == 0
    assert cli("staff", "add", "ada@example.com", "--name", "Ada").returncode == 1  # exists already

    result = cli(
        "connect",
        "caldav",
        "--staff",
        "ada@example.com",
        "--url",
        caldav.base_url,
        "--username",
        caldav.username,
        "--json",
        stdin=caldav.password + "\n",
    )
    assert result.returncode == 0, result.stderr
    connected = json.loads(result.stdout)
    assert connected["status"] == "active" and connected["first_sync"]["outcome"] == "ok"
    assert caldav.password not in result.stdout + result.stderr

    result = cli("status", "--json")
    (row,) = json.loads(result.stdout)
    for key in ("id", "staff", "provider", "account", "status", "reason", "since", "last_sync_at", "last_check_at", "missed"):
        assert key in row
    assert (row["staff"], row["provider"], row["account"], row["status"], row["missed"]) == (
        "ada@example.com",
        "caldav",
        caldav.username,
        "active",
        0,
    )

    result = cli("entries", str(row["id"]), "--json")
    (entry,) = json.loads(result.stdout)
    assert set(entry) == {"id", "calendar", "starts_at", "ends_at", "subject", "loaded", "info"}
    assert (entry["subject"], entry["loaded"], entry["calendar"]) == ("Board meeting", True, "Work")

    result = cli(
        "book",
        "ada@example.com",
        "--start",
        start.isoformat(),
        "--end",
        (start + dt.timedelta(hours=1)).isoformat(),
        "--subject",
        "Intro",
        "--json",
    )
    assert result.returncode == 0 and json.loads(result.stdout)["change"] == "created"
    assert cli("sync", str(row["id"])).returncode == 0
    assert len(caldav.list_events(calendar)) == 2

    result = cli("test", str(row["id"]), "--json")
    assert result.returncode == 0 and json.loads(result.stdout)["ok"] is True


def test_wrong_password_at_connect_saves_nothing(cli, caldav):
    caldav.make_calendar("work", "Work")
    cli("staff", "add", "ada@example.com", "--name", "Ada")
    result = cli(
        "connect", "caldav", "--staff", "ada@example.com", "--url", caldav.base_url, "--username", caldav.username, stdin="wrong\n"
    )
    assert result.returncode == 1
    assert "rejected the username or password" in result.stderr
    assert json.loads(cli("status", "--json").stdout) == []


def test_stop_needs_confirmation_and_removes_our_events(cli, caldav):
    calendar = caldav.make_calendar("work", "Work")
    cli("staff", "add", "ada@example.com", "--name", "Ada")
    cid = json.loads(
        cli(
            "connect",
            "caldav",
            "--staff",
            "ada@example.com",
            "--url",
            caldav.base_url,
            "--username",
            caldav.username,
            "--json",
            stdin=caldav.password + "\n",
        ).stdout
    )["id"]
    start = soon(3, 9)
    cli("book", "ada@example.com", "--start", start.isoformat(), "--end", (start + dt.timedelta(hours=1)).isoformat(), "--subject", "Intro")
    cli("sync", str(cid))
    assert len(caldav.list_events(calendar)) == 1
    result = cli("stop", str(cid))  # no terminal, no --yes
    assert result.returncode == 2 and "--yes" in result.stderr
    assert "1 calsync event(s) are removed" in result.stderr
    result = cli("stop", str(cid), "--yes", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["removed"] == 1
    assert caldav.list_events(calendar) == {}
    (row,) = json.loads(cli("status", "--json").stdout)
    assert row["status"] == "stopped"


def test_download_writes_an_ics_snapshot(cli, tmp_path):
    cli("staff", "add", "ada@example.com", "--name", "Ada")
    out = tmp_path / "missed.ics"
    result = cli("download", "1", "-o", str(out))
    assert result.returncode == 1 and "no connection with id 1" in result.stderr
    assert not out.exists()


def test_once_pass_syncs_due_connections(tmp_path, caldav):
    env = {**os.environ, **make_env(tmp_path), "CALSYNC_CONNECT_PASSWORD": caldav.password}
    caldav.make_calendar("work", "Work")

    def run(script, *args):
        return subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True, text=True, env=env, timeout=60, check=False)

    run("run_console.py", "staff", "add", "ada@example.com", "--name", "Ada")
    assert (
        run(
            "run_console.py",
            "connect",
            "caldav",
            "--staff",
            "ada@example.com",
            "--url",
            caldav.base_url,
            "--username",
            caldav.username,
            "--no-sync",
        ).returncode
        == 0
    )
    result = run("run_bot.py", "--once")
    assert result.returncode == 0, result.stderr
    assert "1 due connection(s) synced (ok 1" in result.stdout
    assert "0 due connection(s)" in run("run_bot.py", "--once").stdout  # not due again until the interval passed
    assert caldav.password not in result.stdout + result.stderr


def test_relink_reissue_from_the_cli_is_mailed_on_the_next_pass(tmp_path, caldav, mailbox):
    env = {
        **os.environ,
        **make_env(tmp_path, CALSYNC_SMTP_URL=mailbox.url, CALSYNC_MAIL_FROM="calsync@example.com"),
        "CALSYNC_CONNECT_PASSWORD": caldav.password,
    }
    caldav.make_calendar("work", "Work")

    def run(script, *args):
        return subprocess.run([sys.executable, str(ROOT / script), *args], capture_output=True, text=True, env=env, timeout=60, check=False)

    run("run_console.py", "staff", "add", "ada@example.com", "--name", "Ada")
    run("run_console.py", "connect", "caldav", "--staff", "ada@example.com", "--url", caldav.base_url, "--username", caldav.username)
    first = json.loads(run("run_console.py", "--as", "sam", "relink", "1", "--via", "email", "--json").stdout)
    second = json.loads(run("run_console.py", "--as", "sam", "relink", "1", "--via", "email", "--json").stdout)
    assert first["url"] != second["url"] and second["sent_via"] == ["email"]
    assert run("run_bot.py", "--once").returncode == 0
    mails = mailbox.wait_for(2)
    bodies = [m.get_body(("plain",)).get_content() for m in mails]
    assert any(second["url"] in b for b in bodies)
    audit = json.loads(run("run_console.py", "audit", "--json").stdout)
    relinks = [a for a in audit if a["action"] == "connection.relink_link"]
    assert len(relinks) == 2 and all(a["actor"] == "sam" and a["result"] == "ok" for a in relinks)
    result = run("run_console.py", "--as", "sam", "relink", "1", "--via", "pigeon")
    assert result.returncode == 2 and "unknown delivery channel" in result.stderr
    audit = json.loads(run("run_console.py", "audit", "--json").stdout)
    assert audit[0]["result"] == "failed" and audit[0]["actor"] == "sam"
