"""Every connection at a glance: broken first, filterable as you type, refreshed live."""

from __future__ import annotations

import re
from typing import ClassVar, NamedTuple

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.timer import Timer
from textual.widgets import Footer, Header, Input, Static

from console.screens.base import PagedListScreen, PaletteCommand
from console.screens.detail import DetailScreen
from console.tables import shown
from console.widgets.cells import ago, local
from console.widgets.large_table import ColumnSpec, plain_cell
from console.widgets.status_badge import status_text
from console.widgets.status_counts import StatusCounts
from console.widgets.support_words import support_todo
from console.widgets.virtual_table import VirtualTable, widest_cells
from core import actions, clock
from models import BROKEN_STATUSES

# On a narrow screen the columns to the right of Staff are left out (highest ``drop``
# first) before the reason is cut: id, status, staff and reason always show.
COLUMNS = (
    ColumnSpec("ID", "id", max_width=7),
    ColumnSpec("Status", "status", max_width=18),
    ColumnSpec("Staff", "staff", max_width=28, squeeze=1, squeeze_to=12),
    ColumnSpec("Provider", "provider", max_width=15, drop=3),
    ColumnSpec("Account", "account", max_width=26, squeeze=2, squeeze_to=16, drop=6),
    ColumnSpec("Since", "since", max_width=9, drop=5),
    ColumnSpec("Last sync", "last_sync", max_width=9, drop=4),
    ColumnSpec("Missed", "missed", max_width=6, drop=2),
    ColumnSpec("Reason", "reason", max_width=400, squeeze=3, squeeze_to=20),
)
JUMP = re.compile(r"#(\d+)")
# A keystroke filters at once; keystrokes that follow within this window are
# applied together when it ends, so fast typing never queues table rebuilds.
FILTER_WINDOW = 0.12


def haystack(row: dict) -> str:
    """What the filter matches: staff e-mail and name, account, status (also with spaces), provider,
    reason, flags (shared, duplicate), and the words broken, failing and missed when they apply."""
    status = row["status"]
    words = [
        row["staff"],
        row.get("staff_name") or "",
        row["account"],
        status,
        status.replace("_", " "),
        row["provider"],
        row.get("provider_name") or "",
        row["reason"] or "",
        *row["flags"],
    ]
    if status in BROKEN_STATUSES:
        words.append("broken")
    if row.get("failing"):
        words.append("failing")
    if row.get("missed"):
        words.append("missed")
    return "\n".join(words).lower()


def staff_cell(row: dict) -> str:
    return plain_cell(row.get("staff_name") or row["staff"])


def row_cells(row: dict, now) -> tuple:
    reason = row["reason"] or ""
    if row["flags"]:
        reason = f"[{', '.join(row['flags'])}] {reason}"
    if row.get("errors"):
        reason = f"{reason}; {row['errors']} appointment(s) not written (see Missed)"
    if row.get("orphaned"):
        reason = f"{reason}; {row['orphaned']} orphaned"
    return (
        str(row["id"]),
        status_text(row["status"], row.get("failing", False)),
        staff_cell(row),
        plain_cell(row.get("provider_name") or row["provider"]),
        plain_cell(row["account"]),
        ago(row["since"], now, empty="-"),
        ago(row["last_sync_at"], now),
        str(row["missed"]) if row["missed"] else "-",
        plain_cell(reason),
    )


class Listing(NamedTuple):
    rows: list[dict]  # core.actions.list_statuses
    counts: dict[str, int]  # core.actions.status_counts
    cells: list[tuple]  # per row: its cells in the table
    haystacks: list[str]  # per row: what the filter matches
    widest: list[int]  # per column: its widest cell (the filtered table keeps these widths)


def read_listing(rt, limit: int | None = None) -> Listing:
    """Read and prepare the rows (in a worker thread): typing in the filter then only picks rows."""
    return prepare_listing(actions.list_statuses(rt, limit=limit), actions.status_counts(rt))


def prepare_listing(rows: list[dict], counts: dict[str, int]) -> Listing:
    now = clock.now()
    cells = [row_cells(r, now) for r in rows]
    return Listing(rows, counts, cells, [haystack(r) for r in rows], widest_cells(cells, len(COLUMNS)))


