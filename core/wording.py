"""What broke, in the words of the person who reads it.

One owner for the sentences every surface shows about a connection: the Slack alert and
App Home, the relink and connect pages, the console and the CLI all call these, so a
Fastmail account that needs its new password is said the same way everywhere, and an
iCalendar feed never "rejects our credentials".
"""

from __future__ import annotations

import datetime as dt
import functools
import urllib.parse
import zoneinfo

from core.clock import utc

PROVIDER_NAMES = {"caldav": "CalDAV", "ics": "calendar feed", "google": "Google Calendar", "microsoft": "Microsoft 365"}

# The CalDAV services people name, recognised by their server address, with what their
# connect form needs (server address, where an app password is made).
CALDAV_PRESETS = (
    {
        "key": "icloud",
        "name": "iCloud",
        "server_url": "https://caldav.icloud.com/",
        "hosts": ("icloud.com",),
        "login": "your Apple ID e-mail address",
        "help": "Use an app-specific password: sign in at appleid.apple.com, open Sign-In and Security, "
        "App-Specific Passwords, and create one for calsync.",
        "help_url": "https://support.apple.com/en-us/102654",
    },
    {
        "key": "fastmail",
        "name": "Fastmail",
        "server_url": "https://caldav.fastmail.com/",
        "hosts": ("fastmail.com", "messagingengine.com"),
        "login": "your Fastmail e-mail address",
        "help": "Use an app password: in Fastmail open Settings, Privacy & Security, Manage app passwords, "
        "and create one with access to calendars (CalDAV).",
        "help_url": "https://www.fastmail.help/hc/en-us/articles/360058752854",
    },
    {
        "key": "nextcloud",
        "name": "Nextcloud",
        "server_url": "https://YOUR-NEXTCLOUD/remote.php/dav/",
        "hosts": (),
        "login": "your Nextcloud user name",
        "help": "Use an app password: in Nextcloud open Personal settings, Security, Devices & sessions, "
        "and create one for calsync. The server address is your Nextcloud address followed by /remote.php/dav/.",
        "help_url": "https://docs.nextcloud.com/server/latest/user_manual/en/groupware/sync_ios.html",
    },
    {
        "key": "generic",
        "name": "Other CalDAV server",
        "server_url": "",
        "hosts": (),
        "login": "your user name on that server",
        "help": "Ask your calendar provider for its CalDAV server address; if your account uses two-step sign-in, "
        "create an app password for calsync.",
        "help_url": "",
    },
)


@functools.lru_cache(maxsize=4096)  # a listing of 10,000 rows says the same few things
def preset_for(server_url: str) -> dict | None:
    """The known CalDAV service a server address belongs to, if any."""
    host = (urllib.parse.urlsplit(server_url or "").hostname or "").lower()
    for preset in CALDAV_PRESETS:
        if any(host == h or host.endswith("." + h) for h in preset["hosts"]):
            return preset
    if "/remote.php/dav" in (server_url or "") or "nextcloud" in host:
        return CALDAV_PRESETS[2]
    return None


@functools.lru_cache(maxsize=4096)  # a listing of 10,000 rows says the same few things
def provider_label(provider: str, server_url: str = "") -> str:
    """'Fastmail', 'iCloud', 'Google Calendar', 'calendar feed', 'CalDAV'."""
    if provider == "caldav":
        preset = preset_for(server_url)
        if preset:
            return preset["name"]
    return PROVIDER_NAMES.get(provider, provider)


def _quoted(calendar: str | None) -> str:
    """A calendar's name as said in a sentence (it comes from the provider: one line, bounded)."""
    if not calendar:
        return "your appointments calendar"
    name = " ".join(str(calendar).split())
    return f"'{name[:77]}…'" if len(name) > 80 else f"'{name}'"


@functools.lru_cache(maxsize=4096)  # a listing of 10,000 rows says the same few things
def problem(
    status: str, provider: str, *, server_url: str = "", calendar: str | None = None, failing: bool = False, whose: str | None = None
) -> str:
    """One sentence that says what broke (empty for a connection that works).

    ``whose``: said about someone else, for support ("Grace Hopper's Fastmail calendar needs their
    new password"); without it, to the staff member ("Your Fastmail calendar needs your new password").
    """
    label = provider_label(provider, server_url)
    thing = label if label.endswith(("Calendar", "feed")) else f"{label} calendar"  # "Google Calendar", "Fastmail calendar"
    cal = _quoted(calendar)
    if whose:
        your, you, your_cal = f"{whose}'s", "them", "their"
        if not calendar:
            cal = f"{whose}'s appointments calendar"
    else:
        your, you, your_cal = "Your", "you", "your"
    if status == "relink_required":
        if provider == "ics":
            return f"{your} calendar feed address no longer works"
        if provider in ("google", "microsoft"):
            return f"{your} {label} connection needs {you} to sign in again"
        return f"{your} {thing} needs {your_cal} new password"
    if status == "calendar_missing":
        if calendar:
            return f"The calendar {cal} was deleted — choose another"
        return f"{your} appointments calendar was deleted — choose another"
    if status == "read_only":
        if provider == "ics":
            return "A calendar feed can only be read — choose a calendar calsync can write to"
        return f"Calsync can no longer add appointments to {cal} — it became read-only"
    if status == "unreachable":
        return f"{your} {thing} has not answered for a long time"
    if status == "pending":
        return f"{your} {thing} is connected; its first sync has not finished"
    if status == "stopped":
        return f"Sync with {your.lower() if not whose else your} {thing} is stopped"
    if failing:
        return f"{your} {thing} is not answering at the moment; calsync keeps trying"
    return ""


