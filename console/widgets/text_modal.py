"""A page of text to read (the screen's help, a provider's full answer); any of Escape, ? or q closes it.

The page scrolls (arrow keys, Page Up/Down, the mouse) while Close stays in view.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Markdown, Static

from console.tables import shown, shown_lines


class TextModal(ModalScreen[None]):
    CSS_PATH = "modal.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "close", "Close"),
        Binding("down,j", "scroll('down')", "Scroll down", show=False),
        Binding("up,k", "scroll('up')", "Scroll up", show=False),
        Binding("pagedown,space", "scroll('page_down')", "Page down", show=False),
        Binding("pageup", "scroll('page_up')", "Page up", show=False),
    ]

    def __init__(self, title: str, markdown: str = "", plain: str | None = None) -> None:
        super().__init__(classes="dialog")
        self.title_text, self.markdown, self.plain = title, markdown, plain

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="frame wide", id="page"):
            yield Static(shown(self.title_text), classes="title", markup=False)
            if self.plain is not None:
                yield Static(shown_lines(self.plain), markup=False, id="text")
            else:
                yield Markdown(self.markdown, id="text")
            with Horizontal(classes="buttons"):  # docked: in view however long the text
                yield Button("Close", id="close", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    def action_scroll(self, how: str) -> None:
        getattr(self.query_one("#page", VerticalScroll), f"scroll_{how}")(animate=False)

    def action_close(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)
