"""The Textual console, driven with Pilot against a database seeded through the core.

The stories use one real Radicale (the console adds nothing provider-specific, so
Xandikos would only double the time). Snapshot tests run on a fixed data set with
a frozen clock, at 120x40.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import io

import pytest
from conftest import Story, soon, vevent
from rich.console import Console

import models as m
from console.app import CalsyncConsole, ConsoleCommands
from console.screens.connections import ConnectionsScreen
from console.screens.detail import DetailScreen
from console.widgets.confirm_modal import ConfirmModal
from console.widgets.connection_test_modal import ConnectionTestModal
from console.widgets.feed_table import FeedTable
from console.widgets.large_table import LargeTable
from console.widgets.link_modal import LinkModal
from console.widgets.path_modal import PathModal
from console.widgets.picker_modal import PickerModal
from console.widgets.stop_modal import StopModal
from console.widgets.text_modal import TextModal
from core import actions, clock, relink

radicale_only = pytest.mark.parametrize("caldav", ["radicale"], indirect=True)
SIZE = (120, 40)
SNAPSHOTS = importlib.util.find_spec("pytest_textual_snapshot") is not None
needs_snapshot_plugin = pytest.mark.skipif(not SNAPSHOTS, reason="pytest-textual-snapshot is not installed")


# -- helpers ---------------------------------------------------------------------------------


def console(rt) -> CalsyncConsole:
    # No live refresh during a test: the tests reload when they mean to.
    return CalsyncConsole(rt=rt, actor="sam", refresh_seconds=3600)


async def settle(pilot) -> None:
    """Until no worker runs and every message is handled (a worker's result may start another)."""
    app = pilot.app
    for _ in range(100):
        await pilot.pause()
        running = [w for w in app.workers if w.is_running]
        if not running:
            await pilot.pause()
            if not any(w.is_running for w in app.workers):
                return
        await app.workers.wait_for_complete()
    raise AssertionError("the console kept working for too long")


def drive(app: CalsyncConsole, scenario) -> None:
    async def main():
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            await scenario(pilot)
            await settle(pilot)

    asyncio.run(main())


async def press(pilot, *keys: str) -> None:
    for key in keys:
        await pilot.press(key)
        await settle(pilot)


def plain(renderable) -> str:
    out = Console(width=200, file=io.StringIO(), record=True, color_system=None)
    out.print(renderable)
    return out.export_text()


def text_of(screen, selector: str) -> str:
    return plain(screen.query_one(selector).content)


def table_rows(table: LargeTable) -> list[list[str]]:
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


def break_password(story: Story) -> None:
    story.server.set_password("x-1")
    story.sync()
    assert story.status()["status"] == "relink_required"


# -- the connections list --------------------------------------------------------------------


def three_connections(rt, caldav) -> Story:
    """Ada (broken once her password changes), Bob and Carol (pending) on one Radicale account."""
    story = Story(rt, caldav)
    for email, name in (("bob@example.com", "Bob Builder"), ("carol@example.com", "Carol Danvers")):
        actions.add_staff(rt, email, name)
        actions.connect(rt, email, "caldav", url=caldav.base_url, username=caldav.username, password=caldav.password)
    story.sync()
    break_password(story)
    return story


@radicale_only
def test_the_filter_narrows_the_table_as_you_type(rt, caldav):
    three_connections(rt, caldav)

    async def scenario(pilot):
        screen = pilot.app.screen
        assert isinstance(screen, ConnectionsScreen)
        table = screen.table
        assert table.row_count == 3
        first = table_rows(table)[0]
        assert "ada@example.com" in first and "✖ relink_required" in first  # broken first, status in words
        await press(pilot, "slash", "c", "a", "r", "o", "l")
        assert [r[2] for r in table_rows(table)] == ["carol@example.com"]
        await press(pilot, "backspace", "backspace", "backspace", "backspace", "backspace", "backspace")
        await press(pilot, *"pending")
        assert sorted(r[2] for r in table_rows(table)) == ["bob@example.com", "carol@example.com"]
        await press(pilot, "space", "b", "o", "b")  # every word must match
        assert [r[2] for r in table_rows(table)] == ["bob@example.com"]
        await press(pilot, *"zz")
        assert table.row_count == 0
        assert "No connection matches" in text_of(screen, "#preview")
        await press(pilot, "escape")
        assert table.row_count == 3
        assert "relink_required 1" in text_of(screen, "#counts") and "pending 2" in text_of(screen, "#counts")

    drive(console(rt), scenario)


@radicale_only
def test_a_refresh_keeps_the_cursor_on_its_connection_and_the_filter(rt, caldav):
    three_connections(rt, caldav)
    carol = m.Connection.select().join(m.Staff).where(m.Staff.email == "carol@example.com").get()

    async def scenario(pilot):
        screen = pilot.app.screen
        await press(pilot, "slash", *"example", "enter")
        await press(pilot, "down", "down")
        assert screen.current_id() == carol.id
        assert [r[0] for r in table_rows(screen.table)] == ["1", "2", "3"]
        actions.sync_now(rt, carol.id)  # the password changed: Carol's connection breaks and moves up
        screen.reload()
        await settle(pilot)
        assert [r[0] for r in table_rows(screen.table)] == ["1", "3", "2"]
        assert screen.current_id() == carol.id and screen.table.cursor_row == 1
        assert screen.query_one("#filter").value == "example"

    drive(console(rt), scenario)


# -- the detail screen -----------------------------------------------------------------------


def story_with_a_feed(story: Story) -> None:
    """Busy, free and cancelled events on the calendar, one of our appointments, then a password change."""
    start = soon()
    cal = story.calendar_url
    story.server.put_event(cal, "dentist.ics", vevent("dentist-1", start + dt.timedelta(hours=3),
                                                      start + dt.timedelta(hours=4), "Dentist"))
    story.server.put_event(cal, "focus.ics", vevent("focus-1", start + dt.timedelta(days=1),
                                                    start + dt.timedelta(days=1, hours=2), "Focus time",
                                                    "TRANSP:TRANSPARENT\r\n"))
    story.server.put_event(cal, "lunch.ics", vevent("lunch-1", start + dt.timedelta(days=2),
                                                    start + dt.timedelta(days=2, hours=1), "Team lunch",
                                                    "STATUS:CANCELLED\r\n"))
    story.book(start, subject="Intro call with Grace")
    story.sync()
    story.sync()
    break_password(story)


@radicale_only
def test_opening_a_broken_connection_shows_its_reason_and_the_sync_feed(story):
    story_with_a_feed(story)

    async def scenario(pilot):
        await press(pilot, "enter")
        screen = pilot.app.screen
        assert isinstance(screen, DetailScreen) and screen.conn_id == story.conn_id
        summary = text_of(screen, "#summary")
        assert "relink_required" in summary
        assert "rejected the username or password" in summary
        assert "Relink the account" in summary  # what to do, in plain words
        feed = screen.query_one("#feed", FeedTable)
        rows = {r[3]: r for r in table_rows(feed)}
        assert set(rows) == {"Dentist", "Focus time", "Team lunch", "Intro call with Grace"}
        assert rows["Dentist"][4] == "✔ yes" and rows["Dentist"][5].startswith("last updated")
        assert rows["Focus time"][4:] == ["✖ no", "marked free/available"]
        assert rows["Team lunch"][4:] == ["✖ no", "cancelled"]
        assert rows["Intro call with Grace"][4:] == ["✖ no", "calsync appointment (echo)"]
        assert [c.label.plain for c in feed.ordered_columns] == [
            "ID", "Starts at ▲", "Ends at", "Subject", "Loaded", "Info"]

        await press(pilot, "u")  # not loaded only
        assert sorted(r[3] for r in table_rows(feed)) == ["Focus time", "Intro call with Grace", "Team lunch"]
        assert "3 not-loaded entries" in text_of(screen, "#feed-caption")
        await press(pilot, "u", "o", "o")  # all again; sort by ends at, then by subject
        assert [r[3] for r in table_rows(feed)] == ["Dentist", "Focus time", "Intro call with Grace", "Team lunch"]
        await press(pilot, "O")
        assert [r[3] for r in table_rows(feed)][0] == "Team lunch"
        await pilot.click(FeedTable, offset=(2, 0))  # the ID header
        await settle(pilot)
        assert feed.sort_column == "id"

        tabs = screen.query_one("#tabs")
        await press(pilot, "right_square_bracket", "right_square_bracket")
        assert tabs.active == "tab-history"
        history = table_rows(screen.query_one("#history", LargeTable))
        assert history[0][1] == "active → relink_required" and "401" in history[0][3]

        await press(pilot, "escape")
        assert isinstance(pilot.app.screen, ConnectionsScreen)

    drive(console(story.rt), scenario)


@radicale_only
def test_test_connection_after_a_password_change_shows_relink_required_and_the_answer(story):
    story.sync()
    story.server.set_password("x-1")

    async def scenario(pilot):
        await press(pilot, "enter", "t")
        modal = pilot.app.screen
        assert isinstance(modal, ConnectionTestModal)
        assert "relink_required" in text_of(modal, "#test-status")
        assert "401" in text_of(modal, "#test-answer")
        await press(pilot, "escape")
        assert isinstance(pilot.app.screen, DetailScreen)
        assert "relink_required" in text_of(pilot.app.screen, "#summary")  # reloaded after the test

    drive(console(story.rt), scenario)
    assert story.status()["status"] == "relink_required"
    entry = m.AuditEntry.get(m.AuditEntry.action == "connection.test")
    assert (entry.actor, entry.target) == ("sam", str(story.conn_id))


@radicale_only
def test_reissuing_the_relink_link_replaces_the_old_one_and_shows_the_new_once(story):
    story.sync()
    break_password(story)
    old_token = actions.issue_relink(story.rt, story.conn_id, via=("email",), actor="bot")["url"].rsplit("/", 1)[1]

    async def scenario(pilot):
        await press(pilot, "enter", "l")
        picker = pilot.app.screen
        assert isinstance(picker, PickerModal)
        await press(pilot, "down", "enter")  # Slack only
        modal = pilot.app.screen
        assert isinstance(modal, LinkModal)
        assert "Not sent via slack: not configured here" in " ".join(modal.notes)
        await press(pilot, "q", "s", "a")  # no quitting or switching views behind a link shown once
        assert pilot.app.screen is modal and pilot.app.is_running
        await press(pilot, "c")
        assert pilot.app.clipboard == modal.url
        new_token = modal.url.rsplit("/", 1)[1]
        assert relink.lookup(new_token).issued_by == "sam"
        await press(pilot, "escape")
        assert isinstance(pilot.app.screen, DetailScreen)
        assert not any(isinstance(s, LinkModal) for s in pilot.app.screen_stack)  # gone for good

    drive(console(story.rt), scenario)
    with pytest.raises(relink.LinkInvalid) as info:
        relink.lookup(old_token)
    assert info.value.why == "replaced"
    links = list(m.RelinkLink.select().where(m.RelinkLink.connection == story.conn_id).order_by(m.RelinkLink.id))
    assert all(link.revoked_at is not None for link in links[:-1])
    assert links[-1].revoked_at is None and links[-1].issued_by == "sam" and links[-1].via == "slack"


@radicale_only
def test_stop_on_a_broken_connection_warns_of_orphans_and_cancel_changes_nothing(story):
    story.book(soon(), subject="Intro call")
    story.sync()
    break_password(story)

    async def scenario(pilot):
        await press(pilot, "enter", "x")
        modal = pilot.app.screen
        assert isinstance(modal, StopModal)
        warning = text_of(modal, "#orphans")
        assert "1 appointment(s) would stay on the calendar as orphans" in warning
        assert "Relink first" in warning
        assert str(modal.query_one("#stop").label) == "Stop anyway, leave 1 orphan(s)"
        assert modal.focused.id == "cancel"
        await press(pilot, "enter")  # Enter on the default button: Cancel
        assert isinstance(pilot.app.screen, DetailScreen)

    drive(console(story.rt), scenario)
    assert story.status()["status"] == "relink_required"
    assert m.AppointmentLink.get().state == "synced"
    assert not m.AuditEntry.select().where(m.AuditEntry.action == "connection.stop").exists()


@radicale_only
def test_stop_on_a_working_connection_removes_our_events_after_confirmation(story):
    story.book(soon(), subject="Intro call")
    story.sync()
    assert len(story.events()) == 1

    async def scenario(pilot):
        await press(pilot, "enter", "x")
        modal = pilot.app.screen
        assert "1 calsync event(s) are removed" in text_of(modal, "#effect")
        assert not modal.query_one("#orphans").display
        await pilot.click("#stop")
        await settle(pilot)

    drive(console(story.rt), scenario)
    assert story.status()["status"] == "stopped"
    assert story.events() == {}
    assert m.AuditEntry.get(m.AuditEntry.action == "connection.stop").actor == "sam"


@radicale_only
def test_sync_now_and_export_of_missed_appointments(story, tmp_path):
    story.sync()
    story.book(soon(), subject="Intro call")
    target = tmp_path / "exports" / "missed.ics"

    async def scenario(pilot):
        await press(pilot, "enter", "n")
        assert not pilot.app.screen.query_one("#progress-row").display
        assert len(story.events()) == 1
        break_password(story)
        story.book(soon(days=3), subject="Quarterly review")
        await press(pilot, "r", "e")
        prompt = pilot.app.screen
        assert isinstance(prompt, PathModal)
        prompt.query_one("#path").value = str(target)
        await press(pilot, "enter")

    drive(console(story.rt), scenario)
    data = target.read_text()
    assert "Quarterly review" in data and "Intro call" not in data
    assert [p.name for p in target.parent.iterdir()] == ["missed.ics"]  # written atomically, nothing left over
    actions_by_sam = {a.action for a in m.AuditEntry.select().where(m.AuditEntry.actor == "sam")}
    assert {"connection.sync", "connection.download_missed"} <= actions_by_sam


@radicale_only
def test_primary_calendar_picker_and_feed_url_reset(story):
    story.server.make_calendar("home", "Home")
    story.sync()
    old_feed = actions.feed_url(story.rt, "ada@example.com")["url"]

    async def scenario(pilot):
        await press(pilot, "enter", "p")
        picker = pilot.app.screen
        assert isinstance(picker, PickerModal)
        labels = {label: enabled for _, label, enabled in picker.options}
        assert labels == {"Work  (the primary calendar now)": False, "Home": True}
        await press(pilot, "enter")  # the first enabled option: Home
        assert isinstance(pilot.app.screen, DetailScreen)
        calendars = table_rows(pilot.app.screen.query_one("#calendars", LargeTable))
        assert [r[1] for r in calendars if r[2].startswith("primary")] == ["Home"]

        await press(pilot, "f")
        assert isinstance(pilot.app.screen, ConfirmModal)
        await press(pilot, "enter")  # on the default button, Cancel: nothing happens
        assert isinstance(pilot.app.screen, DetailScreen)
        assert actions.feed_url(story.rt, "ada@example.com")["url"] == old_feed
        await press(pilot, "f")
        await pilot.click("#confirm")
        await settle(pilot)
        modal = pilot.app.screen
        assert isinstance(modal, LinkModal) and modal.url != old_feed

    drive(console(story.rt), scenario)
    primary = m.Calendar.get(m.Calendar.connection == story.conn_id, m.Calendar.is_destination == True)  # noqa: E712
    assert primary.name == "Home"
    by_sam = {a.action for a in m.AuditEntry.select().where(m.AuditEntry.actor == "sam")}
    assert {"connection.primary", "feed.reset"} <= by_sam


@radicale_only
def test_the_palette_lists_the_screens_actions_and_the_footer_their_keys(story):
    async def scenario(pilot):
        async def names():
            return [hit.text async for hit in ConsoleCommands(pilot.app.screen).discover()]

        assert "connection: open" in await names()
        await press(pilot, "enter")
        listed = await names()
        for name in ("connection: test", "connection: reissue relink link", "connection: sync now",
                     "connection: reset feed URL", "connection: set primary calendar",
                     "connection: export missed appointments (.ics)", "connection: stop sync", "view: staff"):
            assert name in listed
        shown = {b.binding.key for b in pilot.app.screen.active_bindings.values() if b.binding.show}
        assert {"t", "l", "n", "f", "p", "e", "x", "u"} <= shown
        await press(pilot, "question_mark")
        assert isinstance(pilot.app.screen, TextModal) and "`x` stop sync" in pilot.app.screen.markdown
        await press(pilot, "escape", "s")
        assert "ada@example.com" in str(table_rows(pilot.app.screen.query_one("#staff", LargeTable))[0][0])
        await press(pilot, "a")
        audit = table_rows(pilot.app.screen.query_one("#audit", LargeTable))
        assert any(r[2] == "connection.connect" for r in audit)

    drive(console(story.rt), scenario)


def test_run_console_without_a_command_opens_the_console_as_the_given_user(monkeypatch, tmp_path):
    import run_console

    opened = {}
    monkeypatch.setenv("CALSYNC_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setattr(CalsyncConsole, "run", lambda self: opened.setdefault("actor", self.actor))
    assert run_console.main(["--as", "sam"]) == 0
    assert opened == {"actor": "sam"}


# -- snapshots -------------------------------------------------------------------------------

FROZEN = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.timezone.utc)


def seed_fixed(rt) -> None:
    """A small organisation with one connection in each status, frozen at FROZEN."""
    clock.set_now(lambda: FROZEN)
    ago = lambda **kw: FROZEN - dt.timedelta(**kw)  # noqa: E731
    people = [("ada@example.com", "Ada Lovelace"), ("grace@example.com", "Grace Hopper"),
              ("alan@example.com", "Alan Turing"), ("katherine@example.com", "Katherine Johnson")]
    staff = {email: actions.add_staff(rt, email, name)["id"] for email, name in people}
    rejected = "the CalDAV server rejected the username or password (it may have been changed or revoked)"
    rows = [
        ("ada@example.com", "caldav", "ada@icloud.example", "https://caldav.icloud.example/", m.RELINK_REQUIRED,
         rejected, ago(hours=3), ago(minutes=10)),
        ("grace@example.com", "google", "grace@gmail.example", "", m.ACTIVE, "", ago(days=10), ago(minutes=4)),
        ("alan@example.com", "microsoft", "alan@outlook.example", "", m.READ_ONLY,
         "the primary calendar is read-only for this account: calsync can read it but not add events",
         ago(days=2), ago(minutes=7)),
        ("katherine@example.com", "ics", "feeds.example.org", "feeds.example.org", m.UNREACHABLE,
         "the provider has failed for 3 hours (503 Service Unavailable)", ago(hours=3), ago(minutes=2)),
        ("grace@example.com", "caldav", "grace@fastmail.example", "https://caldav.fastmail.example/", m.PENDING,
         "connected, first sync not finished", ago(minutes=20), None),
        ("alan@example.com", "google", "alan@gmail.example", "", m.STOPPED, "sync stopped by the user",
         ago(days=30), ago(days=30)),
    ]
    for email, provider, account, server, status, reason, since, last_sync in rows:
        m.Connection.create(staff=staff[email], provider=provider, account=account, server_url=server, status=status,
                            reason=reason, status_since=since, last_sync_at=last_sync, created_at=ago(days=40),
                            last_success_at=last_sync if status == m.ACTIVE else ago(hours=3, minutes=5),
                            last_error=reason if status in m.BROKEN_STATUSES else "")
    ada = m.Connection.get(m.Connection.account == "ada@icloud.example")
    work = m.Calendar.create(connection=ada, remote_id="/ada/work/", name="Work", is_destination=True,
                             last_synced_at=ago(hours=3, minutes=5))
    m.Calendar.create(connection=ada, remote_id="/ada/home/", name="Home", last_synced_at=ago(hours=3, minutes=5))
    day = FROZEN.replace(hour=0, minute=0)
    feed = [
        ("dentist", 1, 13, 1, "Dentist", True, "last updated 2026-02-27 16:05 UTC"),
        ("focus", 2, 9, 2, "Focus time", False, "marked free/available"),
        ("intro", 1, 10, 1, "Intro call with Grace", False, "calsync appointment (echo)"),
        ("lunch", 3, 12, 1, "Team lunch", False, "cancelled"),
        ("conf", 4, 0, 24, "Conference", False, "all-day event ignored by policy"),
        ("board", 5, 15, 2, "Board meeting", True, "last updated 2026-02-20 08:00 UTC"),
    ]
    for uid, days, hour, hours, subject, loaded, info in feed:
        start = day + dt.timedelta(days=days, hours=hour)
        m.FeedEntry.create(calendar=work, uid=uid, starts_at=start, ends_at=start + dt.timedelta(hours=hours),
                           subject=subject, loaded=loaded, info=info, seen_at=ago(hours=3, minutes=5))
    for at, old, new, cause, answer in [
        (ago(days=40), "", m.PENDING, "connect", ""),
        (ago(days=40) + dt.timedelta(minutes=2), m.PENDING, m.ACTIVE, "sync", ""),
        (ago(hours=3), m.ACTIVE, m.RELINK_REQUIRED, "sync",
         "HTTP 401 Unauthorized PROPFIND https://caldav.icloud.example/ada/work/"),
    ]:
        m.StatusChange.create(connection=ada, at=at, old=old, new=new, cause=cause, provider_answer=answer)
    m.Incident.create(connection=ada, kind=m.RELINK_REQUIRED, reason=rejected, opened_at=ago(hours=3),
                      last_seen_at=ago(minutes=10), failures=4, reminders=1)
    for minutes, ms, requests, created, outcome, error in [(10, 41, 1, 0, "failed", rejected),
                                                           (195, 380, 6, 2, "ok", "")]:
        m.SyncRun.create(connection=ada, started_at=ago(minutes=minutes), duration_ms=ms, requests=requests,
                         created=created, entries_read=6, outcome=outcome, error=error)
    for external_id, days, subject, state, href in [("A-1001", 1, "Intro call with Grace", m.LINK_SYNCED, "/ada/work/a1.ics"),
                                                    ("A-1002", 2, "Quarterly review with Alan", m.LINK_MISSED, "")]:
        start = day + dt.timedelta(days=days, hours=14)
        appointment = m.Appointment.create(external_id=external_id, staff=staff["ada@example.com"], uid=f"{external_id}@calsync",
                                           starts_at=start, ends_at=start + dt.timedelta(hours=1), subject=subject)
        m.AppointmentLink.create(appointment=appointment, calendar=work, state=state, href=href)
    m.RelinkLink.create(connection=ada, token_hash="0" * 64, created_at=ago(hours=3), expires_at=ago(hours=3) + dt.timedelta(days=7),
                        issued_by="calsync", via="slack,email")
    actions.audit("sam", "connection.test", ada.id, "relink_required")
    actions.audit("sam", "connection.stop", ada.id, "refused: relink first", result="failed")


def snapshot_app(rt) -> CalsyncConsole:
    seed_fixed(rt)
    app = console(rt)
    # A tab's underline slides in: a screenshot taken mid-slide differs from run to run.
    app.animation_level = "none"
    return app


@needs_snapshot_plugin
def test_snapshot_connections_screen(rt, snap_compare):
    assert snap_compare(snapshot_app(rt), terminal_size=SIZE, run_before=settle)


@needs_snapshot_plugin
def test_snapshot_detail_screen_of_a_broken_connection(rt, snap_compare):
    async def open_ada(pilot):
        await settle(pilot)
        await press(pilot, "slash", *"ada", "enter", "enter")

    assert snap_compare(snapshot_app(rt), terminal_size=SIZE, run_before=open_ada)


@needs_snapshot_plugin
def test_snapshot_stop_dialog_on_a_broken_connection(rt, snap_compare):
    async def stop_ada(pilot):
        await settle(pilot)
        await press(pilot, "slash", *"ada", "enter", "enter", "x")

    assert snap_compare(snapshot_app(rt), terminal_size=SIZE, run_before=stop_ada)


@needs_snapshot_plugin
def test_snapshot_staff_screen(rt, snap_compare):
    async def staff(pilot):
        await settle(pilot)
        await press(pilot, "s")

    assert snap_compare(snapshot_app(rt), terminal_size=SIZE, run_before=staff)


@needs_snapshot_plugin
def test_snapshot_audit_screen(rt, snap_compare):
    async def audit(pilot):
        await settle(pilot)
        await press(pilot, "a")

    assert snap_compare(snapshot_app(rt), terminal_size=SIZE, run_before=audit)
