"""The Slack app factory: settings → ``slack_bolt.App`` with calsync's listeners.

HTTP mode: Bolt verifies the signature and timestamp of every request to
``POST /slack/events`` (web/ mounts it). Socket Mode: when SLACK_APP_TOKEN
is set, ``run_socket_mode`` connects out instead. SLACK_API_URL points the
Web API client elsewhere (the tests' local stub).
"""

from __future__ import annotations

import logging

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

from bot.listeners import register_listeners

log = logging.getLogger("calsync.slack")


def configured(rt) -> bool:
    return bool(rt.settings.slack_bot_token) and (bool(rt.settings.slack_signing_secret) or bool(rt.settings.slack_app_token))


def web_client(rt) -> WebClient:
    client = WebClient(token=rt.settings.slack_bot_token.reveal(), base_url=rt.settings.slack_api_url, timeout=15)
    # 429 + Retry-After and dropped connections are retried by slack_sdk itself.
    client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
    client.retry_handlers.append(ConnectionErrorRetryHandler(max_retry_count=1))
    return client


def create_app(rt) -> App | None:
    """The Bolt app, or None when Slack is not configured."""
    if not configured(rt):
        return None
    app = App(
        client=web_client(rt),
        signing_secret=rt.settings.slack_signing_secret.reveal() or "socket-mode-only",
        token_verification_enabled=False,  # no auth.test call at start-up: the service starts without Slack
        logger=logging.getLogger("calsync.slack.bolt"),
    )
    register_listeners(app, rt)
    return app


def install_sender(rt, app: App) -> None:
    """Slack joins the outbox's channels."""
    from bot.sender import SlackSender

    if not any(s.channel == "slack" for s in rt.senders):
        rt.senders.append(SlackSender(rt, app.client))


def run_socket_mode(rt, app: App):
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    handler = SocketModeHandler(app, rt.settings.slack_app_token.reveal())
    handler.connect()
    log.info("Slack Socket Mode connected")
    return handler
