"""`/calsync` and its subcommands. Each one: ack, one core action, render."""

from __future__ import annotations

import logging
import re

from bot import blocks, people
from core import access, actions

log = logging.getLogger("calsync.slack")

MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
EMAIL = re.compile(r"^(?:<mailto:)?([^@\s|<>]+@[^@\s|<>]+\.[^@\s|<>]+?)(?:\|[^>]*)?>?$")


def parse(text: str) -> tuple[str, list[str], str | None]:
    """(subcommand, numbers and words, whose) from the command's text."""
    words = (text or "").split()
    who = None
    rest = []
    for word in words:
        mention, email = MENTION.match(word), EMAIL.match(word)
        if mention:
            who = mention.group(1)
        elif email:
            who = email.group(1).lower()
        else:
            rest.append(word)
    if not rest:
        return "help", [], who
    sub = rest[0].lower()
    if sub == "feed" and len(rest) > 1 and rest[1].lower() == "reset":
        return "feed reset", rest[2:], who
    if sub == "support" and len(rest) > 1 and rest[1].lower() == "status":
        return "support status", rest[2:], who
    return sub, rest[1:], who


def register(app, rt) -> None:
    @app.command("/calsync")
    def calsync(ack, command, respond, client):
        ack()
        sub, args, who = parse(command.get("text", ""))
        user_id = command["user_id"]
        try:
            handler = HANDLERS.get(sub)
            if handler is None:
                respond(response_type="ephemeral", text=f"I don't know `{sub}`. `/calsync help` lists what I can do.")
                return
            principal = people.principal(rt, client, user_id)
            if sub != "help":
                access.require_known(principal)
            handler(rt, principal, args, who, respond, client, command)
        except actions.ActionError as exc:
            respond(response_type="ephemeral", text=str(exc))


def _number(args: list[str]) -> str | None:
    return args[0] if args and args[0].isdigit() else None


def cmd_help(rt, principal, args, who, respond, client, command):
    respond(response_type="ephemeral", text="Calsync commands", blocks=blocks.help_blocks(principal.support))


def cmd_status(rt, principal, args, who, respond, client, command):
    staff = access.target_staff(rt, principal, who)
    rows = actions.list_statuses(rt, staff.email)
    whose = "Your" if principal.staff is not None and staff.id == principal.staff.id else f"{staff.name}'s"
    respond(response_type="ephemeral", text=f"{whose} calendar connections", blocks=blocks.status_blocks(rows, whose))


def cmd_support_status(rt, principal, args, who, respond, client, command):
    if not principal.support:
        raise access.NotAllowed("`support status` is for support users.")
    rows = [r for r in actions.list_statuses(rt) if r["status"] not in ("active", "stopped")]
    text = "Every connection works." if not rows else "Connections that need attention"
    respond(response_type="ephemeral", text=text, blocks=blocks.status_blocks(rows, "Broken or pending") if rows else None)


def cmd_test(rt, principal, args, who, respond, client, command):
    conn = access.connection_for(rt, principal, _number(args), who)
    respond(response_type="ephemeral", text=f"Testing connection {conn.id}…")
    result = actions.test_connection(rt, conn.id, actor=principal.actor)
    respond(response_type="ephemeral", text=f"Connection {conn.id}: {result['status']}", blocks=blocks.test_result_blocks(result))


def cmd_relink(rt, principal, args, who, respond, client, command):
    conn = access.connection_for(rt, principal, _number(args), who)
    result = actions.issue_relink(rt, conn.id, via=(), actor=principal.actor)
    payload = {"provider": conn.provider, "account": conn.account}
    respond(response_type="ephemeral", text=f"Relink: {result['url']}", blocks=blocks.relink_link_blocks(payload, result["url"]))


def cmd_connect(rt, principal, args, who, respond, client, command):
    staff = access.target_staff(rt, principal, who)
    result = actions.connect_link(rt, staff.email, actor=principal.actor)
    respond(response_type="ephemeral", text=f"Connect a calendar: {result['url']}", blocks=[
        {"type": "section", "text": {"type": "mrkdwn", "text": "Connect a calendar (CalDAV or an iCalendar URL) on this page; "
                                                               "the link works once, for 24 hours."}},
        {"type": "actions", "elements": [{"type": "button", "action_id": "calsync_connect_open", "style": "primary",
                                          "text": {"type": "plain_text", "text": "Connect a calendar"}, "url": result["url"]}]},
    ])


def cmd_feed(rt, principal, args, who, respond, client, command):
    staff = access.target_staff(rt, principal, who)
    result = actions.feed_url(rt, staff.email, actor=principal.actor)
    respond(response_type="ephemeral", text=(
        f"Private calendar feed of {staff.name} (subscribe to it in any calendar app; keep it to yourself):\n{result['url']}"))


def cmd_feed_reset(rt, principal, args, who, respond, client, command):
    staff = access.target_staff(rt, principal, who)
    client.views_open(trigger_id=command["trigger_id"], view=blocks.feed_reset_modal(staff.email))


def cmd_download(rt, principal, args, who, respond, client, command):
    conn = access.connection_for(rt, principal, _number(args), who)
    result = actions.download_link(rt, conn.id, actor=principal.actor)
    if not result["count"]:
        respond(response_type="ephemeral", text=f"No missed appointments on connection {conn.id}: everything reached the calendar.")
        return
    respond(response_type="ephemeral", text=f"Missed appointments: {result['url']}", blocks=[
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{result['count']} appointment(s) missed while connection {conn.id} "
                                                               "was broken. The file is a snapshot: it will not update. You may import it into your "
                                                               "calendar: calsync recognises these appointments after the repair "
                                                               "and updates them in place, without duplicates."}},
        {"type": "actions", "elements": [{"type": "button", "action_id": "calsync_download_open", "url": result["url"],
                                          "text": {"type": "plain_text", "text": "Download missed (.ics)"}}]},
    ])


def cmd_stop(rt, principal, args, who, respond, client, command):
    conn = access.connection_for(rt, principal, _number(args), who)
    plan = actions.stop_plan(rt, conn.id, for_support=principal.support)
    client.views_open(trigger_id=command["trigger_id"], view=blocks.stop_modal(plan))


def cmd_primary(rt, principal, args, who, respond, client, command):
    conn = access.connection_for(rt, principal, _number(args), who)
    calendars = actions.list_calendars(rt, conn.id, refresh=True)
    client.views_open(trigger_id=command["trigger_id"], view=blocks.primary_modal(conn.id, calendars))


HANDLERS = {
    "help": cmd_help,
    "status": cmd_status,
    "support status": cmd_support_status,
    "test": cmd_test,
    "relink": cmd_relink,
    "connect": cmd_connect,
    "feed": cmd_feed,
    "feed reset": cmd_feed_reset,
    "download": cmd_download,
    "stop": cmd_stop,
    "primary": cmd_primary,
}
