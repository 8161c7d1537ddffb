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


def _unlinked():
    return m.Staff.slack_id.is_null() | (m.Staff.slack_id == "")


def slack_id_taken(slack_id: str, staff_id: int | None = None) -> bool:
    """Whether a staff member other than ``staff_id`` already holds this Slack id."""
    others = m.Staff.select().where(m.Staff.slack_id == slack_id)
    if staff_id is not None:
        others = others.where(m.Staff.id != staff_id)
    return others.exists()


def link_slack_id(staff_id: int, slack_id: str) -> bool:
    """Remember ``slack_id`` as the staff member's, only if they have none yet (atomic: the first claim wins)."""
    if not slack_id or slack_id_taken(slack_id, staff_id):
        return False
    return m.Staff.update(slack_id=slack_id).where(m.Staff.id == staff_id, _unlinked()).execute() == 1


def slack_principal(rt, slack_id: str, email: str | None = None) -> Principal:
    """The person behind a Slack user id; ``email`` (from users.info) links a staff member on first contact.

    A Slack profile's e-mail can be changed by its owner, so it only ever
    claims a staff record no Slack user holds yet: a record holding another
    Slack id is someone else's, whatever the e-mail says.
    """
    staff = m.Staff.get_or_none(m.Staff.slack_id == slack_id) if slack_id else None
    if staff is None and slack_id and email:
        candidate = m.Staff.get_or_none(m.Staff.email == email.strip().lower())
        if candidate is not None and link_slack_id(candidate.id, slack_id):
            staff = m.Staff.get_by_id(candidate.id)
    return Principal(slack_id=slack_id, staff=staff, support=slack_id in rt.settings.support_users)


NO_ACCESS = (
    "Calsync does not know you yet: your Slack account is not linked to a staff member. "
    "Ask support to add you (`run_console.py staff add EMAIL --name NAME --slack-id YOUR_ID`)."
)


def require_known(principal: Principal) -> None:
    if not principal.known:
        raise NotAllowed(NO_ACCESS)


def staff_named(who: str) -> m.Staff | None:
    """A staff member named in a command: an e-mail matches only e-mails, a Slack id only Slack ids.

    (One OR over both columns would let a record whose slack_id is someone's
    e-mail stand in for that person.)
    """
    who = who.strip()
    if "@" in who:
        return m.Staff.get_or_none(m.Staff.email == who.lower())
    if not who:
        return None
    return m.Staff.get_or_none(m.Staff.slack_id == who)


def target_staff(rt, principal: Principal, who: str | None) -> m.Staff:
    """Whose connections: the principal's own, or (support only) someone else's by Slack id or e-mail."""
    require_known(principal)
    if not who:
        if principal.staff is None:
            raise NotAllowed("You are support but not a staff member: name whose connections, e.g. `@ada` or ada@example.com.")
        return principal.staff
    staff = staff_named(who)
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
