"""The sections of the connection screen: its summary, its tables, and a row of any of them in words.

Every time is in the staff member's zone (``d["timezone"]``), named in the column's header
or next to the value.
"""

from __future__ import annotations

import itertools

from rich.table import Table
from rich.text import Text

from console.tables import shown
from console.widgets.cells import ago, local, local_and_ago, yes_no, zone_label
from console.widgets.large_table import ColumnSpec, plain_cell
from console.widgets.status_badge import status_text
from console.widgets.support_words import support_todo

TIME = 16  # "2026-03-02 10:30"


def zoned(label: str, zone: str | None) -> str:
    return f"{label} ({zone_label(zone)})"


def time_column(label: str, key: str, zone: str | None, **kwargs) -> ColumnSpec:
    """A column of times in ``zone``, which its header names."""
    header = zoned(label, zone)
    return ColumnSpec(header, key, max(TIME, len(header)), **kwargs)


def calendar_columns(zone):
    return (
        ColumnSpec("ID", "id", 6),
        ColumnSpec("Name", "name", 40, squeeze=2, squeeze_to=12),
        ColumnSpec("Role", "role", 40, squeeze=3, squeeze_to=12),
        ColumnSpec("Writable", "writable", 8),
        time_column("Last synced", "synced", zone, drop=1),
    )


def history_columns(zone):
    return (
        time_column("Time", "at", zone),
        ColumnSpec("Change", "change", 38, squeeze=2, squeeze_to=20),
        ColumnSpec("Cause", "cause", 16, drop=1),
        ColumnSpec("Provider's answer", "answer", 300, squeeze=3, squeeze_to=17),
    )


def incident_columns(zone):
    return (
        time_column("Opened", "opened", zone),
        ColumnSpec("Kind", "kind", 18),
        ColumnSpec("State", "state", 26, squeeze=2, squeeze_to=10),
        ColumnSpec("Failures", "failures", 8, drop=2),
        ColumnSpec("Reminders", "reminders", 9, drop=3),
        ColumnSpec("Escalated", "escalated", TIME, drop=4),
        ColumnSpec("Reason", "reason", 300, squeeze=3, squeeze_to=12),
    )


def run_columns(zone):
    return (
        time_column("Time", "at", zone),
        ColumnSpec("Duration", "duration", 9),
        ColumnSpec("Requests", "requests", 8, drop=2),
        ColumnSpec("Created", "created", 7, drop=4),
        ColumnSpec("Updated", "updated", 7, drop=5),
        ColumnSpec("Deleted", "deleted", 7, drop=6),
        ColumnSpec("Read", "read", 5, drop=3),
        ColumnSpec("Outcome", "outcome", 9),
        ColumnSpec("Error", "error", 300, squeeze=3, squeeze_to=12),
    )


