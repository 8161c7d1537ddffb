"""Writing appointments to a calendar: new, changed and cancelled ones, each with a stable UID
and a conditional PUT (If-None-Match / If-Match), so a retry or a crash between the PUT and the
database commit never leaves a duplicate; an edit made on the calendar meanwhile goes to the
policy (core.reconcile.OwnEvents).

A mixin of :class:`core.sync.ConnectionSync`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import models as m
from core import clock, entries, ics, waiting
from core.providers.base import AlreadyExists, NotFound, PreconditionFailed, ProviderError
from core.sync_state import RunState

log = logging.getLogger("calsync.sync")


class Pushing(RunState):
    """The writing half of a run."""

    _echo_info: Callable[[str], str]

    def _push(self, cal: m.Calendar) -> None:
        for href, etag in self.strays.pop(cal.id, []):
            self.provider.delete(href, "")
            self.report.deleted += 1
            m.RemoteObject.delete().where(m.RemoteObject.calendar == cal, m.RemoteObject.href == href).execute()
            m.FeedEntry.delete().where(m.FeedEntry.calendar == cal, m.FeedEntry.href == href).execute()
        waiting.ensure_links(cal, self.window_start)
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
            self.check_budget()
            try:
                self._push_one(cal, link)
            except ProviderError as exc:
                if exc.status or exc.transient:
                    raise  # the connection is broken or failing: the whole run says so
                # This appointment alone cannot be written: a visible error of its own, retried each run.
                link.last_error = exc.reason[:1000]
                link.write_failures += 1
                link.updated_at = clock.now()
                link.save()
                self.report.errors += 1
                log.warning(
                    "appointment %s not written to calendar %s (%d time(s) in a row): %s",
                    link.appointment.external_id,
                    cal.id,
                    link.write_failures,
                    exc.reason,
                )

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
            # Gone from the calendar: booked again later, it is written anew, not "updated" at a dead address.
            link.state, link.pushed_version, link.last_error, link.write_failures = m.LINK_REMOVED, appointment.version, "", 0
            link.href, link.etag = "", ""
            link.updated_at = clock.now()
            link.save()
            return
        data = ics.render_appointment(appointment)
        if not link.href:
            try:
                href, etag = self.provider.create(cal.remote_id, appointment.uid, data)
                self.report.created += 1
            except AlreadyExists as exc:
                # Written before but never recorded (a crash after the PUT), or an imported
                # copy under another name: it is this appointment, taken over in place.
                href = exc.href
                current = self.provider.get(href)
                etag = self.provider.update(href, data, current.etag)
                self.report.updated += 1
        else:
            href = link.href
            try:
                etag = self.provider.update(href, data, link.etag)
            except NotFound:
                self.own.deleted(link)
                return
            except PreconditionFailed:
                # Changed on the calendar since we last read it: read it, let the policy decide.
                try:
                    current = self.provider.get(href)
                except NotFound:
                    self.own.deleted(link)
                    return
                try:
                    found = ics.appointment_fields(ics.parse(current.data, only=ics.READ_OWN), self.tz)
                except Exception:  # noqa: BLE001 — an unreadable copy on the calendar: ours is written over it
                    found = None
                if found is not None and not self.own.conflict(link, found, current.etag):
                    return  # the calendar's version stands (or equals ours)
                etag = self.provider.update(href, data, current.etag)
            self.report.updated += 1
        link.href, link.etag = href, etag
        link.pushed_version = appointment.version
        link.state, link.last_error, link.write_failures = m.LINK_SYNCED, "", 0
        link.updated_at = clock.now()
        with m.db.atomic():
            link.save()
            entries.remember(cal, href, etag, appointment.uid)
            if cal.is_busy_source:
                # Our own event in a calendar we also read: shown in the feed, never blocking twice.
                echo = ics.Occurrence(
                    appointment.uid,
                    "",
                    appointment.starts_at,
                    appointment.ends_at,
                    appointment.subject,
                    False,
                    self._echo_info(href),
                    appointment.updated_at,
                )
                entries.replace(cal, href, [echo])
