"""The scriptable admin CLI: `python run_console.py <command>`.

Every command calls one function of :mod:`core.actions`. ``--json`` prints the
action's data as the stable interface. Exit codes: 0 ok, 1 the action failed
(the reason on stderr), 2 bad usage.
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import sys
import traceback
from pathlib import Path

import peewee as pw

import models as m
from console import cli_args
from console.tables import json_text, redact_urls, render, say, shown, when
from core import actions, wording
from core.config import ConfigError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class Usage(Exception):
    """Bad usage found after parsing (exit code 2)."""


def _actor(args) -> str:
    if getattr(args, "as_user", None):
        return args.as_user
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (a container without a passwd entry)
        return "console"


def _emit(args, data, text: str) -> None:
    """The one way a command prints its result: exact JSON, or text safe for a terminal."""
    if getattr(args, "json", False):
        print(json_text(data))
    elif text:
        say(text)


def _note(text: str) -> None:
    """A line for the person at the terminal (progress, questions), on stderr."""
    say(text, file=sys.stderr)


def _confirm(question: str) -> bool:
    """Ask on stderr (stdout is the result, JSON with --json); yes only for y/yes. EOF is no."""
    print(question, end="", file=sys.stderr, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def _read_secret(prompt: str, env_name: str) -> str:
    """A secret from the environment, else stdin (a prompt without echo on a terminal)."""
    value = os.environ.get(env_name, "")
    if value:
        return value
    if sys.stdin is None:
        return ""
    if sys.stdin.isatty():
        return getpass.getpass(prompt)
    return sys.stdin.readline().rstrip("\r\n")


# -- commands ---------------------------------------------------------------------------------


def cmd_staff_add(rt, args):
    staff = actions.add_staff(rt, args.email, args.name, args.slack_id, args.timezone, actor=_actor(args))
    _emit(args, staff, f"Added staff member {staff['name']} <{staff['email']}> (time zone {staff['timezone']}).")


def cmd_staff_list(rt, args):
    rows = actions.list_staff(rt)
    cols = [
        ("id", "ID"),
        ("email", "EMAIL"),
        ("name", "NAME"),
        ("timezone", "TIME ZONE"),
        ("slack_id", "SLACK"),
        ("connections", "CONNECTIONS"),
    ]
    _emit(args, rows, render(rows, cols) or "No staff members yet: add one with `staff add EMAIL --name NAME`.")


def cmd_connect(rt, args):
    if args.provider in ("google", "microsoft"):
        result = actions.oauth_connect_url(rt, args.staff, args.provider, actor=_actor(args))
        _emit(
            args,
            result,
            f"Send {result['staff']} this link to sign in with {args.provider} (valid 15 minutes):\n"
            f"  {result['url']}\nThe connection appears in `status` once they allowed access.",
        )
        return
    if args.provider == "caldav":
        if not args.url or not args.username:
            raise Usage("connect caldav needs --url and --username (the password is read from stdin)")
        password = _read_secret(f"Password for {args.username}: ", "CALSYNC_CONNECT_PASSWORD")
        result = actions.connect(
            rt, args.staff, "caldav", url=args.url, username=args.username, password=password, calendar=args.calendar, actor=_actor(args)
        )
    else:
        url = args.url
        if not url or url == "-":
            url = _read_secret("Calendar URL: ", "CALSYNC_CONNECT_URL")
        if not url:
            raise Usage("connect ics needs the calendar URL (--url URL, or --url - to read it from stdin)")
        try:
            cli_args.url(url)
        except cli_args.argparse.ArgumentTypeError:
            raise Usage("the calendar URL read from stdin is not a valid URL") from None  # not echoed: it may be secret
        result = actions.connect(rt, args.staff, "ics", url=url, actor=_actor(args))
    lines = [f"Connected {result['provider']} account {result['account']} for {result['staff']} as connection {result['id']}."]
    for cal in result["calendars"]:
        role = "primary (appointments are written here)" if cal["destination"] else "busy source"
        lines.append(f"  calendar {cal['id']}: {cal['name']} — {role}{'' if cal['writable'] else ', read-only'}")
    for warning in result["warnings"]:
        lines.append(f"Warning: {warning}")
    if not args.no_sync:
        report = actions.sync_now(rt, result["id"])[0]
        result = {**actions.get_connection(rt, result["id"]), "warnings": result["warnings"], "first_sync": report}
        lines.append(f"First sync: {report['outcome']}; status {result['status']} ({result['reason']}).")
    else:
        lines.append(f"Status pending: the scheduler runs the first sync at once (or run `sync {result['id']}`).")
    _emit(args, result, "\n".join(lines))


STATUS_COLUMNS = [
    ("id", "ID"),
    ("staff", "STAFF"),
    ("provider", "PROVIDER"),
    ("account", "ACCOUNT"),
    ("destination_h", "WRITES TO"),
    ("status", "STATUS"),
    ("since_h", "SINCE"),
    ("last_sync_h", "LAST SYNC"),
    ("missed", "MISSED"),
    ("reason", "REASON"),
]


def cmd_status(rt, args):
    rows = actions.list_statuses(rt, args.staff)  # an unknown e-mail is NotFoundError (exit 1), not an empty list
    if args.json:
        keys = (
            "id",
            "staff",
            "provider",
            "account",
            "status",
            "reason",
            "since",
            "last_sync_at",
            "last_check_at",
            "missed",
            "last_error",
            "last_success_at",
            "flags",
            "meaning",
            "destination",
            "failing",
            "failing_since",
            "consecutive_failures",
            "errors",
            "orphaned",
        )
        _emit(args, [{k: r[k] for k in keys} for r in rows], "")
        return
    for r in rows:
        r["since_h"], r["last_sync_h"] = when(r["since"]), when(r["last_sync_at"])
        r["destination_h"] = r["destination"] or ("(busy only)" if r["provider"] == "ics" else "-")
        if r["failing"] and r["status"] == "active":
            r["status"] = "active (failing)"
        if r["flags"]:
            r["reason"] = f"{r['reason']} [{', '.join(r['flags'])}]"
        if r["last_error"] and r["status"] in ("unreachable", "pending"):
            r["reason"] = f"{r['reason']} (last error: {r['last_error']})"
        if r["errors"]:
            r["reason"] = f"{r['reason']}; {r['errors']} appointment(s) could not be written (see `entries`/console)"
        if r["orphaned"]:
            r["reason"] = f"{r['reason']}; {r['orphaned']} orphaned"
    say(
        render(rows, STATUS_COLUMNS, max_width=70)
        or "No connections yet: connect one with `connect caldav --staff EMAIL --url URL --username USER`."
    )


def cmd_entries(rt, args):
    rows = actions.list_entries(rt, args.connection, not_loaded_only=args.not_loaded)
    if args.json:
        _emit(args, [{k: r[k] for k in ("id", "calendar", "starts_at", "ends_at", "subject", "loaded", "info")} for r in rows], "")
        return
    for r in rows:
        r["starts_h"], r["ends_h"] = when(r["starts_at"]) if r["starts_at"] else "-", when(r["ends_at"]) if r["ends_at"] else "-"
    cols = [
        ("id", "ID"),
        ("calendar", "CALENDAR"),
        ("starts_h", "STARTS AT"),
        ("ends_h", "ENDS AT"),
        ("subject", "SUBJECT"),
        ("loaded", "LOADED"),
        ("info", "INFO"),
    ]
    say(render(rows, cols, max_width=50) or "The sync feed is empty: nothing read from this connection's calendars yet.")


def cmd_book(rt, args):
    result = actions.book(
        rt, args.staff, args.start, args.end, args.subject, args.description or "", args.location or "", actor=_actor(args)
    )
    name, zone = result.get("staff_name") or result["staff"], result.get("timezone")
    start, end = (wording.local_time(result[k], zone, label=False) for k in ("start", "end"))
    label = wording.local_time(result["start"], zone)[len(start) :]  # ' CET (Europe/Berlin)'
    span = f"{start}–{end[11:]}" if end[:10] == start[:10] else f"{start} – {end}"
    lines = [f"Booked appointment {result['id']} for {name} <{result['staff']}>: {result['subject']}, {span}{label}."]
    writers = [r for r in actions.list_statuses(rt, result["staff"]) if r["status"] != "stopped" and r["destination"]]
    for row in writers:
        if row["status"] in m.BROKEN_STATUSES or row["failing"]:
            lines.append(
                f"It waits: {_about(row)}, so it is written once the connection works (connection {row['id']}; "
                f"`download {row['id']} -o FOLDER/` exports what waits)."
            )
        else:
            lines.append(
                f"It is written to {name}'s {row['provider_name']} calendar {row['destination']!r} on the next "
                f"sync (connection {row['id']}; `sync {row['id']}` does it now)."
            )
    if not writers:
        lines.append(f"It is on no calendar: {name} has no connected calendar calsync writes to (see `status --staff {result['staff']}`).")
    _emit(args, result, "\n".join(lines))


def _about(row: dict) -> str:
    """What broke (core.wording), about someone else's calendar: support reads it, not the staff member."""
    return wording.problem(
        row["status"],
        row["provider"],
        server_url=row.get("server") or "",
        calendar=row["destination"],
        failing=row["failing"],
        whose=row["staff_name"] or row["staff"],
    )


