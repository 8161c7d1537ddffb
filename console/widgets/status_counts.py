"""The header bar of the connections screen: how many connections are in each status."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from console.widgets.status_badge import status_text
from models import BROKEN_STATUSES, STATUSES

OTHER_STATUSES = ("pending", "active", "stopped")


class StatusCounts(Static):
    """Two lines: the broken statuses (in the table's order), then the others, the total and the filter."""

    DEFAULT_CSS = """
    StatusCounts { height: 2; }
    """

    def show(self, counts: dict[str, int], shown: int | None = None, filtered: bool = False) -> None:
        text = Text(end="")
        text.append("Broken  ", style="bold")
        self._line(text, [s for s in BROKEN_STATUSES if s in counts], counts)
        broken = sum(counts.get(s, 0) for s in BROKEN_STATUSES)
        text.append(f"│ {broken:,} broken\n", style="bold" if broken else "dim")
        text.append("Others  ", style="bold")
        others = [s for s in OTHER_STATUSES if s in counts]
        self._line(text, others, counts)
        failing = counts.get("failing", 0)
        if failing:  # a part of "active": recent runs failed, not yet unreachable
            text.append_text(status_text("active", failing=True))
            text.append(f" {failing:,}   ", style="bold")
        text.append(f"│ {sum(counts.get(s, 0) for s in STATUSES):,} in all", style="bold")
        if filtered and shown is not None:
            text.append(f"  │ {shown:,} match the filter", style="bold italic")
        self.update(text)

    @staticmethod
    def _line(text: Text, statuses: list[str], counts: dict[str, int]) -> None:
        for status in statuses:
            count = counts[status]
            badge = status_text(status).copy()
            if not count:
                badge.stylize("dim")
            text.append_text(badge)
            text.append(f" {count:,}   ", style="bold" if count else "dim")
