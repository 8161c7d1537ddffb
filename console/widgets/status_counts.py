"""The header bar of the connections screen: how many connections are in each status.

Each count ("✖ relink_required 3") is one item that never breaks across lines: the
items are packed into lines as wide as the bar, and on a narrow screen the statuses
with no connection are left out before a group takes a third line.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from console.widgets.status_badge import status_text
from models import BROKEN_STATUSES, STATUSES

OTHER_STATUSES = ("pending", "active", "stopped")
LABEL_WIDTH = 8  # "Broken  ", "Others  "
GAP = "  "


class StatusCounts(Static):
    """The broken statuses (in the table's order), then the others, the total and the filter."""

    DEFAULT_CSS = """
    StatusCounts { height: auto; }
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._last: tuple[dict[str, int], int | None, bool, bool] | None = None

    def show(self, counts: dict[str, int], shown: int | None = None, filtered: bool = False, loading: bool = False) -> None:
        """``loading``: the table holds only the first rows yet (a filter may match more)."""
        self._last = (dict(counts), shown, filtered, loading)
        self._draw()

    def on_resize(self, event) -> None:
        if self._last is not None:
            self._draw()

    def _groups(self, last: tuple[dict[str, int], int | None, bool, bool], with_zero: bool) -> list[tuple[str, list[Text]]]:
        counts, shown, filtered, loading = last
        broken = sum(counts.get(s, 0) for s in BROKEN_STATUSES)
        first = [self._item(s, counts[s]) for s in BROKEN_STATUSES if s in counts and (with_zero or counts[s])]
        first.append(Text(f"│ {broken:,} broken", style="bold" if broken else "dim", end=""))
        second = [self._item(s, counts[s]) for s in OTHER_STATUSES if s in counts and (with_zero or counts[s])]
        failing = counts.get("failing", 0)
        if failing:  # a part of "active": recent runs failed, not yet unreachable
            item = status_text("active", failing=True).copy()
            item.append(f" {failing:,}", style="bold")
            second.append(item)
        second.append(Text(f"│ {sum(counts.get(s, 0) for s in STATUSES):,} in all", style="bold", end=""))
        if filtered and shown is not None:
            second.append(Text(f"│ {shown:,} match the filter", style="bold italic", end=""))
        if loading:
            second.append(Text("│ loading the rest…", style="dim italic", end=""))
        return [("Broken", first), ("Others", second)]

    @staticmethod
    def _item(status: str, count: int) -> Text:
        item = status_text(status).copy()
        if not count:
            item.stylize("dim")
        item.append(f" {count:,}", style="bold" if count else "dim")
        return item

    def _draw(self) -> None:
        last = self._last
        if last is None:  # nothing to show yet
            return
        width = self.content_region.width or self.size.width
        lines = self._pack(self._groups(last, True), width)
        if width and len(lines) > 2:
            lines = self._pack(self._groups(last, False), width)
        text = Text(end="")
        for index, line in enumerate(lines):
            if index:
                text.append("\n")
            text.append_text(line)
        self.update(text)

    @staticmethod
    def _pack(groups: list[tuple[str, list[Text]]], width: int) -> list[Text]:
        lines: list[Text] = []
        for label, items in groups:
            line = Text(f"{label:<{LABEL_WIDTH}}", style="bold", end="")
            used = 0
            for item in items:
                need = item.cell_len + (len(GAP) if used else 0)
                if used and width and LABEL_WIDTH + used + need > width:
                    lines.append(line)
                    line, used = Text(" " * LABEL_WIDTH, end=""), 0
                    need = item.cell_len
                if used:
                    line.append(GAP)
                line.append_text(item)
                used += need
            lines.append(line)
        return lines
