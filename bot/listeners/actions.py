"""Buttons, selects and overflow menus in DMs, on the Home tab and in the stop modal."""

from __future__ import annotations

import json
import logging

from bot import blocks, calendars, out, people
from bot.listeners.views import open_calendars_modal
from core import access, actions

log = logging.getLogger("calsync.slack")


def _reply(body, respond, client, text: str, block_list=None) -> None:
    """Ephemeral where Slack gave a response_url (messages), a DM otherwise (Home tab)."""
    if body.get("response_url"):
        out.reply(respond, text, block_list, replace_original=False)
    else:
        out.dm(client, body["user"]["id"], text, block_list)


def _on_connection(rt, body, respond, client, work, value: str | None = None) -> None:
    """Who clicked, may they act on the connection in the button's value, then ``work(principal, conn)``."""
    try:
        principal = people.principal(rt, client, body["user"]["id"])
        conn = access.connection_for(rt, principal, value if value is not None else body["actions"][0]["value"])
        work(principal, conn)
    except actions.ActionError as exc:
        _reply(body, respond, client, str(exc))


def _from_home(body) -> bool:
    return (body.get("view") or {}).get("type") == "home"


def _redraw_home(rt, body, client) -> None:
    """After a change made on the Home tab, the tab shows the new status (best effort)."""
    if not _from_home(body):
        return
    from bot.listeners.home import publish_home

    try:
        publish_home(rt, client, body["user"]["id"])
    except Exception as exc:  # noqa: BLE001 — the answer (a DM) is what counts
        log.info("slack: App Home of %s not redrawn: %s", body["user"]["id"], exc)


def register(app, rt) -> None:
    @app.action("calsync_relink_open")
    @app.action("calsync_download_open")
    @app.action("calsync_connect_open")
    def url_button(ack):
        ack()  # URL buttons open the link in the browser; Slack still sends the action

    def test(body, respond, client, value=None):
        def work(principal, conn):
            result = actions.test_connection(rt, conn.id, actor=principal.actor)
            _reply(body, respond, client, f"Connection {conn.id}: {result['status']}", blocks.test_result_blocks(result))
            _redraw_home(rt, body, client)

        _on_connection(rt, body, respond, client, work, value)

    def relink(body, respond, client, value=None):
        def work(principal, conn):
            result = actions.issue_relink(rt, conn.id, via=(), actor=principal.actor)
            _reply(
                body,
                respond,
                client,
                f"Relink: {result['url']}",
                blocks.relink_link_blocks({"provider": conn.provider, "server": conn.server_url, "account": conn.account}, result["url"]),
            )

        _on_connection(rt, body, respond, client, work, value)

    def stop(body, respond, client, value=None):
        def work(principal, conn):
            plan = actions.stop_plan(rt, conn.id, for_support=principal.support)
            out.open_modal(client, body["trigger_id"], blocks.stop_modal(plan))

        _on_connection(rt, body, respond, client, work, value)

    def choose_calendars(body, respond, client, value=None):
        def work(principal, conn):
            refused = open_calendars_modal(rt, client, body["trigger_id"], conn)
            if refused:
                _reply(body, respond, client, refused)

        _on_connection(rt, body, respond, client, work, value)

    @app.action(calendars.OPEN_ACTION)
    def calendars_button(ack, body, respond, client):
        """The button of an extra calendar's alert: the Calendars modal."""
        ack()
        choose_calendars(body, respond, client)

    @app.action("calsync_test")
    def test_button(ack, body, respond, client):
        ack()
        test(body, respond, client)

    @app.action("calsync_relink")
    def relink_button(ack, body, respond, client):
        ack()
        relink(body, respond, client)

    @app.action("calsync_stop_open")
    def stop_button(ack, body, respond, client):
        ack()
        stop(body, respond, client)

    @app.action("calsync_more")
    def more_menu(ack, body, respond, client):
        """The overflow menu of a Home row: test, a new relink link, stop (kept out of the way)."""
        ack()
        what, _, conn_id = ((body["actions"][0].get("selected_option") or {}).get("value") or "").partition(":")
        handler = {"test": test, "relink": relink, "stop": stop, "calendars": choose_calendars}.get(what)
        if handler is not None:
            handler(body, respond, client, conn_id)

    @app.action("calsync_download")
    def download_button(ack, body, respond, client):
        ack()

        def work(principal, conn):
            result = actions.download_link(rt, conn.id, actor=principal.actor)
            if not result["count"]:
                _reply(body, respond, client, f"No missed appointments on connection {conn.id}: everything reached the calendar.")
                return
            _reply(
                body,
                respond,
                client,
                f"Missed appointments: {result['url']}",
                blocks.download_blocks(conn.id, result["count"], result["url"]),
            )

        _on_connection(rt, body, respond, client, work)

    @app.action("calsync_connect")
    def connect_button(ack, body, respond, client):
        """Connect (no connection yet) or Connect again (a stopped one): a single-use connect link."""
        ack()
        value = body["actions"][0].get("value") or ""
        try:
            principal = people.principal(rt, client, body["user"]["id"])
            staff = access.connection_for(rt, principal, value).staff if value else access.target_staff(rt, principal, None)
            result = actions.connect_link(rt, staff.email, actor=principal.actor)
            _reply(body, respond, client, f"Connect a calendar: {result['url']}", blocks.connect_blocks(result["url"]))
        except actions.ActionError as exc:
            _reply(body, respond, client, str(exc))

    @app.action("calsync_primary_select")
    def primary_select(ack, body, respond, client):
        ack()
        conn_id, _, calendar_id = body["actions"][0]["selected_option"]["value"].partition(":")

        def work(principal, conn):
            result = actions.set_destination(rt, conn.id, calendar_id, actor=principal.actor)  # syncs at once
            _reply(body, respond, client, blocks.primary_result(conn.id, result))
            _redraw_home(rt, body, client)

        _on_connection(rt, body, respond, client, work, value=conn_id)

    @app.action(blocks.KEEP_ACTION)
    def stop_keep_changed(ack, body, client):
        """The stop modal's "keep events" box changed: the sentences and the confirm button follow."""
        ack()
        view = body.get("view") or {}
        meta = json.loads(view.get("private_metadata") or "{}")
        keep = bool(body["actions"][0].get("selected_options"))
        try:
            principal = people.principal(rt, client, body["user"]["id"])
            conn = access.connection_for(rt, principal, meta.get("connection"))
            plan = actions.stop_plan(rt, conn.id, keep_events=keep, for_support=principal.support)
            out.update_modal(client, view["id"], view.get("hash", ""), blocks.stop_modal(plan, keep=keep))
        except actions.ActionError as exc:
            out.dm(client, body["user"]["id"], f"Nothing was stopped: {exc}")
