"""How single values read in the console's tables: times, ages, yes/no."""

from __future__ import annotations

import datetime as dt

from rich.text import Text

from core import clock, wording

LOADED_YES = Text("✔ yes", style="#5fd75f", no_wrap=True, end="")
LOADED_NO = Text("✖ no", style="bold #ff5f5f", no_wrap=True, end="")


def parse(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)


def when(value: str | None, empty: str = "never") -> str:
    """An ISO UTC time as 'YYYY-MM-DD HH:MM' (the console shows UTC throughout)."""
    if not value:
        return empty
    return value[:16].replace("T", " ")


def ago(value: str | None, now: dt.datetime | None = None, empty: str = "never") -> str:
    """How long ago, compactly: 'just now', '12m ago', '3h ago', '5d ago'."""
    moment = parse(value)
    if moment is None:
        return empty
    seconds = ((now or clock.now()) - moment).total_seconds()
    if seconds < 60:
        return "just now" if seconds > -60 else "in future"
    if seconds < 3600:
        return f"{int(seconds // 60)}m ago"
    if seconds < 86400 * 2:
        return f"{int(seconds // 3600)}h ago"
    return f"{int(seconds // 86400)}d ago"


def when_and_ago(value: str | None, empty: str = "never") -> str:
    if not value:
        return empty
    return f"{when(value)} ({ago(value)})"


def local(value: str | None, zone: str | None, empty: str = "never", label: bool = True) -> str:
    """A stored UTC time in the staff member's zone: '2026-03-02 10:30 CET (Europe/Berlin)'
    (``label=False`` drops the zone, for a column whose header names it)."""
    if not value:
        return empty
    return wording.local_time(value, zone, label=label) or empty


def local_and_ago(value: str | None, zone: str | None, empty: str = "never") -> str:
    if not value:
        return empty
    return f"{local(value, zone)}, {ago(value)}"


def zone_label(zone: str | None) -> str:
    """The zone a column of times is in, for its header: 'Europe/Berlin'."""
    return wording.zone_name(zone)


def yes_no(value) -> str:
    return "yes" if value else "no"


def loaded_text(loaded: bool) -> Text:
    return LOADED_YES if loaded else LOADED_NO
