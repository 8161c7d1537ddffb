"""The sync feed: what was read from a connection's calendars, object by object.

Every object read is remembered (href + ETag) so the next read asks only for what changed, and
becomes feed entries (one per occurrence): loaded or not, and why. Written by the sync engine.
"""

from __future__ import annotations

import peewee as pw

import models as m
from core import clock, ics, prepared

CHUNK = 300  # rows per bulk statement (SQLite allows 32,766 parameters; a feed entry has 11)


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


def _entry(cal: m.Calendar, href: str, uid: str, occ: ics.Occurrence, now) -> dict:
    """One feed entry's columns (cut to what the feed shows)."""
    return {
        "calendar": cal.id,
        "href": href,
        "uid": uid,
        "recurrence_id": occ.recurrence_id,
        "starts_at": occ.starts_at,
        "ends_at": occ.ends_at,
        "subject": occ.subject[:500],
        "loaded": occ.loaded,
        "info": occ.info[:1000],
        "remote_updated_at": occ.remote_updated_at,
        "seen_at": now,
    }


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
        change -= (
            m.FeedEntry.delete()
            .where(m.FeedEntry.calendar == cal, m.FeedEntry.uid == uid, m.FeedEntry.recurrence_id == occ.recurrence_id)
            .execute()
        )
        change += 1
        m.FeedEntry.create(**_entry(cal, href, uid, occ, now))
    return change


MAX_CALENDAR_ENTRIES = 50_000  # occurrences in the sync window one calendar may hold


_OBJECTS = prepared.BulkInsert(
    m.RemoteObject,
    ("calendar", "href", "etag", "uid"),
    conflict={
        "conflict_target": [m.RemoteObject.calendar, m.RemoteObject.href],
        "update": {m.RemoteObject.etag: pw.EXCLUDED.etag, m.RemoteObject.uid: pw.EXCLUDED.uid},
    },
    per_statement=CHUNK,
)
_ENTRY_COLUMNS = (
    "calendar",
    "href",
    "uid",
    "recurrence_id",
    "starts_at",
    "ends_at",
    "subject",
    "loaded",
    "info",
    "remote_updated_at",
    "seen_at",
)
_ENTRIES = prepared.BulkInsert(m.FeedEntry, _ENTRY_COLUMNS, per_statement=CHUNK // 4)


class Batch:
    """What one read of a calendar writes, in bulk: the objects remembered and their feed
    entries, kept until :meth:`flush` and written in a few statements (a first sync of 1,000
    events was ~5 statements per event). The result is the one a :func:`remember` and a
    :func:`replace` per object, in the order given, would leave."""

    def __init__(self, cal: m.Calendar):
        self.cal = cal
        self.objects: dict[str, tuple[str, str]] = {}
        self.entries: dict[str, list[ics.Occurrence]] = {}

    def remember(self, href: str, etag: str, uid: str) -> None:
        self.objects[href] = (etag, uid)

    def replace(self, href: str, rows: list[ics.Occurrence]) -> None:
        self.entries.pop(href, None)  # a later replace of the same object wins, as it would one by one
        self.entries[href] = list(rows)

    @property
    def pending(self) -> int:
        return sum(len(rows) for rows in self.entries.values())

    def flush(self) -> int:
        """Write what was kept; returns how many entries the calendar gained (negative: lost)."""
        cal, change = self.cal, 0
        F = m.FeedEntry
        _OBJECTS.execute([{"calendar": cal.id, "href": href, "etag": etag, "uid": uid} for href, (etag, uid) in self.objects.items()])
        if self.entries:
            # A calendar with no entries yet (a first read) has nothing to replace: no deletes to write.
            replacing = F.select().where(F.calendar == cal).exists()
            for hrefs in pw.chunked(list(self.entries), CHUNK) if replacing else ():
                change -= F.delete().where(F.calendar == cal, F.href.in_(hrefs)).execute()
            now = clock.now()
            rows: dict[tuple[str, str], dict] = {}
            for href, occurrences in self.entries.items():
                here: set[tuple[str, str]] = set()
                for occ in occurrences:
                    uid = occ.uid or href
                    key = (uid, occ.recurrence_id)
                    if key in here:
                        continue
                    here.add(key)
                    rows.pop(key, None)  # the same UID under another href (a copy): the newest read wins
                    rows[key] = _entry(cal, href, uid, occ, now)
            for keys in pw.chunked(list(rows), CHUNK // 2) if replacing else ():
                change -= F.delete().where(F.calendar == cal, pw.Tuple(F.uid, F.recurrence_id).in_(keys)).execute()
            _ENTRIES.execute(list(rows.values()))
            change += len(rows)
        self.objects, self.entries = {}, {}
        return change


class Ceiling:
    """The feed entries of one calendar, kept under MAX_CALENDAR_ENTRIES however its events repeat.

    An object whose occurrences would pass the cap is stored as one entry that is not loaded and
    says why (20,000 events of 1,000 occurrences each would otherwise be 20 million rows).
    """

    def __init__(self, cal: m.Calendar, cap: int | None = None, batch: Batch | None = None):
        """``batch``: entries are kept in it and written by :meth:`flush` (near the cap the
        batch is written first, so the decision counts what is really stored)."""
        self.cal, self.cap, self.batch = cal, cap or MAX_CALENDAR_ENTRIES, batch
        self.count = m.FeedEntry.select().where(m.FeedEntry.calendar == cal).count()

    def flush(self) -> None:
        if self.batch is not None:
            self.count += self.batch.flush()

    def replace(self, href: str, rows: list[ics.Occurrence]) -> None:
        if self.batch is not None:
            if not (len(rows) > 1 and self.count + self.batch.pending + len(rows) > self.cap):
                self.batch.replace(href, rows)
                return
            self.flush()
        if len(rows) > 1 and self.count + len(rows) > self.cap:
            # Near the cap: what this object holds now is given back before deciding.
            held = m.FeedEntry.select().where(m.FeedEntry.calendar == self.cal, m.FeedEntry.href == href).count()
            if self.count - held + len(rows) > self.cap:
                first = rows[0]
                rows = [
                    ics.Occurrence(
                        first.uid,
                        "",
                        first.starts_at,
                        first.ends_at,
                        first.subject,
                        False,
                        f"invalid data: its {len(rows):,} occurrences would take this calendar past "
                        f"the {self.cap:,} calsync reads in the sync window; it blocks no time",
                        first.remote_updated_at,
                    )
                ]
        self.count += replace(self.cal, href, rows)
