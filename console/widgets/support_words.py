"""What support does about a connection, with the key to press in the console.

The staff member's own wording (``row["todo"]``, from core.wording) is for Slack, the
pages and e-mail; support in the console reads these, keyed on the status.
"""

from __future__ import annotations

# The keys are the detail screen's (console/screens/detail.py BINDINGS).
BY_STATUS = {
    "relink_required": "press l to send a new relink link (Slack / e-mail); the staff member then enters "
    "their new password or signs in again",
    "calendar_missing": "press p to choose a new primary calendar (the old one was deleted)",
    "read_only": "press p to choose a writable primary calendar, or ask the staff member's calendar administrator for write access",
    "unreachable": "press t to test whether the provider answers again; calsync keeps retrying by itself",
    "pending": "press n to run the first sync now, or t to test the connection",
    "stopped": "nothing to do here: the staff member connects again to resume (Slack or the connect page)",
}
ICS_RELINK = (
    "press l to send a new relink link: the staff member pastes the feed's current address "
    "(it changes when the feed is reset or made private)"
)
FAILING = "press t to test whether the provider answers again; calsync keeps retrying by itself"


def support_todo(row: dict, from_list: bool = False) -> str:
    """One line for support: the key to press first ('press p to choose a new primary calendar').

    ``from_list``: said on the connections list, where the keys are one Enter away.
    """
    status = row.get("status", "")
    if status == "relink_required" and row.get("provider") == "ics":
        said = ICS_RELINK
    elif status == "active" and row.get("failing"):
        said = FAILING
    else:
        said = BY_STATUS.get(status, "")
    missed = int(row.get("missed") or 0)
    if missed and status != "stopped":
        export = f"press e to export the {missed} missed appointment{'s' if missed != 1 else ''} (.ics)"
        said = f"{said}; {export}" if said else export
    if not said:
        return "nothing: it syncs"
    if from_list and status != "stopped":
        said = "Enter, then " + said
    return said[0].upper() + said[1:]
