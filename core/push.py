"""Push channels: Google and Microsoft tell calsync when a calendar changed (issue 16).

One owner for every rule about a channel: when one is opened, renewed, replaced or closed,
and what a channel that stopped delivering means. The webhooks' side (checking and acting
on a notification) is :mod:`core.push_inbox`; the provider calls are
:mod:`core.providers.push_channels`.

- Push is on with a public HTTPS ``CALSYNC_BASE_URL`` (``CALSYNC_PUSH=auto``, the default):
  the providers must reach ``/push/google`` and ``/push/microsoft``. ``CALSYNC_PUSH=on``
  turns it on for any http(s) base URL (local stand-ins of the providers, tests),
  ``off`` turns it off. :func:`status_line` says once, at start-up, why it is off.
- Every calendar a connection reads (its primary calendar and its busy sources) gets a
  channel after a successful sync; each calendar says when a sync must next look at its
  channel (``Calendar.push_check_at``: renewal due, a retry after a refusal, or an echo of
  our own write awaited), compared in memory, so a quiet run of a watched calendar costs no
  statement more.
- A channel is renewed a day before it expires: Graph in place, Google by opening the new
  one before stopping the old, so no change falls between the two.
- After calsync writes to a watched calendar the provider must tell us so (an "echo")
  within :data:`ECHO_WITHIN`; a channel that does not is ``silent`` and shown as such, and
  the calendar is carried by polling (which never stops: the sync interval and the 5-minute
  sweep stay the backstop) until a notification comes again or the channel is renewed.
- Stop-sync and a provider switch close every channel of the connection (:func:`close_all`).
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import ipaddress
import logging
import secrets
import uuid
from urllib.parse import urlsplit

import models as m
from core import clock
from core.notices import provider_name
from core.providers.base import ProviderError

log = logging.getLogger("calsync.push")

PROVIDERS = ("google", "microsoft")
TTL = {"google": dt.timedelta(days=7), "microsoft": dt.timedelta(days=3)}
RENEW_BEFORE = dt.timedelta(days=1)
RETRY_REFUSED = dt.timedelta(hours=1)
RETRY_TRANSIENT = dt.timedelta(minutes=10)
ECHO_WITHIN = dt.timedelta(minutes=2)
MAX_REASON = 500


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@functools.lru_cache(maxsize=8)
def _why_off(base_url: str, mode: str) -> str:
    parts = urlsplit(base_url)
    if mode == "off":
        return "CALSYNC_PUSH is off"
    if mode == "on" and parts.scheme in ("http", "https") and parts.hostname:
        return ""  # asked for: the providers (or local stand-ins) can reach this address
    if parts.scheme != "https" or not parts.hostname:
        return "CALSYNC_BASE_URL is not an https:// URL"
    host = parts.hostname
    if host == "localhost" or host.endswith(".localhost") or "." not in host and ":" not in host:
        return f"CALSYNC_BASE_URL names {host}, which Google and Microsoft cannot reach"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return ""
    return "" if ip.is_global else f"CALSYNC_BASE_URL names the private address {host}"


def why_off(settings) -> str:
    """'' when push is on; otherwise why it is off, in words."""
    return _why_off(settings.base_url, settings.push)


def enabled(settings) -> bool:
    return not why_off(settings)


def status_line(settings) -> str:
    """What the service says about push once, at start-up."""
    reason = why_off(settings)
    if reason:
        return (
            f"push is off ({reason}): Google and Microsoft changes are found by polling every "
            f"{settings.sync_interval} s and the health sweep"
        )
    return f"push is on: Google and Microsoft notify {address(settings, 'google').rsplit('/', 1)[0]}/…"


def address(settings, provider: str) -> str:
    return f"{settings.base_url.rstrip('/')}/push/{provider}"


def watched(cal: m.Calendar) -> bool:
    """A calendar calsync reads: the primary calendar and the busy sources."""
    return bool(cal.is_destination or cal.is_busy_source)


def _set_check(cal: m.Calendar, when: dt.datetime | None) -> None:
    """The calendar's next check, unless a notification changed it since this sync read it (Graph's
    lifecycle events make it due at once, core.push_inbox): theirs is newer, so it stays."""
    K = m.Calendar
    read = K.push_check_at.is_null() if cal.push_check_at is None else K.push_check_at == cal.push_check_at
    if K.update(push_check_at=when).where(K.id == cal.id, read).execute():
        cal.push_check_at = when
        cal._dirty.discard("push_check_at")  # type: ignore[attr-defined]  # peewee's set of changed fields (only_save_dirty), not in its types; written here, so the run's own save() must not write it again


def _next_check(channel: m.PushChannel, now: dt.datetime) -> dt.datetime:
    if channel.state == m.PUSH_FAILED:
        return now + RETRY_REFUSED
    moments = [channel.expires_at - RENEW_BEFORE] if channel.expires_at else [now + RETRY_REFUSED]
    if channel.awaiting_since is not None and channel.state == m.PUSH_LIVE:
        moments.append(channel.awaiting_since + ECHO_WITHIN)
    return max(min(moments), now + dt.timedelta(seconds=30))


# -- after a sync: keep every read calendar watched ----------------------------------------


def keep_watching(rt, conn: m.Connection, calendars: list[m.Calendar], provider) -> None:
    """Open, renew or judge the channels of the calendars whose check is due (in memory first:
    nothing is read when none is). Never fails the sync: a refusal is kept on the channel."""
    if conn.provider not in PROVIDERS or not hasattr(provider, "watch") or not enabled(rt.settings):
        return
    now = clock.now()
    due = [c for c in calendars if watched(c) and (c.push_check_at is None or c.push_check_at <= now)]
    if not due:
        return
    channels = {ch.calendar_id: ch for ch in m.PushChannel.select().where(m.PushChannel.calendar.in_([c.id for c in due]))}
    for cal in due:
        try:
            _look_at(rt, conn, cal, channels.get(cal.id), provider, now)
        except ProviderError as exc:  # transient (the refusals are kept by _open)
            log.warning("push channel of calendar %s (connection %s) not kept: %s", cal.id, conn.id, exc.reason)
            _set_check(cal, now + RETRY_TRANSIENT)


def _look_at(rt, conn, cal: m.Calendar, channel: m.PushChannel | None, provider, now: dt.datetime) -> None:
    if channel is None or channel.state == m.PUSH_FAILED:
        _open(rt, conn, cal, provider, now, replacing=channel)
        return
    if channel.state == m.PUSH_LIVE and channel.awaiting_since is not None and now - channel.awaiting_since >= ECHO_WITHIN:
        channel.state = m.PUSH_SILENT
        channel.reason = (
            f"no notification came within {int(ECHO_WITHIN.total_seconds() // 60)} minutes of calsync's "
            f"own change on {channel.awaiting_since:%Y-%m-%d %H:%M} UTC; polling carries this calendar"
        )
        channel.save()
        log.warning("push channel %s of calendar %s (connection %s) is silent", channel.id, cal.id, conn.id)
    if channel.state == m.PUSH_REAUTHORIZE or channel.expires_at is None or channel.expires_at - now <= RENEW_BEFORE:
        _renew(rt, conn, cal, channel, provider, now)
        return
    _set_check(cal, _next_check(channel, now))


def _open(rt, conn, cal: m.Calendar, provider, now: dt.datetime, replacing: m.PushChannel | None = None) -> None:
    """A new channel; the one it replaces is closed only once the new one is open."""
    token = secrets.token_urlsafe(32)
    wanted_id = f"calsync-{uuid.uuid4().hex}"
    # Written before the provider is asked: Google sends its "sync" message as it opens the
    # channel, possibly before it answers (core.push_inbox knows a channel still opening by its
    # empty resource id).
    opening = m.PushChannel.create(
        calendar=cal, provider=conn.provider, channel_id=wanted_id, token_hash=token_hash(token), state=m.PUSH_LIVE, created_at=now
    )
    try:
        got = provider.watch(cal.remote_id, wanted_id, address(rt.settings, conn.provider), token, TTL[conn.provider])
    except ProviderError as exc:
        m.PushChannel.delete().where(m.PushChannel.id == opening.id).execute()
        if exc.transient:
            raise
        reason = f"the provider refused a push channel: {exc.reason}"[:MAX_REASON]
        if replacing is not None:
            # A channel being replaced delivers until it expires; one that has expired does not.
            replacing.reason = reason
            if replacing.state == m.PUSH_FAILED or (replacing.expires_at and replacing.expires_at <= now):
                replacing.state, replacing.created_at = m.PUSH_FAILED, now
            replacing.save()
        else:
            m.PushChannel.create(
                calendar=cal, provider=conn.provider, channel_id=wanted_id, state=m.PUSH_FAILED, reason=reason, created_at=now
            )
        log.info("push refused for calendar %s (connection %s): %s", cal.id, conn.id, exc.reason)
        _set_check(cal, now + RETRY_REFUSED)
        return
    channel = opening
    channel.channel_id, channel.resource_id, channel.expires_at = got.channel_id, got.resource_id, got.expires_at
    channel.save()
    if replacing is not None:
        _close(provider, replacing)
    _set_check(cal, _next_check(channel, now))
    log.info("push channel open for calendar %s (connection %s) until %s", cal.id, conn.id, got.expires_at)


def _renew(rt, conn, cal: m.Calendar, channel: m.PushChannel, provider, now: dt.datetime) -> None:
    expires = provider.renew_watch(channel.channel_id, TTL[conn.provider])
    if expires is None:  # Google channels are never extended; a Graph subscription may be gone
        _open(rt, conn, cal, provider, now, replacing=channel)
        return
    channel.expires_at = expires
    channel.state, channel.reason, channel.awaiting_since = m.PUSH_LIVE, "", None
    channel.save()
    _set_check(cal, _next_check(channel, now))


def _close(provider, channel: m.PushChannel) -> None:
    """Stop a channel at the provider (best effort: an unstopped one expires by itself) and forget it."""
    if channel.state != m.PUSH_FAILED and provider is not None:
        try:
            provider.unwatch(channel.channel_id, channel.resource_id)
        except ProviderError as exc:
            log.info("push channel %s not stopped at the provider (it expires by itself): %s", channel.id, exc.reason)
    m.PushChannel.delete().where(m.PushChannel.id == channel.id).execute()


def close_all(rt, conn: m.Connection, provider=None) -> int:
    """Stop-sync and provider switch: every channel of the connection closed; returns how many."""
    channels = list(m.PushChannel.select().join(m.Calendar).where(m.Calendar.connection == conn.id))
    if not channels:
        return 0
    if provider is None and conn.provider in PROVIDERS and conn.credentials:
        try:
            provider = rt.provider_for(conn)
        except Exception as exc:  # noqa: BLE001 - unreadable credentials: the channels expire by themselves
            log.info("push channels of connection %s not stopped at the provider: %s", conn.id, exc)
    for channel in channels:
        _close(provider if hasattr(provider, "unwatch") else None, channel)
    m.Calendar.update(push_check_at=None).where(m.Calendar.connection == conn.id).execute()
    if provider is not None:
        rt.keep_secrets(conn, provider)
    return len(channels)


# -- our own writes must come back as notifications -----------------------------------------


def expect_echo(cal: m.Calendar) -> None:
    """calsync just wrote to ``cal``: its live channel must say so within ECHO_WITHIN."""
    if cal.push_check_at is None:
        return
    now = clock.now()
    changed = (
        m.PushChannel.update(awaiting_since=now)
        .where(m.PushChannel.calendar == cal.id, m.PushChannel.state == m.PUSH_LIVE, m.PushChannel.awaiting_since.is_null())
        .execute()
    )
    if changed and cal.push_check_at > now + ECHO_WITHIN:
        _set_check(cal, now + ECHO_WITHIN)


# -- what the views show ---------------------------------------------------------------------


def view(settings, conn: m.Connection) -> dict:
    """How a connection learns of changes: push (per calendar) or polling, and why."""
    if conn.provider not in PROVIDERS:
        return {"mode": "polling", "reason": f"{provider_name(conn.provider)} has no push: calsync polls it", "calendars": []}
    reason = why_off(settings)
    if reason:
        return {"mode": "polling", "reason": f"push is off: {reason}", "calendars": []}
    rows = m.PushChannel.select(m.PushChannel, m.Calendar).join(m.Calendar).where(m.Calendar.connection == conn.id).order_by(m.Calendar.id)
    calendars = [
        {
            "calendar_id": ch.calendar.id,
            "calendar": ch.calendar.name,
            "state": ch.state,
            "reason": ch.reason,
            "expires_at": ch.expires_at.isoformat() if ch.expires_at else None,
            "last_message_at": ch.last_message_at.isoformat() if ch.last_message_at else None,
            "messages": ch.messages,
        }
        for ch in rows
    ]
    live = [c for c in calendars if c["state"] == m.PUSH_LIVE]
    if calendars and len(live) == len(calendars):
        return {"mode": "push", "reason": "", "calendars": calendars}
    if live:
        return {"mode": "partly push", "reason": "some calendars are polled (see each one)", "calendars": calendars}
    if calendars:
        return {"mode": "polling", "reason": calendars[0]["reason"] or "the push channels are not delivering", "calendars": calendars}
    return {"mode": "polling", "reason": "no push channel is open yet (one opens after the next successful sync)", "calendars": []}
