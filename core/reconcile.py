"""Calsync's own events seen on a calendar: edits, deletions, conflicts, and copies to adopt.

Appointments are owned by the host; their events on a staff member's
calendar are calsync's. When one comes back different, the documented
policies decide:

- an edit made only on the calendar (``CALSYNC_EXTERNAL_EDIT_POLICY``):
  ``apply`` (default) takes it back into the appointment and tells the host,
  ``revert`` writes calsync's version over it, ``calendar`` is ``apply`` that
  also wins conflicts;
- an edit on *both* sides since the last sync (a conflict): the host's version
  is written over the calendar's with the calendar's current ETag, and the
  calendar's edit is reported to the host (``appointment.conflict``), unless the
  policy is ``calendar``, which keeps the calendar's version and reports that;
- a deletion (``CALSYNC_EXTERNAL_DELETE_POLICY``): ``cancel`` (default) or
  ``restore``;
- an event carrying one of calsync's UIDs that calsync did not write there (an
  import of the missed-appointments download, a restore, a second client) *is*
  the appointment: it is adopted and updated in place, never a duplicate; a
  second copy of an appointment already on the calendar, or a copy of a
  cancelled one, is removed.

Every decision leaves an audit row, and conflicts and adoptions are said in
the feed entry of the event.
"""

from __future__ import annotations

import datetime as dt
import logging

import models as m
from core import clock, ics, outbox

log = logging.getLogger("calsync.sync")

FIELDS = ("starts_at", "ends_at", "subject", "description", "location")


def fields_of(appointment: m.Appointment) -> dict:
    return {k: getattr(appointment, k) for k in FIELDS}


