"""Models as the plain data every adapter shows (dicts that serialise to JSON)."""

from __future__ import annotations

import models as m
from core import waiting, wording
from core.actions.common import _iso
from core.messages import STATUS_ADVICE, failing_reason, meaning


def staff_dict(staff: m.Staff) -> dict:
    return {
        "id": staff.id,
        "email": staff.email,
        "name": staff.name,
        "slack_id": staff.slack_id,
        "timezone": staff.timezone,
        "connections": staff.connections.count(),
    }


def account_identity(provider: str, account_key: str, server_url: str, account: str) -> tuple:
    """What "the same external account" compares: the fingerprint (rows written before it existed:
    server and account)."""
    return (provider, account_key) if account_key else (provider, "", server_url, account)


def _same_account(conn: m.Connection):
    """The other live connections to the same external account (compared by fingerprint)."""
    same = (
        (m.Connection.account_key == conn.account_key)
        if conn.account_key
        else ((m.Connection.account_key == "") & (m.Connection.server_url == conn.server_url) & (m.Connection.account == conn.account))
    )
    return m.Connection.select().where(
        m.Connection.provider == conn.provider,
        same,
        m.Connection.status != m.STOPPED,
        m.Connection.id != conn.id,
    )


def flags_for(staff_id: int, others: list[int]) -> list[str]:
    """``others``: the staff ids of the *other* live connections to the same account."""
    return (["duplicate"] if staff_id in others else []) + (["shared"] if any(o != staff_id for o in others) else [])


def connection_flags(conn: m.Connection) -> list[str]:
    return flags_for(conn.staff_id, [o.staff_id for o in _same_account(conn)])


# The columns a status row is made of, in the order list_statuses selects them.
# "staff", "staff_name" and "timezone" are the staff member's (e-mail, name, zone).
ROW_FIELDS = (
    "id",
    "staff",
    "staff_name",
    "timezone",
    "provider",
    "account",
    "status",
    "reason",
    "status_since",
    "last_sync_at",
    "last_check_at",
    "last_error",
    "last_success_at",
    "server_url",
    "failing_since",
    "failures_in_row",
)


_STAFF_FIELDS = ("staff", "staff_name", "timezone")


def status_row(
    values: dict, *, missed: int, errors: int, orphaned: int, flags: list[str], destination: str | None, words: dict | None = None
) -> dict:
    """One connection as every list shows it (the CLI's `status`, the console, Slack, App Home).

    ``words``: a dict kept across the rows of one listing, so the sentences of rows that only
    differ in who and when are worded once."""
    status = values["status"]
    failing = status not in (m.STOPPED,) and values["failing_since"] is not None
    key = (status, values["provider"], values["server_url"], destination, failing, missed)
    said = words.get(key) if words is not None else None
    if said is None:
        said = _status_words(status, values["provider"], values["server_url"], destination, failing, missed)
        if words is not None:
            words[key] = said
    reason = values["reason"] or meaning(status)
    if failing and status == m.ACTIVE:
        reason = failing_reason(values["failures_in_row"], values["failing_since"], values["last_error"])
    return {
        "id": values["id"],
        "staff": values["staff"],
        "provider": values["provider"],
        "account": values["account"],
        "status": status,
        "reason": reason,
        "since": _iso(values["status_since"]),
        "last_sync_at": _iso(values["last_sync_at"]),
        "last_check_at": _iso(values["last_check_at"]),
        "missed": missed,
        "meaning": meaning(status),
        "advice": STATUS_ADVICE.get(status, ""),
        "last_error": values["last_error"],
        "last_success_at": _iso(values["last_success_at"]),
        "server": values["server_url"],
        "destination": destination,
        "flags": flags,
        "failing": failing,
        "failing_since": _iso(values["failing_since"]) if failing else None,
        "consecutive_failures": values["failures_in_row"] if failing else 0,
        "errors": errors,
        "orphaned": orphaned,
        # The words every surface shows (core.wording): what broke and what waits, what the
        # staff member does next, the provider as people name it, and their zone for times.
        "staff_name": values["staff_name"],
        "timezone": values["timezone"],
        **said,
    }


def _status_words(status: str, provider: str, server_url: str, destination: str | None, failing: bool, missed: int) -> dict:
    return {
        "provider_name": wording.provider_label(provider, server_url),
        "problem": wording.problem(status, provider, server_url=server_url, calendar=destination, failing=failing),
        "headline": wording.headline(status, provider, server_url=server_url, calendar=destination, waiting=missed, failing=failing),
        "todo": wording.staff_advice(status, provider, server_url),
    }


def connection_dict(conn: m.Connection, with_calendars: bool = True, missed: int | None = None) -> dict:
    staff = conn.staff
    values = {f: getattr(conn, f) for f in ROW_FIELDS if f not in _STAFF_FIELDS} | {
        "staff": staff.email,
        "staff_name": staff.name,
        "timezone": staff.timezone,
    }
    calendars = [calendar_dict(c, conn) for c in conn.calendars.order_by(m.Calendar.id)] if with_calendars else []
    data = status_row(
        values,
        missed=waiting.missed_count(conn) if missed is None else missed,
        errors=len(waiting.write_errors(conn)),
        orphaned=m.AppointmentLink.select()
        .join(m.Calendar)
        .where(m.Calendar.connection == conn, m.AppointmentLink.state == m.LINK_ORPHANED)
        .count(),
        flags=connection_flags(conn) if with_calendars else [],
        destination=next((c["name"] for c in calendars if c["destination"]), None),
    )
    if with_calendars:
        data["calendars"] = calendars
    return data


def _seen_at(cal: m.Calendar, conn: m.Connection | None):
    """When a run last read the calendar or saw it unchanged (a no-change run stamps the
    connection's ``quiet_at``, not each calendar)."""
    quiet = conn.quiet_at if conn is not None else None
    if cal.last_synced_at is None or quiet is None:
        return cal.last_synced_at  # a calendar never read was never seen unchanged either
    return max(cal.last_synced_at, quiet)


def calendar_dict(cal: m.Calendar, conn: m.Connection | None = None) -> dict:
    """``choosable`` (with ``conn``): a picker may offer it as the new primary: writable, not a
    read-only feed, and not the deleted primary that is kept only until another is chosen."""
    data = {
        "id": cal.id,
        "name": cal.name,
        "primary": cal.is_primary,
        "busy": cal.is_busy_source,
        "write": cal.is_destination,
        "writable": cal.writable,
        "problem": cal.problem,
        # The names before per-calendar roles (issue 18), kept for scripts that read them.
        "destination": cal.is_primary,
        "busy_source": cal.is_busy_source,
        "last_synced_at": _iso(_seen_at(cal, conn)),
    }
    if conn is not None:
        # The primary of a missing or read-only connection is what broke: never offered as the way out.
        broken_primary = cal.is_primary and conn.status in (m.CALENDAR_MISSING, m.READ_ONLY)
        data["choosable"] = bool(cal.writable and conn.provider != "ics" and not broken_primary)
    return data


def appointment_dict(a: m.Appointment) -> dict:
    return {
        "id": a.external_id,
        "staff": a.staff.email,
        "uid": a.uid,
        "start": _iso(a.starts_at),
        "end": _iso(a.ends_at),
        "subject": a.subject,
        "description": a.description,
        "location": a.location,
        "cancelled": a.cancelled,
        "cancel_reason": a.cancel_reason,
        "version": a.version,
    }