def waiting_phrase(count: int) -> str:
    """'3 appointments are waiting', '' when none wait."""
    count = int(count or 0)
    if count <= 0:
        return ""
    return "1 appointment is waiting" if count == 1 else f"{count} appointments are waiting"


@functools.lru_cache(maxsize=4096)  # a listing of 10,000 rows says the same few things
def headline(
    status: str,
    provider: str,
    *,
    server_url: str = "",
    calendar: str | None = None,
    waiting: int = 0,
    failing: bool = False,
    whose: str | None = None,
) -> str:
    """What broke and what waits: 'Your Fastmail calendar needs your new password — 3 appointments are waiting'."""
    said = problem(status, provider, server_url=server_url, calendar=calendar, failing=failing, whose=whose)
    waits = waiting_phrase(waiting)
    if said and waits:
        return f"{said} — {waits}"
    if waits:
        return waits[0].upper() + waits[1:]
    return said or "Your calendar is syncing"


@functools.lru_cache(maxsize=4096)  # a listing of 10,000 rows says the same few things
def staff_advice(status: str, provider: str, server_url: str = "") -> str:
    """What the staff member does next (Slack, pages, e-mail): plain, no keys, no commands."""
    label = provider_label(provider, server_url)
    if status == "relink_required":
        if provider == "ics":
            return "Paste the calendar's current feed address (it changes when the feed is reset or made private)."
        if provider in ("google", "microsoft"):
            return f"Sign in to {label} again and allow calsync access to your calendar."
        preset = preset_for(server_url)
        extra = " (an app password, if your account uses two-step sign-in)" if preset else ""
        return f"Enter your current {label} password{extra}."
    if status == "calendar_missing":
        return "Choose the calendar your appointments should go to."
    if status == "read_only":
        return "Choose a calendar calsync can write to, or ask your calendar administrator for write access."
    if status == "unreachable":
        return "Nothing to do on your side: calsync keeps retrying and tells you when it works again."
    if status == "pending":
        return "The first sync runs within minutes."
    if status == "stopped":
        return "Connect your calendar again to resume syncing."
    return ""


def duration(seconds: float) -> str:
    """'less than a minute', '5 minutes', '3 hours', '2 days': never '0.0 hours'."""
    seconds = max(0, int(seconds or 0))
    for size, word in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            n = seconds // size
            return f"{n} {word}" if n == 1 else f"{n} {word}s"
    return "less than a minute"


def _zone(name: str | None) -> dt.tzinfo:
    try:
        return zoneinfo.ZoneInfo(name or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        return dt.UTC


def zone_name(name: str | None) -> str:
    """The zone a time is labelled with ('Europe/Berlin'; 'UTC' for an unknown one)."""
    zone = _zone(name)
    return getattr(zone, "key", "UTC")


def local_time(value: dt.datetime | str | None, zone: str | None, *, label: bool = True) -> str:
    """A stored (UTC) time in the staff member's zone, labelled: '2026-12-02 09:00 CET (Europe/Berlin)'."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return str(value)
    tz = _zone(zone)
    local = utc(value).astimezone(tz)
    text = local.strftime("%Y-%m-%d %H:%M")
    if not label:
        return text
    abbrev = local.tzname() or ""
    name = zone_name(zone)
    if abbrev and abbrev != name and not abbrev.startswith(("+", "-")):
        return f"{text} {abbrev} ({name})"
    return f"{text} ({name})"


def webcal(url: str) -> str:
    """The subscribe form of a feed URL (calendar apps open webcal:// links)."""
    for scheme in ("https://", "http://"):
        if url.startswith(scheme):
            return "webcal://" + url[len(scheme) :]
    return url


SUBSCRIBE_HELP = (
    "To subscribe: open the webcal link on the device with your calendar app, or in Google Calendar "
    "choose Other calendars → From URL, in Outlook Add calendar → Subscribe from web, and paste the address. "
    "Keep it private: anyone with it can read your busy times."
)
