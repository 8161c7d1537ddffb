"""Connections grouped by staff member, with each member's private feed URL status."""

from __future__ import annotations

from typing import ClassVar, NamedTuple

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Header, Input, Static

from console.screens.base import PagedListScreen, PaletteCommand
from console.screens.detail import DetailScreen
from console.screens.detail_actions import confirm_feed_reset, feed_modal
from console.tables import shown
from console.widgets.large_table import ColumnSpec, plain_cell
from console.widgets.status_badge import status_text
from console.widgets.virtual_table import VirtualTable, widest_cells
from core import actions

COLUMNS = (
    ColumnSpec("Staff member / connection", "who", 44, squeeze=2, squeeze_to=24),
    ColumnSpec("Status", "status", 20),
    ColumnSpec("Provider", "provider", 15, drop=2),
    ColumnSpec("Account", "account", 28, drop=3, squeeze=1, squeeze_to=16),
    ColumnSpec("Feed URL", "feed", 18, drop=1),
    ColumnSpec("Reason", "reason", 300, squeeze=3, squeeze_to=16),
)


def feed_cell(staff: dict) -> str:
    if staff["feed"] != "active":
        return "none yet"
    return f"active, reset {staff['feed_resets']}×" if staff["feed_resets"] else "active"


def staff_summary(staff: dict) -> Text:
    count, broken = staff["connections"], staff["broken"]
    if broken:
        return Text(f"✖ {broken} of {count} broken", style="bold #ff5f5f", end="")
    if not count:
        return Text("no connection", style="dim", end="")
    return Text(f"{count} connection{'s' if count != 1 else ''}", end="")


class StaffListing(NamedTuple):
    staff: list[dict]  # core.actions.staff_overview
    items: list[tuple[dict, dict | None]]  # per table row: (staff member, connection or None)
    rows: list[tuple]  # per table row: its cells
    owners: list[int]  # per table row: the index of its staff member in ``staff``
    haystacks: list[str]  # per staff member: what the filter matches (name, e-mail, accounts)
    widest: list[int]  # per column: its widest cell


def read_staff(rt, limit: int | None = None) -> StaffListing:
    """Read and prepare the rows (in a worker thread): typing in the filter then only picks rows."""
    return prepare_staff(actions.staff_overview(rt, limit=limit))


def prepare_staff(staff: list[dict]) -> StaffListing:
    items: list[tuple[dict, dict | None]] = []
    rows: list[tuple] = []
    owners: list[int] = []
    haystacks: list[str] = []
    for index, s in enumerate(staff):
        haystacks.append(" ".join([s["name"], s["email"]] + [c["account"] for c in s["connection_list"]]).lower())
        items.append((s, None))
        owners.append(index)
        rows.append(
            (Text(shown(f"{s['name']} <{s['email']}>"), style="bold", no_wrap=True, end=""), staff_summary(s), "", "", feed_cell(s), "")
        )
        for c in s["connection_list"]:
            reason = f"[{', '.join(c['flags'])}] {c['reason']}" if c["flags"] else c["reason"]
            items.append((s, c))
            owners.append(index)
            rows.append(
                (
                    f"   └ connection {c['id']}",
                    status_text(c["status"], c.get("failing", False)),
                    plain_cell(c.get("provider_name") or c["provider"]),
                    plain_cell(c["account"]),
                    "",
                    plain_cell(reason),
                )
            )
    return StaffListing(staff, items, rows, owners, haystacks, widest_cells(rows, len(COLUMNS)))


