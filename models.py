"""The data, declared once: peewee models, the database binding and migrations.

SQLite is the default (WAL, foreign keys and a busy timeout, so the console can
read while the scheduler writes); the same models run on PostgreSQL when
``CALSYNC_DATABASE_URL`` says ``postgresql://``. Every change of the schema is a
numbered migration in :data:`MIGRATIONS`; :func:`migrate` applies the missing
ones and records the version, from the first release on.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import peewee as pw

log = logging.getLogger("calsync.db")

db = pw.DatabaseProxy()

UTC = dt.UTC

# Connection statuses, as the SPEC names them.
PENDING = "pending"
ACTIVE = "active"
READ_ONLY = "read_only"
RELINK_REQUIRED = "relink_required"
CALENDAR_MISSING = "calendar_missing"
UNREACHABLE = "unreachable"
STOPPED = "stopped"
STATUSES = (PENDING, ACTIVE, READ_ONLY, RELINK_REQUIRED, CALENDAR_MISSING, UNREACHABLE, STOPPED)
BROKEN_STATUSES = (READ_ONLY, RELINK_REQUIRED, CALENDAR_MISSING, UNREACHABLE)


def _now() -> dt.datetime:
    from core import clock

    return clock.now()


class UTCDateTimeField(pw.DateTimeField):
    """Stored as naive UTC, handed out as aware UTC."""

    def db_value(self, value):
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return super().db_value(value)

    def python_value(self, value):
        value = super().python_value(value)
        if isinstance(value, dt.datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value


def utc_from_db(value):
    """A stored time as aware UTC, for bulk reads that take the database's rows as they come
    (peewee's per-column conversion of 10,000 rows was half of the console's listing)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_from_db(value) -> str | None:
    """A stored time as the ISO text every view shows ("2026-12-02T11:00:00Z"), straight from
    SQLite's text ("2026-12-02 11:00:00"; the same as ``utc_from_db`` then ``isoformat``, without
    building a datetime: the console's listing shows four times per row of 10,000)."""
    if isinstance(value, str) and len(value) >= 19 and value[10] == " ":
        fraction = value[19:]  # "" or ".123456"; anything else (an offset) goes the long way
        if not fraction or (fraction[0] == "." and fraction[1:].isdigit()):
            return f"{value[:10]}T{value[11:]}Z"
    value = utc_from_db(value)
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def tuples(query) -> Iterator[tuple[Any, ...]]:
    """The rows of ``query`` as tuples: peewee's own types say ``.tuples()`` yields model rows, this says what it does."""
    return iter(query.tuples())


class BaseModel(pw.Model):
    id = pw.AutoField()  # what peewee adds anyway, declared so type checkers know it

    class Meta:
        database = db
        legacy_table_names = False


class SchemaVersion(BaseModel):
    version = pw.IntegerField()
    applied_at = UTCDateTimeField(default=_now)


class Staff(BaseModel):
    connections: pw.ModelSelect[Connection]  # backref of Connection
    appointments: pw.ModelSelect[Appointment]  # backref of Appointment
    notifications: pw.ModelSelect[Notification]  # backref of Notification
    connect_links: pw.ModelSelect[ConnectLink]  # backref of ConnectLink
    email = pw.CharField(unique=True)
    name = pw.CharField()
    slack_id = pw.CharField(null=True, index=True)
    timezone = pw.CharField(default="UTC")
    created_at = UTCDateTimeField(default=_now)
    # The private feed: its token is derived from the feed secret and this generation;
    # only its hash is stored (since schema 3). A reset bumps the generation.
    feed_generation = pw.IntegerField(default=0)
    feed_token_hash = pw.CharField(null=True, unique=True)


