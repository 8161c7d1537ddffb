"""A secret link (relink link, feed URL), with a copy action.

A new link is shown once: the console keeps no copy, and once this dialog is closed
it cannot be shown again, only replaced. A feed URL can be shown again (``once=False``)
and comes with its webcal:// form and how to subscribe. A link never wraps in its box
(it scrolls sideways), so it can be selected with the mouse in one go.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, HorizontalScroll, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from console.tables import shown, shown_lines
from console.widgets.clipboard import copy


class LinkModal(ModalScreen[None]):
    CSS_PATH = "modal.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "copy", "Copy link"),
        Binding("w", "copy_webcal", "Copy webcal link", show=False),
        Binding("escape", "close", "Close"),
    ]

    def __init__(
        self, title: str, url: str, notes: list[str] | None = None, *, once: bool = True, webcal: str = "", help_text: str = ""
    ) -> None:
        super().__init__(classes="dialog")
        self.title_text, self.url, self.notes = title, url, notes or []
        self.once, self.webcal, self.help_text = once, webcal, help_text

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="frame wide" if self.webcal else "frame"):
            yield Static(shown(self.title_text), classes="title", markup=False)
            with HorizontalScroll(classes="link-box"):
                yield Static(shown(self.url), classes="link", id="url", markup=False)
            if self.webcal:
                yield Static("Subscribe link (calendar apps open it):", classes="link-label")
                with HorizontalScroll(classes="link-box"):
                    yield Static(shown(self.webcal), classes="link", id="webcal", markup=False)
            if self.once:
                yield Static("Shown once: copy it now. Closing this dialog forgets it.", classes="warning")
            if self.help_text:
                yield Static(shown_lines(self.help_text), classes="hint", id="subscribe-help", markup=False)
            for note in self.notes:
                yield Static(shown_lines(note), classes="body", markup=False)
            with Horizontal(classes="buttons"):  # docked: in view however long the text
                yield Button("Copy link", id="copy", variant="primary")
                if self.webcal:
                    yield Button("Copy webcal link", id="copy-webcal")
                yield Button("Close", id="close")

    def on_mount(self) -> None:
        self.query_one("#copy", Button).focus()

    def action_copy(self) -> None:
        self.notify(copy(self.app, self.url), timeout=8)

    def action_copy_webcal(self) -> None:
        if self.webcal:
            self.notify(copy(self.app, self.webcal, "webcal link"), timeout=8)

    def action_close(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "copy":
            self.action_copy()
        elif event.button.id == "copy-webcal":
            self.action_copy_webcal()
        else:
            self.dismiss(None)