def cmd_test(rt, args):
    if not args.json:
        _note(f"Testing connection {args.connection}…")
    result = actions.test_connection(rt, args.connection, actor=_actor(args))
    lines = [f"Connection {result['connection']}: {'OK' if result['ok'] else 'FAILED'} — status {result['status']} ({result['reason']})"]
    for check in result["checks"]:
        lines.append(f"  [{'ok' if check['ok'] else 'no'}] {check['check']}: {check['detail']}")
    if result["provider_answer"]:
        lines.append("Provider's answer:\n  " + result["provider_answer"].replace("\n", "\n  "))
    _emit(args, result, "\n".join(lines))
    if not result["ok"]:
        raise actions.ActionError(result["reason"])


def cmd_sync(rt, args):
    def progress(done, total, report):
        if not args.json and total > 1:
            _note(f"[{done}/{total}] connection {report.connection_id}: {report.outcome}")

    reports = actions.sync_now(rt, args.connection, actor=_actor(args), progress=progress, wait=args.wait)
    cols = [
        ("connection_id", "CONNECTION"),
        ("outcome", "OUTCOME"),
        ("status", "STATUS"),
        ("requests", "REQUESTS"),
        ("created", "CREATED"),
        ("updated", "UPDATED"),
        ("deleted", "DELETED"),
        ("entries_read", "READ"),
        ("applied_back", "APPLIED BACK"),
        ("missed", "MISSED"),
        ("duration_ms", "MS"),
        ("error", "ERROR"),
    ]
    _emit(args, reports, render(reports, cols) or "Nothing to sync: no connection is active.")
    if args.connection is not None and reports and reports[0]["outcome"] != "ok":
        raise actions.ActionError(reports[0]["error"] or reports[0]["reason"])
    summary = sync_summary(reports)
    if any(r["outcome"] != "ok" for r in reports):
        unclean = [str(r["connection_id"]) for r in reports if r["outcome"] != "ok"]
        raise actions.ActionError(
            f"{summary} (not synced cleanly: connection {', '.join(unclean[:20])}{' …' if len(unclean) > 20 else ''}; see the ERROR column)"
        )
    if reports and not args.json:
        _note(summary)


