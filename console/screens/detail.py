"""One connection: what it is, what happened to it, what it read, and what support can do about it."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Footer, Header, ProgressBar, Static, TabbedContent, TabPane

from console.screens.base import ConsoleScreen, PaletteCommand
from console.tables import shown
from console.widgets.cells import when, when_and_ago
from console.widgets.confirm_modal import ConfirmModal
from console.widgets.connection_test_modal import ConnectionTestModal
from console.widgets.feed_table import COLUMNS as FEED_COLUMNS
from console.widgets.feed_table import FeedTable
from console.widgets.large_table import ColumnSpec, LargeTable, plain_cell
from console.widgets.link_modal import LinkModal
from console.widgets.path_modal import PathModal
from console.widgets.picker_modal import PickerModal
from console.widgets.status_badge import status_text
from console.widgets.stop_modal import StopModal
from console.widgets.text_modal import TextModal
from core import actions

CALENDAR_COLUMNS = (
    ColumnSpec("ID", "id", 6), ColumnSpec("Name", "name", 40), ColumnSpec("Role", "role", 40),
    ColumnSpec("Writable", "writable", 8), ColumnSpec("Last synced", "synced", 16),
)
HISTORY_COLUMNS = (
    ColumnSpec("Time", "at", 16), ColumnSpec("Change", "change", 38), ColumnSpec("Cause", "cause", 16),
    ColumnSpec("Provider's answer", "answer", 80),
)
INCIDENT_COLUMNS = (
    ColumnSpec("Opened", "opened", 16), ColumnSpec("Kind", "kind", 18), ColumnSpec("State", "state", 26),
    ColumnSpec("Failures", "failures", 8), ColumnSpec("Reminders", "reminders", 9),
    ColumnSpec("Escalated", "escalated", 16), ColumnSpec("Reason", "reason", 60),
)
RUN_COLUMNS = (
    ColumnSpec("Time", "at", 16), ColumnSpec("Duration", "duration", 9), ColumnSpec("Requests", "requests", 8),
    ColumnSpec("Created", "created", 7), ColumnSpec("Updated", "updated", 7), ColumnSpec("Deleted", "deleted", 7),
    ColumnSpec("Read", "read", 5), ColumnSpec("Outcome", "outcome", 9), ColumnSpec("Error", "error", 60),
)
MISSED_COLUMNS = (
    ColumnSpec("ID", "id", 24), ColumnSpec("Starts at", "start", 16), ColumnSpec("Ends at", "end", 16),
    ColumnSpec("Subject", "subject", 40), ColumnSpec("State", "state", 60),
)
TABS = ("tab-feed", "tab-calendars", "tab-history", "tab-incidents", "tab-runs", "tab-missed")


def duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    return f"{ms} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


class DetailScreen(ConsoleScreen):
    CSS_PATH = "detail.tcss"
    AUTO_FOCUS = "#feed"
    HELP = """
One connection. The panel on top says what it is and what state it is in, in plain words.
The tabs below hold its **sync feed** (what calsync read from the busy calendars: loaded
or not, and why not), its **calendars** (the primary one where appointments are written,
and the busy sources), the **status history** with the provider's answer, **incidents**,
recent **sync runs** and the appointments **missed** while it was broken.

Sync feed: click a column header, or press `o` (next column) / `O` (reverse), to sort;
`u` shows only the entries that were **not loaded**, with the reason in *Info*.
`[` and `]` switch tabs (or Tab to the tab bar, then the arrow keys).

