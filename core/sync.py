"""The two-way sync of one connection: pull busy sources, push appointments.

A run is: for every calendar, one cheap probe (does it exist, may we write,
has its ctag moved); when something moved, the incremental changes, which
become feed entries (busy sources) and external edits or deletions of
calsync's own events (destinations). Then the appointments that are new,
changed or cancelled are written to each destination, each with a stable
UID and a conditional PUT, so a retry or a crash between the PUT and the
database commit never leaves a duplicate. Every run leaves a SyncRun row.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time

import peewee as pw

import models as m
from core import clock, health, ics
from core.providers.base import (
    AlreadyExists,
    CalendarGone,
    CalendarState,
    Changes,
    NotFound,
    PreconditionFailed,
    Provider,
    ProviderError,
    WriteForbidden,
)

log = logging.getLogger("calsync.sync")


@dataclasses.dataclass
class SyncReport:
    connection_id: int
    outcome: str = "running"  # ok | transient | failed
    status: str = ""
    reason: str = ""
    error: str = ""
    requests: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    entries_read: int = 0
    applied_back: int = 0
    duration_ms: int = 0
    missed: int = 0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def window(settings) -> tuple[dt.datetime, dt.datetime]:
    now = clock.now()
    return now - dt.timedelta(days=settings.sync_past_days), now + dt.timedelta(days=settings.sync_future_days)


def calendar_state(cal: m.Calendar) -> CalendarState:
    known = dict(
        m.RemoteObject.select(m.RemoteObject.href, m.RemoteObject.etag)
        .where(m.RemoteObject.calendar == cal)
        .tuples()
    )
    return CalendarState(remote_id=cal.remote_id, sync_token=cal.sync_token, ctag=cal.ctag, known=known)


class ConnectionSync:
    """One run over one connection with one provider instance."""

    def __init__(self, runtime, conn: m.Connection, provider: Provider | None = None):
        self.rt = runtime
        self.settings = runtime.settings
        self.conn = conn
        self.provider = provider or runtime.provider_for(conn)
        self.report = SyncReport(connection_id=conn.id)
        self.tz = ics.zone(conn.staff.timezone)
        self.window_start, self.window_end = window(self.settings)
        self.released: list[int] = []  # links that waited as missed and are pushed in this run

    # -- the run --------------------------------------------------------------

    def run(self, cause: str = "sync") -> SyncReport:
        started = time.monotonic()
        run_row = m.SyncRun.create(connection=self.conn, started_at=clock.now())
        self.conn.last_sync_at = clock.now()
        self.conn.save()
        try:
            self._pull_and_push()
        except ProviderError as exc:
            self.report.outcome = "transient" if exc.transient else "failed"
            self.report.error = exc.reason
            health.record_failure(self.rt, self.conn, exc, cause)
        except Exception as exc:
            # An internal fault must not change the connection's status: it is not the provider's.
            log.exception("sync of connection %s failed internally", self.conn.id)
            self.report.outcome = "failed"
            self.report.error = f"internal error: {exc.__class__.__name__}: {exc}"
            raise
        else:
            self.report.outcome = "ok"
            delivered = (
                m.AppointmentLink.select().where(m.AppointmentLink.id.in_(self.released), m.AppointmentLink.state == m.LINK_SYNCED).count()
                if self.released
                else 0
            )
            health.record_success(self.rt, self.conn, cause, delivered=delivered)
        finally:
            self.rt.keep_secrets(self.conn, self.provider)
            self.report.requests = self.provider.requests_made
            self.report.duration_ms = int((time.monotonic() - started) * 1000)
            self.conn = m.Connection.get_by_id(self.conn.id)
            self.report.status = self.conn.status
            self.report.reason = self.conn.reason
            self.report.missed = health.missed_count(self.conn)
            r = self.report
            run_row.finished_at = clock.now()
            run_row.duration_ms, run_row.requests = r.duration_ms, r.requests
            run_row.created, run_row.updated, run_row.deleted = r.created, r.updated, r.deleted
            run_row.entries_read, run_row.applied_back = r.entries_read, r.applied_back
            run_row.outcome, run_row.error = r.outcome, r.error
            run_row.save()
            log.info(
                "sync connection=%s outcome=%s status=%s requests=%d created=%d updated=%d deleted=%d "
                "entries=%d applied_back=%d missed=%d ms=%d%s",
                self.conn.id, r.outcome, r.status, r.requests, r.created, r.updated, r.deleted,
                r.entries_read, r.applied_back, r.missed, r.duration_ms, f" error={r.error!r}" if r.error else "",
            )
        return self.report

    def _pull_and_push(self) -> None:
        calendars = list(
            m.Calendar.select().where(m.Calendar.connection == self.conn).order_by(m.Calendar.is_destination.desc(), m.Calendar.id)
        )
        destination_writable = True
        for cal in calendars:
            try:
                info = self._read(cal)
            except CalendarGone:
                if cal.is_destination:
                    raise
                # A busy source that vanished: its events no longer block time.
                log.info("busy source %s of connection %s is gone; its entries are dropped", cal.id, self.conn.id)
                m.FeedEntry.delete().where(m.FeedEntry.calendar == cal).execute()
                m.RemoteObject.delete().where(m.RemoteObject.calendar == cal).execute()
                continue
            if cal.is_destination and not info.writable:
                destination_writable = False
        if not destination_writable:
            raise WriteForbidden("the primary calendar is read-only for this account: calsync can read it but not add events")
        if self.conn.status in m.BROKEN_STATUSES or self.conn.status == m.PENDING:
            # The connection works again: what waited as missed is pushed now.
            self._release_missed()
        for cal in calendars:
            if cal.is_destination:
                writes = self.report.created + self.report.updated + self.report.deleted
                self._push(cal)
                if self.report.created + self.report.updated + self.report.deleted > writes:
                    # Record the calendar's state after our own writes, so the next run sees
                    # only what others changed (some servers' ctags return to an old value
                    # when an event is added and removed again).
                    self._read(cal)

    def _read(self, cal: m.Calendar):
        """Probe one calendar and, when it moved, apply its changes; returns the probe."""
        state = calendar_state(cal)
        info = self.provider.probe(state)
        cal.writable = info.writable
        if info.sync_token and cal.sync_token:
            unchanged = info.sync_token == cal.sync_token
        else:
            unchanged = bool(info.ctag) and info.ctag == cal.ctag
        if not (unchanged and cal.last_synced_at is not None):
            changes = self.provider.changes(state)
            if not changes.unchanged:
                self._apply_changes(cal, changes)
                cal.sync_token = changes.sync_token or ("" if changes.complete else cal.sync_token)
            cal.ctag = info.ctag or changes.ctag
            if info.sync_token and cal.sync_token and cal.sync_token != info.sync_token:
                # Changed between the probe and the report: the next run looks again.
                cal.ctag = ""
        cal.last_synced_at = clock.now()
        cal.save()
        return info

    # -- pulling --------------------------------------------------------------

    def _apply_changes(self, cal: m.Calendar, changes: Changes) -> None:
        links = {
            link.href: link
            for link in m.AppointmentLink.select().where(m.AppointmentLink.calendar == cal, m.AppointmentLink.href != "")
        }
        # One transaction for the whole read: a first sync of 1,000 events was mostly commits.
        with m.db.atomic():
            for item in changes.items:
                self._apply_item(cal, item, links.get(item.href))
        for href in changes.deleted:
            with m.db.atomic():
                m.RemoteObject.delete().where(m.RemoteObject.calendar == cal, m.RemoteObject.href == href).execute()
                m.FeedEntry.delete().where(m.FeedEntry.calendar == cal, m.FeedEntry.href == href).execute()
                link = links.get(href)
                if link is not None and link.state == m.LINK_SYNCED:
                    self._external_delete(link)

    def _apply_item(self, cal: m.Calendar, item, link: m.AppointmentLink | None) -> None:
        self.report.entries_read += 1
        try:
            parsed = ics.parse(item.data)
            vevents = ics.events(parsed)
            uid = str(vevents[0].get("UID", "") or "") if vevents else ""
        except ics.InvalidData as exc:
            self._remember(cal, item.href, item.etag, "")
            self._replace_entries(cal, item.href, [ics.Occurrence(item.href, "", None, None, "", False, f"invalid data: {exc}", None)])
            return
        self._remember(cal, item.href, item.etag, uid)
        if not vevents:
            self._replace_entries(cal, item.href, [])
            return
        ours = link is not None or ics.is_calsync_event(parsed) is not None or (
            uid and m.Appointment.select().where(m.Appointment.uid == uid).exists()
        )
        if ours:
            if link is not None and link.state == m.LINK_SYNCED:
                self._our_event_seen(link, parsed, item.etag)
            rows = []
            if cal.is_busy_source:
                occ = ics.expand(parsed, self.window_start, self.window_end, self.tz, all_day_policy="busy", max_occurrences=1)[0]
                occ.loaded, occ.info = False, ics.INFO_ECHO
                rows = [occ]
            self._replace_entries(cal, item.href, rows)
            return
        if not cal.is_busy_source:
            self._replace_entries(cal, item.href, [])
            return
        rows = ics.expand(
            parsed,
            self.window_start,
            self.window_end,
            self.tz,
            all_day_policy=self.settings.all_day_policy,
            max_occurrences=self.settings.max_occurrences,
        )
        self._replace_entries(cal, item.href, rows)

    def _remember(self, cal: m.Calendar, href: str, etag: str, uid: str) -> None:
        (
            m.RemoteObject.insert(calendar=cal, href=href, etag=etag, uid=uid)
            .on_conflict(
                conflict_target=[m.RemoteObject.calendar, m.RemoteObject.href],
                update={m.RemoteObject.etag: etag, m.RemoteObject.uid: uid},
            )
            .execute()
        )

    def _replace_entries(self, cal: m.Calendar, href: str, rows: list[ics.Occurrence]) -> None:
        m.FeedEntry.delete().where(m.FeedEntry.calendar == cal, m.FeedEntry.href == href).execute()
        now = clock.now()
        seen: set[tuple[str, str]] = set()
        for occ in rows:
            uid = occ.uid or href
            key = (uid, occ.recurrence_id)
            if key in seen:
                continue
            seen.add(key)
            # The same UID under another href (a copy of the event): the newest read wins.
            m.FeedEntry.delete().where(
                m.FeedEntry.calendar == cal, m.FeedEntry.uid == uid, m.FeedEntry.recurrence_id == occ.recurrence_id
            ).execute()
            m.FeedEntry.create(
                calendar=cal,
                href=href,
                uid=uid,
                recurrence_id=occ.recurrence_id,
                starts_at=occ.starts_at,
                ends_at=occ.ends_at,
                subject=occ.subject[:500],
                loaded=occ.loaded,
                info=occ.info[:1000],
                remote_updated_at=occ.remote_updated_at,
                seen_at=now,
            )

    def _our_event_seen(self, link: m.AppointmentLink, parsed, etag: str) -> None:
        """A calsync event came back from a destination: was it edited outside calsync?"""
        if link.etag and etag and link.etag == etag:
            return
        appointment = link.appointment
        try:
            found = ics.appointment_fields(parsed, self.tz)
        except Exception as exc:
            log.warning("calsync event %s on calendar %s is unreadable: %s", link.href, link.calendar_id, exc)
            return
        current = {
            "starts_at": appointment.starts_at,
            "ends_at": appointment.ends_at,
            "subject": appointment.subject,
            "description": appointment.description,
            "location": appointment.location,
        }
        diff = {k: v for k, v in found.items() if v != current[k]}
        link.etag = etag
        link.updated_at = clock.now()
        if not diff:
            link.save()
            return
        if self.settings.external_edit_policy == "revert":
            # Appointments are owned by calsync: put ours back over the edit.
            link.pushed_version = 0
            link.save()
            return
        for field, value in diff.items():
            setattr(appointment, field, value)
        appointment.version += 1
        appointment.updated_at = clock.now()
        appointment.save()
        link.pushed_version = appointment.version
        link.save()
        self.report.applied_back += 1
        changed = ", ".join(sorted(diff))
        m.AuditEntry.create(
            actor="external",
            action="appointment.external_edit",
            target=appointment.external_id,
            detail=f"changed on calendar {link.calendar.name!r} of connection {self.conn.id}: {changed}",
        )
        self._tell_host("appointment.external_edit", appointment, sorted(diff))
        log.info("appointment %s edited on the calendar (%s): applied back", appointment.external_id, changed)

    def _external_delete(self, link: m.AppointmentLink) -> None:
        appointment = link.appointment
        if self.settings.external_delete_policy == "restore":
            link.href, link.etag, link.state, link.pushed_version = "", "", m.LINK_PENDING, 0
            link.save()
            return
        link.state = m.LINK_DELETED_EXTERNALLY
        link.updated_at = clock.now()
        link.save()
        if not appointment.cancelled:
            appointment.cancelled = True
            appointment.cancel_reason = f"deleted in the external calendar {link.calendar.name!r}"
            appointment.version += 1
            appointment.updated_at = clock.now()
            appointment.save()
            self.report.applied_back += 1
            m.AuditEntry.create(
                actor="external",
                action="appointment.external_delete",
                target=appointment.external_id,
                detail=f"deleted on calendar {link.calendar.name!r} of connection {self.conn.id}: appointment cancelled",
            )
            self._tell_host("appointment.external_delete", appointment, ["cancelled"])
            log.info("appointment %s deleted on the calendar: cancelled", appointment.external_id)

    def _tell_host(self, event: str, appointment: m.Appointment, changed: list[str]) -> None:
        from core import outbox

        payload = {
            "appointment": appointment.external_id,
            "staff": self.conn.staff.email,
            "start": clock.utc(appointment.starts_at).isoformat(),
            "end": clock.utc(appointment.ends_at).isoformat(),
            "subject": appointment.subject,
            "description": appointment.description,
            "location": appointment.location,
            "cancelled": appointment.cancelled,
            "version": appointment.version,
            "changed": changed,
            "connection": self.conn.id,
        }
        outbox.notify(self.rt, event, f"{event}:{appointment.external_id}:v{appointment.version}", payload,
                      connection=self.conn, staff=self.conn.staff)

    # -- pushing --------------------------------------------------------------

    def _release_missed(self) -> None:
        calendars = m.Calendar.select(m.Calendar.id).where(m.Calendar.connection == self.conn)
        waiting = m.AppointmentLink.select(m.AppointmentLink.id).where(
            m.AppointmentLink.calendar.in_(calendars), m.AppointmentLink.state == m.LINK_MISSED
        )
        self.released = [link.id for link in waiting]
        if self.released:
            m.AppointmentLink.update(state=m.LINK_PENDING).where(m.AppointmentLink.id.in_(self.released)).execute()

    def _push(self, cal: m.Calendar) -> None:
        ensure_links(cal, self.window_start)
        work = (
            m.AppointmentLink.select(m.AppointmentLink, m.Appointment)
            .join(m.Appointment)
            .where(
                m.AppointmentLink.calendar == cal,
                (m.AppointmentLink.state == m.LINK_PENDING)
                | ((m.AppointmentLink.state == m.LINK_SYNCED) & (m.AppointmentLink.pushed_version < m.Appointment.version)),
            )
            .order_by(m.Appointment.starts_at)
        )
        for link in list(work):
            try:
                self._push_one(cal, link)
            except (WriteForbidden, CalendarGone):
                raise
            except PreconditionFailed as exc:
                # Edited on the calendar between our read and our write: the next run reads it first.
                link.last_error = exc.reason
                link.save()

    def _push_one(self, cal: m.Calendar, link: m.AppointmentLink) -> None:
        appointment = link.appointment
        if appointment.cancelled:
            if link.href:
                try:
                    self.provider.delete(link.href, link.etag)
                except PreconditionFailed:
                    self.provider.delete(link.href, "")
                self.report.deleted += 1
                m.RemoteObject.delete().where(m.RemoteObject.calendar == cal, m.RemoteObject.href == link.href).execute()
                m.FeedEntry.delete().where(m.FeedEntry.calendar == cal, m.FeedEntry.href == link.href).execute()
            link.state, link.pushed_version, link.last_error = m.LINK_REMOVED, appointment.version, ""
            link.updated_at = clock.now()
            link.save()
            return
        data = ics.render_appointment(appointment)
        if not link.href:
            try:
                href, etag = self.provider.create(cal.remote_id, appointment.uid, data)
                self.report.created += 1
            except AlreadyExists as exc:
                # Written before but never recorded (a crash after the PUT): take it over.
                href = exc.href
                current = self.provider.get(href)
                etag = self.provider.update(href, data, current.etag)
                self.report.updated += 1
        else:
            href = link.href
            try:
                etag = self.provider.update(href, data, link.etag)
            except NotFound:
                self._external_delete(link)
                return
            self.report.updated += 1
        link.href, link.etag = href, etag
        link.pushed_version = appointment.version
        link.state, link.last_error = m.LINK_SYNCED, ""
        link.updated_at = clock.now()
        with m.db.atomic():
            link.save()
            self._remember(cal, href, etag, appointment.uid)
            if cal.is_busy_source:
                # Our own event in a calendar we also read: shown in the feed, never blocking twice.
                echo = ics.Occurrence(
                    appointment.uid, "", appointment.starts_at, appointment.ends_at, appointment.subject,
                    False, ics.INFO_ECHO, appointment.updated_at,
                )
                self._replace_entries(cal, href, [echo])


def ensure_links(cal: m.Calendar, since: dt.datetime, state: str = m.LINK_PENDING) -> int:
    """Every appointment of the staff member that this destination should hold has a link."""
    conn = cal.connection
    missing = (
        m.Appointment.select(m.Appointment.id)
        .where(
            m.Appointment.staff == conn.staff_id,
            m.Appointment.cancelled == False,  # noqa: E712 (peewee expression)
            m.Appointment.ends_at >= since,
            ~pw.fn.EXISTS(
                m.AppointmentLink.select(m.AppointmentLink.id).where(
                    m.AppointmentLink.appointment == m.Appointment.id,
                    # Already on this calendar, or left on purpose where it was written
                    # (a primary or provider switch moves only what comes next).
                    (m.AppointmentLink.calendar == cal) | (m.AppointmentLink.state == m.LINK_KEPT),
                )
            ),
        )
    )
    rows = [{"appointment": a.id, "calendar": cal.id, "state": state} for a in missing]
    if rows:
        m.AppointmentLink.insert_many(rows).execute()
    return len(rows)


def sync_connection(runtime, conn: m.Connection, provider: Provider | None = None, cause: str = "sync") -> SyncReport:
    return ConnectionSync(runtime, conn, provider).run(cause)
