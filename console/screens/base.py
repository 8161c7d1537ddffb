"""What every console screen shares: the runtime, the actor, and running core work off the UI thread."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from textual import work
from textual.screen import Screen

import models as m
from console.tables import shown
from core import actions

if TYPE_CHECKING:
    from textual import getters

    from console.app import CalsyncConsole
    from core.runtime import Runtime

log = logging.getLogger("calsync.console")

PaletteCommand = tuple[str, Callable[[], Any], str]  # (name, callback, help)


class ConsoleScreen(Screen):
    """A screen of the console. ``HELP`` (Markdown) is what `?` shows above the key list."""

    HELP = ""

    if TYPE_CHECKING:
        # Textual types ``app`` as any App; a console screen only ever runs in the console app.
        # For the type checker only (as textual's own MessagePump does): at run time ``app`` stays
        # textual's property, and importing console.app here would be circular.
        app = getters.app(CalsyncConsole)

    @property
    def rt(self) -> Runtime:
        return self.app.rt

    @property
    def actor(self) -> str:
        return self.app.actor

    def palette_commands(self) -> list[PaletteCommand]:
        """This screen's commands for the command palette, named "area: verb"."""
        return []

    def run_core(
        self, title: str, job: Callable[[], Any], done: Callable[[Any], object] | None = None, failed: Callable[[str], object] | None = None
    ) -> None:
        """Run ``job`` (one or more core.actions calls) in a thread, then ``done(result)`` on the UI thread.

        An ``ActionError`` becomes an error notification with its plain-words reason
        (and ``failed(reason)`` on the UI thread, when given).
        """
        self._core_worker(title, job, done, failed)

    @work(thread=True, exit_on_error=False)
    def _core_worker(self, title: str, job: Callable[[], Any], done, failed) -> Any:
        try:
            with m.db.connection_context():
                result = job()
        except actions.ActionError as exc:  # its reason may quote a provider: shown, never read as markup
            self._from_thread(self.app.notify, shown(exc), title=f"{title}: failed", severity="error", timeout=12, markup=False)
            if failed is not None:
                self._from_thread(self._deliver, failed, str(exc))
            return None
        except Exception as exc:  # a bug or a lost database: say so, keep the console running
            log.exception("%s failed", title)
            reason = m.BUSY_MESSAGE if m.is_busy(exc) else f"internal error: {exc}"
            self._from_thread(self.app.notify, shown(reason), title=f"{title}: failed", severity="error", timeout=12, markup=False)
            if failed is not None:
                self._from_thread(self._deliver, failed, str(exc))
            return None
        if done is not None:
            self._from_thread(self._deliver, done, result)
        return result

    def _deliver(self, callback: Callable[[Any], object], value: Any) -> None:
        if self.is_attached:
            callback(value)

    def _from_thread(self, callback, *args, **kwargs) -> None:
        try:
            self.app.call_from_thread(callback, *args, **kwargs)
        except RuntimeError:  # the app has exited meanwhile
            pass


class FilteredListScreen(ConsoleScreen):
    """A screen that is one big table with a filter above it (connections, staff, audit)."""

    TABLE_ID = ""
    FILTER_ID = ""

    @property
    def table(self):
        from console.widgets.virtual_table import VirtualTable

        return self.query_one(f"#{self.TABLE_ID}", VirtualTable)

    def reload(self) -> None:  # pragma: no cover - each screen reads its own data
        raise NotImplementedError

    def action_focus_filter(self) -> None:
        from textual.widgets import Input

        self.query_one(f"#{self.FILTER_ID}", Input).focus()

    def action_clear_filter(self) -> None:
        from textual.widgets import Input

        filter_input = self.query_one(f"#{self.FILTER_ID}", Input)
        if filter_input.value:
            filter_input.value = ""
        self.table.focus()

    def action_refresh(self) -> None:
        self.reload()


class PagedListScreen(FilteredListScreen):
    """A long list read in two steps, each in a worker thread: its first page (``FIRST_PAGE``
    items), drawn at once, then everything once that page is on screen (a worker busy reading
    would hold the first rows back). ``complete`` says whether everything is in."""

    FIRST_PAGE = 100
    LOAD_TITLE = "Load"

    def __init__(self) -> None:
        super().__init__()
        self.loaded_once = False  # some rows are shown
        self.complete = False  # every row is in, not only the first page
        self._loading = False

    def read(self, rt, limit: int | None) -> Any:  # pragma: no cover - each screen reads its own data
        """The listing (in a worker thread): the first ``limit`` items, or all of them."""
        raise NotImplementedError

    def page_items(self, listing) -> int:  # pragma: no cover
        """How many items (of the kind ``FIRST_PAGE`` counts) ``listing`` holds."""
        raise NotImplementedError

    def show_listing(self, listing) -> None:  # pragma: no cover
        """Show ``listing`` (on the UI thread; ``complete`` is already set)."""
        raise NotImplementedError

    def reload(self) -> None:
        if self._loading:
            return
        self._loading = True
        rt, first = self.rt, not self.loaded_once
        limit = self.FIRST_PAGE if first else None
        self.run_core(self.LOAD_TITLE, lambda: self.read(rt, limit), self._first_page if first else self._arrived, self._load_failed)

    def _load_failed(self, reason: str) -> None:
        self._loading = False

    def _first_page(self, listing) -> None:
        if self.loaded_once:  # everything came first (the screen was resumed): keep it
            self._loading = False
            return
        self._arrived(listing, complete=self.page_items(listing) < self.FIRST_PAGE)
        if not self.complete:
            self.table.after_drawn(self.reload)

    def _arrived(self, listing, complete: bool = True) -> None:
        self._loading = False
        self.loaded_once = True
        self.complete = complete
        self.show_listing(listing)
        if complete:
            self.app.startup_settled()
