"""The words users read, in one table, so Slack, the console, the CLI and the
web pages all say the same thing about a connection."""

from __future__ import annotations

STATUS_MEANINGS = {
    "pending": "connected, first sync not finished",
    "active": "working",
    "read_only": "we can read but not create events",
    "relink_required": "the calendar provider rejected our credentials",
    "calendar_missing": "the chosen destination calendar no longer exists",
    "unreachable": "the provider has failed for a long time",
    "stopped": "sync stopped by the user",
}

STATUS_ADVICE = {
    "pending": "The first sync runs within minutes. If this lasts more than 24 hours, support is told.",
    "active": "",
    "read_only": "Ask your calendar administrator for write permission, or choose another primary calendar.",
    "relink_required": "Relink the account with its new password or a new consent.",
    "calendar_missing": "Choose a new primary calendar for your appointments.",
    "unreachable": "Nothing to do on your side: calsync keeps retrying and tells you when it works again.",
    "stopped": "Connect again to resume syncing.",
}


def meaning(status: str) -> str:
    return STATUS_MEANINGS.get(status, status)


def failing_reason(failures: int, since, last_error: str) -> str:
    """What an ``active`` connection whose recent runs fail says, before it is ``unreachable``."""
    when = since.strftime("%Y-%m-%d %H:%M UTC") if hasattr(since, "strftime") else str(since or "")
    runs = f"the last {failures} attempts failed" if failures > 1 else "the last attempt failed"
    return f"failing since {when} ({runs}; retrying): {last_error or 'no answer'}"
