"""What support and the host read: status lists, connection detail, staff, audit, busy times."""

from __future__ import annotations

import datetime as dt

import peewee as pw

import models as m
from core import clock, sync_runs, waiting
from core.actions.common import InvalidInput, _connection, _iso, _parse_time, _staff
from core.actions.views import ROW_FIELDS, account_identity, appointment_dict, connection_dict, flags_for, status_row

_TIME_FIELDS = {name for name, field in m.Connection._meta.fields.items() if isinstance(field, m.UTCDateTimeField)}


def _raw(query):
    """The database's rows as they come: text and numbers need no conversion, and the times are
    converted by the caller (:func:`models.utc_from_db`), not column by column by peewee."""
    return m.db.execute_sql(*query.sql())


def list_statuses(rt, staff_email: str | None = None, limit: int | None = None, staff_ids: list[int] | None = None) -> list[dict]:
    """One row per connection, broken first; a handful of queries whatever the count.
    ``limit``: only the first rows of that order (the console draws its first screenful from them);
    ``staff_ids``: only these staff members' connections.

    Plain tuples of the listed columns, not model objects: the console opens on
    10,000 connections, and building a Connection and a Staff per row cost half
    a second there.
    """
    C, S = m.Connection, m.Staff
    order = pw.Case(C.status, [(s, i) for i, s in enumerate(m.BROKEN_STATUSES)], len(m.BROKEN_STATUSES))
    staff_columns = {"staff": S.email, "staff_name": S.name, "timezone": S.timezone}
    columns = [staff_columns[f] if f in staff_columns else getattr(C, f) for f in ROW_FIELDS]
    # Broken first, then the ones failing quietly (before unreachable), then the rest.
    query = C.select(*columns, C.staff, C.account_key).join(S).order_by(order, C.failing_since.is_null(), C.id)
    if staff_email is not None:
        query = query.where(S.email == _staff(staff_email).email)  # an unknown e-mail is NotFoundError, not []
    if staff_ids is not None:
        query = query.where(C.staff.in_(staff_ids))
    if limit is not None:
        query = query.limit(max(int(limit), 0))
    missed, errors = waiting.missed_counts(), waiting.error_counts()
    orphaned: dict[int, int] = dict(
        m.tuples(
            m.AppointmentLink.select(m.Calendar.connection, pw.fn.COUNT(m.AppointmentLink.id))
            .join(m.Calendar)
            .where(m.AppointmentLink.state == m.LINK_ORPHANED)
            .group_by(m.Calendar.connection)
        )
    )
    accounts: dict[tuple, list] = {}
    for provider, key, server, account, staff_id in _raw(
        C.select(C.provider, C.account_key, C.server_url, C.account, C.staff).where(C.status != m.STOPPED)
    ):
        accounts.setdefault(account_identity(provider, key, server, account), []).append(staff_id)
    destinations: dict[int, str] = dict(
        m.tuples(m.Calendar.select(m.Calendar.connection, m.Calendar.name).where(m.Calendar.is_primary == True))
    )
    # Times are shown as text, read straight from the stored text; failing_since is also
    # written out in words (core.messages.failing_reason), so it stays a datetime.
    times = [i for i, f in enumerate(ROW_FIELDS) if f in _TIME_FIELDS and f != "failing_since"]
    failing_at = ROW_FIELDS.index("failing_since")
    words: dict = {}  # the sentences of each (status, provider, calendar, ...) seen: the same for many rows
    rows = []
    for row in _raw(query):
        row = list(row)
        for i in times:
            row[i] = m.iso_from_db(row[i])
        row[failing_at] = m.utc_from_db(row[failing_at])
        values = dict(zip(ROW_FIELDS, row))
        staff_id, key = row[len(ROW_FIELDS)], row[len(ROW_FIELDS) + 1]
        others = list(accounts.get(account_identity(values["provider"], key, values["server_url"], values["account"]), []))
        if values["status"] != m.STOPPED and staff_id in others:
            others.remove(staff_id)
        cid = values["id"]
        rows.append(
            status_row(
                values,
                missed=missed.get(cid, 0),
                errors=errors.get(cid, 0),
                orphaned=orphaned.get(cid, 0),
                flags=flags_for(staff_id, others),
                destination=destinations.get(cid),
                words=words,
            )
        )
    return rows


def get_connection(rt, conn_id) -> dict:
    return connection_dict(_connection(conn_id))


