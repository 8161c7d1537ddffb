"""Who may act on which connection: staff on their own, support on all.

Adapters (Slack) identify a person; this module decides. Support users are
the Slack ids in CALSYNC_SUPPORT_USERS.
"""

from __future__ import annotations

import dataclasses

import models as m
from core.actions import ActionError, NotFoundError, _connection


class NotAllowed(ActionError):
    """The person may not do this; ``str()`` says so politely."""


@dataclasses.dataclass
class Principal:
    slack_id: str
    staff: m.Staff | None
    support: bool

    @property
    def actor(self) -> str:
        return f"slack:{self.slack_id}"

    @property
    def known(self) -> bool:
        return self.staff is not None or self.support


def slack_principal(rt, slack_id: str, email: str | None = None) -> Principal:
    """The person behind a Slack user id; ``email`` (from users.info) links a staff member on first contact."""
    staff = m.Staff.get_or_none(m.Staff.slack_id == slack_id)
    if staff is None and email:
        staff = m.Staff.get_or_none(m.Staff.email == email.strip().lower())
        if staff is not None and not staff.slack_id:
            staff.slack_id = slack_id
            staff.save()
    return Principal(slack_id=slack_id, staff=staff, support=slack_id in rt.settings.support_users)


NO_ACCESS = (
    "Calsync does not know you yet: your Slack account is not linked to a staff member. "
    "Ask support to add you (`run_console.py staff add EMAIL --name NAME --slack-id YOUR_ID`)."
)


def require_known(principal: Principal) -> None:
    if not principal.known:
        raise NotAllowed(NO_ACCESS)


def target_staff(rt, principal: Principal, who: str | None) -> m.Staff:
    """Whose connections: the principal's own, or (support only) someone else's by Slack id or e-mail."""
    require_known(principal)
    if not who:
        if principal.staff is None:
            raise NotAllowed("You are support but not a staff member: name whose connections, e.g. `@ada` or ada@example.com.")
        return principal.staff
    staff = m.Staff.get_or_none((m.Staff.slack_id == who) | (m.Staff.email == who.strip().lower()))
    if staff is None:
        raise NotFoundError(f"no staff member {who!r}")
    if principal.staff is not None and staff.id == principal.staff.id:
        return staff
    if not principal.support:
        raise NotAllowed("You can only act on your own calendar connections.")
    return staff


def connection_for(rt, principal: Principal, number: str | int | None, who: str | None = None) -> m.Connection:
    """One connection the principal may act on: by id, or the only one of the target staff member."""
    require_known(principal)
    if number not in (None, ""):
        conn = _connection(number)
        if principal.support or (principal.staff is not None and conn.staff_id == principal.staff.id):
            return conn
        raise NotAllowed("You can only act on your own calendar connections.")
    staff = target_staff(rt, principal, who)
    conns = list(staff.connections.where(m.Connection.status != m.STOPPED).order_by(m.Connection.id))
    if not conns:
        raise NotFoundError(f"{staff.name} has no calendar connection")
    if len(conns) > 1:
        ids = ", ".join(str(c.id) for c in conns)
        raise ActionError(f"{staff.name} has {len(conns)} connections ({ids}): say which one, e.g. `test {conns[0].id}`")
    return conns[0]
