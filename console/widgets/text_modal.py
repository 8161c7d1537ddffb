"""A page of text to read (the screen's help, a provider's full answer); any of Escape, ? or q closes it."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Markdown, Static

from console.tables import shown, shown_lines


class TextModal(ModalScreen[None]):
    CSS_PATH = "modal.tcss"
    BINDINGS = [Binding("escape,question_mark,q", "close", "Close")]

    def __init__(self, title: str, markdown: str = "", plain: str | None = None) -> None:
        super().__init__(classes="dialog")
        self.title_text, self.markdown, self.plain = title, markdown, plain

    def compose(self) -> ComposeResult:
        with Vertical(classes="frame wide"):
            yield Static(shown(self.title_text), classes="title", markup=False)
            with VerticalScroll(classes="help"):
                if self.plain is not None:
                    yield Static(shown_lines(self.plain), markup=False, id="text")
                else:
                    yield Markdown(self.markdown, id="text")
            with Horizontal(classes="buttons"):
                yield Button("Close", id="close", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    def action_close(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)
