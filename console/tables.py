"""Plain-text tables for the admin CLI."""

from __future__ import annotations


def render(rows: list[dict], columns: list[tuple[str, str]], max_width: int = 60) -> str:
    """``columns`` is [(key, header)]; long cells are cut with an ellipsis."""
    if not rows:
        return ""

    def cell(value) -> str:
        if value is None:
            text = "-"
        elif value is True:
            text = "yes"
        elif value is False:
            text = "no"
        else:
            text = str(value).replace("\n", " ")
        return text if len(text) <= max_width else text[: max_width - 1] + "…"

    table = [[header for _, header in columns]] + [[cell(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    lines = ["  ".join(text.ljust(widths[i]) for i, text in enumerate(line)).rstrip() for line in table]
    return "\n".join(lines)


def when(value: str | None) -> str:
    """An ISO UTC timestamp as 'YYYY-MM-DD HH:MMZ'."""
    if not value:
        return "never"
    return value[:16].replace("T", " ") + "Z"
