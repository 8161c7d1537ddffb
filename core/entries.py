"""The sync feed: what was read from a connection's calendars, object by object.

Every object read is remembered (href + ETag) so the next read asks only for what changed, and
becomes feed entries (one per occurrence): loaded or not, and why. Written by the sync engine.
"""

from __future__ import annotations

import models as m
from core import clock, ics


def remember(cal: m.Calendar, href: str, etag: str, uid: str) -> None:
    """The object (href + ETag) as last seen on the server, so the next read asks only for changes."""
    (
        m.RemoteObject.insert(calendar=cal, href=href, etag=etag, uid=uid)
        .on_conflict(
            conflict_target=[m.RemoteObject.calendar, m.RemoteObject.href],
            update={m.RemoteObject.etag: etag, m.RemoteObject.uid: uid},
        )
        .execute()
    )


def replace(cal: m.Calendar, href: str, rows: list[ics.Occurrence]) -> int:
    """The feed entries of one object, as just read (an occurrence per row); returns how many
    entries the calendar gained (negative: lost)."""
    change = -m.FeedEntry.delete().where(m.FeedEntry.calendar == cal, m.FeedEntry.href == href).execute()
    now = clock.now()
    seen: set[tuple[str, str]] = set()
    for occ in rows:
        uid = occ.uid or href
        key = (uid, occ.recurrence_id)
        if key in seen:
            continue
        seen.add(key)
        # The same UID under another href (a copy of the event): the newest read wins.
        change -= m.FeedEntry.delete().where(
            m.FeedEntry.calendar == cal, m.FeedEntry.uid == uid, m.FeedEntry.recurrence_id == occ.recurrence_id
        ).execute()
        change += 1
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
    return change


MAX_CALENDAR_ENTRIES = 50_000  # occurrences in the sync window one calendar may hold


class Ceiling:
    """The feed entries of one calendar, kept under MAX_CALENDAR_ENTRIES however its events repeat.

    An object whose occurrences would pass the cap is stored as one entry that is not loaded and
    says why (20,000 events of 1,000 occurrences each would otherwise be 20 million rows).
    """

    def __init__(self, cal: m.Calendar, cap: int | None = None):
        self.cal, self.cap = cal, cap or MAX_CALENDAR_ENTRIES
        self.count = m.FeedEntry.select().where(m.FeedEntry.calendar == cal).count()

    def replace(self, href: str, rows: list[ics.Occurrence]) -> None:
        if len(rows) > 1 and self.count + len(rows) > self.cap:
            # Near the cap: what this object holds now is given back before deciding.
            held = m.FeedEntry.select().where(m.FeedEntry.calendar == self.cal, m.FeedEntry.href == href).count()
            if self.count - held + len(rows) > self.cap:
                first = rows[0]
                rows = [ics.Occurrence(first.uid, "", first.starts_at, first.ends_at, first.subject, False,
                                       f"invalid data: its {len(rows):,} occurrences would take this calendar past "
                                       f"the {self.cap:,} calsync reads in the sync window; it blocks no time",
                                       first.remote_updated_at)]
        self.count += replace(self.cal, href, rows)