class OwnEvents:
    """The decisions of one sync run about calsync's own events (``report`` counts them)."""

    def __init__(self, rt, conn: m.Connection, report, tz):
        self.rt = rt
        self.settings = rt.settings
        self.conn = conn
        self.report = report
        self.tz = tz
        self.notes: dict[str, str] = {}  # href -> what the feed entry's Info adds

    # -- an event we know ---------------------------------------------------------

    def seen(self, link: m.AppointmentLink, parsed, etag: str) -> None:
        """A calsync event came back from a write calendar: was it edited outside calsync?"""
        if link.etag and etag and link.etag == etag:
            return
        appointment = link.appointment
        try:
            found = ics.appointment_fields(parsed, self.tz)
        except Exception as exc:  # noqa: BLE001 — an unreadable copy of ours: ours is written over it
            log.warning("calsync event %s on calendar %s is unreadable: %s", link.href, link.calendar_id, exc)
            link.etag, link.pushed_version = etag, 0
            link.save()
            return
        if link.pushed_version < appointment.version:
            self.conflict(link, found, etag)
            return
        diff = {k: v for k, v in found.items() if v != getattr(appointment, k)}
        link.etag = etag
        link.updated_at = clock.now()
        if not diff:
            link.save()
            return
        if self.settings.external_edit_policy == "revert":
            link.pushed_version = 0  # calsync's version goes back over the edit on this run
            link.save()
            self._audit(
                "appointment.external_edit",
                appointment,
                f"changed on calendar {link.calendar.name!r} of connection {self.conn.id}: {', '.join(sorted(diff))}; reverted by policy",
            )
            return
        self._take_from_calendar(link, appointment, diff)
        self._audit(
            "appointment.external_edit",
            appointment,
            f"changed on calendar {link.calendar.name!r} of connection {self.conn.id}: {', '.join(sorted(diff))}",
        )
        self.tell_host("appointment.external_edit", appointment, sorted(diff))
        log.info("appointment %s edited on the calendar (%s): applied back", appointment.external_id, ", ".join(sorted(diff)))

    def conflict(self, link: m.AppointmentLink, found: dict, etag: str) -> bool:
        """Changed by the host and on the calendar since the last sync; True when calsync's
        version must still be written (with ``etag``, the calendar's current one)."""
        appointment = link.appointment
        diff = {k: v for k, v in found.items() if v != getattr(appointment, k)}
        link.etag = etag
        link.updated_at = clock.now()
        if not diff:  # both sides made the same change
            link.pushed_version, link.state = appointment.version, m.LINK_SYNCED
            link.save()
            return False
        self.report.conflicts += 1
        changed = ", ".join(sorted(diff))
        when = clock.now().strftime("%Y-%m-%d %H:%M UTC")
        if self.settings.external_edit_policy == "calendar":
            self._take_from_calendar(link, appointment, diff)
            self.notes[link.href] = f"conflict {when}: the calendar's edit ({changed}) was kept over the host's change"
            self._audit(
                "appointment.conflict",
                appointment,
                f"changed in calsync and on calendar {link.calendar.name!r} of connection {self.conn.id} "
                f"({changed}): the calendar's version was kept (policy calendar)",
            )
            self.tell_host("appointment.conflict", appointment, sorted(diff), resolution="calendar_wins")
            return False
        link.save()
        self.notes[link.href] = f"conflict {when}: the host's change was written over the calendar's edit ({changed})"
        self._audit(
            "appointment.conflict",
            appointment,
            f"changed in calsync and on calendar {link.calendar.name!r} of connection {self.conn.id} "
            f"({changed}): the host's version was written over the calendar's",
        )
        self.tell_host(
            "appointment.conflict",
            appointment,
            sorted(diff),
            resolution="host_wins",
            calendar={k: (clock.utc(v).isoformat() if k in ("starts_at", "ends_at") else v) for k, v in found.items()},
        )
        log.info("appointment %s changed on both sides (%s): the host's version wins", appointment.external_id, changed)
        return True

    def _take_from_calendar(self, link: m.AppointmentLink, appointment: m.Appointment, diff: dict) -> None:
        for field, value in diff.items():
            setattr(appointment, field, value)
        appointment.version += 1
        appointment.updated_at = clock.now()
        appointment.save()
        link.pushed_version = appointment.version
        link.state = m.LINK_SYNCED
        link.save()
        self.report.applied_back += 1

    def deleted(self, link: m.AppointmentLink) -> None:
        """Our event is gone from the calendar (its address is forgotten: a new event gets a new one)."""
        appointment = link.appointment
        host_changed = link.pushed_version < appointment.version and not appointment.cancelled
        # Written again from here on; still waiting if it waited (then its repair delivers it).
        again = m.LINK_MISSED if link.state == m.LINK_MISSED else m.LINK_PENDING
        if host_changed and self.settings.external_edit_policy != "calendar":
            # Deleted on the calendar while the host changed it: a conflict, and the host wins.
            link.href, link.etag, link.state, link.pushed_version = "", "", again, 0
            link.save()
            self.report.conflicts += 1
            self._audit(
                "appointment.conflict",
                appointment,
                f"deleted on calendar {link.calendar.name!r} of connection {self.conn.id} while the host changed "
                "it: the host's version is written again",
            )
            self.tell_host("appointment.conflict", appointment, ["deleted"], resolution="host_wins")
            return
        if self.settings.external_delete_policy == "restore" and not appointment.cancelled:
            link.href, link.etag, link.state, link.pushed_version = "", "", again, 0
            link.save()
            return
        link.state, link.href, link.etag = m.LINK_DELETED_EXTERNALLY, "", ""
        link.updated_at = clock.now()
        link.save()
        if not appointment.cancelled:
            appointment.cancelled = True
            appointment.cancel_reason = f"deleted in the external calendar {link.calendar.name!r}"
            appointment.version += 1
            appointment.updated_at = clock.now()
            appointment.save()
            self.report.applied_back += 1
            self._audit(
                "appointment.external_delete",
                appointment,
                f"deleted on calendar {link.calendar.name!r} of connection {self.conn.id}: appointment cancelled",
            )
            self.tell_host("appointment.external_delete", appointment, ["cancelled"])
            log.info("appointment %s deleted on the calendar: cancelled", appointment.external_id)

    # -- an event with our UID that we did not write there ---------------------------------

    def foreign_copy(self, cal: m.Calendar, href: str, etag: str, appointment: m.Appointment) -> str:
        """What to do with it: ``adopt`` (it is the appointment now), ``remove`` (a spare copy),
        or ``ignore`` (left on purpose, or not for this calendar)."""
        link = m.AppointmentLink.get_or_none(appointment=appointment, calendar=cal)
        if link is not None and link.state in (m.LINK_KEPT, m.LINK_ORPHANED):
            return "ignore"
        if appointment.cancelled:
            return "remove"  # nothing cancelled stays on a calendar calsync writes
        if link is not None and link.href and link.state in (m.LINK_SYNCED, m.LINK_PENDING, m.LINK_MISSED):
            return "remove"  # the appointment is on this calendar already, under its own name
        if link is None:
            if appointment.ends_at < clock.now() - dt.timedelta(days=self.settings.sync_past_days):
                return "ignore"
            link = m.AppointmentLink.create(appointment=appointment, calendar=cal, state=m.LINK_PENDING)
        link.href, link.etag, link.pushed_version = href, etag, 0  # ours is written over it, in place
        link.last_error, link.write_failures = "", 0
        if link.state not in (m.LINK_MISSED,):
            link.state = m.LINK_PENDING
        link.updated_at = clock.now()
        link.save()
        self.report.adopted += 1
        self.notes[href] = "adopted: an imported copy of this appointment, now kept up to date by calsync"
        self._audit(
            "appointment.adopted",
            appointment,
            f"found on calendar {cal.name!r} of connection {self.conn.id} (an imported copy): it is kept up to date in place",
        )
        return "adopt"

    # -- telling ------------------------------------------------------------------------

    def _audit(self, action: str, appointment: m.Appointment, detail: str) -> None:
        m.AuditEntry.create(actor="external", action=action, target=appointment.external_id, detail=detail)

    def tell_host(self, event: str, appointment: m.Appointment, changed: list[str], **extra) -> None:
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
            **extra,
        }
        outbox.notify(
            self.rt,
            event,
            f"{event}:{appointment.external_id}:v{appointment.version}:{clock.now().timestamp():.0f}"
            if event == "appointment.conflict"
            else f"{event}:{appointment.external_id}:v{appointment.version}",
            payload,
            connection=self.conn,
            staff=self.conn.staff,
        )
