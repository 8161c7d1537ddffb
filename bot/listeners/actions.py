"""Buttons and selects in DMs and on the Home tab."""

from __future__ import annotations

from bot import blocks, people
from core import access, actions


def _reply(body, respond, client, text: str, block_list=None) -> None:
    """Ephemeral where Slack gave a response_url (messages), a DM otherwise (Home tab)."""
    if body.get("response_url"):
        respond(response_type="ephemeral", replace_original=False, text=text, blocks=block_list)
    else:
        people.dm(client, body["user"]["id"], text, block_list)


def register(app, rt) -> None:
    @app.action("calsync_relink_open")
    @app.action("calsync_download_open")
    @app.action("calsync_connect_open")
    def url_button(ack):
        ack()  # URL buttons open the link in the browser; Slack still sends the action

    @app.action("calsync_test")
    def test_button(ack, body, respond, client):
        ack()
        try:
            principal = people.principal(rt, client, body["user"]["id"])
            conn = access.connection_for(rt, principal, body["actions"][0]["value"])
            result = actions.test_connection(rt, conn.id, actor=principal.actor)
            _reply(body, respond, client, f"Connection {conn.id}: {result['status']}", blocks.test_result_blocks(result))
        except actions.ActionError as exc:
            _reply(body, respond, client, str(exc))

    @app.action("calsync_relink")
    def relink_button(ack, body, respond, client):
        ack()
        try:
            principal = people.principal(rt, client, body["user"]["id"])
            conn = access.connection_for(rt, principal, body["actions"][0]["value"])
            result = actions.issue_relink(rt, conn.id, via=(), actor=principal.actor)
            _reply(body, respond, client, f"Relink: {result['url']}",
                   blocks.relink_link_blocks({"provider": conn.provider, "account": conn.account}, result["url"]))
        except actions.ActionError as exc:
            _reply(body, respond, client, str(exc))

    @app.action("calsync_stop_open")
    def stop_button(ack, body, respond, client):
        ack()
        try:
            principal = people.principal(rt, client, body["user"]["id"])
            conn = access.connection_for(rt, principal, body["actions"][0]["value"])
            client.views_open(trigger_id=body["trigger_id"], view=blocks.stop_modal(actions.stop_plan(rt, conn.id)))
        except actions.ActionError as exc:
            _reply(body, respond, client, str(exc))

    @app.action("calsync_primary_select")
    def primary_select(ack, body, respond, client):
        ack()
        try:
            principal = people.principal(rt, client, body["user"]["id"])
            conn_id, _, calendar_id = body["actions"][0]["selected_option"]["value"].partition(":")
            conn = access.connection_for(rt, principal, conn_id)
            result = actions.set_destination(rt, conn.id, calendar_id, actor=principal.actor)
            report = actions.sync_now(rt, conn.id)[0]
            _reply(body, respond, client,
                   f"Appointments now go to {result.get('primary')!r}. Status: {blocks.badge(report['status'])}; "
                   f"{report['created']} appointment(s) written.")
        except actions.ActionError as exc:
            _reply(body, respond, client, str(exc))
