"""Stop sync: say exactly what will happen before anything does.

The plans come from ``core.actions.stop_plan`` (one keeping the events, one not);
this dialog only shows them and returns the choice. Cancel, the default, does nothing.
"""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Static

from console.tables import shown


class StopModal(ModalScreen[dict | None]):
    """Returns {"keep_events": bool, "force": bool}, or None when cancelled."""

    CSS_PATH = "modal.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, plan_remove: dict, plan_keep: dict, staff: str = "", account: str = "") -> None:
        super().__init__(classes="dialog")
        self.plans = {False: plan_remove, True: plan_keep}
        self.who = shown(f" ({staff}, {account})") if staff else ""

    @property
    def keep_events(self) -> bool:
        return self.query_one("#keep-events", Checkbox).value

    def compose(self) -> ComposeResult:
        plan = self.plans[False]
        with VerticalScroll(classes="frame danger"):
            yield Static(f"Stop sync of connection {plan['connection']}{self.who}?", classes="title", markup=False)
            yield Static(id="effect", classes="body", markup=False)
            yield Static(id="orphans", classes="warning", markup=False)
            yield Static(id="shared", classes="warning", markup=False)
            yield Static("Calsync then forgets this connection's credentials; its status becomes stopped.", classes="hint")
            yield Checkbox("Keep calsync's events on the calendar", id="keep-events")
            with Horizontal(classes="buttons"):  # docked: in view however long the text
                yield Button("Stop sync", id="stop", variant="error")
                yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self._show()
        self.query_one("#cancel", Button).focus()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self._show()

    def _show(self) -> None:
        plan = self.plans[self.keep_events]
        sentences = plan.get("sentences")  # core's words for people, when it gives them
        self.query_one("#effect", Static).update(shown(" ".join(sentences)) if sentences else shown(f"What will happen: {plan['effect']}."))
        orphans = self.query_one("#orphans", Static)
        orphans.display = bool(plan["orphans"])
        if plan["orphans"] and sentences:  # the sentences said what stays behind
            orphans.update(f"The connection is {plan['status']}: relink first to finish cleanly.")
        elif plan["orphans"]:
            left = []
            if plan["orphans"] - plan.get("waiting", 0) > 0:
                left.append(
                    f"{plan['orphans'] - plan.get('waiting', 0)} appointment(s) would stay on the calendar "
                    "as orphans that calsync can no longer remove"
                )
            if plan.get("waiting"):
                left.append(
                    f"{plan['waiting']} appointment(s) waiting to be written would never reach it "
                    "(they stay listed as orphaned and can be exported)"
                )
            orphans.update(f"Warning: the connection is {plan['status']}: {'; '.join(left)}. Relink first to finish cleanly.")
        shared = self.query_one("#shared", Static)
        shared.display = bool(plan["warning"])
        shared.update(shown(f"Shared account: {plan['warning']}.") if plan["warning"] else "")
        button = self.query_one("#stop", Button)
        button.label = plan.get("confirm_label") or (
            f"Stop anyway, leave {plan['orphans']} orphan(s)" if plan["needs_force"] else "Stop sync"
        )

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "stop":
            plan = self.plans[self.keep_events]
            self.dismiss({"keep_events": self.keep_events, "force": bool(plan["needs_force"])})
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
