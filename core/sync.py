"""The two-way sync of one connection: pull busy sources, push appointments.

A run is: for every calendar, one cheap probe (does it exist, may we write,
has its ctag moved); when something moved, the incremental changes, which
become feed entries (busy sources) and external edits or deletions of
calsync's own events (destinations). Then the appointments that are new,
changed or cancelled are written to each destination, each with a stable
UID and a conditional PUT, so a retry or a crash between the PUT and the
database commit never leaves a duplicate. Every run is recorded (core.sync_runs: a stretch of
no-change runs is one row).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import time

import models as m
from core import busy, clock, expander, extra_calendars, ics, lifecycle, push, sync_runs, waiting
from core.providers.base import (
    CalendarGone,
    CalendarState,
    Provider,
    ProviderError,
    Transient,
    WriteForbidden,
)
from core.reconcile import OwnEvents
from core.sync_pulling import Pulling
from core.sync_pushing import Pushing

log = logging.getLogger("calsync.sync")

# A calendar that moved is read whole at least this often, whatever the sync tokens and push say:
# the backstop against a change an incremental read or a notification never reported.
FULL_READ_EVERY = dt.timedelta(days=1)


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
    errors: int = 0  # appointments whose write failed on their own (the rest of the run worked)
    conflicts: int = 0  # appointments changed on both sides, decided by the policy
    adopted: int = 0  # events carrying one of calsync's UIDs, taken back as the appointment's

    def to_dict(self) -> dict:
        # Every field is a number or a string: a copy of the fields is asdict() without its
        # recursive deep copy (~0.1 ms of a no-change sync's ~2.5).
        return dict(vars(self))


def window(settings) -> tuple[dt.datetime, dt.datetime]:
    now = clock.now()
    return now - dt.timedelta(days=settings.sync_past_days), now + dt.timedelta(days=settings.sync_future_days)


def calendar_state(cal: m.Calendar) -> CalendarState:
    known: dict[str, str] = dict(
        m.tuples(m.RemoteObject.select(m.RemoteObject.href, m.RemoteObject.etag).where(m.RemoteObject.calendar == cal))
    )
    return CalendarState(remote_id=cal.remote_id, sync_token=cal.sync_token, ctag=cal.ctag, known=known)


class ConnectionSync(Pulling, Pushing):
    """One run over one connection with one provider instance."""

    def __init__(
        self,
        runtime,
        conn: m.Connection,
        provider: Provider | None = None,
        calendars: list[m.Calendar] | None = None,
        nothing_waits: bool | None = None,
        lease_owner: str | None = None,
        read_at: dt.datetime | None = None,
    ):
        """``calendars``: the connection's calendars when the caller read them with it (one query),
        and ``nothing_waits`` what :func:`waiting.waits_on` said of them in that query (read
        before the run began). ``lease_owner``: the caller holds the lease; a run that finds
        nothing to do gives it back in its own last write (``lease_released`` then says so).
        ``read_at``: when the caller read the connection (the run counts as begun then, so a sync
        asked for after that read is never taken as done by this run)."""
        self.read_at = read_at
        self.rt = runtime
        self.calendars = calendars
        self.nothing_waits = nothing_waits if calendars is not None else None
        self.lease_owner = lease_owner
        self.lease_released = False
        self.settings = runtime.settings
        self.conn = conn
        self.provider = provider or runtime.provider_for(conn)
        self.report = SyncReport(connection_id=conn.id)
        self.tz = ics.zone(conn.staff.timezone)
        self.me = busy.owners(conn.account, conn.staff.email)  # whose answers to invitations count
        self.window_start, self.window_end = window(self.settings)
        self.strays: dict[int, list[tuple[str, str]]] = {}  # calendar id -> copies of ours to remove
        self.own = OwnEvents(runtime, conn, self.report, self.tz)
        self.expansions = expander.Budget()  # a few repeat rules may run out of time, not every one

    # -- the run --------------------------------------------------------------

    def run(self, cause: str = "sync") -> SyncReport:
        started = time.monotonic()
        run_started = self.read_at or clock.now()
        budget = self.settings.sync_budget
        self.ends_at = started + budget
        self.budget_text = f"ran past the sync's {budget} s budget"
        if getattr(self.provider, "http", None) is not None:
            self.provider.http.set_budget(budget, self.budget_text)  # every request ends by then at the latest
        calendars = (
            self.calendars
            if self.calendars is not None
            else list(
                m.Calendar.select()
                .where(m.Calendar.connection == self.conn)
                .order_by(m.Calendar.is_primary.desc(), m.Calendar.is_destination.desc(), m.Calendar.id)
            )
        )
        calendars = [c for c in calendars if c.is_destination or c.is_busy_source]  # a calendar with no role is not read
        if any(c.is_busy_source and c.full_read_at is None for c in calendars):
            # A first read is coming and may be large (parsed in the workers, expander.read_ahead):
            # the workers start now, while the server answers the probe (they take ~0.2 s to start).
            expander.warm_up()
        run_row = None
        try:
            probes = self._probe_all(calendars)
            if self._quiet(calendars, probes):
                self._keep_watching(calendars)
                return self._finish_quietly(calendars, probes, started, run_started)
            run_row = sync_runs.open_run(self.conn, run_started)
            # A sync asked for before this run started is this run.
            m.Connection.update(last_sync_at=run_started, sync_requested_at=None).where(m.Connection.id == self.conn.id).execute()
            self._pull_and_push(calendars, probes)
            self._keep_watching(calendars)
        except ProviderError as exc:
            self.report.outcome = "transient" if exc.transient else "failed"
            self.report.error = exc.reason
            if run_row is None:
                run_row = sync_runs.open_run(self.conn, run_started)
                m.Connection.update(last_sync_at=run_started, sync_requested_at=None).where(m.Connection.id == self.conn.id).execute()
            lifecycle.failed(self.rt, self.conn, exc, cause)
        except Exception as exc:
            # An internal fault must not change the connection's status: it is not the provider's.
            log.exception("sync of connection %s failed internally", self.conn.id)
            self.report.outcome = "failed"
            self.report.error = f"internal error: {exc.__class__.__name__}: {exc}"
            raise
        else:
            # The connection works; an appointment whose own write failed is a visible error, not "ok".
            self.report.outcome = "partial" if self.report.errors else "ok"
            if self.report.errors and not self.report.error:
                self.report.error = f"{self.report.errors} appointment(s) could not be written (see status)"
            lifecycle.succeeded(self.rt, self.conn, cause)
        finally:
            if run_row is not None or self.report.outcome == "failed":
                self._finish(run_row or sync_runs.open_run(self.conn, run_started), started)
        return self.report

    def _keep_watching(self, calendars: list[m.Calendar]) -> None:
        """Push channels for the calendars read (core.push); a fault there never fails the sync."""
        try:
            push.keep_watching(self.rt, self.conn, calendars, self.provider)
        except Exception:
            log.exception("push channels of connection %s not kept", self.conn.id)

    def _finish(self, run_row: m.SyncRun, started: float) -> None:
        """Record the outcome of a run that read or wrote something (or failed)."""
        self.rt.keep_secrets(self.conn, self.provider)
        self.report.requests = self.provider.requests_made
        self.report.duration_ms = int((time.monotonic() - started) * 1000)
        self.conn = m.Connection.get_by_id(self.conn.id)
        self.report.status = self.conn.status
        self.report.reason = self.conn.reason
        self.report.missed = waiting.missed_count(self.conn)
        r = self.report
        run_row.finished_at = clock.now()
        run_row.duration_ms, run_row.requests = r.duration_ms, r.requests
        run_row.created, run_row.updated, run_row.deleted = r.created, r.updated, r.deleted
        run_row.entries_read, run_row.applied_back = r.entries_read, r.applied_back
        run_row.outcome, run_row.error = r.outcome, r.error
        run_row.save()
        self._log()

    def _log(self) -> None:
        r = self.report
        log.info(
            "sync connection=%s outcome=%s status=%s requests=%d created=%d updated=%d deleted=%d "
            "entries=%d applied_back=%d missed=%d ms=%d%s",
            self.conn.id,
            r.outcome,
            r.status,
            r.requests,
            r.created,
            r.updated,
            r.deleted,
            r.entries_read,
            r.applied_back,
            r.missed,
            r.duration_ms,
            f" error={r.error!r}" if r.error else "",
        )

    # -- the no-change path -----------------------------------------------------

    def _probe_all(self, calendars: list[m.Calendar]) -> dict:
        """Each calendar's probe (None: a calendar that is gone); the primary being gone raises."""
        probes = {}
        for cal in calendars:
            try:
                probes[cal.id] = self._probe(cal)
            except CalendarGone:
                if cal.is_primary:
                    raise
                probes[cal.id] = None
        return probes

    def _probe(self, cal: m.Calendar):
        """The cheap question (exists, writable, moved?): no object list, the known state is read only on a move."""
        quiet_since = self.conn.quiet_at is not None and cal.last_synced_at is not None and self.conn.quiet_at > cal.last_synced_at
        return self.provider.probe(
            CalendarState(
                remote_id=cal.remote_id,
                sync_token=cal.sync_token,
                ctag=cal.ctag,
                first_read=cal.full_read_at is None,
                learn_ctag=quiet_since,  # a quiet run came after its last read: a ctag will be used
            )
        )

    @staticmethod
    def _unchanged(cal: m.Calendar, info) -> bool:
        if info.sync_token and cal.sync_token:
            same = info.sync_token == cal.sync_token
        else:
            same = bool(info.ctag) and info.ctag == cal.ctag
        return same and cal.last_synced_at is not None

    def _quiet(self, calendars: list[m.Calendar], probes: dict) -> bool:
        """Nothing moved, nothing waits, nothing changes status: the run is one read and one write."""
        conn = self.conn
        if conn.status != m.ACTIVE or conn.failing_since is not None or conn.failures_in_row or not calendars:
            return False
        for cal in calendars:
            info = probes[cal.id]
            if info is None or not self._unchanged(cal, info) or bool(info.writable) != bool(cal.writable) or cal.problem:
                return False
        if self.nothing_waits is not None:
            return self.nothing_waits
        return waiting.nothing_to_do(conn, self.window_start)

    @staticmethod
    def _trusted_ctag(cal: m.Calendar, info) -> str:
        """The probe's ctag when it describes the calendar as its stored sync token does ('' if not).

        Only an answer that carried the stored token vouches for its ctag: not a ctag-only probe
        after a read, nor one that saw the calendar before it moved again during the report. Kept,
        such a ctag could equal a later state that returned to it (an event added and removed) and
        hide that change; unknown, the probes ask for the token again. A server without sync tokens
        has only the ctag."""
        if not info.ctag or (cal.sync_token and info.sync_token != cal.sync_token):
            return ""
        return info.ctag

    def _learned_ctag(self, cal: m.Calendar, info) -> str:
        """A trusted ctag the calendar does not store yet."""
        ctag = self._trusted_ctag(cal, info)
        return ctag if ctag != cal.ctag else ""

    def _finish_quietly(self, calendars: list[m.Calendar], probes: dict, started: float, run_started) -> SyncReport:
        """The no-change run's one write: the connection's success with the time its calendars were
        seen unchanged, the run counted into the connection's open stretch of no-change runs
        (:mod:`core.sync_runs`), and the lease given back when the run holds it."""
        self.rt.keep_secrets(self.conn, self.provider)
        learned = {cal: ctag for cal in calendars if (ctag := self._learned_ctag(cal, probes[cal.id]))}
        r = self.report
        r.outcome, r.status, r.reason, r.missed = "ok", self.conn.status, self.conn.reason, 0
        r.requests = self.provider.requests_made
        r.duration_ms = int((time.monotonic() - started) * 1000)
        # After a read, the first quiet run also records the ctags its token vouched for (the next
        # probes ask for the ctag alone): in the same transaction as the run's own write.
        with m.db.atomic() if learned else contextlib.nullcontext():
            for cal, ctag in learned.items():
                m.Calendar.update(ctag=ctag).where(m.Calendar.id == cal.id).execute()
                cal.ctag = ctag
            lifecycle.succeeded_quietly(self.rt, self.conn, run_started, self.lease_owner, requests=r.requests, duration_ms=r.duration_ms)
        self.lease_released = self.lease_owner is not None
        self._log()
        return r

    # -- reading and writing ------------------------------------------------------

    def _pull_and_push(self, calendars: list[m.Calendar], probes: dict) -> None:
        destination_writable = True
        for cal in calendars:
            info = probes[cal.id]
            try:
                if info is not None:
                    self._apply_probe(cal, info)
            except CalendarGone:
                if cal.is_primary:
                    raise
                info = None
            if info is None:
                # A calendar that vanished: its events no longer block time, and an extra write
                # calendar's appointments wait as missed (core.waiting) while the primary syncs on.
                log.info("calendar %s of connection %s is gone; its entries are dropped", cal.id, self.conn.id)
                m.FeedEntry.delete().where(m.FeedEntry.calendar == cal).execute()
                m.RemoteObject.delete().where(m.RemoteObject.calendar == cal).execute()
                if cal.is_destination:
                    self._trouble(cal, m.CALENDAR_MISSING)
                continue
            if cal.is_destination and not info.writable:
                if cal.is_primary:
                    destination_writable = False
                else:
                    self._trouble(cal, m.READ_ONLY)
            elif cal.problem:
                extra_calendars.fixed(self.rt, cal)
        if not destination_writable:
            raise WriteForbidden("the primary calendar is read-only for this account: calsync can read it but not add events")
        # Every calendar answered: what waited while the connection failed is written now.
        lifecycle.before_push(self.rt, self.conn)
        for cal in calendars:
            if cal.is_destination and not cal.problem:
                writes = self.report.created + self.report.updated + self.report.deleted
                try:
                    self._push(cal)
                except (CalendarGone, WriteForbidden) as exc:
                    if cal.is_primary:
                        raise
                    self._trouble(cal, m.CALENDAR_MISSING if isinstance(exc, CalendarGone) else m.READ_ONLY)
                    continue
                if self.report.created + self.report.updated + self.report.deleted > writes:
                    push.expect_echo(cal)
                    # Record the calendar's state after our own writes, so the next run sees
                    # only what others changed (some servers' ctags return to an old value
                    # when an event is added and removed again).
                    self._apply_probe(cal, self._probe(cal))

    def _trouble(self, cal: m.Calendar, problem: str) -> None:
        """An extra write calendar cannot take appointments: they wait on it as missed; the run goes on."""
        waiting.ensure_links(cal, self.window_start, state=m.LINK_MISSED)  # what it should hold and never got waits too
        extra_calendars.broke(self.rt, cal, problem)

    def _apply_probe(self, cal: m.Calendar, info) -> None:
        """When the probe says the calendar moved, read and apply its changes; record its state."""
        cal.writable = info.writable
        if not self._unchanged(cal, info):
            state = calendar_state(cal)
            state.probed_token = info.sync_token
            now = clock.now()
            if cal.full_read_at is None or now - cal.full_read_at >= FULL_READ_EVERY:
                state.sync_token = ""  # the backstop behind push and sync tokens: the whole calendar, daily
            ics.warm_up()  # what the read brings is parsed with it
            changes = self.provider.changes(state)
            if changes.complete:
                cal.full_read_at = now
            if not changes.unchanged:
                self._apply_changes(cal, changes)
                cal.sync_token = changes.sync_token or ("" if changes.complete else cal.sync_token)
            cal.ctag = self._trusted_ctag(cal, info) if info.ctag else changes.ctag  # against the token the read ended at
        else:
            cal.ctag = self._learned_ctag(cal, info) or cal.ctag
        cal.last_synced_at = clock.now()
        cal.save()

    def check_budget(self) -> None:
        """A sync past its wall-clock budget ends as a transient failure (its lease is released)."""
        if time.monotonic() > self.ends_at:
            raise Transient(f"the sync {self.budget_text}: the calendar holds too much to read in one run, or the provider is very slow")


def sync_connection(
    runtime, conn: m.Connection, provider: Provider | None = None, cause: str = "sync", calendars: list[m.Calendar] | None = None
) -> SyncReport:
    return ConnectionSync(runtime, conn, provider, calendars).run(cause)