def run_cells(r: dict, at) -> tuple:
    """A run, or a stretch of no-change runs (``runs`` > 1: one line, its mean duration)."""
    runs = r.get("runs", 1)
    if runs > 1:
        return (
            at(r["started_at"]),
            duration(r["duration_ms"] // runs),
            str(r["requests"]),
            "0",
            "0",
            "0",
            "0",
            plain_cell(f"{r['outcome']} ×{runs}"),
            plain_cell(f"{runs} runs found nothing to do, the last at {at(r.get('finished_at'))}"),
        )
    return (
        at(r["started_at"]),
        duration(r["duration_ms"]),
        str(r["requests"]),
        str(r["created"]),
        str(r["updated"]),
        str(r["deleted"]),
        str(r["entries_read"]),
        plain_cell(r["outcome"]),
        plain_cell(r["error"]) or "-",
    )


def missed_columns(zone):
    return (
        ColumnSpec("ID", "id", 24, drop=2),
        time_column("Starts", "start", zone),
        ColumnSpec("Ends", "end", TIME, drop=3),
        ColumnSpec("Subject", "subject", 40, squeeze=2, squeeze_to=12),
        ColumnSpec("State", "state", 300, squeeze=3, squeeze_to=12),
    )


def duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    return f"{ms} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


def calendar_role(c: dict) -> str:
    """Its roles in words: primary / written / blocks time, and why an extra write calendar waits."""
    words = []
    if c.get("primary"):
        words.append("primary: appointments are written here")
    elif c.get("write"):
        words.append("appointments are written here too")
    if c.get("busy"):
        words.append("blocks time")
    role = ", ".join(words) or "not used"
    problem = c.get("problem")
    if problem:
        role += f" ({'gone' if problem == 'calendar_missing' else 'read-only'}: its appointments wait)"
    return role


def table_rows(d: dict) -> dict[str, tuple]:
    """Per table id: (columns, rows) of the connection ``d`` (core.actions.connection_detail)."""
    zone = d.get("timezone")

    def at(value, empty="never"):
        return local(value, zone, empty, label=False)

    waiting_state = "never delivered (orphaned when stopped)" if d["status"] == "stopped" else "waiting"
    return {
        "calendars": (
            calendar_columns(zone),
            [
                (str(c["id"]), plain_cell(c["name"]), calendar_role(c), yes_no(c["writable"]), at(c["last_synced_at"]))
                for c in d["calendars"]
            ],
        ),
        "history": (
            history_columns(zone),
            [
                (
                    at(h["at"]),
                    plain_cell(f"{h['old'] or '(new)'} → {h['new']}"),
                    plain_cell(h["cause"]),
                    plain_cell(h["provider_answer"]) or "-",
                )
                for h in d["history"]
            ],
        ),
        "incidents": (
            incident_columns(zone),
            [
                (
                    at(i["opened_at"]),
                    plain_cell(i["kind"]),
                    f"resolved {at(i['resolved_at'])}" if i["resolved_at"] else Text("open", style="bold #ff5f5f"),
                    str(i["failures"]),
                    str(i["reminders"]),
                    at(i["escalated_at"], "-"),
                    plain_cell(i["reason"] + (f" — {i['resolution']}" if i["resolution"] else "")),
                )
                for i in d["incidents"]
            ],
        ),
        "runs": (run_columns(zone), [run_cells(r, at) for r in d["sync_runs"]]),
        "missed": (
            missed_columns(zone),
            [
                *[
                    (
                        plain_cell(a["id"]),
                        at(a["start"]),
                        at(a["end"]),
                        plain_cell(a["subject"]),
                        Text(shown(f"write failed {a['failures']}×: {a['error']}"), style="bold #ff5f5f"),
                    )
                    for a in d.get("write_errors", [])
                ],
                *[
                    (plain_cell(a["id"]), at(a["start"]), at(a["end"]), plain_cell(a["subject"]), waiting_state)
                    for a in d["missed_appointments"]
                ],
            ],
        ),
    }


def headline(d: dict) -> Text:
    """The one line the collapsed summary shows: number, status, who, what."""
    text = Text(f"#{d['id']} ", style="bold", end="")
    text.append_text(status_text(d["status"], d.get("failing", False)))
    who = d.get("staff_name") or d["staff"]
    text.append(shown(f" — {who} · {d.get('provider_name') or d['provider']} {d['account']}"))
    return text


def push_words(p: dict) -> str:
    """How the connection learns of changes (core.push.view), in a few words."""
    if p["mode"] == "push":
        return "pushed by the provider within seconds (polling stays the backstop)"
    polled = [c for c in p["calendars"] if c["state"] != "live"]
    if p["mode"] == "partly push":
        names = ", ".join(c["calendar"] for c in polled)
        return f"pushed, except {names}: polled ({polled[0]['reason'] or 'the channel is not delivering'})"
    return f"polled: {p['reason']}"


def summary(d: dict, wide: bool = True) -> Table:
    """What the connection is and what state it is in, in plain words: two columns of label and
    value on a wide screen, one on a narrow one (what to do first)."""
    zone = d.get("timezone")
    grid = Table.grid(padding=(0, 2), expand=True)
    for _ in range(2 if wide else 1):
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(ratio=1)
    status = Text()
    status.append_text(status_text(d["status"], d.get("failing", False)))
    if d["since"]:
        status.append(f"  since {local(d['since'], zone)}, {ago(d['since'])}")
    link = d.get("relink_link")
    link_text = (
        f"{link['state']}, issued {local(link['issued_at'], zone)} by {link['issued_by'] or '-'}, expires {local(link['expires_at'], zone)}"
        if link
        else "none issued"
    )
    missed = len(d["missed_appointments"])
    last_error = d["last_error"] or "none"
    if d["last_error"] and d["last_error"] == d["reason"]:
        last_error = "the reason above"
    name = d.get("staff_name") or ""

    def safe(value: str) -> Text:  # a plain string in a Rich table would be read as markup
        return Text(shown(value))

    pairs: list[tuple[str, Text | str]] = [
        ("Staff", safe(f"{name} <{d['staff']}>" if name else d["staff"])),
        ("Status", status),
        ("Account", safe(f"{d['account']} ({d.get('provider_name') or d['provider']})  {d['server'] or ''}".rstrip())),
        ("Means", safe(d["meaning"])),
        ("Last sync", local_and_ago(d["last_sync_at"], zone)),
        ("Reason", safe(d["reason"] or "-")),
        ("Last success", local_and_ago(d["last_success_at"], zone)),
        ("What to do", safe(support_todo(d))),
        ("Last check", local_and_ago(d["last_check_at"], zone)),
        ("Flags", safe(", ".join(d["flags"]) or "none")),
        ("Missed", f"{missed} appointment(s) waiting" if missed else "none"),
        ("Last error", safe(last_error)),
        ("Relink link", safe(link_text)),
        ("Times in", zone_label(zone)),
    ]
    if d.get("push"):
        pairs.append(("Changes", safe(push_words(d["push"]))))
    if wide:
        for (a, va), (b, vb) in itertools.zip_longest(pairs[::2], pairs[1::2], fillvalue=("", "")):
            grid.add_row(a, va, b, vb)
    else:
        first = ("Status", "What to do", "Reason", "Staff", "Account", "Missed")
        for label, value in sorted(pairs, key=lambda p: first.index(p[0]) if p[0] in first else len(first)):
            grid.add_row(label, value)
    return grid


def row_words(kind: str, row: dict, zone: str | None) -> tuple[str, str]:
    """(title, text) of one table row in words, for the dialog Enter opens."""

    def at(value, empty="never"):
        return local(value, zone, empty)

    def lines(pairs) -> str:
        return "\n".join(f"{label}: {'-' if value in (None, '') else value}" for label, value in pairs)

    if kind == "history":
        title = f"{at(row['at'])}: {row['old'] or '(new)'} → {row['new']} ({row['cause']})"
        return title, f"The provider's answer:\n\n{row['provider_answer'] or '(none recorded)'}"
    if kind == "feed":
        return "Sync feed entry", lines(
            [
                ("Subject", row["subject"] or "(no subject)"),
                ("Calendar", row.get("calendar")),
                ("Starts", at(row["starts_at"], "-")),
                ("Ends", at(row["ends_at"], "-")),
                ("Loaded", yes_no(row["loaded"])),
                ("Why", row["info"]),
                ("Event UID", row.get("uid")),
                ("Entry number", row["id"]),
            ]
        )
    if kind == "calendars":
        return f"Calendar {row['name']!r}", lines(
            [
                ("Name", row["name"]),
                ("Primary calendar (appointments are written here)", yes_no(row["destination"])),
                ("Busy source (its events block time)", yes_no(row["busy_source"])),
                ("Calsync can write to it", yes_no(row["writable"])),
                ("Can be chosen as the primary calendar", yes_no(row.get("choosable", row["writable"]))),
                ("Last synced", at(row["last_synced_at"])),
                ("Calendar number", row["id"]),
            ]
        )
    if kind == "incidents":
        state = f"resolved {at(row['resolved_at'])}" if row["resolved_at"] else "open"
        return f"Incident: {row['kind']}", lines(
            [
                ("What", row["reason"]),
                ("State", state),
                ("Resolution", row["resolution"]),
                ("Opened", at(row["opened_at"])),
                ("Last seen", at(row["last_seen_at"])),
                ("Failures", row["failures"]),
                ("Reminders sent", row["reminders"]),
                ("Escalated to support", at(row["escalated_at"], "no")),
                ("Missed appointments delivered", yes_no(row.get("missed_delivered"))),
            ]
        )
    if kind == "runs":
        return f"Sync run of {at(row['started_at'])}", lines(
            [
                ("Outcome", row["outcome"]),
                ("Error", row["error"]),
                ("Duration", duration(row["duration_ms"])),
                ("Requests to the provider", row["requests"]),
                ("Appointments created / updated / deleted", f"{row['created']} / {row['updated']} / {row['deleted']}"),
                ("Busy entries read", row["entries_read"]),
                ("Changes applied back", row.get("applied_back")),
            ]
        )
    # missed
    return f"Missed appointment {row['id']}", lines(
        [
            ("Subject", row["subject"]),
            ("Starts", at(row["start"], "-")),
            ("Ends", at(row["end"], "-")),
            ("Location", row.get("location")),
            ("Cancelled", yes_no(row.get("cancelled"))),
            ("Appointment ID", row["id"]),
            ("Version", row.get("version")),
        ]
    )
