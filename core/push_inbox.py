"""What a push notification may do, after it proved it is one (the webhooks of :mod:`web.push`).

A notification only ever asks for a sync (:func:`lifecycle.request_sync`: a burst of them is
one sync, and one that arrives while a sync runs is taken by the next pass at once) or, for
Graph's lifecycle events, marks the channel for the next sync to renew or reopen it. It
never carries data calsync trusts: the sync reads the calendar itself. Anything that does
not name a channel calsync opened, with its secret, is refused and changes nothing.

- Google (guides/push): headers ``X-Goog-Channel-ID``, ``X-Goog-Channel-Token``,
  ``X-Goog-Resource-ID``, ``X-Goog-Resource-State`` (``sync`` when the channel opens,
  ``exists`` on a change, ``not_exists`` when the resource is gone); an empty body.
- Graph (change-notifications-delivery-webhooks, change-notifications-lifecycle-events): a
  ``validationToken`` query parameter is answered with the token as plain text at once;
  otherwise ``{"value": [...]}`` with ``subscriptionId`` and ``clientState`` per
  notification, and ``lifecycleEvent`` (``reauthorizationRequired``, ``subscriptionRemoved``,
  ``missed``) on lifecycle notifications; answered 202.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging

import peewee as pw

import models as m
from core import clock, lifecycle
from core.push import token_hash

log = logging.getLogger("calsync.push")

MAX_HEADER = 256  # Google: channel ids and tokens are at most 64 and 256 characters
MAX_VALIDATION_TOKEN = 1024
MAX_NOTIFICATIONS = 1000  # in one Graph delivery
GOOGLE_STATES = ("sync", "exists", "not_exists")
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")


@dataclasses.dataclass
class Answer:
    status: int
    text: str = ""
    content_type: str = "text/plain; charset=utf-8"


def _channel(provider: str, channel_id: str, secret: str) -> m.PushChannel | None:
    """The live channel ``channel_id`` if ``secret`` is its secret; None otherwise."""
    if not channel_id or not secret or len(channel_id) > MAX_HEADER or len(secret) > MAX_HEADER:
        return None
    channel = (
        m.PushChannel.select(m.PushChannel, m.Calendar, m.Connection)
        .join(m.Calendar)
        .join(m.Connection)
        .where(m.PushChannel.channel_id == channel_id, m.PushChannel.provider == provider)
        .first()
    )
    if channel is None or channel.state == m.PUSH_FAILED or not channel.token_hash:
        return None
    if not hmac.compare_digest(token_hash(secret), channel.token_hash):
        return None
    return channel


def _heard(channel: m.PushChannel) -> None:
    """A notification came: the channel delivers (again), and our own write, if one waited, was echoed."""
    now = clock.now()
    C = m.PushChannel
    silent = C.state == m.PUSH_SILENT
    (
        C.update(
            messages=C.messages + 1,
            last_message_at=now,
            awaiting_since=None,
            state=pw.Case(None, [(silent, m.PUSH_LIVE)], C.state),
            reason=pw.Case(None, [(silent, "")], C.reason),
        )
        .where(C.id == channel.id)
        .execute()
    )


def _sync_soon(channel: m.PushChannel) -> None:
    conn = channel.calendar.connection
    if conn.status != m.STOPPED:
        lifecycle.request_sync(conn, settle=True)


def google(headers) -> Answer:
    """One Google notification; ``headers`` is a case-insensitive mapping."""
    state = (headers.get("X-Goog-Resource-State") or "").strip()
    channel = _channel("google", (headers.get("X-Goog-Channel-ID") or "").strip(), headers.get("X-Goog-Channel-Token") or "")
    if channel is None:
        return Answer(404, "no such push channel")
    if not channel.resource_id and state == "sync":
        return Answer(200, "ok")  # the channel's opening message, before Google's answer named its resource
    if (headers.get("X-Goog-Resource-ID") or "").strip() != channel.resource_id:
        return Answer(404, "no such push channel")
    if state not in GOOGLE_STATES:
        return Answer(400, "unknown resource state")
    _heard(channel)
    if state != "sync":  # "sync" only says the channel is open
        _sync_soon(channel)
    return Answer(200, "ok")


def graph_validation(token: str) -> Answer:
    """Graph checks a notification URL before it subscribes it: the token back, as plain text."""
    if not token or len(token) > MAX_VALIDATION_TOKEN:
        return Answer(400, "bad validation token")
    return Answer(200, token)


def graph(body) -> Answer:
    """One Graph delivery (change or lifecycle notifications), already parsed from JSON."""
    items = body.get("value") if isinstance(body, dict) else None
    if not isinstance(items, list) or not items or len(items) > MAX_NOTIFICATIONS:
        return Answer(400, "not a Graph notification collection")
    accepted = 0
    for item in items:
        if not isinstance(item, dict):
            continue
        sub_id, secret = item.get("subscriptionId"), item.get("clientState")
        if not isinstance(sub_id, str) or not isinstance(secret, str):
            continue
        channel = _channel("microsoft", sub_id, secret)
        if channel is None:
            continue
        event = item.get("lifecycleEvent")
        if event is not None and event not in LIFECYCLE_EVENTS:
            continue
        accepted += 1
        _act(channel, event)
    if not accepted:
        return Answer(403, "no notification named a subscription of calsync's")
    return Answer(202)


def _act(channel: m.PushChannel, event: str | None) -> None:
    cal = channel.calendar
    if event is None:
        _heard(channel)
    elif event == "reauthorizationRequired":
        # The next sync renews the subscription, which reauthorizes it; when the grant itself was
        # revoked, that sync's first call says so and the connection's alert goes out.
        (
            m.PushChannel.update(state=m.PUSH_REAUTHORIZE, reason="Microsoft asked calsync to reauthorize the subscription")
            .where(m.PushChannel.id == channel.id)
            .execute()
        )
        m.Calendar.update(push_check_at=clock.now()).where(m.Calendar.id == cal.id).execute()
    elif event == "subscriptionRemoved":
        m.PushChannel.delete().where(m.PushChannel.id == channel.id).execute()
        m.Calendar.update(push_check_at=clock.now()).where(m.Calendar.id == cal.id).execute()
    elif event == "missed":
        # Some notifications were not delivered: the next sync reads the calendar whole (a full delta
        # round), as the daily full read does. Only that column: a sync running now keeps its token.
        _heard(channel)
        m.Calendar.update(full_read_at=None).where(m.Calendar.id == cal.id).execute()
    log.info("push %s for calendar %s (connection %s)", event or "change", cal.id, cal.connection_id)
    _sync_soon(channel)
