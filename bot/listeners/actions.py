"""Buttons and selects in DMs and on the Home tab."""

from __future__ import annotations

from bot import blocks, out, people
from core import access, actions


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


def register(app, rt) -> None:
    @app.action("calsync_relink_open")
    @app.action("calsync_download_open")
    @app.action("calsync_connect_open")
    def url_button(ack):
        ack()  # URL buttons open the link in the browser; Slack still sends the action

    @app.action("calsync_test")
    def test_button(ack, body, respond, client):
        ack()

        def work(principal, conn):
            result = actions.test_connection(rt, conn.id, actor=principal.actor)
            _reply(body, respond, client, f"Connection {conn.id}: {result['status']}", blocks.test_result_blocks(result))

        _on_connection(rt, body, respond, client, work)

    @app.action("calsync_relink")
    def relink_button(ack, body, respond, client):
        ack()

        def work(principal, conn):
            result = actions.issue_relink(rt, conn.id, via=(), actor=principal.actor)
            _reply(body, respond, client, f"Relink: {result['url']}",
                   blocks.relink_link_blocks({"provider": conn.provider, "account": conn.account}, result["url"]))

        _on_connection(rt, body, respond, client, work)

    @app.action("calsync_stop_open")
    def stop_button(ack, body, respond, client):
        ack()

        def work(principal, conn):
            plan = actions.stop_plan(rt, conn.id, for_support=principal.support)
            out.open_modal(client, body["trigger_id"], blocks.stop_modal(plan))

        _on_connection(rt, body, respond, client, work)

    @app.action("calsync_primary_select")
    def primary_select(ack, body, respond, client):
        ack()
        conn_id, _, calendar_id = body["actions"][0]["selected_option"]["value"].partition(":")

        def work(principal, conn):
            result = actions.set_destination(rt, conn.id, calendar_id, actor=principal.actor)
            report = result.get("sync") or {"created": 0}  # choosing a primary syncs at once
            _reply(body, respond, client,
                   f"Appointments now go to {result.get('primary')!r}. Status: {blocks.badge(result['status'])}; "
                   f"{report['created']} appointment(s) written.")

        _on_connection(rt, body, respond, client, work, value=conn_id)
