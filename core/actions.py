"""The one API the adapters call: CLI, console, Slack bot and web pages.

Every function takes the :class:`core.runtime.Runtime`, does one thing the
SPEC names, and returns plain data (dicts and lists that serialise to JSON) or
raises :class:`ActionError` with a plain-words reason. Support actions are
audited with the ``actor`` that did them.
"""

from __future__ import annotations

import concurrent.futures
import functools
import datetime as dt
import logging
import re
import secrets
import uuid
import zoneinfo

import peewee as pw

import models as m
from core import clock, health, ics
from core.http import URLNotAllowed, check_url
from core.messages import STATUS_ADVICE, meaning
from core.providers import OAUTH_PROVIDERS, PROVIDERS
from core.providers.base import CalendarState, ProviderError
from core.providers.ics_url import feed_label
from core.sync import SyncReport, sync_connection

log = logging.getLogger("calsync.actions")

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SNAPSHOT_NOTE = (
    "Snapshot from calsync taken {when}: this file will not update. If the appointment is "
    "rescheduled or cancelled later, this copy stays as it is."
)


class ActionError(Exception):
    """The action could not be done; ``str()`` says why in plain words (exit code 1)."""

    exit_code = 1


class InvalidInput(ActionError):
    """The request itself is wrong (a bad e-mail, time, zone...): exit code 2."""

    exit_code = 2


class NotFoundError(ActionError):
    pass


def _iso(value: dt.datetime | None) -> str | None:
    return clock.utc(value).isoformat().replace("+00:00", "Z") if value else None


def audit(actor: str, action: str, target: str = "", detail: str = "", result: str = "ok") -> None:
    m.AuditEntry.create(actor=actor or "system", action=action, target=str(target), detail=detail, result=result)


def audited(action: str):
    """Record a support action that failed (success is recorded by the action, with its details)."""

    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(rt, *args, actor: str = "", **kwargs):
            try:
                return fn(rt, *args, actor=actor, **kwargs)
            except ActionError as exc:
                if actor:
                    target = args[0] if args else kwargs.get("conn_id", "")
                    audit(actor, action, target if target is not None else "", str(exc), result="failed")
                raise

        return wrapper

    return decorate


# -- staff ----------------------------------------------------------------------


def _valid_timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin)") from None
    return name


def _staff(email: str) -> m.Staff:
    staff = m.Staff.get_or_none(m.Staff.email == email.strip().lower())
    if staff is None:
        raise NotFoundError(f"no staff member with e-mail {email!r}; add one with `staff add`")
    return staff


def staff_dict(staff: m.Staff) -> dict:
    return {
        "id": staff.id,
        "email": staff.email,
        "name": staff.name,
        "slack_id": staff.slack_id,
        "timezone": staff.timezone,
        "connections": staff.connections.count(),
    }


def add_staff(rt, email: str, name: str, slack_id: str | None = None, timezone: str = "UTC", actor: str = "") -> dict:
    email = (email or "").strip().lower()
    if not EMAIL_RE.match(email):
        raise InvalidInput(f"{email!r} is not an e-mail address")
    if not (name or "").strip():
        raise InvalidInput("the staff member needs a name (--name)")
    _valid_timezone(timezone)
    if m.Staff.select().where(m.Staff.email == email).exists():
        raise ActionError(f"a staff member with e-mail {email} exists already")
    staff = m.Staff.create(email=email, name=name.strip(), slack_id=slack_id or None, timezone=timezone)
    audit(actor, "staff.add", email)
    return staff_dict(staff)


def list_staff(rt) -> list[dict]:
    return [staff_dict(s) for s in m.Staff.select().order_by(m.Staff.email)]


# -- connections ------------------------------------------------------------------


def _connection(conn_id) -> m.Connection:
    try:
        number = int(conn_id)
    except (TypeError, ValueError):
        raise InvalidInput(f"{conn_id!r} is not a connection id (a number; see `status`)") from None
    conn = m.Connection.get_or_none(m.Connection.id == number)
    if conn is None:
        raise NotFoundError(f"no connection with id {number}; see `status` for the ids")
    return conn


def _same_account(conn: m.Connection):
    return m.Connection.select().where(
        m.Connection.provider == conn.provider,
        m.Connection.server_url == conn.server_url,
        m.Connection.account == conn.account,
        m.Connection.status != m.STOPPED,
        m.Connection.id != conn.id,
    )


def connection_flags(conn: m.Connection) -> list[str]:
    flags = []
    others = list(_same_account(conn))
    if any(o.staff_id == conn.staff_id for o in others):
        flags.append("duplicate")
    if any(o.staff_id != conn.staff_id for o in others):
        flags.append("shared")
    return flags


def connection_dict(conn: m.Connection, with_calendars: bool = True, missed: int | None = None) -> dict:
    data = {
        "id": conn.id,
        "staff": conn.staff.email,
        "provider": conn.provider,
        "account": conn.account,
        "status": conn.status,
        "reason": conn.reason or meaning(conn.status),
        "since": _iso(conn.status_since),
        "last_sync_at": _iso(conn.last_sync_at),
        "last_check_at": _iso(conn.last_check_at),
        "missed": health.missed_count(conn) if missed is None else missed,
        "meaning": meaning(conn.status),
        "advice": STATUS_ADVICE.get(conn.status, ""),
        "last_error": conn.last_error,
        "last_success_at": _iso(conn.last_success_at),
        "server": conn.server_url,
        "flags": connection_flags(conn) if with_calendars else [],
    }
    if with_calendars:
        data["calendars"] = [calendar_dict(c) for c in conn.calendars.order_by(m.Calendar.id)]
        data["destination"] = next((c["name"] for c in data["calendars"] if c["destination"]), None)
    return data


def calendar_dict(cal: m.Calendar) -> dict:
    return {
        "id": cal.id,
        "name": cal.name,
        "destination": cal.is_destination,
        "busy_source": cal.is_busy_source,
        "writable": cal.writable,
        "last_synced_at": _iso(cal.last_synced_at),
    }


