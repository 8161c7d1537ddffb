"""The Calendars modal (issue 18): which calendar is the primary, which block time, which others get
the appointments too. Data in, Block Kit out; the view handler hands the choice to
core.actions.choose_calendars, the same action the connect and relink pages call."""

from __future__ import annotations

import json
from typing import Any

from bot.blocks import _modal, badge, button, choosable, context, plain, section, waiting_lines
from bot.mrkdwn import clip, lines, md

CALLBACK = "calsync_calendars"
MAX_OPTIONS = 100  # Block Kit: a select holds at most 100 options


def _option(cal: dict) -> dict:
    return {"text": plain(cal["name"]), "value": str(cal["id"])}


def calendars_modal(conn_id: int, calendars: list[dict], status: str = "") -> dict:
    """One select for the primary and two multi-selects for the roles, each starting as it is now."""
    offered = choosable(calendars, status)[:MAX_OPTIONS]
    primary: dict[str, Any] = {"type": "static_select", "action_id": "choice", "options": [_option(c) for c in offered]}
    current = next((c for c in offered if c.get("primary")), None)
    if current is not None:
        primary["initial_option"] = _option(current)
    blocks: list[dict] = []
    if offered:
        blocks.append({"type": "input", "block_id": "primary", "label": plain("Write appointments to", 2000), "element": primary})
    every = calendars[:MAX_OPTIONS]
    busy: dict[str, Any] = {"type": "multi_static_select", "action_id": "choice", "options": [_option(c) for c in every]}
    if any(c.get("busy") for c in every):
        busy["initial_options"] = [_option(c) for c in every if c.get("busy")]
    blocks.append(
        {
            "type": "input",
            "block_id": "busy",
            "optional": True,
            "label": plain("Calendars that block your time", 2000),
            "hint": plain("Busy events in these keep appointments from being booked over them.", 2000),
            "element": busy,
        }
    )
    extra = [c for c in every if c.get("writable") and status != "stopped"]
    if len(extra) > 1:
        write: dict[str, Any] = {"type": "multi_static_select", "action_id": "choice", "options": [_option(c) for c in extra]}
        if any(c.get("write") and not c.get("primary") for c in extra):
            write["initial_options"] = [_option(c) for c in extra if c.get("write") and not c.get("primary")]
        blocks.append(
            {
                "type": "input",
                "block_id": "write",
                "optional": True,
                "label": plain("Also add your appointments to", 2000),
                "hint": plain("Besides the calendar above, which always gets them; for example a team calendar.", 2000),
                "element": write,
            }
        )
    blocks.append(context("Nothing changes until you save; then calsync syncs at once."))
    return _modal(CALLBACK, {"connection": conn_id, "write": len(extra) > 1}, "Calendars", "Save", blocks)


def chosen(view: dict) -> dict:
    """What the submitted modal asks for: ``primary``, ``busy``, ``write`` for choose_calendars (None
    where the modal had no such field)."""
    values = (view.get("state") or {}).get("values") or {}
    meta = json.loads(view.get("private_metadata") or "{}")

    def many(block: str) -> list[str]:
        picked = (values.get(block) or {}).get("choice", {}).get("selected_options") or []
        return [str(o.get("value", ""))[:20] for o in picked[:MAX_OPTIONS] if isinstance(o, dict)]

    selected = (values.get("primary") or {}).get("choice", {}).get("selected_option") or {}
    return {
        "primary": str(selected.get("value", ""))[:20] or None,
        "busy": many("busy"),
        "write": many("write") if meta.get("write") else None,
    }


def calendars_result(conn_id, result: dict) -> str:
    """What saving the modal did, in one message."""
    rows = result.get("calendars") or []
    busy = ", ".join(repr(c["name"]) for c in rows if c.get("busy")) or "none"
    extra = ", ".join(repr(c["name"]) for c in rows if c.get("write") and not c.get("primary"))
    if result.get("change") != "updated":
        head = f"Nothing changed on connection {conn_id}."
    else:
        head = f"Calendars of connection {conn_id} saved."
    text = f"{head} Appointments go to {result.get('primary')!r}" + (f" and to {extra}" if extra else "")
    text += f"; blocking your time: {busy}. Status: {badge(result['status'], result.get('failing'))}."
    return text


CALENDAR_EVENTS = ("calendar.trouble", "calendar.recovered")
OPEN_ACTION = "calsync_calendars_open"  # the alert's button: the same modal as /calsync calendars


def calendar_alert_blocks(event: str, payload: dict) -> list[dict]:
    """The DM when an extra write calendar breaks (core.extra_calendars) or works again: what happened,
    what waits for it, and the way to stop writing to it."""
    said = [md("{}", payload.get("problem") or "")]
    if payload.get("todo"):
        said.append(md("{}", payload["todo"]))
    blocks = [{"type": "header", "text": plain(payload.get("headline") or "", 150)}, section(lines(*said))]
    if event == "calendar.trouble":
        waits = waiting_lines(payload)
        if waits is not None:
            blocks.append(section(waits))
        conn = str(payload.get("connection", ""))
        blocks.append(
            {
                "type": "actions",
                "block_id": f"calsync_calendar_{payload.get('calendar_id', '')}",
                "elements": [button(OPEN_ACTION, "Calendars…", value=conn)],
            }
        )
    blocks.append(
        context(
            md(
                "Connection {} · {} `{}`",
                payload.get("connection", ""),
                payload.get("provider_name") or "",
                clip(payload.get("account", ""), 200),
            )
        )
    )
    return blocks
