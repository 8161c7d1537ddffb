"""Modal submissions: stop sync, feed reset, primary calendar, calendars. Nothing happens before submit."""

from __future__ import annotations

import json

from bot import blocks, calendars, out, people
from core import access, actions


def open_calendars_modal(rt, client, trigger_id: str, conn) -> str:
    """Open the Calendars modal for ``conn`` (the command, the Home menu and an alert's button);
    returns why not ("" when it opened)."""
    if conn.status == "stopped":
        return f"Connection {conn.id} is stopped: `/calsync connect` connects the calendar again."
    rows = actions.calendar_roles(rt, conn.id, refresh=True)
    out.open_modal(client, trigger_id, calendars.calendars_modal(conn.id, rows, conn.status))
    return ""


def _submitted_for(rt, client, user_id: str, meta: dict):
    """Who submitted a modal, and the connection its metadata names, if they may act on it."""
    principal = people.principal(rt, client, user_id)
    return principal, access.connection_for(rt, principal, meta.get("connection"))


def register(app, rt) -> None:
    @app.view("calsync_stop")
    def stop_submitted(ack, body, view, client):
        ack()
        user_id = body["user"]["id"]
        meta = json.loads(view.get("private_metadata") or "{}")
        box = view["state"]["values"].get("options", {}).get(blocks.KEEP_ACTION, {})
        keep = bool(box.get("selected_options"))
        # The button said "Stop anyway" for this choice: pressing it is the consent to force.
        force = bool(meta.get("force")) and bool(meta.get("keep")) == keep
        try:
            principal, conn = _submitted_for(rt, client, user_id, meta)
            plan = actions.stop_plan(rt, conn.id, keep_events=keep, for_support=principal.support)
            if plan["needs_force"] and not force:
                text = (
                    f"Nothing was stopped: connection {conn.id} changed since you opened this. "
                    f"`/calsync stop {conn.id}` shows what stopping does now."
                )
            else:
                result = actions.stop_sync(rt, conn.id, keep_events=keep, force=force, actor=principal.actor)
                text = blocks.stop_result(conn.id, result)
        except actions.ActionError as exc:
            text = f"Nothing was stopped: {exc}"
        out.dm(client, user_id, text)

    @app.view("calsync_feed_reset")
    def feed_reset_submitted(ack, body, view, client):
        ack()
        user_id = body["user"]["id"]
        meta = json.loads(view.get("private_metadata") or "{}")
        try:
            principal = people.principal(rt, client, user_id)
            staff = access.target_staff(rt, principal, meta.get("staff"))
            result = actions.feed_reset(rt, staff.email, actor=principal.actor)
            text = f"New private feed URL of {staff.name}; the old one no longer works:\n{result['url']}"
        except actions.ActionError as exc:
            text = f"The feed URL was not reset: {exc}"
        out.dm(client, user_id, text)

    @app.view("calsync_primary")
    def primary_submitted(ack, body, view, client):
        selected = view["state"]["values"].get("calendar", {}).get("choice", {}).get("selected_option")
        if not selected:
            ack(response_action="errors", errors={"calendar": "Choose a calendar"})
            return
        ack()
        user_id = body["user"]["id"]
        meta = json.loads(view.get("private_metadata") or "{}")
        try:
            principal, conn = _submitted_for(rt, client, user_id, meta)
            result = actions.set_destination(rt, conn.id, selected["value"], actor=principal.actor)  # syncs at once
            text = blocks.primary_result(conn.id, result)
        except actions.ActionError as exc:
            text = f"The primary calendar was not changed: {exc}"
        out.dm(client, user_id, text)

    @app.view(calendars.CALLBACK)
    def calendars_submitted(ack, body, view, client):
        """The Calendars modal: every role at once. Acked first (the save syncs, longer than Slack's three
        seconds); choose_calendars checks it all before changing anything, and the DM says what it did."""
        ack()
        user_id = body["user"]["id"]
        meta = json.loads(view.get("private_metadata") or "{}")
        try:
            principal, conn = _submitted_for(rt, client, user_id, meta)
            result = actions.choose_calendars(rt, conn.id, **calendars.chosen(view), actor=principal.actor)
            text = calendars.calendars_result(conn.id, result)
        except actions.ActionError as exc:
            text = f"Nothing was changed: {exc}"
        out.dm(client, user_id, text)