class Connection(BaseModel):
    calendars: pw.ModelSelect[Calendar]  # backref of Calendar
    sync_runs: pw.ModelSelect[SyncRun]  # backref of SyncRun
    status_changes: pw.ModelSelect[StatusChange]  # backref of StatusChange
    incidents: pw.ModelSelect[Incident]  # backref of Incident
    notifications: pw.ModelSelect[Notification]  # backref of Notification
    relink_links: pw.ModelSelect[RelinkLink]  # backref of RelinkLink
    download_links: pw.ModelSelect[DownloadLink]  # backref of DownloadLink
    staff = pw.ForeignKeyField(Staff, backref="connections", on_delete="CASCADE")
    staff_id: int  # peewee's column accessor, declared for type checkers
    provider = pw.CharField()  # caldav | ics | google | microsoft
    account = pw.CharField()  # the external account as the user knows it (login, e-mail or feed host)
    server_url = pw.TextField(default="")
    credentials = pw.TextField(default="")  # encrypted JSON (core.crypto.Vault)
    status = pw.CharField(default=PENDING, index=True)
    reason = pw.TextField(default="")  # plain words for the current status
    status_since = UTCDateTimeField(default=_now)
    last_error = pw.TextField(default="")  # the last failure, also when it changed no status
    failing_since = UTCDateTimeField(null=True)  # first of the current run of transient failures
    last_sync_at = UTCDateTimeField(null=True)  # last sync attempt
    last_success_at = UTCDateTimeField(null=True)
    last_check_at = UTCDateTimeField(null=True)
    next_sync_at = UTCDateTimeField(null=True, index=True)
    created_at = UTCDateTimeField(default=_now)
    stopped_at = UTCDateTimeField(null=True)
    # The scheduler's lease (since schema 4): who syncs it now, until when, and how
    # many runs in a row failed (for the backoff).
    lease_owner = pw.CharField(null=True)
    lease_expires_at = UTCDateTimeField(null=True)
    failures_in_row = pw.IntegerField(default=0)  # runs, tests and sweeps in a row that failed (core.lifecycle)
    # Since schema 6: a keyed fingerprint of the external account (for an ICS feed its whole,
    # secret URL), so shared/duplicate detection never compares or shows the secret itself;
    # and a sync asked for while one ran (taken by the next pass at once).
    account_key = pw.CharField(default="", index=True)
    sync_requested_at = UTCDateTimeField(null=True)
    # Since schema 8: when a run last found every calendar unchanged and nothing to write (such a
    # run writes this instead of each calendar's last_synced_at: one statement fewer).
    quiet_at = UTCDateTimeField(null=True)
    # Since schema 9: the open stretch of no-change runs, kept on the connection (core.sync_runs):
    # how many, since when, and their requests and time. A run that does something first writes
    # the stretch as one SyncRun row (``runs`` = the count), so quiet runs add no rows.
    quiet_runs = pw.IntegerField(default=0)
    quiet_since = UTCDateTimeField(null=True)
    quiet_requests = pw.IntegerField(default=0)
    quiet_ms = pw.IntegerField(default=0)

    class Meta:
        # save() writes only what this process changed: a scheduler's lease, a requested sync or
        # a status set by another process must never be overwritten by a stale copy of the row.
        only_save_dirty = True


class Calendar(BaseModel):
    objects: pw.ModelSelect[RemoteObject]  # backref of RemoteObject
    links: pw.ModelSelect[AppointmentLink]  # backref of AppointmentLink
    entries: pw.ModelSelect[FeedEntry]  # backref of FeedEntry
    push_channels: pw.ModelSelect[PushChannel]  # backref of PushChannel
    connection = pw.ForeignKeyField(Connection, backref="calendars", on_delete="CASCADE")
    connection_id: int  # peewee's column accessor, declared for type checkers
    remote_id = pw.TextField()  # CalDAV collection URL, feed URL, provider calendar id
    name = pw.CharField(default="")
    # The calendar's roles (issue 18): ``is_destination`` — appointments are written to it ("write");
    # ``is_busy_source`` — its busy events block availability ("busy"); ``is_primary`` (since schema
    # 11) — the one write calendar whose loss or read-only state breaks the connection. The primary
    # is always a write calendar; other write calendars are extra destinations.
    is_destination = pw.BooleanField(default=False)
    is_busy_source = pw.BooleanField(default=True)
    is_primary = pw.BooleanField(default=False)
    writable = pw.BooleanField(default=True)
    # Since schema 11: why an extra write calendar cannot take appointments now ("calendar_missing",
    # "read_only"; "" when it can). Its appointments wait as missed meanwhile; the primary syncs on.
    problem = pw.CharField(default="")
    sync_token = pw.TextField(default="")
    ctag = pw.TextField(default="")
    last_synced_at = UTCDateTimeField(null=True)
    # Since schema 10 (core.push): when a sync must next look at this calendar's push channel
    # (to open one, renew it, or see whether it echoed our own write); None: not watched. A
    # sync compares it in memory, so a watched calendar's quiet run costs no statement more.
    push_check_at = UTCDateTimeField(null=True)
    # Since schema 10: the last read of the whole calendar (not only its changes). Once a day a
    # calendar that moved is read whole again, whatever push and the sync tokens say.
    full_read_at = UTCDateTimeField(null=True)

    class Meta:
        indexes = ((("connection", "remote_id"), True),)
        # A sync's save() writes only what it changed: a push notification that asked for a full
        # read or a channel renewal meanwhile (core.push_inbox) must not be undone by the run's copy.
        only_save_dirty = True


