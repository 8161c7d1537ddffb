"""The words of every notification, in one place: e-mail, the log and Slack say the same."""

from __future__ import annotations

import datetime as dt

from core import wording
from core.messages import STATUS_ADVICE

# The provider names of core.wording; in a mail's "… account …" phrases a feed is an "iCalendar feed".
PROVIDER_NAMES = {**wording.PROVIDER_NAMES, "ics": "iCalendar feed"}


FIX_WORDS = {
    "relink_required": "Reconnect here",
    "calendar_missing": "Choose a new calendar for your appointments here",
    "read_only": "See what to change, or choose another calendar, here",
    "unreachable": "Details, and a test, here",
}


def provider_name(provider: str) -> str:
    return PROVIDER_NAMES.get(provider, provider)


def _since(value: str) -> str:
    try:
        return dt.datetime.fromisoformat(value).strftime("%Y-%m-%d %H:%M UTC")
    except (TypeError, ValueError):
        return str(value)


def headline(event: str, p: dict) -> str:
    account = f"{provider_name(p.get('provider', ''))} account {p.get('account', '')}"
    if event == "incident.resolved":
        return f"Your {account} is connected again"
    if event == "incident.escalated":
        return f"Support needed: {p.get('staff', '')}'s {account} is {p.get('status', '')}"
    if event == "relink.link":
        return f"Your link to reconnect your {account}"
    if p.get("status") == "pending":
        return f"The first sync of your {account} has not finished"
    if p.get("headline"):  # what broke and what waits (core.wording), e.g. "... needs your new password — 3 ..."
        return p["headline"]
    return f"Your calendar connection needs attention: {account}"


def render(event: str, p: dict, relink_url: str = "") -> tuple[str, str]:
    """(subject, plain text) for a notification."""
    subject = headline(event, p)
    name = p.get("staff_name") or p.get("staff", "")
    lines = [f"Hello {name},", ""]
    missed = int(p.get("missed") or 0)
    if event == "incident.resolved":
        delivered = int(p.get("delivered") or 0)
        lines.append(
            f"Calsync can reach your {provider_name(p.get('provider', ''))} account {p.get('account', '')} again "
            f"(reconnected at {_since(p.get('resolved_at', ''))})."
        )
        if delivered:
            lines.append(f"{delivered} appointment(s) booked while it was broken are now on your calendar.")
    elif event == "incident.escalated":
        lines = [
            (
                f"Connection {p.get('connection')} of {p.get('staff')} ({provider_name(p.get('provider', ''))} "
                f"account {p.get('account')}) has been {p.get('status')} since {_since(p.get('since', ''))}."
            ),
            f"Reason: {p.get('reason', '')}.",
            f"Appointments waiting: {missed}.",
        ]
    else:
        if event == "incident.reminder":
            lines.append("A reminder: this is still not fixed.")
        zone = p.get("timezone") or "UTC"
        problem = p.get("problem") or f"Calsync cannot sync your calendar: {p.get('meaning', '')}"
        lines.append(f"{problem} (since {wording.local_time(p.get('since'), zone) or _since(p.get('since', ''))}).")
        reason = p.get("reason", "")
        if reason and reason != p.get("meaning"):
            lines.append(f"What {p.get('provider_name') or provider_name(p.get('provider', ''))} answered: {reason}.")
        if missed:
            lines.append(f"{wording.waiting_phrase(missed).capitalize()} and will be added as soon as it works again:")
            listed = p.get("waiting") or []
            for item in listed:
                lines.append(f"  - {wording.local_time(item.get('start'), zone)}  {item.get('subject', '')}")
            if listed and missed > len(listed):
                lines.append(f"  … and {missed - len(listed)} more")
        advice = p.get("todo") or STATUS_ADVICE.get(p.get("status", ""), "")
        if advice:
            lines.append(advice)
    if relink_url:
        expires = _since(p["link_expires_at"]) if p.get("link_expires_at") else "in a few days"
        what = FIX_WORDS.get(p.get("status", "") if event != "relink.link" else "relink_required", "Reconnect here")
        lines += ["", f"{what} (the link works until it is used or expires {expires}):", relink_url]
    lines += [
        "",
        "--",
        (
            f"This message comes from calsync ({p.get('mail_from', 'the calsync sender')}). Add that address to your "
            "contacts or allow-list so these messages do not end up in spam."
        ),
    ]
    return subject, "\n".join(lines)
