"""Staff members: the people whose calendars are synced."""

from __future__ import annotations

import models as m
from core.actions.common import EMAIL_RE, ActionError, InvalidInput, _valid_timezone, audit
from core.actions.connections import one_line
from core.actions.views import staff_dict

EMAIL_MAX = 254  # RFC 5321's longest forward path, minus the angle brackets
NAME_MAX = 200
SLACK_ID_MAX = 64


def add_staff(rt, email: str, name: str, slack_id: str | None = None, timezone: str = "UTC", actor: str = "") -> dict:
    """A new staff member; the e-mail and name go into mail headers and terminals, so they are one clean line."""
    email = one_line(email, "the e-mail address", EMAIL_MAX).lower()
    if not EMAIL_RE.match(email):
        raise InvalidInput(f"{email!r} is not an e-mail address")
    name = one_line(name, "the name", NAME_MAX)
    if not name:
        raise InvalidInput("the staff member needs a name (--name)")
    slack_id = one_line(slack_id or "", "the Slack id", SLACK_ID_MAX) or None
    _valid_timezone(timezone)
    if m.Staff.select().where(m.Staff.email == email).exists():
        raise ActionError(f"a staff member with e-mail {email} exists already")
    staff = m.Staff.create(email=email, name=name, slack_id=slack_id, timezone=timezone)
    audit(actor, "staff.add", email)
    return staff_dict(staff)


def list_staff(rt) -> list[dict]:
    return [staff_dict(s) for s in m.Staff.select().order_by(m.Staff.email)]
