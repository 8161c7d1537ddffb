"""The App Home tab: the staff member's connections with the same buttons as the alerts."""

from __future__ import annotations

from bot import blocks, out, people
from core import actions


def publish_home(rt, client, user_id: str) -> None:
    principal = people.principal(rt, client, user_id)
    if principal.staff is None:
        view = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": (
            "Calsync does not know you yet. Ask support to link your Slack account to your staff profile.")}}]}
    else:
        view = blocks.home_view(actions.list_statuses(rt, principal.staff.email), principal.staff.name)
    out.publish_home(client, user_id, view)


def register(app, rt) -> None:
    @app.event("app_home_opened")
    def home_opened(event, client):
        if event.get("tab", "home") == "home":
            publish_home(rt, client, event["user"])
