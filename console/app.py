"""The calsync support console: `python run_console.py` without a command.

The App only wires screens, keys and the command palette; every fact and every
change comes from :mod:`core.actions`, run in worker threads so the screen never
waits for the database or a calendar provider.
"""

from __future__ import annotations

import getpass
from functools import partial
from typing import Any

from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.screen import ModalScreen

from console.screens.audit import AuditScreen
from console.screens.base import ConsoleScreen, PaletteCommand
from console.screens.connections import ConnectionsScreen
from console.screens.staff import StaffScreen
from console.widgets.text_modal import TextModal

VIEWS = {"connections": "Connections", "staff": "Staff", "audit": "Audit trail"}
VIEW_KEYS = Binding.Group("Views", compact=True)


class ConsoleCommands(Provider):
    """The command palette lists the current screen's commands, then the app's ("view: …", "app: …")."""

    def _commands(self) -> list[PaletteCommand]:
        screen = self.screen
        own = screen.palette_commands() if isinstance(screen, ConsoleScreen) else []
        app = self.app
        return own + (app.palette_commands() if isinstance(app, CalsyncConsole) else [])

    async def discover(self) -> Hits:
        for name, callback, help_text in self._commands():
            yield DiscoveryHit(name, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, callback, help_text in self._commands():
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), callback, text=name, help=help_text)


def default_actor() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return "console"


class CalsyncConsole(App):
    """Support's view of every calendar connection. ``rt``: a started core runtime (tests inject theirs)."""

    CSS_PATH = "app.tcss"
    TITLE = "calsync console"
    MODES = {"connections": ConnectionsScreen, "staff": StaffScreen, "audit": AuditScreen}
    DEFAULT_MODE = "connections"
    COMMANDS = App.COMMANDS | {ConsoleCommands}
    BINDINGS = [
        Binding("c", "view('connections')", "Connections", group=VIEW_KEYS, tooltip="the list of every connection"),
        Binding("s", "view('staff')", "Staff", group=VIEW_KEYS, tooltip="connections grouped by staff member"),
        Binding("a", "view('audit')", "Audit", group=VIEW_KEYS, tooltip="the audit trail"),
        Binding("question_mark,f1", "help", "Help", key_display="?", tooltip="this help (also F1)"),
        Binding("q", "leave", "Quit", show=False, tooltip="quit the console (also Ctrl+Q)"),
    ]

    def __init__(self, rt=None, actor: str | None = None, refresh_seconds: float = 5.0) -> None:
        super().__init__()
        if rt is None:
            from core import runtime

            rt = runtime.start()
        self.rt = rt
        self.actor = actor or default_actor()
        self.refresh_seconds = refresh_seconds
        self.title = f"calsync console — acting as {self.actor}"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Inside a dialog the letters belong to the dialog: no switching views or
        # quitting behind it (a link shown once would be lost).
        if action in ("view", "help", "leave") and isinstance(self.screen, ModalScreen):
            return False
        return True

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
        commands.append(("app: help for this screen", self.action_help, "what this screen shows and its keys"))
        return commands


def help_markdown(app: App, screen) -> str:
    """The screen's own help, then every key that works on it."""
    lines = [getattr(screen, "HELP", "").strip(), "", "**Keys**", ""]
    seen: set[str] = set()
    for source in (screen, app):
        for binding in source.BINDINGS:
            if not isinstance(binding, Binding) or not binding.description or binding.action in seen:
                continue
            seen.add(binding.action)
            keys = binding.key_display or " / ".join(app.get_key_display(Binding(k, "")) for k in binding.key.split(","))
            lines.append(f"- `{keys}` {binding.tooltip or binding.description}")
    lines.append(f"- `{app.get_key_display(Binding('ctrl+p', ''))}` the command palette: every action by name")
    return "\n".join(lines)


def run(rt=None, actor: str | None = None) -> Any:
    return CalsyncConsole(rt=rt, actor=actor).run()
