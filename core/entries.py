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


def replace(cal: m.Calendar, href: str, rows: list[ics.Occurrence]) -> None:
    """The feed entries of one object, as just read (an occurrence per row)."""
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
