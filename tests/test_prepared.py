"""Prepared queries: the SQL written once must run exactly as peewee's own for every value.

A wrong slot (a value put where another belongs, a value peewee wrote into the text and the
cache kept) would give a wrong answer silently; the property test compares the prepared query's
SQL and parameters, and its rows, with a freshly built peewee query for random values.
"""

from __future__ import annotations

import datetime as dt

import peewee as pw
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import models as m
from core import prepared, waiting

UTC = dt.UTC

aware = st.datetimes(min_value=dt.datetime(1970, 1, 2), max_value=dt.datetime(2100, 1, 1), timezones=st.just(UTC))
ids = st.integers(min_value=1, max_value=2**31)


def _mixed(conn_id, since, owner, ids_in, flag):
    C = m.Connection
    query = C.select(C.id).where(C.id == conn_id, C.last_sync_at >= since, C.lease_owner == owner, C.id.in_(ids_in))
    return query.where(C.status != "stopped") if flag else query


MIXED = prepared.Prepared(_mixed)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(conn_id=ids, since=aware, owner=st.text(min_size=0, max_size=20), ids_in=st.lists(ids, min_size=1, max_size=4), flag=st.booleans())
def test_a_prepared_query_sends_what_peewee_would_send_for_any_values(rt, conn_id, since, owner, ids_in, flag):
    assert (
        MIXED.sql(conn_id=conn_id, since=since, owner=owner, ids_in=ids_in, flag=flag) == _mixed(conn_id, since, owner, ids_in, flag).sql()
    )


def test_the_scheduler_s_question_gives_the_same_answer_as_its_peewee_query(rt):
    staff = m.Staff.create(email="p@example.com", name="P")
    conn = m.Connection.create(staff=staff, provider="caldav", account="p", status=m.ACTIVE)
    cal = m.Calendar.create(connection=conn, remote_id="https://example.com/cal/", is_destination=True, is_primary=True)
    since = dt.datetime(2026, 1, 1, tzinfo=UTC)
    fresh = lambda: waiting._nothing_to_do(conn.id, since).scalar()
    assert waiting.nothing_to_do(conn, since) is True and fresh() == 0
    appointment = m.Appointment.create(
        external_id="a1",
        staff=staff,
        uid="u1",
        subject="S",
        starts_at=dt.datetime(2026, 6, 1, 9, tzinfo=UTC),
        ends_at=dt.datetime(2026, 6, 1, 10, tzinfo=UTC),
    )
    assert waiting.nothing_to_do(conn, since) is False and fresh() == 1  # booked, no link yet
    link = m.AppointmentLink.create(appointment=appointment, calendar=cal, state=m.LINK_PENDING)
    assert waiting.nothing_to_do(conn, since) is False  # pending
    link.state, link.pushed_version, link.href = m.LINK_SYNCED, appointment.version, "x.ics"
    link.save()
    assert waiting.nothing_to_do(conn, since) is True and fresh() == 0
    # An appointment that ended before the window does not wait.
    assert waiting.nothing_to_do(conn, dt.datetime(2027, 1, 1, tzinfo=UTC)) is True


def test_a_value_peewee_writes_into_the_text_is_refused_when_first_built(rt):
    def inlined(days):
        return m.Connection.select().where(m.Connection.id > pw.SQL(str(days)))

    with pytest.raises(TypeError, match="days is written into the SQL text"):
        prepared.Prepared(inlined).sql(days=3)


# -- bulk inserts ------------------------------------------------------------------------------

# Text as it reaches the database: decoded from UTF-8 (no lone surrogates), NUL dropped by
# ics_limits.sanitize (PostgreSQL cannot store it).
text = st.text(alphabet=st.characters(codec="utf-8", blacklist_characters="\x00"), max_size=12)
entry_rows = st.lists(
    st.fixed_dictionaries(
        {
            "href": text,
            "uid": text.filter(bool),
            "recurrence_id": st.sampled_from(["", "20261204T100000Z"]),
            "starts_at": st.none() | aware,
            "ends_at": st.none() | aware,
            "subject": text,
            "loaded": st.booleans(),
            "info": text,
            "remote_updated_at": st.none() | aware,
            "seen_at": aware,
        }
    ),
    min_size=0,
    max_size=9,
    unique_by=lambda row: (row["uid"], row["recurrence_id"]),
)


