"""The Slack app factory: settings → ``slack_bolt.App`` with calsync's listeners.

HTTP mode: Bolt verifies the signature and timestamp of every request to
``POST /slack/events`` (web/ mounts it); headers Slack would never send are
refused before that check (``StrictVerification``). Socket Mode: when SLACK_APP_TOKEN
is set, ``run_socket_mode`` connects out instead. SLACK_API_URL points the
Web API client elsewhere (the tests' local stub).
"""

from __future__ import annotations

import logging
import re

from slack_bolt import App, BoltResponse
from slack_bolt.middleware.request_verification import RequestVerification
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler

from bot.listeners import register_listeners

log = logging.getLogger("calsync.slack")


# Seconds since the epoch in ASCII digits, as Slack sends them (int() would also take "١٢", "1_0" or " 1").
TIMESTAMP = re.compile(r"[0-9]{1,12}")


class StrictVerification(RequestVerification):
    """Bolt's signature check, but a malformed header is a 401 like any bad signature, not a 500.

    slack_sdk's SignatureVerifier calls ``int(timestamp)`` (ValueError on "abc",
    "" or 5,000 digits) and ``hmac.compare_digest`` (TypeError on a non-ASCII
    signature); those errors would escape the middleware.
    """

    def process(self, *, req, resp, next) -> BoltResponse:  # Bolt's own signature, ``next`` included
        if not self._can_skip(req.mode, req.body):
            timestamp = req.headers.get("x-slack-request-timestamp", ["0"])[0] or ""
            signature = req.headers.get("x-slack-signature", [""])[0] or ""
            if not TIMESTAMP.fullmatch(timestamp) or not signature.isascii():
                self.logger.info("Slack request refused: malformed timestamp or signature header")
                return self._build_error_response()
        return super().process(req=req, resp=resp, next=next)


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
    signing_secret = rt.settings.slack_signing_secret.reveal() or "socket-mode-only"
    logger = logging.getLogger("calsync.slack.bolt")
    app = App(
        client=web_client(rt),
        signing_secret=signing_secret,
        token_verification_enabled=False,  # no auth.test call at start-up: the service starts without Slack
        # Bolt's place for the check (first, before authorize), with calsync's stricter verifier in it.
        request_verification_enabled=False,
        before_authorize=StrictVerification(signing_secret, base_logger=logger),
        logger=logger,
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
