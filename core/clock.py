"""The one source of "now", so tests can move time without sleeping."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

UTC = dt.UTC

_now: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC)


def now() -> dt.datetime:
    """Aware UTC now."""
    return _now()


def set_now(fn: Callable[[], dt.datetime] | None) -> None:
    """Replace the clock (tests); ``None`` restores the real one."""
    global _now
    _now = fn if fn is not None else (lambda: dt.datetime.now(UTC))


def utc(value: dt.datetime) -> dt.datetime:
    """Aware UTC datetime from an aware or naive-UTC value."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def naive_utc(value: dt.datetime) -> dt.datetime:
    """The naive UTC form stored in the database (peewee/SQLite keep no tzinfo)."""
    return utc(value).replace(tzinfo=None)
