"""A yes/no question for actions that cannot be undone; Cancel (the default) changes nothing."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from console.tables import shown, shown_lines


class ConfirmModal(ModalScreen[bool]):
    CSS_PATH = "modal.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, body: str, confirm_label: str = "Confirm", *, danger: bool = False) -> None:
        super().__init__(classes="dialog")
        self.title_text, self.body, self.confirm_label, self.danger = title, body, confirm_label, danger

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="frame danger" if self.danger else "frame"):
            yield Static(shown(self.title_text), classes="title", markup=False)
            yield Static(shown_lines(self.body), classes="body", markup=False)
            with Horizontal(classes="buttons"):  # docked: in view however long the text
                yield Button(self.confirm_label, id="confirm", variant="error" if self.danger else "primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")

    def action_cancel(self) -> None:
        self.dismiss(False)
