"""A DataTable that takes thousands of rows at once: every column has a fixed width.

Textual's DataTable measures every cell of every new row on the next idle
(about 1.6 s for 10,000 rows of nine columns on our machines), only to learn the
column widths, and adds rows one by one. Here the widths are computed once from
the plain strings of the rows and the rows are added in bulk, so only the
visible rows are ever rendered. Two DataTable internals are replaced for that
(``add_rows`` and ``_update_dimensions``); both fall back to Textual's own code
when the table is used otherwise (auto-width columns) or Textual changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import zip_longest

from rich.cells import cell_len
from rich.markup import escape
from rich.text import Text
from textual.geometry import Size
from textual.widgets import DataTable
from textual.widgets._data_table import Row, RowKey

from console.tables import shown


@dataclass(frozen=True)
class ColumnSpec:
    """One column: its header, key, and the widths it may take.

    When the table is wider than the screen, columns with a ``drop`` rank are left out,
    the highest rank first, until the others fit at their narrowest; then columns with a
    ``squeeze`` rank give up width, the highest rank first, down to ``squeeze_to`` (the
    last column does, down to 12, when no column has a rank). A column with a large
    ``max_width`` (the reason) so takes whatever width is left on a wide screen.
    """

    label: str
    key: str
    max_width: int = 40
    min_width: int = 0
    squeeze: int = 0
    squeeze_to: int = 0
    drop: int = 0


def plain_cell(value) -> str:
    """A cell from data: one safe line (no escape sequence, no password in a URL), never read as
    Rich markup (reasons may hold brackets; DataTable parses string cells as markup)."""
    if value is None:
        return "-"
    text = shown(value)
    return escape(text) if "[" in text else text


def safe_cell(value):
    """The last guard of every cell the table shows: controls never reach the terminal.

    Cells are made by :func:`plain_cell` or are Text built from it; this only catches the
    one that was not (``isprintable`` is the cheap test, so 10,000 rows cost nothing).
    """
    if isinstance(value, str):
        return value if value.isprintable() else shown(value)
    if isinstance(value, Text) and not value.plain.isprintable():
        return Text(shown(value.plain), style=value.style, no_wrap=value.no_wrap, end="")
    return value


def clip(text: str, width: int) -> str:
    """``text`` cut to ``width`` cells with an ellipsis."""
    if len(text) <= width:
        return text
    return text[: max(width - 1, 0)] + "…"


def cell_width(value) -> int:
    if isinstance(value, Text):
        return value.cell_len
    text = str(value)
    return len(text) if text.isascii() else cell_len(text)


def column_width(values: Sequence) -> int:
    """The widest cell of a column, in terminal cells (Rich Text cells by their plain text)."""
    if not values:
        return 0
    plain = [value.plain if isinstance(value, Text) else value for value in values]
    try:
        joined = "".join(plain)
    except TypeError:  # not text at all
        return max(map(cell_width, values))
    if joined.isascii() or all(cell_len(c) == 1 for c in set(joined) if not c.isascii()):
        return max(map(len, plain))  # every character one cell wide ("└", "✖"): the longest is the widest
    return max(map(cell_width, set(plain)))  # wide or zero-width characters: measure each value once


def clip_cell(value, width: int):
    if isinstance(value, Text) or cell_width(value) <= width:
        return value
    return clip(str(value), width)


def fit_columns(columns: Sequence[ColumnSpec], widest: Sequence[int], available: int, padding: int) -> tuple[list[int], list[int]]:
    """Which columns show and how wide, for cells at most ``widest`` wide in ``available`` cells.

    Returns the indices of the columns shown and their widths (see :class:`ColumnSpec`);
    ``padding`` is the blank cells on each side of a column.
    """
    widths = [max(spec.min_width, min(spec.max_width, max(w, len(spec.label)))) for spec, w in zip(columns, widest)]
    visible = list(range(len(columns)))
    if available > 0 and widths:
        ranked = sorted((i for i, spec in enumerate(columns) if spec.squeeze), key=lambda i: -columns[i].squeeze)

        def floor(i: int) -> int:
            if ranked:
                return max(columns[i].squeeze_to, len(columns[i].label)) if columns[i].squeeze else widths[i]
            return min(widths[i], 12) if i == len(columns) - 1 else widths[i]

        def narrowest(shown: list[int]) -> int:
            return sum(floor(i) for i in shown) + 2 * padding * len(shown)

        for i in sorted((i for i, spec in enumerate(columns) if spec.drop), key=lambda i: -columns[i].drop):
            if narrowest(visible) <= available:
                break
            visible.remove(i)
        excess = sum(widths[i] for i in visible) + 2 * padding * len(visible) - available
        for i in [i for i in ranked if i in visible] or [visible[-1]]:
            if excess <= 0:
                break
            given = min(excess, widths[i] - floor(i)) if ranked else min(excess, widths[i] - min(widths[i], 12))
            if given > 0:
                widths[i] -= given
                excess -= given
    return visible, [widths[i] for i in visible]


class LargeTable(DataTable):
    """A DataTable whose columns are laid out from the data in one pass.

    Columns are left out or give up width by their ``drop`` and ``squeeze`` ranks so the
    table fits the screen (cut cells end in "…"); the layout is redone when the table is
    resized.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._source: tuple[Sequence[ColumnSpec], list[Sequence]] | None = None
        self._laid_out_for = 0
        self._visible: list[int] = []  # the indices of the columns shown (narrow screens leave some out)

    def load(self, columns: Sequence[ColumnSpec], rows: Iterable[Sequence]) -> None:
        """Replace columns and rows. Long plain cells are clipped to the column's width."""
        self._source = (columns, [tuple(map(safe_cell, row)) for row in rows])
        self._layout()

    def _layout(self) -> None:
        assert self._source is not None
        columns, rows = self._source
        # Column by column: each step is one pass in C over a column's values.
        cells_by_column: list[Sequence] = list(zip(*rows)) if rows else [() for _ in columns]
        widest = [column_width(values) for values in cells_by_column]
        self._laid_out_for = self.size.width
        visible, widths = fit_columns(columns, widest, self.size.width - 1, self.cell_padding)  # -1: the scrollbar
        if len(visible) < len(columns):
            columns = [columns[i] for i in visible]
            cells_by_column = [cells_by_column[i] for i in visible] if rows else [() for _ in columns]
            widest = [widest[i] for i in visible]
        self._visible = visible
        if any(w > width for w, width in zip(widest, widths)):
            cells_by_column = [
                values if w <= width else [clip_cell(value, width) for value in values]
                for values, w, width in zip(cells_by_column, widest, widths)
            ]
            rows = list(zip(*cells_by_column))
        elif len(visible) < len(self._source[0]):
            rows = list(zip(*cells_by_column))
        self.clear(columns=True)
        for spec, width in zip(columns, widths):
            self.add_column(spec.label, width=width, key=spec.key)
        self.add_rows(rows)

    def on_resize(self, event) -> None:
        if self._source is None or self.size.width == self._laid_out_for:
            return
        row, scroll_y = self.cursor_row, self.scroll_y
        self._layout()
        if self.row_count:
            self.scroll_to(y=scroll_y, animate=False, immediate=True)
            self.move_cursor(row=min(row, self.row_count - 1), animate=False, scroll=False)

    def add_rows(self, rows: Iterable[Iterable]) -> list[RowKey]:
        """Add one-line rows in bulk.

        DataTable.add_row re-sorts the columns and re-sets the cursor for every row
        (a quarter of a second for 10,000 rows); this does the same bookkeeping once
        for all of them. Falls back to DataTable's own loop if its internals change.
        """
        try:
            locations, data, metadata, new_rows = self._row_locations, self._data, self.rows, self._new_rows
        except AttributeError:  # pragma: no cover - another Textual version
            return super().add_rows(rows)
        columns = self.ordered_columns
        was_empty = self.row_count == 0
        index = self.row_count
        keys: list[RowKey] = []
        for row in rows:
            cells = row if isinstance(row, (tuple, list)) else tuple(row)  # DataTable takes any iterable of cells
            if len(cells) > len(columns):
                raise ValueError("More values provided than there are columns.")
            key = RowKey(None)
            locations[key] = index
            data[key] = {column.key: cell for column, cell in zip_longest(columns, cells)}
            metadata[key] = Row(key, 1)
            new_rows.add(key)
            keys.append(key)
            index += 1
        if keys:
            self._require_update_dimensions = True
            self.cursor_coordinate = self.cursor_coordinate
            if was_empty and self.columns and self.show_cursor and self.cursor_type != "none":
                self._highlight_cursor()
            self._update_count += 1
            self.check_idle()
        return keys

    def _update_dimensions(self, new_rows) -> None:
        if any(column.auto_width for column in self.columns.values()):
            super()._update_dimensions(new_rows)
            return
        # Every width is fixed and every row is one line high: nothing to measure.
        width = sum(column.get_render_width(self) for column in self.columns.values())
        header_height = self.header_height if self.show_header else 0
        self.virtual_size = Size(width + self._row_label_column_width, self._total_row_height + header_height)
