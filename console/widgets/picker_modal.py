"""Choose one of a few options (relink channel, primary calendar); Escape chooses nothing."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, OptionList, Static
from textual.widgets.option_list import Option

from console.tables import shown, shown_lines


class PickerModal(ModalScreen[str | None]):
    """``options`` are (value, label, enabled); a disabled option says why in its label."""

    CSS_PATH = "modal.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, options: list[tuple[str, str, bool]], hint: str = "") -> None:
        super().__init__(classes="dialog")
        self.title_text, self.options, self.hint = title, options, hint

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="frame"):
            yield Static(shown(self.title_text), classes="title", markup=False)
            if self.hint:
                yield Static(shown_lines(self.hint), classes="hint", markup=False)
            # Labels name calendars from the provider: shown as they are, never read as markup.
            yield OptionList(
                *[Option(shown(label), id=value, disabled=not enabled) for value, label, enabled in self.options], markup=False
            )
            with Horizontal(classes="buttons"):  # docked: in view however long the text
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.focus()
        first = next((i for i, (_, _, enabled) in enumerate(self.options) if enabled), None)
        if first is not None:
            options.highlighted = first

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
