"""Who is talking to the bot."""

from __future__ import annotations

from core import access


def principal(rt, client, user_id: str) -> access.Principal:
    """The Slack user as a calsync principal (their e-mail links a staff member on first contact)."""
    found = access.slack_principal(rt, user_id)
    if found.staff is None:
        try:
            profile = client.users_info(user=user_id)["user"].get("profile", {})
        except Exception:  # noqa: BLE001 — an unknown user or a Slack hiccup: treat as not linked
            profile = {}
        found = access.slack_principal(rt, user_id, profile.get("email"))
    return found
