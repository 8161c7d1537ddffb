"""The result of "test connection": every check, the status, and the provider's raw answer."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from console.tables import shown, shown_lines
from console.widgets.clipboard import copy
from console.widgets.status_badge import status_text
from core.messages import meaning

NO_ANSWER = "did not answer in time"


def timed(reason: str, seconds: float | None) -> str:
    """'the CalDAV server did not answer in 12 s' instead of '… in time', when the time is known."""
    if seconds is None or NO_ANSWER not in (reason or ""):
        return reason
    return reason.replace(NO_ANSWER, f"did not answer in {max(1, round(seconds))} s")


def answer_text(result: dict, seconds: float | None) -> str:
    if result["provider_answer"]:
        return result["provider_answer"]
    if NO_ANSWER in (result["reason"] or "") or any(NO_ANSWER in c["detail"] for c in result["checks"]):
        took = f" in {max(1, round(seconds))} s" if seconds is not None else " in time"
        return f"(none: the provider did not answer{took})"
    if result["ok"]:
        return "(none: the provider answered as expected)"
    return "(none recorded: the provider sent no answer to show)"


def checks_text(checks: list[dict], seconds: float | None = None) -> Text:
    text = Text()
    for check in checks:
        mark, style = ("✔ ok", "#5fd75f") if check["ok"] else ("✖ no", "bold #ff5f5f")
        text.append(f"{mark:5} ", style=style)
        text.append(shown(f"{check['check']}: "), style="bold")
        text.append(shown(timed(check["detail"], seconds)) + "\n")
    text.rstrip()
    return text


class ConnectionTestModal(ModalScreen[None]):
    CSS_PATH = "modal.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close"), Binding("c", "copy", "Copy answer")]

    def __init__(self, result: dict, seconds: float | None = None) -> None:
        super().__init__(classes="dialog")
        self.result = result
        self.seconds = seconds  # how long the test took (said when the provider did not answer)

    def compose(self) -> ComposeResult:
        r = self.result
        verdict = "passed" if r["ok"] else "failed"
        with VerticalScroll(classes="frame" if r["ok"] else "frame danger"):
            yield Static(f"Test of connection {r['connection']}: {verdict}", classes="title")
            status = Text("Status now: ", style="bold")
            status.append_text(status_text(r["status"]))
            status.append(f"  ({meaning(r['status'])})")
            yield Static(status, classes="body", id="test-status")
            yield Static(shown(f"Reason: {timed(r['reason'], self.seconds)}"), classes="body", id="test-reason", markup=False)
            yield Static(checks_text(r["checks"], self.seconds), classes="body", id="test-checks")
            yield Static("The provider's answer:", classes="hint")
            with VerticalScroll(classes="answer"):
                yield Static(shown_lines(answer_text(r, self.seconds)), id="test-answer", markup=False)
            with Horizontal(classes="buttons"):  # docked: in view however long the text
                yield Button("Close", id="close", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    def action_copy(self) -> None:
        self.notify(copy(self.app, self.result["provider_answer"] or "", "provider's answer"), timeout=8)

    def action_close(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(None)
