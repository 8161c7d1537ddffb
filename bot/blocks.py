"""Block Kit builders: data in, dicts out. No Slack calls, no rules."""

from __future__ import annotations

import datetime as dt
import json

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


def _when(value: str | None) -> str:
    if not value:
        return "never"
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{moment:%Y-%m-%d %H:%M} UTC>"


def help_blocks(support: bool) -> list[dict]:
    lines = [f"`/calsync {name}` — {text}" for name, text in SUBCOMMANDS]
    if support:
        lines += ["", "*Support:*"] + [f"`/calsync {name}` — {text}" for name, text in SUPPORT_SUBCOMMANDS]
    return [{"type": "section", "text": {"type": "mrkdwn", "text": "*Calsync commands*\n" + "\n".join(lines)}}]


def connection_line(row: dict) -> str:
    text = (f"*{row['id']}.* {provider_name(row['provider'])} · `{row['account']}` — {badge(row['status'], row.get('failing'))}"
            f"\n{row['reason']}. Last sync: {_when(row.get('last_sync_at'))}.")
    if row.get("destination") and row["status"] != "stopped":
        text += f" Appointments go to *{row['destination']}*."
    elif row["provider"] == "ics":
        text += " Busy times only (read-only)."
    if row.get("missed"):
        text += f" *{row['missed']} appointment(s) waiting.*"
    if row.get("errors"):
        text += f" *{row['errors']} appointment(s) could not be written* (support can see why)."
    if row["status"] == "stopped" and row.get("orphaned"):
        text += f" {row['orphaned']} appointment(s) were left behind when it stopped (support follows up)."
    return text


def status_blocks(rows: list[dict], whose: str = "Your") -> list[dict]:
    if not rows:
        return [{"type": "section", "text": {"type": "mrkdwn", "text": f"{whose} calendar connections: none yet. `/calsync connect` adds one."}}]
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{whose} calendar connections*"}}]
    for row in rows:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": connection_line(row)}})
    return blocks


def _buttons(payload: dict, relink_url: str, download_url: str, calendars: list[dict]) -> list[dict]:
    conn = str(payload["connection"])
    elements: list[dict] = []
    if relink_url:
        label = FIX_LABELS.get(payload.get("status", ""), "Relink")
        elements.append({"type": "button", "action_id": "calsync_relink_open", "text": {"type": "plain_text", "text": label},
                         "url": relink_url, "style": "primary"})
    elements.append({"type": "button", "action_id": "calsync_test", "value": conn, "text": {"type": "plain_text", "text": "Test connection"}})
    if download_url:
        elements.append({"type": "button", "action_id": "calsync_download_open", "url": download_url,
                         "text": {"type": "plain_text", "text": "Download missed (.ics)"}})
    if payload.get("status") == "calendar_missing" and calendars:
        elements.append({
            "type": "static_select",
            "action_id": "calsync_primary_select",
            "placeholder": {"type": "plain_text", "text": "Choose a new primary calendar"},
            "options": [{"text": {"type": "plain_text", "text": c["name"][:75]}, "value": f"{conn}:{c['id']}"} for c in calendars[:100]],
        })
    return elements


def alert_blocks(event: str, payload: dict, relink_url: str = "", download_url: str = "", calendars: list[dict] | None = None) -> list[dict]:
    """The DM for an opened incident or a reminder: what broke, since when, what waits, the fixes."""
    title = headline(event, payload)
    if event == "incident.reminder":
        title = "Reminder: " + title[0].lower() + title[1:]
    facts = [
        f"*What broke:* {payload.get('meaning', '')} — {payload.get('reason', '')}",
        f"*Account:* {provider_name(payload.get('provider', ''))} `{payload.get('account', '')}`",
        f"*Since:* {_when(payload.get('since'))}",
        f"*Appointments waiting:* {payload.get('missed', 0)}",
    ]
    advice = STATUS_ADVICE.get(payload.get("status", ""), "")
    blocks = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(facts)}},
    ]
    if advice:
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": advice}]})
    blocks.append({"type": "actions", "block_id": f"calsync_fix_{payload['connection']}",
                   "elements": _buttons(payload, relink_url, download_url, calendars or [])})
    return blocks


def resolved_blocks(payload: dict) -> list[dict]:
    delivered = int(payload.get("delivered") or 0)
    text = (f"✅ *Reconnected* at {_when(payload.get('resolved_at'))}: your {provider_name(payload.get('provider', ''))} "
            f"account `{payload.get('account', '')}` works again; {delivered} missed appointment(s) delivered.")
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