def _bulk_matches_peewee(rows):
    """The rows BulkInsert stores (3 to a statement, so several statements and a short last one)
    are the rows peewee's insert_many stores, read back the same way."""
    from core import entries

    staff = m.Staff.create(email=f"bulk-{m.Staff.select().count()}@example.com", name="Bulk")
    conn = m.Connection.create(staff=staff, provider="caldav", account="bulk")
    ours, theirs = (m.Calendar.create(connection=conn, remote_id=f"/c/{i}/", name=f"c{i}") for i in range(2))
    bulk = prepared.BulkInsert(m.FeedEntry, entries._ENTRY_COLUMNS, per_statement=3)
    with m.db.atomic():
        bulk.execute([{**row, "calendar": ours.id} for row in rows])
        for chunk in pw.chunked([{**row, "calendar": theirs.id} for row in rows], 3):
            m.FeedEntry.insert_many(chunk).execute()
    columns = [getattr(m.FeedEntry, name) for name in entries._ENTRY_COLUMNS if name != "calendar"]

    def stored(cal):
        return list(m.FeedEntry.select(*columns).where(m.FeedEntry.calendar == cal).order_by(m.FeedEntry.id).tuples())

    assert stored(ours) == stored(theirs)
    assert len(stored(ours)) == len(rows)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=entry_rows)
def test_a_bulk_insert_stores_what_peewee_s_insert_many_stores(rt, rows):
    _bulk_matches_peewee(rows)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=entry_rows)
def test_a_bulk_insert_stores_what_peewee_s_insert_many_stores_on_postgresql(pg_rt, rows):
    _bulk_matches_peewee(rows)


def test_a_bulk_upsert_updates_the_rows_it_meets(rt):
    from core import entries

    staff = m.Staff.create(email="upsert@example.com", name="Upsert")
    cal = m.Calendar.create(connection=m.Connection.create(staff=staff, provider="caldav", account="bulk"), remote_id="/c/", name="c")
    entries._OBJECTS.execute([{"calendar": cal.id, "href": f"/c/{i}.ics", "etag": "old", "uid": f"u{i}"} for i in range(5)])
    entries._OBJECTS.execute([{"calendar": cal.id, "href": f"/c/{i}.ics", "etag": "new", "uid": f"v{i}"} for i in range(3, 7)])
    stored = dict(m.RemoteObject.select(m.RemoteObject.href, m.RemoteObject.etag).where(m.RemoteObject.calendar == cal).tuples())
    assert stored == {f"/c/{i}.ics": "old" if i < 3 else "new" for i in range(7)}


# -- fetch: the cursor wrapper's plan, worked out once -----------------------------------------


def _fields(obj):
    return {name: getattr(obj, name) for name in type(obj)._meta.fields}


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    calendars=st.lists(st.tuples(st.booleans(), st.booleans(), st.text(max_size=8, alphabet="abc")), min_size=0, max_size=4),
    synced=st.none() | aware,
)
def test_a_joined_fetch_builds_the_models_peewee_builds_on_every_run(rt, calendars, synced):
    """The runner's one read (calendars, their connection and staff member, "does anything wait")
    through Prepared.fetch, whose later runs reuse the first run's plan of columns, gives the very
    objects a fresh peewee query gives: each model's fields and the joined ones."""
    from core import runner

    staff = m.Staff.create(email=f"j{m.Staff.select().count()}@example.com", name="J")
    conn = m.Connection.create(staff=staff, provider="caldav", account="j", status=m.ACTIVE, last_sync_at=synced)
    for i, (primary, destination, name) in enumerate(calendars):
        m.Calendar.create(connection=conn, remote_id=f"/c/{conn.id}/{i}/", name=name, is_primary=primary, is_destination=destination)
    since = dt.datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(2):  # the first run works the plan out, the second reuses it
        ours = runner._LOAD.fetch(conn_id=conn.id, since=since)
        theirs = list(runner._load_query(conn.id, since))
        assert [_fields(c) for c in ours] == [_fields(c) for c in theirs]
        assert [_fields(c.connection) for c in ours] == [_fields(c.connection) for c in theirs]
        assert [_fields(c.connection.staff) for c in ours] == [_fields(c.connection.staff) for c in theirs]
        assert [c.waits for c in ours] == [c.waits for c in theirs]
        assert all(not c._dirty for c in ours)
