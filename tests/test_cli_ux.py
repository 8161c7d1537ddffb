"""The admin CLI as support meets it on a bad day: a folder for -o, an unknown staff member, a
broken connection, a web server that is not CalDAV, a reader that stops reading. Each answer says
what happened in words, with the SPEC's exit code, and --json failures are JSON on stderr.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.server
import io
import json
import os
import subprocess
import sys
import threading

import pytest
from conftest import ROOT, make_env, soon, started, vevent

import models as m
from console import cli
from core import actions

HOUR = dt.timedelta(hours=1)


@pytest.fixture
def env(tmp_path, monkeypatch):
    values = make_env(tmp_path)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("CALSYNC_CONNECT_PASSWORD", raising=False)
    return {**os.environ, **values}


@pytest.fixture
def run(env, capsys, monkeypatch):
    """The CLI in this process (its main(), as run_console.py calls it): (exit code, stdout, stderr)."""

    def call(*args, stdin: str = ""):
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code: int | str | None  # main's exit code, or what argparse's SystemExit carries
        try:
            code = cli.main(list(args))
        except SystemExit as exc:  # argparse refused an argument
            code = exc.code
        out, err = capsys.readouterr()
        assert "Traceback" not in err, err
        return code, out, err

    return call


def broken_fastmail(env, missed: int = 1) -> int:
    """Grace's Fastmail connection after a password change, with ``missed`` appointments waiting."""
    with started(env) as rt:
        actions.add_staff(rt, "grace@example.com", "Grace Hopper", timezone="Europe/Berlin")
        staff = m.Staff.get(m.Staff.email == "grace@example.com")
        conn = m.Connection.create(
            staff=staff,
            provider="caldav",
            account="grace@fastmail.com",
            server_url="https://caldav.fastmail.com/dav/",
            status=m.RELINK_REQUIRED,
            reason="the CalDAV server rejected the username or password",
            credentials=rt.vault.encrypt({"password": "old"}),
        )
        m.Calendar.create(
            connection=conn, remote_id="https://caldav.fastmail.com/dav/calendars/work/", name="Work", is_destination=True, is_primary=True
        )
        for i in range(missed):
            start = soon(2 + i, 9)
            actions.book(rt, "grace@example.com", start.isoformat(), (start + HOUR).isoformat(), f"Intro {i}")
        return conn.id


# -- help ----------------------------------------------------------------------------------------


def _parsers(parser: argparse.ArgumentParser, path: str = "run_console.py"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, f"{path} {name}")


def test_every_positional_and_option_of_every_command_has_help():
    missing = [
        f"{path}: {action.dest}"
        for path, parser in _parsers(cli.build_parser())
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction) and not (action.help or "").strip()
    ]
    assert missing == []
    book = next(p for path, p in _parsers(cli.build_parser()) if path.endswith(" book"))
    text = book.format_help()
    assert "staff member's time zone" in text and "all-day" in text


def test_a_date_without_a_time_is_refused_not_booked_at_midnight(run, env):
    code, out, err = run("book", "grace@example.com", "--start", "2030-01-07", "--end", "2030-01-08", "--subject", "Day off")
    assert code == 2 and out == ""
    assert "'2030-01-07' is a date without a time of day" in err and "no all-day" in err


# -- download -o ----------------------------------------------------------------------------------


def test_download_into_a_folder_writes_a_named_file_inside_it(run, env, tmp_path):
    cid = broken_fastmail(env)
    folder = tmp_path / "exports"
    folder.mkdir()
    for given in (f"{folder}/", str(folder)):
        code, out, err = run("download", str(cid), "-o", given)
        assert code == 0, err
        target = folder / f"calsync-missed-{cid}.ics"
        assert f"Wrote 1 missed appointment(s) to {target}" in out
        assert "Intro 0" in target.read_text()
    assert sorted(p.name for p in folder.iterdir()) == [f"calsync-missed-{cid}.ics"]


