"""`/calsync` and its subcommands. Each one: ack, one core action, render."""

from __future__ import annotations

import logging
import re

from bot import blocks, out, people
from bot.listeners.views import open_calendars_modal
from bot.mrkdwn import unescape
from core import access, actions

log = logging.getLogger("calsync.slack")

MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
EMAIL = re.compile(r"^(?:<mailto:)?([^@\s|<>]+@[^@\s|<>]+\.[^@\s|<>]+?)(?:\|[^>]*)?>?$")


def parse(text: str) -> tuple[str, list[str], str | None]:
    """(subcommand, numbers and words, whose) from the command's text.

    Mentions and e-mails are Slack's own ``<…>`` tokens; every other word is
    unescaped to what the user typed, so a reply that quotes it escapes it once.
    """
    words = (text or "").split()
    who = None
    rest = []
    for word in words:
        mention, email = MENTION.match(word), EMAIL.match(word)
        if mention:
            who = mention.group(1)
        elif email:
            who = unescape(email.group(1)).lower()
        else:
            rest.append(unescape(word))
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
                out.reply(respond, f"I don't know `{sub}`. `/calsync help` lists what I can do.")
                return
            principal = people.principal(rt, client, user_id)
            if sub != "help":
                access.require_known(principal)
            handler(rt, principal, args, who, respond, client, command)
        except actions.ActionError as exc:
            out.reply(respond, str(exc))


def _number(args: list[str]) -> str | None:
    return args[0] if args and args[0].isdigit() else None


def cmd_help(rt, principal, args, who, respond, client, command):
    out.reply(respond, "Calsync commands", blocks.help_blocks(principal.support))


def cmd_status(rt, principal, args, who, respond, client, command):
    staff = access.target_staff(rt, principal, who)
    rows = actions.list_statuses(rt, staff.email)
    whose = "Your" if principal.staff is not None and staff.id == principal.staff.id else f"{staff.name}'s"
    out.reply(respond, f"{whose} calendar connections", blocks.status_blocks(rows, whose))


def cmd_support_status(rt, principal, args, who, respond, client, command):
    if not principal.support:
        raise access.NotAllowed("`support status` is for support users.")
    rows = [
        r for r in actions.list_statuses(rt) if r["status"] not in ("active", "stopped") or (r["status"] == "active" and r.get("failing"))
    ]
    text = "Every connection works." if not rows else "Connections that need attention"
    out.reply(respond, text, blocks.support_status_blocks(rows) if rows else None)


def cmd_test(rt, principal, args, who, respond, client, command):
    conn = access.connection_for(rt, principal, _number(args), who)
    out.reply(respond, f"Testing connection {conn.id}…")
    result = actions.test_connection(rt, conn.id, actor=principal.actor)
    out.reply(respond, f"Connection {conn.id}: {result['status']}", blocks.test_result_blocks(result))


def cmd_relink(rt, principal, args, who, respond, client, command):
    conn = access.connection_for(rt, principal, _number(args), who)
    result = actions.issue_relink(rt, conn.id, via=(), actor=principal.actor)
    payload = {"provider": conn.provider, "account": conn.account}
    out.reply(respond, f"Relink: {result['url']}", blocks.relink_link_blocks(payload, result["url"]))


def cmd_connect(rt, principal, args, who, respond, client, command):
    staff = access.target_staff(rt, principal, who)
    result = actions.connect_link(rt, staff.email, actor=principal.actor)
    out.reply(respond, f"Connect a calendar: {result['url']}", blocks.connect_blocks(result["url"]))


def cmd_feed(rt, principal, args, who, respond, client, command):
    staff = access.target_staff(rt, principal, who)
    result = actions.feed_url(rt, staff.email, actor=principal.actor)
    out.reply(
        respond,
        f"Private calendar feed of {staff.name} (subscribe to it in any calendar app; keep it to yourself):\n{result['url']}",
        blocks.feed_blocks(result["url"], f"Private calendar feed of {staff.name}"),
    )


def cmd_feed_reset(rt, principal, args, who, respond, client, command):
    staff = access.target_staff(rt, principal, who)
    out.open_modal(client, command["trigger_id"], blocks.feed_reset_modal(staff.email))


def cmd_download(rt, principal, args, who, respond, client, command):
    conn = access.connection_for(rt, principal, _number(args), who)
    result = actions.download_link(rt, conn.id, actor=principal.actor)
    if not result["count"]:
        out.reply(respond, f"No missed appointments on connection {conn.id}: everything reached the calendar.")
        return
    out.reply(respond, f"Missed appointments: {result['url']}", blocks.download_blocks(conn.id, result["count"], result["url"]))


def cmd_stop(rt, principal, args, who, respond, client, command):
    conn = access.connection_for(rt, principal, _number(args), who)
    plan = actions.stop_plan(rt, conn.id, for_support=principal.support)
    out.open_modal(client, command["trigger_id"], blocks.stop_modal(plan))


def cmd_primary(rt, principal, args, who, respond, client, command):
    conn = access.connection_for(rt, principal, _number(args), who)
    calendars = blocks.choosable(actions.list_calendars(rt, conn.id, refresh=True), conn.status)
    if not calendars:
        out.reply(
            respond,
            f"Connection {conn.id} has no calendar calsync can write appointments to. "
            "Create one in your calendar app (or ask for write access), then try again.",
        )
        return
    out.open_modal(client, command["trigger_id"], blocks.primary_modal(conn.id, calendars, conn.status))


def cmd_calendars(rt, principal, args, who, respond, client, command):
    conn = access.connection_for(rt, principal, _number(args), who)
    refused = open_calendars_modal(rt, client, command["trigger_id"], conn)
    if refused:
        out.reply(respond, refused)


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
    "calendars": cmd_calendars,
}