class RemoteObject(BaseModel):
    """One object (href + ETag) of a calendar, as last seen on the server."""

    calendar = pw.ForeignKeyField(Calendar, backref="objects", on_delete="CASCADE")
    calendar_id: int  # peewee's column accessor, declared for type checkers
    href = pw.TextField()
    etag = pw.TextField(default="")
    uid = pw.TextField(default="")

    class Meta:
        indexes = ((("calendar", "href"), True),)


class Appointment(BaseModel):
    links: pw.ModelSelect[AppointmentLink]  # backref of AppointmentLink
    external_id = pw.CharField(unique=True)  # the host product's id
    staff = pw.ForeignKeyField(Staff, backref="appointments", on_delete="CASCADE")
    staff_id: int  # peewee's column accessor, declared for type checkers
    uid = pw.CharField(unique=True)  # stable iCalendar UID, derived from external_id
    starts_at = UTCDateTimeField(index=True)
    ends_at = UTCDateTimeField()
    subject = pw.TextField()
    description = pw.TextField(default="")
    location = pw.TextField(default="")
    cancelled = pw.BooleanField(default=False)
    cancel_reason = pw.TextField(default="")
    version = pw.IntegerField(default=1)
    source = pw.CharField(default="host")
    created_at = UTCDateTimeField(default=_now)
    updated_at = UTCDateTimeField(default=_now)

    class Meta:
        # Since schema 12: a feed's validators (core.feeds) read only this index, not 2,000 rows.
        indexes = ((("staff", "updated_at", "version"), False),)


# AppointmentLink.state
LINK_PENDING = "pending"  # to be written on the next run
LINK_SYNCED = "synced"  # the calendar holds pushed_version
LINK_MISSED = "missed"  # waiting while the connection is broken
LINK_REMOVED = "removed"  # deleted from the calendar by calsync (cancel / stop)
LINK_DELETED_EXTERNALLY = "deleted_externally"
LINK_ORPHANED = "orphaned"  # left on a calendar calsync can no longer reach (forced stop)
LINK_KEPT = "kept"  # left on purpose (stop --keep-events, provider switch)


class AppointmentLink(BaseModel):
    appointment = pw.ForeignKeyField(Appointment, backref="links", on_delete="CASCADE")
    appointment_id: int  # peewee's column accessor, declared for type checkers
    calendar = pw.ForeignKeyField(Calendar, backref="links", on_delete="CASCADE")
    calendar_id: int  # peewee's column accessor, declared for type checkers
    href = pw.TextField(default="")
    etag = pw.TextField(default="")
    pushed_version = pw.IntegerField(default=0)
    state = pw.CharField(default=LINK_PENDING, index=True)
    last_error = pw.TextField(default="")
    updated_at = UTCDateTimeField(default=_now)
    # Since schema 6: the incident during which this appointment waited (set when it is
    # released after the repair, so "N delivered" counts exactly these), and how many
    # writes of it in a row failed.
    released_by = pw.IntegerField(null=True, index=True)
    write_failures = pw.IntegerField(default=0)

    class Meta:
        indexes = ((("appointment", "calendar"), True),)


class FeedEntry(BaseModel):
    """One external event (or occurrence) read from a busy source: the sync feed."""

    calendar = pw.ForeignKeyField(Calendar, backref="entries", on_delete="CASCADE")
    calendar_id: int  # peewee's column accessor, declared for type checkers
    href = pw.TextField(default="")
    uid = pw.TextField()
    recurrence_id = pw.CharField(default="")
    starts_at = UTCDateTimeField(null=True, index=True)
    ends_at = UTCDateTimeField(null=True)
    subject = pw.TextField(default="")
    loaded = pw.BooleanField(default=False)
    info = pw.TextField(default="")
    remote_updated_at = UTCDateTimeField(null=True)
    seen_at = UTCDateTimeField(default=_now)

    class Meta:
        indexes = ((("calendar", "uid", "recurrence_id"), True),)


