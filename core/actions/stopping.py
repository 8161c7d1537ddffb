"""Stop sync safely: say what will happen, refuse what would lose track of appointments.

On a working connection stop removes calsync's events from the calendar
(unless told to keep them) and forgets the credentials. On a broken (or
failing) one it refuses by default and names both counts: the events it could
no longer remove, and the appointments still waiting to be written. With
``force`` both are recorded as orphaned, so support can follow up: the
waiting ones stay listed, counted and downloadable. Nothing waits silently
into nowhere.
"""

from __future__ import annotations

import models as m
from core import clock, lifecycle, push, waiting, wording
from core.actions.common import ActionError, _connection, audit, audited
from core.actions.views import _same_account
from core.messages import meaning
from core.providers.base import ProviderError


def _links(conn: m.Connection):
    return (
        m.AppointmentLink.select(m.AppointmentLink, m.Appointment)
        .join(m.Appointment)
        .switch(m.AppointmentLink)
        .join(m.Calendar)
        .where(m.Calendar.connection == conn)
    )


def _on_calendar(conn: m.Connection) -> list[m.AppointmentLink]:
    """calsync's events on the calendar (written at least once, not removed since)."""
    return list(
        _links(conn).where(m.AppointmentLink.href != "", m.AppointmentLink.state.in_([m.LINK_SYNCED, m.LINK_PENDING, m.LINK_MISSED]))
    )


def _waiting(conn: m.Connection) -> list[m.AppointmentLink]:
    """Appointments not on the calendar as they are now: not written yet, or changed since (missed,
    or about to be written). A changed one is also on the calendar, with its old details."""
    unwritten = (m.AppointmentLink.href == "") | (m.AppointmentLink.pushed_version < m.Appointment.version)
    return list(
        _links(conn)
        .where(
            unwritten,
            m.Appointment.cancelled == False,
            m.AppointmentLink.state.in_([m.LINK_PENDING, m.LINK_MISSED]),
        )
        .order_by(m.Appointment.starts_at)
    )


def who(rt, conn: m.Connection, actor: str) -> str:
    """The actor in words, as the status reason and the audit say it."""
    if not actor:
        return "calsync"
    if actor.startswith("slack:"):
        slack_id = actor[len("slack:") :]
        if conn.staff.slack_id == slack_id:
            return f"the staff member ({conn.staff.name})"
        return f"support (Slack user {slack_id})"
    if actor.startswith(("relink-link:", "self-service:", "connect-link:", "oauth:")):
        return f"the staff member ({conn.staff.name})"
    return f"support ({actor})"


def stop_plan(rt, conn_id, keep_events: bool = False, for_support: bool = True) -> dict:
    """What `stop` would do, for the confirmation the user must give.

    ``for_support`` False (a staff member asking in Slack): other staff members
    sharing the account are counted, never named.
    """
    conn = _connection(conn_id)
    on_calendar = len(_on_calendar(conn))
    waiting_now = _waiting(conn)
    broken = conn.status in m.BROKEN_STATUSES or waiting.is_failing(conn)
    shared_with = sorted({o.staff.email for o in _same_account(conn) if o.staff_id != conn.staff_id})
    state = f"{conn.status} ({conn.reason or meaning(conn.status)})"
    parts = []
    if keep_events:
        parts.append(f"{on_calendar} calsync event(s) stay on the calendar")
    elif broken:
        parts.append(
            f"the connection is {state}: calsync can no longer remove its {on_calendar} event(s); "
            "they would stay on the calendar as orphans"
        )
    else:
        parts.append(f"{on_calendar} calsync event(s) are removed from the calendar")
    if waiting_now:
        if broken:
            parts.append(
                f"{len(waiting_now)} appointment(s) waiting to be written or updated would never reach the calendar "
                "(they stay listed as orphaned and downloadable)"
            )
        else:
            parts.append(f"{len(waiting_now)} appointment(s) not yet written will not be written")
    orphans = (0 if keep_events else on_calendar) + len(waiting_now) if broken else 0
    needs_force = broken and ((on_calendar > 0 and not keep_events) or bool(waiting_now))
    if shared_with:
        warning = (
            f"the same account is also synced by {', '.join(shared_with)}; their access is not touched"
            if for_support
            else f"{len(shared_with)} other staff member(s) sync the same account; their access is not touched"
        )
    else:
        warning = ""
    sentences, confirm = _plan_words(
        conn,
        keep_events=keep_events,
        broken=broken,
        on_calendar=on_calendar,
        waiting_now=len(waiting_now),
        shared=len(shared_with),
        shared_names=shared_with if for_support else [],
    )
    return {
        "connection": conn.id,
        "status": conn.status,
        "broken": broken,
        "sentences": sentences,
        "confirm_label": confirm,
        "events_on_calendar": on_calendar,
        "waiting": len(waiting_now),
        "remove_events": not keep_events and not broken,
        "orphans": orphans,
        "needs_force": needs_force,
        "shared_with": shared_with if for_support else [],
        "shared_count": len(shared_with),
        "effect": "; ".join(parts),
        "warning": warning,
    }


def _events(n: int) -> str:
    return "1 event" if n == 1 else f"{n} events"