class ConnectionsScreen(PagedListScreen):
    TABLE_ID = "connections"
    FILTER_ID = "filter"
    LOAD_TITLE = "Load connections"
    FIRST_PAGE = 200  # rows, broken first: the first screenfuls; all 10,000 take a few hundred ms more
    CSS_PATH = "connections.tcss"
    AUTO_FOCUS = "#connections"
    HELP = """
Every calendar connection, **broken first** (read-only, relink required, calendar missing,
unreachable), then pending, active and stopped. The bar at the top counts the connections
in each status. The list refreshes by itself every few seconds; the row under the cursor
and the filter stay as they are.

- **Filter**: press `/` and type. Every word must match the staff member's name or e-mail,
  the account, the status, the provider, the reason or a flag (`relink ada`, `google`,
  `read only`, `shared`, `duplicate`, `broken`, `missed`). `Escape` clears it.
- **Go to a connection**: press `#` and type its number (`#27`), then Enter; or
  "Open connection…" in the command palette (Ctrl+P).
- **Enter** opens the connection: its calendars, status history, incidents, sync runs,
  missed appointments and sync feed, and the actions (test, relink, sync, stop...).
- The lines under the table explain the highlighted connection and what to do, with the key.
- On a narrow screen the provider, account, times and missed columns are left out; the
  lines under the table still name them.
"""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_filter", "Filter", tooltip="type to narrow the list (Enter returns to the table)"),
        Binding("number_sign", "jump", "Go to #", key_display="#", tooltip="go to a connection by its number: type #27, then Enter"),
        Binding("escape", "clear_filter", "Clear filter", tooltip="clear the filter", show=False),
        Binding("r", "refresh", "Refresh", tooltip="read the statuses now (they refresh every few seconds anyway)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict] = []  # every connection, as core.actions.list_statuses gives them
        self._haystacks: list[str] = []  # per row: what the filter matches
        self._cells: list[tuple] = []  # per row: its cells in the table
        self._widest: list[int] = []  # per column: the widest of its cells in every row
        self._narrowed: tuple[str, list[int] | None] = ("", None)  # the last filter and the rows it matched
        self.counts: dict[str, int] = {}
        self.shown: list[dict] = []  # the rows in the table, in its order
        self.filter_text = ""
        self.applied_filter = ""  # the filter the table shows now (typing may be a keystroke ahead)
        self._filter_timer: Timer | None = None
        self._filter_pending = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield StatusCounts("Loading connections…", id="counts")
        yield Input(placeholder="Filter: #27, staff, account, status, reason, shared, broken…", id="filter")
        yield VirtualTable(id="connections", zebra_stripes=True)
        yield Static("", id="preview")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Connections"
        self.reload()
        self.set_interval(self.app.refresh_seconds, self._tick)

    def on_screen_resume(self) -> None:
        if self.loaded_once:
            self.reload()

    def _tick(self) -> None:
        if self.is_current:
            self.reload()

    # -- loading -------------------------------------------------------------------------

    def read(self, rt, limit: int | None) -> Listing:
        return read_listing(rt, limit)

    def page_items(self, listing: Listing) -> int:
        return len(listing.rows)

    def show_listing(self, listing: Listing) -> None:
        self.rows, self.counts, self._cells, self._haystacks, self._widest = listing
        self._narrowed = ("", None)
        self.apply_filter()

    # -- filtering -----------------------------------------------------------------------

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id != "filter":
            return
        self.filter_text = event.value
        if self._filter_timer is None:
            self.apply_filter()
            self._filter_timer = self.set_timer(FILTER_WINDOW, self._filter_window_over)
        else:
            self._filter_pending = True

    def _filter_window_over(self) -> None:
        self._filter_timer = None
        if self._filter_pending:
            self._filter_pending = False
            self.apply_filter()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id != "filter":
            return
        jump = JUMP.fullmatch(event.value.strip())
        if jump:
            self.open_id(int(jump.group(1)))
            return
        self.table.focus()

    def action_jump(self) -> None:
        filter_input = self.query_one("#filter", Input)
        filter_input.value = "#"
        filter_input.focus()
        self.call_after_refresh(filter_input.action_end)  # after focus selected the text: type after the #

    def open_id(self, conn_id: int) -> None:
        """Open connection ``conn_id`` (the list shows it alone while the filter says #N)."""
        if self.complete and conn_id not in {r["id"] for r in self.rows}:
            self.notify(f"There is no connection #{conn_id}.", severity="warning")
            return
        self.table.focus()
        self.app.push_screen(DetailScreen(conn_id))

    def apply_filter(self) -> None:
        """Show the rows matching the filter; keep the cursor on the same connection.

        A word like ``#27`` matches connection 27 only; every other word must appear in the row."""
        words = self.filter_text.lower().split()
        numbers = {int(j.group(1)) for j in map(JUMP.fullmatch, words) if j}
        words = [w for w in words if not JUMP.fullmatch(w) and w != "#"]
        if words or numbers:
            picked = self._pick(words, numbers)
            shown = [self.rows[i] for i in picked]
            cells = [self._cells[i] for i in picked]
        else:
            shown, cells = self.rows, self._cells
        table = self.table
        same_rows = table.row_count == len(shown) and [r["id"] for r in shown] == [r["id"] for r in self.shown]
        if same_rows:  # the same connections in the same order: the cursor and the scroll stay
            table.load(COLUMNS, cells, self._widest)
        else:
            current = self.current_id()
            old_index = table.cursor_row
            scroll_y = table.scroll_y
            table.load(COLUMNS, cells, self._widest)
            if shown:
                ids = [r["id"] for r in shown]
                if current in ids:
                    index = ids.index(current)
                else:
                    index = 0 if self.filter_text else min(max(old_index, 0), len(ids) - 1)
                table.scroll_to(y=scroll_y, animate=False, immediate=True)
                table.move_cursor(row=index, animate=False)
        self.shown = shown
        self.applied_filter = self.filter_text
        self.query_one("#counts", StatusCounts).show(self.counts, len(shown), filtered=bool(words or numbers), loading=not self.complete)
        self._preview()

    def _pick(self, words: list[str], numbers: set[int]) -> list[int]:
        """The indices of the rows matching. Typing on narrows: when the filter only grew at its
        end (``go`` after ``g``), the rows to look at are those the shorter filter matched."""
        text, haystacks = self.filter_text.lower(), self._haystacks
        narrowed_from, before = self._narrowed
        if before is not None and not numbers and narrowed_from.split() and text.startswith(narrowed_from):
            candidates: range | list[int] = before
        else:
            candidates = range(len(haystacks))
        if numbers:
            rows = self.rows
            picked = [i for i in candidates if rows[i]["id"] in numbers and all(w in haystacks[i] for w in words)]
        elif len(words) == 1:
            word = words[0]
            picked = [i for i in candidates if word in haystacks[i]]
        else:
            picked = [i for i in candidates if all(w in haystacks[i] for w in words)]
        self._narrowed = (text, None if numbers else picked)
        return picked

    def current_id(self) -> int | None:
        table = self.table
        if not self.shown or table.row_count == 0:
            return None
        index = table.cursor_row
        return self.shown[index]["id"] if 0 <= index < len(self.shown) else None

    # -- the highlighted connection -------------------------------------------------------

    def on_virtual_table_row_highlighted(self, event: VirtualTable.RowHighlighted) -> None:
        self._preview()

    def _preview(self) -> None:
        preview = self.query_one("#preview", Static)
        if not self.shown:
            preview.update(
                "No connection matches the filter."
                if self.filter_text
                else "No connections yet: connect one with `run_console.py connect`."
            )
            return
        index = self.table.cursor_row
        if not 0 <= index < len(self.shown):
            return
        row = self.shown[index]
        # What to do comes second: on a small screen the lines after it may be cut.
        text = Text(no_wrap=False, end="")
        text.append(f"#{row['id']} ", style="bold")
        text.append_text(status_text(row["status"], row.get("failing", False)))
        name = row.get("staff_name") or ""
        who = f"{name} <{row['staff']}>" if name else row["staff"]
        text.append(shown(f" — {who} · {row.get('provider_name') or row['provider']} · {row['account']}") + "\n")
        text.append("What to do: ", style="bold")
        text.append(shown(support_todo(row, from_list=True)) + "\n")
        text.append("Reason: ", style="bold")
        text.append(shown(row["reason"] or row["meaning"]))
        if row["flags"]:
            text.append("   Flags: ", style="bold")
            text.append(shown(", ".join(row["flags"])))
        if row["missed"]:
            text.append(f"   Missed: {row['missed']}", style="bold")
        if row["since"]:
            text.append("\nSince: ", style="bold")
            text.append(shown(f"{local(row['since'], row.get('timezone'))} ({ago(row['since'])})"))
        if row.get("last_error") and row["last_error"] != row["reason"]:
            text.append("   Last error: ", style="bold")
            text.append(shown(row["last_error"]))
        preview.update(text)

    def on_virtual_table_row_selected(self, event: VirtualTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    # -- actions -------------------------------------------------------------------------

    def action_open(self) -> None:
        conn_id = self.current_id()
        if conn_id is None:
            return
        self.app.push_screen(DetailScreen(conn_id))

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            ("connection: open", self.action_open, "open the highlighted connection: feed, history, actions"),
            ("connections: go to #…", self.action_jump, "type a connection's number (#27), then Enter"),
            ("connections: filter", self.action_focus_filter, "narrow the list by staff, account, status, provider, reason or flag"),
            ("connections: clear filter", self.action_clear_filter, "show every connection again"),
            ("connections: refresh now", self.action_refresh, "read the statuses again (they refresh every few seconds)"),
        ]
