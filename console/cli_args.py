"""What the admin CLI accepts: its commands, flags and argument types.

Every number has a range and every value a plain-words error: a value argparse
refuses is exit code 2 with one line naming the argument, never a traceback from
deep inside the database driver (SQLite takes 64-bit integers only).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import sys
import urllib.parse

from console.tables import shown, shown_lines
from core.actions.common import InvalidInput
from core.actions.staff import check_slack_id
from core.text import check_line
from core.version import VersionAction

MAX_ID = 2**63 - 1  # the largest row id SQLite and PostgreSQL (bigint) hold
MAX_LIMIT = 100_000
_WHOLE_NUMBER = re.compile(r"[0-9]{1,30}")


PROG = "run_console.py"  # "calsync" when run as the calsync command (console.command)


class Parser(argparse.ArgumentParser):
    """argparse whose messages (usage, errors quoting what was typed) are safe for a terminal.

    With ``--json`` on the command line (``json_errors``, set by :func:`console.cli.main`) a bad
    argument is the same JSON error object every other failure is, on stderr.
    """

    json_errors = False

    def _print_message(self, message, file=None):
        if message:
            super()._print_message(shown_lines(message.rstrip("\n")) + "\n", file)

    def error(self, message):
        if type(self).json_errors:
            print(json.dumps({"error": "usage", "message": f"{self.prog}: {shown(message)}"}, ensure_ascii=True), file=sys.stderr)
            self.exit(2)
        super().error(message)


def whole_number(what: str, low: int, high: int):
    """An argparse type: a whole number from ``low`` to ``high`` (digits only, no sign or spaces)."""

    def parse(value: str) -> int:
        number = int(value) if _WHOLE_NUMBER.fullmatch(value) else None
        if number is None or not low <= number <= high:
            raise argparse.ArgumentTypeError(f"{value[:40]!r} is not {what} (a whole number from {low} to {high})")
        return number

    return parse


connection_id = whole_number("a connection id", 1, MAX_ID)


def yes_no(value: str) -> bool:
    """An argparse type: yes or no."""
    answer = value.strip().lower()
    if answer not in ("yes", "no"):
        raise argparse.ArgumentTypeError(f"{value[:40]!r} is not yes or no")
    return answer == "yes"


limit = whole_number("a number of rows", 1, MAX_LIMIT)


def seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0 <= number <= 600:  # also refuses nan and inf
        raise argparse.ArgumentTypeError(f"{value[:40]!r} is not a number of seconds from 0 to 600")
    return number


TIME_HELP = (
    "an ISO 8601 date and time, e.g. 2026-12-01T10:00 or 2026-12-01T10:00:00+01:00; without a UTC "
    "offset (or Z) it is read in the staff member's time zone (`staff list`)"
)


def _is_date_only(value: str) -> bool:
    try:
        dt.date.fromisoformat(value.strip())
    except ValueError:
        return False
    return True


def iso_time(value: str) -> str:
    """An appointment's start or end: a date *and* a time. Calsync books timed appointments only,
    so a bare date (which would silently become midnight) is refused rather than guessed at."""
    if _is_date_only(value):
        raise argparse.ArgumentTypeError(
            f"{value[:40]!r} is a date without a time of day: calsync books timed appointments only "
            "(no all-day ones), so give the time too, e.g. 2026-12-01T09:00"
        )
    try:
        dt.datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value[:40]!r} is not an ISO 8601 date-time such as 2026-12-01T10:00:00+01:00") from None
    return value


def slack_id(value: str) -> str:
    """``--slack-id``: checked by the same rule core applies (the API and Slack add staff too)."""
    try:
        checked = check_slack_id(value)
    except InvalidInput as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if checked is None:
        raise argparse.ArgumentTypeError("the Slack user id is empty (leave --slack-id out for none)")
    return checked


def url(value: str) -> str:
    """A URL that parses (a port from 0 to 65535, brackets that close); whether calsync may go
    there and what answers is for the action to say. '-' (read it from stdin) passes."""
    if value == "-":
        return value
    try:
        urllib.parse.urlsplit(value.strip()).port  # noqa: B018 - parsing the port is the check
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{value[:80]!r} is not a valid URL ({exc})") from None
    return value


def staff_email(value: str) -> str:
    """A staff member's e-mail as typed (unknown ones are answered by the action); never empty."""
    if not value.strip():
        raise argparse.ArgumentTypeError("the staff member's e-mail address is empty")
    return value


def output_path(value: str) -> str:
    if not value.strip():
        raise argparse.ArgumentTypeError("the output path is empty (give a file, a folder, or '-' for stdout)")
    if "\x00" in value:
        raise argparse.ArgumentTypeError("the output path may not contain a NUL character")
    return value


def actor(value: str) -> str:
    """``--as NAME``: recorded in the audit trail, so one plain line."""
    try:
        return check_line(value, "the name", 200)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


CONNECTION_HELP = "the connection's id (the ID column of `status`)"
STAFF_HELP = "the staff member's e-mail address"