def _plan_words(
    conn: m.Connection, *, keep_events: bool, broken: bool, on_calendar: int, waiting_now: int, shared: int, shared_names: list[str]
) -> tuple[list[str], str]:
    """``shared_names`` only for support (a staff member is told how many, never who)."""
    """What stopping does, in sentences for people, and the words of the button that does it."""
    said = []
    if broken:
        what = (
            wording.problem(conn.status, conn.provider, server_url=conn.server_url, failing=waiting.is_failing(conn))
            or conn.reason
            or meaning(conn.status)
        )
        said.append(f"{what}, so calsync cannot change that calendar now.")
    one = on_calendar == 1
    if on_calendar == 0:
        said.append("Calsync has no events on the calendar.")
    elif keep_events:
        said.append(f"The {_events(on_calendar)} calsync added {'stays' if one else 'stay'} on the calendar.")
    elif broken:
        said.append(f"The {_events(on_calendar)} calsync added cannot be removed and {'stays' if one else 'stay'} on the calendar.")
    else:
        said.append(f"The {_events(on_calendar)} calsync added {'is' if one else 'are'} removed from the calendar.")
    if waiting_now:
        appointments = "1 appointment that is" if waiting_now == 1 else f"{waiting_now} appointments that are"
        said.append(
            f"{appointments[0].upper()}{appointments[1:]} waiting will never reach the calendar; they stay downloadable as an .ics file."
        )
    if shared:
        people = "1 other staff member syncs" if shared == 1 else f"{shared} other staff members sync"
        said.append(f"{people} the same account; their sync is not touched.")
        if shared_names:
            said.append(f"Also synced by: {', '.join(shared_names)}.")
    said.append("Calsync forgets what it stored to reach this calendar; to sync again, connect it again.")
    # A button's words (Slack allows 24 characters in a modal's submit): "Stop, keep 12 events".
    if broken and ((on_calendar and not keep_events) or waiting_now):
        confirm = "Stop anyway"
    elif on_calendar and keep_events:
        confirm = f"Stop and keep {_events(on_calendar)}"
    elif on_calendar:
        confirm = f"Stop and remove {_events(on_calendar)}"
    else:
        confirm = "Stop sync"
    if len(confirm) > 24:
        confirm = confirm.replace("Stop and ", "Stop, ")
    if len(confirm) > 24:
        confirm = "Stop sync"
    return said, confirm


@audited("connection.stop")
def stop_sync(rt, conn_id, keep_events: bool = False, force: bool = False, actor: str = "") -> dict:
    conn = _connection(conn_id)
    if conn.status == m.STOPPED:
        raise ActionError("the connection is already stopped")
    plan = stop_plan(rt, conn_id, keep_events)
    if plan["needs_force"] and not force:
        counts = []
        if plan["events_on_calendar"] and not keep_events:
            counts.append(f"{plan['events_on_calendar']} appointment(s) on the calendar that calsync cannot remove")
        if plan["waiting"]:
            counts.append(f"{plan['waiting']} appointment(s) still waiting to be written")
        raise ActionError(
            f"refused: the connection is {conn.status} ({conn.reason or meaning(conn.status)}), with "
            f"{' and '.join(counts)}. Relink first, or use --force to stop anyway (they are recorded as orphaned "
            "for support; the waiting ones stay downloadable)."
        )
    on_calendar, waiting_now = _on_calendar(conn), _waiting(conn)
    removed = kept = orphaned = 0
    if plan["remove_events"]:
        prov = rt.provider_for(conn)
        for link in on_calendar:
            try:
                prov.delete(link.href, "")
            except ProviderError as exc:
                lifecycle.failed(rt, conn, exc, "stop")
                raise ActionError(
                    f"stopped nothing: removing calsync's events failed after {removed} of {len(on_calendar)}: "
                    f"{exc.reason}. The connection stays as it was; try again, or use --keep-events."
                ) from None
            removed += 1
            link.state, link.href, link.etag = m.LINK_REMOVED, "", ""
            link.save()
    # Push channels close while the credentials are still here to close them with (core.push).
    push.close_all(rt, conn, prov if plan["remove_events"] else None)
    stranded = []
    waits = {link.id for link in waiting_now}
    links = {link.id: link for link in waiting_now} | {link.id: link for link in on_calendar}  # one per row
    with m.db.atomic():
        for link in links.values():
            if link.state == m.LINK_REMOVED:
                continue  # removed from the calendar above
            if plan["broken"] and link.id in waits:
                link.state = m.LINK_ORPHANED  # never written, or its change never: listed, counted, downloadable
                stranded.append(link.appointment)
            elif link.href and keep_events:
                link.state, kept = m.LINK_KEPT, kept + 1
            elif link.href:
                link.state, orphaned = m.LINK_ORPHANED, orphaned + 1
            else:
                link.state = m.LINK_REMOVED  # a working connection: the plan said they will not be written
            link.save()
        calendars = m.Calendar.select(m.Calendar.id).where(m.Calendar.connection == conn)
        m.FeedEntry.delete().where(m.FeedEntry.calendar.in_(calendars)).execute()
        m.RemoteObject.delete().where(m.RemoteObject.calendar.in_(calendars)).execute()
        conn.credentials = ""  # forgotten: only this connection's copy, never the account's grant elsewhere
        conn.stopped_at = clock.now()
        conn.save()
        by = who(rt, conn, actor)
        lifecycle.stopped(rt, conn, by)
    words = [f"stopped by {by}"]
    if removed:
        words.append(f"{removed} event(s) removed from the calendar")
    if kept:
        words.append(f"{kept} event(s) left on the calendar on purpose")
    if orphaned:
        words.append(f"{orphaned} event(s) left on the calendar as orphans")
    if stranded:
        words.append(f"{len(stranded)} waiting appointment(s) never delivered (orphaned, downloadable)")
    if force:
        words.append("forced")
    audit(actor, "connection.stop", conn.id, "; ".join(words))
    return {
        **plan,
        "stopped": True,
        "removed": removed,
        "kept": kept,
        "orphaned": orphaned + len(stranded),
        "stopped_by": by,
        "waiting_orphaned": [{"id": a.external_id, "subject": a.subject, "start": clock.utc(a.starts_at).isoformat()} for a in stranded],
    }