def list_statuses(rt, staff_email: str | None = None) -> list[dict]:
    """One row per connection, broken first; a handful of queries whatever the count.

    Plain tuples of the listed columns, not model objects: the console opens on
    10,000 connections, and building a Connection and a Staff per row cost half
    a second there.
    """
    C, S = m.Connection, m.Staff
    order = pw.Case(C.status, [(s, i) for i, s in enumerate(m.BROKEN_STATUSES)], len(m.BROKEN_STATUSES))
    query = (C.select(C.id, S.email, C.provider, C.account, C.status, C.reason, C.status_since, C.last_sync_at,
                      C.last_check_at, C.last_error, C.last_success_at, C.server_url, C.staff)
             .join(S).order_by(order, C.id))
    if staff_email:
        query = query.where(S.email == staff_email.strip().lower())
    missed = dict(
        m.AppointmentLink.select(m.Calendar.connection, pw.fn.COUNT(m.AppointmentLink.id)).join(m.Calendar)
        .where(m.AppointmentLink.state == m.LINK_MISSED).group_by(m.Calendar.connection).tuples())
    accounts: dict[tuple, list] = {}
    for provider, server, account, staff_id in (
            C.select(C.provider, C.server_url, C.account, C.staff).where(C.status != m.STOPPED).tuples()):
        accounts.setdefault((provider, server, account), []).append(staff_id)
    destinations = dict(
        m.Calendar.select(m.Calendar.connection, m.Calendar.name).where(m.Calendar.is_destination == True).tuples())  # noqa: E712
    rows = []
    for (cid, email, provider, account, status, reason, since, last_sync, last_check, last_error, last_success,
         server, staff_id) in query.tuples():
        users = list(accounts.get((provider, server, account), []))
        if status != m.STOPPED and staff_id in users:
            users.remove(staff_id)
        rows.append({
            "id": cid, "staff": email, "provider": provider, "account": account, "status": status,
            "reason": reason or meaning(status), "since": _iso(since), "last_sync_at": _iso(last_sync),
            "last_check_at": _iso(last_check), "missed": missed.get(cid, 0), "meaning": meaning(status),
            "advice": STATUS_ADVICE.get(status, ""), "last_error": last_error, "last_success_at": _iso(last_success),
            "server": server, "destination": destinations.get(cid),
            "flags": (["duplicate"] if staff_id in users else []) + (["shared"] if any(u != staff_id for u in users) else []),
        })
    return rows


def get_connection(rt, conn_id) -> dict:
    return connection_dict(_connection(conn_id))


def _validate_url(rt, url: str, what: str) -> str:
    url = (url or "").strip()
    if url.startswith("webcal://"):
        url = "https://" + url[len("webcal://"):]
    try:
        check_url(url, rt.settings.allow_private_urls)
    except URLNotAllowed as exc:
        raise InvalidInput(f"{what}: {exc}") from None
    return url


def _save_calendars(conn: m.Connection, infos, destination: str | None) -> None:
    chosen = None
    if destination:
        wanted = destination.strip().lower()
        chosen = next((i for i in infos if wanted in (i.name.lower(), i.remote_id.lower())), None)
        if chosen is None:
            names = ", ".join(repr(i.name) for i in infos) or "none"
            raise InvalidInput(f"no calendar named {destination!r} in this account (found: {names})")
        if not chosen.writable:
            raise ActionError(f"the calendar {chosen.name!r} is read-only for this account; choose a writable one")
    elif conn.provider != "ics":
        chosen = next((i for i in infos if i.writable), None)
    for info in infos:
        m.Calendar.create(
            connection=conn,
            remote_id=info.remote_id,
            name=info.name,
            is_destination=info is chosen,
            is_busy_source=True,
            writable=info.writable,
        )


@audited("connection.connect")
def connect(
    rt,
    staff_email: str,
    provider: str,
    *,
    url: str,
    username: str = "",
    password: str = "",
    calendar: str | None = None,
    actor: str = "",
) -> dict:
    """Link a staff member to an external calendar account (credentials tested first)."""
    staff = _staff(staff_email)
    if provider not in PROVIDERS:
        raise InvalidInput(f"unknown provider {provider!r}; this calsync supports: {', '.join(PROVIDERS)}")
    if provider in OAUTH_PROVIDERS:
        raise InvalidInput(f"{provider} accounts are connected by signing in: use the consent link (oauth_connect_url)")
    if provider == "caldav":
        url = _validate_url(rt, url, "the CalDAV URL")
        if not username:
            raise InvalidInput("a CalDAV connection needs --username")
        if not password:
            raise InvalidInput("a CalDAV connection needs a password (read from stdin or CALSYNC_CONNECT_PASSWORD)")
        conn = m.Connection(staff=staff, provider=provider, account=username, server_url=url)
        credentials = {"password": password}
    else:
        url = _validate_url(rt, url, "the calendar URL")
        conn = m.Connection(staff=staff, provider=provider, account=feed_label(url), server_url=feed_label(url))
        credentials = {"url": url}
    prov = rt.provider_for(conn, credentials)
    try:
        infos = prov.discover()
    except ProviderError as exc:
        raise ActionError(f"could not connect: {exc.reason}") from None
    if not infos:
        raise ActionError("the account has no calendar that can hold events")
    if provider == "caldav" and calendar is None and not any(i.writable for i in infos):
        raise ActionError("every calendar of this account is read-only: calsync could not add appointments")
    with m.db.atomic():
        conn.credentials = rt.vault.encrypt(credentials)
        conn.status = m.PENDING
        conn.reason = meaning(m.PENDING)
        conn.next_sync_at = clock.now()
        conn.save()
        m.StatusChange.create(connection=conn, old="", new=m.PENDING, cause="connect")
        _save_calendars(conn, infos, calendar)
    audit(actor, "connection.connect", conn.id, f"{provider} {conn.account} for {staff.email}")
    result = connection_dict(conn)
    result["warnings"] = []
    if "duplicate" in result["flags"]:
        result["warnings"].append(
            "duplicate risk: this staff member already has a connection to the same account; "
            "stop one of them or appointments may appear twice"
        )
    if "shared" in result["flags"]:
        result["warnings"].append("shared account: other staff members sync the same external account")
    return result


@audited("connection.relink")
def update_credentials(rt, conn_id, *, password: str = "", url: str = "", actor: str = "") -> dict:
    """Relink: new credentials for the same connection, tested before they are saved."""
    conn = _connection(conn_id)
    if conn.status == m.STOPPED:
        raise ActionError("the connection is stopped; connect again instead")
    if conn.provider == "caldav":
        if not password:
            raise InvalidInput("a new password is needed")
        credentials = {"password": password}
    else:
        credentials = {"url": _validate_url(rt, url, "the calendar URL")}
    prov = rt.provider_for(conn, credentials)
    try:
        prov.discover()
    except ProviderError as exc:
        raise ActionError(f"the new credentials do not work: {exc.reason}") from None
    conn.credentials = rt.vault.encrypt(credentials)
    if conn.provider == "ics":
        conn.account = conn.server_url = feed_label(credentials["url"])
    conn.next_sync_at = clock.now()
    conn.save()
    audit(actor, "connection.relink", conn.id)
    from core import leases

    try:
        report = leases.sync_with_lease(rt, conn, "relink")
    except leases.Busy:
        report = SyncReport(connection_id=conn.id, outcome="busy", status=conn.status)
    result = connection_dict(m.Connection.get_by_id(conn.id))
    result["sync"] = report.to_dict()
    return result