class SyncRun(BaseModel):
    connection = pw.ForeignKeyField(Connection, backref="sync_runs", on_delete="CASCADE")
    connection_id: int  # peewee's column accessor, declared for type checkers
    started_at = UTCDateTimeField(default=_now, index=True)
    finished_at = UTCDateTimeField(null=True)
    duration_ms = pw.IntegerField(default=0)
    requests = pw.IntegerField(default=0)
    created = pw.IntegerField(default=0)
    updated = pw.IntegerField(default=0)
    deleted = pw.IntegerField(default=0)
    entries_read = pw.IntegerField(default=0)
    applied_back = pw.IntegerField(default=0)
    outcome = pw.CharField(default="running")  # ok | transient | failed | running
    error = pw.TextField(default="")
    runs = pw.IntegerField(default=1)  # since schema 9: a stretch of no-change runs is one row (core.sync_runs)


class StatusChange(BaseModel):
    connection = pw.ForeignKeyField(Connection, backref="status_changes", on_delete="CASCADE")
    connection_id: int  # peewee's column accessor, declared for type checkers
    at = UTCDateTimeField(default=_now, index=True)
    old = pw.CharField()
    new = pw.CharField()
    cause = pw.TextField(default="")
    provider_answer = pw.TextField(default="")


class AuditEntry(BaseModel):
    at = UTCDateTimeField(default=_now, index=True)
    actor = pw.CharField()
    action = pw.CharField()
    target = pw.CharField(default="")
    detail = pw.TextField(default="")
    result = pw.CharField(default="ok")  # ok | failed (since schema 2)


class Incident(BaseModel):
    notifications: pw.ModelSelect[Notification]  # backref of Notification
    """One break of one connection: opened on entering a broken status, resolved on `active`."""

    connection = pw.ForeignKeyField(Connection, backref="incidents", on_delete="CASCADE")
    connection_id: int  # peewee's column accessor, declared for type checkers
    kind = pw.CharField()  # the broken status, or "pending" for a first sync that never finished
    reason = pw.TextField(default="")
    provider_answer = pw.TextField(default="")
    opened_at = UTCDateTimeField(default=_now, index=True)
    last_seen_at = UTCDateTimeField(default=_now)
    failures = pw.IntegerField(default=1)
    last_reminded_at = UTCDateTimeField(null=True)
    reminders = pw.IntegerField(default=0)
    escalated_at = UTCDateTimeField(null=True)
    resolved_at = UTCDateTimeField(null=True, index=True)
    resolution = pw.TextField(default="")
    missed_delivered = pw.IntegerField(default=0)
    # Since schema 6: resolved, but appointments that waited are still being written; the
    # "reconnected" message is sent once they are, so its count is true.
    delivery_open = pw.BooleanField(default=False)


class Notification(BaseModel):
    deliveries: pw.ModelSelect[Delivery]  # backref of Delivery
    """The outbox: one row per event, written once (``dedupe_key``), delivered per channel."""

    event = pw.CharField()  # incident.opened | incident.reminder | incident.resolved | incident.escalated | relink.link
    dedupe_key = pw.CharField(unique=True)
    incident = pw.ForeignKeyField(Incident, null=True, backref="notifications", on_delete="CASCADE")
    incident_id: int | None  # peewee's column accessor, declared for type checkers
    connection = pw.ForeignKeyField(Connection, null=True, backref="notifications", on_delete="CASCADE")
    connection_id: int | None  # peewee's column accessor, declared for type checkers
    staff = pw.ForeignKeyField(Staff, null=True, backref="notifications", on_delete="CASCADE")
    staff_id: int | None  # peewee's column accessor, declared for type checkers
    payload = pw.TextField(default="{}")  # JSON facts: status, reason, account, since, missed...
    secret = pw.TextField(default="")  # encrypted relink URL until every channel has it, then wiped
    created_at = UTCDateTimeField(default=_now, index=True)


# Delivery.state
DELIVERY_PENDING = "pending"
DELIVERY_SENDING = "sending"
DELIVERY_SENT = "sent"
DELIVERY_FAILED = "failed"  # given up after a permanent failure (last_error says why); never retried
DELIVERY_DONE = (DELIVERY_SENT, DELIVERY_FAILED)


