"""The calsync support console: `python run_console.py` without a command.

The App only wires screens, keys and the command palette; every fact and every
change comes from :mod:`core.actions`, run in worker threads so the screen never
waits for the database or a calendar provider.
"""

from __future__ import annotations

import gc
import getpass
from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar

from textual.app import App
from textual.binding import Binding, BindingType
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content
from textual.screen import ModalScreen, Screen

from console.screens.audit import AuditScreen
from console.screens.base import ConsoleScreen, PaletteCommand
from console.screens.connections import ConnectionsScreen
from console.screens.staff import StaffScreen
from console.tables import shown
from console.widgets.text_modal import TextModal
from core import actions

VIEWS = {"connections": "Connections", "staff": "Staff", "audit": "Audit trail"}
VIEW_KEYS = Binding.Group("Views", compact=True)


class ConsoleCommands(Provider):
    """The command palette: the current screen's commands, then the app's ("view: …", "app: …"),
    each with its key, then Textual's own (theme, keys, screenshot, quit).

    One provider, so the order is always this one (providers answer concurrently)."""

    def _commands(self) -> list[tuple[str, Any, str, str]]:
        screen, app = self.screen, self.app
        own = screen.palette_commands() if isinstance(screen, ConsoleScreen) else []
        ours = app.palette_commands() if isinstance(app, CalsyncConsole) else []
        listed = [(name, callback, help_text, key_for(app, screen, callback)) for name, callback, help_text in own + ours]
        listed += [(c.title, c.callback, c.help, "") for c in app.get_system_commands(screen) if c.discover]
        return listed

    async def discover(self) -> Hits:
        for name, callback, help_text, key in self._commands():
            yield DiscoveryHit(with_key(Content(name), key), callback, text=name, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, callback, help_text, key in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, with_key(matcher.highlight(name), key), callback, text=name, help=help_text)


def with_key(name: Content, key: str) -> Content:
    return name + Content.styled(f"   {key}", "bold $accent") if key else name


def key_for(app: App, screen, callback) -> str:
    """The key bound to the action a palette command runs ('t', 'ctrl+p'), or ''."""
    func = callback.func if isinstance(callback, partial) else callback
    name = getattr(func, "__name__", "")
    if not name.startswith("action_"):
        return ""
    action = name[7:]
    if isinstance(callback, partial):
        action = f"{action}({', '.join(repr(a) for a in callback.args)})"
    for source in (screen, app):
        for binding in getattr(source, "BINDINGS", []):
            if isinstance(binding, Binding) and binding.action == action:
                return binding.key_display or " / ".join(app.get_key_display(Binding(k, "")) for k in binding.key.split(","))
    return ""


def default_actor() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (a container without a passwd entry)
        return "console"