def connection_detail(rt, conn_id, runs: int = 20, history: int = 50) -> dict:
    """Everything support needs about one connection, in one call."""
    conn = _connection(conn_id)
    data = connection_dict(conn)
    data["history"] = [
        {"at": _iso(c.at), "old": c.old, "new": c.new, "cause": c.cause, "provider_answer": c.provider_answer}
        for c in conn.status_changes.order_by(m.StatusChange.at.desc(), m.StatusChange.id.desc()).limit(history)
    ]
    data["incidents"] = [
        {
            "id": i.id,
            "kind": i.kind,
            "reason": i.reason,
            "opened_at": _iso(i.opened_at),
            "last_seen_at": _iso(i.last_seen_at),
            "failures": i.failures,
            "reminders": i.reminders,
            "escalated_at": _iso(i.escalated_at),
            "resolved_at": _iso(i.resolved_at),
            "resolution": i.resolution,
            "missed_delivered": i.missed_delivered,
        }
        for i in conn.incidents.order_by(m.Incident.opened_at.desc(), m.Incident.id.desc())
    ]
    # Newest first; a stretch of no-change runs is one entry (``runs`` > 1), the open one first.
    stretch = sync_runs.open_stretch(conn)
    rows = conn.sync_runs.order_by(m.SyncRun.started_at.desc(), m.SyncRun.id.desc()).limit(runs)
    data["sync_runs"] = [_run_dict(r) for r in ([stretch] if stretch else []) + [r.__data__ for r in rows]][:runs]
    data["missed_appointments"] = [appointment_dict(a) for a in waiting.missed_appointments(conn)]
    data["write_errors"] = [
        {**appointment_dict(link.appointment), "calendar": link.calendar.name, "error": link.last_error, "failures": link.write_failures}
        for link in waiting.write_errors(conn)
    ]
    data["relink_link"] = _link_state(conn)
    from core import push  # pulls in the HTTP client: `status` and the listings never need it

    data["push"] = push.view(rt.settings, conn)
    return data


_RUN_FIELDS = ("duration_ms", "requests", "created", "updated", "deleted", "entries_read", "applied_back", "outcome", "error", "runs")


def _run_dict(run: dict) -> dict:
    """A SyncRun's columns (or an open stretch, core.sync_runs) as the views show them."""
    return {"started_at": _iso(run["started_at"]), "finished_at": _iso(run["finished_at"]), **{f: run[f] for f in _RUN_FIELDS}}


def _link_state(conn: m.Connection) -> dict | None:
    link = conn.relink_links.order_by(m.RelinkLink.created_at.desc(), m.RelinkLink.id.desc()).first()
    if link is None:
        return None
    state = "used" if link.used_at else "replaced" if link.revoked_at else "expired" if link.expires_at <= clock.now() else "valid"
    return {"issued_at": _iso(link.created_at), "expires_at": _iso(link.expires_at), "state": state, "issued_by": link.issued_by}


def staff_overview(rt, limit: int | None = None) -> list[dict]:
    """Staff members with their connections (the rows of :func:`list_statuses`) and whether they
    have a feed URL: a handful of queries whatever the count (the console's staff screen opens on
    10,000 staff members). ``limit``: only the first staff members by name (and their connections)."""
    S = m.Staff
    query = S.select(S.id, S.email, S.name, S.slack_id, S.timezone, S.feed_token_hash, S.feed_generation).order_by(S.name, S.email)
    if limit is not None:
        query = query.limit(max(int(limit), 0))
    staff = list(m.tuples(query))
    by_email: dict[str, list[dict]] = {}
    for row in list_statuses(rt, staff_ids=[s[0] for s in staff] if limit is not None else None):
        by_email.setdefault(row["staff"], []).append(row)
    rows = []
    for staff_id, email, name, slack_id, timezone, token_hash, generation in staff:
        conns = sorted(by_email.get(email, ()), key=lambda c: c["id"])
        rows.append(
            {
                "id": staff_id,
                "email": email,
                "name": name,
                "slack_id": slack_id,
                "timezone": timezone,
                "connections": len(conns),
                "feed": "active" if token_hash else "none",
                "feed_resets": max(generation - 1, 0),
                "connection_list": conns,
                "broken": sum(1 for c in conns if c["status"] in m.BROKEN_STATUSES),
            }
        )
    return rows


def status_counts(rt) -> dict:
    """Connections per status, plus ``failing``: active ones whose recent runs failed."""
    counts = dict.fromkeys(m.STATUSES, 0)
    for status, count in m.tuples(m.Connection.select(m.Connection.status, pw.fn.COUNT(m.Connection.id)).group_by(m.Connection.status)):
        counts[status] = count
    counts["failing"] = m.Connection.select().where(m.Connection.status == m.ACTIVE, m.Connection.failing_since.is_null(False)).count()
    return counts


def busy_times(rt, staff_email: str, start, end) -> dict:
    from core import hostapi

    staff = _staff(staff_email)
    start_at = _parse_time(start, dt.UTC, "from")
    end_at = _parse_time(end, dt.UTC, "to")
    if end_at <= start_at:
        raise InvalidInput("'to' must be after 'from'")
    if end_at - start_at > hostapi.MAX_RANGE:
        raise InvalidInput("ask for at most 366 days of busy times at once")
    return hostapi.busy(rt, staff, start_at, end_at)


def staff_connections(rt, staff_email: str) -> list[dict]:
    from core import hostapi

    return hostapi.connections(_staff(staff_email))
