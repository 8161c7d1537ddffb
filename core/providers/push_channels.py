"""Opening, renewing and closing push channels at Google and Microsoft (used by :mod:`core.push`).

Mixed into the providers (``GoogleProvider``, ``MicrosoftProvider``); each method is one call
through the provider's own ``_call``, so errors are the provider's typed ones.

* Google (developers.google.com/calendar/api/guides/push, v3/reference/events/watch,
  v3/reference/channels/stop): ``POST calendars/{id}/events/watch`` with a ``web_hook``
  channel of our id, our HTTPS address, a secret ``token`` (echoed in ``X-Goog-Channel-Token``
  on every notification, at most 256 characters) and ``params.ttl``; the answer names the
  ``resourceId`` and the ``expiration`` (milliseconds since the epoch). A channel cannot be
  renewed: a new one is opened before the old one is stopped (``POST channels/stop`` with
  ``id`` and ``resourceId``).
* Microsoft Graph (graph/api/subscription-post-subscriptions, subscription-update,
  subscription-delete, graph/change-notifications-lifecycle-events): ``POST /subscriptions``
  on ``me/calendars/{id}/events`` for created, updated and deleted events, with a secret
  ``clientState`` (at most 128 characters) and the lifecycle URL; Graph checks both URLs with
  a ``validationToken`` before it answers. An events subscription lasts at most 10,080
  minutes; ``PATCH`` with a new ``expirationDateTime`` renews it, and also reauthorizes it
  after a ``reauthorizationRequired`` lifecycle notification.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import quote

import requests

from core import clock
from core.providers.base import BadData

GRAPH_MAX_TTL = dt.timedelta(minutes=10080)


@dataclasses.dataclass
class Watched:
    """A channel the provider accepted."""

    channel_id: str
    resource_id: str
    expires_at: dt.datetime


def _expiry_from_ms(value, fallback: dt.datetime) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(int(str(value)) / 1000, dt.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return fallback


def _expiry_from_iso(value, fallback: dt.datetime) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return fallback
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


class GoogleChannels:
    """``events.watch`` and ``channels.stop`` (mixed into GoogleProvider)."""

    # What GoogleProvider supplies:
    if TYPE_CHECKING:

        @property
        def base(self) -> str: ...

    _call: Callable[..., requests.Response]
    _json: Callable[[requests.Response], dict]
    _calendar_url: Callable[[str], str]

    def watch(self, calendar_id: str, channel_id: str, address: str, token: str, ttl: dt.timedelta) -> Watched:
        body = {"id": channel_id, "type": "web_hook", "address": address, "token": token, "params": {"ttl": str(int(ttl.total_seconds()))}}
        answer = self._json(self._call("POST", f"{self._calendar_url(calendar_id)}/events/watch", calendar=True, json=body))
        resource_id = str(answer.get("resourceId") or "")
        if not resource_id:
            raise BadData("Google Calendar opened a push channel without naming its resource")
        return Watched(
            channel_id=channel_id, resource_id=resource_id, expires_at=_expiry_from_ms(answer.get("expiration"), clock.now() + ttl)
        )

    def renew_watch(self, channel_id: str, ttl: dt.timedelta) -> dt.datetime | None:
        """Google channels cannot be extended: None, and the caller opens a new one."""
        return None

    def unwatch(self, channel_id: str, resource_id: str) -> None:
        self._call("POST", f"{self.base}/channels/stop", expect=(200, 204, 404), json={"id": channel_id, "resourceId": resource_id})


class GraphSubscriptions:
    """Graph subscriptions on a calendar's events (mixed into MicrosoftProvider)."""

    # What MicrosoftProvider supplies:
    if TYPE_CHECKING:

        @property
        def base(self) -> str: ...

    _call: Callable[..., requests.Response]
    _json: Callable[[requests.Response], dict]

    @staticmethod
    def _expiry_text(ttl: dt.timedelta) -> str:
        moment = clock.now() + min(ttl, GRAPH_MAX_TTL - dt.timedelta(minutes=5))
        return moment.astimezone(dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    def watch(self, calendar_id: str, channel_id: str, address: str, token: str, ttl: dt.timedelta) -> Watched:
        """``channel_id`` is not Graph's to take: the subscription's id is Graph's own."""
        body = {
            "changeType": "created,updated,deleted",
            "notificationUrl": address,
            "lifecycleNotificationUrl": address,
            "resource": f"me/calendars/{calendar_id}/events",
            "expirationDateTime": self._expiry_text(ttl),
            "clientState": token,
        }
        answer = self._json(
            self._call("POST", f"{self.base}/subscriptions", doing="subscribing to the calendar's changes", calendar=True, json=body)
        )
        if not answer.get("id"):
            raise BadData("Microsoft Graph created a subscription without an id")
        return Watched(
            channel_id=str(answer["id"]),
            resource_id=str(answer.get("resource") or body["resource"]),
            expires_at=_expiry_from_iso(answer.get("expirationDateTime"), clock.now() + ttl),
        )

    def renew_watch(self, channel_id: str, ttl: dt.timedelta) -> dt.datetime | None:
        """The new expiry; None when Graph no longer has the subscription (the caller opens a new one)."""
        response = self._call(
            "PATCH",
            f"{self.base}/subscriptions/{quote(channel_id, safe='')}",
            doing="renewing the calendar's subscription",
            passthrough=(404,),
            json={"expirationDateTime": self._expiry_text(ttl)},
        )
        if response.status_code == 404:
            return None
        answer = self._json(response)
        return _expiry_from_iso(answer.get("expirationDateTime"), clock.now() + ttl)

    def unwatch(self, channel_id: str, resource_id: str) -> None:
        self._call(
            "DELETE",
            f"{self.base}/subscriptions/{quote(channel_id, safe='')}",
            doing="ending the calendar's subscription",
            passthrough=(404,),
        )