@audited("connection.test")
def test_connection(rt, conn_id, actor: str = "") -> dict:
    """Check auth, read, write permission and the destination; the status follows the result."""
    conn = _connection(conn_id)
    if conn.status == m.STOPPED:
        raise ActionError("the connection is stopped: there is nothing to test")
    prov = rt.provider_for(conn)
    checks: list[dict] = []
    answer = ""
    error = None
    try:
        infos = prov.discover()
        checks.append({"check": "credentials", "ok": True, "detail": "the provider accepted them"})
        checks.append({"check": "read", "ok": True, "detail": f"{len(infos)} calendar(s) readable"})
        destination = conn.calendars.where(m.Calendar.is_destination == True).first()  # noqa: E712
        if destination is not None:
            info = prov.probe(CalendarState(remote_id=destination.remote_id))
            checks.append({"check": "destination", "ok": True, "detail": f"{destination.name!r} exists"})
            writable = info.writable
            if writable and not info.privileges_known:
                writable = _write_probe(prov, destination)
            destination.writable = writable
            destination.save()
            checks.append({
                "check": "write",
                "ok": writable,
                "detail": "events can be created" if writable else "the calendar is read-only for this account",
            })
            if not writable:
                from core.providers.base import WriteForbidden

                raise WriteForbidden("the primary calendar is read-only for this account: calsync can read it but not add events")
        else:
            checks.append({"check": "write", "ok": True, "detail": "not needed: this connection is a read-only busy source"})
    except ProviderError as exc:
        error = exc
        answer = exc.answer
        checks.append({"check": "error", "ok": False, "detail": exc.reason})
    rt.keep_secrets(conn, prov)
    conn = m.Connection.get_by_id(conn.id)
    conn.last_check_at = clock.now()
    conn.save()
    if error is not None:
        health.record_failure(rt, conn, error, "test")
    elif conn.status != m.PENDING:
        health.record_success(rt, conn, "test")
    conn = m.Connection.get_by_id(conn.id)
    audit(actor, "connection.test", conn.id, conn.status)
    return {
        "connection": conn.id,
        "ok": error is None,
        "status": conn.status,
        "reason": error.reason if error is not None else meaning(conn.status),
        "transient": bool(error is not None and error.transient),
        "checks": checks,
        "provider_answer": answer,
        "requests": prov.requests_made,
    }


def _write_probe(prov, destination: m.Calendar) -> bool:
    """Servers that do not report privileges: write and remove a probe event."""
    from core.providers.base import WriteForbidden

    probe = ics.new_calendar()
    from icalendar import Event

    event = Event()
    uid = f"calsync-write-test-{uuid.uuid4()}@calsync"
    event.add("uid", uid)
    event.add("dtstamp", clock.now())
    event.add("dtstart", clock.now() + dt.timedelta(days=3650))
    event.add("dtend", clock.now() + dt.timedelta(days=3650, minutes=1))
    event.add("summary", "calsync write test (removed at once)")
    event.add("transp", "TRANSPARENT")
    probe.add_component(event)
    try:
        href, etag = prov.create(destination.remote_id, uid, probe.to_ical().decode())
    except WriteForbidden:
        return False
    prov.delete(href, etag)
    return True


# -- sync -----------------------------------------------------------------------------


@audited("connection.sync")
def sync_now(rt, conn_id=None, actor: str = "", progress=None) -> list[dict]:
    """Sync one connection, or every connection that is not stopped, now.

    A connection that another process is syncing at this moment is not synced
    twice: its report says so (outcome ``busy``).
    """
    if conn_id is not None:
        conns = [_connection(conn_id)]
        if conns[0].status == m.STOPPED:
            raise ActionError("the connection is stopped: connect again to sync it")
    else:
        conns = list(m.Connection.select().where(m.Connection.status != m.STOPPED).order_by(m.Connection.id))
    from core import leases

    owner = leases.owner_id("sync-now")
    claimed = [c.id for c in conns if leases.claim(c.id, owner)]
    reports = {r.connection_id: r for r in run_claimed(rt, claimed, owner, progress)}
    for conn in conns:
        if conn.id not in reports:
            holder = m.Connection.get_by_id(conn.id).lease_owner or "another process"
            reports[conn.id] = SyncReport(connection_id=conn.id, outcome="busy", status=conn.status, reason=conn.reason,
                                          error=f"already being synced by {holder}")
    if actor:
        audit(actor, "connection.sync", conn_id if conn_id is not None else "all")
    return [reports[c.id].to_dict() for c in conns]


def sync_due(rt, progress=None, owner: str | None = None) -> list[dict]:
    """One pass of the scheduler: claim every connection whose turn it is and sync it."""
    from core import leases

    owner = owner or leases.owner_id()
    claimed: list[int] = []
    for _ in range(10_000):  # batches of claims; bounded
        batch = leases.claim_due(owner, 500)
        if not batch:
            break
        claimed += batch
    return [r.to_dict() for r in run_claimed(rt, claimed, owner, progress)]


def sync_claimed(rt, conn_id: int, owner: str) -> SyncReport:
    """Sync one connection this process holds the lease of, then release it."""
    from core import leases

    with m.db.connection_context():
        report = None
        try:
            conn = m.Connection.get_by_id(conn_id)
            report = sync_connection(rt, conn)
        except Exception as exc:
            log.exception("sync of connection %s failed internally", conn_id)
            report = SyncReport(connection_id=conn_id, outcome="failed", error=f"internal error: {exc}")
        finally:
            leases.release(rt, conn_id, owner, ok=report is not None and report.outcome == "ok")
        return report


def run_claimed(rt, conn_ids: list[int], owner: str, progress=None) -> list[SyncReport]:
    if not conn_ids:
        return []
    reports: dict[int, SyncReport] = {}
    workers = max(1, min(rt.settings.workers, len(conn_ids)))
    if workers == 1:
        for done, cid in enumerate(conn_ids, 1):
            reports[cid] = sync_claimed(rt, cid, owner)
            if progress:
                progress(done, len(conn_ids), reports[cid])
    else:
        with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="sync") as pool:
            futures = {pool.submit(sync_claimed, rt, cid, owner): cid for cid in conn_ids}
            for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
                report = future.result()
                reports[futures[future]] = report
                if progress:
                    progress(done, len(conn_ids), report)
    return [reports[c] for c in conn_ids]


# -- the sync feed ---------------------------------------------------------------------


