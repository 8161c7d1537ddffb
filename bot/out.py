"""Everything the bot says to Slack passes here, sealed on the way out (bot/mrkdwn.py).

Listeners and the sender never call ``respond`` or the Web API's message and
view methods themselves (tests/test_hostile_slack.py checks the source): one
place escapes the ``text`` fallback and the blocks of every message, reply,
modal and Home tab.
"""

from __future__ import annotations

from bot.mrkdwn import fallback, seal


def _message(text, blocks) -> dict:
    sealed = {"text": fallback(text)}
    if blocks is not None:
        sealed["blocks"] = seal(blocks)
    return sealed


def reply(respond, text, blocks: list | None = None, **options) -> None:
    """An ephemeral answer through the request's response_url (``options``: e.g. replace_original)."""
    respond(response_type="ephemeral", **_message(text, blocks), **options)


def post(client, channel: str, text, blocks: list | None = None):
    return client.chat_postMessage(channel=channel, **_message(text, blocks))


def update(client, channel: str, ts: str, text, blocks: list | None = None):
    return client.chat_update(channel=channel, ts=ts, **_message(text, blocks))


def dm(client, user_id: str, text, blocks: list | None = None):
    """A private message to the user (for results of modals and Home buttons, which have no response_url)."""
    channel = client.conversations_open(users=user_id)["channel"]["id"]
    return post(client, channel, text, blocks)


def open_modal(client, trigger_id: str, view: dict):
    return client.views_open(trigger_id=trigger_id, view=seal(view))


def update_modal(client, view_id: str, view_hash: str, view: dict):
    """Redraw an open modal (``hash``: Slack refuses the update if the modal changed meanwhile)."""
    return client.views_update(view_id=view_id, hash=view_hash, view=seal(view))


def publish_home(client, user_id: str, view: dict):
    return client.views_publish(user_id=user_id, view=seal(view))
