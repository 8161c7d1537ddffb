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
    "failing": ("▲", "bold #ffaf00"),  # active, but its recent runs failed (core: failing_since)
}
_UNKNOWN = ("?", "bold")
_cache: dict[str, Text] = {}


def status_text(status: str, failing: bool = False) -> Text:
    """The badge as Rich text, e.g. "✖ relink_required" in red (shared, do not modify).

    An active connection whose recent runs failed reads "▲ active, failing".
    """
    key = "active, failing" if failing and status == "active" else status
    text = _cache.get(key)
    if text is None:
        symbol, style = STATUS_LOOK.get("failing" if key == "active, failing" else status, _UNKNOWN)
        text = _cache[key] = Text(f"{symbol} {key}", style=style, no_wrap=True, end="")
    return text