def list_entries(rt, conn_id, not_loaded_only: bool = False) -> list[dict]:
    conn = _connection(conn_id)
    query = (
        m.FeedEntry.select(m.FeedEntry, m.Calendar)
        .join(m.Calendar)
        .where(m.Calendar.connection == conn)
        .order_by(m.FeedEntry.starts_at.asc(nulls="LAST"), m.FeedEntry.id)
    )
    if not_loaded_only:
        query = query.where(m.FeedEntry.loaded == False)  # noqa: E712
    return [
        {
            "id": e.id,
            "calendar": e.calendar.name,
            "starts_at": _iso(e.starts_at),
            "ends_at": _iso(e.ends_at),
            "subject": e.subject,
            "loaded": e.loaded,
            "info": e.info,
            "uid": e.uid,
        }
        for e in query
    ]


# -- appointments ------------------------------------------------------------------------


def _parse_time(value, tz: dt.tzinfo, what: str) -> dt.datetime:
    if isinstance(value, dt.datetime):
        parsed = value
    else:
        text = str(value or "").strip()
        if text.endswith("Z"):
            text = text[:-1] + "+00:00"
        try:
            parsed = dt.datetime.fromisoformat(text)
        except ValueError:
            raise InvalidInput(f"{what} {value!r} is not an ISO 8601 date-time such as 2026-12-01T10:00:00+01:00") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    return parsed.astimezone(dt.timezone.utc)


def _links_after_change(appointment: m.Appointment) -> None:
    """Every destination that should show this appointment learns of the change."""
    conns = m.Connection.select().where(m.Connection.staff == appointment.staff_id, m.Connection.status != m.STOPPED)
    for conn in conns:
        broken = conn.status in m.BROKEN_STATUSES
        for cal in conn.calendars.where(m.Calendar.is_destination == True):  # noqa: E712
            link = m.AppointmentLink.get_or_none(appointment=appointment, calendar=cal)
            if link is None:
                if appointment.cancelled:
                    continue
                m.AppointmentLink.create(appointment=appointment, calendar=cal, state=m.LINK_MISSED if broken else m.LINK_PENDING)
                continue
            if link.state in (m.LINK_KEPT, m.LINK_ORPHANED):
                continue
            if appointment.cancelled and not link.href:
                link.state = m.LINK_REMOVED
            else:
                link.state = m.LINK_MISSED if broken else m.LINK_PENDING
            link.updated_at = clock.now()
            link.save()


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


def upsert_appointment(
    rt,
    external_id: str,
    staff_email: str,
    start,
    end,
    subject: str,
    description: str = "",
    location: str = "",
    source: str = "host",
    actor: str = "",
    timezone: str | None = None,
) -> dict:
    """Create or change an appointment; repeating the same call changes nothing.

    Times with a UTC offset are taken as they are; times without one are read
    in ``timezone`` (an IANA name) or else the staff member's zone.
    """
    external_id = (external_id or "").strip()
    if not external_id or len(external_id) > 200:
        raise InvalidInput("the appointment id must be 1 to 200 characters")
    staff = _staff(staff_email)
    tz = ics.zone(_valid_timezone(timezone) if timezone else staff.timezone)
    starts_at = _parse_time(start, tz, "start")
    ends_at = _parse_time(end, tz, "end")
    if ends_at <= starts_at:
        raise InvalidInput("the appointment must end after it starts")
    if ends_at - starts_at > dt.timedelta(days=31):
        raise InvalidInput("an appointment may last at most 31 days")
    subject = (subject or "").strip()
    if not subject:
        raise InvalidInput("the appointment needs a subject")
    fields = {
        "starts_at": starts_at,
        "ends_at": ends_at,
        "subject": subject[:500],
        "description": (description or "")[:8000],
        "location": (location or "")[:500],
    }
    with m.db.atomic():
        appointment = m.Appointment.get_or_none(m.Appointment.external_id == external_id)
        if appointment is None:
            appointment = m.Appointment.create(
                external_id=external_id, staff=staff, uid=ics.appointment_uid(external_id), source=source, **fields
            )
            changed = "created"
        else:
            if appointment.staff_id != staff.id:
                raise ActionError(f"appointment {external_id} belongs to another staff member; cancel it and create a new one")
            current = {k: getattr(appointment, k) for k in fields}
            if current == fields and not appointment.cancelled:
                return {**appointment_dict(appointment), "change": "unchanged"}
            for key, value in fields.items():
                setattr(appointment, key, value)
            appointment.cancelled, appointment.cancel_reason = False, ""
            appointment.version += 1
            appointment.updated_at = clock.now()
            appointment.save()
            changed = "updated"
        _links_after_change(appointment)
    if actor:
        audit(actor, f"appointment.{changed}", external_id)
    return {**appointment_dict(appointment), "change": changed}


def book(rt, staff_email: str, start, end, subject: str, description: str = "", location: str = "", actor: str = "") -> dict:
    """A test appointment, created exactly as the host API creates one."""
    external_id = f"test-{uuid.uuid4().hex[:12]}"
    return upsert_appointment(rt, external_id, staff_email, start, end, subject, description, location, source="cli", actor=actor)


def get_appointment(rt, external_id: str) -> dict:
    appointment = m.Appointment.get_or_none(m.Appointment.external_id == (external_id or "").strip())
    if appointment is None:
        raise NotFoundError(f"no appointment with id {external_id!r}")
    links = [
        {"calendar": link.calendar.name, "connection": link.calendar.connection_id, "state": link.state}
        for link in appointment.links
    ]
    return {**appointment_dict(appointment), "calendars": links}


def cancel_appointment(rt, external_id: str, reason: str = "cancelled by the host", actor: str = "") -> dict:
    appointment = m.Appointment.get_or_none(m.Appointment.external_id == (external_id or "").strip())
    if appointment is None:
        raise NotFoundError(f"no appointment with id {external_id!r}")
    if appointment.cancelled:
        return {**appointment_dict(appointment), "change": "unchanged"}
    with m.db.atomic():
        appointment.cancelled, appointment.cancel_reason = True, reason
        appointment.version += 1
        appointment.updated_at = clock.now()
        appointment.save()
        _links_after_change(appointment)
    if actor:
        audit(actor, "appointment.cancel", external_id)
    return {**appointment_dict(appointment), "change": "cancelled"}


# -- missed appointments ------------------------------------------------------------------


def missed_appointments(conn: m.Connection) -> list[m.Appointment]:
    return list(
        m.Appointment.select()
        .join(m.AppointmentLink)
        .join(m.Calendar)
        .where(
            m.Calendar.connection == conn,
            m.AppointmentLink.state == m.LINK_MISSED,
            m.Appointment.cancelled == False,  # noqa: E712
        )
        .order_by(m.Appointment.starts_at)
        .distinct()
    )


