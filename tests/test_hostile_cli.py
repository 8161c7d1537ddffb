"""The admin CLI (and the console) against hostile input: out-of-range numbers, escape sequences
in provider text, a busy database, credentials in an old row's URL, loose file permissions.

Each answer is one clear line and an exit code (2 bad usage, 1 failed), never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time

import pytest
from conftest import ROOT, make_env, soon, started

import models as m
from core import actions

HUGE = "99999999999999999999999"
OSC52 = "\x1b]52;c;cm0gLXJmIH4=\x07"  # writes "rm -rf ~" to the clipboard
CSI = "\x1b[2J\x1b[31m"  # clears the screen, turns red
C1 = "\x9b6n"  # an 8-bit CSI: asks the terminal for the cursor position
BIDI = "\u202e"  # shows what follows backwards
RAW = ("\x1b", "\x07", "\x9b", BIDI)
MARKUP = "[bold red]Mallory[/] [link=https://evil.example]click[/link]"
SECRET = "s3cret-pw"


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def env(tmp_path):
    return {k: v for k, v in {**os.environ, **make_env(tmp_path)}.items() if k != "CALSYNC_CONNECT_PASSWORD"}


def _command(*args):
    return [sys.executable, str(ROOT / "run_console.py"), *args]


@pytest.fixture
def cli(env):
    def run(*args, extra_env: dict | None = None, timeout: float = 60):
        return subprocess.run(
            _command(*args),
            capture_output=True,
            text=True,
            env={**env, **(extra_env or {})},
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )

    return run


def run_all(env, commands: list[tuple[str, ...]]) -> list[subprocess.CompletedProcess]:
    """Several CLI runs at once (each one only parses its arguments, so they never touch each other)."""
    procs = [
        subprocess.Popen(_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, stdin=subprocess.DEVNULL)
        for args in commands
    ]
    results = []
    for args, proc in zip(commands, procs):
        out, err = proc.communicate(timeout=60)
        results.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
    return results


def assert_one_line_error(result, code: int, *words: str) -> str:
    assert result.returncode == code, (result.args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    for word in words:
        assert word in last, (word, result.stderr)
    return last


# -- 1. integers out of range ----------------------------------------------------------------

CONNECTION_COMMANDS = [
    ("entries", "{}"),
    ("test", "{}"),
    ("sync", "{}"),
    ("download", "{}", "-o", "x.ics"),
    ("stop", "{}", "--yes"),
    ("relink", "{}"),
    ("primary", "{}", "Work"),
    ("calendars", "{}"),
]


def test_every_connection_id_argument_has_a_range(env):
    commands = [tuple(a.format(value) for a in args) for args in CONNECTION_COMMANDS for value in (HUGE, "0", "-1")]
    commands += [("entries", "1e3"), ("entries", "abc"), ("test", "٤٢"), ("entries", "9" * 5000)]
    for result in run_all(env, commands):
        last = assert_one_line_error(result, 2, "argument CONNECTION", "connection id")
        assert last.startswith("run_console.py ") and "error:" in last


def test_limits_and_seconds_have_a_range(env):
    commands = [("audit", "--limit", value) for value in (HUGE, "0", "-5", "100001", "ten")]
    commands += [("sync", "--wait", value) for value in ("1e400", "nan", "-1", "601", "inf")]
    for args, result in zip(commands, run_all(env, commands)):
        assert_one_line_error(result, 2, f"argument {args[1]}")


def test_the_largest_id_is_a_plain_not_found(cli):
    result = cli("entries", str(2**63 - 1))
    assert_one_line_error(result, 1, "no connection with id 9223372036854775807")
    assert cli("audit", "--limit", "100000").returncode == 0


def test_iso_times_and_the_actor_are_checked_before_anything_runs(env):
    results = run_all(
        env,
        [
            ("book", "ada@example.com", "--start", "2030-13-01T10:00", "--end", "2030-01-01T11:00", "--subject", "s"),
            ("--as", f"sam{OSC52}", "status"),
            (f"sta{OSC52}ff",),
        ],
    )
    assert_one_line_error(results[0], 2, "argument --start", "ISO 8601")
    assert_one_line_error(results[1], 2, "argument --as", "control characters")
    assert_one_line_error(results[2], 2, "invalid choice")
    for result in results:
        assert not any(raw in result.stdout + result.stderr for raw in RAW)


# -- 2. escape sequences in provider text --------------------------------------------------------


def seed_hostile(env) -> int:
    """Rows as an old version, a provider or a careless import could have left them."""
    with started(env) as rt:
        staff = m.Staff.create(email="eve@example.com", name=f"Eve{BIDI}{OSC52}{CSI} {MARKUP}")
        conn = m.Connection.create(
            staff=staff,
            provider="caldav",
            account=f"eve{C1}",
            status=m.UNREACHABLE,
            server_url=f"https://eve:{SECRET}@127.0.0.1:9/dav/",
            reason=f"the server said {OSC52}no",
            last_error=f"timeout{CSI} at https://eve:{SECRET}@127.0.0.1:9/dav/",
            credentials=rt.vault.encrypt({"password": SECRET}),
        )
        cal = m.Calendar.create(connection=conn, remote_id="/eve/work/", name=f"Work{OSC52}{BIDI}", is_destination=True, is_primary=True)
        m.FeedEntry.create(
            calendar=cal,
            uid="evil",
            starts_at=soon(2, 12),
            ends_at=soon(2, 13),
            subject=f"Lunch{OSC52}{CSI}{C1} {MARKUP}",
            loaded=False,
            info=f"invalid data: {CSI}",
        )
        actions.audit(f"sam{CSI}", "connection.test", conn.id, f"detail {OSC52} {MARKUP}")
        return conn.id


def test_human_output_never_carries_escape_sequences(env, cli):
    cid = seed_hostile(env)
    for args in (("staff", "list"), ("status",), ("entries", str(cid)), ("calendars", str(cid)), ("audit",)):
        result = cli(*args)
        assert result.returncode == 0, (args, result.stderr)
        for raw in RAW:
            assert raw not in result.stdout and raw not in result.stderr, (args, raw, result.stdout)
    listing = cli("staff", "list").stdout
    assert "Eve\\u202e [bold red]Mallory[/] [link=" in listing  # the override made visible; markup as typed
    assert "Lunch" in cli("entries", str(cid)).stdout and "Work" in cli("calendars", str(cid)).stdout


def test_json_output_stays_exact_json_with_controls_escaped(env, cli):
    cid = seed_hostile(env)
    for args, key, expected in (
        (("staff", "list", "--json"), "name", f"Eve{BIDI}{OSC52}{CSI} {MARKUP}"),
        (("entries", str(cid), "--json"), "subject", f"Lunch{OSC52}{CSI}{C1} {MARKUP}"),
    ):
        result = cli(*args)
        assert result.returncode == 0, result.stderr
        assert not any(raw in result.stdout for raw in RAW)
        assert "\\u001b]52" in result.stdout
        (row,) = json.loads(result.stdout)
        assert row[key] == expected  # exactly what is stored


def test_an_error_quoting_provider_text_is_one_safe_line(tmp_path, monkeypatch, capsys):
    from console import cli

    for key, value in make_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(
        actions,
        "list_staff",
        lambda rt: (_ for _ in ()).throw(actions.ActionError(f"the calendar {OSC52}Work\nFAKE: all good{CSI} said no")),
    )
    assert cli.main(["staff", "list"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and not any(raw in err for raw in RAW)
    assert "Work FAKE: all good said no" in err


# -- 2b. the same rows in the Textual console ----------------------------------------------------


def _widget_text(widget, lines: int = 3) -> str:
    return "\n".join("".join(seg.text for seg in widget.render_line(y)) for y in range(lines))


def _screen_output(app) -> str:
    """What the console writes to the terminal for the whole screen."""
    update = app.screen._compositor.render_update(full=True)
    return "".join(update.render_segments(app.console))


def test_the_console_shows_provider_text_as_text(env):
    from console.app import CalsyncConsole
    from console.screens.detail import DetailScreen
    from console.widgets.virtual_table import VirtualTable

    cid = seed_hostile(env)

    async def scenario(rt):
        app = CalsyncConsole(rt=rt, actor="sam", refresh_seconds=3600)
        async with app.run_test(size=(160, 40)) as pilot:
            for view, table_id in (("c", "#connections"), ("s", "#staff"), ("a", "#audit")):
                await pilot.press(view)
                await app.workers.wait_for_complete()
                await pilot.pause()
                table = app.screen.query_one(table_id, VirtualTable)
                shown = _widget_text(table, 4)
                assert "\x1b" not in shown and BIDI not in shown, (view, shown)
                out = _screen_output(app)
                assert "\x1b]" not in out and "\x07" not in out and "\x9b" not in out and BIDI not in out, view
                if view == "s":
                    assert "[bold red]Mallory[/]" in shown  # markup is shown, not obeyed
                if view == "a":
                    assert "[bold red]" in shown, shown  # markup in a staff name is shown, not obeyed
            await pilot.press("c")
            app.push_screen(DetailScreen(cid))
            await app.workers.wait_for_complete()
            await pilot.pause()
            summary = _widget_text(app.screen.query_one("#summary"), 6)
            assert "\x1b" not in summary and SECRET not in summary
            assert "the server said no" in summary and "https://***@127.0.0.1:9/dav/" in summary
            feed = _widget_text(app.screen.query_one("#feed"), 3)
            assert "Lunch" in feed and "\x1b" not in feed and "[bold red]" in feed
            out = _screen_output(app)
            assert "\x1b]" not in out and "\x07" not in out and BIDI not in out and SECRET not in out

    with started(env) as rt:
        asyncio.run(scenario(rt))


# -- 3. file permissions -------------------------------------------------------------------------


def test_new_data_dir_and_database_files_are_private(env, tmp_path):
    old = os.umask(0o022)
    try:
        assert (
            subprocess.run(
                _command("staff", "add", "ada@example.com", "--name", "Ada"), env=env, capture_output=True, timeout=60, check=False
            ).returncode
            == 0
        )
        data = tmp_path / "var"
        assert mode(data) == 0o700 and mode(data / "calsync.db") == 0o600
        with started(env) as rt:  # a write with the database open: the WAL and its index exist now
            actions.add_staff(rt, "bob@example.com", "Bob")
            for name in ("calsync.db", "calsync.db-wal", "calsync.db-shm"):
                assert mode(data / name) == 0o600, name
    finally:
        os.umask(old)


def test_an_existing_install_is_tightened_once(env, tmp_path, cli):
    data = tmp_path / "var"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    sqlite3.connect(data / "calsync.db").close()
    (data / "calsync.db").chmod(0o644)
    first = cli("status")
    assert first.returncode == 0, first.stderr
    assert mode(data) == 0o700 and mode(data / "calsync.db") == 0o600
    assert "open to other users" in first.stderr and "Traceback" not in first.stderr
    again = cli("status")
    assert again.returncode == 0 and "open to other users" not in again.stderr


# -- 4. a busy database --------------------------------------------------------------------------


def _lock(db_path):
    """A second process's write transaction, as another calsync would hold it."""
    holder = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute(
        "INSERT INTO audit_entry (actor, action, target, detail, result, at) VALUES ('other', 'x', '', '', 'ok', '2026-01-01 00:00:00')"
    )
    return holder


