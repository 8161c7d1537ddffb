"""The data layer: migrations, SQLite settings, and the same models on PostgreSQL."""

from __future__ import annotations

import threading

import peewee as pw
import pytest
from conftest import Story

import models as m
from core import actions


def test_fresh_database_is_migrated_to_the_current_schema_version(rt):
    assert m.current_version(m.db.obj) == m.SCHEMA_VERSION
    assert m.migrate(m.db.obj) == m.SCHEMA_VERSION  # idempotent
    assert m.SchemaVersion.select().count() == m.SCHEMA_VERSION


def test_sqlite_runs_in_wal_with_foreign_keys_and_a_busy_timeout(rt):
    database = m.db.obj
    assert database.execute_sql("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert database.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
    assert database.execute_sql("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_a_database_from_a_newer_calsync_is_refused(rt):
    m.SchemaVersion.create(version=m.SCHEMA_VERSION + 1)
    with pytest.raises(RuntimeError, match="newer than this calsync"):
        m.migrate(m.db.obj)


def test_reader_is_not_blocked_while_a_writer_holds_a_transaction(rt):
    actions.add_staff(rt, "ada@example.com", "Ada")
    other = m.open_database(rt.settings.database_url)
    seen = []
    with m.db.atomic():
        m.Staff.create(email="bob@example.com", name="Bob")

        def read():
            with other.connection_context():
                seen.append(other.execute_sql("select count(*) from staff").fetchone()[0])

        reader = threading.Thread(target=read)
        reader.start()
        reader.join(10)
    assert seen == [1]  # the reader saw the committed state at once, without waiting


@pytest.mark.postgres
def test_the_same_story_runs_on_postgresql(pg_rt, caldav):
    assert isinstance(m.db.obj, pw.PostgresqlDatabase)
    assert m.current_version(m.db.obj) == m.SCHEMA_VERSION
    story = Story(pg_rt, caldav)
    story.book(__import__("conftest").soon(), subject="Intro call")
    report = story.sync()
    assert report["outcome"] == "ok" and report["created"] == 1
    assert story.status()["status"] == "active"
    assert len(story.events()) == 1
    caldav.set_password("changed")
    assert story.sync()["status"] == "relink_required"
    assert [c["status"] for c in actions.list_statuses(pg_rt)] == ["relink_required"]


def test_a_first_release_database_is_upgraded_in_place(rt):
    database = m.db.obj
    actions.add_staff(rt, "ada@example.com", "Ada")
    # Make the database look exactly as the first release left it.
    database.drop_tables(
        [m.Incident, m.Notification, m.Delivery, m.RelinkLink, m.ApiKey, m.DownloadLink, m.ConnectLink, m.SchedulerBeat, m.OAuthState]
    )
    database.execute_sql("ALTER TABLE audit_entry DROP COLUMN result")
    database.execute_sql("DROP INDEX staff_feed_token_hash")
    database.execute_sql("ALTER TABLE staff DROP COLUMN feed_token_hash")
    database.execute_sql("ALTER TABLE staff DROP COLUMN feed_generation")
    database.execute_sql("DROP INDEX connection_lease_owner_held")  # schema 7
    for column in ("lease_owner", "lease_expires_at", "failures_in_row"):
        database.execute_sql(f"ALTER TABLE connection DROP COLUMN {column}")
    m.SchemaVersion.delete().where(m.SchemaVersion.version > 1).execute()
    assert m.current_version(database) == 1
    assert m.migrate(database) == m.SCHEMA_VERSION
    assert "result" in {c.name for c in database.get_columns("audit_entry")}
    assert {"feed_generation", "feed_token_hash"} <= {c.name for c in database.get_columns("staff")}
    assert "connection_lease_owner_held" in {i.name for i in database.get_indexes("connection")}
    assert m.Staff.get().email == "ada@example.com"  # the data survived
    assert m.AuditEntry.get().result == "ok"


def test_times_read_as_text_are_the_same_text_as_through_a_datetime():
    """``iso_from_db`` (the console's listing) skips the datetime; what it shows must not change."""
    import datetime as dt

    from hypothesis import given, settings
    from hypothesis import strategies as st

    from core.actions.common import _iso

    field = m.UTCDateTimeField()

    @settings(max_examples=300, deadline=None)
    @given(
        st.datetimes(
            min_value=dt.datetime(1970, 1, 1),
            max_value=dt.datetime(2200, 1, 1),
            timezones=st.sampled_from([None, dt.UTC, dt.timezone(dt.timedelta(hours=-5)), dt.timezone(dt.timedelta(hours=5, minutes=30))]),
        )
    )
    def check(when):
        stored = field.db_value(when if when.tzinfo else when.replace(tzinfo=dt.UTC))
        assert m.iso_from_db(str(stored)) == _iso(m.utc_from_db(str(stored)))
        assert m.iso_from_db(stored) == _iso(m.utc_from_db(stored))  # PostgreSQL hands out datetimes
        offset_text = when.isoformat(" ") if when.tzinfo else None  # text with an offset goes the long way
        if offset_text:
            assert m.iso_from_db(offset_text) == _iso(m.utc_from_db(offset_text))

    check()
    assert m.iso_from_db(None) is None
