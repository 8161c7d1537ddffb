"""One connection: what it is, what happened to it, what it read, and what support can do about it.

The sections (summary, tables, a row in words) are in detail_sections.py, the actions in
detail_actions.py.
"""

from __future__ import annotations

from functools import partial
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.markup import escape
from textual.timer import Timer
from textual.widgets import (
    Collapsible,
    DataTable,
    Footer,
    Header,
    ProgressBar,
    Static,
    TabbedContent,
    TabPane,
)

from console.screens import detail_sections as sections
from console.screens.base import ConsoleScreen, PaletteCommand
from console.screens.detail_actions import DetailActions
from console.tables import shown
from console.widgets.feed_table import COLUMNS as FEED_COLUMNS
from console.widgets.feed_table import FeedTable
from console.widgets.large_table import LargeTable
from console.widgets.text_modal import TextModal
from core import actions

TABS = ("tab-feed", "tab-calendars", "tab-history", "tab-incidents", "tab-runs", "tab-missed")
# What cannot work on a stopped connection (its credentials are forgotten): not offered.
NOT_WHEN_STOPPED = {"test", "relink", "sync", "primary", "stop"}
WIDE = 110  # columns: from here the summary has two columns of label and value
SHORT_SCREEN = 32  # rows: below this the summary starts folded, so the tables have room


