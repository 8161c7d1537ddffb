"""A model-based test of one staff member's CalDAV connection, against a real Radicale.

Hypothesis drives random sequences of what people and the world do, through the real core
API: the host books, edits, re-books and cancels appointments; someone edits or deletes
calsync's events on the calendar, or adds their own; the password changes, the calendar is
deleted, or it becomes read-only; the staff member repairs it (the relink page with the new
password, the old password back and a test, a new primary calendar chosen in the console or on
the relink page, read-only lifted and a test), downloads the missed appointments and imports
them into the calendar; calsync dies between a PUT and its commit; sync is stopped and the
account connected again.

A small model of the world predicts the connection's status and what the calendar must hold,
and after every step the test checks that

- the status is the one the world implies (credentials before a missing calendar before
  read-only), and nothing is counted as missed while the connection works;
- once a sync completed, every live appointment is on the calendar exactly once, with its
  current time and subject, nothing cancelled is there, nothing is missed, and other people's
  events are untouched and loaded as busy; calsync writes nothing outside a completed sync;
- the default external-edit policies hold: an edit made on the calendar is applied back to
  the appointment, unless the host changed the appointment too (then the host's version is
  written over it); a deletion on the calendar cancels the appointment (unless the host
  changed it); a copy of an appointment that calsync did not write is adopted, never kept twice;
- every break opened exactly one incident and one ``incident.opened`` notification with one
  delivery per configured channel (the log, and e-mail through a real SMTP server); every
  repair sent one ``incident.resolved`` whose "delivered" counts the appointments that waited
  and are now on the calendar;
- while broken, the download holds exactly the appointments that wait, and a stop never
  drops them silently.

The default run is small and fixed (derandomized). Longer runs:
``CALSYNC_MODEL_EXAMPLES=200 pytest tests/test_lifecycle_model.py``.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import json
import os
import shutil
import tempfile
import urllib.parse
from pathlib import Path
from unittest import mock

import icalendar
import pytest
from conftest import Mailbox, make_env, vevent
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from servers import CalDAVServer, ServerError, start_server

import models as m
from core import actions, clock, ics, outbox, runtime
from core.actions import ActionError
from core.config import load_settings
from core.providers.caldav import CalDAVProvider

STAFF = "ada@example.com"
HOST_SUBJECTS = ("Intro call", "Coaching session", "Follow-up", "Quarterly review")
MAX_APPOINTMENTS = 6
MAX_FOREIGN_EVENTS = 3
BROKEN = frozenset(m.BROKEN_STATUSES)
CHANNELS = ["email", "log"]  # every configured channel: the log always, e-mail through CALSYNC_SMTP_URL

_LONG = int(os.environ.get("CALSYNC_MODEL_EXAMPLES", "0") or 0)
MODEL_SETTINGS = settings(
    max_examples=_LONG or 20,
    stateful_step_count=30,
    deadline=None,
    derandomize=not _LONG,
    database=None,
    report_multiple_bugs=False,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class SimulatedCrash(Exception):
    """The process died after the server stored an event, before calsync recorded it."""


@dataclasses.dataclass
class Appt:
    """An appointment as the model knows it: what the host (or an applied-back edit) made it."""

    ext_id: str
    start: dt.datetime
    end: dt.datetime
    subject: str
    cancelled: bool = False

    @property
    def uid(self) -> str:
        return ics.appointment_uid(self.ext_id)

    @property
    def fields(self) -> tuple:
        return (self.start, self.end, self.subject)


@dataclasses.dataclass
class World:
    """What lives for the whole test: one Radicale, one SMTP mailbox, a directory."""

    server: CalDAVServer
    mailbox: Mailbox
    root: Path
    password: str
    examples: int = 0


def _utc(value) -> dt.datetime:
    return clock.utc(value) if isinstance(value, dt.datetime) else value


def _event_fields(event) -> tuple:
    return (_utc(event.decoded("DTSTART")), _utc(event.decoded("DTEND")), str(event.get("SUMMARY", "")))


def _edited_on_calendar(text: str, subject: str, shift: dt.timedelta) -> tuple[str, tuple]:
    """The object as a calendar app saves it after the user moved it and/or renamed it."""
    cal = icalendar.Calendar.from_ical(text)
    (event,) = cal.walk("VEVENT")
    start, end = _utc(event.decoded("DTSTART")) + shift, _utc(event.decoded("DTEND")) + shift
    for name in ("SUMMARY", "DTSTART", "DTEND", "LAST-MODIFIED"):
        event.pop(name, None)
    event.add("summary", subject)
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("last-modified", clock.now())
    return cal.to_ical().decode(), (start, end, subject)


def _split_snapshot(data: bytes) -> list[tuple[str, str]]:
    """(UID, one-event object) per event of an .ics file, as a calendar app imports it."""
    out = []
    for event in icalendar.Calendar.from_ical(data).walk("VEVENT"):
        one = icalendar.Calendar()
        one.add("prodid", "-//Example//Calendar app//EN")
        one.add("version", "2.0")
        one.add_component(event)
        out.append((str(event["UID"]), one.to_ical().decode()))
    return out


class ConnectionLifecycle(RuleBasedStateMachine):
    """Ada's CalDAV connection, the host's appointments, and everything that happens to them."""

    def __init__(self, world: World):
        super().__init__()
        self.world = world
        self.server = world.server
        world.examples += 1
        self.example = world.examples
        self.data_dir = tempfile.mkdtemp(prefix=f"example-{self.example}-", dir=world.root)
        self.rt = runtime.start(
            load_settings(
                make_env(Path(self.data_dir), CALSYNC_SMTP_URL=world.mailbox.url, CALSYNC_MAIL_FROM="Calsync <calsync@example.com>"),
                read_dotenv=False,
            )
        )
        self.base = clock.now().replace(hour=0, minute=0, second=0, microsecond=0)
        self.calendars_made: list[str] = []
        self.counter: collections.Counter[str] = collections.Counter()  # names handed out: calendars, passwords, edits...
        self.appts: dict[str, Appt] = {}
        self.cal_url: str | None = self._make_calendar()
        actions.add_staff(self.rt, STAFF, "Ada Lovelace", timezone="Europe/Berlin")
        self.objects: dict[str, str] = {}  # href -> appointment id of every object with a calsync UID
        self.foreign: set[str] = set()  # UIDs of other people's events on the calendar
        self.snapshot: bytes | None = None
        self.kept: set[str] = set()
        self._connect()

    # -- the model --------------------------------------------------------------------------

    def _connect(self) -> None:
        """Connect (again): a fresh connection knows nothing of what is on the calendar."""
        conn = actions.connect(
            self.rt, STAFF, "caldav", url=self.server.base_url, username=self.server.username, password=self.server.password
        )
        assert [c["name"] for c in conn["calendars"] if c["destination"]] == [self.cal_name], conn["calendars"]
        self.conn_id = conn["id"]
        self.stored_password = self.server.password
        self.status = m.PENDING
        self.stopped = False
        self.tracked: dict[str, str] = {}  # appointment id -> href of the event calsync knows it wrote
        self.pending: dict[str, tuple] = {}  # appointment id -> ("edit", fields) | ("delete", None), not yet read
        self.dirty: set[str] = {a.ext_id for a in self.appts.values()}  # changed since last written
        self.kept_elsewhere: set[str] = set()  # left on purpose by `stop --keep-events`, not adopted here
        self.waiting: set[str] = set()  # appointments that waited during the current break
        self.breaks = 0
        self.resolved: list[int] = []  # the "delivered" of each repair, in order

    def _make_calendar(self) -> str:
        self.counter["calendar"] += 1
        self.cal_name = f"work-{self.example}-{self.counter['calendar']}"
        url = self.server.make_calendar(self.cal_name, self.cal_name)
        self.calendars_made.append(url)
        return url

    def _href(self, url: str) -> str:
        path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
        return urllib.parse.urljoin(self.server.base_url, path)

    def _world_status(self) -> str:
        """What a sync or a test must find: credentials first, then the calendar, then permissions."""
        if self.server.password != self.stored_password:
            return m.RELINK_REQUIRED
        if self.cal_url is None:
            return m.CALENDAR_MISSING
        if self.server.read_only:
            return m.READ_ONLY
        return m.ACTIVE

    def _live(self) -> list[Appt]:
        return [a for a in self.appts.values() if not a.cancelled]

    def _live_waiting(self) -> set[str]:
        return {e for e in self.waiting if not self.appts[e].cancelled}

    def _host_changed(self, ext_id: str) -> None:
        self.dirty.add(ext_id)
        self.kept_elsewhere.discard(ext_id)  # what comes next goes to the new destination
        if self.status in BROKEN:
            self.waiting.add(ext_id)

    def _became(self, new: str) -> None:
        """The status the product must now show, with the incidents it implies."""
        old = self.status
        if new in BROKEN and new != old:
            self.breaks += 1
            self.waiting |= self.dirty - self.kept_elsewhere
            if new == m.CALENDAR_MISSING:  # calsync's events went with the calendar
                self.waiting |= {a.ext_id for a in self._live()} - self.kept_elsewhere
        if new == m.ACTIVE and old in BROKEN:
            self.resolved.append(len(self._live_waiting()))
        if new == m.ACTIVE:
            self.waiting.clear()
        self.status = new
        if new != old:  # the alerts go out on every configured channel (the log, and SMTP)
            sent = outbox.deliver_pending(self.rt)
            assert sent["failed"] == 0, f"a notification could not be delivered: {sent}"

    def _read_calendar(self) -> list[str]:
        """A sync read the calendar: the documented default policies decide every outside change.

        Returns the copies it removes before writing (of a cancelled appointment, or a second one)."""
        strays = []
        known = set(self.tracked.values())
        for href, ext_id in sorted(self.objects.items()):
            if href in known:
                continue
            if self.appts[ext_id].cancelled or ext_id in self.tracked:
                strays.append(href)
            else:  # a copy calsync did not write: adopted, and the appointment is written over it
                self.tracked[ext_id] = href
                self.dirty.add(ext_id)
                self.kept_elsewhere.discard(ext_id)
        for ext_id, (kind, found) in sorted(self.pending.items()):
            appt = self.appts[ext_id]
            host_changed = ext_id in self.dirty
            if kind == "delete":
                del self.tracked[ext_id]
                if not (host_changed and not appt.cancelled):
                    appt.cancelled = True  # deleted on the calendar: the appointment is cancelled
            elif not host_changed:
                appt.start, appt.end, appt.subject = found  # edited on the calendar: applied back
            # else: changed on both sides, the host's version is written over the calendar's
        self.pending.clear()
        return strays

    def _server_objects(self) -> tuple[dict[str, tuple[str, tuple]], set[str]]:
        """(href -> (appointment id, fields) of calsync UIDs, foreign UIDs) on the calendar now."""
        if self.cal_url is None:
            return {}, set()
        by_uid = {a.uid: a.ext_id for a in self.appts.values()}
        ours, foreign = {}, set()
        for href, text in self.server.list_events(self.cal_url).items():
            (event,) = icalendar.Calendar.from_ical(text).walk("VEVENT")
            uid = str(event["UID"])
            if uid in by_uid:
                ours[self._href(href)] = (by_uid[uid], _event_fields(event))
            else:
                assert not uid.startswith("calsync-"), f"an event of an appointment nobody booked: {uid}"
                foreign.add(uid)
        return ours, foreign

    # -- what a sync, a test or a repair must have done -----------------------------------------

    def _expect_sync(self, report: dict, what: str) -> None:
        expected = self._world_status()
        assert report["status"] == expected, f"{what}: status {report['status']!r}, the world says {expected!r}: {report}"
        if expected != m.ACTIVE:
            assert report["outcome"] == "failed", f"{what}: {report}"
            self._became(expected)
            return
        assert report["outcome"] == "ok", f"{what} did not complete: {report}"
        assert report["missed"] == 0, f"{what} left appointments missed: {report}"
        self._read_calendar()
        self.dirty.clear()
        self._became(m.ACTIVE)
        self._check_completed_sync(what)

    def _expect_test(self, result: dict, what: str) -> None:
        expected = self._world_status()
        assert result["status"] == expected, f"{what}: status {result['status']!r}, the world says {expected!r}: {result}"
        if expected != m.ACTIVE:
            assert not result["ok"] and result["sync"] is None, f"{what}: {result}"
            self._became(expected)
            return
        must_sync = self.status != m.ACTIVE
        assert (result["sync"] is not None) == must_sync, (
            f"{what}: a good test syncs at once exactly when the connection was not active (it was {self.status}): sync={result['sync']}"
        )
        if must_sync:
            self._expect_sync(result["sync"], what)

    def _expect_repair(self, result: dict, what: str) -> None:
        was = self.status
        self._expect_sync(result["sync"], what)
        assert result["status"] == self.status, f"{what}: {result}"
        if "ok" in result:  # the relink page's answer
            assert result["ok"] == (self.status == m.ACTIVE), f"{what}: {result}"
            if self.status == m.ACTIVE and was in BROKEN:
                assert result["delivered"] == self.resolved[-1], (
                    f"{what}: the page says {result['delivered']} delivered, {self.resolved[-1]} waited"
                )

    def _check_completed_sync(self, what: str) -> None:
        ours, foreign = self._server_objects()
        copies = collections.defaultdict(list)
        for href, (ext_id, found) in ours.items():
            copies[ext_id].append((href, found))
        for appt in self.appts.values():
            if appt.cancelled or appt.ext_id in self.kept_elsewhere:
                assert not copies[appt.ext_id], (
                    f"after {what}: {'cancelled' if appt.cancelled else 'kept elsewhere'} appointment "
                    f"{appt.ext_id} is on the calendar: {copies[appt.ext_id]}"
                )
                continue
            assert len(copies[appt.ext_id]) == 1, (
                f"after {what}: live appointment {appt.ext_id} is on the calendar "
                f"{len(copies[appt.ext_id])} times (expected once): {copies[appt.ext_id]}"
            )
            ((_, found),) = copies[appt.ext_id]
            assert found == appt.fields, f"after {what}: {appt.ext_id} on the calendar is {found}, the appointment is {appt.fields}"
        assert foreign == self.foreign, f"after {what}: other people's events changed: {foreign} != {self.foreign}"
        entries = {e["uid"]: e for e in actions.list_entries(self.rt, self.conn_id)}
        for uid in self.foreign:
            assert uid in entries and entries[uid]["loaded"], f"after {what}: busy event {uid} not loaded: {entries.get(uid)}"
        assert actions.get_connection(self.rt, self.conn_id)["missed"] == 0, f"after {what}: appointments still missed"
        # Whichever copy survived is calsync's event of that appointment from now on.
        self.objects = {href: ext_id for href, (ext_id, _) in ours.items()}
        self.tracked = {ext_id: href for href, ext_id in self.objects.items()}

    # -- the host ---------------------------------------------------------------------------------

    def _pick(self, pick: int, live_only: bool = False) -> Appt:
        pool = sorted(self._live() if live_only else self.appts.values(), key=lambda a: a.ext_id)
        return pool[pick % len(pool)]

    def _index_of(self, rule_name: str, ext_id: str) -> int:
        """The ``pick`` that makes a rule choose this appointment, or its event (for fixed stories)."""
        if rule_name.startswith("someone_"):
            return [self.objects[h] for h in sorted(self.objects)].index(ext_id)
        pool = self._live() if rule_name == "host_cancels" else self.appts.values()
        return sorted(a.ext_id for a in pool).index(ext_id)

    def _time(self, day: int, hour: int) -> tuple[dt.datetime, dt.datetime]:
        start = self.base + dt.timedelta(days=day, hours=hour)
        return start, start + dt.timedelta(hours=1)

    @precondition(lambda self: len(self.appts) < MAX_APPOINTMENTS)
    @rule(day=st.integers(1, 20), hour=st.integers(8, 17), subject=st.sampled_from(HOST_SUBJECTS))
    def host_books(self, day, hour, subject):
        ext_id = f"appt-{len(self.appts) + 1}"
        start, end = self._time(day, hour)
        result = actions.upsert_appointment(self.rt, ext_id, STAFF, start.isoformat(), end.isoformat(), subject, actor="host")
        assert result["change"] == "created" and result["uid"] == ics.appointment_uid(ext_id), result
        self.appts[ext_id] = Appt(ext_id, start, end, subject)
        self._host_changed(ext_id)

    @precondition(lambda self: self.appts)
    @rule(
        pick=st.integers(0, MAX_APPOINTMENTS - 1),
        day=st.integers(1, 20),
        hour=st.integers(8, 17),
        subject=st.sampled_from(HOST_SUBJECTS),
        change=st.sampled_from(("time", "subject", "both")),
    )
    def host_edits(self, pick, day, hour, subject, change):
        """The host PUTs the appointment again: a new time and/or subject (a cancelled one is booked again)."""
        appt = self._pick(pick)
        start, end = self._time(day, hour) if change != "subject" else (appt.start, appt.end)
        subject = subject if change != "time" else appt.subject
        result = actions.upsert_appointment(self.rt, appt.ext_id, STAFF, start.isoformat(), end.isoformat(), subject, actor="host")
        unchanged = (start, end, subject) == appt.fields and not appt.cancelled
        assert result["change"] == ("unchanged" if unchanged else "updated"), result
        if not unchanged:
            appt.start, appt.end, appt.subject, appt.cancelled = start, end, subject, False
            self._host_changed(appt.ext_id)

    @precondition(lambda self: self._live())
    @rule(pick=st.integers(0, MAX_APPOINTMENTS - 1))
    def host_cancels(self, pick):
        appt = self._pick(pick, live_only=True)
        assert actions.cancel_appointment(self.rt, appt.ext_id)["change"] == "cancelled"
        appt.cancelled = True
        self._host_changed(appt.ext_id)

    # -- the calendar, outside calsync -----------------------------------------------------------

    @precondition(lambda self: not self.stopped and self.objects)
    @rule(pick=st.integers(0, 20), minutes=st.sampled_from((0, 7, -7, 14)))
    def someone_edits_an_event(self, pick, minutes):
        """Renamed (and maybe moved) in a calendar app; each edit gets a title the host never uses."""
        href = sorted(self.objects)[pick % len(self.objects)]
        ext_id = self.objects[href]
        response = self.server.request("GET", href)
        assert response.status_code == 200, f"GET {href}: {response.status_code}"
        self.counter["edit"] += 1
        text, found = _edited_on_calendar(response.text, f"Edited outside #{self.counter['edit']}", dt.timedelta(minutes=minutes))
        self.server.put_event(self.cal_url, href.rsplit("/", 1)[-1], text)
        if self.tracked.get(ext_id) == href:
            self.pending[ext_id] = ("edit", found)
        # else: a copy calsync did not write (yet): it is adopted and overwritten with the appointment

    @precondition(lambda self: not self.stopped and self.objects)
    @rule(pick=st.integers(0, 20))
    def someone_deletes_an_event(self, pick):
        href = sorted(self.objects)[pick % len(self.objects)]
        ext_id = self.objects.pop(href)
        self.server.delete_event(href)
        if self.tracked.get(ext_id) == href:
            self.pending[ext_id] = ("delete", None)

    @precondition(lambda self: not self.stopped and self.cal_url and len(self.foreign) < MAX_FOREIGN_EVENTS)
    @rule(day=st.integers(1, 20), hour=st.integers(8, 17))
    def someone_adds_a_busy_event(self, day, hour):
        self.counter["foreign"] += 1
        uid = f"dentist-{self.counter['foreign']}"
        start, end = self._time(day, hour)
        self.server.put_event(self.cal_url, f"{uid}.ics", vevent(uid, start, end, "Dentist"))
        self.foreign.add(uid)

    # -- syncs and tests ------------------------------------------------------------------------

    @precondition(lambda self: not self.stopped)
    @rule()
    def sync(self):
        (report,) = actions.sync_now(self.rt, self.conn_id)
        self._expect_sync(report, "sync")

    @precondition(lambda self: not self.stopped)
    @rule()
    def test_connection(self):
        self._expect_test(actions.test_connection(self.rt, self.conn_id), "test")

    @precondition(
        lambda self: (
            not self.stopped and self.status in (m.ACTIVE, m.PENDING) and self._world_status() == m.ACTIVE and self._new_appointments()
        )
    )
    @rule()
    def sync_crashes_after_a_put(self):
        """The process dies right after the server stored the first event this run creates."""
        writes: list[tuple[str, str]] = []
        created: list[tuple[str, str]] = []
        real_create, real_update, real_delete = CalDAVProvider._create, CalDAVProvider._update, CalDAVProvider._delete

        def put_then_crash(provider, calendar_id, uid, data):
            href, _etag = real_create(provider, calendar_id, uid, data)
            created.append((uid, self._href(href)))
            raise SimulatedCrash("the process died after the server stored the event")

        def update(provider, href, data, etag):  # watched only: what the run wrote before it died
            new_etag = real_update(provider, href, data, etag)
            writes.append(("update", self._href(href)))
            return new_etag

        def delete(provider, href, etag):
            real_delete(provider, href, etag)
            writes.append(("delete", self._href(href)))

        with (
            mock.patch.object(CalDAVProvider, "_create", put_then_crash),
            mock.patch.object(CalDAVProvider, "_update", update),
            mock.patch.object(CalDAVProvider, "_delete", delete),
        ):
            (report,) = actions.sync_now(self.rt, self.conn_id)
        if not created:  # it created nothing (an adopted copy, say): the run completed
            self._expect_sync(report, "sync (nothing to create, so no crash)")
            return
        assert report["outcome"] == "failed" and "internal error" in report["error"], report
        # The run read the calendar and removed spare copies, then wrote in its own order until it died.
        for href in self._read_calendar():
            self.objects.pop(href)
        for kind, href in writes:
            ext_id = self.objects.get(href)
            if kind == "update" and ext_id is not None:
                self.dirty.discard(ext_id)
            elif kind == "delete" and ext_id is not None:
                del self.objects[href]
                self.tracked.pop(ext_id, None)
                self.dirty.discard(ext_id)
        ((uid, href),) = created
        ext_id = next(a.ext_id for a in self.appts.values() if a.uid == uid)
        self.objects[href] = ext_id  # on the calendar, but calsync never recorded it

    def _new_appointments(self) -> list[Appt]:
        """Live appointments with no event on the calendar: the next run creates them."""
        on_calendar = set(self.objects.values()) | set(self.tracked)
        return [a for a in self._live() if a.ext_id not in on_calendar and a.ext_id not in self.kept_elsewhere]

    # -- breaks ---------------------------------------------------------------------------------

    @precondition(lambda self: not self.stopped and self.server.password == self.stored_password)
    @rule()
    def password_changes(self):
        self.counter["password"] += 1
        self.server.set_password(f"changed-{self.example}-{self.counter['password']}")

    @precondition(lambda self: self.cal_url is not None)
    @rule()
    def calendar_is_deleted(self):
        self.server.delete_calendar(self.cal_url)
        self.cal_url = None
        self.objects, self.tracked, self.pending, self.foreign = {}, {}, {}, set()

    @precondition(lambda self: not self.stopped and not self.server.read_only and self.counter["read_only"] < 1)
    @rule()
    def calendar_becomes_read_only(self):
        """At most once per example: Radicale restarts to read its rights."""
        self.counter["read_only"] += 1
        self.server.set_read_only(True)

    # -- repairs --------------------------------------------------------------------------------

    def _relink_token(self) -> str:
        link = actions.issue_relink(self.rt, self.conn_id, via=("email",))
        return link["url"].rsplit("/relink/", 1)[1]

    @precondition(lambda self: not self.stopped and self.status == m.RELINK_REQUIRED)
    @rule()
    def relink_page_with_the_new_password(self):
        token = self._relink_token()
        result = actions.complete_relink(self.rt, token, password=self.server.password)
        self.stored_password = self.server.password
        self._expect_repair(result, "relink with the new password")

    @precondition(lambda self: not self.stopped and self.server.password != self.stored_password)
    @rule()
    def old_password_back_then_test(self):
        self.server.set_password(self.stored_password)
        self._expect_test(actions.test_connection(self.rt, self.conn_id), "test after the old password is back")

    @precondition(
        lambda self: (
            not self.stopped
            and self.status == m.CALENDAR_MISSING
            and self.cal_url is None
            and self.server.password == self.stored_password
            and not self.server.read_only
        )
    )
    @rule(via=st.sampled_from(("console", "relink page")))
    def new_primary_calendar(self, via):
        self.cal_url = self._make_calendar()
        if via == "console":
            result = actions.set_destination(self.rt, self.conn_id, self.cal_name)
        else:
            token = self._relink_token()
            page = actions.relink_page(self.rt, token)
            assert page["fix"] == "calendar", page
            offered = [c for c in page["calendars"] if c["name"] == self.cal_name]
            assert offered, f"the relink page does not offer the new calendar: {page['calendars']} {page['calendars_error']}"
            result = actions.relink_choose_calendar(self.rt, token, offered[0]["id"])
        self._expect_repair(result, f"new primary calendar ({via})")

    @precondition(lambda self: not self.stopped and self.server.read_only)
    @rule()
    def read_only_lifted_then_test(self):
        self.server.set_read_only(False)
        self._expect_test(actions.test_connection(self.rt, self.conn_id), "test after read-only was lifted")

    # -- missed appointments ----------------------------------------------------------------------

    @precondition(lambda self: not self.stopped and self.status in BROKEN)
    @rule()
    def download_missed(self):
        download = actions.download_missed(self.rt, self.conn_id)
        uids = {uid for uid, _ in _split_snapshot(download["ics"])}
        expected = {self.appts[e].uid for e in self._live_waiting()}
        assert uids == expected, f"the download ({self.status}) holds {sorted(uids)}, the appointments waiting are {sorted(expected)}"
        assert download["count"] == len(expected), download["count"]
        if uids:
            self.snapshot = download["ics"]

    @precondition(lambda self: not self.stopped and self.snapshot and self.cal_url)
    @rule()
    def import_the_download(self):
        """The last download imported by a calendar app: one object per event, under its own name."""
        by_uid = {a.uid: a.ext_id for a in self.appts.values()}
        for uid, text in _split_snapshot(self.snapshot):
            ext_id = by_uid[uid]
            present = ext_id in self.objects.values()
            self.counter["import"] += 1
            try:
                href = self.server.put_event(self.cal_url, f"import-{self.counter['import']}.ics", text)
            except ServerError as exc:  # Radicale keeps UIDs unique: the app reports a duplicate
                assert present and "409" in str(exc), f"import of {ext_id} refused: {exc}"
                continue
            assert not present, f"a second object with the UID of {ext_id} was accepted"
            self.objects[self._href(href)] = ext_id

    # -- stop, and connecting again ------------------------------------------------------------------

    @precondition(lambda self: not self.stopped and (self.breaks or len(self.appts) >= 4))
    @rule(keep_events=st.booleans(), force=st.booleans())
    def stop_sync(self, keep_events, force):
        """Late in a story (after a break, or with a few appointments): it ends the connection."""
        waiting = {self.appts[e].uid for e in self._live_waiting()} if self.status in BROKEN else set()
        plan = actions.stop_plan(self.rt, self.conn_id, keep_events=keep_events)
        assert plan["broken"] == (self.status in BROKEN), plan
        if waiting:
            assert plan["needs_force"], f"stop would drop {len(waiting)} waiting appointment(s) silently: {plan}"
        before, _ = self._server_objects()
        try:
            actions.stop_sync(self.rt, self.conn_id, keep_events=keep_events, force=force)
        except ActionError as exc:
            if "removing calsync's events failed" in str(exc):
                # It looked fine, but the break was there: the stop found it, and stopped nothing.
                found = self._break_found_by_a_delete()
                assert found in BROKEN, f"stop failed on a working connection: {exc}"
                self._became(found)
                return
            assert plan["needs_force"] and not force, f"stop refused although the plan allowed it: {exc}"
            return
        assert not (plan["needs_force"] and not force), "a stop that needed --force went through without it"
        after, _ = self._server_objects()
        if keep_events or self.status in BROKEN:
            assert after == before, f"stop (keep={keep_events}, {self.status}) changed the calendar"
        else:
            known = set(self.tracked.values())
            assert set(after) == set(before) - known, f"stop left calsync's events on the calendar: {after}"
        if waiting:
            download = actions.download_missed(self.rt, self.conn_id)
            uids = {uid for uid, _ in _split_snapshot(download["ics"])}
            assert uids == waiting, f"after a forced stop the waiting appointments are not downloadable: {uids} != {waiting}"
        self.status, self.stopped = m.STOPPED, True
        self.objects = {href: ext_id for href, (ext_id, _) in after.items()}
        # Switching: appointments written before stay where they are (SPEC); only what comes next moves.
        # Kept by this stop or any earlier one: a kept appointment is never written to a later destination.
        staff = m.Connection.get_by_id(self.conn_id).staff_id
        self.kept = {
            link.appointment.external_id
            for link in m.AppointmentLink.select()
            .join(m.Calendar)
            .join(m.Connection)
            .where(m.Connection.staff == staff, m.AppointmentLink.state == m.LINK_KEPT)
        }

    def _break_found_by_a_delete(self) -> str:
        """What deleting an event finds: the credentials, then the permission (a gone event is no error)."""
        if self.server.password != self.stored_password:
            return m.RELINK_REQUIRED
        return m.READ_ONLY if self.server.read_only else m.ACTIVE

    @precondition(lambda self: self.stopped)
    @rule()
    def connect_again(self):
        """The account connected again as the user would: a writable calendar, the current password."""
        if self.server.read_only:
            self.server.set_read_only(False)
        if self.cal_url is None:
            self.cal_url = self._make_calendar()
        self.snapshot = None
        self._connect()
        # Kept events stay where they were written; one found on this calendar is adopted.
        self.kept_elsewhere = set(self.kept)

    # -- always ---------------------------------------------------------------------------------------

    @invariant()
    def status_is_what_the_world_implies(self):
        conn = actions.get_connection(self.rt, self.conn_id)
        assert conn["status"] == self.status, f"status {conn['status']!r}, expected {self.status!r} ({conn['reason']})"
        if self.status in (m.ACTIVE, m.PENDING):
            assert conn["missed"] == 0, f"{conn['missed']} missed on a {self.status} connection"

    @invariant()
    def one_incident_and_one_alert_per_break_one_resolution_per_repair(self):
        incidents = m.Incident.select().where(m.Incident.connection == self.conn_id, m.Incident.kind.in_(list(BROKEN)))
        assert incidents.count() == self.breaks, (
            f"{incidents.count()} incident(s) for {self.breaks} break(s): {[i.kind for i in incidents]}"
        )
        opened = list(m.Notification.select().where(m.Notification.connection == self.conn_id, m.Notification.event == "incident.opened"))
        assert len(opened) == self.breaks, f"{len(opened)} incident.opened notification(s) for {self.breaks} break(s)"
        for notification in opened:
            channels = sorted(d.channel for d in notification.deliveries)
            assert channels == CHANNELS, f"incident.opened {notification.id} delivered on {channels}, not {CHANNELS}"
        resolved = [
            json.loads(n.payload)["delivered"]
            for n in m.Notification.select()
            .where(m.Notification.connection == self.conn_id, m.Notification.event == "incident.resolved")
            .order_by(m.Notification.id)
        ]
        assert resolved == self.resolved, f"incident.resolved delivered={resolved}, the appointments that waited: {self.resolved}"

    @invariant()
    def calendar_changes_only_by_completed_syncs(self):
        ours, foreign = self._server_objects()
        assert set(ours) == set(self.objects), f"calendar objects {sorted(ours)} but the model expects {sorted(self.objects)}"
        assert foreign == self.foreign, f"other people's events changed: {foreign} != {self.foreign}"

    @invariant()
    def appointments_follow_the_policies(self):
        for appt in self.appts.values():
            row = m.Appointment.get(m.Appointment.external_id == appt.ext_id)
            assert row.cancelled == appt.cancelled, (
                f"{appt.ext_id}: cancelled={row.cancelled} ({row.cancel_reason!r}), expected {appt.cancelled}"
            )
            if not appt.cancelled:
                found = (clock.utc(row.starts_at), clock.utc(row.ends_at), row.subject)
                assert found == appt.fields, f"{appt.ext_id} is {found}, expected {appt.fields}"

    def teardown(self):
        try:
            self.rt.close()
        finally:
            clock.set_now(None)
            if self.server.read_only:
                self.server.set_read_only(False)
            self.server.set_password(self.world.password)
            for url in self.calendars_made:
                try:
                    self.server.delete_calendar(url)
                except ServerError:
                    pass  # deleted by the example
            shutil.rmtree(self.data_dir, ignore_errors=True)


@pytest.fixture
def world(tmp_path, mailbox):
    server = start_server("radicale", tmp_path / "radicale")
    try:
        yield World(server=server, mailbox=mailbox, root=tmp_path, password=server.password)
    finally:
        server.stop()


def test_random_stories_follow_the_model(world):
    run_state_machine_as_test(lambda: ConnectionLifecycle(world), settings=MODEL_SETTINGS)


# -- fixed stories: every break and every repair at least once, whatever the random run drew ----------


def step(rule_name: str, **arguments) -> tuple[str, dict]:
    """One rule of the machine; ``appointment="appt-2"`` picks that appointment (or its event)."""
    return rule_name, arguments


def play(world: World, story: list[tuple[str, dict]]) -> None:
    """Run the rules one after the other, each where its precondition allows it, checking every
    invariant after each step, exactly as a random run does."""
    machine = ConnectionLifecycle(world)
    rules = {r.function.__name__: r for r in machine.rules}
    try:
        for name, arguments in story:
            rule_ = rules[name]
            assert all(pre(machine) for pre in rule_.preconditions), f"the story cannot {name} here"
            arguments = dict(arguments)
            if "appointment" in arguments:
                arguments["pick"] = machine._index_of(name, arguments.pop("appointment"))
            rule_.function(machine, **arguments)
            for check in machine.invariants:
                check.function(machine)
    finally:
        machine.teardown()


BOOK = {"hour": 10, "subject": "Intro call"}
STORIES = {
    "password changed: the relink page delivers what waited, an imported copy is adopted": [
        step("host_books", day=2, **BOOK),
        step("sync"),
        step("password_changes"),
        step("sync"),
        step("host_books", day=3, **BOOK),
        step("host_edits", appointment="appt-1", day=4, hour=9, subject="Follow-up", change="both"),
        step("download_missed"),
        step("import_the_download"),
        step("relink_page_with_the_new_password"),
    ],
    "password changed: the old one back, and a test syncs at once": [
        step("host_books", day=2, **BOOK),
        step("sync"),
        step("password_changes"),
        step("test_connection"),
        step("host_books", day=5, **BOOK),
        step("old_password_back_then_test"),
    ],
    "calendar deleted: a new primary chosen in the console": [
        step("host_books", day=2, **BOOK),
        step("host_books", day=3, **BOOK),
        step("sync"),
        step("calendar_is_deleted"),
        step("sync"),
        step("host_books", day=4, **BOOK),
        step("new_primary_calendar", via="console"),
    ],
    "calendar deleted: a new primary chosen on the relink page": [
        step("host_books", day=2, **BOOK),
        step("sync"),
        step("calendar_is_deleted"),
        step("test_connection"),
        step("host_cancels", appointment="appt-1"),
        step("host_books", day=6, **BOOK),
        step("new_primary_calendar", via="relink page"),
    ],
    "read-only: lifted, then a test delivers what waited": [
        step("host_books", day=2, **BOOK),
        step("sync"),
        step("calendar_becomes_read_only"),
        step("host_books", day=3, **BOOK),
        step("sync"),
        step("download_missed"),
        step("read_only_lifted_then_test"),
    ],
    "one break after another: each its own incident, one resolution": [
        step("host_books", day=2, **BOOK),
        step("sync"),
        step("password_changes"),
        step("calendar_is_deleted"),
        step("sync"),
        step("relink_page_with_the_new_password"),
        step("new_primary_calendar", via="console"),
    ],
    "edits and deletions on the calendar follow the policies": [
        step("host_books", day=2, **BOOK),
        step("host_books", day=3, **BOOK),
        step("host_books", day=4, **BOOK),
        step("someone_adds_a_busy_event", day=2, hour=12),
        step("sync"),
        step("someone_edits_an_event", appointment="appt-1", minutes=7),
        step("someone_edits_an_event", appointment="appt-2", minutes=-7),
        step("host_edits", appointment="appt-2", day=8, hour=15, subject="Follow-up", change="time"),
        step("someone_deletes_an_event", appointment="appt-3"),
        step("sync"),
    ],
    "a crash after a PUT leaves the appointment on the calendar once": [
        step("host_books", day=2, **BOOK),
        step("sync"),
        step("host_books", day=3, **BOOK),
        step("sync_crashes_after_a_put"),
        step("someone_edits_an_event", appointment="appt-2", minutes=14),
        step("sync"),
    ],
    "a cancelled appointment booked again is written by the next sync": [
        step("host_books", day=2, **BOOK),
        step("sync"),
        step("host_cancels", appointment="appt-1"),
        step("sync"),
        step("host_edits", appointment="appt-1", day=2, hour=10, subject="Follow-up", change="subject"),
        step("sync"),
    ],
    "an appointment deleted on the calendar and booked again is written by the next sync": [
        step("host_books", day=2, **BOOK),
        step("sync"),
        step("someone_deletes_an_event", appointment="appt-1"),
        step("sync"),
        step("host_edits", appointment="appt-1", day=3, hour=10, subject="Follow-up", change="both"),
        step("sync"),
    ],
    "rescheduled during an outage, its event deleted meanwhile: counted as delivered": [
        step("host_books", day=2, **BOOK),
        step("sync"),
        step("someone_deletes_an_event", appointment="appt-1"),
        step("password_changes"),
        step("sync"),
        step("host_edits", appointment="appt-1", day=3, hour=9, subject="Follow-up", change="both"),
        step("old_password_back_then_test"),
    ],
    "a stop never drops a change that waits: refused, then forced, then connected again": [
        step("host_books", day=2, **BOOK),
        step("sync"),
        step("password_changes"),
        step("sync"),
        step("host_edits", appointment="appt-1", day=5, hour=11, subject="Follow-up", change="time"),
        step("stop_sync", keep_events=True, force=False),
        step("stop_sync", keep_events=True, force=True),
        step("connect_again"),
        step("sync"),
    ],
    "stop on a working connection removes calsync's events; kept ones stay where they are": [
        step("host_books", day=2, **BOOK),
        step("host_books", day=3, **BOOK),
        step("host_books", day=4, **BOOK),
        step("host_books", day=5, **BOOK),
        step("sync"),
        step("stop_sync", keep_events=False, force=False),
        step("connect_again"),
        step("sync"),
        step("stop_sync", keep_events=True, force=False),
        step("calendar_is_deleted"),
        step("connect_again"),
        step("sync"),
    ],
    "kept by one stop, still kept after the next connection is stopped and connected again": [
        step("host_books", day=2, **BOOK),
        step("sync"),
        step("calendar_is_deleted"),
        step("password_changes"),
        step("test_connection"),
        step("stop_sync", keep_events=True, force=False),
        step("connect_again"),
        step("sync"),
        step("host_books", day=9, hour=16, subject="Quarterly review"),
        step("calendar_is_deleted"),
        step("test_connection"),
        step("stop_sync", keep_events=True, force=True),
        step("connect_again"),
        step("test_connection"),
    ],
}


@pytest.mark.parametrize("story", list(STORIES))
def test_story(world, story):
    play(world, STORIES[story])