@audited("connection.download_missed")
def download_missed(rt, conn_id, actor: str = "") -> dict:
    """The missed appointments as an .ics snapshot (which says it will not update)."""
    conn = _connection(conn_id)
    appointments = missed_appointments(conn)
    note = SNAPSHOT_NOTE.format(when=clock.now().strftime("%Y-%m-%d %H:%M UTC"))
    data = ics.render_snapshot(appointments, f"Missed appointments ({conn.staff.name})", note)
    if actor:
        audit(actor, "connection.download_missed", conn.id, f"{len(appointments)} appointment(s)")
    return {"connection": conn.id, "count": len(appointments), "ics": data, "filename": f"calsync-missed-{conn.id}.ics"}


# -- stop sync ------------------------------------------------------------------------------


def stop_plan(rt, conn_id, keep_events: bool = False) -> dict:
    """What `stop` would do, for the confirmation the user must give."""
    conn = _connection(conn_id)
    on_calendar = (
        m.AppointmentLink.select()
        .join(m.Calendar)
        .where(m.Calendar.connection == conn, m.AppointmentLink.state == m.LINK_SYNCED, m.AppointmentLink.href != "")
        .count()
    )
    broken = conn.status in m.BROKEN_STATUSES
    shared_with = sorted({o.staff.email for o in _same_account(conn) if o.staff_id != conn.staff_id})
    if keep_events:
        effect = f"{on_calendar} calsync event(s) stay on the calendar"
    elif broken:
        effect = (
            f"the connection is {conn.status} ({conn.reason or meaning(conn.status)}): calsync can no longer "
            f"remove its {on_calendar} event(s); they would stay on the calendar as orphans"
        )
    else:
        effect = f"{on_calendar} calsync event(s) are removed from the calendar"
    return {
        "connection": conn.id,
        "status": conn.status,
        "events_on_calendar": on_calendar,
        "remove_events": not keep_events and not broken,
        "orphans": on_calendar if broken and not keep_events else 0,
        "needs_force": broken and not keep_events and on_calendar > 0,
        "shared_with": shared_with,
        "effect": effect,
        "warning": (
            f"the same account is also synced by {', '.join(shared_with)}; their access is not touched"
            if shared_with
            else ""
        ),
    }


@audited("connection.stop")
def stop_sync(rt, conn_id, keep_events: bool = False, force: bool = False, actor: str = "") -> dict:
    conn = _connection(conn_id)
    if conn.status == m.STOPPED:
        raise ActionError("the connection is already stopped")
    plan = stop_plan(rt, conn_id, keep_events)
    if plan["needs_force"] and not force:
        raise ActionError(
            f"refused: the connection is {conn.status} ({conn.reason or meaning(conn.status)}), so calsync cannot "
            f"remove its {plan['events_on_calendar']} appointment(s) from the calendar. Relink first, or use "
            "--force to stop anyway and leave them there (recorded as orphaned for support), or --keep-events."
        )
    links = list(
        m.AppointmentLink.select()
        .join(m.Calendar)
        .where(m.Calendar.connection == conn, m.AppointmentLink.state.in_([m.LINK_SYNCED, m.LINK_PENDING, m.LINK_MISSED]))
    )
    removed = kept = orphaned = 0
    if plan["remove_events"]:
        prov = rt.provider_for(conn)
        for link in links:
            if link.state == m.LINK_SYNCED and link.href:
                try:
                    prov.delete(link.href, "")
                except ProviderError as exc:
                    health.record_failure(rt, conn, exc, "stop")
                    raise ActionError(
                        f"stopped nothing: removing calsync's events failed after {removed} of {plan['events_on_calendar']}: "
                        f"{exc.reason}. The connection stays as it was; try again, or use --keep-events."
                    ) from None
                removed += 1
                link.state = m.LINK_REMOVED
                link.save()
    with m.db.atomic():
        for link in links:
            if link.state == m.LINK_SYNCED:
                if keep_events:
                    link.state, kept = m.LINK_KEPT, kept + 1
                else:
                    link.state, orphaned = m.LINK_ORPHANED, orphaned + 1
            elif link.state in (m.LINK_PENDING, m.LINK_MISSED):
                link.state = m.LINK_REMOVED
            link.save()
        calendars = m.Calendar.select(m.Calendar.id).where(m.Calendar.connection == conn)
        m.FeedEntry.delete().where(m.FeedEntry.calendar.in_(calendars)).execute()
        m.RemoteObject.delete().where(m.RemoteObject.calendar.in_(calendars)).execute()
        conn.credentials = ""  # forgotten: only this connection's copy, never the account's grant elsewhere
        conn.stopped_at = clock.now()
        conn.save()
        health.set_status(rt, conn, m.STOPPED, meaning(m.STOPPED), "stop")
    detail = f"removed={removed} kept={kept} orphaned={orphaned}" + (" force" if force else "")
    audit(actor, "connection.stop", conn.id, detail)
    return {**plan, "stopped": True, "removed": removed, "kept": kept, "orphaned": orphaned}


# -- primary calendar ----------------------------------------------------------------------


def refresh_calendars(rt, conn: m.Connection) -> list[m.Calendar]:
    """Rediscover the account's calendars; new ones are added, vanished ones dropped unless primary."""
    prov = rt.provider_for(conn)
    try:
        infos = prov.discover()
    except ProviderError as exc:
        raise ActionError(f"could not list the account's calendars: {exc.reason}") from None
    known = {c.remote_id: c for c in conn.calendars}
    for info in infos:
        cal = known.get(info.remote_id)
        if cal is None:
            m.Calendar.create(connection=conn, remote_id=info.remote_id, name=info.name, writable=info.writable)
        else:
            cal.name, cal.writable = info.name, info.writable
            cal.save()
    present = {i.remote_id for i in infos}
    for remote_id, cal in known.items():
        if remote_id in present:
            continue
        if cal.is_destination:
            # Kept until a new primary is chosen (its appointments' links live on it), but it can hold nothing.
            cal.writable = False
            cal.save()
        else:
            cal.delete_instance()
    return list(conn.calendars.order_by(m.Calendar.id))


def list_calendars(rt, conn_id, refresh: bool = False) -> list[dict]:
    conn = _connection(conn_id)
    cals = refresh_calendars(rt, conn) if refresh else list(conn.calendars.order_by(m.Calendar.id))
    return [calendar_dict(c) for c in cals]


