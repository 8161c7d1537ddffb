"""The audit trail: who did what to which connection or staff member, and whether it worked."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Footer, Header, Input, Static

from console.screens.base import FilteredListScreen, PaletteCommand
from console.widgets.cells import local
from console.widgets.large_table import ColumnSpec, plain_cell
from console.widgets.text_modal import TextModal
from console.widgets.virtual_table import VirtualTable
from core import actions

LIMIT = 500
# The trail mixes every staff member, so it has one zone for all: UTC, named in the header.
# On a narrow screen the actor and the action's code name are left out: "What happened" says it.
COLUMNS = (
    ColumnSpec("At (UTC)", "at", 16),
    ColumnSpec("Actor", "actor", 20, drop=3),
    ColumnSpec("Action", "action", 28, squeeze=2, squeeze_to=16, drop=2),
    ColumnSpec("Staff", "staff", 24, squeeze=1, squeeze_to=12),
    ColumnSpec("Conn.", "connection", 6),
    ColumnSpec("Result", "result", 8),
    ColumnSpec("What happened", "summary", 300, squeeze=3, squeeze_to=20),
)
FAILED = Text("✖ failed", style="bold #ff5f5f", end="")
OK = Text("✔ ok", style="#5fd75f", end="")


def at(value: str | None) -> str:
    return local(value, "UTC", "-", label=False)


def connection_of(e: dict) -> int | None:
    """The connection an entry is about (core says so; older rows name it as their target)."""
    if e.get("connection") is not None:
        return int(e["connection"])
    target = str(e.get("target") or "")
    return int(target) if e["action"].startswith("connection.") and target.isdigit() else None


def staff_of(e: dict) -> str:
    target = str(e.get("target") or "")
    return e.get("staff_name") or e.get("staff") or (target if "@" in target else "")


def summary_of(e: dict) -> str:
    return e.get("summary") or e.get("detail") or ""


def result_cell(result: str):
    if result == "failed":
        return FAILED
    return OK if result == "ok" else plain_cell(result)


def entry_words(e: dict) -> str:
    """One entry in full, in words (the dialog `v` opens)."""
    conn = connection_of(e)
    pairs = [
        ("When", local(e["at"], "UTC")),
        ("Who", e["actor"]),
        ("Action", e["action"]),
        ("Result", "failed" if e["result"] == "failed" else e["result"]),
        ("Staff member", staff_of(e) + (f" <{e['staff']}>" if e.get("staff") and e.get("staff_name") else "")),
        ("Connection", f"#{conn}" if conn is not None else ""),
        ("What happened", summary_of(e)),
        ("Recorded detail", e.get("detail") if e.get("summary") else ""),
    ]
    return "\n".join(f"{label}: {value}" for label, value in pairs if value)


class AuditScreen(FilteredListScreen):
    TABLE_ID = "audit"
    FILTER_ID = "audit-filter"
    CSS_PATH = "audit.tcss"
    AUTO_FOCUS = "#audit"
    HELP = f"""
The latest {LIMIT} entries of the audit trail, newest first: every support action (from this
console, the CLI and Slack) and every external change calsync applied, with who did it and
whether it worked.

A failed entry (✖ failed) is an action that found the connection broken or could not be
done. Times are in UTC.

- `/` filters by actor, action, staff member, connection (`#27`) or what happened;
  `Escape` clears the filter.
- **Enter** opens the connection the entry is about (or shows the entry, when it is about
  no connection); `v` shows the entry in full.
"""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "focus_filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("v", "view_entry", "View entry", tooltip="the highlighted entry in full"),
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
        yield Input(placeholder="Filter: actor, action, staff, #27, what happened, failed", id="audit-filter")
        yield VirtualTable(id="audit", zebra_stripes=True)
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

        def hay(e: dict) -> str:
            conn = connection_of(e)
            return " ".join(
                [
                    e["actor"],
                    e["action"],
                    str(e["target"]),
                    e["detail"],
                    summary_of(e),
                    e["result"],
                    e.get("staff") or "",
                    staff_of(e),
                    f"#{conn}" if conn is not None else "",
                ]
            ).lower()

        shown = [e for e in self.entries if all(w in hay(e) for w in words)]
        cursor = self.table.cursor_row
        self.table.load(
            COLUMNS,
            [
                (
                    at(e["at"]),
                    plain_cell(e["actor"]),
                    plain_cell(e["action"]),
                    plain_cell(staff_of(e)) or "-",
                    f"#{connection_of(e)}" if connection_of(e) is not None else "-",
                    result_cell(e["result"]),
                    plain_cell(summary_of(e)) or "-",
                )
                for e in shown
            ],
        )
        if shown:
            self.table.move_cursor(row=min(max(cursor, 0), len(shown) - 1), animate=False)
        self.shown = shown
        failed = sum(1 for e in shown if e["result"] == "failed")
        self.query_one("#audit-summary", Static).update(
            f"{len(shown)} entr{'y' if len(shown) == 1 else 'ies'} shown (latest {LIMIT}), {failed} failed"
        )

    def on_input_changed(self, event: Input.Changed) -> None:
        self.filter_text = event.value
        self.show()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.table.focus()

    def _current(self) -> dict | None:
        index = self.table.cursor_row
        return self.shown[index] if self.shown and 0 <= index < len(self.shown) else None

    def on_virtual_table_row_selected(self, event: VirtualTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        e = self._current()
        if e is None:
            return
        conn = connection_of(e)
        if conn is None:
            self.action_view_entry()
            return
        from console.screens.detail import DetailScreen

        self.app.push_screen(DetailScreen(conn))

    def action_view_entry(self) -> None:
        e = self._current()
        if e is not None:
            self.app.push_screen(TextModal(f"{at(e['at'])} UTC · {e['actor']} · {e['action']}", plain=entry_words(e)))

    def palette_commands(self) -> list[PaletteCommand]:
        return [
            ("audit: open the entry's connection", self.action_open, "the connection the highlighted entry is about"),
            ("audit: view entry", self.action_view_entry, "the highlighted entry in full"),
            ("audit: filter", self.action_focus_filter, "narrow the trail by actor, action, staff or what happened"),
            ("audit: refresh now", self.action_refresh, "read the trail again"),
        ]