class DetailScreen(DetailActions, ConsoleScreen):
    CSS_PATH = "detail.tcss"
    AUTO_FOCUS = "#feed"
    HELP = """
One connection. The panel on top says what it is and what state it is in, in plain words,
and what to do, with the key to press; `i` folds it to one line (it starts folded on a
small terminal) so the tables have room. Times are in the staff member's zone, named in
the column headers.

The tabs below hold its **sync feed** (what calsync read from the busy calendars: loaded
or not, and why not), its **calendars** with their roles (the primary one where appointments
are written, extra ones written too, the ones whose busy events block time: on the Calendars
tab `b` turns the highlighted calendar's busy role on or off, `w` its write role), the **status history** with the provider's answer, **incidents**,
recent **sync runs** and the appointments **missed** while it was broken. **Enter** on a
row shows it in full, in words.

Sync feed: click a column header, or press `o` (next column) / `O` (reverse), to sort;
`u` shows only the entries that were **not loaded**, with the reason in *Info*.
`]` and `[` switch tabs and move into the tab's table.

Every action is recorded in the audit trail under your name. The ones that change
something ask first; **Cancel changes nothing**. A test or sync shows a running line
with the seconds until it ends. A new relink link is shown **once**: copy it with `c`
(or select it with the mouse) before closing the dialog. `f` shows the staff member's
private feed URL with its webcal:// subscribe link; `F` resets it. A stopped connection
offers only what still works (feed URL, export, reload).
"""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,backspace", "back", "Back", tooltip="back to the list"),
        Binding("t", "test", "Test", tooltip="test the connection: credentials, reading, writing, primary calendar"),
        Binding("l", "relink", "Relink", tooltip="reissue the relink link (Slack / e-mail); earlier links stop working"),
        Binding("n", "sync", "Sync", tooltip="sync this connection now, with progress"),
        Binding("p", "primary", "Primary", tooltip="choose the primary calendar, where appointments are written; syncs at once"),
        Binding("b", "toggle_busy", "Busy", show=False, tooltip="Calendars tab: the highlighted calendar blocks time, or no longer does"),
        Binding(
            "w",
            "toggle_write",
            "Write",
            show=False,
            tooltip="Calendars tab: appointments are written to the highlighted calendar, or no longer are",
        ),
        Binding("e", "export", "Export", tooltip="export the missed appointments to an .ics file"),
        Binding("f", "feed_url", "Feed URL", tooltip="show the staff member's private feed URL and webcal link"),
        Binding(
            "F",
            "reset_feed",
            "Reset feed",
            show=False,
            tooltip="reset the staff member's private feed URL (asks first; the old one stops working)",
        ),
        Binding("x", "stop", "Stop", tooltip="stop sync: says what will happen, asks first; Cancel changes nothing"),
        Binding("i", "toggle_summary", "Summary", tooltip="fold or unfold the summary at the top"),
        Binding("u", "toggle_not_loaded", "Not loaded", tooltip="sync feed: only the entries that were not loaded"),
        Binding("o", "next_sort", "Sort", tooltip="sync feed: sort by the next column", show=False),
        Binding("O", "reverse_sort", "Reverse", tooltip="sync feed: reverse the sort", show=False),
        Binding("right_square_bracket", "next_tab", "Next tab", key_display="]", show=False, tooltip="the next tab, into its table"),
        Binding(
            "left_square_bracket", "previous_tab", "Previous tab", key_display="[", show=False, tooltip="the previous tab, into its table"
        ),
        Binding("r", "refresh", "Reload", tooltip="read this connection again", show=False),
    ]

    def __init__(self, conn_id: int) -> None:
        super().__init__()
        self.conn_id = int(conn_id)
        self.detail: dict | None = None
        self.entries: list[dict] = []
        self._busy: set[str] = set()
        self._running_label, self._running_since = "", 0.0
        self._running_timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Collapsible(title=f"Loading connection {self.conn_id}…", id="summary-box", collapsed=self.app.size.height < SHORT_SCREEN):
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
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = f"Connection {self.conn_id}"
        self.reload()

    @property
    def feed(self) -> FeedTable:
        return self.query_one("#feed", FeedTable)

    # -- what can be done ------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        d = self.detail
        if d is None:
            return True
        if d["status"] == "stopped" and action in NOT_WHEN_STOPPED:
            return False
        # A feed is read-only: there is no primary calendar to choose.
        return not (action == "primary" and d["provider"] == "ics")

    # -- loading -------------------------------------------------------------------------

    def reload(self) -> None:
        rt, cid = self.rt, self.conn_id
        self.run_core("Load connection", lambda: (actions.connection_detail(rt, cid), actions.list_entries(rt, cid)), self._loaded)

    def _loaded(self, result) -> None:
        self.detail, self.entries = result
        d = self.detail
        self.sub_title = shown(
            f"Connection {d['id']} · {d.get('staff_name') or d['staff']} · {d.get('provider_name') or d['provider']} {d['account']}"
        )
        self._show_summary()
        self.query_one("#summary-box", Collapsible).title = escape(sections.headline(d).plain + "   (i)")
        self.feed.zone = d.get("timezone")
        self.feed.show_entries(self.entries)
        not_loaded = sum(1 for e in self.entries if not e["loaded"])
        tabs = self.query_one("#tabs", TabbedContent)
        tabs.get_tab("tab-feed").label = f"Sync feed ({len(self.entries)}, {not_loaded} not loaded)"
        errors = len(d.get("write_errors", []))
        tabs.get_tab("tab-missed").label = (
            f"Missed ({len(d['missed_appointments'])}, {errors} not written)" if errors else f"Missed ({len(d['missed_appointments'])})"
        )
        open_incidents = sum(1 for i in d["incidents"] if not i["resolved_at"])
        tabs.get_tab("tab-incidents").label = (
            f"Incidents ({open_incidents} open)" if open_incidents else f"Incidents ({len(d['incidents'])})"
        )
        for table_id, (columns, rows) in sections.table_rows(d).items():
            self.query_one(f"#{table_id}", LargeTable).load(columns, rows)
        self.refresh_bindings()

    def _show_summary(self) -> None:
        if self.detail is None:  # still loading
            return
        self.query_one("#summary", Static).update(sections.summary(self.detail, wide=self.size.width >= WIDE))

    def on_resize(self, event) -> None:
        if self.detail is not None:
            self._show_summary()

    # -- the feed ------------------------------------------------------------------------

    def on_feed_table_view_changed(self, event: FeedTable.ViewChanged) -> None:
        feed = self.feed
        label = next(c.label for c in FEED_COLUMNS if c.key == feed.sort_column)
        count = len(feed.shown)
        what = f"{count} not-loaded entr{'y' if count == 1 else 'ies'}" if feed.not_loaded_only else f"{count} entries"
        direction = "descending" if feed.sort_reverse else "ascending"
        caption = (
            f"{what} · sorted by {label}, {direction} · o/O: sort (or click a header) · "
            f"u: {'show all' if feed.not_loaded_only else 'not loaded only'}"
        )
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
        """Enter on a row shows it in full, in words (long answers and errors are cut in the tables)."""
        table, index = event.data_table.id, event.cursor_row
        if self.detail is None or table is None:  # still loading, or not one of this screen's tables
            return
        sources = {
            "feed": self.feed.shown,
            "calendars": self.detail["calendars"],
            "history": self.detail["history"],
            "incidents": self.detail["incidents"],
            "runs": self.detail["sync_runs"],
            "missed": self.detail.get("write_errors", []) + self.detail["missed_appointments"],
        }
        rows = sources.get(table)
        if rows is None or not 0 <= index < len(rows):
            return
        title, text = sections.row_words(table, rows[index], self.detail.get("timezone"))
        self.app.push_screen(TextModal(title, plain=text))

    # -- moving around ---------------------------------------------------------------------

    def action_next_tab(self, step: int = 1) -> None:
        tabs = self.query_one("#tabs", TabbedContent)
        tabs.active = TABS[(TABS.index(tabs.active) + step) % len(TABS)]
        table = tabs.get_pane(tabs.active).query(DataTable).first()
        self.call_after_refresh(table.focus)

    def action_previous_tab(self) -> None:
        self.action_next_tab(-1)

    def action_toggle_summary(self) -> None:
        box = self.query_one("#summary-box", Collapsible)
        box.collapsed = not box.collapsed

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_refresh(self) -> None:
        self.reload()

    def palette_commands(self) -> list[PaletteCommand]:
        commands: list[PaletteCommand] = [
            (
                "connection: test",
                self.action_test,
                "check credentials, reading, writing and the primary calendar; shows the provider's answer",
            ),
            (
                "connection: reissue relink link",
                self.action_relink,
                "a new single-use link by Slack and/or e-mail; earlier links stop working",
            ),
            ("connection: sync now", self.action_sync, "push appointments and read the busy calendars now"),
            ("connection: set primary calendar", self.action_primary, "choose where appointments are written; syncs at once"),
            ("connection: export missed appointments (.ics)", self.action_export, "write the appointments missed while broken to a file"),
            ("connection: stop sync", self.action_stop, "says what will happen and asks before anything is done"),
            ("staff: show feed URL", self.action_feed_url, "the staff member's private calendar-feed URL, with its webcal:// link"),
            (
                "staff: reset feed URL",
                self.action_reset_feed,
                "a new private calendar-feed URL for the staff member; the old one stops working",
            ),
            ("connection: fold / unfold the summary", self.action_toggle_summary, "more room for the tables"),
            ("connection: reload", self.action_refresh, "read this connection again"),
            ("feed: toggle not loaded only", self.action_toggle_not_loaded, "show only entries that were not loaded"),
        ]
        commands = [c for c in commands if self.check_action(c[1].__name__[7:], ()) is not False]
        for column in FEED_COLUMNS:
            commands.append(
                (
                    f"feed: sort by {column.label.lower()}",
                    partial(self.sort_feed, column.key),
                    f"sort the sync feed by {column.label}",
                )
            )
        commands.append(("view: back to the list", self.action_back, "the previous screen"))
        return commands
