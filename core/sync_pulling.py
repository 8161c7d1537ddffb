"""Reading what changed on a calendar into feed entries and edits of calsync's own events.

A mixin of :class:`core.sync.ConnectionSync` (the run owns the provider, the report and the
budget): one transaction per read, the busy events written in bulk (core.entries.Batch), a large
read's plain events parsed in the expansion workers (core.expander.read_ahead), calsync's own
copies compared with their appointments (core.reconcile.OwnEvents).
"""

from __future__ import annotations

import peewee as pw

import models as m
from core import entries, expander, ics
from core.providers.base import Changes
from core.sync_state import RunState


class Pulling(RunState):
    """The reading half of a run."""

    def _apply_changes(self, cal: m.Calendar, changes: Changes) -> None:
        links = {
            link.href: link for link in m.AppointmentLink.select().where(m.AppointmentLink.calendar == cal, m.AppointmentLink.href != "")
        }
        # One transaction for the whole read, and the busy events written in bulk (entries.Batch):
        # a first sync of 1,000 events was mostly commits, then ~5 statements per event.
        with m.db.atomic():
            batch = entries.Batch(cal)
            ceiling = entries.Ceiling(cal, batch=batch) if cal.is_busy_source else None
            ahead = self._read_ahead(changes.items) if ceiling is not None else []
            read: list[tuple] = []
            for index, item in enumerate(changes.items):
                self.check_budget()
                self.report.entries_read += 1
                plain = ahead[index] if ahead and item.href not in links else None
                if plain is not None:
                    read.append((item, None, [], plain.uid, None, plain))
                else:
                    read.append((item, *self._parse(item, own=item.href in links), None))
            uids = [uid for item, _, _, uid, _, _ in read if uid and links.get(item.href) is None]
            appointments: dict[str, m.Appointment] = {}
            for chunk in pw.chunked(uids, 500):  # one question for every UID read, not one per event
                appointments.update((a.uid, a) for a in m.Appointment.select().where(m.Appointment.uid.in_(chunk)))
            for item, parsed, vevents, uid, error, plain in read:
                self.check_budget()
                appointment = appointments.get(uid)
                if plain is not None and appointment is None:
                    batch.remember(item.href, item.etag, plain.uid)
                    ceiling.replace(item.href, plain.rows)  # type: ignore[union-attr]  # read ahead only for a busy source
                    continue
                if plain is not None:  # a copy of an appointment, found by its UID: read here, as ours
                    parsed, vevents, uid, error = self._parse(item, own=False)
                self._apply_item(cal, item, links.get(item.href), parsed, vevents, uid, error, appointment, batch, ceiling)
            if ceiling is not None:
                ceiling.flush()
            else:
                batch.flush()
        for href in changes.deleted:
            with m.db.atomic():
                m.RemoteObject.delete().where(m.RemoteObject.calendar == cal, m.RemoteObject.href == href).execute()
                m.FeedEntry.delete().where(m.FeedEntry.calendar == cal, m.FeedEntry.href == href).execute()
                link = links.get(href)
                if link is not None and link.state in (m.LINK_SYNCED, m.LINK_PENDING, m.LINK_MISSED):
                    self.own.deleted(link)

    def _read_ahead(self, items: list) -> list:
        """Large reads: the plain events parsed in the expansion workers (core.expander.read_ahead)."""
        return expander.read_ahead([item.data for item in items], self.window_start, self.window_end, self.tz, **self._reading())

    def _reading(self) -> dict:
        """How this sync reads events (the same in its thread and in the workers)."""
        return {
            "all_day_policy": self.settings.all_day_policy,
            "max_occurrences": self.settings.max_occurrences,
            "timeout": self.settings.parse_timeout,
            "me": self.me,
        }

    def _parse(self, item, *, own: bool) -> tuple:
        """(parsed calendar, its events, the first event's UID, None) or (None, [], "", the error);
        ``own``: a copy of calsync's event (its text is compared with the appointment's)."""
        try:
            parsed = ics.parse(item.data, only=ics.READ_OWN if own else ics.READ)
            vevents = ics.events(parsed)
            return parsed, vevents, (str(vevents[0].get("UID", "") or "") if vevents else ""), None
        except ics.InvalidData as exc:
            return None, [], "", exc

    def _apply_item(
        self,
        cal: m.Calendar,
        item,
        link: m.AppointmentLink | None,
        parsed,
        vevents: list,
        uid: str,
        error,
        appointment: m.Appointment | None,
        batch: entries.Batch,
        ceiling: entries.Ceiling | None,
    ) -> None:
        if error is not None:
            batch.remember(item.href, item.etag, "")
            batch.replace(item.href, [ics.Occurrence(item.href, "", None, None, "", False, f"invalid data: {error}", None)])
            return
        batch.remember(item.href, item.etag, uid)
        if not vevents:
            batch.replace(item.href, [])
            return
        if link is not None:
            appointment = None
        ours = link is not None or appointment is not None or ics.is_calsync_event(parsed) is not None
        if ours:
            # Calsync's own events are handled one by one, after what the batch holds is written.
            if ceiling is not None:
                ceiling.flush()
            else:
                batch.flush()
            if link is not None and link.state in (m.LINK_SYNCED, m.LINK_PENDING, m.LINK_MISSED):
                self.own.seen(link, parsed, item.etag)
            elif (
                appointment is not None and cal.is_destination and self.own.foreign_copy(cal, item.href, item.etag, appointment) == "remove"
            ):
                self.strays.setdefault(cal.id, []).append((item.href, item.etag))
            rows = []
            if cal.is_busy_source:
                occ = ics.expand(parsed, self.window_start, self.window_end, self.tz, all_day_policy="busy", max_occurrences=1)[0]
                occ.loaded, occ.info = False, self._echo_info(item.href)
                rows = [occ]
            entries.replace(cal, item.href, rows)
            return
        if ceiling is None:  # not a busy source
            batch.replace(item.href, [])
            return
        rows = expander.expand(item.data, parsed, self.window_start, self.window_end, self.tz, budget=self.expansions, **self._reading())
        ceiling.replace(item.href, rows)

    def _echo_info(self, href: str) -> str:
        note = self.own.notes.get(href)
        return f"{ics.INFO_ECHO}; {note}" if note else ics.INFO_ECHO
