"""The audit trail: who did what to which connection or staff member, and whether it worked."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Footer, Header, Input, Static

from console.screens.base import FilteredListScreen, PaletteCommand
from console.widgets.cells import when
from console.widgets.large_table import ColumnSpec, LargeTable, plain_cell
from console.widgets.text_modal import TextModal
from core import actions

LIMIT = 500
COLUMNS = (
    ColumnSpec("At (UTC)", "at", 16), ColumnSpec("Actor", "actor", 28), ColumnSpec("Action", "action", 28),
    ColumnSpec("Target", "target", 24), ColumnSpec("Result", "result", 8), ColumnSpec("Detail", "detail", 80),
)
FAILED = Text("✖ failed", style="bold #ff5f5f", end="")
OK = Text("✔ ok", style="#5fd75f", end="")


class AuditScreen(FilteredListScreen):
    TABLE_ID = "audit"
    FILTER_ID = "audit-filter"
    CSS_PATH = "audit.tcss"
    AUTO_FOCUS = "#audit"
    HELP = f"""
The latest {LIMIT} entries of the audit trail, newest first: every support action (from this
console, the CLI and Slack) and every external change calsync applied, with who did it and
whether it worked.

- `/` filters by actor, action, target or detail; `Escape` clears the filter.
- **Enter** shows an entry in full.
"""

    BINDINGS = [
        Binding("slash", "focus_filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("r", "refresh", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.entries: list[dict] = []
        self.shown: list[dict] = []
        self.filter_text = ""
        self._loading = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Loading the audit trail…", id="audit-summary")
        yield Input(placeholder="Filter: actor, action, target or detail", id="audit-filter")
        yield LargeTable(id="audit", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Audit trail"
        self.reload()
        self.set_interval(self.app.refresh_seconds, self._tick)

    def on_screen_resume(self) -> None:
        self.reload()

    def _tick(self) -> None:
        if self.is_current:
            self.reload()

    def reload(self) -> None:
        if self._loading:
            return
        self._loading = True
        rt = self.rt
        self.run_core("Load audit trail", lambda: actions.audit_log(rt, limit=LIMIT), self._loaded, self._failed)

    def _failed(self, reason: str) -> None:
        self._loading = False

    def _loaded(self, entries: list[dict]) -> None:
        self._loading = False
        if entries == self.entries:
            return
        self.entries = entries
        self.show()

    def show(self) -> None:
        words = self.filter_text.lower().split()
        shown = [
            e for e in self.entries
            if all(w in f"{e['actor']} {e['action']} {e['target']} {e['detail']}".lower() for w in words)
        ]
        cursor = self.table.cursor_row
        self.table.load(COLUMNS, [
            (when(e["at"]), plain_cell(e["actor"]), plain_cell(e["action"]), plain_cell(e["target"]) or "-",
             OK if e["result"] == "ok" else FAILED, plain_cell(e["detail"]) or "-")
            for e in shown
        ])
        if shown:
            self.table.move_cursor(row=min(max(cursor, 0), len(shown) - 1), animate=False)
        self.shown = shown
        failed = sum(1 for e in shown if e["result"] != "ok")
        self.query_one("#audit-summary", Static).update(
            f"{len(shown)} entr{'y' if len(shown) == 1 else 'ies'} shown (latest {LIMIT}), {failed} failed")

    def on_input_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self.show()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.table.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if 0 <= event.cursor_row < len(self.shown):
            e = self.shown[event.cursor_row]
            self.app.push_screen(TextModal(
                f"{when(e['at'])} · {e['actor']} · {e['action']} {e['target']}",
                plain=f"Result: {e['result']}\n\n{e['detail'] or '(no detail)'}"))

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            ("audit: filter", self.action_focus_filter, "narrow the trail by actor, action, target or detail"),
            ("audit: refresh now", self.action_refresh, "read the trail again"),
        ]