class Delivery(BaseModel):
    notification = pw.ForeignKeyField(Notification, backref="deliveries", on_delete="CASCADE")
    notification_id: int  # peewee's column accessor, declared for type checkers
    channel = pw.CharField()  # log | email | slack
    recipient = pw.CharField(default="")
    state = pw.CharField(default=DELIVERY_PENDING, index=True)
    attempts = pw.IntegerField(default=0)
    next_attempt_at = UTCDateTimeField(default=_now, index=True)
    claimed_at = UTCDateTimeField(null=True)
    last_error = pw.TextField(default="")
    sent_at = UTCDateTimeField(null=True)
    external_ref = pw.TextField(default="")  # e.g. the Slack channel + ts, to update the message later

    class Meta:
        indexes = ((("notification", "channel"), True),)


class RelinkLink(BaseModel):
    """A single-use, expiring relink link; only the SHA-256 of its token is kept."""

    connection = pw.ForeignKeyField(Connection, backref="relink_links", on_delete="CASCADE")
    connection_id: int  # peewee's column accessor, declared for type checkers
    token_hash = pw.CharField(unique=True)
    created_at = UTCDateTimeField(default=_now)
    expires_at = UTCDateTimeField()
    used_at = UTCDateTimeField(null=True)
    revoked_at = UTCDateTimeField(null=True)
    issued_by = pw.CharField(default="")
    via = pw.CharField(default="")
    # Since schema 6: the token is derived from this nonce and a key outside the database
    # (core.relink), so a reminder can carry the same live link again; "" for older links.
    nonce = pw.CharField(default="")


class DownloadLink(BaseModel):
    """A one-off link to the missed appointments' .ics (for Slack buttons); hash-only, expiring."""

    connection = pw.ForeignKeyField(Connection, backref="download_links", on_delete="CASCADE")
    connection_id: int  # peewee's column accessor, declared for type checkers
    token_hash = pw.CharField(unique=True)
    created_at = UTCDateTimeField(default=_now)
    expires_at = UTCDateTimeField()
    used_at = UTCDateTimeField(null=True)


class ConnectLink(BaseModel):
    """A one-off link to the page where a staff member connects a calendar; hash-only, expiring."""

    staff = pw.ForeignKeyField(Staff, backref="connect_links", on_delete="CASCADE")
    staff_id: int  # peewee's column accessor, declared for type checkers
    token_hash = pw.CharField(unique=True)
    created_at = UTCDateTimeField(default=_now)
    expires_at = UTCDateTimeField()
    used_at = UTCDateTimeField(null=True)


class ApiKey(BaseModel):
    """A bearer key of the host API; only its SHA-256 is stored."""

    name = pw.CharField(unique=True)
    key_hash = pw.CharField(unique=True)
    prefix = pw.CharField()  # the first characters, to recognise a key in lists
    created_at = UTCDateTimeField(default=_now)
    created_by = pw.CharField(default="")
    last_used_at = UTCDateTimeField(null=True)
    revoked_at = UTCDateTimeField(null=True)


class SchedulerBeat(BaseModel):
    """The last sign of life of each scheduler process, for /healthz."""

    owner = pw.CharField(unique=True)
    started_at = UTCDateTimeField(default=_now)
    beat_at = UTCDateTimeField(default=_now, index=True)
    running = pw.IntegerField(default=0)


class OAuthState(BaseModel):
    """One OAuth consent in flight: state (hash) and the PKCE verifier (encrypted), 15 minutes."""

    state_hash = pw.CharField(unique=True)
    provider = pw.CharField()
    purpose = pw.CharField()  # connect | relink
    staff = pw.ForeignKeyField(Staff, null=True, on_delete="CASCADE")
    staff_id: int | None  # peewee's column accessor, declared for type checkers
    connection = pw.ForeignKeyField(Connection, null=True, on_delete="CASCADE")
    connection_id: int | None  # peewee's column accessor, declared for type checkers
    relink_token_hash = pw.CharField(default="")
    secret = pw.TextField()  # encrypted {"code_verifier": ...}
    created_at = UTCDateTimeField(default=_now)
    expires_at = UTCDateTimeField()
    used_at = UTCDateTimeField(null=True)


