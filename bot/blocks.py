"""Block Kit builders: data in, dicts out. No Slack calls, no rules.

Raw values go in; mrkdwn is composed with ``md`` (bot/mrkdwn.py), which
escapes every value, and ``plain`` text is never escaped, only clipped. Bot
tokens (``<!date^…>``) are ``Mrkdwn`` already and pass through untouched.
The words about a connection (what broke, what waits, what to do) are
core.wording's, the same on every surface.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from bot.mrkdwn import Mrkdwn, clip, lines, md
from core import wording
from core.messages import meaning

BADGES = {
    "active": "🟢 Active",
    "pending": "🟡 Pending",
    "read_only": "🟠 Read only",
    "relink_required": "🔴 Relink required",
    "calendar_missing": "🔴 Calendar missing",
    "unreachable": "🟠 Unreachable",
    "stopped": "⚪ Stopped",
}
FAILING = "active_failing"  # the group of active connections whose recent runs fail

SUBCOMMANDS = [
    ("status", "your connections, their status and last sync"),
    ("test [N]", "test connection N: credentials, read, write, primary calendar"),
    ("relink [N]", "a fresh single-use link to reconnect connection N"),
    ("connect", "connect a calendar (opens a page)"),
    ("feed", "your private calendar-feed URL (only you see it)"),
    ("feed reset", "a new feed URL; the old one stops working (asks first)"),
    ("download [N]", "the appointments missed while connection N was broken, as .ics"),
    ("stop [N]", "stop syncing connection N (shows what will happen, asks first)"),
    ("primary [N]", "choose the calendar appointments are written to (syncs at once)"),
    ("calendars [N]", "which calendars block your time and which also get your appointments"),
    ("help", "this list"),
]
SUPPORT_SUBCOMMANDS = [
    ("<command> @person | email", "any command above on someone else's connection"),
    ("support status", "every broken connection with its staff member, grouped by status"),
]


MAX_ROWS = 45  # a message holds at most 50 blocks
MAX_HOME_ROWS = 30  # three blocks a row, and the feed and connect blocks; a Home tab holds at most 100
WAITING_SHOWN = 5  # waiting appointments an alert lists by name; the rest are counted
SUBMIT_LIMIT = 24  # a modal's submit button (Block Kit: view object)
KEEP_ACTION = "calsync_stop_keep"  # the stop modal's "keep events" box: ticking it redraws the modal

FIX_LABELS = {
    "relink_required": "Relink",
    "calendar_missing": "Choose a calendar",
    "read_only": "Fix permissions",
    "unreachable": "Details and test",
}
PICKER_STATUSES = ("calendar_missing", "read_only")
# The order support reads broken connections in: what staff must fix first.
GROUP_ORDER = ("relink_required", "calendar_missing", "read_only", "unreachable", FAILING, "pending")


def badge(status: str, failing: bool | None = False) -> str:
    """``failing``: recent runs of an active connection failed (None, from a row without the field: no)."""
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


def _moment(value) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _when(value, zone: str | None = None) -> Mrkdwn:
    """A time Slack shows in the reader's own zone; the fallback (old clients, notifications) is in
    the staff member's zone, labelled (core.wording.local_time), or UTC."""
    if not value:
        return Mrkdwn("never")
    moment = _moment(value)
    if moment is None:
        return md("{}", value)
    fallback = wording.local_time(moment, zone) if zone else f"{moment.astimezone(dt.UTC):%Y-%m-%d %H:%M} UTC"
    # The bot's own token, of numbers and a zone label only: a Mrkdwn so it is not escaped.
    return Mrkdwn(f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{esc_token(fallback)}>")


def esc_token(text: str) -> str:
    """A fallback inside a ``<!date…|…>`` token: no character that could end or split it."""
    return "".join(ch for ch in text if ch not in "<>|&")


def help_blocks(support: bool) -> list[dict]:
    rows = [md("`/calsync {}` — {}", name, text) for name, text in SUBCOMMANDS]
    if support:
        rows += [Mrkdwn(""), Mrkdwn("*Support:*")] + [md("`/calsync {}` — {}", name, text) for name, text in SUPPORT_SUBCOMMANDS]
    return [section(lines(Mrkdwn("*Calsync commands*"), *rows))]


def _provider(row: dict) -> str:
    return row.get("provider_name") or wording.provider_label(row.get("provider", ""), row.get("server", "") or "")


def _own_reason(row: dict) -> str:
    """The provider's or calsync's own reason, when it says more than the status's meaning."""
    reason = (row.get("reason") or "").strip()
    return "" if not reason or reason == meaning(row.get("status", "")) else reason


def connection_line(row: dict, staff: bool = False) -> Mrkdwn:
    """One connection: number, provider, account, badge; what broke (plain words) and what waits.

    ``staff``: name the staff member (support's lists)."""
    head = md("*{}.* {} · `{}` — {}", row["id"], _provider(row), clip(row["account"], 200), badge(row["status"], row.get("failing")))
    if staff:
        head += md("\n{} ({})", clip(row.get("staff_name") or "", 200), clip(row.get("staff") or "", 200))
    said = row.get("problem") or ""
    reason = _own_reason(row)
    if said and reason:
        text = head + md("\n{}: {}.", said, clip(reason, 500))
    elif said or reason:
        text = head + md("\n{}.", clip(said or reason, 500))
    else:
        text = head + md("\n{}.", clip(row.get("reason") or meaning(row["status"]), 500))
    text += md(" Last sync: {}.", _when(row.get("last_sync_at"), row.get("timezone")))
    if row.get("destination") and row["status"] != "stopped":
        text += md(" Appointments go to *{}*.", clip(row["destination"], 200))
    elif row["provider"] == "ics":
        text += Mrkdwn(" Busy times only (read-only).")
    if row.get("missed"):
        text += md(" *{}.*", wording.waiting_phrase(row["missed"]))
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


def _group(row: dict) -> str:
    return FAILING if row["status"] == "active" and row.get("failing") else row["status"]


def support_status_blocks(rows: list[dict]) -> list[dict]:
    """Support's list: the broken connections grouped by status, each naming its staff member."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(_group(row), []).append(row)
    order = [g for g in GROUP_ORDER if g in groups] + [g for g in groups if g not in GROUP_ORDER]
    blocks = [section(md("*Connections that need attention: {}*", len(rows)))]
    shown = 0
    for group in order:
        members = groups[group]
        if len(blocks) + 2 > MAX_ROWS:
            break
        title = badge("active", True) if group == FAILING else badge(group)
        blocks.append({"type": "header", "text": plain(f"{title} ({len(members)})", 150)})
        for row in members:
            if len(blocks) >= MAX_ROWS:
                break
            blocks.append(section(connection_line(row, staff=True)))
            shown += 1
    left = len(rows) - shown
    if left:
        blocks.append(context(md("…and {} more: `run_console.py status` lists them all.", left)))
    return blocks


def _more(rows: list, shown: list) -> list[dict]:
    """Slack refuses a whole message over its block limit: the rest is counted, not dropped silently."""
    left = len(rows) - len(shown)
    return [context(md("…and {} more: `run_console.py status` lists them all.", left))] if left else []


def choosable(calendars: list[dict], status: str = "") -> list[dict]:
    """The calendars a picker offers: ``choosable`` ones (writable, not the deleted primary; rows
    without the key: ``writable``); for a read-only primary, the others."""
    found = [c for c in calendars if c.get("choosable", c.get("writable"))]
    if status == "read_only":
        found = [c for c in found if not c.get("destination")]
    return found


def _options(calendars: list[dict], value) -> list[dict]:
    return [{"text": plain(c["name"]), "value": value(c)} for c in calendars[:100]]


def calendar_picker(conn_id, calendars: list[dict]) -> dict:
    """The select that makes a calendar the primary at once (alerts and App Home)."""
    return {
        "type": "static_select",
        "action_id": "calsync_primary_select",
        "placeholder": plain("Choose a calendar for your appointments", 150),
        "options": _options(calendars, lambda c: f"{conn_id}:{c['id']}"),
    }


def _buttons(payload: dict, relink_url: str, download_url: str, calendars: list[dict]) -> list[dict]:
    conn = str(payload["connection"])
    elements: list[dict] = []
    status = payload.get("status", "")
    if status in PICKER_STATUSES and calendars:
        elements.append(calendar_picker(conn, calendars))
    if relink_url:
        if status in PICKER_STATUSES and calendars:  # the picker comes first; the page is the other way
            elements.append(button("calsync_relink_open", "Open the repair page", url=relink_url))
        else:
            elements.append(button("calsync_relink_open", FIX_LABELS.get(status, "Relink"), url=relink_url, style="primary"))
    elements.append(button("calsync_test", "Test connection", value=conn))
    if download_url:
        elements.append(button("calsync_download_open", "Download missed (.ics)", url=download_url))
    return elements


def alert_title(event: str, payload: dict) -> str:
    """The header and the notification text: what broke and what waits (core.wording.headline)."""
    title = payload.get("headline") or wording.headline(
        payload.get("status", ""),
        payload.get("provider", ""),
        server_url=payload.get("server") or "",
        calendar=payload.get("calendar"),
        waiting=int(payload.get("missed") or 0),
    )
    if event == "incident.reminder":
        title = "Reminder: " + title[:1].lower() + title[1:]
    return title


def waiting_lines(payload: dict) -> Mrkdwn | None:
    """The appointments that wait, the first few by name and time, the rest counted; None when none wait."""
    count = int(payload.get("missed") or 0)
    listed = [a for a in (payload.get("waiting") or []) if isinstance(a, dict)][:WAITING_SHOWN]
    if count <= 0 and not listed:
        return None
    count = max(count, len(listed))
    zone = payload.get("timezone")
    rows = [md("• {} — {}", _when(a.get("start"), zone), clip(a.get("subject") or "(no title)", 200)) for a in listed]
    if count > len(listed):
        rows.append(md("+{} more", count - len(listed)) if listed else md("{}", wording.waiting_phrase(count)))
    return lines(md("*Waiting to be added to your calendar ({}):*", count), *rows)


def alert_blocks(
    event: str, payload: dict, relink_url: str = "", download_url: str = "", calendars: list[dict] | None = None
) -> list[dict]:
    """The DM for an opened incident or a reminder: what broke and what waits (the header), what to do,
    the waiting appointments, the fixes. The reason is said once: the provider's own words, as a detail."""
    zone = payload.get("timezone")
    said = []
    if payload.get("todo"):
        said.append(md("{}", payload["todo"]))
    said += [
        md("*Account:* {} `{}`", _provider(payload), clip(payload.get("account", ""), 200)),
        md("*Since:* {}", _when(payload.get("since"), zone)),
    ]
    blocks = [{"type": "header", "text": plain(alert_title(event, payload), 150)}, section(lines(*said))]
    waits = waiting_lines(payload)
    if waits is not None:
        blocks.append(section(waits))
    reason = _own_reason(payload)
    if reason:
        blocks.append(context(md("Details: {}", clip(reason, 500))))
    blocks.append(
        {
            "type": "actions",
            "block_id": f"calsync_fix_{payload['connection']}",
            "elements": _buttons(payload, relink_url, download_url, calendars or []),
        }
    )
    return blocks


def resolved_blocks(payload: dict) -> list[dict]:
    delivered = int(payload.get("delivered") or 0)
    return [
        section(
            md(
                "✅ *Reconnected* at {}: your {} account `{}` works again; {} missed appointment(s) delivered.",
                _when(payload.get("resolved_at"), payload.get("timezone")),
                _provider(payload),
                clip(payload.get("account", ""), 200),
                delivered,
            )
        )
    ]


def escalation_blocks(payload: dict, title: str) -> list[dict]:
    said = payload.get("problem") or payload.get("meaning") or ""
    return [
        section(
            md(
                "🚨 *{}*\nConnection {} of {} ({}) — {} since {}: {}. {}. Appointments waiting: {}.",
                clip(title, 300),
                payload.get("connection"),
                clip(payload.get("staff_name") or "", 200),
                clip(payload.get("staff"), 200),
                badge(payload.get("status", "")),
                _when(payload.get("since")),
                clip(said, 300),
                clip(payload.get("reason", ""), 500),
                payload.get("missed", 0),
            )
        )
    ]


def relink_link_blocks(payload: dict, relink_url: str) -> list[dict]:
    text = md(
        "Here is a new link to reconnect your {} account `{}` (it works once; earlier links no longer work).",
        _provider(payload),
        clip(payload.get("account", ""), 200),
    )
    return [section(text), {"type": "actions", "elements": [button("calsync_relink_open", "Relink", style="primary", url=relink_url)]}]


def connect_blocks(url: str) -> list[dict]:
    return [
        section("Connect a calendar (CalDAV or an iCalendar URL) on this page; the link works once, for 24 hours."),
        {"type": "actions", "elements": [button("calsync_connect_open", "Connect a calendar", style="primary", url=url)]},
    ]


def download_blocks(conn_id: int, count: int, url: str) -> list[dict]:
    text = md(
        "{} appointment(s) missed while connection {} was broken. The file is a snapshot: it will not update. "
        "You may import it into your calendar: calsync recognises these appointments after the repair "
        "and updates them in place, without duplicates.",
        count,
        conn_id,
    )
    return [section(text), {"type": "actions", "elements": [button("calsync_download_open", "Download missed (.ics)", url=url)]}]


def feed_blocks(url: str, title: str = "Your private calendar feed") -> list[dict]:
    """The private feed URL, its webcal:// subscribe form and how to subscribe (App Home, `/calsync feed`)."""
    return [
        section(md("*{}* (keep it to yourself)\n{}\nSubscribe link: `{}`", clip(title, 300), url, wording.webcal(url))),
        context(md("{}", wording.SUBSCRIBE_HELP)),
    ]


def test_result_blocks(result: dict) -> list[dict]:
    checks = [md("{} {}: {}", "✅" if c["ok"] else "❌", c["check"], clip(c["detail"], 300)) for c in result["checks"]]
    head = md("*Connection {}:* {} — {}", result["connection"], badge(result["status"]), clip(result["reason"], 500))
    blocks = [section(lines(head, *checks))]
    if result.get("provider_answer"):
        blocks.append(context(md("Provider's answer: ```{}```", clip(result["provider_answer"], 500))))
    return blocks


def primary_result(conn_id, result: dict) -> str:
    """What choosing a primary calendar did: it syncs at once (core.actions.set_destination)."""
    name = result.get("primary") or ""
    report = result.get("sync") or {}
    text = f"Appointments of connection {conn_id} now go to {name!r}. "
    outcome = report.get("outcome")
    if outcome == "busy":
        text += "It is being synced right now; what waits is written within minutes. "
    elif outcome in ("failed", "transient"):
        text += f"The sync right after failed: {report.get('error') or report.get('reason') or 'no answer'}. "
    elif report:
        text += f"Synced at once: {int(report.get('created') or 0)} appointment(s) written. "
    text += f"Status: {badge(result['status'], result.get('failing'))}"
    waits = wording.waiting_phrase(result.get("missed") or 0)
    return text + (f"; {waits}." if waits else ".")


def _count(n: int, one: str, many: str) -> str:
    return f"1 {one}" if n == 1 else f"{n} {many}"


def stop_result(conn_id, result: dict) -> str:
    """What stopping did, in sentences."""
    said = [f"Sync of connection {conn_id} stopped."]
    if result.get("removed"):
        said.append(f"{_count(result['removed'], 'event was', 'events were')} removed from the calendar.")
    if result.get("kept"):
        said.append(f"{_count(result['kept'], 'event stays', 'events stay')} on the calendar, as you chose.")
    stranded = len(result.get("waiting_orphaned") or [])
    left = int(result.get("orphaned") or 0) - stranded
    if left > 0:
        said.append(f"{_count(left, 'event', 'events')} calsync could not remove stay on the calendar; support follows up.")
    if stranded:
        said.append(
            f"{_count(stranded, 'appointment that waited never reached', 'appointments that waited never reached')} "
            f"the calendar; `/calsync download {conn_id}` gives them as an .ics file."
        )
    if result.get("warning"):
        said.append(result["warning"][:1].upper() + result["warning"][1:] + ".")
    said.append("Calsync forgot what it stored to reach this calendar; `/calsync connect` connects it again.")
    return " ".join(said)


def _submit_label(label: str) -> str:
    """The confirm button's words within Slack's 24 characters ("Stop and remove 12 events" is 25)."""
    if len(label) <= SUBMIT_LIMIT:
        return label
    short = label.replace("Stop and ", "Stop, ", 1)
    return short if len(short) <= SUBMIT_LIMIT else "Stop sync"


def _plan_sentences(plan: dict) -> list[str]:
    if plan.get("sentences"):
        return list(plan["sentences"])
    said = [plan["effect"][:1].upper() + plan["effect"][1:] + "."]
    if plan.get("warning"):
        said.append(plan["warning"][:1].upper() + plan["warning"][1:] + ".")
    return said


def _confirm_label(plan: dict, keep: bool) -> str:
    if plan.get("confirm_label"):
        return plan["confirm_label"]
    events = plan.get("events_on_calendar") or 0
    if plan.get("needs_force"):
        return "Stop anyway"
    if events:
        return f"Stop and {'keep' if keep else 'remove'} {events} event{'s' if events != 1 else ''}"
    return "Stop sync"


def stop_modal(plan: dict, keep: bool = False) -> dict:
    """Sentences of what will happen; the confirm button says what it does. Ticking "keep" redraws
    the modal (``dispatch_action``) so the sentences and the button follow the choice."""
    label = _confirm_label(plan, keep)
    said = [md("{}", s) for s in _plan_sentences(plan)]
    if plan.get("shared_with"):  # support only: who else syncs the account
        said.append(md("Also synced by: {}.", ", ".join(plan["shared_with"])))
    blocks = [section(lines(*said))]
    if plan.get("needs_force"):
        blocks.append(
            context(
                "The waiting appointments stay listed for support and downloadable. "
                "Relinking first lets calsync tidy up and deliver them instead."
            )
        )
    if plan.get("events_on_calendar"):
        keep_option = {"text": plain("Keep calsync's events on the calendar"), "value": "keep_events"}
        element = {"type": "checkboxes", "action_id": KEEP_ACTION, "options": [keep_option]}
        if keep:
            element["initial_options"] = [keep_option]
        blocks.append(
            {
                "type": "input",
                "block_id": "options",
                "optional": True,
                "dispatch_action": True,
                "label": plain("Options", 2000),
                "element": element,
            }
        )
    meta = {"connection": plan["connection"], "keep": keep, "force": bool(plan.get("needs_force"))}
    return _modal("calsync_stop", meta, "Stop sync?", _submit_label(label), blocks)


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
    return _modal(
        "calsync_feed_reset",
        {"staff": staff_email},
        "Reset feed URL?",
        "Reset",
        [
            section(
                "A new private feed URL is made and the current one stops working at once: calendar apps "
                "subscribed to it stop updating until you subscribe to the new one."
            )
        ],
    )


def primary_modal(conn_id: int, calendars: list[dict], status: str = "") -> dict:
    offered = choosable(calendars, status)
    options = _options(offered, lambda c: str(c["id"]))
    element: dict[str, Any] = {"type": "static_select", "action_id": "choice", "options": options}
    current = next((o for o, c in zip(options, offered) if c.get("destination")), None)
    if current is not None:
        element["initial_option"] = current
    return _modal(
        "calsync_primary",
        {"connection": conn_id},
        "Primary calendar",
        "Use and sync now",
        [
            {"type": "input", "block_id": "calendar", "label": plain("Write appointments to", 2000), "element": element},
            context("Calsync syncs at once after you choose: what waits is written to the new calendar."),
        ],
    )


def _overflow(conn: str, *choices: tuple[str, str]) -> dict:
    """Less-used actions behind "…" (Block Kit: 2 to 5 options)."""
    return {
        "type": "overflow",
        "action_id": "calsync_more",
        "options": [{"text": plain(label), "value": f"{what}:{conn}"} for what, label in choices],
    }


def home_actions(row: dict, calendars: list[dict] | None = None) -> list[dict]:
    """The buttons a row offers: what its status needs first; Stop only behind the overflow menu."""
    conn, status = str(row["id"]), row["status"]
    download = [button("calsync_download", "Download missed (.ics)", value=conn)] if row.get("missed") else []
    test = button("calsync_test", "Test connection", value=conn)
    if status == "stopped":
        return [button("calsync_connect", "Connect again", value=conn, style="primary")] + download
    if status == "relink_required":
        return (
            [button("calsync_relink", "Relink", value=conn, style="primary")]
            + download
            + [_overflow(conn, ("test", "Test connection"), ("calendars", "Calendars…"), ("stop", "Stop sync…"))]
        )
    first: list[dict] = []
    if status in PICKER_STATUSES and calendars:
        first.append(calendar_picker(conn, calendars))
    if status == "unreachable":
        test = {**test, "style": "primary"}
    more = _overflow(conn, ("relink", "Get a new relink link"), ("calendars", "Calendars…"), ("stop", "Stop sync…"))
    return first + download + [test, more]


def home_view(rows: list[dict], name: str, feed_url: str = "", calendars: dict | None = None) -> dict:
    """The App Home: each connection with the actions its status needs, Connect when there is none,
    and the private feed URL with its subscribe link."""
    blocks = [{"type": "header", "text": plain("Your calendar connections", 150)}]
    if not rows:
        blocks.append(section(md("Hello {}: no calendar is connected yet.", clip(name, 200))))
        blocks.append({"type": "actions", "elements": [button("calsync_connect", "Connect a calendar", value="", style="primary")]})
    shown = rows[:MAX_HOME_ROWS]
    for row in shown:
        text = connection_line(row)
        if row.get("todo") and row["status"] != "active":
            text += md("\n_{}_", row["todo"])
        blocks.append(section(text))
        blocks.append(
            {"type": "actions", "block_id": f"calsync_row_{row['id']}", "elements": home_actions(row, (calendars or {}).get(row["id"]))}
        )
        blocks.append({"type": "divider"})
    blocks += _more(rows, shown)
    if feed_url:
        blocks += feed_blocks(feed_url)
    return {"type": "home", "blocks": blocks}
