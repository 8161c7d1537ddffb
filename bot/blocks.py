"""Block Kit builders: data in, dicts out. No Slack calls, no rules.

Raw values go in; mrkdwn is composed with ``md`` (bot/mrkdwn.py), which
escapes every value, and ``plain`` text is never escaped, only clipped. Bot
tokens (``<!date^…>``) are ``Mrkdwn`` already and pass through untouched.
"""

from __future__ import annotations

import datetime as dt
import json

from bot.mrkdwn import Mrkdwn, clip, lines, md
from core.messages import STATUS_ADVICE
from core.notices import headline, provider_name

BADGES = {
    "active": "🟢 Active",
    "pending": "🟡 Pending",
    "read_only": "🟠 Read only",
    "relink_required": "🔴 Relink required",
    "calendar_missing": "🔴 Calendar missing",
    "unreachable": "🟠 Unreachable",
    "stopped": "⚪ Stopped",
}

SUBCOMMANDS = [
    ("status", "your connections, their status and last sync"),
    ("test [N]", "test connection N: credentials, read, write, primary calendar"),
    ("relink [N]", "a fresh single-use link to reconnect connection N"),
    ("connect", "connect a calendar (opens a page)"),
    ("feed", "your private calendar-feed URL (only you see it)"),
    ("feed reset", "a new feed URL; the old one stops working (asks first)"),
    ("download [N]", "the appointments missed while connection N was broken, as .ics"),
    ("stop [N]", "stop syncing connection N (shows what will happen, asks first)"),
    ("primary [N]", "choose the calendar appointments are written to"),
    ("help", "this list"),
]
SUPPORT_SUBCOMMANDS = [
    ("<command> @person | email", "any command above on someone else's connection"),
    ("support status", "every broken connection"),
]


MAX_ROWS = 45  # a message holds at most 50 blocks
MAX_HOME_ROWS = 32  # three blocks a row; a Home tab holds at most 100

FIX_LABELS = {
    "relink_required": "Relink",
    "calendar_missing": "Choose a calendar",
    "read_only": "Fix permissions",
    "unreachable": "Details and test",
}


def badge(status: str, failing: bool = False) -> str:
    if failing and status == "active":
        return "🟠 Active, failing"
    return BADGES.get(status, status)