SYNC_WORDS = (("ok", "synced"), ("partial", "partly synced"), ("failed", "failed"), ("busy", "busy"))


def sync_summary(reports: list[dict]) -> str:
    """'3 synced, 1 failed, 1 busy': how many of each outcome (transient counts as failed)."""
    counts = {"ok": 0, "partial": 0, "failed": 0, "busy": 0}
    for report in reports:
        outcome = report["outcome"]
        counts["failed" if outcome not in counts else outcome] += 1
    return ", ".join(f"{counts[key]} {word}" for key, word in SYNC_WORDS if counts[key] or key == "ok")


def cmd_download(rt, args):
    if args.output == "-":
        sys.stdout.buffer.write(actions.download_missed(rt, args.connection, actor=_actor(args))["ics"])
        return
    folder, name = _download_target(args.output)  # checked before anything is read or audited
    result = actions.download_missed(rt, args.connection, actor=_actor(args))
    out = folder / (name or result["filename"])
    _write_file(out, result["ics"])
    data = {k: v for k, v in result.items() if k != "ics"} | {"path": str(out)}
    if result["count"]:
        text = f"Wrote {result['count']} missed appointment(s) to {out} (a snapshot: it will not update).\n{result['import_note']}"
    else:
        text = f"No appointment of connection {result['connection']} is waiting: {out} holds an empty calendar."
    _emit(args, data, text)