BOOK = ("book", "ada@example.com", "--start", "2030-01-07T10:00:00Z", "--end", "2030-01-07T11:00:00Z", "--subject", "Intro")


def test_a_lock_past_the_busy_timeout_is_one_line_and_exit_1(env, tmp_path, cli):
    assert cli("staff", "add", "ada@example.com", "--name", "Ada").returncode == 0
    holder = _lock(tmp_path / "var" / "calsync.db")
    try:
        quick = {**env, "CALSYNC_DB_BUSY_TIMEOUT": "1"}
        commands = [
            BOOK,
            ("staff", "add", "bob@example.com", "--name", "Bob"),
            ("apikey", "create", "host"),
            ("feed", "reset", "ada@example.com", "--yes"),
            ("sync",),
        ]
        for result in run_all(quick, commands):
            last = assert_one_line_error(result, 1)
            assert result.stderr.strip() == last
            assert last == "calsync: " + m._busy_message(1)
        reader = cli("status", extra_env={"CALSYNC_DB_BUSY_TIMEOUT": "1"})  # readers never wait in WAL mode
        assert reader.returncode == 0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert json.loads(cli("audit", "--json").stdout)[0]["action"] == "staff.add"  # nothing was changed


def test_a_lock_shorter_than_the_busy_timeout_is_waited_for(env, tmp_path, cli):
    assert cli("staff", "add", "ada@example.com", "--name", "Ada").returncode == 0
    holder = _lock(tmp_path / "var" / "calsync.db")
    release = threading.Timer(2.0, lambda: (holder.execute("COMMIT"), holder.close()))
    started_at = time.monotonic()
    release.start()
    try:
        result = cli(*BOOK, extra_env={"CALSYNC_DB_BUSY_TIMEOUT": "10"})
    finally:
        release.join()
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started_at >= 1.5 and "Booked appointment" in result.stdout


