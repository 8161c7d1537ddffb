"""Connections: connect, new credentials, test, and the choice of the primary calendar."""

from __future__ import annotations

import datetime as dt
import uuid

import models as m
from core import accounts, clock, extra_calendars, ics, lifecycle, runner, waiting
from core.actions.common import ActionError, InvalidInput, _connection, _staff, _validate_url, audit, audited, find_calendar, one_line
from core.actions.views import calendar_dict, connection_dict
from core.messages import meaning
from core.providers import OAUTH_PROVIDERS, PROVIDERS
from core.providers.base import CalendarState, ProviderError, WriteForbidden
from core.providers.ics_url import feed_label
from core.sync import SyncReport
from core.sync import window as sync_window

USERNAME_MAX = 320  # an e-mail address at most (RFC 5321 allows 64 + 1 + 255)
READ_ONLY_REASON = "the primary calendar is read-only for this account: calsync can read it but not add events"


def sync_after_repair(rt, conn: m.Connection, cause: str) -> SyncReport:
    """A repair (new credentials, a new primary, a good test) is followed by a sync at once, which
    writes what waited; if another process is syncing it right now, the next pass does."""
    try:
        return runner.sync_with_lease(rt, conn, cause)
    except runner.Busy as exc:
        lifecycle.request_sync(conn)
        return SyncReport(connection_id=conn.id, outcome="busy", status=conn.status, reason=conn.reason, error=str(exc))


def identify(rt, conn: m.Connection, credentials: dict, calendar_name: str = "") -> None:
    """The account's fingerprint, and for a feed the label people see (never its secret URL)."""
    conn.account_key = accounts.fingerprint(rt, conn.provider, conn.server_url, conn.account, credentials)
    if conn.provider == "ics":
        conn.account = accounts.feed_label(credentials["url"], calendar_name, conn.account_key)


def _save_calendars(rt, conn: m.Connection, infos, destination: str | None) -> None:
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
        cal = m.Calendar.create(
            connection=conn,
            remote_id=info.remote_id,
            name=info.name,
            is_destination=info is chosen,
            is_primary=info is chosen,
            # The account's own calendars block time; a colleague's, a holiday or a subscribed one
            # only once the person turns it on (`calendars CONNECTION set CALENDAR --busy yes`).
            is_busy_source=info.owned or info is chosen or conn.provider == "ics",
            writable=info.writable,
        )
        if cal.is_destination:
            # The appointments it should hold wait from now on: if the first sync fails, they count
            # as missed, and the repair says it delivered them.
            waiting.ensure_links(cal, sync_window(rt.settings)[0])


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
    choice_minutes: int = 0,
) -> dict:
    """Link a staff member to an external calendar account (credentials tested first).

    ``choice_minutes``: when the account has several calendars to choose from and none was named,
    its first sync waits that long for the person's choice (set in the same transaction, so no
    scheduler can write to a calendar nobody chose in between)."""
    staff = _staff(staff_email)
    if provider not in PROVIDERS:
        raise InvalidInput(f"unknown provider {provider!r}; this calsync supports: {', '.join(PROVIDERS)}")
    if provider in OAUTH_PROVIDERS:
        raise InvalidInput(f"{provider} accounts are connected by signing in: use the consent link (oauth_connect_url)")
    if provider == "caldav":
        url = _validate_url(rt, url, "the CalDAV URL")
        username = one_line(username, "the user name", USERNAME_MAX)
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
    identify(rt, conn, credentials, infos[0].name if provider == "ics" else "")
    with m.db.atomic():
        conn.credentials = rt.vault.encrypt(credentials)
        lifecycle.begin(conn, "connect")
        _save_calendars(rt, conn, infos, calendar)
        if choice_minutes and calendar is None and sum(bool(i.writable) for i in infos) > 1 and provider != "ics":
            conn.next_sync_at = clock.now() + dt.timedelta(minutes=choice_minutes)
            conn.save()
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
        infos = prov.discover()
    except ProviderError as exc:
        raise ActionError(f"the new credentials do not work: {exc.reason}") from None
    conn.credentials = rt.vault.encrypt(credentials)
    if conn.provider == "ics":
        conn.server_url = feed_label(credentials["url"])
        identify(rt, conn, credentials, infos[0].name if infos else "")
    conn.save()
    audit(actor, "connection.relink", conn.id)
    report = sync_after_repair(rt, conn, "relink")
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
        destination = conn.calendars.where(m.Calendar.is_primary == True).first()
        if destination is not None:
            info = prov.probe(CalendarState(remote_id=destination.remote_id, check=True))
            checks.append({"check": "destination", "ok": True, "detail": f"{destination.name!r} exists"})
            writable = info.writable
            if writable and not info.privileges_known:
                writable = _write_probe(prov, destination)
            destination.writable = writable
            destination.save()
            checks.append(
                {
                    "check": "write",
                    "ok": writable,
                    "detail": "events can be created" if writable else "the calendar is read-only for this account",
                }
            )
            if not writable:
                raise WriteForbidden(READ_ONLY_REASON)
        else:
            checks.append({"check": "write", "ok": True, "detail": "not needed: this connection is a read-only busy source"})
    except ProviderError as exc:
        error = exc
        answer = exc.answer
        checks.append({"check": "error", "ok": False, "detail": exc.reason})
    rt.keep_secrets(conn, prov)
    requests = prov.requests_made
    m.Connection.update(last_check_at=clock.now()).where(m.Connection.id == conn.id).execute()
    conn = m.Connection.get_by_id(conn.id)
    report = None
    if error is not None:
        lifecycle.failed(rt, conn, error, "test")
    elif conn.status != m.ACTIVE or waiting.is_failing(conn) or waiting.missed_count(conn):
        # It works again (or never synced): the sync that follows writes what waited, now.
        report = sync_after_repair(rt, conn, "test")
        if report.outcome == "busy":
            lifecycle.succeeded(rt, m.Connection.get_by_id(conn.id), "test")
        else:
            requests += report.requests
            checks.append({"check": "sync", "ok": report.outcome == "ok", "detail": _sync_detail(report)})
    else:
        lifecycle.succeeded(rt, conn, "test")
    conn = m.Connection.get_by_id(conn.id)
    ok = error is None and (report is None or report.outcome in ("ok", "busy"))
    said = (
        f"{error.reason} (now {conn.status})"
        if error is not None
        else "the connection works"
        if ok
        else f"it answers, but the sync that followed did not finish: {report.error if report is not None else 'no report'}"
    )
    audit(actor, "connection.test", conn.id, said, result="ok" if ok else "failed")
    return {
        "connection": conn.id,
        "ok": ok,
        "status": conn.status,
        "reason": error.reason if error is not None else (report.error if report and not ok else meaning(conn.status)),
        "transient": bool(error is not None and error.transient),
        "checks": checks,
        "provider_answer": answer,
        "requests": requests,
        "sync": report.to_dict() if report is not None else None,
    }


