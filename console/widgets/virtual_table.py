"""A table for the console's long lists (every connection, every staff member, the audit trail).

Textual's DataTable keeps a key, a dict of cells and a cached line per row, and lays
out and measures every row it is given: 10,000 rows cost it a few hundred milliseconds
on every reload and on every filter keystroke. Here the rows stay one plain list of
cell tuples; loading them only measures the column widths (one pass in C per column),
and only the rows on screen are ever turned into lines, when they are drawn. A filter
that narrows 10,000 rows to 12 so costs what drawing 12 rows costs.

It looks and is driven like a DataTable with ``cursor_type="row"`` (the same keys and
the same look through the ``virtual-table--*`` component classes) and posts
:class:`VirtualTable.RowHighlighted` and :class:`VirtualTable.RowSelected`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from console.widgets.large_table import ColumnSpec, column_width, fit_columns, safe_cell

PADDING = 1  # blank cells on each side of a column, as in DataTable
CACHE_LINES = 512  # rendered rows kept; a screenful is ~40, so scrolling back costs nothing


def cell_text(value, width: int, pad: bool = True) -> Text:
    """One cell as a line of at most (``pad``: exactly) ``width`` cells; cut ones end in "…".

    String cells were made by ``plain_cell``: markup in them is escaped, so parsing
    them gives back the text as it was (and only strings with a "[" need parsing).
    """
    value = safe_cell(value)
    if isinstance(value, Text):
        text = value.copy()
    else:
        value = str(value)
        text = Text.from_markup(value, end="") if "[" in value else Text(value, end="")
    text.no_wrap = True
    text.truncate(width, overflow="ellipsis", pad=pad)
    return text


def widest_cells(rows: Sequence[Sequence], columns: int) -> list[int]:
    """Per column, the width of its widest cell (one pass in C over each column)."""
    if not rows:
        return [0] * columns
    return [column_width(values) for values in zip(*rows)]


class VirtualTable(ScrollView, can_focus=True):
    """Rows of cells under a header; one row is highlighted (the cursor)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select_cursor", "Select", show=False),
        Binding("up", "cursor_up", "Cursor up", show=False),
        Binding("down", "cursor_down", "Cursor down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,ctrl+home", "first", "First row", show=False),
        Binding("end,ctrl+end", "last", "Last row", show=False),
    ]

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "virtual-table--header",
        "virtual-table--cursor",
        "virtual-table--even-row",
        "virtual-table--odd-row",
    }

    DEFAULT_CSS = """
    VirtualTable {
        background: $surface;
        color: $foreground;
        height: auto;
        max-height: 100%;
        overflow-x: hidden;
        overflow-y: auto;
        scrollbar-size-vertical: 1;
        &:focus {
            background-tint: $foreground 5%;
            & > .virtual-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .virtual-table--header {
                background-tint: $foreground 5%;
            }
        }
        &:dark > .virtual-table--even-row {
            background: $surface-darken-1 40%;
        }
        & > .virtual-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        &:ansi > .virtual-table--header {
            background: ansi_bright_blue;
            color: ansi_default;
        }
        & > .virtual-table--even-row {
            background: $surface-lighten-1 50%;
        }
        & > .virtual-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """

    class _RowMessage(Message):
        def __init__(self, table: VirtualTable, cursor_row: int) -> None:
            super().__init__()
            self.table = table
            self.cursor_row = cursor_row

        @property
        def control(self) -> VirtualTable:
            return self.table

    class RowHighlighted(_RowMessage):
        """The cursor moved to row ``cursor_row``."""

    class RowSelected(_RowMessage):
        """Enter was pressed on (or the mouse clicked) row ``cursor_row``."""

    def __init__(self, *, zebra_stripes: bool = False, name: str | None = None, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.zebra_stripes = zebra_stripes
        self._columns: Sequence[ColumnSpec] = ()
        self._rows: list[Sequence] = []
        self._widest: list[int] = []  # per column: its widest cell
        self._visible: list[int] = []  # the columns shown (a narrow screen leaves some out)
        self._widths: list[int] = []  # per column shown: its width
        self._laid_out_for = -1
        self._cursor = 0
        self._lines: dict[tuple, Strip] = {}
        self._after_drawn = None  # called once rows have been drawn (see after_drawn)
        self.first_drawn: float | None = None  # when rows were first drawn (perf_counter; for the benchmark)

    # -- the data ---------------------------------------------------------------------

    def load(self, columns: Sequence[ColumnSpec], rows: Sequence[Sequence], widest: Sequence[int] | None = None) -> None:
        """Replace the columns and rows (the list is kept, not copied). The cursor stays on
        the same row number, or the last row.

        ``widest``: per column, its widest cell, when the caller knows it (see :func:`widest_cells`);
        a filtered list passes its whole list's, so the columns stay put as the filter narrows it."""
        self._columns = tuple(columns)
        self._rows = rows if isinstance(rows, list) else list(rows)
        self._widest = list(widest) if widest is not None else widest_cells(self._rows, len(columns))
        self._layout()
        self._set_cursor(min(self._cursor, max(len(self._rows) - 1, 0)), scroll=False, force=True)

    def after_drawn(self, callback) -> None:
        """Call ``callback`` (once) when rows are next drawn on screen: the console reads the rest
        of a long list only then, since a worker busy reading would hold the first rows back."""
        self._after_drawn = callback
        self.refresh()

    @property
    def row_count(self) -> int:
        return len(self._rows)

    @property
    def cursor_row(self) -> int:
        return self._cursor

    @property
    def column_labels(self) -> list[str]:
        return [self._columns[i].label for i in self._visible]

    def get_row_at(self, index: int) -> list[Text]:
        """The cells of row ``index`` as shown: the columns on screen, cut to their widths."""
        cells = self._rows[index]
        return [cell_text(cells[i], width, pad=False) for i, width in zip(self._visible, self._widths)]

    def move_cursor(self, *, row: int, animate: bool = False, scroll: bool = True) -> None:
        if self._rows:
            self._set_cursor(max(0, min(row, len(self._rows) - 1)), scroll=scroll)

    # -- layout -----------------------------------------------------------------------

    def _layout(self) -> None:
        width = self.size.width
        self._laid_out_for = width
        self._visible, self._widths = fit_columns(self._columns, self._widest, width - 1, PADDING)
        self._lines.clear()
        self.virtual_size = Size(max(width, 1), len(self._rows) + 1)
        self.refresh()

    def on_resize(self, event: events.Resize) -> None:
        if self.size.width != self._laid_out_for:
            self._layout()
        self._scroll_into_view()

    @property
    def _page(self) -> int:
        """Rows that fit under the header."""
        return max(self.scrollable_content_region.height - 1, 1)

    # -- the cursor -------------------------------------------------------------------

    def _set_cursor(self, row: int, *, scroll: bool = True, force: bool = False) -> None:
        if row == self._cursor and not force:
            return
        self._cursor = row
        self.refresh()
        if scroll:
            self._scroll_into_view()
        if self._rows:
            self.post_message(self.RowHighlighted(self, row))

    def _scroll_into_view(self) -> None:
        top, page = round(self.scroll_y), self._page
        if self._cursor < top:
            self.scroll_to(y=self._cursor, animate=False, immediate=True)
        elif self._cursor >= top + page:
            self.scroll_to(y=self._cursor - page + 1, animate=False, immediate=True)

    def action_cursor_up(self) -> None:
        self.move_cursor(row=self._cursor - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(row=self._cursor + 1)

    def action_page_up(self) -> None:
        self.scroll_to(y=max(round(self.scroll_y) - self._page, 0), animate=False, immediate=True)
        self.move_cursor(row=self._cursor - self._page)

    def action_page_down(self) -> None:
        self.scroll_to(y=round(self.scroll_y) + self._page, animate=False, immediate=True)
        self.move_cursor(row=self._cursor + self._page)

    def action_first(self) -> None:
        self.move_cursor(row=0)

    def action_last(self) -> None:
        self.move_cursor(row=len(self._rows) - 1)

    def action_select_cursor(self) -> None:
        if self._rows:
            self.post_message(self.RowSelected(self, self._cursor))

    async def _on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None or offset.y < 1:
            return
        row = round(self.scroll_y) + offset.y - 1
        if 0 <= row < len(self._rows):
            self.move_cursor(row=row, scroll=False)
            self.post_message(self.RowSelected(self, row))

    def _on_focus(self, event: events.Focus) -> None:
        self._lines.clear()
        self.refresh()

    def _on_blur(self, event: events.Blur) -> None:
        self._lines.clear()
        self.refresh()

    # -- drawing ----------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        width = self.size.width
        base = self.rich_style
        if y == 0:
            return self._line(("header", width), base, self._header)
        row = round(self.scroll_y) + y - 1
        if not 0 <= row < len(self._rows):
            return Strip.blank(width, base)
        if self.first_drawn is None:
            self.first_drawn = time.perf_counter()
        if self._after_drawn is not None:
            callback, self._after_drawn = self._after_drawn, None
            self.call_later(callback)
        return self._line((row, row == self._cursor, width), base, lambda: self._row(row))

    def _line(self, key: tuple, base: Style, make) -> Strip:
        key = (*key, self.has_focus, base)
        strip = self._lines.get(key)
        if strip is None:
            if len(self._lines) >= CACHE_LINES:
                self._lines.clear()
            text, over = make()
            # Text.render leaves out the line's own style (the row's colours): it goes under every
            # cell, except the cursor's, which goes over them (as in DataTable: one colour, readable).
            segments = Segment.apply_style(text.render(self.app.console), base + text.style, over)
            strip = Strip(list(segments)).adjust_cell_length(self.size.width, base).simplify()
            self._lines[key] = strip
        return strip

    def _header(self) -> tuple[Text, Style | None]:
        style = self.get_component_rich_style("virtual-table--header")
        return self._join((Text(self._columns[i].label, end="") for i in self._visible), style), None

    def _row(self, row: int) -> tuple[Text, Style | None]:
        cells = self._rows[row]
        if row == self._cursor:
            cursor = self.get_component_rich_style("virtual-table--cursor")
            return self._join((cells[i] for i in self._visible), Style()), cursor
        if self.zebra_stripes:
            style = self.get_component_rich_style("virtual-table--odd-row" if row % 2 else "virtual-table--even-row")
        else:
            style = Style()
        return self._join((cells[i] for i in self._visible), style), None

    def _join(self, cells, style: Style) -> Text:
        line = Text(style=style, end="", no_wrap=True)
        pad = " " * PADDING
        for value, width in zip(cells, self._widths):
            line.append(pad)
            line.append_text(cell_text(value, width))
            line.append(pad)
        line.append(" " * max(self.size.width - line.cell_len, 0))
        return line
