"""The console's long-list table: driven by keys and the mouse like a DataTable, drawing only
the rows on screen, and showing every cell as text."""

from __future__ import annotations

import asyncio

from textual.app import App, ComposeResult

from console.widgets.large_table import ColumnSpec, plain_cell
from console.widgets.virtual_table import VirtualTable

COLUMNS = (
    ColumnSpec("ID", "id", max_width=7),
    ColumnSpec("Name", "name", max_width=30),
    ColumnSpec("Extra", "extra", max_width=20, drop=1),
    ColumnSpec("Reason", "reason", max_width=200),
)


class TableApp(App):
    def __init__(self) -> None:
        super().__init__()
        self.highlighted: list[int] = []
        self.selected: list[int] = []

    def compose(self) -> ComposeResult:
        yield VirtualTable(id="table", zebra_stripes=True)

    def on_virtual_table_row_highlighted(self, event: VirtualTable.RowHighlighted) -> None:
        self.highlighted.append(event.cursor_row)

    def on_virtual_table_row_selected(self, event: VirtualTable.RowSelected) -> None:
        self.selected.append(event.cursor_row)


def rows(count: int) -> list[tuple]:
    return [(str(i), plain_cell(f"person {i:05d}"), "x" * 10, plain_cell(f"reason {i}")) for i in range(count)]


def screen_lines(table: VirtualTable) -> list[str]:
    return ["".join(segment.text for segment in table.render_line(y)) for y in range(table.size.height)]


def drive(scenario, size=(100, 20)) -> None:
    async def main():
        app = TableApp()
        async with app.run_test(size=size) as pilot:
            table = app.query_one(VirtualTable)
            table.focus()
            await scenario(pilot, app, table)

    asyncio.run(main())


def test_ten_thousand_rows_are_moved_through_by_keys_and_only_the_rows_on_screen_are_drawn():
    async def scenario(pilot, app, table):
        table.load(COLUMNS, rows(10_000))
        await pilot.pause()
        lines = screen_lines(table)
        assert lines[0].split()[:2] == ["ID", "Name"] and "person 00000" in lines[1]
        assert len(table._lines) <= table.size.height  # what was drawn: the screenful, not 10,000 rows

        await pilot.press("down", "down")
        assert table.cursor_row == 2 and app.highlighted[-1] == 2
        await pilot.press("end")
        await pilot.pause()
        assert table.cursor_row == 9_999
        assert "person 09999" in screen_lines(table)[-1]  # the cursor's row is scrolled into view
        await pilot.press("home", "pagedown")
        await pilot.pause()
        page = table.size.height - 1
        assert table.cursor_row == page
        assert any(f"person {page:05d}" in line for line in screen_lines(table)[1:])
        await pilot.press("up")
        await pilot.press("enter")
        await pilot.pause()
        assert app.selected == [page - 1]
        assert [str(c) for c in table.get_row_at(page - 1)][:2] == [str(page - 1), f"person {page - 1:05d}"]

        await pilot.click(VirtualTable, offset=(3, 3))  # screen line 3: the third row under the header
        await pilot.pause()
        top = round(table.scroll_y)
        assert table.cursor_row == top + 2 and app.selected[-1] == top + 2

    drive(scenario)


def test_loading_fewer_rows_keeps_the_cursor_on_a_row_and_an_empty_table_selects_nothing():
    async def scenario(pilot, app, table):
        table.load(COLUMNS, rows(50))
        table.move_cursor(row=40)
        table.load(COLUMNS, rows(5))
        await pilot.pause()
        assert table.cursor_row == 4 and table.row_count == 5
        table.load(COLUMNS, [])
        await pilot.pause()
        count = len(app.selected)
        await pilot.press("enter", "down")
        assert len(app.selected) == count and table.row_count == 0

    drive(scenario)


def test_cells_are_shown_as_text_cut_to_their_column_and_a_narrow_screen_leaves_columns_out():
    async def scenario(pilot, app, table):
        hostile = plain_cell("[bold red]Mallory[/] \x1b]0;pwned\x07" + "y" * 300)
        table.load(COLUMNS, [("1", hostile, "extra", "why")])
        await pilot.pause()
        line = screen_lines(table)[1]
        assert "[bold red]Mallory[/]" in line  # markup is shown, not obeyed
        assert "\x1b" not in line and "\x07" not in line
        assert "…" in line and len(line) == table.size.width
        assert "Extra" not in screen_lines(table)[0]  # dropped first on 40 columns; ID, Name, Reason stay
        assert table.column_labels == ["ID", "Name", "Reason"]

    drive(scenario, size=(40, 10))


def test_the_filtered_widths_given_by_the_caller_are_kept():
    async def scenario(pilot, app, table):
        everything = rows(100) + [("101", "a much longer name than the others", "x", "r")]
        table.load(COLUMNS, everything)
        await pilot.pause()
        header = screen_lines(table)[0]
        widest = table._widest
        table.load(COLUMNS, everything[:1], widest)  # a filter narrowed the list: the columns stay put
        await pilot.pause()
        assert screen_lines(table)[0] == header

    drive(scenario)
