"""Staff members: the people whose calendars are synced."""

from __future__ import annotations

import models as m
from core.actions.common import EMAIL_RE, ActionError, InvalidInput, _valid_timezone, audit
from core.actions.views import staff_dict


def add_staff(rt, email: str, name: str, slack_id: str | None = None, timezone: str = "UTC", actor: str = "") -> dict:
    email = (email or "").strip().lower()
    if not EMAIL_RE.match(email):
        raise InvalidInput(f"{email!r} is not an e-mail address")
    if not (name or "").strip():
        raise InvalidInput("the staff member needs a name (--name)")
    _valid_timezone(timezone)
    if m.Staff.select().where(m.Staff.email == email).exists():
        raise ActionError(f"a staff member with e-mail {email} exists already")
    staff = m.Staff.create(email=email, name=name.strip(), slack_id=slack_id or None, timezone=timezone)
    audit(actor, "staff.add", email)
    return staff_dict(staff)


def list_staff(rt) -> list[dict]:
    return [staff_dict(s) for s in m.Staff.select().order_by(m.Staff.email)]