# PushChannel.state
PUSH_LIVE = "live"  # delivering, as far as calsync knows
PUSH_SILENT = "silent"  # our own write was not echoed in time: polling carries the calendar
PUSH_FAILED = "failed"  # the provider refused the channel (reason says why); asked again later
PUSH_REAUTHORIZE = "reauthorize"  # Graph asked for a reauthorization: the next sync renews it
PUSH_STATES = (PUSH_LIVE, PUSH_SILENT, PUSH_FAILED, PUSH_REAUTHORIZE)


class PushChannel(BaseModel):
    """A provider's push channel on one calendar (since schema 10, core.push): a Google
    ``events.watch`` channel or a Microsoft Graph subscription. The secret it carries back on
    every notification (Google's channel token, Graph's ``clientState``) is kept only as a hash."""

    calendar = pw.ForeignKeyField(Calendar, backref="push_channels", on_delete="CASCADE")
    calendar_id: int  # peewee's column accessor, declared for type checkers
    provider = pw.CharField()  # google | microsoft
    channel_id = pw.CharField(unique=True)  # Google: our channel id; Graph: the subscription id
    resource_id = pw.TextField(default="")  # Google: resourceId; Graph: the subscribed resource
    token_hash = pw.CharField(default="")
    state = pw.CharField(default=PUSH_LIVE)
    reason = pw.TextField(default="")
    created_at = UTCDateTimeField(default=_now)
    expires_at = UTCDateTimeField(null=True)
    last_message_at = UTCDateTimeField(null=True)  # the last notification that passed the checks
    messages = pw.IntegerField(default=0)
    awaiting_since = UTCDateTimeField(null=True)  # our write not yet echoed by a notification

    class Meta:
        # A sync's save() writes only what it changed: notifications count themselves meanwhile.
        only_save_dirty = True


ALL_MODELS = [
    SchemaVersion,
    Staff,
    Connection,
    Calendar,
    RemoteObject,
    Appointment,
    AppointmentLink,
    FeedEntry,
    SyncRun,
    StatusChange,
    AuditEntry,
    Incident,
    Notification,
    Delivery,
    RelinkLink,
    DownloadLink,
    ConnectLink,
    ApiKey,
    SchedulerBeat,
    OAuthState,
    PushChannel,
]


FIRST_RELEASE = [
    SchemaVersion,
    Staff,
    Connection,
    Calendar,
    RemoteObject,
    Appointment,
    AppointmentLink,
    FeedEntry,
    SyncRun,
    StatusChange,
    AuditEntry,
]


def _migration_1(database: pw.Database) -> None:
    """First release: the sync core's tables.

    create_tables() writes today's columns; later migrations therefore add a
    column only when it is missing, so a fresh database and an upgraded one
    end up the same.
    """
    database.create_tables(FIRST_RELEASE)


def _add_column_if_missing(database: pw.Database, model, field_name: str) -> None:
    from playhouse.migrate import SchemaMigrator
    from playhouse.migrate import migrate as run_migration

    table = model._meta.table_name
    if field_name not in {c.name for c in database.get_columns(table)}:
        run_migration(SchemaMigrator.from_database(database).add_column(table, field_name, model._meta.fields[field_name]))


def _migration_2(database: pw.Database) -> None:
    """Incidents, the notification outbox, relink links; the result of audited actions."""
    database.create_tables([Incident, Notification, Delivery, RelinkLink])
    _add_column_if_missing(database, AuditEntry, "result")


def _migration_3(database: pw.Database) -> None:
    """Private feeds (hash of the token per staff member), download and connect links, host API keys."""
    _add_column_if_missing(database, Staff, "feed_generation")
    _add_column_if_missing(database, Staff, "feed_token_hash")
    if "staff_feed_token_hash" not in {i.name for i in database.get_indexes("staff")}:
        database.execute_sql('CREATE UNIQUE INDEX "staff_feed_token_hash" ON "staff" ("feed_token_hash")')
    database.create_tables([DownloadLink, ConnectLink, ApiKey])


def _migration_4(database: pw.Database) -> None:
    """Scheduler leases and heartbeats (several schedulers on PostgreSQL)."""
    for field in ("lease_owner", "lease_expires_at", "failures_in_row"):
        _add_column_if_missing(database, Connection, field)
    database.create_tables([SchedulerBeat])


def _migration_5(database: pw.Database) -> None:
    """OAuth consents in flight (Google, Microsoft)."""
    database.create_tables([OAuthState])


