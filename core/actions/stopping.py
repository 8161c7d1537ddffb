"""Stop sync safely: say what will happen, refuse what would lose track of appointments."""

from __future__ import annotations

import models as m
from core import clock, health
from core.actions.common import ActionError, _connection, audit, audited
from core.actions.views import _same_account
from core.messages import meaning
from core.providers.base import ProviderError


def stop_plan(rt, conn_id, keep_events: bool = False) -> dict:
    """What `stop` would do, for the confirmation the user must give."""
    conn = _connection(conn_id)
    on_calendar = (
        m.AppointmentLink.select()
        .join(m.Calendar)
        .where(m.Calendar.connection == conn, m.AppointmentLink.state == m.LINK_SYNCED, m.AppointmentLink.href != "")
        .count()
    )
    broken = conn.status in m.BROKEN_STATUSES
    shared_with = sorted({o.staff.email for o in _same_account(conn) if o.staff_id != conn.staff_id})
    if keep_events:
        effect = f"{on_calendar} calsync event(s) stay on the calendar"
    elif broken:
        effect = (
            f"the connection is {conn.status} ({conn.reason or meaning(conn.status)}): calsync can no longer "
            f"remove its {on_calendar} event(s); they would stay on the calendar as orphans"
        )
    else:
        effect = f"{on_calendar} calsync event(s) are removed from the calendar"
    return {
        "connection": conn.id,
        "status": conn.status,
        "events_on_calendar": on_calendar,
        "remove_events": not keep_events and not broken,
        "orphans": on_calendar if broken and not keep_events else 0,
        "needs_force": broken and not keep_events and on_calendar > 0,
        "shared_with": shared_with,
        "effect": effect,
        "warning": (
            f"the same account is also synced by {', '.join(shared_with)}; their access is not touched"
            if shared_with
            else ""
        ),
    }


@audited("connection.stop")
def stop_sync(rt, conn_id, keep_events: bool = False, force: bool = False, actor: str = "") -> dict:
    conn = _connection(conn_id)
    if conn.status == m.STOPPED:
        raise ActionError("the connection is already stopped")
    plan = stop_plan(rt, conn_id, keep_events)
    if plan["needs_force"] and not force:
        raise ActionError(
            f"refused: the connection is {conn.status} ({conn.reason or meaning(conn.status)}), so calsync cannot "
            f"remove its {plan['events_on_calendar']} appointment(s) from the calendar. Relink first, or use "
            "--force to stop anyway and leave them there (recorded as orphaned for support), or --keep-events."
        )
    links = list(
        m.AppointmentLink.select()
        .join(m.Calendar)
        .where(m.Calendar.connection == conn, m.AppointmentLink.state.in_([m.LINK_SYNCED, m.LINK_PENDING, m.LINK_MISSED]))
    )
    removed = kept = orphaned = 0
    if plan["remove_events"]:
        prov = rt.provider_for(conn)
        for link in links:
            if link.state == m.LINK_SYNCED and link.href:
                try:
                    prov.delete(link.href, "")
                except ProviderError as exc:
                    health.record_failure(rt, conn, exc, "stop")
                    raise ActionError(
                        f"stopped nothing: removing calsync's events failed after {removed} of {plan['events_on_calendar']}: "
                        f"{exc.reason}. The connection stays as it was; try again, or use --keep-events."
                    ) from None
                removed += 1
                link.state = m.LINK_REMOVED
                link.save()
    with m.db.atomic():
        for link in links:
            if link.state == m.LINK_SYNCED:
                if keep_events:
                    link.state, kept = m.LINK_KEPT, kept + 1
                else:
                    link.state, orphaned = m.LINK_ORPHANED, orphaned + 1
            elif link.state in (m.LINK_PENDING, m.LINK_MISSED):
                link.state = m.LINK_REMOVED
            link.save()
        calendars = m.Calendar.select(m.Calendar.id).where(m.Calendar.connection == conn)
        m.FeedEntry.delete().where(m.FeedEntry.calendar.in_(calendars)).execute()
        m.RemoteObject.delete().where(m.RemoteObject.calendar.in_(calendars)).execute()
        conn.credentials = ""  # forgotten: only this connection's copy, never the account's grant elsewhere
        conn.stopped_at = clock.now()
        conn.save()
        health.set_status(rt, conn, m.STOPPED, meaning(m.STOPPED), "stop")
    detail = f"removed={removed} kept={kept} orphaned={orphaned}" + (" force" if force else "")
    audit(actor, "connection.stop", conn.id, detail)
    return {**plan, "stopped": True, "removed": removed, "kept": kept, "orphaned": orphaned}
