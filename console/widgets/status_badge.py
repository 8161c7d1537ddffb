"""A connection status as symbol + colour + the status name: never colour alone."""

from __future__ import annotations

from rich.text import Text

# Broken statuses share the cross; every badge carries the status name in words.
STATUS_LOOK = {
    "relink_required": ("✖", "bold #ff5f5f"),
    "calendar_missing": ("✖", "bold #ff5f5f"),
    "read_only": ("◐", "bold #ffaf00"),
    "unreachable": ("▲", "bold #d787ff"),
    "pending": ("◌", "#ffd75f"),
    "active": ("●", "#5fd75f"),
    "stopped": ("■", "#8a8a8a"),
}
_UNKNOWN = ("?", "bold")
_cache: dict[str, Text] = {}


def status_text(status: str) -> Text:
    """The badge as Rich text, e.g. "✖ relink_required" in red (shared, do not modify)."""
    text = _cache.get(status)
    if text is None:
        symbol, style = STATUS_LOOK.get(status, _UNKNOWN)
        text = _cache[status] = Text(f"{symbol} {status}", style=style, no_wrap=True, end="")
    return text