def _migration_6(database: pw.Database) -> None:
    """The connection lifecycle: account fingerprints, requested syncs, delivery after a repair, live relink links."""
    for field in ("account_key", "sync_requested_at"):
        _add_column_if_missing(database, Connection, field)
    for field in ("released_by", "write_failures"):
        _add_column_if_missing(database, AppointmentLink, field)
    _add_column_if_missing(database, Incident, "delivery_open")
    _add_column_if_missing(database, RelinkLink, "nonce")
    for model, column in ((Connection, "account_key"), (AppointmentLink, "released_by")):
        table = model._meta.table_name
        if f"{table}_{column}" not in {i.name for i in database.get_indexes(table)}:
            database.execute_sql(f'CREATE INDEX "{table}_{column}" ON "{table}" ("{column}")')


def _migration_7(database: pw.Database) -> None:
    """A partial index on the leases that are held: every claim first looks for leases of dead processes
    of this host, which was a scan of the whole table (~20 ms at 100,000 connections, now ~0.01 ms)."""
    if "connection_lease_owner_held" not in {i.name for i in database.get_indexes("connection")}:
        database.execute_sql('CREATE INDEX "connection_lease_owner_held" ON "connection" ("lease_owner") WHERE "lease_owner" IS NOT NULL')


def _migration_8(database: pw.Database) -> None:
    """The time a no-change run last saw every calendar of the connection unchanged."""
    _add_column_if_missing(database, Connection, "quiet_at")


def _migration_9(database: pw.Database) -> None:
    """No-change runs as a stretch on the connection, written as one SyncRun row when it ends."""
    for column in ("quiet_runs", "quiet_since", "quiet_requests", "quiet_ms"):
        _add_column_if_missing(database, Connection, column)
    _add_column_if_missing(database, SyncRun, "runs")


def _migration_10(database: pw.Database) -> None:
    """Push channels (Google watch, Graph subscriptions), when each calendar's is looked at next,
    and when each calendar was last read whole."""
    _add_column_if_missing(database, Calendar, "push_check_at")
    _add_column_if_missing(database, Calendar, "full_read_at")
    database.create_tables([PushChannel])


def _migration_11(database: pw.Database) -> None:
    """Per-calendar roles: the primary is marked (until now it was the only write calendar), and an
    extra write calendar can be in trouble on its own."""
    _add_column_if_missing(database, Calendar, "is_primary")
    _add_column_if_missing(database, Calendar, "problem")
    database.execute(Calendar.update(is_primary=True).where(Calendar.is_destination == True))


def _migration_12(database: pw.Database) -> None:
    """An index a feed's ETag is read from alone (core.feeds.validators): each staff member's
    appointments by last change, with their versions."""
    if "appointment_staff_id_updated_at_version" not in {i.name for i in database.get_indexes("appointment")}:
        database.execute_sql(
            'CREATE INDEX "appointment_staff_id_updated_at_version" ON "appointment" ("staff_id", "updated_at", "version")'
        )


# version -> function(database). Append only; never edit a released migration.
MIGRATIONS = {
    1: _migration_1,
    2: _migration_2,
    3: _migration_3,
    4: _migration_4,
    5: _migration_5,
    6: _migration_6,
    7: _migration_7,
    8: _migration_8,
    9: _migration_9,
    10: _migration_10,
    11: _migration_11,
    12: _migration_12,
}
SCHEMA_VERSION = max(MIGRATIONS)


class SqliteDatabase(pw.SqliteDatabase):
    """SQLite whose transactions take the write lock when they begin (``BEGIN IMMEDIATE``).

    A deferred transaction that reads first and writes later cannot wait for
    another writer in WAL mode: it fails at once with "database is locked".
    Taking the lock at BEGIN lets the busy timeout queue writers instead.
    """

    def begin(self, lock_type=None):
        return super().begin(lock_type or "IMMEDIATE")


BUSY_TIMEOUT_ENV = "CALSYNC_DB_BUSY_TIMEOUT"  # seconds a write waits for another process's lock
DEFAULT_BUSY_WAIT_SECONDS = 15
MAX_BUSY_WAIT_SECONDS = 3600
BUSY_WAIT_SECONDS = DEFAULT_BUSY_WAIT_SECONDS  # what the database was last opened with


def _busy_message(seconds: int) -> str:
    return f"the database is busy (another calsync process held it for more than {seconds} s); nothing was changed, try again in a moment"


BUSY_MESSAGE = _busy_message(BUSY_WAIT_SECONDS)


