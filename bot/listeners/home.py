"""The App Home tab: the staff member's connections, each with what its status needs, and their feed."""

from __future__ import annotations

from bot import blocks, out, people
from core import actions


def home_for(rt, staff) -> dict:
    rows = actions.list_statuses(rt, staff.email)
    # The pickers of calendar_missing / read_only rows offer the calendars already known (no provider call here).
    calendars = {
        row["id"]: blocks.choosable(actions.list_calendars(rt, row["id"]), row["status"])
        for row in rows
        if row["status"] in blocks.PICKER_STATUSES
    }
    feed = actions.feed_url(rt, staff.email)["url"]
    return blocks.home_view(rows, staff.name, feed_url=feed, calendars=calendars)


def publish_home(rt, client, user_id: str) -> None:
    principal = people.principal(rt, client, user_id)
    if principal.staff is None:
        view = {
            "type": "home",
            "blocks": [
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": ("Calsync does not know you yet. Ask support to link your Slack account to your staff profile."),
                    },
                }
            ],
        }
    else:
        view = home_for(rt, principal.staff)
    out.publish_home(client, user_id, view)


def register(app, rt) -> None:
    @app.event("app_home_opened")
    def home_opened(event, client):
        if event.get("tab", "home") == "home":
            publish_home(rt, client, event["user"])