def _download_target(output: str) -> tuple[Path, str]:
    """(folder, file name) for ``-o``: a path ending in a slash, or an existing folder, gets the
    file inside it under the download's own name (an empty name here)."""
    path = Path(os.path.expanduser(output))
    if output.endswith(("/", os.sep)) or path.is_dir():
        folder, name = path, ""
    else:
        folder, name = path.parent, path.name
    if folder.exists() and not folder.is_dir():
        raise actions.ActionError(f"cannot write into {folder}: it is a file, not a folder (choose another -o)")
    if not folder.is_dir():
        raise actions.ActionError(f"cannot write into {folder}: the folder does not exist (create it first, or choose another -o)")
    return folder, name


def _write_file(out: Path, data: bytes) -> None:
    """Write ``out`` whole or not at all: a temporary file beside it, renamed over it, removed on failure."""
    import tempfile  # only `download` writes a file: not loaded for every command

    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".part")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, out)
        tmp = None
    except OSError as exc:
        raise actions.ActionError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


def cmd_stop(rt, args):
    plan = actions.stop_plan(rt, args.connection, keep_events=args.keep_events)
    if not args.yes:
        terminal = bool(sys.stdin and sys.stdin.isatty())
        if terminal or not args.json:  # a script's --json failure is only the JSON error on stderr
            _note(f"Stop sync of connection {plan['connection']} ({plan['status']}): {plan['effect']}.")
            if plan["warning"]:
                _note(f"Note: {plan['warning']}.")
        if not terminal:
            raise Usage("stop needs confirmation: run it in a terminal, or add --yes")
        if not _confirm("Stop this sync? [y/N] "):
            _note("Nothing was changed.")
            return
    result = actions.stop_sync(rt, args.connection, keep_events=args.keep_events, force=args.force, actor=_actor(args))
    text = (
        f"Stopped connection {result['connection']} ({result['stopped_by']}): {result['removed']} event(s) removed, "
        f"{result['kept']} kept, {result['orphaned']} orphaned; credentials forgotten."
    )
    if result["waiting_orphaned"]:
        text += (
            f"\n{len(result['waiting_orphaned'])} appointment(s) that waited were never delivered; they stay listed "
            f"as orphaned (`download {result['connection']} -o FILE` exports them):"
        )
        text += "".join(f"\n  {a['start']}  {a['subject']}  ({a['id']})" for a in result["waiting_orphaned"])
    if result["warning"]:
        text += f"\nNote: {result['warning']}."
    _emit(args, result, text)


def cmd_relink(rt, args):
    via = tuple(v.strip() for v in args.via.split(",") if v.strip())
    result = actions.issue_relink(rt, args.connection, via=via, actor=_actor(args))
    lines = [
        f"New relink link for connection {result['connection']} (earlier links no longer work; expires {result['expires_at']}):",
        f"  {result['url']}",
    ]
    if result["sent_via"]:
        lines.append(f"Sent via {', '.join(result['sent_via'])} (on the scheduler's next outbox pass, or now with `run_bot.py --once`).")
    if result["not_configured"]:
        lines.append(
            f"Not sent via {', '.join(result['not_configured'])}: not configured here "
            "(CALSYNC_SMTP_URL for e-mail, SLACK_BOT_TOKEN for Slack). Pass the link on yourself."
        )
    _emit(args, result, "\n".join(lines))


def cmd_feed(rt, args):
    if args.feed_command == "url":
        result = actions.feed_url(rt, args.staff, actor=_actor(args))
        text = f"Private feed of {result['staff']} (subscribe to it in any calendar app; keep it secret):\n  {result['url']}"
    else:
        if not args.yes:
            if not (sys.stdin and sys.stdin.isatty()):
                raise Usage("feed reset revokes the current URL at once: run it in a terminal, or add --yes")
            if not _confirm("Reset the feed URL? Calendar apps subscribed to the old one stop updating. [y/N] "):
                _note("Nothing was changed.")
                return
        result = actions.feed_reset(rt, args.staff, actor=_actor(args))
        text = f"New private feed of {result['staff']}; the old URL no longer works (re-subscribe with this one):\n  {result['url']}"
    _emit(args, result, text)


