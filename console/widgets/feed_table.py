"""The sync feed of a connection, with the six columns support knows from the help
articles: ID, Starts at, Ends at, Subject, Loaded, Info (why an entry was not loaded).

Times are in the staff member's zone (``zone``), named in the headers."""

from __future__ import annotations

import dataclasses

from textual.message import Message

from console.widgets.cells import loaded_text, local, zone_label
from console.widgets.large_table import ColumnSpec, LargeTable, plain_cell

COLUMNS = (
    ColumnSpec("ID", "id", max_width=8, drop=1),
    ColumnSpec("Starts at", "starts_at", max_width=16, min_width=16),
    ColumnSpec("Ends at", "ends_at", max_width=16, min_width=16, drop=2),
    ColumnSpec("Subject", "subject", max_width=40, squeeze=2, squeeze_to=12),
    ColumnSpec("Loaded", "loaded", max_width=6),
    ColumnSpec("Info", "info", max_width=200, squeeze=3, squeeze_to=14),
)
ZONED = ("starts_at", "ends_at")
COLUMN_KEYS = [c.key for c in COLUMNS]


def _sort_key(column: str):
    if column == "id":
        return lambda e: e["id"]
    if column in ("starts_at", "ends_at"):
        return lambda e: (e[column] is None, e[column] or "", e["id"])
    if column == "loaded":
        return lambda e: (bool(e["loaded"]), e["id"])
    return lambda e: ((e.get(column) or "").casefold(), e["id"])


class FeedTable(LargeTable):
    """Entries sorted by any column (click a header; the screen binds keys too); optionally only the not-loaded ones."""

    class ViewChanged(Message):
        """The sort or the not-loaded filter changed (the screen updates its labels)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.entries: list[dict] = []
        self.sort_column = "starts_at"
        self.sort_reverse = False
        self.not_loaded_only = False
        self.zone: str | None = None  # the staff member's zone: every time is shown in it

    @property
    def shown(self) -> list[dict]:
        rows = [e for e in self.entries if not e["loaded"]] if self.not_loaded_only else list(self.entries)
        rows.sort(key=_sort_key(self.sort_column), reverse=self.sort_reverse)
        return rows

    def show_entries(self, entries: list[dict]) -> None:
        self.entries = list(entries)
        self._redraw()

    def sort_by(self, column: str, reverse: bool | None = None) -> None:
        if column not in COLUMN_KEYS:
            raise ValueError(f"no feed column {column!r}")
        if reverse is None:
            reverse = not self.sort_reverse if column == self.sort_column else False
        self.sort_column, self.sort_reverse = column, reverse
        self._redraw()

    def set_not_loaded_only(self, value: bool) -> None:
        self.not_loaded_only = value
        self._redraw()

    def action_next_sort(self) -> None:
        index = (COLUMN_KEYS.index(self.sort_column) + 1) % len(COLUMN_KEYS)
        self.sort_by(COLUMN_KEYS[index], reverse=False)

    def action_reverse_sort(self) -> None:
        self.sort_by(self.sort_column, reverse=not self.sort_reverse)

    def on_data_table_header_selected(self, event: LargeTable.HeaderSelected) -> None:
        event.stop()
        self.sort_by(str(event.column_key.value))

    def _redraw(self) -> None:
        arrow = " ▼" if self.sort_reverse else " ▲"
        zone = f" ({zone_label(self.zone)})"
        columns = [
            dataclasses.replace(c, label=label, max_width=max(c.max_width, len(label)))
            for c in COLUMNS
            for label in [c.label + (zone if c.key in ZONED else "") + (arrow if c.key == self.sort_column else "")]
        ]
        rows = [
            (
                str(e["id"]),
                local(e["starts_at"], self.zone, "-", label=False),
                local(e["ends_at"], self.zone, "-", label=False),
                plain_cell(e["subject"]) or "(no subject)",
                loaded_text(e["loaded"]),
                plain_cell(e["info"]),
            )
            for e in self.shown
        ]
        cursor = self.cursor_row
        self.load(columns, rows)
        if rows:
            self.move_cursor(row=min(max(cursor, 0), len(rows) - 1), animate=False)
        self.post_message(self.ViewChanged())