def test_a_bad_busy_timeout_setting_is_one_line_naming_it(cli):
    for value in ("soon", "0", "99999999"):
        assert_one_line_error(cli("status", extra_env={"CALSYNC_DB_BUSY_TIMEOUT": value}), 2, "CALSYNC_DB_BUSY_TIMEOUT")


def test_a_failed_sync_exits_non_zero(env, cli):
    with started(env) as rt:
        staff = m.Staff.create(email="ada@example.com", name="Ada")
        conn = m.Connection.create(
            staff=staff,
            provider="caldav",
            account="ada",
            server_url="http://127.0.0.1:9/dav/",
            status=m.ACTIVE,
            credentials=rt.vault.encrypt({"password": "pw"}),
        )
        m.Calendar.create(connection=conn, remote_id="/dav/ada/work/", name="Work", is_destination=True, is_primary=True)
    one = cli("sync", str(conn.id))
    assert_one_line_error(one, 1)
    every = cli("sync")
    assert_one_line_error(every, 1, "0 synced, 1 failed", "not synced cleanly: connection 1")


# -- 5. credentials in an old row's URL ------------------------------------------------------------


def test_no_output_shows_a_password_from_an_old_url(env, cli):
    cid = seed_hostile(env)
    status = cli("status").stdout
    assert "https://***@127.0.0.1:9/da" in status  # the URL itself is still there to read
    for args in (
        ("status",),
        ("status", "--json"),
        ("test", str(cid)),
        ("test", str(cid), "--json"),
        ("sync", str(cid)),
        ("sync", str(cid), "--json"),
        ("calendars", str(cid), "--json"),
    ):
        result = cli(*args)
        assert "Traceback" not in result.stderr, result.stderr
        assert SECRET not in result.stdout + result.stderr, (args, result.stdout, result.stderr)


def test_redaction_keeps_everything_but_the_userinfo():
    from console.tables import redact_data, redact_urls

    assert redact_urls("GET https://u:p@ss@host.example/a?b=c@d failed") == "GET https://***@host.example/a?b=c@d failed"
    assert redact_urls("mail ada@example.com at https://host.example/") == "mail ada@example.com at https://host.example/"
    assert redact_data({"a": ["smtp://x:y@mail:25"], "n": 1}) == {"a": ["smtp://***@mail:25"], "n": 1}
