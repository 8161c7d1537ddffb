"""What support can do on the connection screen: test, relink, sync, feed URL, primary calendar, export, stop.

Long work runs in a worker thread (``run_core``) while a line under the summary says what
runs and for how long; the result is shown when it ends.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from textual.widgets import DataTable, ProgressBar, Static, TabbedContent

from console.tables import shown
from console.widgets.cells import local
from console.widgets.confirm_modal import ConfirmModal
from console.widgets.connection_test_modal import ConnectionTestModal, timed
from console.widgets.link_modal import LinkModal
from console.widgets.path_modal import PathModal
from console.widgets.picker_modal import PickerModal
from console.widgets.stop_modal import StopModal
from core import actions, clock, wording

if TYPE_CHECKING:
    from textual.timer import Timer

    from console.screens.base import ConsoleScreen

    # The type checker reads the mixin as the screen it is mixed into; at run time it stays a
    # plain class (DetailScreen(DetailActions, ConsoleScreen) puts ConsoleScreen after it).
    _MixedInto = ConsoleScreen
else:
    _MixedInto = object


def export_name(conn_id: int) -> str:
    return f"calsync-missed-{conn_id}-{clock.now():%Y-%m-%d}.ics"


def export_folder(rt) -> Path:
    """Where an export goes by default: the data directory, or the home directory."""
    data_dir = Path(rt.settings.data_dir).expanduser()
    return data_dir.resolve() if data_dir.is_dir() else Path.home()


def export_target(path: str, conn_id: int) -> Path:
    """The file to write for what was typed: a folder gets the default name inside it."""
    target = Path(path).expanduser()
    if target.is_dir() or path.endswith(("/", os.sep)):
        target = target / export_name(conn_id)
    if not target.parent.is_dir():
        raise actions.ActionError(f"the folder {target.parent} does not exist: create it first, or choose another")
    return target


def sync_words(report: dict | None) -> str:
    """A sync report in one sentence: 'synced at once: 2 appointments written, none waiting'."""
    if not report:
        return "nothing needed syncing"
    if report["outcome"] == "busy":
        return "a sync of this connection was already running; it writes what waits"
    if report["outcome"] != "ok":
        return f"the sync that followed did not finish: {report['error'] or report['reason'] or report['outcome']}"
    written = report["created"] + report["updated"]
    waiting = wording.waiting_phrase(report.get("missed", 0)) or "none waiting"
    return f"synced at once: {written} appointment(s) written, {waiting}"


class DetailActions(_MixedInto):
    """Mixed into DetailScreen (console/screens/detail.py), which supplies rt, actor, conn_id and detail."""

    # Set by DetailScreen.__init__.
    conn_id: int
    detail: dict | None
    _busy: set[str]  # the actions running now, by name
    _running_label: str
    _running_since: float
    _running_timer: Timer | None

    if TYPE_CHECKING:

        def reload(self) -> None:
            """Read the connection again (DetailScreen.reload)."""

    # -- one run at a time, with a running line ---------------------------------------------

    def _start(self, name: str, running: str = "") -> bool:
        """One run of each action at a time (a second press while it runs is ignored, with a word)."""
        if name in self._busy:
            self.notify(f"{name} is still running.", severity="warning")
            return False
        self._busy.add(name)
        if running:
            self._show_running(running)
        return True

    def _show_running(self, label: str, total: int | None = None) -> None:
        self._running_label, self._running_since = label, time.monotonic()
        self.query_one("#progress-row").display = True
        self.query_one("#sync-progress", ProgressBar).update(total=total, progress=0)
        self._tick_running()
        if self._running_timer is None:
            self._running_timer = self.set_interval(1, self._tick_running)

    def _tick_running(self) -> None:
        seconds = int(time.monotonic() - self._running_since)
        self.query_one("#progress-label", Static).update(f"{self._running_label} {seconds} s")

    def _elapsed(self) -> float:
        return time.monotonic() - self._running_since

    def _hide_running(self) -> None:
        if self._running_timer is not None:
            self._running_timer.stop()
            self._running_timer = None
        self.query_one("#progress-row").display = False

    def _finish(self, name: str):
        def finish(_value=None) -> None:
            self._busy.discard(name)
            if not self._busy:
                self._hide_running()

        return finish

    def _then(self, name: str, callback):
        def done(value) -> None:
            self._finish(name)()
            callback(value)

        return done

    # -- test, sync -------------------------------------------------------------------------

    def action_test(self) -> None:
        cid = self.conn_id
        if not self._start("Test connection", f"Testing connection {cid}: asking the provider…"):
            return
        rt, actor = self.rt, self.actor
        started = time.monotonic()
        self.run_core(
            "Test connection",
            lambda: actions.test_connection(rt, cid, actor=actor),
            self._then("Test connection", lambda result: self._tested(result, time.monotonic() - started)),
            self._finish("Test connection"),
        )

    def _tested(self, result: dict, seconds: float) -> None:
        self.app.push_screen(ConnectionTestModal(result, seconds))
        self.reload()

    def action_sync(self) -> None:
        cid = self.conn_id
        if not self._start("Sync now", f"Syncing connection {cid}…"):
            return
        rt, actor = self.rt, self.actor
        started = time.monotonic()

        def job():
            def progress(done, total, report):
                self._from_thread(self._sync_progress, done, total)

            return actions.sync_now(rt, cid, actor=actor, progress=progress)

        self.run_core(
            "Sync now", job, self._then("Sync now", lambda r: self._synced(r, time.monotonic() - started)), self._finish("Sync now")
        )

    def _sync_progress(self, done: int, total: int) -> None:
        self.query_one("#sync-progress", ProgressBar).update(total=total, progress=done)

    def _synced(self, reports: list[dict], seconds: float) -> None:
        report = reports[0]
        counts = (
            f"{report['created']} created, {report['updated']} updated, {report['deleted']} deleted, "
            f"{report['entries_read']} read, {report['requests']} requests"
        )
        if report["outcome"] == "ok":
            self.notify(f"{counts}; status {report['status']}.", title=f"Synced connection {report['connection_id']}")
        else:
            why = timed(report["error"] or report["reason"], seconds)
            self.notify(
                shown(f"{report['outcome']}: {why}; status {report['status']}."),
                title=f"Sync of connection {report['connection_id']}",
                severity="error",
                timeout=12,
                markup=False,
            )
        self.reload()

    # -- relink ----------------------------------------------------------------------------

    def action_relink(self) -> None:
        options = [("slack,email", "Slack and e-mail", True), ("slack", "Slack only", True), ("email", "E-mail only", True)]
        self.app.push_screen(
            PickerModal(
                f"Reissue the relink link of connection {self.conn_id}: send it via",
                options,
                hint="The new link replaces every earlier one: links already sent stop working.",
            ),
            self._relink_via,
        )

    def _relink_via(self, via: str | None) -> None:
        if not via or not self._start("Reissue relink link"):
            return
        rt, cid, actor, channels = self.rt, self.conn_id, self.actor, tuple(via.split(","))
        self.run_core(
            "Reissue relink link",
            lambda: actions.issue_relink(rt, cid, via=channels, actor=actor),
            self._then("Reissue relink link", self._relinked),
            self._finish("Reissue relink link"),
        )

    def _relinked(self, result: dict) -> None:
        zone = (self.detail or {}).get("timezone")
        notes = [f"Expires {local(result['expires_at'], zone)}. Every earlier link of this connection no longer works."]
        if result["sent_via"]:
            notes.append(f"Sent via {', '.join(result['sent_via'])} (delivered by the service's outbox).")
        if result["not_configured"]:
            notes.append(
                f"Not sent via {', '.join(result['not_configured'])}: not configured here "
                "(CALSYNC_SMTP_URL for e-mail, SLACK_BOT_TOKEN for Slack). Pass the link on yourself."
            )
        self.app.push_screen(LinkModal(f"New relink link for connection {result['connection']}", result["url"], notes))
        self.reload()

    # -- the staff member's feed URL ---------------------------------------------------------

    def action_feed_url(self) -> None:
        if self.detail is None:
            self.notify("The connection is still loading.", severity="warning")
            return
        rt, actor, staff = self.rt, self.actor, self.detail["staff"]
        self.run_core(
            "Feed URL",
            lambda: actions.feed_url(rt, staff, actor=actor),
            lambda result: self.app.push_screen(
                feed_modal(f"Private feed URL of {result['staff']}", result["url"], ["F resets it (the old address then stops working)."])
            ),
        )

    def action_reset_feed(self) -> None:
        if self.detail is None:
            self.notify("The connection is still loading.", severity="warning")
            return
        staff = self.detail["staff"]
        self.app.push_screen(confirm_feed_reset(staff), lambda yes: self._reset_feed(staff) if yes else None)

    def _reset_feed(self, staff: str) -> None:
        rt, actor = self.rt, self.actor
        self.run_core(
            "Reset feed URL",
            lambda: actions.feed_reset(rt, staff, actor=actor),
            lambda result: self.app.push_screen(
                feed_modal(
                    f"New private feed URL of {result['staff']}",
                    result["url"],
                    ["The old URL no longer works: calendar apps must subscribe to this one."],
                )
            ),
        )

    # -- the primary calendar ---------------------------------------------------------------

    def action_primary(self) -> None:
        if not self._start("Primary calendar", "Asking the provider for the account's calendars…"):
            return
        rt, cid = self.rt, self.conn_id
        self.run_core(
            "Primary calendar",
            lambda: actions.list_calendars(rt, cid, refresh=True),
            self._then("Primary calendar", self._pick_primary),
            self._finish("Primary calendar"),
        )

    def _pick_primary(self, calendars: list[dict]) -> None:
        options, left_out = [], 0
        for c in calendars:
            label = c["name"] or f"calendar {c['id']}"
            if not c.get("choosable", c["writable"]):  # read-only, or the deleted primary
                left_out += 1
                continue
            if c["destination"]:
                label += "  (the primary calendar now)"
            options.append((str(c["id"]), label, not c["destination"]))
        hint = "New appointments are written to the primary calendar, and calsync syncs at once."
        if left_out:
            hint += f" {left_out} calendar(s) not listed: read-only, or deleted."
        if not any(enabled for _, _, enabled in options):
            self.notify(
                "This account has no other calendar calsync can write to: create one, or ask for write access, then press p again.",
                severity="warning",
                timeout=10,
            )
            return
        self.app.push_screen(PickerModal(f"Primary calendar of connection {self.conn_id}", options, hint=hint), self._set_primary)

    def _set_primary(self, calendar_id: str | None) -> None:
        if not calendar_id or not self._start("Primary calendar", "Choosing the primary calendar and syncing…"):
            return
        rt, cid, actor = self.rt, self.conn_id, self.actor

        def done(result: dict) -> None:
            self.notify(
                shown(f"Primary calendar is now {result.get('primary')!r}; {sync_words(result.get('sync'))}."),
                title=f"Connection {cid}",
                markup=False,
                timeout=10,
            )
            self.reload()

        self.run_core(
            "Primary calendar",
            lambda: actions.set_destination(rt, cid, calendar_id, actor=actor),
            self._then("Primary calendar", done),
            self._finish("Primary calendar"),
        )

    # -- a calendar's roles (busy, write) ---------------------------------------------------

    def action_toggle_busy(self) -> None:
        self._toggle_role("busy")

    def action_toggle_write(self) -> None:
        self._toggle_role("write")

    def _toggle_role(self, role: str) -> None:
        """The highlighted row of the Calendars tab gets the role turned on, or off."""
        tabs = self.query_one("#tabs", TabbedContent)
        if tabs.active != "tab-calendars" or self.detail is None:
            self.notify("Open the Calendars tab (]) and highlight a calendar first.", timeout=6)
            return
        index = self.query_one("#calendars", DataTable).cursor_row
        calendars = self.detail["calendars"]
        if not 0 <= index < len(calendars):
            return
        cal = calendars[index]
        wanted = not cal[role]
        name = f"Calendar {cal['name'] or cal['id']}"
        if not self._start(name, f"Turning {role} {'on' if wanted else 'off'}…"):
            return
        rt, cid, actor = self.rt, self.conn_id, self.actor
        change = {role: wanted}

        def done(result: dict) -> None:
            roles = [word for word in ("busy", "write", "primary") if result[word]] or ["no role: not read"]
            self.notify(shown(f"{result['name']}: {', '.join(roles)}; calsync syncs at once."), title=f"Connection {cid}", markup=False)
            self.reload()

        self.run_core(
            name,
            lambda: actions.set_calendar_roles(rt, cid, str(cal["id"]), actor=actor, **change),
            self._then(name, done),
            self._finish(name),
        )

    # -- export ----------------------------------------------------------------------------

    def action_export(self) -> None:
        missed = len(self.detail["missed_appointments"]) if self.detail else None
        if missed == 0:
            self.notify("No appointment is waiting on this connection: there is nothing to export.", timeout=6)
            return
        what = f"{missed} missed appointment(s)" if missed is not None else "The missed appointments"
        self.app.push_screen(
            PathModal(
                f"Export the missed appointments of connection {self.conn_id} to .ics",
                str(export_folder(self.rt) / export_name(self.conn_id)),
                hint=f"{what}. A folder is fine: the file is written inside it. The file is a snapshot: "
                "it will not update if an appointment changes later.",
                confirm_label="Export",
            ),
            self._export_to,
        )

    def _export_to(self, path: str | None) -> None:
        if not path:
            return
        rt, cid, actor = self.rt, self.conn_id, self.actor

        def job():
            target = export_target(path, cid)
            result = actions.download_missed(rt, cid, actor=actor)
            if not result["count"]:
                return 0, None
            write_atomically(target, result["ics"])
            return result["count"], target

        def done(written) -> None:
            count, target = written
            if target is None:
                self.notify("No appointment is waiting on this connection: nothing was written.", timeout=6)
            else:
                self.notify(
                    shown(f"Wrote {count} missed appointment(s) to {target} (a snapshot: it will not update)."),
                    title="Exported",
                    markup=False,
                    timeout=10,
                )

        self.run_core("Export missed appointments", job, done)

    # -- stop ------------------------------------------------------------------------------

    def action_stop(self) -> None:
        if not self._start("Stop sync"):
            return
        rt, cid = self.rt, self.conn_id
        self.run_core(
            "Stop sync",
            lambda: (actions.stop_plan(rt, cid, keep_events=False), actions.stop_plan(rt, cid, keep_events=True)),
            self._then("Stop sync", self._confirm_stop),
            self._finish("Stop sync"),
        )

    def _confirm_stop(self, plans) -> None:
        remove, keep = plans
        if remove["status"] == "stopped":
            self.notify("The connection is already stopped.", severity="warning")
            return
        d = self.detail or {}
        self.app.push_screen(StopModal(remove, keep, d.get("staff", ""), d.get("account", "")), self._stop)

    def _stop(self, choice: dict | None) -> None:
        if not choice:
            self.notify("Nothing was changed.", timeout=3)
            return
        rt, cid, actor = self.rt, self.conn_id, self.actor

        def done(result: dict) -> None:
            text = f"{result['removed']} event(s) removed, {result['kept']} kept, {result['orphaned']} orphaned; credentials forgotten."
            if result["warning"]:
                text += f" Note: {result['warning']}."
            self.notify(shown(text), title=f"Stopped connection {cid}", timeout=10, markup=False)
            self.reload()

        self.run_core(
            "Stop sync", lambda: actions.stop_sync(rt, cid, keep_events=choice["keep_events"], force=choice["force"], actor=actor), done
        )


def feed_modal(title: str, url: str, notes: list[str]) -> LinkModal:
    """A feed URL with its webcal:// form and how to subscribe (it can be shown again: not "once")."""
    return LinkModal(title, url, notes, once=False, webcal=wording.webcal(url), help_text=wording.SUBSCRIBE_HELP)


def confirm_feed_reset(staff: str) -> ConfirmModal:
    return ConfirmModal(
        f"Reset the private feed URL of {staff}?",
        "The current feed URL stops working at once: calendar apps subscribed to it stop updating until they subscribe to the new URL.",
        "Reset feed URL",
        danger=True,
    )


def write_atomically(target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` so that readers see the old file or the whole new one."""
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise actions.ActionError(f"could not write {target}: {exc.strerror or exc}") from None
