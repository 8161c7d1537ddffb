"""Ask where to write a file; the default is already filled in."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from console.tables import shown, shown_lines


class PathModal(ModalScreen[str | None]):
    CSS_PATH = "modal.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, default: str, hint: str = "", confirm_label: str = "Save") -> None:
        super().__init__(classes="dialog")
        self.title_text, self.default, self.hint, self.confirm_label = title, default, hint, confirm_label

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="frame"):
            yield Static(shown(self.title_text), classes="title", markup=False)
            if self.hint:
                yield Static(shown_lines(self.hint), classes="hint", markup=False)
            yield Input(self.default, placeholder="path of the file to write", id="path")
            with Horizontal(classes="buttons"):  # docked: in view however long the text
                yield Button(self.confirm_label, id="save", variant="primary")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def _submit(self) -> None:
        path = self.query_one(Input).value.strip()
        if not path:
            self.notify("Type the path of the file to write.", severity="warning")
            return
        self.dismiss(path)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self._submit()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