@audited("connection.primary")
def set_destination(rt, conn_id, calendar: str, actor: str = "") -> dict:
    """Choose the primary calendar; appointments already written stay where they are."""
    conn = _connection(conn_id)
    if conn.provider == "ics":
        raise ActionError("an iCalendar URL is read-only: it cannot be a primary calendar")
    if conn.status == m.STOPPED:
        raise ActionError("the connection is stopped")
    calendars = refresh_calendars(rt, conn)
    wanted = str(calendar).strip().lower()
    chosen = next(
        (c for c in calendars if wanted in (str(c.id), c.name.lower(), c.remote_id.lower())), None
    )
    if chosen is None:
        names = ", ".join(f"{c.id}: {c.name}" for c in calendars)
        raise InvalidInput(f"no calendar {calendar!r} in this account (calendars: {names})")
    if not chosen.writable:
        raise ActionError(f"the calendar {chosen.name!r} is read-only for this account; choose a writable one")
    old = next((c for c in calendars if c.is_destination), None)
    if old is not None and old.id == chosen.id:
        return {**connection_dict(conn), "change": "unchanged"}
    with m.db.atomic():
        if old is not None:
            old_gone = conn.status == m.CALENDAR_MISSING
            for link in old.links:
                if link.state in (m.LINK_PENDING, m.LINK_MISSED) or (old_gone and link.state == m.LINK_SYNCED):
                    # Not on the old calendar (or the old calendar is gone): the new primary takes it.
                    link.delete_instance()
                elif link.state == m.LINK_SYNCED:
                    link.state = m.LINK_KEPT
                    link.save()
            old.is_destination = False
            old.save()
            if old_gone:
                old.delete_instance()
        chosen.is_destination = True
        chosen.save()
        conn.next_sync_at = clock.now()
        conn.save()
    audit(actor, "connection.primary", conn.id, chosen.name)
    return {**connection_dict(m.Connection.get_by_id(conn.id)), "change": "updated", "primary": chosen.name}


# -- audit and keys ---------------------------------------------------------------------------


def audit_log(rt, limit: int = 200) -> list[dict]:
    rows = m.AuditEntry.select().order_by(m.AuditEntry.at.desc(), m.AuditEntry.id.desc()).limit(limit)
    return [
        {"at": _iso(a.at), "actor": a.actor, "action": a.action, "target": a.target, "detail": a.detail, "result": a.result}
        for a in rows
    ]


def rotate_key(rt, actor: str = "") -> dict:
    """Re-encrypt every stored credential under the newest key."""
    count = 0
    with m.db.atomic():
        for conn in m.Connection.select().where(m.Connection.credentials != ""):
            conn.credentials = rt.vault.rotate(conn.credentials)
            conn.save()
            count += 1
    audit(actor, "keys.rotate", "", f"{count} credential(s) re-encrypted")
    return {"reencrypted": count}


def new_token() -> str:
    return secrets.token_urlsafe(32)


# -- relink ------------------------------------------------------------------------------------


REQUEST_THROTTLE_MINUTES = 5
RELINK_FORMS = {"caldav": "password", "ics": "url", "google": "oauth", "microsoft": "oauth"}


@audited("connection.relink_link")
def issue_relink(rt, conn_id, via: tuple[str, ...] = ("email", "slack"), actor: str = "") -> dict:
    """A fresh relink link for a connection (earlier links stop working), sent through the outbox."""
    from core import outbox, relink

    conn = _connection(conn_id)
    if conn.status == m.STOPPED:
        raise ActionError("the connection is stopped: connect again instead of relinking")
    unknown = [v for v in via if v not in ("email", "slack")]
    if unknown:
        raise InvalidInput(f"unknown delivery channel(s) {', '.join(unknown)}: use email and/or slack")
    available = {s.channel for s in rt.senders}
    reachable = [v for v in via if v in available]
    url, link = relink.issue(rt, conn, issued_by=actor or "support", via=",".join(via))
    payload = outbox.payload_for(rt, conn, link_expires_at=link.expires_at.isoformat(), issued_by=actor or "support")
    notification = outbox.notify(
        rt, "relink.link", f"relink:{link.id}", payload, connection=conn, staff=conn.staff, relink_url=url, channels=tuple(via)
    )
    channels = [d.channel for d in notification.deliveries if d.channel != "log"] if notification else []
    audit(actor, "connection.relink_link", conn.id, f"via {', '.join(channels) or 'nobody (not configured)'}")
    return {
        "connection": conn.id,
        "url": url,
        "expires_at": _iso(link.expires_at),
        "sent_via": channels,
        "not_configured": [v for v in via if v not in reachable],
    }


def relink_page(rt, token: str) -> dict:
    """What the relink page shows: the account, what broke, and which form fixes it."""
    from core import relink

    link = relink.lookup(token)
    conn = link.connection
    return {
        "connection": conn.id,
        "staff_name": conn.staff.name,
        "provider": conn.provider,
        "account": conn.account,
        "server": conn.server_url,
        "status": conn.status,
        "meaning": meaning(conn.status),
        "reason": conn.reason or meaning(conn.status),
        "since": _iso(conn.status_since),
        "missed": health.missed_count(conn),
        "form": RELINK_FORMS.get(conn.provider, "password"),
        "expires_at": _iso(link.expires_at),
    }


def complete_relink(rt, token: str, *, password: str = "", url: str = "") -> dict:
    """New credentials from the relink page: tested, saved, synced; the link is spent once it is active."""
    from core import relink

    link = relink.lookup(token)
    conn = link.connection
    result = update_credentials(rt, conn.id, password=password, url=url, actor=f"relink-link:{conn.staff.email}")
    if result["status"] == m.ACTIVE:
        relink.spend(link)
    return {**result, "ok": result["status"] == m.ACTIVE}


def request_new_link(rt, email: str) -> dict:
    """Someone with a dead link asks for a new one: sent by e-mail to the staff member, if any.

    The answer is the same whether or not the address is known, so the page
    cannot be used to find out who has a connection.
    """
    staff = m.Staff.get_or_none(m.Staff.email == (email or "").strip().lower())
    if staff is not None:
        recent = clock.now() - dt.timedelta(minutes=REQUEST_THROTTLE_MINUTES)
        for conn in staff.connections.where(m.Connection.status.in_(list(m.BROKEN_STATUSES))):
            # Each request would revoke the link already in the inbox: at most one per few minutes.
            if m.RelinkLink.select().where(m.RelinkLink.connection == conn, m.RelinkLink.created_at > recent).exists():
                continue
            issue_relink(rt, conn.id, via=("email", "slack"), actor=f"self-service:{staff.email}")
    return {"message": "If this address has a calendar connection that needs relinking, a new link is on its way."}


# -- private feeds, downloads, API keys, the host's reads ---------------------------------------


@audited("feed.url")
def feed_url(rt, staff_email: str, actor: str = "") -> dict:
    from core import feeds

    staff = _staff(staff_email)
    token = feeds.ensure_token(rt, staff)
    if actor:
        audit(actor, "feed.url", staff.email)
    return {"staff": staff.email, "url": feeds.url_for(rt, token)}