def build_parser(commands) -> argparse.ArgumentParser:
    """Every command, flag and argument type; ``commands`` holds the ``cmd_*`` functions (console.cli).

    Every positional and option has a help text (a test walks the tree)."""
    parser = Parser(
        prog=PROG,
        description="Calsync support console. Without a command it opens the interactive console; with one it is a scriptable admin CLI.",
        epilog="Exit codes: 0 ok, 1 the action failed (reason on stderr), 2 bad usage. With --json, "
        'a failure is a JSON object {"error": CODE, "message": TEXT} on stderr.',
    )
    parser.add_argument("--as", dest="as_user", metavar="NAME", type=actor, help="audit actions as NAME (default: the OS user)")
    parser.add_argument("--version", action=VersionAction)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name, func, help_text, json_flag=True, parent=sub, epilog=None):
        p = parent.add_parser(name, help=help_text, description=help_text, epilog=epilog)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print the result as JSON (errors too: a JSON object on stderr)")
        p.set_defaults(func=func)
        return p

    staff = sub.add_parser("staff", help="add or list staff members", description="Add or list staff members.")
    staff_sub = staff.add_subparsers(dest="staff_command", metavar="SUBCOMMAND", required=True)
    p = command("add", commands.cmd_staff_add, "add a staff member", parent=staff_sub)
    p.add_argument("email", metavar="EMAIL", help="their e-mail address (how every other command names them)")
    p.add_argument("--name", required=True, help="the staff member's name")
    p.add_argument(
        "--slack-id",
        type=slack_id,
        metavar="ID",
        help="their Slack member id for alerts: U or W and 8 to 11 upper-case letters or digits, "
        "e.g. U024BE7LH (in Slack: profile, More, Copy member ID)",
    )
    p.add_argument(
        "--timezone",
        default="UTC",
        metavar="TZ",
        help="IANA time zone, e.g. Europe/Berlin (default UTC); times given to `book` without an offset are read in it",
    )
    command("list", commands.cmd_staff_list, "list staff members", parent=staff_sub)

    p = command("connect", commands.cmd_connect, "connect a staff member's calendar account (credentials are tested first)")
    p.add_argument(
        "provider",
        choices=["caldav", "ics", "google", "microsoft"],
        metavar="PROVIDER",
        help="caldav, ics, google or microsoft (the last two print a sign-in link)",
    )
    p.add_argument("--staff", required=True, type=staff_email, metavar="EMAIL", help=STAFF_HELP)
    p.add_argument("--url", type=url, help="CalDAV server URL, or the iCalendar URL ('-' reads it from stdin)")
    p.add_argument("--username", help="CalDAV login; the password is read from stdin or CALSYNC_CONNECT_PASSWORD")
    p.add_argument("--calendar", metavar="NAME", help="the primary calendar's name (default: the first writable one)")
    p.add_argument("--no-sync", action="store_true", help="do not run the first sync now (the scheduler will)")

    p = command("status", commands.cmd_status, "one row per connection: status, reason, last sync, missed appointments")
    p.add_argument(
        "--staff", type=staff_email, metavar="EMAIL", help="only this staff member's connections (an unknown e-mail is an error)"
    )

    p = command("entries", commands.cmd_entries, "the sync feed of a connection: what was read, loaded or not, and why")
    p.add_argument("connection", type=connection_id, metavar="CONNECTION", help=CONNECTION_HELP)
    p.add_argument("--not-loaded", action="store_true", help="only entries that were not loaded")

    p = command(
        "book",
        commands.cmd_book,
        "book a test appointment, created exactly as the host API would",
        epilog="Times without a UTC offset are read in the staff member's time zone; a date without a "
        "time is refused (calsync books timed appointments, not all-day ones).",
    )
    p.add_argument("staff", type=staff_email, metavar="STAFF", help=STAFF_HELP)
    p.add_argument("--start", required=True, type=iso_time, metavar="ISO", help=f"when it starts: {TIME_HELP}")
    p.add_argument(
        "--end", required=True, type=iso_time, metavar="ISO", help="when it ends, after the start (at most 31 days); read like --start"
    )
    p.add_argument("--subject", required=True, help="its title on the calendar (one line)")
    p.add_argument("--description", help="its description on the calendar (may have several lines)")
    p.add_argument("--location", help="its location on the calendar (one line)")

    p = command("test", commands.cmd_test, "test a connection: credentials, read, write permission, primary calendar")
    p.add_argument("connection", type=connection_id, metavar="CONNECTION", help=CONNECTION_HELP)

    p = command(
        "sync",
        commands.cmd_sync,
        "sync one connection now, or all of them (exit 1 if any did not sync cleanly; "
        "a connection another process is syncing is waited for, then reported busy)",
    )
    p.add_argument(
        "connection",
        nargs="?",
        type=connection_id,
        metavar="CONNECTION",
        help=f"{CONNECTION_HELP}; without it, every connection that is not stopped",
    )
    p.add_argument(
        "--wait",
        type=seconds,
        default=10.0,
        metavar="SECONDS",
        help="how long to wait for another process's run of the same connection (default 10)",
    )

    p = command(
        "download",
        commands.cmd_download,
        "write the appointments missed while the connection was broken (or never delivered before a forced stop) to an .ics file",
    )
    p.add_argument("connection", type=connection_id, metavar="CONNECTION", help=CONNECTION_HELP)
    p.add_argument(
        "-o",
        "--output",
        required=True,
        type=output_path,
        metavar="FILE",
        help="the .ics file to write, or a folder to write calsync-missed-CONNECTION.ics into ('-' for stdout); the folder must exist",
    )

    p = command("stop", commands.cmd_stop, "stop a connection's sync safely (asks for confirmation)")
    p.add_argument("connection", type=connection_id, metavar="CONNECTION", help=CONNECTION_HELP)
    p.add_argument("--keep-events", action="store_true", help="leave calsync's events on the calendar")
    p.add_argument("--force", action="store_true", help="stop a broken connection anyway; its events are recorded as orphaned")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    p = command("relink", commands.cmd_relink, "issue a new relink link (single-use, expiring) and send it to the staff member")
    p.add_argument("connection", type=connection_id, metavar="CONNECTION", help=CONNECTION_HELP)
    p.add_argument("--via", default="slack,email", help="channels, comma-separated: slack, email (default both)")

    feed = sub.add_parser(
        "feed", help="a staff member's private calendar-feed URL", description="Show or reset a staff member's private iCalendar feed URL."
    )
    feed_sub = feed.add_subparsers(dest="feed_command", metavar="SUBCOMMAND", required=True)
    p = command("url", commands.cmd_feed, "show the feed URL (made on first use)", parent=feed_sub)
    p.add_argument("staff", type=staff_email, metavar="STAFF", help=STAFF_HELP)
    p = command("reset", commands.cmd_feed, "make a new feed URL; the old one stops working at once", parent=feed_sub)
    p.add_argument("staff", type=staff_email, metavar="STAFF", help=STAFF_HELP)
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    apikey = sub.add_parser("apikey", help="API keys of the host API", description="Create, list or revoke host API keys.")
    apikey_sub = apikey.add_subparsers(dest="apikey_command", metavar="SUBCOMMAND", required=True)
    p = command("create", commands.cmd_apikey, "create a key (printed once)", parent=apikey_sub)
    p.add_argument("name", metavar="NAME", help="a name for the key, e.g. the host product's name (1 to 100 characters)")
    p = command("revoke", commands.cmd_apikey, "revoke a key", parent=apikey_sub)
    p.add_argument("name", metavar="NAME", help="the key's name (see `apikey list`)")
    command("list", commands.cmd_apikey, "list keys (never the keys themselves)", parent=apikey_sub)

    p = command("primary", commands.cmd_primary, "choose the primary calendar (where appointments are written)")
    p.add_argument("connection", type=connection_id, metavar="CONNECTION", help=CONNECTION_HELP)
    p.add_argument("calendar", metavar="CALENDAR", help="calendar name or id (see `calendars`)")

    p = command(
        "calendars",
        commands.cmd_calendars,
        "list a connection's calendars and their roles (primary, busy, write), or change a role with `set`",
        epilog="busy: its busy events block the staff member's availability; write: appointments are written "
        "to it; the primary is always written and is chosen with `primary`.",
    )
    p.add_argument("connection", type=connection_id, metavar="CONNECTION", help=CONNECTION_HELP)
    p.add_argument("--refresh", action="store_true", help="ask the provider for the current list first")
    calendars_sub = p.add_subparsers(dest="calendars_command", metavar="set", required=False)
    p = command("set", commands.cmd_calendars_set, "turn a calendar's busy and/or write role on or off (audited)", parent=calendars_sub)
    p.add_argument("calendar", metavar="CALENDAR", help="calendar id or name (see `calendars CONNECTION`)")
    p.add_argument("--busy", type=yes_no, metavar="yes|no", help="whether its busy events block availability")
    p.add_argument("--write", type=yes_no, metavar="yes|no", help="whether appointments are written to it (not a read-only calendar)")

    p = command("audit", commands.cmd_audit, "the audit trail of support actions and external changes")
    p.add_argument("--limit", type=limit, default=200, metavar="N", help=f"rows to show, 1 to {MAX_LIMIT} (default 200)")

    command("keygen", commands.cmd_keygen, "print a new key for CALSYNC_SECRET_KEY", json_flag=False)
    command("rotate-key", commands.cmd_rotate_key, "re-encrypt stored credentials with the first key of CALSYNC_SECRET_KEY")

    p = command("demo", commands.cmd_demo, "seed demo data (a staff member, appointments; with --caldav-url a connection too)")
    p.add_argument("--caldav-url", type=url, metavar="URL", help="a CalDAV server to connect the demo staff member to")
    p.add_argument("--username", default="alice", help="its login (password from stdin or CALSYNC_CONNECT_PASSWORD)")
    return parser
