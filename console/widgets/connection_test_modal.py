"""The result of "test connection": every check, the status, and the provider's raw answer."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from console.tables import shown, shown_lines
from console.widgets.status_badge import status_text
from core.messages import meaning


def checks_text(checks: list[dict]) -> Text:
    text = Text()
    for check in checks:
        mark, style = ("✔ ok", "#5fd75f") if check["ok"] else ("✖ no", "bold #ff5f5f")
        text.append(f"{mark:5} ", style=style)
        text.append(shown(f"{check['check']}: "), style="bold")
        text.append(shown(check["detail"]) + "\n")
    text.rstrip()
    return text


class ConnectionTestModal(ModalScreen[None]):
    CSS_PATH = "modal.tcss"
    BINDINGS = [Binding("escape", "close", "Close"), Binding("c", "copy", "Copy answer")]

    def __init__(self, result: dict) -> None:
        super().__init__(classes="dialog")
        self.result = result

    def compose(self) -> ComposeResult:
        r = self.result
        verdict = "passed" if r["ok"] else "failed"
        with Vertical(classes="frame" if r["ok"] else "frame danger"):
            yield Static(f"Test of connection {r['connection']}: {verdict}", classes="title")
            status = Text("Status now: ", style="bold")
            status.append_text(status_text(r["status"]))
            status.append(f"  ({meaning(r['status'])})")
            yield Static(status, classes="body", id="test-status")
            yield Static(shown(f"Reason: {r['reason']}"), classes="body", id="test-reason", markup=False)
            yield Static(checks_text(r["checks"]), classes="body", id="test-checks")
            yield Static("The provider's answer:", classes="hint")
            with VerticalScroll(classes="answer"):
                yield Static(shown_lines(r["provider_answer"] or "(none: the provider answered as expected)"),
                             id="test-answer", markup=False)
            with Horizontal(classes="buttons"):
                yield Button("Close", id="close", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(self.result["provider_answer"] or "")
        self.notify("The provider's answer was copied to the clipboard.")

    def action_close(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)