class StaffScreen(PagedListScreen):
    TABLE_ID = "staff"
    FILTER_ID = "staff-filter"
    LOAD_TITLE = "Load staff"
    FIRST_PAGE = 100  # staff members, by name: the first screenfuls
    CSS_PATH = "staff.tcss"
    AUTO_FOCUS = "#staff"
    HELP = """
Every staff member with their calendar connections beneath them, and whether they
have a private calendar-feed URL (and how often it was reset).

- `/` filters by name, e-mail or account; `Escape` clears the filter.
- **Enter** on a connection opens it.
- `f` shows the private feed URL of the highlighted staff member, with its webcal://
  subscribe link and how to subscribe; `F` resets it (after a confirmation): the old URL
  stops working at once.
"""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("f", "feed_url", "Feed URL", tooltip="show the highlighted staff member's private feed URL"),
        Binding("F", "reset_feed", "Reset feed", tooltip="a new private feed URL for the highlighted staff member (asks first)"),
        Binding("r", "refresh", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.staff: list[dict] = []
        self.listing = prepare_staff([])
        self.items: list[tuple[dict, dict | None]] = []  # per table row: (staff, connection or None)
        self.filter_text = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Loading staff…", id="staff-summary")
        yield Input(placeholder="Filter: name, e-mail or account", id="staff-filter")
        yield VirtualTable(id="staff")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Staff"
        self.reload()

    def on_screen_resume(self) -> None:
        self.reload()

    def read(self, rt, limit: int | None) -> StaffListing:
        return read_staff(rt, limit)

    def page_items(self, listing: StaffListing) -> int:
        return len(listing.staff)

    def show_listing(self, listing: StaffListing) -> None:
        self.listing = listing
        self.staff = listing.staff
        self.show()

    def show(self) -> None:
        listing = self.listing
        words = self.filter_text.lower().split()
        if words:
            keep = [all(w in hay for w in words) for hay in listing.haystacks]
            picked = [i for i, owner in enumerate(listing.owners) if keep[owner]]
            items = [listing.items[i] for i in picked]
            rows = [listing.rows[i] for i in picked]
        else:
            items, rows = listing.items, listing.rows
        current = self._current()
        self.table.load(COLUMNS, rows, listing.widest)
        self.items = items
        if current in items:
            self.table.move_cursor(row=items.index(current), animate=False)
        people = sum(1 for _, c in items if c is None)
        broken = sum(s["broken"] for s, c in items if c is None)
        feeds = sum(1 for s, c in items if c is None and s["feed"] == "active")
        self.query_one("#staff-summary", Static).update(
            f"{people} staff member(s) · {len(items) - people} connection(s), {broken} broken · "
            f"{feeds} with a private feed URL" + ("" if self.complete else " · loading the rest…")
        )

    def _current(self) -> tuple[dict, dict | None] | None:
        index = self.table.cursor_row
        return self.items[index] if self.items and 0 <= index < len(self.items) else None

    def on_input_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self.show()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.table.focus()

    def on_virtual_table_row_selected(self, event: VirtualTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        current = self._current()
        if current is None:
            return
        staff, conn = current
        if conn is None:
            if not staff["connection_list"]:
                self.notify(shown(f"{staff['email']} has no calendar connection."), severity="warning", markup=False)
                return
            conn = staff["connection_list"][0]
        self.app.push_screen(DetailScreen(conn["id"]))

    def action_feed_url(self) -> None:
        current = self._current()
        if current is None:
            return
        email, rt, actor = current[0]["email"], self.rt, self.actor

        def show(result: dict) -> None:
            self.app.push_screen(
                feed_modal(f"Private feed URL of {result['staff']}", result["url"], ["F resets it (the old address then stops working)."])
            )
            self.reload()

        self.run_core("Feed URL", lambda: actions.feed_url(rt, email, actor=actor), show)

    def action_reset_feed(self) -> None:
        current = self._current()
        if current is None:
            return
        email = current[0]["email"]
        rt, actor = self.rt, self.actor

        def confirmed(yes: bool | None) -> None:
            if yes:
                self.run_core("Reset feed URL", lambda: actions.feed_reset(rt, email, actor=actor), show)

        def show(result: dict) -> None:
            self.app.push_screen(
                feed_modal(
                    f"New private feed URL of {result['staff']}",
                    result["url"],
                    ["The old URL no longer works: calendar apps must subscribe to this one."],
                )
            )
            self.reload()

        self.app.push_screen(confirm_feed_reset(email), confirmed)

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            ("staff: open connection", self.action_open, "open the highlighted connection"),
            ("staff: show feed URL", self.action_feed_url, "the highlighted staff member's private feed URL, with its webcal:// link"),
            (
                "staff: reset feed URL",
                self.action_reset_feed,
                "a new private feed URL for the highlighted staff member; the old one stops working",
            ),
            ("staff: filter", self.action_focus_filter, "narrow the list by name, e-mail or account"),
            ("staff: refresh now", self.action_refresh, "read the staff list again"),
        ]
