"""The one ``calsync`` command: the console, the service and every admin command, with --version."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, make_env

CALSYNC = Path(sys.executable).parent / "calsync"  # installed by `make install` (pyproject [project.scripts])
VERSION = re.compile(r"^\d+\.\d+\.\d+")


def run(cmd: list[str], tmp_path, **extra) -> subprocess.CompletedProcess:
    env = {**os.environ, **make_env(tmp_path, **extra)}
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, cwd=tmp_path, check=False)


def test_the_calsync_command_is_installed():
    assert CALSYNC.exists(), "make install puts the calsync console script into the virtualenv"


@pytest.mark.parametrize(
    "cmd, prog",
    [
        ([str(CALSYNC), "--version"], "calsync"),
        ([str(CALSYNC), "serve", "--version"], "calsync serve"),
        ([str(CALSYNC), "console", "--version"], "calsync console"),
        ([sys.executable, str(ROOT / "run_console.py"), "--version"], "run_console.py"),
        ([sys.executable, str(ROOT / "run_bot.py"), "--version"], "run_bot.py"),
    ],
)
def test_version_everywhere(tmp_path, cmd, prog):
    result = run(cmd, tmp_path)
    assert result.returncode == 0, result.stderr
    name, _, version = result.stdout.strip().rpartition(" ")
    assert name == prog and VERSION.match(version), result.stdout
    assert not (tmp_path / "var").exists()  # --version touches no data


def test_without_a_command_it_says_what_it_can_do(tmp_path):
    result = run([str(CALSYNC)], tmp_path)
    assert result.returncode == 0
    for word in ("calsync console", "calsync serve", "status", "sync", "connect", "--version"):
        assert word in result.stdout


def test_an_admin_command_is_the_same_as_run_console(tmp_path):
    ours = run([str(CALSYNC), "staff", "add", "ada@example.com", "--name", "Ada", "--json"], tmp_path)
    assert ours.returncode == 0, ours.stderr
    status = run([str(CALSYNC), "status", "--json"], tmp_path)
    theirs = run([sys.executable, str(ROOT / "run_console.py"), "status", "--json"], tmp_path)
    assert status.returncode == theirs.returncode == 0
    assert json.loads(status.stdout) == json.loads(theirs.stdout) == []
    help_text = run([str(CALSYNC), "help", "status"], tmp_path)
    assert help_text.returncode == 0 and help_text.stdout.startswith("usage: calsync status")


def test_bad_usage_is_exit_2_with_one_line(tmp_path):
    for cmd in ([str(CALSYNC), "console", "status"], [str(CALSYNC), "no-such-command"], [str(CALSYNC), "serve", "--rol"]):
        result = run(cmd, tmp_path)
        assert result.returncode == 2, (cmd, result.stderr)
        assert "error:" in result.stderr and "Traceback" not in result.stderr


def test_serve_once_runs_one_pass_of_the_service(tmp_path):
    result = run([str(CALSYNC), "serve", "--once"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr


COMMANDS = [[str(CALSYNC)], [sys.executable, str(ROOT / "run_console.py")]]


def _loaded(result: subprocess.CompletedProcess) -> set[str]:
    """The modules a process imported, from its PYTHONPROFILEIMPORTTIME lines on stderr."""
    return {line.rsplit("|", 1)[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}


@pytest.mark.parametrize("cmd", COMMANDS, ids=["calsync", "run_console"])
def test_a_command_on_sqlite_does_not_load_the_postgresql_driver(tmp_path, cmd):
    """psycopg2 loads its bundled libpq, OpenSSL, Kerberos and LDAP (~30 ms of a `sync`): not for SQLite."""
    assert run([*cmd, "staff", "add", "ada@example.com", "--name", "Ada"], tmp_path).returncode == 0
    result = run([*cmd, "staff", "list", "--json"], tmp_path, PYTHONPROFILEIMPORTTIME="1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert [row["email"] for row in json.loads(result.stdout)] == ["ada@example.com"]
    loaded = _loaded(result)
    assert "peewee" in loaded, "the import lines were read"
    assert not {name for name in loaded if name.startswith("psycopg2.")}


@pytest.mark.postgres
@pytest.mark.parametrize("cmd", COMMANDS, ids=["calsync", "run_console"])
def test_a_command_on_postgresql_named_in_the_env_file_uses_it(tmp_path, postgres, cmd):
    """The driver is left out only on SQLite as the command's own settings say, .env included."""
    url = postgres.create_database(f"t_cmd_env_{os.getpid()}_{len(cmd)}")
    (tmp_path / ".env").write_text(f"CALSYNC_DATABASE_URL={url}\n", encoding="utf-8")
    added = run([*cmd, "staff", "add", "ada@example.com", "--name", "Ada", "--json"], tmp_path)
    assert added.returncode == 0, added.stderr[-2000:]
    listed = run([*cmd, "staff", "list", "--json"], tmp_path)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert [row["email"] for row in json.loads(listed.stdout)] == ["ada@example.com"]
    assert not (tmp_path / "var" / "calsync.db").exists(), "nothing went to a SQLite file"
