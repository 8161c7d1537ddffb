"""The one API the adapters call: CLI, console, Slack bot and web pages.

Every function takes the :class:`core.runtime.Runtime`, does one thing the
SPEC names, and returns plain data (dicts and lists that serialise to JSON) or
raises :class:`ActionError` with a plain-words reason. Support actions are
audited with the ``actor`` that did them. The functions live in one module
per noun; this package is their one front door, so adapters write
``actions.test_connection(rt, 7)`` whatever module holds it.
"""

from core.actions.appointments import (
    book,
    cancel_appointment,
    download_missed,
    get_appointment,
    missed_appointments,
    upsert_appointment,
)
from core.actions.common import ActionError, InvalidId, InvalidInput, NotFoundError, _connection, _validate_url, audit, new_token
from core.actions.connections import (
    connect,
    list_calendars,
    refresh_calendars,
    set_destination,
    test_connection,
    update_credentials,
)
from core.actions.feeds import feed_reset, feed_url
from core.actions.auditing import audit_log
from core.actions.inspection import (
    busy_times,
    connection_detail,
    get_connection,
    list_statuses,
    staff_connections,
    staff_overview,
    status_counts,
)
from core.actions.keys import apikey_create, apikey_list, apikey_revoke, rotate_key
from core.actions.links import (
    connect_by_link,
    connect_link,
    connect_link_info,
    connect_link_staff,
    download_by_link,
    download_link,
    give_back_connect_link,
    spend_connect_link,
)
from core.actions.relinking import (
    complete_relink,
    issue_relink,
    relink_choose_calendar,
    relink_page,
    relink_test,
    request_new_link,
)
from core.actions.oauth import oauth_callback, oauth_connect_url, oauth_relink_url
from core.actions.staff import add_staff, list_staff
from core.actions.stopping import stop_plan, stop_sync
from core.actions.syncing import list_entries, sync_now, sync_summary
from core.actions.views import appointment_dict, calendar_dict, connection_dict, connection_flags, staff_dict

__all__ = [
    "ActionError", "InvalidId", "InvalidInput", "NotFoundError", "add_staff", "apikey_create", "apikey_list", "apikey_revoke",
    "appointment_dict", "audit", "audit_log", "book", "busy_times", "calendar_dict", "cancel_appointment",
    "complete_relink", "connect", "connect_by_link", "connect_link", "connect_link_info", "connect_link_staff",
    "connection_detail", "connection_dict", "connection_flags", "download_by_link", "download_link", "download_missed",
    "feed_reset", "feed_url", "get_appointment", "get_connection", "issue_relink", "list_calendars", "list_entries",
    "list_staff", "list_statuses", "missed_appointments", "new_token", "oauth_callback", "oauth_connect_url",
    "oauth_relink_url", "refresh_calendars", "relink_choose_calendar", "relink_page", "relink_test", "request_new_link", "rotate_key",
    "set_destination", "give_back_connect_link", "spend_connect_link", "staff_connections", "staff_dict", "staff_overview", "status_counts",
    "stop_plan", "stop_sync", "sync_now", "sync_summary", "test_connection", "update_credentials",
    "upsert_appointment", "_connection", "_validate_url",
]