def escalation_blocks(payload: dict) -> list[dict]:
    text = (f"🚨 *{headline('incident.escalated', payload)}*\n"
            f"Connection {payload.get('connection')} of {payload.get('staff')} — {badge(payload.get('status', ''))} "
            f"since {_when(payload.get('since'))}: {payload.get('reason', '')}. "
            f"Appointments waiting: {payload.get('missed', 0)}.")
    return [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


def relink_link_blocks(payload: dict, relink_url: str) -> list[dict]:
    text = (f"Here is a new link to reconnect your {provider_name(payload.get('provider', ''))} account "
            f"`{payload.get('account', '')}` (it works once; earlier links no longer work).")
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": text}},
        {"type": "actions", "elements": [{"type": "button", "action_id": "calsync_relink_open", "style": "primary",
                                          "text": {"type": "plain_text", "text": "Relink"}, "url": relink_url}]},
    ]


def test_result_blocks(result: dict) -> list[dict]:
    lines = [f"{'✅' if c['ok'] else '❌'} {c['check']}: {c['detail']}" for c in result["checks"]]
    head = f"*Connection {result['connection']}:* {badge(result['status'])} — {result['reason']}"
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": head + "\n" + "\n".join(lines)}}]
    if result.get("provider_answer"):
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": "Provider's answer: ```" + result["provider_answer"][:500] + "```"}]})
    return blocks


def stop_modal(plan: dict) -> dict:
    lines = [f"*What will happen:* {plan['effect']}."]
    if plan.get("warning"):
        lines.append(f"⚠️ {plan['warning']}.")
    if plan["needs_force"]:
        lines.append("Relinking first lets calsync remove its events and deliver what waits. If you stop now, "
                     "they are recorded for support, and the waiting appointments stay downloadable.")
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)}}]
    options = [{"text": {"type": "plain_text", "text": "Keep calsync's events on the calendar"}, "value": "keep_events"}]
    if plan["needs_force"]:
        left = []
        if plan["events_on_calendar"]:
            left.append(f"{plan['events_on_calendar']} event(s) on the calendar")
        if plan.get("waiting"):
            left.append(f"{plan['waiting']} appointment(s) undelivered")
        options.append({"text": {"type": "plain_text", "text": f"Stop anyway, leaving {' and '.join(left)}"[:75]},
                        "value": "force"})
    blocks.append({"type": "input", "block_id": "options", "optional": True, "label": {"type": "plain_text", "text": "Options"},
                   "element": {"type": "checkboxes", "action_id": "choice", "options": options}})
    return {
        "type": "modal",
        "callback_id": "calsync_stop",
        "private_metadata": json.dumps({"connection": plan["connection"]}),
        "title": {"type": "plain_text", "text": "Stop sync?"},
        "submit": {"type": "plain_text", "text": "Stop sync"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


def feed_reset_modal(staff_email: str) -> dict:
    return {
        "type": "modal",
        "callback_id": "calsync_feed_reset",
        "private_metadata": json.dumps({"staff": staff_email}),
        "title": {"type": "plain_text", "text": "Reset feed URL?"},
        "submit": {"type": "plain_text", "text": "Reset"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text":
                    "A new private feed URL is made and the current one stops working at once: calendar apps "
                    "subscribed to it stop updating until you subscribe to the new one."}}],
    }


def primary_modal(conn_id: int, calendars: list[dict]) -> dict:
    options = [{"text": {"type": "plain_text", "text": c["name"][:75]}, "value": str(c["id"])}
               for c in calendars if c["writable"]][:100]
    return {
        "type": "modal",
        "callback_id": "calsync_primary",
        "private_metadata": json.dumps({"connection": conn_id}),
        "title": {"type": "plain_text", "text": "Primary calendar"},
        "submit": {"type": "plain_text", "text": "Use this calendar"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [{"type": "input", "block_id": "calendar", "label": {"type": "plain_text", "text": "Write appointments to"},
                    "element": {"type": "static_select", "action_id": "choice", "options": options}}],
    }


def home_view(rows: list[dict], name: str) -> dict:
    blocks = [{"type": "header", "text": {"type": "plain_text", "text": "Your calendar connections"}}]
    if not rows:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"Hello {name}: no connection yet. `/calsync connect` adds one."}})
    for row in rows:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": connection_line(row)}})
        if row["status"] != "stopped":
            blocks.append({"type": "actions", "elements": [
                {"type": "button", "action_id": "calsync_test", "value": str(row["id"]), "text": {"type": "plain_text", "text": "Test connection"}},
                {"type": "button", "action_id": "calsync_relink", "value": str(row["id"]), "text": {"type": "plain_text", "text": "Relink"}},
                {"type": "button", "action_id": "calsync_stop_open", "value": str(row["id"]), "style": "danger", "text": {"type": "plain_text", "text": "Stop sync"}},
            ]})
        blocks.append({"type": "divider"})
    return {"type": "home", "blocks": blocks}