def test_download_to_a_missing_folder_or_a_failed_write_is_one_line_and_leaves_nothing(run, env, tmp_path, monkeypatch):
    cid = broken_fastmail(env)
    code, out, err = run("download", str(cid), "-o", str(tmp_path / "missing" / "dir" / "x.ics"))
    assert code == 1 and out == ""
    assert (
        err
        == f"calsync: cannot write into {tmp_path / 'missing' / 'dir'}: the folder does not exist (create it first, or choose another -o)\n"
    )
    assert not (tmp_path / "missing").exists()

    def disk_full(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    code, out, err = run("download", str(cid), "-o", str(tmp_path / "x.ics"), "--json")
    assert code == 1 and out == ""
    assert json.loads(err) == {"error": "failed", "message": f"cannot write {tmp_path / 'x.ics'}: No space left on device"}
    assert [p.name for p in tmp_path.iterdir() if p.name != "var"] == []  # no .part left behind


def test_nothing_waiting_is_said_as_such(run, env, tmp_path):
    cid = broken_fastmail(env, missed=0)
    code, out, _ = run("download", str(cid), "-o", str(tmp_path))
    assert code == 0 and f"No appointment of connection {cid} is waiting" in out


# -- book on a broken connection, status of someone unknown, JSON errors ------------------------------


def test_booking_on_a_broken_connection_says_it_waits_and_why(run, env):
    cid = broken_fastmail(env, missed=0)
    code, out, err = run("book", "grace@example.com", "--start", "2030-01-07T10:00", "--end", "2030-01-07T11:00", "--subject", "Intro")
    assert code == 0, err
    assert ", 2030-01-07 10:00–11:00 CET (Europe/Berlin)." in out  # read in Grace's zone, and said so
    assert (
        f"It waits: Grace Hopper's Fastmail calendar needs their new password, so it is written once the "
        f"connection works (connection {cid};"
    ) in out
    (row,) = json.loads(run("status", "--json")[1])
    assert row["missed"] == 1


def test_unknown_staff_and_every_json_failure_are_errors_on_stderr(run, env):
    broken_fastmail(env, missed=0)
    code, out, err = run("status", "--staff", "unknown@x")
    assert (code, out) == (1, "") and err == "calsync: no staff member with e-mail 'unknown@x'; add one with `staff add`\n"
    for args, exit_code, error in (
        (("status", "--staff", "unknown@x", "--json"), 1, "not_found"),
        (("entries", "99", "--json"), 1, "not_found"),
        (("audit", "--limit", "-5", "--json"), 2, "usage"),
        (
            ("book", "grace@example.com", "--start", "2030-01-07T10:00", "--end", "2030-01-07T09:00", "--subject", "x", "--json"),
            2,
            "invalid_input",
        ),
        (("stop", "1", "--json"), 2, "usage"),
    ):
        code, out, err = run(*args)
        assert (code, out) == (exit_code, ""), (args, out, err)
        answer = json.loads(err)
        assert answer["error"] == error and answer["message"], (args, err)


def test_a_bug_is_one_line_and_its_traceback_goes_to_the_console_log(run, env, tmp_path, monkeypatch):
    monkeypatch.setattr(actions, "list_staff", lambda rt: {}["boom"])
    code, out, err = run("staff", "list")
    log = tmp_path / "var" / "console.log"
    assert code == 1 and out == ""
    assert err == f"calsync: unexpected error (KeyError); this is a bug in calsync, please report it (details in {log})\n"
    assert "Traceback" in log.read_text() and oct(log.stat().st_mode & 0o777) == "0o600"


# -- Slack ids ----------------------------------------------------------------------------------------


def test_a_slack_id_must_look_like_one_in_the_cli_and_in_core(run, env):
    code, out, err = run("staff", "add", "ada@example.com", "--name", "Ada", "--slack-id", "ada@example.com")
    assert code == 2 and out == ""
    assert "argument --slack-id: 'ada@example.com' is not a Slack user id (U or W followed by 8 to 11" in err
    for bad in ("U123", "u024be7lh", "U024BE7LH0000", "X024BE7LH", "U024BE7L\x1b"):
        assert run("staff", "add", "ada@example.com", "--name", "Ada", "--slack-id", bad)[0] == 2, bad
    assert run("staff", "add", "ada@example.com", "--name", "Ada", "--slack-id", "W024BE7LH2")[0] == 0
    with started(env) as rt:  # the API and Slack add staff through the same function
        with pytest.raises(actions.InvalidInput, match="is not a Slack user id"):
            actions.add_staff(rt, "bob@example.com", "Bob", slack_id="bob@example.com")
        assert actions.add_staff(rt, "bob@example.com", "Bob", slack_id="U024BE7LH")["slack_id"] == "U024BE7LH"


# -- a web server that is not CalDAV; sync of several; a reader that stops reading ----------------------


class _Site(http.server.BaseHTTPRequestHandler):
    """/html/ is a web site (a page for every method), /nodav/ says 501, /noprop/ says 405; /feed.ics is a feed."""

    def log_message(self, format, *args):
        pass

    def _answer(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.startswith("/feed.ics"):
            start = soon(2, 9)
            body, status, kind = vevent("f1", start, start + HOUR, "Busy"), 200, "text/calendar"
        elif self.path.startswith("/html/"):
            body, status, kind = "<html><body>Welcome to our shop</body></html>", 200, "text/html"
        elif self.path.startswith("/nodav/") and self.command != "GET":
            body, status, kind = "Unsupported method", 501, "text/plain"
        elif self.path.startswith("/noprop/") and self.command != "GET":
            body, status, kind = "Method Not Allowed", 405, "text/plain"
        else:
            body, status, kind = "not found", 404, "text/plain"
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PROPFIND = do_REPORT = do_PUT = do_OPTIONS = _answer


@pytest.fixture
def site():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_web_server_that_is_not_caldav_is_named_so_at_connect_and_test(run, env, site):
    with started(env) as rt:
        actions.add_staff(rt, "ada@example.com", "Ada")
    for path in ("/html/", "/nodav/", "/noprop/"):
        code, out, err = run("connect", "caldav", "--staff", "ada@example.com", "--url", site + path, "--username", "ada", stdin="pw\n")
        assert (code, out) == (1, ""), (path, err)
        assert err == "calsync: could not connect: this address is not a CalDAV server (check the server address)\n", path
    with started(env) as rt:  # a working connection whose address now serves a web site
        staff = m.Staff.get(m.Staff.email == "ada@example.com")
        conn = m.Connection.create(
            staff=staff,
            provider="caldav",
            account="ada",
            server_url=site + "/html/",
            status=m.ACTIVE,
            credentials=rt.vault.encrypt({"password": "pw"}),
        )
        m.Calendar.create(connection=conn, remote_id=site + "/html/ada/work/", name="Work", is_destination=True, is_primary=True)
    code, out, err = run("test", str(conn.id))
    assert code == 1
    assert "[no] error: this address is not a CalDAV server" in out and "HTTP 200" in out  # the raw answer, below
    assert err.endswith("calsync: this address is not a CalDAV server (check the server address)\n")
    # The audit trail says the test failed, whose connection it was, and why, in words.
    code, out, _ = run("audit")
    line = next(line for line in out.splitlines() if "tested the connection" in line)
    assert "ada@example.com" in line and f" {conn.id} " in line and " failed " in line
    assert "tested the connection — failed: this address is not a CalDAV server" in line
    (entry,) = [e for e in json.loads(run("audit", "--json")[1]) if e["action"] == "connection.test"]
    assert (entry["result"], entry["connection"], entry["staff"]) == ("failed", conn.id, "ada@example.com")


def test_sync_of_all_counts_what_failed_and_shows_no_library_warnings(env, site):
    with started(env) as rt:
        actions.add_staff(rt, "ada@example.com", "Ada")
        actions.connect(rt, "ada@example.com", "ics", url=site + "/feed.ics")
        staff = m.Staff.get(m.Staff.email == "ada@example.com")
        for _ in range(2):  # nothing listens on port 9: connection refused, which urllib3 retries (and warns about)
            conn = m.Connection.create(
                staff=staff,
                provider="caldav",
                account="ada",
                server_url="http://127.0.0.1:9/dav/",
                status=m.ACTIVE,
                credentials=rt.vault.encrypt({"password": "pw"}),
            )
            m.Calendar.create(connection=conn, remote_id="http://127.0.0.1:9/dav/work/", name="Work", is_destination=True, is_primary=True)
    result = subprocess.run(
        [sys.executable, str(ROOT / "run_console.py"), "sync"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[-1] == "calsync: 1 synced, 2 failed (not synced cleanly: connection 2, 3; see the ERROR column)"
    assert all(line.startswith(("[", "calsync: ")) for line in lines), result.stderr  # progress and our own words only
    assert "urllib3" not in result.stderr and "Retrying" not in result.stderr


def test_a_reader_that_stops_reading_ends_the_listing_quietly(env):
    with started(env), m.db.atomic():
        for i in range(3000):  # more than a pipe holds, so the CLI is still writing when `head` leaves
            m.Staff.create(email=f"p{i}@example.com", name=f"Person {i}")
    for args in (("staff", "list"), ("staff", "list", "--json")):
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "run_console.py"), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            stdin=subprocess.DEVNULL,
        )
        proc.stdout.readline()  # `| head -1`
        proc.stdout.close()
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 1 and err == "", (args, err)


def test_an_address_that_does_not_parse_is_bad_usage_not_a_crash(run, env):
    with started(env) as rt:
        actions.add_staff(rt, "ada@example.com", "Ada")
    for address in ("http://127.0.0.1:99999/", "http://[::1"):
        code, _, err = run("connect", "caldav", "--staff", "ada@example.com", "--url", address, "--username", "ada", stdin="pw\n")
        assert code == 2 and "argument --url:" in err and "is not a valid URL" in err, err
    code, _, err = run("connect", "ics", "--staff", "ada@example.com", "--url", "-", stdin="https://x:99999/secret.ics\n")
    assert code == 2 and "secret" not in err
    assert err.startswith("usage: run_console.py connect ")  # the usage of the command that was run
    assert err.endswith("calsync: the calendar URL read from stdin is not a valid URL\n")