class CalsyncConsole(App):
    """Support's view of every calendar connection. ``rt``: a started core runtime (tests inject theirs)."""

    CSS_PATH = "app.tcss"
    TITLE = "calsync console"
    MODES: ClassVar[dict[str, str | Callable[[], Screen]]] = {"connections": ConnectionsScreen, "staff": StaffScreen, "audit": AuditScreen}
    DEFAULT_MODE = "connections"
    COMMANDS: ClassVar[set[type[Provider] | Callable[[], type[Provider]]]] = {ConsoleCommands}
    # Classes on every screen by its size: dialogs and the detail summary get tighter on a small terminal.
    # Textual annotates both "ClassVar[list[...]] | None", a ClassVar mypy cannot read inside a union: it
    # takes them for instance variables and refuses a class variable here (misc), though they are class settings.
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [(0, "-narrow"), (110, "-wide")]  # type: ignore[misc]  # textual's own annotation, misread (above)
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]] | None] = [(0, "-short"), (32, "-tall")]  # type: ignore[misc]  # textual's own annotation, misread (above)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "view('connections')", "Connections", group=VIEW_KEYS, tooltip="the list of every connection"),
        Binding("s", "view('staff')", "Staff", group=VIEW_KEYS, tooltip="connections grouped by staff member"),
        Binding("a", "view('audit')", "Audit", group=VIEW_KEYS, tooltip="the audit trail"),
        Binding("question_mark,f1", "help", "Help", key_display="?", tooltip="this help (also F1)"),
        Binding("q", "leave", "Quit", show=False, tooltip="quit the console (also Ctrl+Q)"),
    ]

    def __init__(self, rt=None, actor: str | None = None, refresh_seconds: float = 5.0, freeze_startup: bool = False) -> None:
        super().__init__()
        # Once the first full listing is shown, everything alive then (modules, widgets, styles)
        # lives as long as the console: gc.freeze() takes it out of the collector's full passes,
        # which otherwise walk ~100,000 objects (~100 ms, mid-keystroke) every few refreshes.
        # Left off under tests, where many apps share one process.
        self.freeze_startup = freeze_startup
        self._startup_frozen = False
        if rt is None:
            from core import runtime

            rt = runtime.start()
        self.rt = rt
        self.actor = actor or default_actor()
        self.refresh_seconds = refresh_seconds
        self.title = f"calsync console — acting as {self.actor}"

    def startup_settled(self) -> None:
        """The first screen has all its data: freeze what is alive (see ``freeze_startup``)."""
        if self.freeze_startup and not self._startup_frozen:
            self._startup_frozen = True
            gc.freeze()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Inside a dialog the letters belong to the dialog: no switching views or
        # quitting behind it (a link shown once would be lost).
        return not (action in ("view", "help", "leave") and isinstance(self.screen, ModalScreen))

    def action_leave(self) -> None:
        self.exit()

    def action_view(self, name: str) -> None:
        if name not in VIEWS:
            return
        if self.current_mode == name:
            while len(self.screen_stack) > 1:
                self.pop_screen()
        else:
            self.switch_mode(name)

    def action_help(self) -> None:
        screen = self.screen
        if isinstance(screen, ModalScreen):
            return
        title = screen.sub_title or VIEWS.get(self.current_mode, "")
        self.push_screen(TextModal(title, help_markdown(self, screen)))

    def palette_commands(self) -> list[PaletteCommand]:
        commands: list[PaletteCommand] = [
            (f"view: {label.lower()}", partial(self.action_view, name), f"switch to the {label.lower()} screen")
            for name, label in VIEWS.items()
        ]
        commands.insert(
            0,
            (
                "connection: open connection…",
                self.action_open_connection,
                "choose a connection by number, staff member or account, and open it",
            ),
        )
        commands.append(("app: help for this screen", self.action_help, "what this screen shows and its keys"))
        return commands

    def action_open_connection(self) -> None:
        """A second palette listing every connection ("#27 Ada Lovelace · relink_required · …")."""
        screen = self.screen
        if not isinstance(screen, ConsoleScreen):
            return
        rt = self.rt
        screen.run_core("Open connection", lambda: actions.list_statuses(rt), self._choose_connection)

    def _choose_connection(self, rows: list[dict]) -> None:
        from console.screens.detail import DetailScreen

        def item(row: dict):
            who = row.get("staff_name") or row["staff"]
            name = shown(
                f"#{row['id']} {who} · {row['status'].replace('_', ' ')} · {row.get('provider_name') or row['provider']} {row['account']}"
            )
            return name, lambda cid=row["id"]: self.push_screen(DetailScreen(cid)), shown(row["reason"] or row["meaning"])

        self.search_commands([item(r) for r in rows], placeholder="Open connection: type its number, staff or account…")


def help_markdown(app: App, screen) -> str:
    """Every key that works on the screen first (what support looks for), then the screen's own help."""
    lines = ["**Keys**", ""]
    seen: set[str] = set()
    for source in (screen, app):
        for binding in source.BINDINGS:
            if not isinstance(binding, Binding) or not binding.description or binding.action in seen:
                continue
            seen.add(binding.action)
            keys = binding.key_display or " / ".join(app.get_key_display(Binding(k, "")) for k in binding.key.split(","))
            lines.append(f"- `{keys}` {binding.tooltip or binding.description}")
    lines.append(f"- `{app.get_key_display(Binding('ctrl+p', ''))}` the command palette: every action by name")
    lines += ["", "**About this screen**", "", getattr(screen, "HELP", "").strip()]
    return "\n".join(lines)


def run(rt=None, actor: str | None = None) -> Any:
    return CalsyncConsole(rt=rt, actor=actor, freeze_startup=True).run()