def cmd_apikey(rt, args):
    if args.apikey_command == "create":
        result = actions.apikey_create(rt, args.name, actor=_actor(args))
        _emit(
            args,
            result,
            f"API key {result['name']!r} (shown once; only its hash is kept):\n  {result['key']}\n"
            "Send it as `Authorization: Bearer <key>` to /api/v1.",
        )
    elif args.apikey_command == "revoke":
        result = actions.apikey_revoke(rt, args.name, actor=_actor(args))
        _emit(args, result, f"API key {result['name']!r} revoked.")
    else:
        rows = actions.apikey_list(rt)
        cols = [("name", "NAME"), ("prefix", "PREFIX"), ("created_at", "CREATED"), ("last_used_at", "LAST USED"), ("revoked", "REVOKED")]
        _emit(args, rows, render(rows, cols) or "No API keys yet: create one with `apikey create NAME`.")


def cmd_primary(rt, args):
    result = actions.set_destination(rt, args.connection, args.calendar, actor=_actor(args))
    text = (
        f"Primary calendar of connection {result['id']} is now {result.get('primary', args.calendar)!r}; "
        "appointments already written stay where they are."
    )
    report = result.get("sync")
    if report:
        text += (
            f"\nSynced at once: {report['outcome']}, {report['created']} appointment(s) written; "
            f"status {result['status']} ({result['reason']})."
        )
    _emit(args, result, text)


CALENDAR_COLUMNS = [
    ("id", "ID"),
    ("name", "NAME"),
    ("primary", "PRIMARY"),
    ("busy", "BUSY"),
    ("write", "WRITE"),
    ("writable", "WRITABLE"),
    ("problem", "PROBLEM"),
]


def cmd_calendars(rt, args):
    rows = actions.calendar_roles(rt, args.connection, refresh=args.refresh)
    _emit(args, rows, render(rows, CALENDAR_COLUMNS) or "No calendars.")


def cmd_calendars_set(rt, args):
    if args.busy is None and args.write is None:
        raise actions.InvalidInput("say what to change: --busy yes|no and/or --write yes|no")
    row = actions.set_calendar_roles(rt, args.connection, args.calendar, busy=args.busy, write=args.write, actor=_actor(args))
    roles = [word for word, on in (("busy", row["busy"]), ("write", row["write"]), ("primary", row["primary"])) if on]
    text = f"Calendar {row['id']} ({row['name']}) of connection {row['connection']}: {', '.join(roles) or 'no role (not read)'}"
    text += "." if row["change"] == "updated" else " (unchanged)."
    _emit(args, row, text)


def cmd_audit(rt, args):
    rows = actions.audit_log(rt, limit=args.limit)
    for r in rows:
        r_at = r["at"] or ""
        r["at_h"] = f"{r_at[:10]} {r_at[11:19]}" if r_at else "-"
        r["conn_h"] = str(r["connection"]) if r["connection"] is not None else "-"
        r["staff_h"] = r["staff"] or "-"
    cols = [
        ("at_h", "AT (UTC)"),
        ("actor", "ACTOR"),
        ("staff_h", "STAFF"),
        ("conn_h", "CONN"),
        ("result", "RESULT"),
        ("summary", "WHAT HAPPENED"),
    ]
    shown = render(rows, cols, max_width=80) if rows else ""
    for r in rows:
        for key in ("at_h", "conn_h", "staff_h"):
            del r[key]
    _emit(args, rows, shown or "The audit trail is empty.")


def cmd_keygen(rt, args):
    from core.crypto import generate_key

    print(generate_key())


def cmd_rotate_key(rt, args):
    result = actions.rotate_key(rt, actor=_actor(args))
    _emit(args, result, f"Re-encrypted {result['reencrypted']} stored credential(s) with the first key of CALSYNC_SECRET_KEY.")


def cmd_demo(rt, args):
    from core import demo

    password = ""
    if args.caldav_url:
        password = _read_secret(f"Password for {args.username}: ", "CALSYNC_CONNECT_PASSWORD")
    result = demo.seed(rt, caldav_url=args.caldav_url, username=args.username, password=password, actor=_actor(args))
    _emit(args, result, "\n".join(result["log"]))


# -- entry -------------------------------------------------------------------------------------


def build_parser():
    """The parser of every command (console.cli_args), each calling its ``cmd_*`` function here."""
    return cli_args.build_parser(sys.modules[__name__])


