"""What the admin CLI accepts: its commands, flags and argument types.

Every number has a range and every value a plain-words error: a value argparse
refuses is exit code 2 with one line naming the argument, never a traceback from
deep inside the database driver (SQLite takes 64-bit integers only).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re

from console.tables import shown_lines
from core.text import check_line

MAX_ID = 2**63 - 1  # the largest row id SQLite and PostgreSQL (bigint) hold
MAX_LIMIT = 100_000
_WHOLE_NUMBER = re.compile(r"[0-9]{1,30}")


class Parser(argparse.ArgumentParser):
    """argparse whose messages (usage, errors quoting what was typed) are safe for a terminal."""

    def _print_message(self, message, file=None):
        if message:
            super()._print_message(shown_lines(message.rstrip("\n")) + "\n", file)


def whole_number(what: str, low: int, high: int):
    """An argparse type: a whole number from ``low`` to ``high`` (digits only, no sign or spaces)."""

    def parse(value: str) -> int:
        number = int(value) if _WHOLE_NUMBER.fullmatch(value) else None
        if number is None or not low <= number <= high:
            raise argparse.ArgumentTypeError(f"{value[:40]!r} is not {what} (a whole number from {low} to {high})")
        return number

    return parse


connection_id = whole_number("a connection id", 1, MAX_ID)
limit = whole_number("a number of rows", 1, MAX_LIMIT)


def seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 <= number <= 600:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"{value[:40]!r} is not a number of seconds from 0 to 600")
    return number


def iso_time(value: str) -> str:
    try:
        dt.datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value[:40]!r} is not an ISO 8601 date-time such as 2026-12-01T10:00:00+01:00") from None
    return value


def actor(value: str) -> str:
    """``--as NAME``: recorded in the audit trail, so one plain line."""
    try:
        return check_line(value, "the name", 200)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser(commands) -> argparse.ArgumentParser:
    """Every command, flag and argument type; ``commands`` holds the ``cmd_*`` functions (console.cli)."""
    parser = Parser(
        prog="run_console.py",
        description="Calsync support console. Without a command it opens the interactive console; "
                    "with one it is a scriptable admin CLI.",
        epilog="Exit codes: 0 ok, 1 the action failed (reason on stderr), 2 bad usage.",
    )
    parser.add_argument("--as", dest="as_user", metavar="NAME", type=actor, help="audit actions as NAME (default: the OS user)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name, func, help_text, json_flag=True, parent=sub):
        p = parent.add_parser(name, help=help_text, description=help_text)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print the result as JSON")
        p.set_defaults(func=func)
        return p

    staff = sub.add_parser("staff", help="add or list staff members", description="Add or list staff members.")
    staff_sub = staff.add_subparsers(dest="staff_command", metavar="SUBCOMMAND", required=True)
    p = command("add", commands.cmd_staff_add, "add a staff member", parent=staff_sub)
    p.add_argument("email", metavar="EMAIL")
    p.add_argument("--name", required=True, help="the staff member's name")
    p.add_argument("--slack-id", help="their Slack user id (U…), for alerts")
    p.add_argument("--timezone", default="UTC", help="IANA time zone, e.g. Europe/Berlin (default UTC)")
    command("list", commands.cmd_staff_list, "list staff members", parent=staff_sub)

    p = command("connect", commands.cmd_connect, "connect a staff member's calendar account (credentials are tested first)")
    p.add_argument("provider", choices=["caldav", "ics", "google", "microsoft"], metavar="PROVIDER",
                   help="caldav, ics, google or microsoft (the last two print a sign-in link)")
    p.add_argument("--staff", required=True, metavar="EMAIL")
    p.add_argument("--url", help="CalDAV server URL, or the iCalendar URL ('-' reads it from stdin)")
    p.add_argument("--username", help="CalDAV login; the password is read from stdin or CALSYNC_CONNECT_PASSWORD")
    p.add_argument("--calendar", help="the primary calendar's name (default: the first writable one)")
    p.add_argument("--no-sync", action="store_true", help="do not run the first sync now (the scheduler will)")

    p = command("status", commands.cmd_status, "one row per connection: status, reason, last sync, missed appointments")
    p.add_argument("--staff", metavar="EMAIL", help="only this staff member's connections")

    p = command("entries", commands.cmd_entries, "the sync feed of a connection: what was read, loaded or not, and why")
    p.add_argument("connection", type=connection_id, metavar="CONNECTION")
    p.add_argument("--not-loaded", action="store_true", help="only entries that were not loaded")

    p = command("book", commands.cmd_book, "book a test appointment, created exactly as the host API would")
    p.add_argument("staff", metavar="STAFF", help="the staff member's e-mail")
    p.add_argument("--start", required=True, type=iso_time, metavar="ISO")
    p.add_argument("--end", required=True, type=iso_time, metavar="ISO")
    p.add_argument("--subject", required=True)
    p.add_argument("--description")
    p.add_argument("--location")

    p = command("test", commands.cmd_test, "test a connection: credentials, read, write permission, primary calendar")
    p.add_argument("connection", type=connection_id, metavar="CONNECTION")

    p = command("sync", commands.cmd_sync, "sync one connection now, or all of them (exit 1 if any did not sync cleanly; "
                                  "a connection another process is syncing is waited for, then reported busy)")
    p.add_argument("connection", nargs="?", type=connection_id, metavar="CONNECTION")
    p.add_argument("--wait", type=seconds, default=10.0, metavar="SECONDS",
                   help="how long to wait for another process's run of the same connection (default 10)")

    p = command("download", commands.cmd_download, "write the appointments missed while the connection was broken (or never "
                                          "delivered before a forced stop) to an .ics file")
    p.add_argument("connection", type=connection_id, metavar="CONNECTION")
    p.add_argument("-o", "--output", required=True, metavar="FILE", help="where to write the .ics ('-' for stdout)")

    p = command("stop", commands.cmd_stop, "stop a connection's sync safely (asks for confirmation)")
    p.add_argument("connection", type=connection_id, metavar="CONNECTION")
    p.add_argument("--keep-events", action="store_true", help="leave calsync's events on the calendar")
    p.add_argument("--force", action="store_true", help="stop a broken connection anyway; its events are recorded as orphaned")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    p = command("relink", commands.cmd_relink, "issue a new relink link (single-use, expiring) and send it to the staff member")
    p.add_argument("connection", type=connection_id, metavar="CONNECTION")
    p.add_argument("--via", default="slack,email", help="channels, comma-separated: slack, email (default both)")

    feed = sub.add_parser("feed", help="a staff member's private calendar-feed URL", description="Show or reset a staff member's private iCalendar feed URL.")
    feed_sub = feed.add_subparsers(dest="feed_command", metavar="SUBCOMMAND", required=True)
    p = command("url", commands.cmd_feed, "show the feed URL (made on first use)", parent=feed_sub)
    p.add_argument("staff", metavar="STAFF", help="the staff member's e-mail")
    p = command("reset", commands.cmd_feed, "make a new feed URL; the old one stops working at once", parent=feed_sub)
    p.add_argument("staff", metavar="STAFF", help="the staff member's e-mail")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    apikey = sub.add_parser("apikey", help="API keys of the host API", description="Create, list or revoke host API keys.")
    apikey_sub = apikey.add_subparsers(dest="apikey_command", metavar="SUBCOMMAND", required=True)
    p = command("create", commands.cmd_apikey, "create a key (printed once)", parent=apikey_sub)
    p.add_argument("name", metavar="NAME")
    p = command("revoke", commands.cmd_apikey, "revoke a key", parent=apikey_sub)
    p.add_argument("name", metavar="NAME")
    command("list", commands.cmd_apikey, "list keys (never the keys themselves)", parent=apikey_sub)

    p = command("primary", commands.cmd_primary, "choose the primary calendar (where appointments are written)")
    p.add_argument("connection", type=connection_id, metavar="CONNECTION")
    p.add_argument("calendar", metavar="CALENDAR", help="calendar name or id (see `calendars`)")

    p = command("calendars", commands.cmd_calendars, "list a connection's calendars")
    p.add_argument("connection", type=connection_id, metavar="CONNECTION")
    p.add_argument("--refresh", action="store_true", help="ask the provider for the current list first")

    p = command("audit", commands.cmd_audit, "the audit trail of support actions and external changes")
    p.add_argument("--limit", type=limit, default=200, metavar="N",
                   help=f"rows to show, 1 to {MAX_LIMIT} (default 200)")

    command("keygen", commands.cmd_keygen, "print a new key for CALSYNC_SECRET_KEY", json_flag=False)
    command("rotate-key", commands.cmd_rotate_key, "re-encrypt stored credentials with the first key of CALSYNC_SECRET_KEY")

    p = command("demo", commands.cmd_demo, "seed demo data (a staff member, appointments; with --caldav-url a connection too)")
    p.add_argument("--caldav-url", help="a CalDAV server to connect the demo staff member to")
    p.add_argument("--username", default="alice", help="its login (password from stdin or CALSYNC_CONNECT_PASSWORD)")
    return parser