@audited("feed.reset")
def feed_reset(rt, staff_email: str, actor: str = "") -> dict:
    from core import feeds

    staff = _staff(staff_email)
    token = feeds.reset(rt, staff)
    audit(actor, "feed.reset", staff.email, "the old feed URL stopped working")
    return {"staff": staff.email, "url": feeds.url_for(rt, token), "old_url_revoked": True}


def download_link(rt, conn_id, actor: str = "") -> dict:
    """A one-off link to the missed appointments' .ics (what a Slack button opens)."""
    conn = _connection(conn_id)
    token, expires = _new_one_off(m.DownloadLink, connection=conn)
    if actor:
        audit(actor, "connection.download_link", conn.id)
    return {"connection": conn.id, "url": f"{rt.settings.base_url}/download/{token}.ics", "expires_at": _iso(expires),
            "count": len(missed_appointments(conn))}


ONE_OFF_TTL = dt.timedelta(hours=24)


def _token_hash(token: str) -> str:
    import hashlib

    return hashlib.sha256(token.encode()).hexdigest()


def _new_one_off(model, **owner) -> tuple[str, dt.datetime]:
    """A one-off link row (download, connect): only the token's hash is stored."""
    token = secrets.token_urlsafe(32)
    expires = clock.now() + ONE_OFF_TTL
    model.create(token_hash=_token_hash(token), expires_at=expires, **owner)
    return token, expires


def _usable_one_off(model, token: str):
    """The link row for ``token`` if it is known, unused and unexpired; else None."""
    if not token or len(token) > 100:
        return None
    link = model.get_or_none(model.token_hash == _token_hash(token))
    if link is None or link.used_at is not None or link.expires_at <= clock.now():
        return None
    return link


def _spend_one_off(model, link) -> bool:
    """Mark it used; False when another request spent it first."""
    return model.update(used_at=clock.now()).where(model.id == link.id, model.used_at.is_null()).execute() == 1


def download_by_link(rt, token: str) -> dict | None:
    """The snapshot behind a one-off link, spending it; None for an unknown, used or expired link."""
    link = _usable_one_off(m.DownloadLink, token)
    if link is None or not _spend_one_off(m.DownloadLink, link):
        return None
    return download_missed(rt, link.connection_id)


def apikey_create(rt, name: str, actor: str = "") -> dict:
    from core import hostapi

    try:
        key, row = hostapi.create_key(name, created_by=actor)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    except KeyError as exc:
        raise ActionError(exc.args[0]) from None
    audit(actor, "apikey.create", row.name)
    return {"name": row.name, "key": key, "prefix": row.prefix, "created_at": _iso(row.created_at)}


def apikey_revoke(rt, name: str, actor: str = "") -> dict:
    row = m.ApiKey.get_or_none(m.ApiKey.name == (name or "").strip(), m.ApiKey.revoked_at.is_null())
    if row is None:
        raise NotFoundError(f"no active API key named {name!r}; see `apikey list`")
    row.revoked_at = clock.now()
    row.save()
    audit(actor, "apikey.revoke", row.name)
    return {"name": row.name, "revoked_at": _iso(row.revoked_at)}


def apikey_list(rt) -> list[dict]:
    return [
        {"name": k.name, "prefix": k.prefix, "created_at": _iso(k.created_at), "created_by": k.created_by,
         "last_used_at": _iso(k.last_used_at), "revoked": k.revoked_at is not None}
        for k in m.ApiKey.select().order_by(m.ApiKey.name)
    ]


def busy_times(rt, staff_email: str, start, end) -> dict:
    from core import hostapi

    staff = _staff(staff_email)
    start_at = _parse_time(start, dt.timezone.utc, "from")
    end_at = _parse_time(end, dt.timezone.utc, "to")
    if end_at <= start_at:
        raise InvalidInput("'to' must be after 'from'")
    if end_at - start_at > hostapi.MAX_RANGE:
        raise InvalidInput("ask for at most 366 days of busy times at once")
    return hostapi.busy(rt, staff, start_at, end_at)


def staff_connections(rt, staff_email: str) -> list[dict]:
    from core import hostapi

    return hostapi.connections(_staff(staff_email))


def connect_link(rt, staff_email: str, actor: str = "") -> dict:
    """A one-off link (24 h) to the page where the staff member connects a calendar themselves."""
    staff = _staff(staff_email)
    token, expires = _new_one_off(m.ConnectLink, staff=staff)
    if actor:
        audit(actor, "staff.connect_link", staff.email)
    return {"staff": staff.email, "url": f"{rt.settings.base_url}/connect/{token}", "expires_at": _iso(expires)}


def connect_link_info(rt, token: str) -> dict | None:
    """Who a usable connect link belongs to and until when (None: unknown, used or expired)."""
    link = _usable_one_off(m.ConnectLink, token)
    return None if link is None else {"staff": link.staff, "expires_at": _iso(link.expires_at)}


def connect_link_staff(rt, token: str) -> m.Staff | None:
    info = connect_link_info(rt, token)
    return None if info is None else info["staff"]


def spend_connect_link(rt, token: str) -> None:
    link = _usable_one_off(m.ConnectLink, token)
    if link is not None:
        _spend_one_off(m.ConnectLink, link)


def connect_by_link(rt, token: str, provider: str, *, url: str, username: str = "", password: str = "") -> dict:
    """Connect from the page: the link is spent only when the connection was made."""
    staff = connect_link_staff(rt, token)
    if staff is None:
        raise NotFoundError("this connect link is not valid any more; ask for a new one with /calsync connect")
    result = connect(rt, staff.email, provider, url=url, username=username, password=password, actor=f"connect-link:{staff.email}")
    spend_connect_link(rt, token)
    report = sync_now(rt, result["id"])[0]
    return {**connection_dict(m.Connection.get_by_id(result["id"])), "warnings": result["warnings"], "first_sync": report}


# -- inspection (the console's detail screens) ---------------------------------------------------