def main(argv: list[str] | None = None) -> int | None:
    """Run one command; every failure is one line on stderr and an exit code, never a traceback.

    With ``--json`` the line is a JSON object, ``{"error": CODE, "message": TEXT}``, and stdout
    stays empty (``test`` and ``sync`` still print their report: it is the data of the failure).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    as_json = "--json" in (argv[: argv.index("--")] if "--" in argv else argv)
    cli_args.Parser.json_errors = as_json
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    finally:
        cli_args.Parser.json_errors = False
    if args.command is None:
        return None  # the caller opens the interactive console
    try:
        return _run(args)
    except Usage as exc:
        if not as_json:
            _command_parser(parser, args).print_usage(sys.stderr)
        return _fail(str(exc), EXIT_USAGE, "usage", as_json)
    except ANSWERED as exc:
        return failed(exc, as_json)
    except BrokenPipeError:  # the reader went away (`| head`): nothing more to tell it
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except Unexpected as exc:
        return _fail(str(exc), EXIT_FAILED, "internal", as_json)


def _command_parser(parser, args):
    """The (sub)parser of the command that ran, so a usage line shows that command's flags."""
    # nested commands keep theirs in "<command>_command" (staff, feed, apikey)
    for dest in ("command", f"{args.command}_command"):
        choices = next((a.choices for a in parser._actions if isinstance(a, cli_args.argparse._SubParsersAction)), {})
        name = getattr(args, dest, None)
        if name not in choices:
            break
        parser = choices[name]
    return parser


ANSWERED = (ConfigError, actions.ActionError, pw.DatabaseError, KeyboardInterrupt)


class Unexpected(Exception):
    """A bug, not bad input: said in one line; the traceback goes to the data dir's console.log."""


def error_code(exc: BaseException) -> str:
    """The ``error`` of a ``--json`` failure: a stable word per kind of failure."""
    if isinstance(exc, ConfigError):
        return "config"
    if isinstance(exc, actions.NotFoundError):
        return "not_found"
    if isinstance(exc, actions.InvalidInput):
        return "invalid_input"
    if isinstance(exc, actions.ActionError):
        return "failed"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    return "database_busy" if m.is_busy(exc) else "database"


def failed(exc: BaseException, as_json: bool = False) -> int:
    """One line on stderr for what stopped a command (one of ANSWERED), and its exit code."""
    code = error_code(exc)
    if isinstance(exc, ConfigError):
        return _fail(f"configuration error: {exc}", EXIT_USAGE, code, as_json)
    if isinstance(exc, actions.ActionError):
        return _fail(str(exc), exc.exit_code, code, as_json)
    if isinstance(exc, KeyboardInterrupt):
        return _fail("interrupted", EXIT_FAILED, code, as_json)
    # A lock held past the busy timeout: the transaction was rolled back, nothing changed.
    return _fail(m.BUSY_MESSAGE if m.is_busy(exc) else f"the database failed: {exc}", EXIT_FAILED, code, as_json)


def _run(args) -> int:
    from core import runtime

    rt = runtime.start()
    try:
        args.func(rt, args)
    except (*ANSWERED, Usage, BrokenPipeError):
        raise
    except Exception as exc:  # noqa: BLE001 - the CLI's edge: a bug is one line, never a traceback on the terminal
        where = _keep_traceback(rt.settings.data_dir / "console.log", args.command)
        raise Unexpected(f"unexpected error ({type(exc).__name__}); this is a bug in calsync, please report it{where}") from None
    finally:
        rt.close()
    return EXIT_OK


def _keep_traceback(path: Path, command: str) -> str:
    """Append the current traceback to ``path`` (0600, credentials out of URLs); ' (details in PATH)'."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as log:
            log.write(f"{dt.datetime.now(dt.UTC).isoformat()} command {command!r} failed:\n{redact_urls(traceback.format_exc())}\n")
    except OSError:
        return ""
    return f" (details in {path})"


def _fail(reason: str, code: int, error: str = "failed", as_json: bool = False) -> int:
    if as_json:
        print(json.dumps({"error": error, "message": shown(reason)}, ensure_ascii=True), file=sys.stderr)
    else:
        print(f"calsync: {shown(reason)}", file=sys.stderr)
    return code
