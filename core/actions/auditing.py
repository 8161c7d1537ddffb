"""The audit log as support reads it: who did what to whose connection, in plain words."""

from __future__ import annotations

import models as m
from core.actions.common import _iso

# What each recorded action was, said as a sentence fragment (the actor is shown beside it).
ACTION_WORDS = {
    "connection.sync": "synced now",
    "connection.stop": "stopped the sync",
    "connection.primary": "chose a new primary calendar",
    "connection.relink_link": "sent a new relink link",
    "connection.relink": "reconnected the account",
    "connection.relink_resent": "asked for the relink links again",
    "connection.test": "tested the connection",
    "connection.connect": "connected a calendar",
    "connection.oauth_start": "started a sign-in to connect a calendar",
    "connection.download_missed": "downloaded the missed appointments",
    "connection.download_link": "made a download link for the missed appointments",
    "relink.request": "asked on the web for a new relink link",
    "staff.add": "added a staff member",
    "staff.connect_link": "made a link to connect a calendar",
    "feed.url": "looked up the private feed URL",
    "feed.reset": "reset the private feed URL",
    "apikey.create": "created API key {target}",
    "apikey.revoke": "revoked API key {target}",
    "keys.rotate": "re-encrypted the stored credentials",
    "appointment.created": "booked appointment {target}",
    "appointment.updated": "changed appointment {target}",
    "appointment.unchanged": "sent appointment {target} again, unchanged",
    "appointment.cancel": "cancelled appointment {target}",
    "appointment.external_edit": "appointment {target} was changed on the calendar",
    "appointment.external_delete": "appointment {target} was deleted on the calendar",
    "appointment.conflict": "appointment {target} was changed in two places",
    "appointment.adopted": "an imported copy of appointment {target} was found and kept",
}


def summary(action: str, detail: str, result: str, target: str = "") -> str:
    """'tested the connection — failed: the CalDAV server rejected the password'."""
    words = ACTION_WORDS.get(action, action.replace(".", " ").replace("_", " ")).replace("{target}", target or "?")
    if action == "connection.primary" and detail and result != "failed":
        words = f"chose '{detail}' as the primary calendar"
        detail = ""
    if result == "failed":
        return f"{words} — failed: {detail}" if detail else f"{words} — failed"
    return f"{words} — {detail}" if detail else words


def _connection_id(action: str, target: str) -> int | None:
    if action.startswith("connection.") and target.isdigit() and len(target) < 12:
        return int(target)
    return None


def _in_chunks(keys: set, query) -> list[tuple]:
    """``query(chunk)`` over the keys, a few hundred at a time (SQLite bounds a query's parameters)."""
    ordered, rows = sorted(keys), []
    for start in range(0, len(ordered), 500):
        rows += query(ordered[start : start + 500])
    return rows


def audit_log(rt, limit: int = 200) -> list[dict]:
    """The newest entries first, each with the connection and staff member it concerns."""
    C, S, A = m.Connection, m.Staff, m.Appointment
    rows = list(m.AuditEntry.select().order_by(m.AuditEntry.at.desc(), m.AuditEntry.id.desc()).limit(limit))
    conn_ids = {cid for a in rows if (cid := _connection_id(a.action, a.target)) is not None}
    by_conn = {
        cid: (email, name)
        for cid, email, name in _in_chunks(
            conn_ids, lambda chunk: list(C.select(C.id, S.email, S.name).join(S).where(C.id.in_(chunk)).tuples())
        )
    }
    emails = {a.target.lower() for a in rows if "@" in a.target and not a.action.startswith("appointment.")}
    by_email = dict(_in_chunks(emails, lambda chunk: list(S.select(S.email, S.name).where(S.email.in_(chunk)).tuples())))
    external = {a.target for a in rows if a.action.startswith("appointment.")}
    by_appointment = {
        ext: (email, name)
        for ext, email, name in _in_chunks(
            external, lambda chunk: list(A.select(A.external_id, S.email, S.name).join(S).where(A.external_id.in_(chunk)).tuples())
        )
    }
    out = []
    for a in rows:
        cid = _connection_id(a.action, a.target)
        if cid is not None:
            email, name = by_conn.get(cid, ("", ""))
        elif a.action.startswith("appointment."):
            email, name = by_appointment.get(a.target, ("", ""))
        else:
            email = a.target.lower() if a.target.lower() in by_email else ""
            name = by_email.get(email, "")
        out.append(
            {
                "at": _iso(a.at),
                "actor": a.actor,
                "action": a.action,
                "target": a.target,
                "detail": a.detail,
                "result": a.result,
                "connection": cid,
                "staff": email,
                "staff_name": name,
                "summary": summary(a.action, a.detail, a.result, a.target),
            }
        )
    return out
