"""A secret link shown once (relink link, feed URL), with a copy action.

The console keeps no copy: once this dialog is closed the link cannot be shown
again, only replaced by a new one.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from console.tables import shown, shown_lines


class LinkModal(ModalScreen[None]):
    CSS_PATH = "modal.tcss"
    BINDINGS = [
        Binding("c", "copy", "Copy link"),
        Binding("escape", "close", "Close"),
    ]

    def __init__(self, title: str, url: str, notes: list[str] | None = None) -> None:
        super().__init__(classes="dialog")
        self.title_text, self.url, self.notes = title, url, notes or []

    def compose(self) -> ComposeResult:
        with Vertical(classes="frame"):
            yield Static(shown(self.title_text), classes="title", markup=False)
            yield Static(shown(self.url), classes="link", id="url", markup=False)
            yield Static("Shown once: copy it now. Closing this dialog forgets it.", classes="warning")
            for note in self.notes:
                yield Static(shown_lines(note), classes="body", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Copy link", id="copy", variant="primary")
                yield Button("Close", id="close")

    def on_mount(self) -> None:
        self.query_one("#copy", Button).focus()

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.url)
        self.notify("Link copied to the clipboard.")

    def action_close(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "copy":
            self.action_copy()
        else:
            self.dismiss(None)