Every action is recorded in the audit trail under your name. The ones that change
something ask first; **Cancel changes nothing**. A new relink link or feed URL is shown
**once**: copy it with `c` before closing the dialog.
"""

    BINDINGS = [
        Binding("escape,backspace", "back", "Back", tooltip="back to the list"),
        Binding("t", "test", "Test", tooltip="test the connection: credentials, reading, writing, primary calendar"),
        Binding("l", "relink", "Relink", tooltip="reissue the relink link (Slack / e-mail); earlier links stop working"),
        Binding("n", "sync", "Sync", tooltip="sync this connection now, with progress"),
        Binding("f", "reset_feed", "Feed", tooltip="reset the staff member's private feed URL (asks first)"),
        Binding("p", "primary", "Primary", tooltip="choose the primary calendar, where appointments are written"),
        Binding("e", "export", "Export", tooltip="export the missed appointments to an .ics file"),
        Binding("x", "stop", "Stop", tooltip="stop sync: says what will happen, asks first; Cancel changes nothing"),
        Binding("u", "toggle_not_loaded", "Not loaded", tooltip="sync feed: only the entries that were not loaded"),
        Binding("o", "next_sort", "Sort", tooltip="sync feed: sort by the next column", show=False),
        Binding("O", "reverse_sort", "Reverse", tooltip="sync feed: reverse the sort", show=False),
        Binding("right_square_bracket", "next_tab", "Next tab", show=False),
        Binding("left_square_bracket", "previous_tab", "Previous tab", show=False),
        Binding("r", "refresh", "Reload", tooltip="read this connection again", show=False),
    ]

    def __init__(self, conn_id: int) -> None:
        super().__init__()
        self.conn_id = int(conn_id)
        self.detail: dict | None = None
        self.entries: list[dict] = []
        self._busy: set[str] = set()

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"Loading connection {self.conn_id}…", id="summary")
        with Horizontal(id="progress-row"):
            yield Static("", id="progress-label")
            yield ProgressBar(id="sync-progress", show_eta=False)
        with TabbedContent(id="tabs"):
            with TabPane("Sync feed", id="tab-feed"):
                yield Static("", id="feed-caption")
                yield FeedTable(id="feed")
            with TabPane("Calendars", id="tab-calendars"):
                yield LargeTable(id="calendars", cursor_type="row")
            with TabPane("History", id="tab-history"):
                yield LargeTable(id="history", cursor_type="row")
            with TabPane("Incidents", id="tab-incidents"):
                yield LargeTable(id="incidents", cursor_type="row")
            with TabPane("Sync runs", id="tab-runs"):
                yield LargeTable(id="runs", cursor_type="row")
            with TabPane("Missed", id="tab-missed"):
                yield LargeTable(id="missed", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"Connection {self.conn_id}"
        self.reload()

    @property
    def feed(self) -> FeedTable:
        return self.query_one("#feed", FeedTable)

    # -- loading -------------------------------------------------------------------------

    def reload(self) -> None:
        rt, cid = self.rt, self.conn_id
        self.run_core("Load connection",
                      lambda: (actions.connection_detail(rt, cid), actions.list_entries(rt, cid)), self._loaded)

    def _loaded(self, result) -> None:
        self.detail, self.entries = result
        d = self.detail
        self.sub_title = shown(f"Connection {d['id']} · {d['staff']} · {d['provider']} {d['account']}")
        self.query_one("#summary", Static).update(self._summary(d))
        self.feed.show_entries(self.entries)
        not_loaded = sum(1 for e in self.entries if not e["loaded"])
        tabs = self.query_one("#tabs", TabbedContent)
        tabs.get_tab("tab-feed").label = f"Sync feed ({len(self.entries)}, {not_loaded} not loaded)"
        errors = len(d.get("write_errors", []))
        tabs.get_tab("tab-missed").label = (f"Missed ({len(d['missed_appointments'])}, {errors} not written)" if errors
                                            else f"Missed ({len(d['missed_appointments'])})")
        open_incidents = sum(1 for i in d["incidents"] if not i["resolved_at"])
        tabs.get_tab("tab-incidents").label = (f"Incidents ({open_incidents} open)" if open_incidents
                                               else f"Incidents ({len(d['incidents'])})")
        self.query_one("#calendars", LargeTable).load(CALENDAR_COLUMNS, [
            (str(c["id"]), plain_cell(c["name"]),
             "primary: appointments are written here" + (", busy source" if c["busy_source"] else "")
             if c["destination"] else ("busy source" if c["busy_source"] else "not used"),
             "yes" if c["writable"] else "no", when(c["last_synced_at"]))
            for c in d["calendars"]
        ])
        self.query_one("#history", LargeTable).load(HISTORY_COLUMNS, [
            (when(h["at"]), plain_cell(f"{h['old'] or '(new)'} → {h['new']}"), plain_cell(h["cause"]),
             plain_cell(h["provider_answer"]) or "-")
            for h in d["history"]
        ])
        self.query_one("#incidents", LargeTable).load(INCIDENT_COLUMNS, [
            (when(i["opened_at"]), plain_cell(i["kind"]),
             f"resolved {when(i['resolved_at'])}" if i["resolved_at"] else Text("open", style="bold #ff5f5f"),
             str(i["failures"]), str(i["reminders"]), when(i["escalated_at"], "-"),
             plain_cell(i["reason"] + (f" — {i['resolution']}" if i["resolution"] else "")))
            for i in d["incidents"]
        ])
        self.query_one("#runs", LargeTable).load(RUN_COLUMNS, [
            (when(r["started_at"]), duration(r["duration_ms"]), str(r["requests"]), str(r["created"]),
             str(r["updated"]), str(r["deleted"]), str(r["entries_read"]), plain_cell(r["outcome"]), plain_cell(r["error"]) or "-")
            for r in d["sync_runs"]
        ])
        waiting_state = "never delivered (orphaned when stopped)" if d["status"] == "stopped" else "waiting"
        self.query_one("#missed", LargeTable).load(MISSED_COLUMNS, [
            *[(plain_cell(a["id"]), when(a["start"]), when(a["end"]), plain_cell(a["subject"]),
               Text(shown(f"write failed {a['failures']}×: {a['error']}"), style="bold #ff5f5f"))
              for a in d.get("write_errors", [])],
            *[(plain_cell(a["id"]), when(a["start"]), when(a["end"]), plain_cell(a["subject"]), waiting_state)
              for a in d["missed_appointments"]],
        ])

    def _summary(self, d: dict) -> Table:
        grid = Table.grid(padding=(0, 2), expand=True)
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(ratio=1)
        grid.add_column(style="bold", no_wrap=True)
        grid.add_column(ratio=1)
        status = Text()
        status.append_text(status_text(d["status"], d.get("failing", False)))
        status.append(f"  since {when_and_ago(d['since'], '-')}")
        link = d.get("relink_link")
        link_text = (f"{link['state']}, issued {when(link['issued_at'])} by {link['issued_by'] or '-'}, "
                     f"expires {when(link['expires_at'])}" if link else "none issued")
        missed = len(d["missed_appointments"])
        last_error = d["last_error"] or "none"
        if d["last_error"] and d["last_error"] == d["reason"]:
            last_error = "the reason above"

        def safe(value: str) -> Text:  # a plain string in a Rich table would be read as markup
            return Text(shown(value))

        grid.add_row("Connection", safe(f"#{d['id']}  {d['staff']}"), "Status", status)
        grid.add_row("Account", safe(f"{d['account']} ({d['provider']})  {d['server'] or ''}".rstrip()),
                     "Means", safe(d["meaning"]))
        grid.add_row("Last sync", when_and_ago(d["last_sync_at"]), "Reason", safe(d["reason"] or "-"))
        grid.add_row("Last success", when_and_ago(d["last_success_at"]), "What to do", safe(d["advice"] or "nothing"))
        grid.add_row("Last check", when_and_ago(d["last_check_at"]), "Flags", safe(", ".join(d["flags"]) or "none"))
        grid.add_row("Missed", f"{missed} appointment(s) waiting" if missed else "none", "Last error", safe(last_error))
        grid.add_row("Relink link", safe(link_text), "", "")
        return grid

    # -- the feed ------------------------------------------------------------------------

    def on_feed_table_view_changed(self, event: FeedTable.ViewChanged) -> None:
        feed = self.feed
        label = next(c.label for c in FEED_COLUMNS if c.key == feed.sort_column)
        shown = len(feed.shown)
        what = f"{shown} not-loaded entr{'y' if shown == 1 else 'ies'}" if feed.not_loaded_only else f"{shown} entries"
        direction = "descending" if feed.sort_reverse else "ascending"
        caption = (f"{what} · sorted by {label}, {direction} (o: next column, O: reverse, or click a header) · "
                   f"u: {'show all' if feed.not_loaded_only else 'not loaded only'}")
        if not feed.entries:
            caption = "The sync feed is empty: nothing was read from this connection's busy calendars yet."
        self.query_one("#feed-caption", Static).update(caption)

    def action_toggle_not_loaded(self) -> None:
        self.feed.set_not_loaded_only(not self.feed.not_loaded_only)

    def action_next_sort(self) -> None:
        self.feed.action_next_sort()

    def action_reverse_sort(self) -> None:
        self.feed.action_reverse_sort()

    def sort_feed(self, column: str) -> None:
        self.query_one("#tabs", TabbedContent).active = "tab-feed"
        self.feed.sort_by(column, reverse=False)

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a row shows it in full (long answers and errors are cut in the tables)."""
        if self.detail is None:
            return
        table, index = event.data_table.id, event.cursor_row
        sources = {"feed": self.feed.shown, "calendars": self.detail["calendars"], "history": self.detail["history"],
                   "incidents": self.detail["incidents"], "runs": self.detail["sync_runs"],
                   "missed": self.detail["missed_appointments"]}
        rows = sources.get(table)
        if rows is None or not 0 <= index < len(rows):
            return
        row = rows[index]
        if table == "history":
            title = f"{when(row['at'])}: {row['old'] or '(new)'} → {row['new']} ({row['cause']})"
            text = f"The provider's answer:\n\n{row['provider_answer'] or '(none recorded)'}"
        else:
            title = {"feed": "Sync feed entry", "calendars": "Calendar", "incidents": "Incident",
                     "runs": "Sync run", "missed": "Missed appointment"}[table]
            text = "\n".join(f"{key}: {'-' if value is None else value}" for key, value in row.items())
        self.app.push_screen(TextModal(title, plain=text))

    # -- actions -------------------------------------------------------------------------

    def action_next_tab(self, step: int = 1) -> None:
        tabs = self.query_one("#tabs", TabbedContent)
        tabs.active = TABS[(TABS.index(tabs.active) + step) % len(TABS)]

    def action_previous_tab(self) -> None:
        self.action_next_tab(-1)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_refresh(self) -> None:
        self.reload()

    def _start(self, name: str) -> bool:
        """One run of each action at a time (a second press while it runs is ignored, with a word)."""
        if name in self._busy:
            self.notify(f"{name} is still running.", severity="warning")
            return False
        self._busy.add(name)
        return True

    def _finish(self, name: str):
        def finish(_value=None) -> None:
            self._busy.discard(name)
        return finish

    def _then(self, name: str, callback):
        def done(value) -> None:
            self._busy.discard(name)
            callback(value)
        return done

    def action_test(self) -> None:
        if not self._start("Test connection"):
            return
        rt, cid, actor = self.rt, self.conn_id, self.actor
        self.notify(f"Testing connection {cid}…", timeout=3)
        self.run_core("Test connection", lambda: actions.test_connection(rt, cid, actor=actor),
                      self._then("Test connection", self._tested), self._finish("Test connection"))

    def _tested(self, result: dict) -> None:
        self.app.push_screen(ConnectionTestModal(result))
        self.reload()

    def action_relink(self) -> None:
        options = [("slack,email", "Slack and e-mail", True), ("slack", "Slack only", True), ("email", "E-mail only", True)]
        self.app.push_screen(PickerModal(
            f"Reissue the relink link of connection {self.conn_id}: send it via",
            options,
            hint="The new link replaces every earlier one: links already sent stop working.",
        ), self._relink_via)

    def _relink_via(self, via: str | None) -> None:
        if not via or not self._start("Reissue relink link"):
            return
        rt, cid, actor, channels = self.rt, self.conn_id, self.actor, tuple(via.split(","))
        self.run_core("Reissue relink link", lambda: actions.issue_relink(rt, cid, via=channels, actor=actor),
                      self._then("Reissue relink link", self._relinked), self._finish("Reissue relink link"))

    def _relinked(self, result: dict) -> None:
        notes = [f"Expires {when(result['expires_at'])} UTC. Every earlier link of this connection no longer works."]
        if result["sent_via"]:
            notes.append(f"Sent via {', '.join(result['sent_via'])} (delivered by the service's outbox).")
        if result["not_configured"]:
            notes.append(f"Not sent via {', '.join(result['not_configured'])}: not configured here "
                         "(CALSYNC_SMTP_URL for e-mail, SLACK_BOT_TOKEN for Slack). Pass the link on yourself.")
        self.app.push_screen(LinkModal(f"New relink link for connection {result['connection']}", result["url"], notes))
        self.reload()

    def action_sync(self) -> None:
        if not self._start("Sync now"):
            return
        rt, cid, actor = self.rt, self.conn_id, self.actor
        self.query_one("#progress-row").display = True
        self.query_one("#progress-label", Static).update(f"Syncing connection {cid}…")
        self.query_one("#sync-progress", ProgressBar).update(total=None, progress=0)

        def job():
            def progress(done, total, report):
                self._from_thread(self._sync_progress, done, total)
            return actions.sync_now(rt, cid, actor=actor, progress=progress)

        self.run_core("Sync now", job, self._then("Sync now", self._synced), self._then("Sync now", self._sync_over))

    def _sync_progress(self, done: int, total: int) -> None:
        self.query_one("#sync-progress", ProgressBar).update(total=total, progress=done)

    def _sync_over(self, _reason=None) -> None:
        self.query_one("#progress-row").display = False

    def _synced(self, reports: list[dict]) -> None:
        self._sync_over()
        report = reports[0]
        counts = (f"{report['created']} created, {report['updated']} updated, {report['deleted']} deleted, "
                  f"{report['entries_read']} read, {report['requests']} requests")
        if report["outcome"] == "ok":
            self.notify(f"{counts}; status {report['status']}.", title=f"Synced connection {report['connection_id']}")
        else:
            self.notify(shown(f"{report['outcome']}: {report['error'] or report['reason']}; status {report['status']}."),
                        title=f"Sync of connection {report['connection_id']}", severity="error", timeout=12,
                        markup=False)
        self.reload()

    def action_reset_feed(self) -> None:
        if self.detail is None:
            self.notify("The connection is still loading.", severity="warning")
            return
        staff = self.detail["staff"]
        self.app.push_screen(ConfirmModal(
            f"Reset the private feed URL of {staff}?",
            "The current feed URL stops working at once: calendar apps subscribed to it stop updating "
            "until they subscribe to the new URL, which is shown once.",
            "Reset feed URL", danger=True,
        ), lambda yes: self._reset_feed(staff) if yes else None)

    def _reset_feed(self, staff: str) -> None:
        rt, actor = self.rt, self.actor
        self.run_core("Reset feed URL", lambda: actions.feed_reset(rt, staff, actor=actor), lambda result: self.app.push_screen(
            LinkModal(f"New private feed URL of {result['staff']}", result["url"],
                      ["The old URL no longer works: calendar apps must subscribe to this one."])))

    def action_primary(self) -> None:
        if not self._start("Primary calendar"):
            return
        rt, cid = self.rt, self.conn_id
        self.notify("Asking the provider for the account's calendars…", timeout=3)
        self.run_core("Primary calendar", lambda: actions.list_calendars(rt, cid, refresh=True),
                      self._then("Primary calendar", self._pick_primary), self._finish("Primary calendar"))

    def _pick_primary(self, calendars: list[dict]) -> None:
        options = []
        for c in calendars:
            label = c["name"] or f"calendar {c['id']}"
            if c["destination"]:
                label += "  (the primary calendar now)"
            elif not c["writable"]:
                label += "  (read-only: cannot hold appointments)"
            options.append((str(c["id"]), label, c["writable"] and not c["destination"]))
        self.app.push_screen(PickerModal(
            f"Primary calendar of connection {self.conn_id}",
            options,
            hint="New appointments are written to the primary calendar; those already written stay where they are.",
        ), self._set_primary)

    def _set_primary(self, calendar_id: str | None) -> None:
        if not calendar_id:
            return
        rt, cid, actor = self.rt, self.conn_id, self.actor

        def done(result: dict) -> None:
            self.notify(shown(f"Primary calendar is now {result.get('primary')!r}; appointments already written "
                              "stay where they are."), title=f"Connection {cid}", markup=False)
            self.reload()

        self.run_core("Primary calendar", lambda: actions.set_destination(rt, cid, calendar_id, actor=actor), done)

    def action_export(self) -> None:
        missed = len(self.detail["missed_appointments"]) if self.detail else None
        what = f"{missed} missed appointment(s)" if missed is not None else "The missed appointments"
        self.app.push_screen(PathModal(
            f"Export the missed appointments of connection {self.conn_id} to .ics",
            str(Path.cwd() / f"calsync-missed-{self.conn_id}.ics"),
            hint=f"{what}. The file is a snapshot: it will not update if an appointment changes later.",
            confirm_label="Export",
        ), self._export_to)

    def _export_to(self, path: str | None) -> None:
        if not path:
            return
        rt, cid, actor = self.rt, self.conn_id, self.actor

        def job():
            result = actions.download_missed(rt, cid, actor=actor)
            target = Path(path).expanduser()
            if target.is_dir():
                target = target / result["filename"]
            write_atomically(target, result["ics"])
            return result["count"], target

        self.run_core("Export missed appointments", job, lambda done: self.notify(
            shown(f"Wrote {done[0]} missed appointment(s) to {done[1]} (a snapshot: it will not update)."),
            title="Exported", markup=False))

    def action_stop(self) -> None:
        if not self._start("Stop sync"):
            return
        rt, cid = self.rt, self.conn_id
        self.run_core("Stop sync", lambda: (actions.stop_plan(rt, cid, keep_events=False),
                                            actions.stop_plan(rt, cid, keep_events=True)),
                      self._then("Stop sync", self._confirm_stop), self._finish("Stop sync"))

    def _confirm_stop(self, plans) -> None:
        remove, keep = plans
        if remove["status"] == "stopped":
            self.notify("The connection is already stopped.", severity="warning")
            return
        d = self.detail or {}
        self.app.push_screen(StopModal(remove, keep, d.get("staff", ""), d.get("account", "")), self._stop)

    def _stop(self, choice: dict | None) -> None:
        if not choice:
            self.notify("Nothing was changed.", timeout=3)
            return
        rt, cid, actor = self.rt, self.conn_id, self.actor

        def done(result: dict) -> None:
            text = (f"{result['removed']} event(s) removed, {result['kept']} kept, {result['orphaned']} orphaned; "
                    "credentials forgotten.")
            if result["warning"]:
                text += f" Note: {result['warning']}."
            self.notify(shown(text), title=f"Stopped connection {cid}", timeout=10, markup=False)
            self.reload()

        self.run_core("Stop sync", lambda: actions.stop_sync(rt, cid, keep_events=choice["keep_events"],
                                                             force=choice["force"], actor=actor), done)

    def palette_commands(self) -> list[PaletteCommand]:
        commands: list[PaletteCommand] = [
            ("connection: test", self.action_test,
             "check credentials, reading, writing and the primary calendar; shows the provider's answer"),
            ("connection: reissue relink link", self.action_relink,
             "a new single-use link by Slack and/or e-mail; earlier links stop working"),
            ("connection: sync now", self.action_sync, "push appointments and read the busy calendars now"),
            ("connection: reset feed URL", self.action_reset_feed,
             "a new private calendar-feed URL for the staff member; the old one stops working"),
            ("connection: set primary calendar", self.action_primary, "choose where appointments are written"),
            ("connection: export missed appointments (.ics)", self.action_export,
             "write the appointments missed while broken to a file"),
            ("connection: stop sync", self.action_stop, "says what will happen and asks before anything is done"),
            ("connection: reload", self.action_refresh, "read this connection again"),
            ("feed: toggle not loaded only", self.action_toggle_not_loaded, "show only entries that were not loaded"),
        ]
        for column in FEED_COLUMNS:
            commands.append((f"feed: sort by {column.label.lower()}", lambda key=column.key: self.sort_feed(key),
                             f"sort the sync feed by {column.label}"))
        commands.append(("view: back to the list", self.action_back, "the previous screen"))
        return commands


def write_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` so that readers see the old file or the whole new one."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise actions.ActionError(f"could not write {target}: {exc.strerror or exc}") from None