def section(text) -> dict:
    """A mrkdwn section; a plain ``str`` is escaped on the way out, a ``Mrkdwn`` is kept."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def context(text) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def plain(text, limit: int = 75) -> dict:
    """Shown literally by Slack: never escaped, but clipped so a long name cannot get the message refused."""
    return {"type": "plain_text", "text": clip(text, limit)}


def button(action_id: str, label: str, **fields) -> dict:
    return {"type": "button", "action_id": action_id, "text": plain(label), **fields}


def _when(value: str | None) -> Mrkdwn:
    if not value:
        return Mrkdwn("never")
    try:
        moment = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return md("{}", value)
    # The bot's own token, of numbers only: a Mrkdwn so it is not escaped.
    return Mrkdwn(f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{moment:%Y-%m-%d %H:%M} UTC>")


def help_blocks(support: bool) -> list[dict]:
    rows = [md("`/calsync {}` — {}", name, text) for name, text in SUBCOMMANDS]
    if support:
        rows += ["", Mrkdwn("*Support:*")] + [md("`/calsync {}` — {}", name, text) for name, text in SUPPORT_SUBCOMMANDS]
    return [section(lines(Mrkdwn("*Calsync commands*"), *rows))]


def connection_line(row: dict) -> Mrkdwn:
    text = md("*{}.* {} · `{}` — {}\n{}. Last sync: {}.", row["id"], provider_name(row["provider"]), clip(row["account"], 200),
              badge(row["status"], row.get("failing")), clip(row["reason"], 500), _when(row.get("last_sync_at")))
    if row.get("destination") and row["status"] != "stopped":
        text += md(" Appointments go to *{}*.", clip(row["destination"], 200))
    elif row["provider"] == "ics":
        text += Mrkdwn(" Busy times only (read-only).")
    if row.get("missed"):
        text += md(" *{} appointment(s) waiting.*", row["missed"])
    if row.get("errors"):
        text += md(" *{} appointment(s) could not be written* (support can see why).", row["errors"])
    if row["status"] == "stopped" and row.get("orphaned"):
        text += md(" {} appointment(s) were left behind when it stopped (support follows up).", row["orphaned"])
    return text


def status_blocks(rows: list[dict], whose: str = "Your") -> list[dict]:
    if not rows:
        return [section(md("{} calendar connections: none yet. `/calsync connect` adds one.", whose))]
    shown = rows[:MAX_ROWS]
    blocks = [section(md("*{}*", f"{whose} calendar connections"))] + [section(connection_line(row)) for row in shown]
    return blocks + _more(rows, shown)


def _more(rows: list, shown: list) -> list[dict]:
    """Slack refuses a whole message over its block limit: the rest is counted, not dropped silently."""
    left = len(rows) - len(shown)
    return [context(md("…and {} more: `run_console.py status` lists them all.", left))] if left else []


def _options(calendars: list[dict], value) -> list[dict]:
    return [{"text": plain(c["name"]), "value": value(c)} for c in calendars[:100]]


def _buttons(payload: dict, relink_url: str, download_url: str, calendars: list[dict]) -> list[dict]:
    conn = str(payload["connection"])
    elements: list[dict] = []
    if relink_url:
        label = FIX_LABELS.get(payload.get("status", ""), "Relink")
        elements.append(button("calsync_relink_open", label, url=relink_url, style="primary"))
    elements.append(button("calsync_test", "Test connection", value=conn))
    if download_url:
        elements.append(button("calsync_download_open", "Download missed (.ics)", url=download_url))
    if payload.get("status") == "calendar_missing" and calendars:
        elements.append({
            "type": "static_select",
            "action_id": "calsync_primary_select",
            "placeholder": plain("Choose a new primary calendar", 150),
            "options": _options(calendars, lambda c: f"{conn}:{c['id']}"),
        })
    return elements


def alert_blocks(event: str, payload: dict, relink_url: str = "", download_url: str = "", calendars: list[dict] | None = None) -> list[dict]:
    """The DM for an opened incident or a reminder: what broke, since when, what waits, the fixes."""
    title = headline(event, payload)
    if event == "incident.reminder":
        title = "Reminder: " + title[0].lower() + title[1:]
    facts = lines(
        md("*What broke:* {} — {}", payload.get("meaning", ""), clip(payload.get("reason", ""), 500)),
        md("*Account:* {} `{}`", provider_name(payload.get("provider", "")), clip(payload.get("account", ""), 200)),
        md("*Since:* {}", _when(payload.get("since"))),
        md("*Appointments waiting:* {}", payload.get("missed", 0)),
    )
    advice = STATUS_ADVICE.get(payload.get("status", ""), "")
    blocks = [{"type": "header", "text": plain(title, 150)}, section(facts)]
    if advice:
        blocks.append(context(advice))
    blocks.append({"type": "actions", "block_id": f"calsync_fix_{payload['connection']}",
                   "elements": _buttons(payload, relink_url, download_url, calendars or [])})
    return blocks


def resolved_blocks(payload: dict) -> list[dict]:
    delivered = int(payload.get("delivered") or 0)
    return [section(md("✅ *Reconnected* at {}: your {} account `{}` works again; {} missed appointment(s) delivered.",
                       _when(payload.get("resolved_at")), provider_name(payload.get("provider", "")),
                       clip(payload.get("account", ""), 200), delivered))]


def escalation_blocks(payload: dict) -> list[dict]:
    return [section(md("🚨 *{}*\nConnection {} of {} — {} since {}: {}. Appointments waiting: {}.",
                       clip(headline("incident.escalated", payload), 300), payload.get("connection"),
                       clip(payload.get("staff"), 200), badge(payload.get("status", "")), _when(payload.get("since")),
                       clip(payload.get("reason", ""), 500), payload.get("missed", 0)))]


def relink_link_blocks(payload: dict, relink_url: str) -> list[dict]:
    text = md("Here is a new link to reconnect your {} account `{}` (it works once; earlier links no longer work).",
              provider_name(payload.get("provider", "")), clip(payload.get("account", ""), 200))
    return [section(text), {"type": "actions", "elements": [button("calsync_relink_open", "Relink", style="primary", url=relink_url)]}]


def connect_blocks(url: str) -> list[dict]:
    return [section("Connect a calendar (CalDAV or an iCalendar URL) on this page; the link works once, for 24 hours."),
            {"type": "actions", "elements": [button("calsync_connect_open", "Connect a calendar", style="primary", url=url)]}]


def download_blocks(conn_id: int, count: int, url: str) -> list[dict]:
    text = md("{} appointment(s) missed while connection {} was broken. The file is a snapshot: it will not update. "
              "You may import it into your calendar: calsync recognises these appointments after the repair "
              "and updates them in place, without duplicates.", count, conn_id)
    return [section(text), {"type": "actions", "elements": [button("calsync_download_open", "Download missed (.ics)", url=url)]}]


def test_result_blocks(result: dict) -> list[dict]:
    checks = [md("{} {}: {}", "✅" if c["ok"] else "❌", c["check"], clip(c["detail"], 300)) for c in result["checks"]]
    head = md("*Connection {}:* {} — {}", result["connection"], badge(result["status"]), clip(result["reason"], 500))
    blocks = [section(lines(head, *checks))]
    if result.get("provider_answer"):
        blocks.append(context(md("Provider's answer: ```{}```", clip(result["provider_answer"], 500))))
    return blocks


def stop_modal(plan: dict) -> dict:
    said = [md("*What will happen:* {}.", plan["effect"])]
    if plan.get("warning"):
        said.append(md("⚠️ {}.", plan["warning"]))
    if plan["needs_force"]:
        said.append("Relinking first lets calsync remove its events and deliver what waits. If you stop now, "
                    "they are recorded for support, and the waiting appointments stay downloadable.")
    options = [{"text": plain("Keep calsync's events on the calendar"), "value": "keep_events"}]
    if plan["needs_force"]:
        left = []
        if plan["events_on_calendar"]:
            left.append(f"{plan['events_on_calendar']} event(s) on the calendar")
        if plan.get("waiting"):
            left.append(f"{plan['waiting']} appointment(s) undelivered")
        options.append({"text": plain(f"Stop anyway, leaving {' and '.join(left)}"), "value": "force"})
    blocks = [section(lines(*said)),
              {"type": "input", "block_id": "options", "optional": True, "label": plain("Options", 2000),
               "element": {"type": "checkboxes", "action_id": "choice", "options": options}}]
    return _modal("calsync_stop", {"connection": plan["connection"]}, "Stop sync?", "Stop sync", blocks)


def _modal(callback_id: str, meta: dict, title: str, submit: str, blocks: list[dict]) -> dict:
    return {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": json.dumps(meta),
        "title": plain(title, 24),
        "submit": plain(submit, 24),
        "close": plain("Cancel", 24),
        "blocks": blocks,
    }


def feed_reset_modal(staff_email: str) -> dict:
    return _modal("calsync_feed_reset", {"staff": staff_email}, "Reset feed URL?", "Reset", [section(
        "A new private feed URL is made and the current one stops working at once: calendar apps "
        "subscribed to it stop updating until you subscribe to the new one.")])


def primary_modal(conn_id: int, calendars: list[dict]) -> dict:
    options = _options([c for c in calendars if c["writable"]], lambda c: str(c["id"]))
    return _modal("calsync_primary", {"connection": conn_id}, "Primary calendar", "Use this calendar", [
        {"type": "input", "block_id": "calendar", "label": plain("Write appointments to", 2000),
         "element": {"type": "static_select", "action_id": "choice", "options": options}}])


def home_view(rows: list[dict], name: str) -> dict:
    blocks = [{"type": "header", "text": plain("Your calendar connections", 150)}]
    if not rows:
        blocks.append(section(md("Hello {}: no connection yet. `/calsync connect` adds one.", clip(name, 200))))
    shown = rows[:MAX_HOME_ROWS]
    for row in shown:
        blocks.append(section(connection_line(row)))
        if row["status"] != "stopped":
            conn = str(row["id"])
            blocks.append({"type": "actions", "elements": [
                button("calsync_test", "Test connection", value=conn),
                button("calsync_relink", "Relink", value=conn),
                button("calsync_stop_open", "Stop sync", value=conn, style="danger"),
            ]})
        blocks.append({"type": "divider"})
    return {"type": "home", "blocks": blocks + _more(rows, shown)}