def _sync_detail(report: SyncReport) -> str:
    if report.outcome != "ok":
        return f"the sync that followed did not finish: {report.error or report.outcome}"
    written = report.created + report.updated
    return (
        f"synced: {written} appointment(s) written, {report.missed} still waiting"
        if written or report.missed
        else "synced: nothing was waiting"
    )


def _write_probe(prov, destination: m.Calendar) -> bool:
    """Servers that do not report privileges: write and remove a probe event."""
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
            m.Calendar.create(connection=conn, remote_id=info.remote_id, name=info.name, writable=info.writable, is_busy_source=info.owned)
        else:
            cal.name, cal.writable = info.name, info.writable
            cal.save()
    present = {i.remote_id for i in infos}
    for remote_id, cal in known.items():
        if remote_id in present:
            continue
        if cal.is_destination:
            # Kept until a new primary is chosen or its write role is turned off (its appointments'
            # links live on it), but it can hold nothing.
            cal.writable = False
            if not cal.is_primary:
                extra_calendars.broke(rt, cal, m.CALENDAR_MISSING)
            cal.save()
        else:
            cal.delete_instance()
    return list(conn.calendars.order_by(m.Calendar.id))


def list_calendars(rt, conn_id, refresh: bool = False) -> list[dict]:
    """The account's calendars; ``choosable`` marks the ones a picker may offer as the new primary
    (writable, and not the deleted primary that is kept only until another is chosen)."""
    conn = _connection(conn_id)
    cals = refresh_calendars(rt, conn) if refresh else list(conn.calendars.order_by(m.Calendar.id))
    return [calendar_dict(c, conn) for c in cals]


@audited("connection.primary")
def set_destination(rt, conn_id, calendar: str, actor: str = "") -> dict:
    """Choose the primary calendar; appointments already written stay where they are."""
    conn = _connection(conn_id)
    if conn.provider == "ics":
        raise ActionError("an iCalendar URL is read-only: it cannot be a primary calendar")
    if conn.status == m.STOPPED:
        raise ActionError("the connection is stopped")
    calendars = refresh_calendars(rt, conn)
    chosen = find_calendar(calendars, calendar)
    if not chosen.writable:
        raise ActionError(f"the calendar {chosen.name!r} is read-only for this account; choose a writable one")
    old = next((c for c in calendars if c.is_primary), None)
    if old is not None and old.id == chosen.id:
        # Chosen again (a resubmitted form while the first choice still syncs): the same repair,
        # so the answer says how it went, not what the status was a moment before.
        report = sync_after_repair(rt, conn, "primary") if conn.status != m.ACTIVE else None
        return {
            **connection_dict(m.Connection.get_by_id(conn.id)),
            "change": "unchanged",
            "primary": chosen.name,
            "sync": report.to_dict() if report else None,
        }
    with m.db.atomic():
        if old is not None:
            old_gone = conn.status == m.CALENDAR_MISSING or not old.writable
            for link in list(old.links):
                if link.state in (m.LINK_PENDING, m.LINK_MISSED) or (old_gone and link.state == m.LINK_SYNCED):
                    # Not on the old calendar (or it is gone, and its events with it): the new primary
                    # takes the appointment, still waiting if it waited (so "N delivered" counts it).
                    _move_link(link, chosen)
                elif link.state == m.LINK_SYNCED:
                    link.state = m.LINK_KEPT
                    link.save()
            old.is_destination = old.is_primary = False
            old.save()
            if old_gone:
                old.delete_instance()
        chosen.is_destination = chosen.is_primary = True
        chosen.problem = ""
        chosen.save()
    audit(actor, "connection.primary", conn.id, chosen.name)
    report = sync_after_repair(rt, m.Connection.get_by_id(conn.id), "primary")
    return {**connection_dict(m.Connection.get_by_id(conn.id)), "change": "updated", "primary": chosen.name, "sync": report.to_dict()}


def _move_link(link: m.AppointmentLink, calendar: m.Calendar) -> None:
    if (
        m.AppointmentLink.select()
        .where(m.AppointmentLink.appointment == link.appointment_id, m.AppointmentLink.calendar == calendar)
        .exists()
    ):
        link.delete_instance()
        return
    state = m.LINK_MISSED if link.state in (m.LINK_MISSED, m.LINK_SYNCED) else link.state
    (
        m.AppointmentLink.update(
            calendar=calendar, state=state, href="", etag="", pushed_version=0, last_error="", write_failures=0, updated_at=clock.now()
        )
        .where(m.AppointmentLink.id == link.id)
        .execute()
    )
