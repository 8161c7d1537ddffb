"""Staff members: the people whose calendars are synced."""

from __future__ import annotations

import re

import models as m
from core.actions.common import EMAIL_RE, ActionError, InvalidInput, _valid_timezone, audit, one_line
from core.actions.views import staff_dict

EMAIL_MAX = 254  # RFC 5321's longest forward path, minus the angle brackets
NAME_MAX = 200
# Slack's user ids: U (or W for Enterprise Grid) and 8 to 11 upper-case letters and digits.
SLACK_USER_ID = re.compile(r"[UW][A-Z0-9]{8,11}")
SLACK_ID_RULE = "U or W followed by 8 to 11 upper-case letters and digits, e.g. U024BE7LH"


def check_slack_id(value: str | None) -> str | None:
    """A Slack user id as stored (None for none), or InvalidInput saying what one looks like."""
    value = (value or "").strip()
    if not value:
        return None
    if not SLACK_USER_ID.fullmatch(value):
        raise InvalidInput(f"{value[:40]!r} is not a Slack user id ({SLACK_ID_RULE}; in Slack: the person's profile, More, Copy member ID)")
    return value


def add_staff(rt, email: str, name: str, slack_id: str | None = None, timezone: str = "UTC", actor: str = "") -> dict:
    """A new staff member; the e-mail and name go into mail headers and terminals, so they are one clean line."""
    email = one_line(email, "the e-mail address", EMAIL_MAX).lower()
    if not EMAIL_RE.match(email):
        raise InvalidInput(f"{email!r} is not an e-mail address")
    name = one_line(name, "the name", NAME_MAX)
    if not name:
        raise InvalidInput("the staff member needs a name (--name)")
    slack_id = check_slack_id(slack_id)
    _valid_timezone(timezone)
    if m.Staff.select().where(m.Staff.email == email).exists():
        raise ActionError(f"a staff member with e-mail {email} exists already")
    staff = m.Staff.create(email=email, name=name, slack_id=slack_id, timezone=timezone)
    audit(actor, "staff.add", email)
    return staff_dict(staff)


def list_staff(rt) -> list[dict]:
    return [staff_dict(s) for s in m.Staff.select().order_by(m.Staff.email)]
