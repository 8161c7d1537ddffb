"""The Textual console, driven with Pilot against a database seeded through the core.

The stories use one real Radicale (the console adds nothing provider-specific, so
Xandikos would only double the time). Snapshot tests run on a fixed data set with
a frozen clock, at 80x24 (a support laptop's default terminal) and 160x45.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import io
import re
import threading
import time

import pytest
from conftest import Story, soon, vevent
from rich.console import Console
from textual.command import CommandPalette
from textual.widgets import Tabs

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
from console.widgets.virtual_table import VirtualTable
from core import actions, clock, relink
from core.providers.base import Transient

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
        assert "Ada Lovelace" in first and "✖ relink_required" in first  # broken first, status in words
        await press(pilot, "slash", "c", "a", "r", "o", "l")
        assert [r[2] for r in table_rows(table)] == ["Carol Danvers"]
        await press(pilot, *["backspace"] * 6)
        await press(pilot, *"pending")
        assert sorted(r[2] for r in table_rows(table)) == ["Bob Builder", "Carol Danvers"]
        await press(pilot, "space", "b", "o", "b")  # every word must match
        assert [r[2] for r in table_rows(table)] == ["Bob Builder"]
        await press(pilot, *"zz")
        assert table.row_count == 0
        assert "No connection matches" in text_of(screen, "#preview")
        await press(pilot, "escape")
        assert table.row_count == 3
        assert "relink_required 1" in text_of(screen, "#counts") and "pending 2" in text_of(screen, "#counts")
        assert "match the filter" not in text_of(screen, "#counts")
        for words, names in (
            ("builder", ["Bob Builder"]),  # the staff member's name
            ("rejected password", ["Ada Lovelace"]),  # words of the reason
            ("broken", ["Ada Lovelace"]),
            ("shared", ["Ada Lovelace", "Bob Builder", "Carol Danvers"]),
        ):  # one account, three people
            screen.query_one("#filter").value = words
            await settle(pilot)
            await pilot.pause(0.2)  # the filter's typing window
            assert sorted(r[2] for r in table_rows(table)) == names, words

    drive(console(rt), scenario)


def test_hash_and_a_number_open_that_connection_and_the_palette_finds_one_by_name(rt):
    seed_fixed(rt)
    carol = m.Connection.select().join(m.Staff).where(m.Staff.email == "katherine@example.com").get()

    async def scenario(pilot):
        screen = pilot.app.screen
        await press(pilot, "number_sign", *str(carol.id))
        assert [r["staff_name"] for r in screen.shown] == ["Katherine Johnson"]  # #4 is connection 4 only
        await press(pilot, "enter")
        assert isinstance(pilot.app.screen, DetailScreen) and pilot.app.screen.conn_id == carol.id
        await press(pilot, "escape", "number_sign", "9", "9", "enter")
        assert isinstance(pilot.app.screen, ConnectionsScreen)  # no connection 99: said, nothing opened
        assert any("no connection #99" in n.message for n in pilot.app._notifications)

        pilot.app.action_open_connection()
        await settle(pilot)
        palette = pilot.app.screen
        assert isinstance(palette, CommandPalette)
        await press(pilot, *"kath")
        await pilot.pause(0.5)  # the palette gathers its hits in batches
        await press(pilot, "enter")
        assert isinstance(pilot.app.screen, DetailScreen) and pilot.app.screen.conn_id == carol.id

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
    story.server.put_event(cal, "dentist.ics", vevent("dentist-1", start + dt.timedelta(hours=3), start + dt.timedelta(hours=4), "Dentist"))
    story.server.put_event(
        cal,
        "focus.ics",
        vevent("focus-1", start + dt.timedelta(days=1), start + dt.timedelta(days=1, hours=2), "Focus time", "TRANSP:TRANSPARENT\r\n"),
    )
    story.server.put_event(
        cal,
        "lunch.ics",
        vevent("lunch-1", start + dt.timedelta(days=2), start + dt.timedelta(days=2, hours=1), "Team lunch", "STATUS:CANCELLED\r\n"),
    )
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
        assert "Press l to send a new relink link" in summary  # what to do, with the key to press
        assert "Europe/Berlin" in summary  # times in the staff member's zone, named
        feed = screen.query_one("#feed", FeedTable)
        rows = {r[3]: r for r in table_rows(feed)}
        assert set(rows) == {"Dentist", "Focus time", "Team lunch", "Intro call with Grace"}
        assert rows["Dentist"][4] == "✔ yes" and rows["Dentist"][5].startswith("last updated")
        assert rows["Focus time"][4:] == ["✖ no", "marked free/available"]
        assert rows["Team lunch"][4:] == ["✖ no", "cancelled"]
        assert rows["Intro call with Grace"][4:] == ["✖ no", "calsync appointment (echo)"]
        assert [c.label.plain for c in feed.ordered_columns] == [
            "ID",
            "Starts at (Europe/Berlin) ▲",
            "Ends at (Europe/Berlin)",
            "Subject",
            "Loaded",
            "Info",
        ]

        await press(pilot, "u")  # not loaded only
        assert sorted(r[3] for r in table_rows(feed)) == ["Focus time", "Intro call with Grace", "Team lunch"]
        assert "3 not-loaded entries" in text_of(screen, "#feed-caption")
        await press(pilot, "u", "o", "o")  # all again; sort by ends at, then by subject
        assert [r[3] for r in table_rows(feed)] == ["Dentist", "Focus time", "Intro call with Grace", "Team lunch"]
        await press(pilot, "O")
        assert next(r[3] for r in table_rows(feed)) == "Team lunch"
        await pilot.click(FeedTable, offset=(2, 0))  # the ID header
        await settle(pilot)
        assert feed.sort_column == "id"

        tabs = screen.query_one("#tabs")
        await press(pilot, "right_square_bracket", "right_square_bracket")
        assert tabs.active == "tab-history"
        assert screen.focused is screen.query_one("#history")  # the keys now move in the tab's table
        history = table_rows(screen.query_one("#history", LargeTable))
        assert history[0][1] == "active → relink_required" and "401" in history[0][3]
        await press(pilot, "left_square_bracket")
        assert screen.focused is screen.query_one("#calendars")
        await press(pilot, "enter")  # a row in words
        words = pilot.app.screen.plain
        assert "Primary calendar (appointments are written here): yes" in words and "True" not in words
        await press(pilot, "escape")

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
        assert "cannot be removed" in text_of(modal, "#effect")  # core's sentences, not CLI text
        assert "relink first" in text_of(modal, "#orphans")
        assert str(modal.query_one("#stop").label) == "Stop anyway"
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
        assert "removed from the calendar" in text_of(modal, "#effect")  # core's sentences
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
    target.parent.mkdir()

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
        said = [n.message for n in pilot.app._notifications]
        assert any("Primary calendar is now 'Home'; synced at once" in n for n in said), said

        await press(pilot, "f")  # show the feed URL: nothing changes
        modal = pilot.app.screen
        assert isinstance(modal, LinkModal) and modal.url == old_feed
        assert modal.webcal == "webcal://" + old_feed.split("://", 1)[1] and "subscribe" in modal.help_text.lower()
        await press(pilot, "escape", "F")
        assert isinstance(pilot.app.screen, ConfirmModal)
        await press(pilot, "enter")  # on the default button, Cancel: nothing happens
        assert isinstance(pilot.app.screen, DetailScreen)
        assert actions.feed_url(story.rt, "ada@example.com")["url"] == old_feed
        await press(pilot, "F")
        await pilot.click("#confirm")
        await settle(pilot)
        modal = pilot.app.screen
        assert isinstance(modal, LinkModal) and modal.url != old_feed

    drive(console(story.rt), scenario)
    primary = m.Calendar.get(m.Calendar.connection == story.conn_id, m.Calendar.is_destination == True)
    assert primary.name == "Home"
    by_sam = {a.action for a in m.AuditEntry.select().where(m.AuditEntry.actor == "sam")}
    assert {"connection.primary", "feed.url", "feed.reset"} <= by_sam


@radicale_only
def test_the_palette_lists_the_screens_actions_and_the_footer_their_keys(story):
    async def scenario(pilot):
        async def names():
            return [hit.text async for hit in ConsoleCommands(pilot.app.screen).discover()]

        assert "connection: open" in await names()
        await press(pilot, "enter")
        listed = await names()
        for name in (
            "connection: test",
            "connection: reissue relink link",
            "connection: sync now",
            "staff: show feed URL",
            "staff: reset feed URL",
            "connection: set primary calendar",
            "connection: export missed appointments (.ics)",
            "connection: stop sync",
            "view: staff",
        ):
            assert name in listed
        assert listed[0] == "connection: test" and listed.index("view: staff") < listed.index("Theme")  # ours first
        hits = {hit.text: hit async for hit in ConsoleCommands(pilot.app.screen).discover()}
        assert hits["connection: test"].display.plain.endswith("t")  # with its key
        assert hits["view: staff"].display.plain.endswith("s")
        shown = {b.binding.key for b in pilot.app.screen.active_bindings.values() if b.binding.show}
        assert {"t", "l", "n", "f", "p", "e", "x", "u"} <= shown
        await press(pilot, "question_mark")
        assert isinstance(pilot.app.screen, TextModal) and "`x` stop sync" in pilot.app.screen.markdown
        assert pilot.app.screen.markdown.startswith("**Keys**")  # the keys first: what support looks for
        await press(pilot, "escape", "s")
        assert "ada@example.com" in str(table_rows(pilot.app.screen.query_one("#staff", VirtualTable))[0][0])
        await press(pilot, "a")
        audit = table_rows(pilot.app.screen.query_one("#audit", VirtualTable))
        assert any(r[2] == "connection.connect" for r in audit)

    drive(console(story.rt), scenario)


def test_run_console_without_a_command_opens_the_console_as_the_given_user(monkeypatch, tmp_path):
    import run_console

    opened = {}
    monkeypatch.setenv("CALSYNC_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setattr(CalsyncConsole, "run", lambda self: opened.setdefault("actor", self.actor))
    assert run_console.main(["--as", "sam"]) == 0
    assert opened == {"actor": "sam"}


# -- on the fixed data set (no provider): what a screen offers and says ----------------------


def drive_seeded(rt, scenario, size=SIZE) -> None:
    seed_fixed(rt)
    app = console(rt)
    app.animation_level = "none"

    async def main():
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            await scenario(pilot)
            await settle(pilot)

    asyncio.run(main())


async def open_connection(pilot, conn_id: int) -> DetailScreen:
    await press(pilot, "number_sign", *str(conn_id), "enter")
    screen = pilot.app.screen
    assert isinstance(screen, DetailScreen) and screen.conn_id == conn_id
    return screen


def said(app) -> list[str]:
    return [n.message for n in app._notifications]


def test_a_stopped_connection_offers_only_what_still_works_and_no_empty_export(rt):
    async def scenario(pilot):  # the seeded connection 6 is stopped
        screen = await open_connection(pilot, 6)
        assert screen.detail["status"] == "stopped"
        keys = {b.binding.key for b in screen.active_bindings.values() if b.binding.show}
        assert not keys & {"t", "l", "n", "p", "x"} and {"e", "f"} <= keys
        listed = [hit.text async for hit in ConsoleCommands(screen).discover()]
        assert "connection: test" not in listed and "connection: stop sync" not in listed
        assert "staff: show feed URL" in listed
        await press(pilot, "t", "x")  # nothing runs, nothing opens
        assert pilot.app.screen is screen and not screen._busy
        await press(pilot, "e")  # nothing waits: said, no empty file
        assert pilot.app.screen is screen and any("nothing to export" in n for n in said(pilot.app))

    drive_seeded(rt, scenario)
    assert not m.AuditEntry.select().where(m.AuditEntry.action == "connection.test", m.AuditEntry.target == "6").exists()


class SlowProvider:
    """A provider that does not answer until the test lets it, then times out."""

    requests_made = 1

    def __init__(self):
        self.release = threading.Event()

    def discover(self):
        self.release.wait(10)
        raise Transient("the CalDAV server did not answer in time")


def test_a_test_against_a_slow_provider_shows_it_runs_then_says_it_did_not_answer(rt, monkeypatch):
    slow = SlowProvider()
    monkeypatch.setattr(rt, "provider_for", lambda conn, secrets=None: slow)

    async def scenario(pilot):
        screen = await open_connection(pilot, 1)
        pressed = time.monotonic()
        await pilot.press("t")
        await pilot.pause(1.2)
        assert screen.query_one("#progress-row").display  # the console stays live and says what runs
        running = text_of(screen, "#progress-label").strip()
        # The seconds shown are the seconds waited: at least the 1.2 s paused, at most what passed.
        shown = re.fullmatch(r"Testing connection 1.* (\d+) s", running)
        assert shown and 1 <= int(shown[1]) <= time.monotonic() - pressed, running
        slow.release.set()
        await settle(pilot)
        waited = time.monotonic() - pressed
        modal = pilot.app.screen
        assert isinstance(modal, ConnectionTestModal)
        assert not screen.query_one("#progress-row").display
        answer = text_of(modal, "#test-answer")
        said_wait = re.search(r"did not answer in (\d+) s", answer)
        assert said_wait and "as expected" not in answer, answer
        assert 1 <= int(said_wait[1]) <= round(waited), (answer, waited)
        assert f"did not answer in {said_wait[1]} s" in text_of(modal, "#test-reason")

    drive_seeded(rt, scenario)


def test_export_writes_into_a_folder_and_refuses_a_missing_one(rt, tmp_path):
    async def scenario(pilot):
        await open_connection(pilot, 1)
        await press(pilot, "e")
        prompt = pilot.app.screen
        assert isinstance(prompt, PathModal)
        default = prompt.query_one("#path").value
        assert default == str((tmp_path / "var").resolve() / "calsync-missed-1-2026-03-02.ics")  # the data dir
        prompt.query_one("#path").value = str(tmp_path)  # a folder: the file goes inside it
        await press(pilot, "enter")
        await press(pilot, "e")
        pilot.app.screen.query_one("#path").value = str(tmp_path / "missing" / "x.ics")
        await press(pilot, "enter")
        assert any("the folder" in n and "does not exist" in n for n in said(pilot.app)), said(pilot.app)

    drive_seeded(rt, scenario)
    written = tmp_path / "calsync-missed-1-2026-03-02.ics"
    assert "Quarterly review with Alan" in written.read_text()
    assert not (tmp_path / "missing").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calsync-missed-1-2026-03-02.ics", "var"]


def test_the_primary_picker_offers_only_calendars_that_can_be_chosen(rt):
    calendars = [
        {
            "id": 1,
            "name": "Work",
            "destination": True,
            "busy_source": True,
            "writable": False,
            "choosable": False,
            "last_synced_at": None,
        },  # deleted: kept only until another is chosen
        {
            "id": 2,
            "name": "Holidays",
            "destination": False,
            "busy_source": False,
            "writable": False,
            "last_synced_at": None,
        },  # read-only (an older core says so without "choosable")
        {"id": 3, "name": "Home", "destination": False, "busy_source": False, "writable": True, "choosable": True, "last_synced_at": None},
    ]

    async def scenario(pilot):
        screen = await open_connection(pilot, 1)
        screen._pick_primary(calendars)
        await settle(pilot)
        picker = pilot.app.screen
        assert isinstance(picker, PickerModal)
        assert [(value, label) for value, label, _ in picker.options] == [("3", "Home")]
        assert "2 calendar(s) not listed" in picker.hint

    drive_seeded(rt, scenario)


def test_audit_rows_say_failed_name_staff_and_connection_and_open_it(rt):
    async def scenario(pilot):
        await press(pilot, "a")
        screen = pilot.app.screen
        rows = table_rows(screen.query_one("#audit", VirtualTable))
        assert rows[0][3:6] == ["Ada Lovelace", "#1", "✖ failed"]
        assert "refused" in rows[0][6] and rows[1][5] == "✔ ok"
        await press(pilot, "v")
        assert "Result: failed" in pilot.app.screen.plain and "Connection: #1" in pilot.app.screen.plain
        await press(pilot, "escape", "enter")
        assert isinstance(pilot.app.screen, DetailScreen) and pilot.app.screen.conn_id == 1

    drive_seeded(rt, scenario)


def test_copied_is_only_claimed_where_the_terminal_takes_osc_52(monkeypatch):
    from console.widgets import clipboard

    assert clipboard.osc52_likely({"TERM": "xterm-kitty"}) and clipboard.osc52_likely({"WT_SESSION": "1"})
    assert not clipboard.osc52_likely({"TERM_PROGRAM": "Apple_Terminal"})
    assert not clipboard.osc52_likely({"TERM": "xterm-256color", "VTE_VERSION": "7200"})  # GNOME Terminal
    assert not clipboard.osc52_likely({"TERM": "xterm-kitty", "TMUX": "/tmp/tmux"})

    class App:
        def copy_to_clipboard(self, text):
            self.copied = text

    app = App()
    monkeypatch.setattr(clipboard.os, "environ", {"TERM_PROGRAM": "Apple_Terminal"})
    assert "select the link with the mouse" in clipboard.copy(app, "https://x.example/r/1")
    assert "sent" not in clipboard.copy(app, "https://x.example/r/1") and app.copied == "https://x.example/r/1"
    monkeypatch.setattr(clipboard.os, "environ", {"TERM_PROGRAM": "WezTerm"})
    assert "sent to your terminal (OSC 52)" in clipboard.copy(app, "https://x.example/r/1")


# -- snapshots -------------------------------------------------------------------------------

FROZEN = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)


def seed_fixed(rt) -> None:
    """A small organisation with one connection in each status, frozen at FROZEN."""
    clock.set_now(lambda: FROZEN)
    ago = lambda **kw: FROZEN - dt.timedelta(**kw)
    people = [
        ("ada@example.com", "Ada Lovelace", "Europe/Berlin"),
        ("grace@example.com", "Grace Hopper", "America/New_York"),
        ("alan@example.com", "Alan Turing", "Europe/London"),
        ("katherine@example.com", "Katherine Johnson", "UTC"),
    ]
    staff = {email: actions.add_staff(rt, email, name, timezone=zone)["id"] for email, name, zone in people}
    rejected = "the CalDAV server rejected the username or password (it may have been changed or revoked)"
    rows = [
        (
            "ada@example.com",
            "caldav",
            "ada@icloud.example",
            "https://caldav.icloud.example/",
            m.RELINK_REQUIRED,
            rejected,
            ago(hours=3),
            ago(minutes=10),
        ),
        ("grace@example.com", "google", "grace@gmail.example", "", m.ACTIVE, "", ago(days=10), ago(minutes=4)),
        (
            "alan@example.com",
            "microsoft",
            "alan@outlook.example",
            "",
            m.READ_ONLY,
            "the primary calendar is read-only for this account: calsync can read it but not add events",
            ago(days=2),
            ago(minutes=7),
        ),
        (
            "katherine@example.com",
            "ics",
            "feeds.example.org",
            "feeds.example.org",
            m.UNREACHABLE,
            "the provider has failed for 3 hours (503 Service Unavailable)",
            ago(hours=3),
            ago(minutes=2),
        ),
        (
            "grace@example.com",
            "caldav",
            "grace@fastmail.example",
            "https://caldav.fastmail.example/",
            m.PENDING,
            "connected, first sync not finished",
            ago(minutes=20),
            None,
        ),
        ("alan@example.com", "google", "alan@gmail.example", "", m.STOPPED, "sync stopped by the user", ago(days=30), ago(days=30)),
    ]
    for email, provider, account, server, status, reason, since, last_sync in rows:
        m.Connection.create(
            staff=staff[email],
            provider=provider,
            account=account,
            server_url=server,
            status=status,
            reason=reason,
            status_since=since,
            last_sync_at=last_sync,
            created_at=ago(days=40),
            last_success_at=last_sync if status == m.ACTIVE else ago(hours=3, minutes=5),
            last_error=reason if status in m.BROKEN_STATUSES else "",
        )
    ada = m.Connection.get(m.Connection.account == "ada@icloud.example")
    work = m.Calendar.create(
        connection=ada, remote_id="/ada/work/", name="Work", is_destination=True, is_primary=True, last_synced_at=ago(hours=3, minutes=5)
    )
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
        m.FeedEntry.create(
            calendar=work,
            uid=uid,
            starts_at=start,
            ends_at=start + dt.timedelta(hours=hours),
            subject=subject,
            loaded=loaded,
            info=info,
            seen_at=ago(hours=3, minutes=5),
        )
    for at, old, new, cause, answer in [
        (ago(days=40), "", m.PENDING, "connect", ""),
        (ago(days=40) + dt.timedelta(minutes=2), m.PENDING, m.ACTIVE, "sync", ""),
        (ago(hours=3), m.ACTIVE, m.RELINK_REQUIRED, "sync", "HTTP 401 Unauthorized PROPFIND https://caldav.icloud.example/ada/work/"),
    ]:
        m.StatusChange.create(connection=ada, at=at, old=old, new=new, cause=cause, provider_answer=answer)
    m.Incident.create(
        connection=ada,
        kind=m.RELINK_REQUIRED,
        reason=rejected,
        opened_at=ago(hours=3),
        last_seen_at=ago(minutes=10),
        failures=4,
        reminders=1,
    )
    for minutes, ms, requests, created, outcome, error in [(10, 41, 1, 0, "failed", rejected), (195, 380, 6, 2, "ok", "")]:
        m.SyncRun.create(
            connection=ada,
            started_at=ago(minutes=minutes),
            duration_ms=ms,
            requests=requests,
            created=created,
            entries_read=6,
            outcome=outcome,
            error=error,
        )
    for external_id, days, subject, state, href in [
        ("A-1001", 1, "Intro call with Grace", m.LINK_SYNCED, "/ada/work/a1.ics"),
        ("A-1002", 2, "Quarterly review with Alan", m.LINK_MISSED, ""),
    ]:
        start = day + dt.timedelta(days=days, hours=14)
        appointment = m.Appointment.create(
            external_id=external_id,
            staff=staff["ada@example.com"],
            uid=f"{external_id}@calsync",
            starts_at=start,
            ends_at=start + dt.timedelta(hours=1),
            subject=subject,
        )
        m.AppointmentLink.create(appointment=appointment, calendar=work, state=state, href=href)
    m.RelinkLink.create(
        connection=ada,
        token_hash="0" * 64,
        created_at=ago(hours=3),
        expires_at=ago(hours=3) + dt.timedelta(days=7),
        issued_by="calsync",
        via="slack,email",
    )
    actions.audit("sam", "connection.test", ada.id, "relink_required")
    actions.audit("sam", "connection.stop", ada.id, "refused: relink first", result="failed")


def snapshot_app(rt) -> CalsyncConsole:
    seed_fixed(rt)
    app = console(rt)
    # A tab's underline slides in: a screenshot taken mid-slide differs from run to run.
    app.animation_level = "none"
    return app


SIZES = pytest.mark.parametrize("size", [(80, 24), (160, 45)], ids=["80x24", "160x45"])
TEST_TIMEOUT = {
    "connection": 1,
    "ok": False,
    "status": "relink_required",
    "transient": True,
    "reason": "the CalDAV server did not answer in time",
    "provider_answer": "",
    "requests": 1,
    "sync": None,
    "checks": [{"check": "error", "ok": False, "detail": "the CalDAV server did not answer in time"}],
}
CALENDARS = [
    {"id": 1, "name": "Work", "destination": True, "busy_source": True, "writable": False, "choosable": False, "last_synced_at": None},
    {"id": 2, "name": "Home", "destination": False, "busy_source": False, "writable": True, "choosable": True, "last_synced_at": None},
    {
        "id": 3,
        "name": "Team calendar (shared with me)",
        "destination": False,
        "busy_source": False,
        "writable": True,
        "choosable": True,
        "last_synced_at": None,
    },
]
FEED = "https://calsync.example.org/feed/3f9c2b7d41e8a6c05d9b1e2f7a4c8d6e0b3f5a7c9e1d2b4f6a8c0e2d4b6f8a0c1e3d.ics"


def snapshot(rt, snap_compare, size, *steps) -> bool:
    """The screen after ``steps`` (callables of the pilot's app, or key names), at ``size``."""

    async def run_before(pilot):
        await settle(pilot)
        for step in steps:
            if callable(step):
                step(pilot.app)
                await settle(pilot)
            else:
                await press(pilot, step)
        # A tab's underline follows its grown label after a layout that may come after the last
        # message: put it in place for every screen, so the picture does not depend on timing.
        for screen in pilot.app.screen_stack:
            for tabs in screen.query(Tabs):
                tabs._highlight_active(animate=False)
        await pilot.pause(0.05)

    return snap_compare(snapshot_app(rt), terminal_size=size, run_before=run_before)


def ada(app) -> None:
    app.push_screen(DetailScreen(1))


def detail(app) -> DetailScreen:
    return app.screen


@needs_snapshot_plugin
@SIZES
def test_snapshot_connections_screen(rt, snap_compare, size):
    assert snapshot(rt, snap_compare, size)


@needs_snapshot_plugin
@SIZES
def test_snapshot_detail_screen_of_a_broken_connection(rt, snap_compare, size):
    assert snapshot(rt, snap_compare, size, ada)


@needs_snapshot_plugin
@SIZES
def test_snapshot_staff_screen(rt, snap_compare, size):
    assert snapshot(rt, snap_compare, size, "s")


@needs_snapshot_plugin
@SIZES
def test_snapshot_audit_screen(rt, snap_compare, size):
    assert snapshot(rt, snap_compare, size, "a")


@needs_snapshot_plugin
@SIZES
def test_snapshot_help_dialog_of_the_detail_screen(rt, snap_compare, size):
    assert snapshot(rt, snap_compare, size, ada, "question_mark")


@needs_snapshot_plugin
@SIZES
def test_snapshot_stop_dialog_on_a_broken_connection(rt, snap_compare, size):
    assert snapshot(rt, snap_compare, size, ada, "x")


@needs_snapshot_plugin
@SIZES
def test_snapshot_feed_url_dialog(rt, snap_compare, size):
    from console.screens.detail_actions import feed_modal

    assert snapshot(
        rt,
        snap_compare,
        size,
        ada,
        lambda app: app.push_screen(
            feed_modal("Private feed URL of ada@example.com", FEED, ["F resets it (the old address then stops working)."])
        ),
    )


@needs_snapshot_plugin
@SIZES
def test_snapshot_test_dialog_after_a_timeout(rt, snap_compare, size):
    assert snapshot(rt, snap_compare, size, ada, lambda app: app.push_screen(ConnectionTestModal(TEST_TIMEOUT, 12.4)))


@needs_snapshot_plugin
@SIZES
def test_snapshot_primary_calendar_picker(rt, snap_compare, size):
    assert snapshot(rt, snap_compare, size, ada, lambda app: detail(app)._pick_primary(CALENDARS))


@needs_snapshot_plugin
@SIZES
def test_snapshot_export_path_dialog(rt, snap_compare, size):
    def fixed_path(app) -> None:  # the default names the test's temporary data dir
        field = app.screen.query_one("#path")
        field.cursor_blink = False  # a blinking cursor is caught on or off by when the picture is taken
        field.value = "/home/sam/calsync-missed-1-2026-03-02.ics"

    assert snapshot(rt, snap_compare, size, ada, "e", fixed_path)


@needs_snapshot_plugin
@SIZES
def test_snapshot_row_detail_dialog_of_a_calendar(rt, snap_compare, size):
    assert snapshot(rt, snap_compare, size, ada, "right_square_bracket", "enter")


@needs_snapshot_plugin
@SIZES
def test_snapshot_confirm_dialog_of_a_feed_reset(rt, snap_compare, size):
    assert snapshot(rt, snap_compare, size, ada, "F")


def test_long_lists_show_their_first_rows_then_all_of_them_and_say_so_meanwhile(rt, monkeypatch):
    """The connections and staff screens read the first page, draw it, then read everything; while
    only the first page is in, the screen says the rest is loading (a filter is not the whole answer)."""
    from console.screens.base import PagedListScreen
    from console.screens.staff import StaffScreen

    monkeypatch.setattr(ConnectionsScreen, "FIRST_PAGE", 2)
    monkeypatch.setattr(StaffScreen, "FIRST_PAGE", 2)
    seen: dict[str, list] = {"connections": [], "staff": []}
    original = PagedListScreen._arrived

    def record(self, listing, complete=True):
        original(self, listing, complete)
        if isinstance(self, ConnectionsScreen):
            seen["connections"].append((self.table.row_count, complete, self.query_one("#counts").render().plain))
        else:
            seen["staff"].append((self.table.row_count, complete, str(self.query_one("#staff-summary").render())))

    monkeypatch.setattr(PagedListScreen, "_arrived", record)

    async def scenario(pilot):
        await pilot.press("s")
        await settle(pilot)

    drive_seeded(rt, scenario)
    first, *later = seen["connections"]
    assert first[:2] == (2, False) and "loading the rest" in first[2]
    assert later and later[0][:2] == (6, True) and "loading the rest" not in later[0][2]
    first, *later = seen["staff"]
    assert first[:2] == (2 + 1 + 2, False) and "loading the rest" in first[2]  # Ada (1 connection), Alan (2)
    assert later and later[0][:2] == (4 + 6, True) and "loading the rest" not in later[0][2]


def test_the_first_staff_page_is_the_first_staff_members_of_the_whole_list(rt):
    seed_fixed(rt)
    everyone = actions.staff_overview(rt)
    first = actions.staff_overview(rt, limit=2)
    assert first == everyone[:2]
    assert actions.list_statuses(rt, limit=3) == actions.list_statuses(rt)[:3]


def test_the_runs_tab_shows_a_stretch_of_no_change_runs_as_one_line(story):
    from console.screens.detail_sections import table_rows as detail_tables

    story.sync()
    for _ in range(4):
        story.sync()
    _columns, rows = detail_tables(actions.connection_detail(story.rt, story.conn_id))["runs"]
    assert len(rows) == 2
    stretch = [str(c) for c in rows[0]]
    assert stretch[7] == "ok ×4" and "4 runs found nothing to do" in stretch[8]
    assert [str(c) for c in rows[1]][7] == "ok"