def connection_detail(rt, conn_id, runs: int = 20, history: int = 50) -> dict:
    """Everything support needs about one connection, in one call."""
    conn = _connection(conn_id)
    data = connection_dict(conn)
    data["history"] = [
        {"at": _iso(c.at), "old": c.old, "new": c.new, "cause": c.cause, "provider_answer": c.provider_answer}
        for c in conn.status_changes.order_by(m.StatusChange.at.desc(), m.StatusChange.id.desc()).limit(history)
    ]
    data["incidents"] = [
        {"id": i.id, "kind": i.kind, "reason": i.reason, "opened_at": _iso(i.opened_at), "last_seen_at": _iso(i.last_seen_at),
         "failures": i.failures, "reminders": i.reminders, "escalated_at": _iso(i.escalated_at),
         "resolved_at": _iso(i.resolved_at), "resolution": i.resolution, "missed_delivered": i.missed_delivered}
        for i in conn.incidents.order_by(m.Incident.opened_at.desc(), m.Incident.id.desc())
    ]
    data["sync_runs"] = [
        {"started_at": _iso(r.started_at), "duration_ms": r.duration_ms, "requests": r.requests, "created": r.created,
         "updated": r.updated, "deleted": r.deleted, "entries_read": r.entries_read, "applied_back": r.applied_back,
         "outcome": r.outcome, "error": r.error}
        for r in conn.sync_runs.order_by(m.SyncRun.started_at.desc(), m.SyncRun.id.desc()).limit(runs)
    ]
    data["missed_appointments"] = [appointment_dict(a) for a in missed_appointments(conn)]
    data["relink_link"] = _link_state(conn)
    return data


def _link_state(conn: m.Connection) -> dict | None:
    link = conn.relink_links.order_by(m.RelinkLink.created_at.desc(), m.RelinkLink.id.desc()).first()
    if link is None:
        return None
    state = "used" if link.used_at else "replaced" if link.revoked_at else "expired" if link.expires_at <= clock.now() else "valid"
    return {"issued_at": _iso(link.created_at), "expires_at": _iso(link.expires_at), "state": state, "issued_by": link.issued_by}


def staff_overview(rt) -> list[dict]:
    """Staff members with their connections and whether they have a feed URL."""
    rows = []
    for staff in m.Staff.select().order_by(m.Staff.name, m.Staff.email):
        conns = [connection_dict(c) for c in staff.connections.order_by(m.Connection.id)]
        rows.append({
            **staff_dict(staff),
            "feed": "active" if staff.feed_token_hash else "none",
            "feed_resets": max(staff.feed_generation - 1, 0),
            "connection_list": conns,
            "broken": sum(1 for c in conns if c["status"] in m.BROKEN_STATUSES),
        })
    return rows


def status_counts(rt) -> dict:
    counts = dict.fromkeys(m.STATUSES, 0)
    for status, count in m.Connection.select(m.Connection.status, pw.fn.COUNT(m.Connection.id)).group_by(m.Connection.status).tuples():
        counts[status] = count
    return counts


# -- OAuth (Google, Microsoft) -----------------------------------------------------------------


def oauth_connect_url(rt, staff_email: str, provider: str, actor: str = "") -> dict:
    """The consent link that connects a Google or Microsoft calendar for a staff member."""
    from core import oauth

    staff = _staff(staff_email)
    if provider not in OAUTH_PROVIDERS:
        raise InvalidInput(f"{provider!r} is not signed into with OAuth; use `connect {provider}` with its options")
    try:
        url = oauth.start(rt, provider, "connect", staff=staff)
    except oauth.OAuthFailed as exc:
        raise ActionError(str(exc)) from None
    if actor:
        audit(actor, "connection.oauth_start", staff.email, provider)
    return {"staff": staff.email, "provider": provider, "url": url, "expires_in_minutes": 15}


def oauth_relink_url(rt, relink_token: str) -> str:
    """From a relink page of a Google/Microsoft connection to the provider's consent screen."""
    from core import oauth, relink

    link = relink.lookup(relink_token)
    conn = link.connection
    try:
        return oauth.start(rt, conn.provider, "relink", connection=conn, relink_token=relink_token)
    except oauth.OAuthFailed as exc:
        raise ActionError(str(exc)) from None


def oauth_callback(rt, provider: str, code: str, state: str, error: str = "") -> dict:
    """The provider sent the user back: finish connecting or relinking; returns the connection."""
    from core import oauth, relink

    try:
        row, verifier = oauth.take_state(rt, provider, state)
        if error:
            raise oauth.OAuthFailed(
                "you did not allow calsync to use your calendar, so nothing was connected"
                if error == "access_denied" else f"{provider} ended the sign-in with an error ({error})")
        secrets_ = oauth.exchange(rt, provider, code, verifier)
    except oauth.OAuthFailed as exc:
        raise ActionError(str(exc)) from None
    if row.purpose == "relink":
        conn = row.connection
        prov = rt.provider_for(conn, secrets_)
        try:
            account = prov.account_id()
        except ProviderError as exc:
            raise ActionError(f"the new sign-in does not work: {exc.reason}") from None
        if account.lower() != conn.account.lower():
            raise ActionError(f"you signed in as {account}, but this connection is for {conn.account}: sign in with that account")
        result = _store_oauth_and_sync(rt, conn, secrets_, "relink")
        if row.relink_token_hash and result["status"] == m.ACTIVE:
            m.RelinkLink.update(used_at=clock.now()).where(m.RelinkLink.token_hash == row.relink_token_hash).execute()
        return {**result, "purpose": "relink"}
    staff = row.staff
    conn = m.Connection(staff=staff, provider=provider, server_url=rt.settings.oauth[provider].api_url)
    prov = rt.provider_for(conn, secrets_)
    try:
        conn.account = prov.account_id()
        infos = prov.discover()
    except ProviderError as exc:
        raise ActionError(f"could not connect: {exc.reason}") from None
    if not infos:
        raise ActionError("the account has no calendar that can hold events")
    with m.db.atomic():
        conn.credentials = rt.vault.encrypt(prov.secrets)
        conn.status, conn.reason, conn.next_sync_at = m.PENDING, meaning(m.PENDING), clock.now()
        conn.save()
        m.StatusChange.create(connection=conn, old="", new=m.PENDING, cause="connect")
        _save_calendars(conn, infos, None)
    audit(f"oauth:{staff.email}", "connection.connect", conn.id, f"{provider} {conn.account} for {staff.email}")
    report = sync_now(rt, conn.id)[0]
    return {**connection_dict(m.Connection.get_by_id(conn.id)), "first_sync": report, "purpose": "connect",
            "warnings": [f"{f} account" for f in connection_flags(conn)]}


def _store_oauth_and_sync(rt, conn: m.Connection, secrets_: dict, cause: str) -> dict:
    from core import leases

    conn.credentials = rt.vault.encrypt(secrets_)
    conn.next_sync_at = clock.now()
    conn.save()
    audit(f"oauth:{conn.staff.email}", "connection.relink", conn.id)
    try:
        report = leases.sync_with_lease(rt, conn, cause)
    except leases.Busy:
        report = SyncReport(connection_id=conn.id, outcome="busy", status=conn.status)
    return {**connection_dict(m.Connection.get_by_id(conn.id)), "sync": report.to_dict()}