def is_busy(exc: BaseException) -> bool:
    """True when ``exc`` means another process holds the database lock past the busy timeout.

    Adapters answer it as "try again" (CLI exit 1 with :data:`BUSY_MESSAGE`,
    API 503 with Retry-After); the transaction that hit it was rolled back.
    """
    if not isinstance(exc, pw.OperationalError):
        return False
    text = str(exc).lower()
    return "database is locked" in text or "database is busy" in text or "lock timeout" in text


def busy_timeout(env=None) -> int:
    """CALSYNC_DB_BUSY_TIMEOUT (default 15): ValueError naming the variable when it is not 1..3600."""
    raw = (os.environ if env is None else env).get(BUSY_TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_BUSY_WAIT_SECONDS
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 6 and 1 <= int(raw) <= MAX_BUSY_WAIT_SECONDS):
        raise ValueError(f"{BUSY_TIMEOUT_ENV}: must be a whole number of seconds from 1 to {MAX_BUSY_WAIT_SECONDS}, got {raw[:40]!r}")
    return int(raw)


def set_busy_timeout(seconds: int) -> None:
    """Make BUSY_WAIT_SECONDS and BUSY_MESSAGE say what the database is opened with."""
    global BUSY_WAIT_SECONDS, BUSY_MESSAGE
    BUSY_WAIT_SECONDS, BUSY_MESSAGE = seconds, _busy_message(seconds)


def _private(path: Path, mode: int) -> None:
    """Tighten ``path`` to ``mode`` when others may read it and it is ours (installs before 0600)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if info.st_mode & 0o077 and info.st_uid == os.getuid():
        path.chmod(mode)
        log.warning("%s was open to other users (mode %o): now %o", path, info.st_mode & 0o777, mode)


def prepare_sqlite_file(path: Path) -> None:
    """The database file (and its -wal/-shm, which SQLite creates with its mode) only for us: 0600.

    A missing parent is made 0700; the file is created 0600 before SQLite opens it.
    """
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        for suffix in ("", "-wal", "-shm"):
            _private(path.with_name(path.name + suffix), 0o600)


def open_database(url: str) -> pw.Database:
    """A peewee database for ``url`` (sqlite:///path or postgresql://...).

    SQLite waits for another process's write lock up to CALSYNC_DB_BUSY_TIMEOUT seconds.
    """
    parts = urlsplit(url)
    if parts.scheme == "sqlite":
        seconds = busy_timeout()
        set_busy_timeout(seconds)
        path = url[len("sqlite:///") :] if url.startswith("sqlite:///") else parts.path
        if path and path != ":memory:":
            prepare_sqlite_file(Path(path))
        return SqliteDatabase(
            path or ":memory:",
            pragmas={
                "journal_mode": "wal",
                "foreign_keys": 1,
                "busy_timeout": seconds * 1000,
                "synchronous": "normal",
            },
            timeout=seconds,
        )
    # Imported here: playhouse.db_url loads psycopg2, ~50 ms of every SQLite command's start-up.
    from playhouse.db_url import connect as connect_url

    return connect_url(url)


def current_version(database: pw.Database) -> int:
    if not database.table_exists(SchemaVersion._meta.table_name):
        return 0
    row = SchemaVersion.select(pw.fn.MAX(SchemaVersion.version)).scalar()
    return row or 0


def migrate(database: pw.Database) -> int:
    """Apply the missing migrations; returns the schema version now in force."""
    is_pg = isinstance(database, pw.PostgresqlDatabase)
    with database.connection_context():
        if is_pg:
            # Several processes may start at once: one migrates, the others wait.
            database.execute_sql("SELECT pg_advisory_lock(727001)")
        try:
            version = current_version(database)
            if version > SCHEMA_VERSION:
                raise RuntimeError(
                    f"the database has schema version {version}, newer than this calsync ({SCHEMA_VERSION}); upgrade calsync"
                )
            for number in sorted(n for n in MIGRATIONS if n > version):
                with database.atomic():
                    MIGRATIONS[number](database)
                    SchemaVersion.create(version=number)
                log.info("database migrated to schema version %s", number)
                version = number
            return version
        finally:
            if is_pg:
                database.execute_sql("SELECT pg_advisory_unlock(727001)")


def bind(url: str) -> pw.Database:
    """Open ``url``, bind the models to it, bring the schema up to date."""
    database = open_database(url)
    db.initialize(database)
    migrate(database)
    return database
