"""The one API the adapters call: CLI, console, Slack bot and web pages.

Every function takes the :class:`core.runtime.Runtime`, does one thing the
SPEC names, and returns plain data (dicts and lists that serialise to JSON) or
raises :class:`ActionError` with a plain-words reason. Support actions are
audited with the ``actor`` that did them. The functions live in one module
per noun; this package is their one front door, so adapters write
``actions.test_connection(rt, 7)`` whatever module holds it.

Each name is loaded from its module on first use (PEP 562): a command that needs one action
(``status``) does not import what every other action needs (HTTP, iCalendar, OAuth).
"""

from __future__ import annotations

import importlib

# name -> the module of this package that defines it
_HOME = {
    "book": "appointments",
    "cancel_appointment": "appointments",
    "download_missed": "appointments",
    "get_appointment": "appointments",
    "missed_appointments": "appointments",
    "upsert_appointment": "appointments",
    "audit_log": "auditing",
    "ActionError": "common",
    "InvalidId": "common",
    "InvalidInput": "common",
    "NotFoundError": "common",
    "_connection": "common",
    "_validate_url": "common",
    "audit": "common",
    "new_token": "common",
    "calendar_roles": "roles",
    "choose_calendars": "roles",
    "set_calendar_roles": "roles",
    "connect": "connections",
    "list_calendars": "connections",
    "refresh_calendars": "connections",
    "set_destination": "connections",
    "test_connection": "connections",
    "update_credentials": "connections",
    "feed_reset": "feeds",
    "feed_url": "feeds",
    "busy_times": "inspection",
    "connection_detail": "inspection",
    "get_connection": "inspection",
    "list_statuses": "inspection",
    "staff_connections": "inspection",
    "staff_overview": "inspection",
    "status_counts": "inspection",
    "apikey_create": "keys",
    "apikey_list": "keys",
    "apikey_revoke": "keys",
    "rotate_key": "keys",
    "connect_by_link": "links",
    "connect_link": "links",
    "connect_link_info": "links",
    "connect_link_staff": "links",
    "download_by_link": "links",
    "download_link": "links",
    "give_back_connect_link": "links",
    "spend_connect_link": "links",
    "oauth_callback": "oauth",
    "oauth_connect_url": "oauth",
    "oauth_relink_url": "oauth",
    "complete_relink": "relinking",
    "issue_relink": "relinking",
    "relink_choose_calendar": "relinking",
    "relink_page": "relinking",
    "relink_test": "relinking",
    "request_new_link": "relinking",
    "add_staff": "staff",
    "list_staff": "staff",
    "stop_plan": "stopping",
    "stop_sync": "stopping",
    "list_entries": "syncing",
    "sync_now": "syncing",
    "sync_summary": "syncing",
    "appointment_dict": "views",
    "calendar_dict": "views",
    "connection_dict": "views",
    "connection_flags": "views",
    "staff_dict": "views",
}

__all__ = sorted(_HOME)  # noqa: PLE0605 — a list built from _HOME, so the two cannot disagree


def __getattr__(name: str):
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'core.actions' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"core.actions.{module}"), name)
    globals()[name] = value  # found once; later lookups do not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOME))
